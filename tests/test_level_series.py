"""Levels in long tables (issue 10 §1): a total across series is each series' last known value.

A long file of stock per store, closes per ticker or balances per account holds one series per
entity. The total at a period is each entity's last reading in it, carried forward from an
earlier period when the entity has no row in this one — never the last row overall, nor only the
entities that happened to report on the period's last day. Property tests compare the tools with
a plain loop over each entity on generated frames; an end-to-end test runs the sequential graph
(scripted doubles) on a generated multi-store inventory file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import table_rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relaygraph.tools import Workspace, build_tools, result_of
from relaygraph.tools.measures import breakdown, overall, trend

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
START = pd.Timestamp("2024-01-01")


@st.composite
def long_levels(draw: st.DrawFn) -> tuple[pd.DataFrame, str, str]:
    """Readings of 1-4 entities on their own days (at least two each), rows shuffled, with a
    ``kind`` category that varies within an entity (it must not split a series)."""
    metric = draw(st.sampled_from(["stock_on_hand", "balance", "close"]))
    entity = draw(st.sampled_from(["store_id", "ticker", "account"]))
    rows = []
    for i in range(draw(st.integers(1, 4))):
        days = draw(st.lists(st.integers(0, 150), min_size=2, max_size=12, unique=True))
        for day in days:
            rows.append({"date": (START + pd.Timedelta(days=day)).strftime("%Y-%m-%d"), entity: f"E{i}",
                         "kind": draw(st.sampled_from(["x", "y"])),
                         metric: draw(st.floats(-1e4, 1e4, allow_nan=False).map(lambda v: round(v, 2)))})
    order = draw(st.permutations(range(len(rows))))
    return pd.DataFrame([rows[i] for i in order]), entity, metric


def last_known(frame: pd.DataFrame, entity: str, metric: str, until: pd.Timestamp) -> dict[str, tuple[float, bool]]:
    """Each entity's latest reading at or before ``until``: (value, read before the period start?)."""
    dates = pd.to_datetime(frame["date"])
    out = {}
    for name, part in frame[dates <= until].groupby(entity):
        latest = part.loc[pd.to_datetime(part["date"]).idxmax()]
        out[str(name)] = (float(latest[metric]), pd.Timestamp(latest["date"]))
    return out


@PROPERTY
@given(long_levels(), st.sampled_from(["week", "month", "quarter"]))
def test_a_level_total_per_period_is_the_sum_of_each_entitys_last_known_value(
        case: tuple[pd.DataFrame, str, str], period: str) -> None:
    frame, entity, metric = case
    combine = np.mean if metric == "close" else np.sum  # closes of tickers are averaged, stock and balances add
    result = trend(frame, "date", metric, period)
    assert result.rule == "last"
    dates = pd.to_datetime(frame["date"])
    freq = {"week": "W", "month": "M", "quarter": "Q"}[period]
    periods = sorted(dates.dt.to_period(freq).unique())
    expected, carried = {}, {}
    for p in periods:
        known = last_known(frame, entity, metric, p.end_time)
        expected[str(p)] = float(combine([value for value, _ in known.values()]))
        late = sum(1 for _, when in known.values() if when < p.start_time)
        if late:
            carried[str(p)] = late
    assert result.series.to_dict() == pytest.approx(expected)
    assert result.carried == carried
    several = frame[entity].nunique() > 1
    assert result.series_by == ([entity] if several else []) and "kind" not in result.series_by


@PROPERTY
@given(long_levels())
def test_the_latest_level_counts_every_entity_once_and_groups_add_up_to_it(case: tuple[pd.DataFrame, str, str]) -> None:
    frame, entity, metric = case
    dates = pd.to_datetime(frame["date"])
    known = last_known(frame, entity, metric, dates.max())
    firsts = frame.loc[dates.groupby(frame[entity]).idxmin(), metric]
    headline = overall(frame, metric)
    if metric == "close":
        assert headline["last"] == pytest.approx(np.mean([v for v, _ in known.values()]))
        assert headline["first"] == pytest.approx(firsts.mean())
    else:
        assert headline["last"] == pytest.approx(sum(v for v, _ in known.values()))
        assert headline["first"] == pytest.approx(firsts.sum())
        parts = breakdown(frame, entity, metric)  # per entity: its own last value; together the headline
        assert sum(g["last"] for g in parts.groups) == pytest.approx(headline["last"])
    if frame[entity].nunique() > 1:
        assert headline["last_carried_forward"] == sum(1 for _, when in known.values() if when < dates.max())


def test_a_store_that_did_not_report_this_month_still_counts_with_its_last_stock() -> None:
    frame = pd.DataFrame({"date": ["2024-01-31", "2024-01-30", "2024-02-29", "2024-03-31", "2024-03-15"],
                          "store": ["A", "B", "A", "A", "B"], "stock_on_hand": [10.0, 20.0, 11.0, 12.0, 25.0]})
    monthly = trend(frame, None, "stock_on_hand")
    # February: A read 11, B carried from January (20); the old rule said 11 (the last day's rows only)
    assert monthly.series.to_dict() == {"2024-01": 30.0, "2024-02": 31.0, "2024-03": 37.0}
    assert monthly.carried == {"2024-02": 1} and monthly.series_by == ["store"]
    headline = overall(frame, "stock_on_hand")
    assert (headline["last"], headline["last_carried_forward"]) == (37.0, 0 + 1)  # B's 25 from 03-15


