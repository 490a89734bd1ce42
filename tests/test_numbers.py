"""Correct numbers on any tabular data (issue 10 §1).

Property tests on generated frames prove the invariants — grouped totals equal the column
total, cleaning drops no row that breaks no rule, nothing sums a non-additive column, the
Markdown stays valid for any column name — and end-to-end runs on realistic non-sales files
(weather, prices, inventory levels, sensor readings) check every reported number against an
independent pandas computation, through the tools and through the sequential graph.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import num, table_rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.pandas import column, data_frames, range_indexes
from markdown_it import MarkdownIt
from relaygraph.tools import Workspace, build_tools
from relaygraph.tools import markdown as md
from relaygraph.tools.cleaning import clean_frame, parse_constraints
from relaygraph.tools.measures import MISSING, STATS, breakdown, trend
from relaygraph.tools.report import render_report
from relaygraph.tools.roles import role_of

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REPORTS = settings(PROPERTY, max_examples=20)  # each example renders a report and a chart


# --- roles --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "role"), [
    ("revenue", "additive"), ("quantity", "additive"), ("unitsSold", "additive"), ("precipitation_mm", "additive"),
    ("Total Cost", "additive"), ("unit_price", "non_additive"), ("unitPrice", "non_additive"),
    ("price", "non_additive"), ("avg_revenue", "non_additive"), ("temperature_c", "non_additive"),
    ("humidity", "non_additive"), ("conversion_rate", "non_additive"), ("discount", "non_additive"),
    ("balance", "level"), ("stock_on_hand", "level"), ("close", "level"), ("stock_price", "level"),
    ("order_id", "identifier"), ("sensor_id", "identifier"), ("year", "time"), ("mystery", "non_additive"),
])
def test_numeric_roles_follow_the_column_meaning(name: str, role: str) -> None:
    # dated readings: a level is a level only where a time column orders it (else mean/median)
    frame = pd.DataFrame({name: [1.0, 2.0, 3.0, 2024.0], "day": pd.date_range("2024-01-01", periods=4)})
    assert role_of(frame, name).role == role


def test_level_roles_say_how_rows_at_one_moment_combine() -> None:
    frame = pd.DataFrame({"balance": [1.0], "close": [2.0], "stock_on_hand": [3.0], "temperature": [-1.0],
                          "day": pd.to_datetime(["2024-01-01"])})
    assert role_of(frame, "balance").across == "sum"
    assert role_of(frame, "stock_on_hand").across == "sum"
    assert role_of(frame, "close").across == "mean"
    assert role_of(frame, "temperature").interval  # no percentage changes of temperatures


# --- property: grouped totals ---------------------------------------------------------------------

KEYS = st.sampled_from(["north", "south", "east", None])
AMOUNTS = st.one_of(st.floats(min_value=-1e6, max_value=1e6), st.just(math.nan))


@PROPERTY
@given(data_frames([column("region", elements=KEYS, dtype=object), column("amount", elements=AMOUNTS, dtype=float)],
                   index=range_indexes(min_size=1, max_size=40)))
def test_grouped_totals_equal_the_column_total_and_shares_use_it(frame: pd.DataFrame) -> None:
    result = breakdown(frame, "region", "amount")
    total = frame["amount"].sum()
    assert result.total == pytest.approx(total, abs=1e-6)
    assert sum(g["sum"] for g in result.groups) == pytest.approx(total, abs=1e-6)
    assert sum(g["rows"] for g in result.groups) == len(frame)
    assert (MISSING in {g["group"] for g in result.groups}) == frame["region"].isna().any()
    missing = next((g for g in result.groups if g["group"] == MISSING), None)
    if missing:
        assert missing["rows"] == frame["region"].isna().sum() == result.missing_rows
    sums = [g["sum"] for g in result.groups]
    mixed = any(v > 0 for v in sums) and any(v < 0 for v in sums)
    assert result.mixed_signs == mixed
    for g in result.groups:  # shares only where they are parts of a whole (no group pulls the other way)
        assert g["share"] == (pytest.approx(g["sum"] / total) if total and not mixed else None)
        if g["share"] is not None:
            assert 0 <= g["share"] <= 1 + 1e-9


@REPORTS
@given(data_frames([column("region", elements=KEYS, dtype=object), column("amount", elements=AMOUNTS, dtype=float)],
                   index=range_indexes(min_size=2, max_size=40)))
def test_the_report_breakdown_reconciles_with_its_headline(frame: pd.DataFrame) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "data", Path(tmp) / "out", "p")
        facts = render_report(frame, workspace=ws, source="x.csv", title="t", group_by="region", metric="amount")
        text = Path(facts["report"]).read_text()
    rows = table_rows(text, "region")
    header, groups, all_rows = rows[0], rows[1:-1], rows[-1]
    assert header == ["region", "rows", "amount (sum)", "amount (mean)", "share of amount (sum)"]
    assert all_rows[0] == "(all rows)" and num(all_rows[1]) == len(frame) == sum(num(r[1]) for r in groups)
    assert num(all_rows[2]) == pytest.approx(round(frame["amount"].sum(), 2), abs=0.01)
    assert sum(num(r[2]) for r in groups) == pytest.approx(num(all_rows[2]), abs=0.01 * len(groups))
    total = frame["amount"].sum()
    whole = frame["amount"].notna().any() and (frame["amount"].dropna() % 1 == 0).all()
    assert f"total {md.number(int(round(total)) if whole else total)}" in text  # counts print as integers
    sums = frame.groupby(frame["region"].fillna("~"))["amount"].sum()
    mixed = (sums > 0).any() and (sums < 0).any()
    no_total = round(frame["amount"].sum(), 12) == 0
    assert all((r[4] == "n/a") == bool(mixed or no_total) for r in groups)  # no 138% or -69% share of a net total
    assert ("Shares: n/a — no shares: the groups have mixed signs" in text) == bool(mixed)


@PROPERTY
@given(st.lists(st.tuples(st.integers(0, 400), st.one_of(st.floats(-1e5, 1e5), st.just(math.nan))),
                min_size=2, max_size=60),
       st.sampled_from(["day", "week", "month", "quarter", "year"]))
def test_an_additive_trend_is_per_period_sums_that_add_up_to_the_total(rows: list[tuple[int, float]],
                                                                      period: str) -> None:
    days, values = zip(*rows, strict=True)
    frame = pd.DataFrame({"date": (pd.Timestamp("2024-01-01") + pd.to_timedelta(list(days), "D")).strftime("%Y-%m-%d"),
                          "amount": list(values)})
    result = trend(frame, "date", "amount", period)
    assert result.rule == "sum"
    assert result.series.sum() == pytest.approx(frame["amount"].sum(), abs=1e-6)
    code = {"day": "D", "week": "W", "month": "M", "quarter": "Q", "year": "Y"}[period]
    expected = frame.groupby(pd.to_datetime(frame["date"]).dt.to_period(code))["amount"].sum()
    assert result.series.tolist() == pytest.approx(expected.tolist(), abs=1e-6)
    assert set(result.partial) <= {result.series.index[0], result.series.index[-1]}
    if result.compared:  # the change is measured between the periods it names
        first, last = result.compared
        assert result.change == pytest.approx(result.series[last] - result.series[first], abs=1e-6)
        assert first not in result.partial and last not in result.partial


@PROPERTY
@given(st.lists(st.tuples(st.integers(0, 400), st.one_of(st.floats(-1e4, 1e4), st.just(math.nan))),
                min_size=2, max_size=60),
       st.sampled_from(["temperature_c", "price", "amount"]),
       st.sampled_from(["week", "month", "quarter"]))
def test_a_trend_direction_is_the_sign_of_its_reported_change(rows: list[tuple[int, float]], metric: str,
                                                              period: str) -> None:
    """"trends up: changed -1.42" was the slope's sign beside the endpoints' change: never again."""
    days, values = zip(*rows, strict=True)
    dates = pd.Timestamp("2024-01-01") + pd.to_timedelta(list(days), "D")
    frame = pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), metric: list(values)})
    result = trend(frame, "date", metric, period)
    code = {"week": "W", "month": "M", "quarter": "Q"}[period]
    buckets = pd.to_datetime(frame["date"]).dt.to_period(code).astype(str)
    rule = "sum" if metric == "amount" else "mean"  # the role's rule, chosen here from the column's meaning
    per_period = frame.groupby(buckets)[metric].agg(rule)
    if rule == "mean":  # nothing partial to skip for a mean: the first and last periods with a value
        per_period = per_period.dropna()
        assert result.compared == ((per_period.index[0], per_period.index[-1]) if len(per_period) >= 2 else None)
    if result.compared is None:
        assert result.direction == "unknown" and result.change is None
        return
    first, last = result.compared
    delta = per_period[last] - per_period[first]
    assert result.change == pytest.approx(delta, abs=1e-6)
    assert (result.first_value, result.last_value) == pytest.approx((per_period[first], per_period[last]), abs=1e-6)
    if abs(delta) > 1e-6:
        assert result.direction == ("up" if delta > 0 else "down")
    assert result.direction == ("up" if result.change > 0 else "down" if result.change < 0 else "flat")


# --- property: cleaning -------------------------------------------------------------------------

#: Columns whose negatives are legitimate, and columns with a rule by meaning.
FREE = ("temperature_c", "profit", "balance", "net_change")
RULES = (("quantity", ">=", 0.0), ("price", ">=", 0.0), ("humidity", ">=", 0.0), ("humidity", "<=", 100.0))
RULED = tuple(dict.fromkeys(col for col, _, _ in RULES))


def breaks(frame: pd.DataFrame, col: str, op: str, bound: float) -> pd.Series:
    values = frame[col]
    return values.notna() & ((values < bound) if op == ">=" else (values > bound))


@st.composite
def mixed_frames(draw: st.DrawFn) -> pd.DataFrame:
    names = draw(st.lists(st.sampled_from(FREE + tuple(RULED)), min_size=1, max_size=4, unique=True))
    small = st.one_of(st.integers(-3, 3).map(float), st.floats(-50, 150, allow_nan=False), st.just(math.nan))
    frame = draw(data_frames([column(n, elements=small, dtype=float) for n in names],
                             index=range_indexes(min_size=1, max_size=60)))
    return frame


@PROPERTY
@given(mixed_frames())
def test_cleaning_never_drops_a_row_that_breaks_no_rule(frame: pd.DataFrame) -> None:
    cleaned = clean_frame(frame)
    duplicate = frame.duplicated()
    breaks_a_rule = pd.Series(False, index=frame.index)
    for col, op, bound in RULES:
        if col in frame:
            breaks_a_rule |= breaks(frame, col, op, bound)
    dropped = frame.index.difference(cleaned.kept)
    assert (duplicate | breaks_a_rule)[dropped].all()  # only duplicates and rule breakers go ...
    assert set(frame.index[~duplicate & ~breaks_a_rule]) <= set(cleaned.kept)  # ... every other row stays
    assert cleaned.dropped.get("duplicate", 0) == duplicate.sum()
    assert sum(cleaned.dropped.values()) == len(dropped) == cleaned.rows_in - cleaned.rows_out  # all counted
    assert set(cleaned.dropped) <= {"duplicate"} | {f"constraint: {c}" for c in cleaned.constraints}
    pd.testing.assert_frame_equal(cleaned.frame, frame.loc[cleaned.kept].reset_index(drop=True))


@PROPERTY
@given(mixed_frames(), st.lists(st.sampled_from(["12.5", "abc", None, "7"]), min_size=1, max_size=60))
def test_validation_counts_as_invalid_rows_exactly_the_rows_cleaning_drops(frame: pd.DataFrame, text: list) -> None:
    """The consensus question ``invalid_rows`` is answered in rows, not rows + nulls + cells: the
    validator's ``invalid_rows`` is the number of rows the cleaner drops."""
    from relaygraph.tools.cleaning import unparseable
    from relaygraph.tools.data import invalid_row_mask

    frame = frame.assign(reading=pd.Series((text * 60)[:len(frame)], index=frame.index, dtype=object))
    parsed = frame.assign(**{c: values for c, (values, _) in unparseable(frame).items()})
    cleaned = clean_frame(frame)
    assert int(invalid_row_mask(frame, parsed).sum()) == cleaned.rows_in - cleaned.rows_out


