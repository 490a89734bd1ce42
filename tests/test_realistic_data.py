"""End to end on realistic non-sales files: weather, prices, inventory levels, sensor readings.

Each file is generated here (seeded) with the traps real data has — negative temperatures,
backorders, exact duplicate rows, an unparseable reading, a missing group key, a month the data
covers only in part. The tools are called directly and through the sequential graph (scripted
model doubles), and every number in the results and the report is checked against an
independent pandas computation on the same file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import num, table_rows
from relaygraph.tools import ToolResult, Workspace, build_tools, result_of

SEED = 20261130


def weather() -> pd.DataFrame:
    """Daily readings of three stations from mid-January (a partial month) to June."""
    rng = np.random.default_rng(SEED)
    days = pd.date_range("2024-01-15", "2024-06-30", freq="D")
    rows = []
    for station, base in (("Oslo", 0.0), ("Tromso", -6.0), ("Bergen", 3.0)):
        season = base + 18 * (np.arange(len(days)) / len(days))
        temp = np.round(season + rng.normal(0, 3, len(days)), 1)
        rain = np.round(rng.exponential(2.0, len(days)) * (rng.random(len(days)) < 0.6), 1)
        hum = np.round(rng.uniform(45, 99, len(days)), 0)
        rows.append(pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "station": station, "temperature_c": temp,
                                  "humidity": hum, "precipitation_mm": rain}))
    frame = pd.concat(rows, ignore_index=True).astype({"temperature_c": object})
    frame.loc[[5, 200], "station"] = None  # readings whose station was not recorded
    frame.loc[17, "temperature_c"] = "12..5"  # a broken value: the one row to drop as unparseable
    return pd.concat([frame, frame.iloc[[3, 40, 41]]], ignore_index=True)  # three resent rows


def prices() -> pd.DataFrame:
    """Business-day prices of three products and their traded volume."""
    rng = np.random.default_rng(SEED + 1)
    days = pd.bdate_range("2024-01-01", "2024-05-31")
    rows = [pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "product": name,
                          "price": np.round(start * np.cumprod(1 + rng.normal(0.002, 0.01, len(days))), 2),
                          "volume": rng.integers(100, 900, len(days))})
            for name, start in (("copper", 8.5), ("zinc", 2.6), ("nickel", 16.0))]
    return pd.concat(rows, ignore_index=True)


def inventory() -> pd.DataFrame:
    """Weekly stock-on-hand snapshots per warehouse and SKU, with a few backorders (negative)."""
    rng = np.random.default_rng(SEED + 2)
    weeks = pd.date_range("2024-01-05", "2024-06-28", freq="W-FRI")
    rows = []
    for warehouse in ("Rotterdam", "Hamburg", "Antwerp"):
        for sku in ("SKU-1", "SKU-2", "SKU-3", "SKU-4"):
            level = np.maximum(rng.normal(400, 120, len(weeks)).round(), -20)
            rows.append(pd.DataFrame({"week": weeks.strftime("%Y-%m-%d"), "warehouse": warehouse, "sku": sku,
                                      "stock_on_hand": level, "units_received": rng.integers(0, 80, len(weeks))}))
    frame = pd.concat(rows, ignore_index=True)
    frame.loc[[10, 90], "stock_on_hand"] = [-15.0, -4.0]  # backorders: legitimate negatives
    return frame


def sensors() -> pd.DataFrame:
    """Hourly readings of four sensors in three locations, one impossible humidity, resent rows."""
    rng = np.random.default_rng(SEED + 3)
    hours = pd.date_range("2024-03-01", "2024-04-30 23:00", freq="h")
    rows = []
    for sensor, location, base in (("S-01", "roof", -2.0), ("S-02", "lab", 21.0), ("S-03", "basement", 12.0),
                                   ("S-04", "roof", -1.0)):
        rows.append(pd.DataFrame({"timestamp": hours.strftime("%Y-%m-%d %H:%M"), "sensor_id": sensor,
                                  "location": location,
                                  "temperature_c": np.round(base + rng.normal(0, 2.5, len(hours)), 2),
                                  "humidity": np.round(rng.uniform(30, 90, len(hours)), 1),
                                  "battery_pct": np.round(np.linspace(100, 60, len(hours)), 1)}))
    frame = pd.concat(rows, ignore_index=True)
    frame.loc[123, "humidity"] = 140.0  # impossible: relative humidity is at most 100
    return pd.concat([frame, frame.iloc[[7, 8]]], ignore_index=True)


FILES = {"weather.csv": weather, "prices.csv": prices, "inventory.csv": inventory, "sensors.csv": sensors}


def call(workspace: Workspace, name: str, **args: Any) -> dict[str, Any]:
    """A tool's typed result as one dict: its facts, with its summary and artifacts beside them."""
    (tool,) = build_tools([name], workspace)
    result = result_of(tool(**args))
    assert isinstance(result, ToolResult)
    return {**result.facts, "summary": result.summary, "artifacts": result.artifacts}


