"""Partitioned figures (tools/combine.py): computed per partition, combined, equal to one pass.

The property: for any frame and any partition count, the figures combined from the partitions
(sums and counts added, means weighted by counts, extremes compared, level endpoints by moment,
medians and quartiles recomputed over the gathered values) equal what one pass over the whole
frame computes (:mod:`relaygraph.tools.measures`) — never a mean of the partitions' means.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relaygraph.tools import Workspace, combine
from relaygraph.tools.frames import take_partition
from relaygraph.tools.measures import breakdown, outlier_mask, overall
from relaygraph.tools.report import render_report

PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: additive, non-additive, and levels (stock sums across series, a close averages them)
METRICS = ("amount", "quantity", "temperature_c", "unit_price", "stock_on_hand", "close")


def same(a: Any, b: Any) -> bool:
    """Equal, floats up to summation order (partition sums add up in another order than one pass)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-9, abs=1e-6)
    return a == b


def assert_same_stats(combined: dict[str, Any], whole: dict[str, Any]) -> None:
    assert set(combined) == set(whole)
    for key, value in whole.items():
        assert same(combined[key], value), (key, combined[key], value)


@st.composite
def frames(draw: st.DrawFn) -> tuple[pd.DataFrame, str, int]:
    metric = draw(st.sampled_from(METRICS))
    n = draw(st.integers(1, 50))
    values = draw(st.lists(st.one_of(st.floats(-1e5, 1e5), st.integers(-50, 50).map(float), st.just(math.nan)),
                           min_size=n, max_size=n))
    keys = draw(st.lists(st.sampled_from(["north", "south", "east", "(missing)", None]), min_size=n, max_size=n))
    data: dict[str, Any] = {"region": pd.Series(keys, dtype=object), metric: values}
    if draw(st.booleans()):  # a long table: a level is then per series (its latest reading each), summed
        data["store"] = draw(st.lists(st.sampled_from(["s1", "s2", "s3"]), min_size=n, max_size=n))
    if draw(st.booleans()):  # dated (a level is then ordered by its dates, ties included), or not
        days = draw(st.lists(st.integers(0, 90), min_size=n, max_size=n))
        data["date"] = (pd.Timestamp("2024-01-01") + pd.to_timedelta(days, "D")).strftime("%Y-%m-%d")
    partitions = draw(st.integers(1, 8))
    return pd.DataFrame(data), metric, partitions


@PROPERTY
@given(frames())
def test_figures_combined_from_partitions_equal_the_whole_data_figures(case: tuple[pd.DataFrame, str, int]) -> None:
    frame, metric, partitions = case
    whole = breakdown(frame, "region", metric)
    combined = combine.breakdown(frame, "region", metric, partitions)
    assert combined.role == whole.role and combined.missing_rows == whole.missing_rows
    assert_same_stats(combined.overall, whole.overall)
    assert_same_stats(combine.overall(frame, metric, partitions), overall(frame, metric))
    assert {g["group"] for g in combined.groups} == {g["group"] for g in whole.groups}
    by_name = {g["group"]: g for g in combined.groups}
    for group in whole.groups:
        assert_same_stats(by_name[group["group"]], group)
    values = frame[metric].dropna()
    found = combine.outliers(frame[metric], partitions)
    assert found["count"] == int(outlier_mask(values, "iqr").sum())
    assert same(found["max"], float(values.max()) if len(values) else None)
    assert same(found["median"], float(values.median()) if len(values) else None)


@PROPERTY
@given(frames())
def test_figures_fed_one_partition_at_a_time_equal_the_whole_data_figures(case: tuple[pd.DataFrame, str, int]) -> None:
    """What a report of a file too large for one pass computes (:class:`combine.Accumulator`, fed
    the slices one by one with the column choices made up front) is the whole data's figures."""
    frame, metric, partitions = case
    whole = breakdown(frame, "region", metric)
    fed = combine.Accumulator(combine.choose(frame, metric, "region"))
    for lo, hi in combine.bounds(len(frame), partitions):
        fed.add(frame.iloc[lo:hi])
    combined = fed.breakdown()
    assert combined is not None and combined.missing_rows == whole.missing_rows
    assert_same_stats(fed.overall(), overall(frame, metric))
    assert [g["group"] for g in combined.groups] == [g["group"] for g in whole.groups]
    for mine, theirs in zip(combined.groups, whole.groups, strict=True):
        assert_same_stats(mine, theirs)
    assert fed.outliers() == combine.outliers(frame[metric], partitions)


@PROPERTY
@given(frames())
def test_the_partitions_are_the_slices_the_analysts_ran_on(case: tuple[pd.DataFrame, str, int]) -> None:
    """The combination adds up the very slices ``partition="k/n"`` gives each analyst."""
    frame, _, partitions = case
    slices = [frame.iloc[lo:hi] for lo, hi in combine.bounds(len(frame), partitions)]
    for k, part in enumerate(slices, 1):
        pd.testing.assert_frame_equal(part, take_partition(frame, f"{k}/{partitions}"))


def test_a_mean_is_weighted_by_counts_never_a_mean_of_partition_means() -> None:
    # partition 1: one price of 10; partition 2: three prices of 2 -> the mean is 4, not (10 + 2) / 2
    frame = pd.DataFrame({"region": ["a", "a", "a", "a"], "unit_price": [10.0, 2.0, 2.0, 2.0]})
    result = combine.breakdown(frame, "region", "unit_price", 4)
    assert result.overall["mean"] == 4.0 and result.groups[0]["mean"] == 4.0
    assert result.overall["median"] == 2.0  # recomputed over the gathered values