@PROPERTY
@given(mixed_frames())
def test_an_implied_rule_applies_only_while_its_breaches_are_rare(frame: pd.DataFrame) -> None:
    cleaned = clean_frame(frame)
    unique = frame[~frame.duplicated()]
    for col, op, bound in RULES:
        if col not in frame:
            continue
        rule = f"{col} {op} {bound:g}"
        breaches = breaks(unique, col, op, bound).sum()
        enforced = rule in {str(c) for c in cleaned.constraints}
        assert enforced == (breaches <= 0.05 * unique[col].notna().sum())
        assert enforced != (rule in cleaned.not_applied)  # a rule not applied is reported, with why


def test_declared_constraints_drop_rows_and_say_which_rule() -> None:
    frame = pd.DataFrame({"temperature_c": [-5.0, 3.0, 60.0, 12.0], "site": list("abcd")})
    cleaned = clean_frame(frame, parse_constraints("temperature_c <= 50", frame.columns))
    assert cleaned.dropped == {"constraint: temperature_c <= 50": 1}
    assert cleaned.frame["temperature_c"].tolist() == [-5.0, 3.0, 12.0]
    with pytest.raises(ValueError, match="unknown column 'nope'"):
        parse_constraints("nope >= 0", frame.columns)
    with pytest.raises(ValueError, match="must look like"):
        parse_constraints("temperature_c is positive", frame.columns)