@pytest.fixture
def files(workspace: Workspace) -> dict[str, pd.DataFrame]:
    workspace.data_dir.mkdir(parents=True, exist_ok=True)
    for name, make in FILES.items():
        make().to_csv(workspace.data_dir / name, index=False)
    return {name: pd.read_csv(workspace.data_dir / name) for name in FILES}


def clean(workspace: Workspace, name: str) -> tuple[dict[str, Any], pd.DataFrame]:
    result = call(workspace, "clean_dataset", dataset=name)
    return result, pd.read_parquet(workspace.resolve_input(result["artifacts"]["dataset"]))


# --- weather -------------------------------------------------------------------------------------

def test_weather_keeps_negative_temperatures_and_averages_them(workspace, files) -> None:
    raw = files["weather.csv"]
    result, cleaned = clean(workspace, "weather.csv")
    assert result["dropped_by_reason"] == {"duplicate": 3, "unparseable: temperature_c": 1}
    expected = raw.drop_duplicates()
    expected = expected[expected["temperature_c"] != "12..5"].astype({"temperature_c": float})
    assert len(cleaned) == len(expected) == result["rows_out"]
    assert (cleaned["temperature_c"] < 0).sum() == (expected["temperature_c"] < 0).sum() > 50

    by_station = call(workspace, "aggregate", dataset=result["artifacts"]["dataset"], group_by="station",
                      metric="temperature_c")
    assert by_station["role"] == "non_additive" and by_station["total"] is None
    means = expected.groupby(expected["station"].fillna("(missing)"))["temperature_c"].mean()
    assert {g["group"]: g["mean"] for g in by_station["groups"]} == pytest.approx(means.round(4).to_dict(), abs=1e-4)
    assert all("sum" not in g for g in by_station["groups"])
    assert "(missing)" in {g["group"] for g in by_station["groups"]}

    monthly = call(workspace, "detect_trends", dataset=result["artifacts"]["dataset"], metric="temperature_c")
    months = pd.to_datetime(expected["date"]).dt.to_period("M").astype(str)
    assert monthly["series"] == pytest.approx(expected.groupby(months)["temperature_c"].mean().round(4).to_dict())
    assert monthly["rule"] == "mean" and monthly["change_pct"] is None  # °C has no percentage change
    assert monthly["direction"] == "up"

    rain = call(workspace, "detect_trends", dataset=result["artifacts"]["dataset"], metric="precipitation_mm")
    assert rain["rule"] == "sum" and rain["partial_periods"] == ["2024-01"]  # data starts on the 15th
    sums = expected.groupby(months)["precipitation_mm"].sum()
    assert rain["compared_periods"] == ["2024-02", "2024-06"]
    assert rain["change"] == pytest.approx(sums["2024-06"] - sums["2024-02"], abs=1e-3)


# --- prices --------------------------------------------------------------------------------------