def test_one_series_with_several_readings_per_day_keeps_the_old_rule() -> None:
    """No column names a series: rows at the period's last moment combine by the level's rule."""
    frame = pd.DataFrame({"date": ["2024-01-30", "2024-01-31", "2024-01-31", "2024-02-10"],
                          "balance": [5.0, 1.0, 2.0, 4.0]})
    assert trend(frame, None, "balance").series.to_dict() == {"2024-01": 3.0, "2024-02": 4.0}


# --- end to end: a generated multi-store inventory through the sequential graph ----------------

def store_inventory() -> pd.DataFrame:
    """Weekly stock counts of five stores; S-3 is closed in April (no counts) and S-5 opens in March."""
    rng = np.random.default_rng(7)
    weeks = pd.date_range("2024-01-05", "2024-05-31", freq="W-FRI")
    rows = []
    for store in ("S-1", "S-2", "S-3", "S-4", "S-5"):
        for week in weeks:
            if (store == "S-3" and week.month == 4) or (store == "S-5" and week < pd.Timestamp("2024-03-01")):
                continue
            day = week - pd.Timedelta(days=int(store[-1]) % 3)  # stores count on different weekdays
            rows.append({"count_date": day.strftime("%Y-%m-%d"), "store": store,
                         "region": "north" if store in ("S-1", "S-2") else "south",
                         "stock_level": float(rng.integers(200, 900))})
    return pd.DataFrame(rows)


def expected_month_ends(raw: pd.DataFrame) -> dict[str, float]:
    dates = pd.to_datetime(raw["count_date"])
    out = {}
    for p in sorted(dates.dt.to_period("M").unique()):
        upto = raw[dates <= p.end_time].assign(_d=dates)
        out[str(p)] = float(upto.sort_values("_d").groupby("store")["stock_level"].last().sum())
    return out


def test_the_sequential_graph_totals_store_stock_from_each_stores_last_count(workspace, script,
                                                                             invoke_config) -> None:
    from relaygraph.graphs.sequential import graph

    raw = store_inventory()
    workspace.data_dir.mkdir(parents=True, exist_ok=True)
    raw.to_csv(workspace.data_dir / "stores.csv", index=False)
    clean_name = "stores_clean.parquet"
    script.play(("call", "profile_dataset", {"dataset": "stores.csv"}), ("final", "profiled"),
                ("call", "clean_dataset", {"dataset": "stores.csv"}), ("final", "cleaned"),
                ("call", "detect_trends", {"dataset": clean_name, "metric": "stock_level"}),
                ("final", "analysed"),
                ("call", "write_report", {"dataset": clean_name, "group_by": "region", "metric": "stock_level"}),
                ("final", "reported"))
    state = graph.invoke({"task": "Report stock levels.", "data": "stores.csv"}, invoke_config)
    assert state["result"]["status"] == "completed" and not script.actions
    trends = next(s for s in state["steps"] if s["tool"] == "detect_trends")["facts"]
    expected = expected_month_ends(raw)
    assert trends["series"] == pytest.approx(expected) and trends["series_by"] == ["store"]
    assert trends["series_count"] == 5 and trends["carried_forward"] == {"2024-04": 1}  # S-3, labelled
    report = Path(state["result"]["artifacts"]["report"]).read_text()
    dates = pd.to_datetime(raw["count_date"])
    latest = raw.assign(_d=dates).sort_values("_d").groupby("store").last()
    assert f"latest {latest['stock_level'].sum():,.2f} ({dates.max():%Y-%m-%d})" in report
    assert "summed over 5 series (one per store)" in report
    rows = table_rows(report, "region")
    by_region = latest.groupby("region")["stock_level"].sum()
    assert {r[0]: float(r[2].replace(",", "")) for r in rows[1:-1]} == by_region.to_dict()
    first, last = list(expected)[0], list(expected)[-1]
    assert f"from {expected[first]:,.2f} ({first}) to {expected[last]:,.2f} ({last})" in report


def call(workspace: Workspace, name: str, **args: Any) -> dict[str, Any]:
    (tool,) = build_tools([name], workspace)
    result = result_of(tool(**args))
    return {**result.facts, "summary": result.summary}


def test_the_trend_tool_says_which_series_it_combined_and_what_it_carried(workspace) -> None:
    raw = store_inventory()
    workspace.data_dir.mkdir(parents=True, exist_ok=True)
    raw.to_csv(workspace.data_dir / "stores.csv", index=False)
    facts = call(workspace, "detect_trends", dataset="stores.csv", metric="stock_level", period="week")
    assert "each week summed over 5 series (one per store)" in facts["summary"]
    assert "carried forward from an earlier week" in facts["summary"]
    weeks = pd.date_range("2024-01-05", "2024-05-31", freq="W-FRI")
    skipped = {str(w.to_period("W")): 1 for w in weeks if w.month == 4}  # S-3 closed: carried, and said so
    assert facts["carried_forward"] == skipped