def test_unparseable_numbers_are_dropped_and_missing_markers_become_nulls() -> None:
    values = [str(v) for v in range(40)] + ["12..5", "n/a", "unknown"]
    frame = pd.DataFrame({"reading": values, "n": range(43)})
    cleaned = clean_frame(frame)
    assert cleaned.dropped == {"unparseable: reading": 1}
    assert cleaned.nulls_from_markers == {"reading": 2}
    assert cleaned.frame["reading"].isna().sum() == 2 and cleaned.rows_out == 42
    assert pd.api.types.is_float_dtype(cleaned.frame["reading"])


# --- property: never sum what is not additive --------------------------------------------------

NOT_ADDITIVE = ("temperature_c", "unit_price", "humidity", "balance", "stock_on_hand", "close", "conversion_rate",
                "sensor_reading", "x1")


@st.composite
def dated_frames(draw: st.DrawFn) -> tuple[pd.DataFrame, str]:
    metric = draw(st.sampled_from(NOT_ADDITIVE))
    n = draw(st.integers(2, 40))
    days = draw(st.lists(st.integers(0, 120), min_size=n, max_size=n))
    values = draw(st.lists(st.one_of(st.floats(-1e4, 1e4), st.just(math.nan)), min_size=n, max_size=n))
    keys = draw(st.lists(st.sampled_from(["a", "b", None]), min_size=n, max_size=n))
    frame = pd.DataFrame({"date": (pd.Timestamp("2024-01-01") + pd.to_timedelta(days, "D")).strftime("%Y-%m-%d"),
                          "site": pd.Series(keys, dtype=object), metric: values})
    return frame, metric