def test_prices_are_averaged_per_month_and_volume_is_summed(workspace, files) -> None:
    raw = files["prices.csv"]
    result, cleaned = clean(workspace, "prices.csv")
    assert result["dropped_by_reason"] == {} and len(cleaned) == len(raw)
    name = result["artifacts"]["dataset"]
    months = pd.to_datetime(raw["date"]).dt.to_period("M").astype(str)

    price = call(workspace, "detect_trends", dataset=name, metric="price")
    expected = raw.groupby(months)["price"].mean()
    assert price["rule"] == "mean" and price["series"] == pytest.approx(expected.round(4).to_dict())
    assert price["change_pct"] == pytest.approx((expected.iloc[-1] - expected.iloc[0]) / expected.iloc[0], abs=1e-4)

    by_product = call(workspace, "aggregate", dataset=name, group_by="product", metric="price")
    assert {g["group"]: g["median"] for g in by_product["groups"]} == pytest.approx(
        raw.groupby("product")["price"].median().to_dict(), abs=1e-4)

    volume = call(workspace, "aggregate", dataset=name, group_by="product", metric="volume")
    assert volume["total"] == raw["volume"].sum() == sum(g["sum"] for g in volume["groups"])
    assert volume["labels"]["sum"] == "volume (sum)"


# --- inventory -----------------------------------------------------------------------------------

def test_inventory_levels_report_the_latest_snapshot_not_a_sum_over_weeks(workspace, files) -> None:
    raw = files["inventory.csv"]
    result, cleaned = clean(workspace, "inventory.csv")
    backorders = int((raw["stock_on_hand"] < 0).sum())
    assert result["dropped_by_reason"] == {} and (cleaned["stock_on_hand"] < 0).sum() == backorders > 0  # they stay
    name = result["artifacts"]["dataset"]
    last_week, first_week = raw["week"].max(), raw["week"].min()

    by_warehouse = call(workspace, "aggregate", dataset=name, group_by="warehouse", metric="stock_on_hand")
    assert by_warehouse["role"] == "level" and by_warehouse["rule"] == "last"
    latest = raw[raw["week"] == last_week].groupby("warehouse")["stock_on_hand"].sum()
    first = raw[raw["week"] == first_week].groupby("warehouse")["stock_on_hand"].sum()
    for g in by_warehouse["groups"]:
        assert g["last"] == latest[g["group"]] and g["first"] == first[g["group"]]
        assert g["change"] == latest[g["group"]] - first[g["group"]]
    assert by_warehouse["overall"]["last"] == raw.loc[raw["week"] == last_week, "stock_on_hand"].sum()

    monthly = call(workspace, "detect_trends", dataset=name, metric="stock_on_hand")
    weeks = pd.to_datetime(raw["week"])
    month_end = raw[weeks == weeks.groupby(weeks.dt.to_period("M")).transform("max")]
    expected = month_end.groupby(pd.to_datetime(month_end["week"]).dt.to_period("M").astype(str))["stock_on_hand"].sum()
    assert monthly["rule"] == "last" and monthly["series"] == pytest.approx(expected.to_dict())

    report = call(workspace, "write_report", dataset=name, metric="stock_on_hand", group_by="warehouse")
    text = Path(report["report"]).read_text()
    assert f"latest {raw.loc[raw['week'] == last_week, 'stock_on_hand'].sum():,.2f} ({last_week})" in text
    rows = table_rows(text, "warehouse")
    assert rows[0] == ["warehouse", "rows", "stock_on_hand (last)", "stock_on_hand (first)",
                       "stock_on_hand (change)", "stock_on_hand (mean)"]
    assert {r[0]: num(r[2]) for r in rows[1:-1]} == latest.to_dict()
    assert "(sum)" not in text


# --- sensors -------------------------------------------------------------------------------------