def test_a_partitioned_report_says_so_and_holds_the_whole_data_figures() -> None:
    frame = pd.DataFrame({"region": ["north", "south", "north", None, "east", "south"] * 5,
                          "amount": [float(v) for v in range(30)]})
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "data", Path(tmp) / "out", "p")
        one = render_report(frame, workspace=ws, source="x.csv", title="t", group_by="region", metric="amount")
        one_text = Path(one["report"]).read_text()
        parted = render_report(frame, workspace=ws, source="x.csv", title="t", group_by="region", metric="amount",
                               partitions=3)
        parted_text = Path(parted["report"]).read_text()
    assert parted["partitions"] == 3 and "partitions" not in one
    assert "Computed from 3 partitions of the rows" in parted_text and "partitions" not in one_text
    # the same figures line for line, apart from the line that says how they were computed
    (said,) = [line for line in parted_text.splitlines() if line.startswith("Computed from")]
    assert "means weighted by their value counts" in said and "medians" in said
    assert parted_text.replace(said + "\n\n", "") == one_text


def test_a_partitioned_report_leaves_the_trend_out_saying_why() -> None:
    frame = pd.DataFrame({"region": ["north", "south"] * 30, "amount": [float(v) for v in range(60)],
                          "order_date": pd.date_range("2024-01-01", periods=60, freq="7D").strftime("%Y-%m-%d")})
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "data", Path(tmp) / "out", "p")
        one = Path(render_report(frame, workspace=ws, source="x.csv", title="t")["report"]).read_text()
        facts = render_report(frame, workspace=ws, source="x.csv", title="t", partitions=2)
        parted = Path(facts["report"]).read_text()
    assert "## Trend" in one
    assert "## Trend" not in parted and facts["sections_left_out"] == ["trend"]
    assert "Not in this report: trend (a monthly trend is not combined from partitions" in parted


# --- write_report of a partitioned run reads the file one partition at a time ----------------------


def _long_table(rows: int = 6_000) -> pd.DataFrame:
    """Orders with a nullable region, and a level (stock per warehouse) read by dates."""
    import numpy as np

    rng = np.random.default_rng(7)
    return pd.DataFrame({
        "order_date": pd.date_range("2024-01-01", periods=rows, freq="6h").strftime("%Y-%m-%d"),
        "warehouse": rng.choice(["w1", "w2", "w3"], rows),
        "region": rng.choice(["north", "south", "east", None], rows),
        "amount": rng.integers(1, 100, rows).astype(float),
        "unit_price": rng.normal(10, 2, rows).round(2),
        "stock_on_hand": rng.integers(0, 500, rows),
    })


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
@pytest.mark.parametrize("metric", ["amount", "unit_price", "stock_on_hand"])
def test_write_report_of_a_partitioned_run_never_loads_the_whole_file(suffix, metric, monkeypatch) -> None:
    """Every read of the data file holds at most one partition's rows (the row count is taken one
    column at a time; the file check before it reads a fixed head of 1,000 rows), the whole-file
    reader is never called, and the report is the one the partitions of the whole frame give,
    figure for figure."""
    import numpy as np
    from relaygraph.tools import frames
    from relaygraph.tools.data import WriteReportTool

    frame, partitions = _long_table(), 4
    largest = math.ceil(len(frame) / partitions)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        (frame.to_csv(data / "x.csv", index=False) if suffix == "csv"
         else frame.to_parquet(data / "x.parquet", index=False, row_group_size=500))
        whole = render_report(frames.read_frame(data / f"x.{suffix}"),
                              workspace=Workspace(data, Path(tmp) / "one", "p"), source="x", title="Data report",
                              metric=metric, group_by="region", partitions=partitions)

        held: list[tuple[int, int]] = []  # (rows, columns) of every frame, chunk or row group read
        read_csv = pd.read_csv

        def spied_csv(*args, **kwargs):
            found = read_csv(*args, **kwargs)
            if isinstance(found, pd.DataFrame):
                held.append(found.shape)
                return found
            return (held.append(chunk.shape) or chunk for chunk in found)  # chunked: each chunk

        import pyarrow.parquet as pq

        read_row_group = pq.ParquetFile.read_row_group
        monkeypatch.setattr(frames.pd, "read_csv", spied_csv)
        def spied_row_group(self, *args, **kwargs):
            table = read_row_group(self, *args, **kwargs)
            held.append(table.shape)
            return table

        monkeypatch.setattr(pq.ParquetFile, "read_row_group", spied_row_group)
        monkeypatch.setattr(pq.ParquetFile, "read", lambda *a, **k: pytest.fail("the whole Parquet file was read"))
        monkeypatch.setattr(frames.pd, "read_parquet", lambda *a, **k: pytest.fail("the whole file was read"))
        monkeypatch.setattr(frames, "read_frame", lambda path: pytest.fail("the whole file was read"))
        streamed = WriteReportTool(Workspace(data, Path(tmp) / "out", "p")).forward(
            dataset=f"x.{suffix}", metric=metric, group_by="region", partitions=partitions).model_dump()
        monkeypatch.undo()
        assert held and all(rows <= largest or columns == 1 for rows, columns in held), held
        assert Path(streamed["facts"]["report"]).read_text().replace(f"Source: `x.{suffix}`", "Source: `x`") \
            == Path(whole["report"]).read_text()
    assert streamed["facts"]["rows"] == len(frame) and np.isfinite(whole["overall"]["mean"])