@REPORTS
@given(dated_frames())
def test_aggregation_never_sums_a_non_additive_column(case: tuple[pd.DataFrame, str]) -> None:
    frame, metric = case
    role = role_of(frame, metric)
    assert role.role in ("non_additive", "level")
    result = breakdown(frame, "site", metric)
    assert "sum" not in result.overall and result.total is None
    assert all("sum" not in g and "share" not in g for g in result.groups)
    monthly = trend(frame, "date", metric, "month")
    assert monthly.rule in ("mean", "last")
    dates = pd.to_datetime(frame["date"])
    if role.role == "non_additive":  # a period's value is the mean of its values, not a sum
        expected = frame[metric].groupby(dates.dt.to_period("M")).mean().dropna()
        assert monthly.series.tolist() == pytest.approx(expected.tolist())
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "data", Path(tmp) / "out", "p")
        facts = render_report(frame, workspace=ws, source="x.csv", title="t", group_by="site", metric=metric)
        text = Path(facts["report"]).read_text()
    assert "(sum)" not in text and "total" not in facts


# --- property: Markdown stays valid ---------------------------------------------------------------

NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12).filter(
    lambda s: s.strip() != "")


def flat(text: str) -> str:
    return " ".join(text.split())


@REPORTS
@given(st.lists(NAMES, min_size=2, max_size=2, unique_by=flat),
       st.lists(NAMES, min_size=2, max_size=3, unique_by=flat))