def test_sensor_readings_drop_only_duplicates_and_the_impossible_humidity(workspace, files) -> None:
    raw = files["sensors.csv"]
    result, cleaned = clean(workspace, "sensors.csv")
    assert result["dropped_by_reason"] == {"duplicate": 2, "constraint: humidity <= 100": 1}
    expected = raw.drop_duplicates()
    expected = expected[expected["humidity"] <= 100]
    assert len(cleaned) == len(expected) and (cleaned["temperature_c"] < 0).sum() == (expected["temperature_c"] < 0).sum()

    report = call(workspace, "write_report", dataset=result["artifacts"]["dataset"], metric="temperature_c",
                  group_by="location", title="Sensors")
    text = Path(report["report"]).read_text()
    assert f"{len(expected):,} rows" in text
    t = expected["temperature_c"]
    assert f"mean {t.mean():,.2f}, median {t.median():,.2f}, range {t.min():,.2f} to {t.max():,.2f}" in text
    rows = table_rows(text, "location")
    means = expected.groupby("location")["temperature_c"]
    assert {r[0]: (num(r[1]), num(r[2])) for r in rows[1:-1]} == {
        k: (float(len(v)), round(v.mean(), 2)) for k, v in means}
    months = pd.to_datetime(expected["timestamp"]).dt.to_period("M")
    march, april = expected.groupby(months)["temperature_c"].mean().tolist()
    assert f"from {march:,.2f} (2024-03) to {april:,.2f} (2024-04), {april - march:+,.2f};" in text
    assert "(sum)" not in text and "total" not in text


# --- through the sequential graph ------------------------------------------------------------------

CASES = {  # file -> (group_by, metric)
    "weather.csv": ("station", "temperature_c"),
    "prices.csv": ("product", "price"),
    "inventory.csv": ("warehouse", "units_received"),
    "sensors.csv": ("location", "humidity"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_sequential_graph_reports_correct_numbers_on_each_file(name, workspace, files, script,
                                                                   invoke_config) -> None:
    from relaygraph.graphs.sequential import graph

    group_by, metric = CASES[name]
    clean_name = f"{Path(name).stem}_clean.parquet"
    script.play(("call", "profile_dataset", {"dataset": name}), ("final", "profiled"),
                ("call", "validate_dataset", {"dataset": name}), ("call", "clean_dataset", {"dataset": name}),
                ("final", "cleaned"),
                ("call", "aggregate", {"dataset": clean_name, "group_by": group_by, "metric": metric}),
                ("final", "analysed"),
                ("call", "write_report", {"dataset": clean_name, "group_by": group_by, "metric": metric}),
                ("final", "reported"))
    state = graph.invoke({"task": "Clean, analyse and report.", "data": name}, invoke_config)
    assert state["result"]["status"] == "completed" and not script.actions
    report = Path(state["result"]["artifacts"]["report"]).read_text()
    cleaned = pd.read_parquet(Path(state["result"]["artifacts"]["report"]).parent / clean_name)
    independent = files[name].drop_duplicates()
    if name == "sensors.csv":
        independent = independent[independent["humidity"] <= 100]
    if name == "weather.csv":
        independent = independent[independent["temperature_c"] != "12..5"].astype({"temperature_c": float})
    assert len(cleaned) == len(independent)
    assert f"{len(independent):,} rows" in report
    rows = table_rows(report, group_by)
    groups = independent.groupby(independent[group_by].fillna("(missing)"))[metric]
    if metric == "units_received":  # additive: sums, shares of the same total, a total row that matches
        assert rows[0][2] == "units_received (sum)"
        assert {r[0]: num(r[2]) for r in rows[1:-1]} == groups.sum().astype(float).to_dict()
        assert num(rows[-1][2]) == independent[metric].sum() and f"total {int(independent[metric].sum()):,}" in report  # a count, as an integer
    else:  # non-additive: means, never sums
        assert rows[0][2] == f"{metric} (mean)" and "(sum)" not in report
        assert {r[0]: num(r[2]) for r in rows[1:-1]} == groups.mean().round(2).to_dict()
    assert sum(num(r[1]) for r in rows[1:-1]) == len(independent)  # row counts match the data


# --- a temperature trend whose fitted slope and endpoints disagree --------------------------------

def test_a_temperature_trend_reports_the_direction_of_its_change_end_to_end(isolated_env, cast) -> None:
    """Daily readings from 2024-01-01 for 400 days: months warm up on the whole (positive slope) but
    February 2025 is colder than January 2024. The run says "down" with the change it reports."""
    from langgraph.checkpoint.memory import InMemorySaver
    from relaygraph.graphs.handoff import build_graph

    def answer_what_the_tool_said(brief):
        return ("final", "\n".join(f"{c.tool}: {c.summary}" for c in brief.calls.values()))

    cast.scripts.update({  # triage hands the question to the analyst, whose answer is its tool's own words
        "triage agent": [("call", "handoff_analytics", {"reason": "a trend question"}), ("final", "routed")],
        "sales analyst": [("call", "detect_trends", {"dataset": "weather.csv"}), answer_what_the_tool_said],
    })

    rng = np.random.default_rng(SEED + 4)
    days = pd.date_range("2024-01-01", periods=400, freq="D")
    month = np.asarray(days.to_period("M").astype(str))
    shape = {m: 5.0 + i for i, m in enumerate(sorted(set(month)))} | {"2024-01": 3.0, "2025-02": 1.0}
    temps = np.round([shape[m] for m in month] + rng.normal(0, 3, len(days)), 1)
    isolated_env["data"].mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "temperature_c": temps}).to_csv(
        isolated_env["data"] / "weather.csv", index=False)

    means = pd.Series(temps).groupby(month).mean()
    change = means.iloc[-1] - means.iloc[0]
    slope = np.polyfit(np.arange(len(means)), means.to_numpy(), 1)[0]
    assert change < 0 < slope  # the trap: a slope sign would say "up"

    graph = build_graph().compile(checkpointer=InMemorySaver())
    state = graph.invoke({"task": "What is the monthly temperature trend?", "data": "weather.csv"},
                         {"configurable": {"thread_id": "trend"}})
    line = next(x for x in state["result"]["answer"].splitlines() if x.startswith("detect_trends:"))
    assert "temperature_c (mean per month) went down" in line, line
    assert f"changed {change:+,.2f} from the first complete month 2024-01 ({means.iloc[0]:,.2f}) " \
           f"to the last 2025-02 ({means.iloc[-1]:,.2f})" in line, line
    assert " up" not in line and "%" not in line  # °C has no percentage change