def test_markdown_stays_valid_for_any_column_name_and_value(names: list[str], values: list[str]) -> None:
    key, metric = names[0], f"{names[1]} amount"
    frame = pd.DataFrame({key: pd.Series((values * 4)[:8], dtype=object), metric: [float(i) for i in range(8)]})
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "data", Path(tmp) / "out", "p")
        facts = render_report(frame, workspace=ws, source=f"`{key}`.csv", title=key, group_by=key, metric=metric)
        text = Path(facts["report"]).read_text()
    rows = table_rows(text, flat(key))
    role = role_of(frame, metric).role  # a random name may carry a hint ("avg", "balance"): its role decides
    expected = [flat(key), "rows", *(f"{flat(metric)} ({stat})" for stat in STATS[role])]
    assert rows[0] == expected + ([f"share of {flat(metric)} (sum)"] if role == "additive" else [])
    assert all(len(r) == len(rows[0]) for r in rows)  # no name or value split or merged a cell
    assert {r[0] for r in rows[1:-1]} == {flat(v) for v in values}
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    title = tokens[1]
    assert "".join(c.content for c in title.children if c.type == "text") == flat(key)  # no emphasis, no code
    assert not any(t.type in ("em_open", "strong_open", "code_inline") for t in title.children)


@pytest.mark.parametrize(("count", "expected"), [(0, "0 rows"), (1, "1 row"), (2, "2 rows"), (1234, "1,234 rows")])
def test_plurals(count: int, expected: str) -> None:
    assert md.plural(count, "row") == expected


def test_a_one_row_report_says_row_not_rows(workspace) -> None:
    frame = pd.DataFrame({"city": ["Oslo"], "amount": [3.0]})
    facts = render_report(frame, workspace=workspace, source="one.csv", title="One", metric="amount")
    text = Path(facts["report"]).read_text()
    assert "— 1 row, 2 columns." in text and "0 rows have" in text and "(sum over 1 value)" in text


def test_an_empty_frame_is_refused_not_reported_as_zeros(workspace) -> None:
    workspace.data_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"region": ["a", "b"], "amount": [1.0, 2.0]}).to_csv(workspace.data_dir / "two.csv", index=False)
    (tool,) = build_tools(["aggregate"], workspace)
    with pytest.raises(ValueError, match="no rows to aggregate"):
        tool(dataset="two.csv", partition="1/3")  # the first of three slices of two rows is empty
    with pytest.raises(ValueError, match="nothing to report"):
        render_report(pd.DataFrame({"amount": []}), workspace=workspace, source="e.csv", title="t")