# --- readings keyed only by an identifier (sensor_id, timestamp, reading) -----------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(thing=st.sampled_from(["sensor", "store", "ticker", "device", "station"]),
       groups=st.integers(2, 12), per_group=st.integers(2, 20), seed=st.integers(0, 1000))
def test_an_identifier_of_repeating_things_is_the_grouping_key_when_no_category_exists(
        thing, groups, per_group, seed) -> None:
    """A long table keyed by ``<thing>_id`` has a grouping key (the identifier), and the thing is
    never taken for a customer; a row identifier (all distinct) is never a grouping key."""
    from relaygraph.tools.analytics import find_customer_column
    from relaygraph.tools.roles import category_columns

    rng = np.random.default_rng(seed)
    n = groups * per_group
    frame = pd.DataFrame({
        "timestamp": pd.date_range("2024-01-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M"),
        f"{thing}_id": [f"{thing[:2]}{k}" for k in range(groups)] * per_group,
        "reading": rng.normal(50, 5, n).round(2)})
    assert category_columns(frame) == [f"{thing}_id"]
    assert find_customer_column(frame) is None
    rows = frame.assign(row_id=[f"r{k}" for k in range(n)])[["row_id", "reading"]]
    assert category_columns(rows) == []


def test_sensor_readings_aggregate_by_sensor_and_enrich_without_customers(workspace) -> None:
    workspace.data_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"sensor_id": ["sn0", "sn1", "sn2"] * 40,
                          "timestamp": pd.date_range("2024-01-01", periods=120, freq="6h").strftime("%Y-%m-%d %H:%M"),
                          "reading": rng.normal(50, 3, 120).round(2)})
    frame.to_csv(workspace.data_dir / "readings.csv", index=False)
    result = call(workspace, "aggregate", dataset="readings.csv")
    assert result["summary"].startswith("reading (mean) by sensor_id: 3 groups"), result["summary"]
    enriched = call(workspace, "enrich_dataset", dataset="readings.csv")
    assert "customer_orders" not in enriched["added_columns"], enriched["summary"]