def test_a_level_without_a_time_column_is_reported_by_mean_and_median_not_row_order(tmp_path):
    """Stock per sku and warehouse, no date: 'latest/first/change' would just be row order."""
    from relaygraph.tools.report import render_report
    from relaygraph.tools.roles import role_of
    from relaygraph.tools.workspace import Workspace

    frame = pd.DataFrame({"sku": [f"S{i}" for i in range(8)], "warehouse": ["A", "B"] * 4,
                          "stock": [158.0, 120, 90, 200, 175, 60, 130, 160], "unit_cost": [2.5] * 8})
    role = role_of(frame, "stock")
    assert role.role == "non_additive" and "no time column" in role.reason
    workspace = Workspace(tmp_path / "data", tmp_path / "out", "inv")
    report = render_report(frame, workspace=workspace, source="inventory.csv", title="Inventory", metric="stock",
                           group_by="warehouse")
    text = open(report["report"], encoding="utf-8").read()
    import re

    assert not re.search(r"(latest|first) [\d(]|change [+-]|\| (last|first|change)", text), text
    assert "mean 136.62, median 144.00" in text and "no time column" in text
    dated = frame.assign(day=pd.date_range("2024-01-01", periods=8, freq="D"))
    assert role_of(dated, "stock").role == "level"  # with a time order, a level keeps latest/first/change


@settings(max_examples=60, deadline=None)
@given(st.lists(NAMES, min_size=1, max_size=4))
def test_agent_notes_in_a_report_render_literally_whatever_column_names_they_quote(names: list[str]) -> None:
    """The agent's notes quote column names (``net*sales``, ``qty|units``): each note stays one
    bullet whose rendered text is the note itself — no emphasis, no code span, nothing eaten."""
    notes = "\n".join(f"- aggregate: {n} (sum) by region: 3 groups" for n in names)
    frame = pd.DataFrame({"region": ["a", "b", "c", "a"], "amount": [1.0, 2.0, 3.0, 4.0]})
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "data", Path(tmp) / "out", "p")
        facts = render_report(frame, workspace=ws, source="n.csv", title="Notes", metric="amount", notes=notes)
        text = Path(facts["report"]).read_text()
    tokens = MarkdownIt("commonmark").enable("table").parse(text.split("## Agent notes", 1)[1])
    items = [t for t in tokens if t.type == "inline"]
    assert ["".join(c.content for c in t.children if c.type in ("text", "softbreak")) for t in items] == [
        f"aggregate: {flat(n)} (sum) by region: 3 groups" for n in names]
    assert not any(c.type in ("em_open", "strong_open", "code_inline", "html_inline")
                   for t in items for c in t.children)
    assert sum(1 for t in tokens if t.type == "list_item_open") == len(names)


@PROPERTY
@given(st.lists(st.one_of(st.integers(-10_000, 10_000), st.none()), min_size=1, max_size=30))
def test_whole_number_measures_sum_to_integers_and_print_without_decimals(counts: list) -> None:
    """Counts are shown as counts: ``976``, never ``976.00`` — in one pass and combined from partitions."""
    from relaygraph.tools.combine import breakdown as partitioned

    frame = pd.DataFrame({"region": (["a", "b", "c"] * 30)[:len(counts)],
                          "order_count": pd.Series(counts, dtype="float")})  # a gap makes pandas read floats
    for result in (breakdown(frame, "region", "order_count"), partitioned(frame, "region", "order_count", 3)):
        if frame["order_count"].notna().any():
            assert isinstance(result.total, int) and result.total == int(frame["order_count"].sum())
            assert all(isinstance(g["sum"], int) for g in result.groups if g["values"])
            assert md.number(result.total) == f"{int(frame['order_count'].sum()):,}"
    assert md.number(np.int64(976)) == "976" and md.number(976.5) == "976.50"
