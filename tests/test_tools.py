"""Data tools compute real results on real data, and stay inside their workspace."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from relaygraph.tools import (
    PathNotAllowed,
    ToolResult,
    Workspace,
    build_tools,
    frames,
    measures,
    result_of,
)
from relaygraph.tools.frames import sniff_separator, take_partition
from relaygraph.tools.sample import DEFECTS, generate
from smolagents.models import get_tool_json_schema


def call(workspace: Workspace, name: str, **args) -> dict:
    """A tool's typed result as one dict: its facts, with its summary and artifacts beside them."""
    (tool,) = build_tools([name], workspace)
    result = result_of(tool(**args))
    assert isinstance(result, ToolResult)
    return {**result.facts, "summary": result.summary, "artifacts": result.artifacts}


def test_sample_generation_is_reproducible() -> None:
    pd.testing.assert_frame_equal(generate(), generate())


def test_validate_finds_exactly_the_injected_defects(workspace, sample_path) -> None:
    report = call(workspace, "validate_dataset", dataset=sample_path.name)
    assert report["duplicate_rows"] == DEFECTS["duplicate_rows"] == 48
    assert report["duplicate_keys"] == DEFECTS["duplicate_rows"]
    assert report["nulls"]["region"] == DEFECTS["null_region"]
    assert report["nulls"]["unit_price"] == DEFECTS["null_unit_price"]
    assert report["nulls"]["customer_id"] == DEFECTS["null_customer_id"]
    assert report["out_of_range"]["quantity"] == DEFECTS["negative_quantity"]
    assert report["passed"] is False


def test_clean_removes_duplicates_and_bad_rows_and_unifies_spellings(workspace, sample_path) -> None:
    report = call(workspace, "clean_dataset", dataset=sample_path.name)
    raw = pd.read_csv(sample_path)
    assert report["duplicates_removed"] == 48
    assert report["out_of_range_removed"] == DEFECTS["negative_quantity"]
    assert report["normalised_values"]["region"] == DEFECTS["messy_region_spelling"]
    cleaned = pd.read_parquet(workspace.resolve_input(report["artifacts"]["dataset"]))
    assert len(cleaned) == len(raw) - 48 - DEFECTS["negative_quantity"] == report["rows_out"]
    assert sorted(cleaned["region"].dropna().unique()) == ["Central", "East", "North", "South", "West"]
    assert not cleaned.duplicated().any()


def test_aggregate_matches_an_independent_pandas_groupby(workspace, sample_path) -> None:
    cleaned = call(workspace, "clean_dataset", dataset=sample_path.name)["artifacts"]["dataset"]
    report = call(workspace, "aggregate", dataset=cleaned, group_by="channel", metric="revenue")
    expected = pd.read_parquet(workspace.resolve_input(cleaned)).groupby("channel")["revenue"].sum()
    got = {g["group"]: g["sum"] for g in report["groups"]}
    assert got == pytest.approx(expected.round(2).to_dict())
    assert report["groups"][0]["group"] == expected.idxmax()


def test_trend_detection_sees_the_generated_growth(workspace, sample_path) -> None:
    cleaned = call(workspace, "clean_dataset", dataset=sample_path.name)["artifacts"]["dataset"]
    report = call(workspace, "detect_trends", dataset=cleaned, metric="quantity", period="quarter")
    assert report["direction"] == "up"
    assert len(report["series"]) == 6  # 2024Q1 .. 2025Q2


def test_outlier_detection_flags_every_injected_quantity_outlier(workspace, sample_path) -> None:
    frame = generate()
    injected = frame["quantity"].nlargest(DEFECTS["quantity_outliers"]).min()
    report = call(workspace, "detect_outliers", dataset=sample_path.name, column="quantity")
    flagged = report["outliers"]["quantity"]
    quantity = frame["quantity"].dropna()
    q1, q3 = quantity.quantile(0.25), quantity.quantile(0.75)
    beyond = (quantity < q1 - 1.5 * (q3 - q1)) | (quantity > q3 + 1.5 * (q3 - q1))  # Tukey's fences
    assert injected > q3 + 1.5 * (q3 - q1)  # every injected outlier lies beyond the upper fence ...
    assert flagged["count"] == int(beyond.sum())  # ... and the tool flags exactly the values beyond
    assert flagged["examples"] == quantity.nlargest(5).tolist()  # the most extreme: injected ones


def test_report_writes_markdown_and_png_with_numbers_from_the_data(workspace, sample_path) -> None:
    cleaned = call(workspace, "clean_dataset", dataset=sample_path.name)["artifacts"]["dataset"]
    report = call(workspace, "write_report", dataset=cleaned, title="Sales", notes="- a note")
    frame = pd.read_parquet(workspace.resolve_input(cleaned))
    text = Path(report["report"]).read_text()
    assert f"{len(frame):,} rows" in text
    assert f"total {frame['revenue'].sum():,.2f}" in text
    assert "- a note" in text
    assert Path(report["chart"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd", "../out/../../secret.csv"])
def test_tools_refuse_paths_outside_the_workspace(workspace, sample_path, path) -> None:
    (tool,) = build_tools(["profile_dataset"], workspace)
    with pytest.raises(PathNotAllowed):
        tool(dataset=path)


def test_tools_refuse_non_data_files_and_explain_missing_ones(workspace, sample_path) -> None:
    (workspace.data_dir / "notes.txt").write_text("hello")
    (tool,) = build_tools(["profile_dataset"], workspace)
    with pytest.raises(PathNotAllowed, match="not a CSV or Parquet"):
        tool(dataset="notes.txt")
    with pytest.raises(FileNotFoundError, match="available: sample_sales.csv"):
        tool(dataset="missing.csv")


def test_output_paths_cannot_escape_the_run_folder(workspace) -> None:
    with pytest.raises(PathNotAllowed):
        workspace.resolve_output("../elsewhere.parquet")
    with pytest.raises(PathNotAllowed):
        workspace.resolve_output("/tmp/x.parquet")


def test_tools_work_on_any_user_csv(workspace) -> None:
    workspace.data_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"city": ["Oslo", "Lima", "Oslo", "Lima", "Oslo"],
                  "when": ["2025-01-03", "2025-02-04", "2025-03-05", "2025-03-06", "2025-04-07"],
                  "amount": [10.0, 20.0, 30.0, 5.0, 50.0]}).to_csv(workspace.data_dir / "mine.csv", index=False)
    report = call(workspace, "aggregate", dataset="mine.csv")
    assert (report["group_by"], report["metric"]) == ("city", "amount")
    assert {g["group"]: g["sum"] for g in report["groups"]} == {"Oslo": 90.0, "Lima": 25.0}
    trend = call(workspace, "detect_trends", dataset="mine.csv")
    assert trend["series"] == {"2025-01": 10.0, "2025-02": 20.0, "2025-03": 35.0, "2025-04": 50.0}


def test_wrong_column_errors_list_the_real_columns(workspace, sample_path) -> None:
    (tool,) = build_tools(["aggregate"], workspace)
    with pytest.raises(ValueError, match="columns are: order_id"):
        tool(dataset=sample_path.name, group_by="nope")


def test_constraints_become_json_schema_enums(workspace, sample_path) -> None:
    (tool,) = build_tools(["aggregate"], workspace, {"dataset": ["sample_sales.csv"], "columns": ["region", "revenue"]})
    params = get_tool_json_schema(tool)["function"]["parameters"]["properties"]
    assert params["dataset"]["enum"] == ["sample_sales.csv"]
    assert params["group_by"]["enum"] == ["region", "revenue"]
    (fresh,) = build_tools(["aggregate"], workspace)
    assert "enum" not in fresh.inputs["group_by"]  # constraints never leak between runs


def test_partitions_are_disjoint_and_cover_every_row() -> None:
    frame = pd.DataFrame({"x": range(103)})
    parts = [take_partition(frame, f"{k}/4") for k in range(1, 5)]
    assert sum(len(p) for p in parts) == 103
    assert pd.concat(parts)["x"].tolist() == list(range(103))
    with pytest.raises(ValueError, match="k/n"):
        take_partition(frame, "two of four")


def test_concurrent_first_runs_all_get_the_whole_sample(tmp_path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from relaygraph.tools.sample import ensure_sample

    with ThreadPoolExecutor(6) as pool:
        paths = list(pool.map(lambda _: ensure_sample(tmp_path / "d"), range(6)))
    assert len(set(paths)) == 1
    assert len(pd.read_csv(paths[0])) == len(generate())
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["sample_sales.csv"]  # no temp left


def test_a_tool_returns_a_typed_result_and_the_model_reads_a_bounded_rendering(workspace, sample_path) -> None:
    (tool,) = build_tools(["clean_dataset"], workspace, observation_chars=200)
    output = tool(dataset=sample_path.name, sanitize_inputs_outputs=True)  # as smolagents calls it
    result = result_of(output)
    assert isinstance(output, str) and isinstance(result, ToolResult)
    assert result.artifacts == {"dataset": "sample_sales_clean.parquet", "source_dataset": "sample_sales.csv"}
    assert result.facts["duplicates_removed"] == 48 and "summary" not in result.facts
    text = str(output)
    assert text.startswith(result.summary + "\nartifacts: ")  # summary, then what later steps need
    assert len(text) < len(result.render(10_000)) and text.endswith("chars]")  # cut, and says so
    assert len(text.split("… [truncated")[0]) == 200


@st.composite
def sales_frames(draw) -> pd.DataFrame:
    """Small sales tables: a category, a date and a measure (text that may hold a comma)."""
    n = draw(st.integers(min_value=3, max_value=40))
    region = st.sampled_from(["North", "South", "East, inner", "West"])
    return pd.DataFrame({
        "region": draw(st.lists(region, min_size=n, max_size=n)),
        "order_date": [f"2024-{m:02d}-01"  # two periods at least: a trend needs them
                       for m in [1, 12, *draw(st.lists(st.integers(1, 12), min_size=n - 2, max_size=n - 2))]],
        "revenue": draw(st.lists(st.floats(0, 1e6, allow_nan=False).map(lambda v: round(v, 2)),
                                 min_size=n, max_size=n)),
    })


@settings(max_examples=25, deadline=None)
@given(frame=sales_frames(), sep=st.sampled_from([";", "\t", "|"]))
def test_a_semicolon_tab_or_pipe_csv_gives_the_same_figures_as_the_comma_version(frame, sep) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Workspace(Path(tmp) / "data", Path(tmp) / "out", "sep-run")
        workspace.data_dir.mkdir(parents=True)
        frame.to_csv(workspace.data_dir / "comma.csv", index=False)
        frame.to_csv(workspace.data_dir / "other.csv", index=False, sep=sep)
        assert sniff_separator(workspace.data_dir / "other.csv") == sep
        for tool, args in (("aggregate", {"group_by": "region", "metric": "revenue"}), ("validate_dataset", {}),
                           ("detect_trends", {})):
            comma, other = (call(workspace, tool, dataset=name, **args) for name in ("comma.csv", "other.csv"))
            strip = ("summary", "artifacts", "dataset")
            assert {k: v for k, v in other.items() if k not in strip} == \
                   {k: v for k, v in comma.items() if k not in strip}


def test_the_report_says_when_the_users_file_was_not_comma_separated(workspace, sample_path) -> None:
    pd.read_csv(sample_path).to_csv(workspace.data_dir / "semi.csv", index=False, sep=";")
    semi = call(workspace, "write_report", dataset="semi.csv")
    assert "read as semicolon-separated CSV" in Path(semi["report"]).read_text()
    comma = call(workspace, "write_report", dataset=sample_path.name)  # the same report path, rewritten
    assert "read as" not in Path(comma["report"]).read_text()
    assert semi["total"] == comma["total"]
    parted = call(workspace, "write_report", dataset="semi.csv", partitions=2)  # read per partition, never whole
    assert parted["total"] == pytest.approx(comma["total"])


def _decimal_comma(value: float, grouped: bool) -> str:
    """``value`` as a European export writes it: ``1234,5`` or, grouped, ``1.234,50``."""
    text = f"{value:,.2f}" if grouped else f"{value:.2f}"
    return text.replace(",", "_").replace(".", ",").replace("_", ".")


@settings(max_examples=25, deadline=None)
@given(frame=sales_frames(), grouped=st.booleans(),
       units=st.lists(st.integers(0, 10**7), min_size=40, max_size=40))
def test_a_semicolon_csv_with_decimal_commas_gives_the_same_figures_as_the_comma_version(frame, grouped,
                                                                                        units) -> None:
    """``1,5`` and ``1.234,56`` are numbers, not labels: the same aggregate, validation and trend
    figures as the comma/period file (labels holding a comma and ISO dates read as before)."""
    frame = frame.assign(units=units[:len(frame)])
    european = frame.assign(revenue=[_decimal_comma(v, grouped) for v in frame["revenue"]],
                            units=[f"{u:,}".replace(",", ".") if grouped else str(u) for u in frame["units"]])
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Workspace(Path(tmp) / "data", Path(tmp) / "out", "dec-run")
        workspace.data_dir.mkdir(parents=True)
        frame.to_csv(workspace.data_dir / "comma.csv", index=False)
        european.to_csv(workspace.data_dir / "euro.csv", index=False, sep=";")
        options = frames.csv_options(workspace.data_dir / "euro.csv")
        assert options["decimal"] == ","
        for tool, args in (("aggregate", {"group_by": "region", "metric": "revenue"}),
                           ("aggregate", {"group_by": "region", "metric": "units"}), ("validate_dataset", {}),
                           ("detect_trends", {})):
            comma, euro = (call(workspace, tool, dataset=name, **args) for name in ("comma.csv", "euro.csv"))
            strip = ("summary", "artifacts", "dataset")
            assert {k: v for k, v in euro.items() if k not in strip} == \
                   {k: v for k, v in comma.items() if k not in strip}


@settings(max_examples=30, deadline=None)
@given(frame=sales_frames(), partitions=st.integers(1, 5), chunk=st.integers(1, 7))
def test_a_partition_of_a_decimal_comma_csv_is_the_same_rows_of_the_whole_read(frame, partitions, chunk) -> None:
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        data = Path(tmp) / "data"
        data.mkdir()
        frame.assign(revenue=[_decimal_comma(v, True) for v in frame["revenue"]]).to_csv(
            data / "euro.csv", index=False, sep=";")
        patch.setattr(frames, "COUNT_CHUNK_ROWS", chunk)
        workspace = Workspace(data, Path(tmp) / "out", "p")
        whole, _ = frames.load(workspace, "euro.csv")
        assert whole["revenue"].tolist() == pytest.approx(frame["revenue"].tolist())
        for k in range(1, partitions + 1):
            part, _ = frames.load(workspace, "euro.csv", f"{k}/{partitions}")
            pd.testing.assert_frame_equal(part, take_partition(whole, f"{k}/{partitions}"))


def test_labels_and_dates_are_not_mangled_by_decimal_comma_reading(workspace) -> None:
    """Only numbers in the decimal-comma shape are read as numbers: quoted labels holding commas,
    a ``1,2,3`` code, ISO and dotted dates and text stay as written; ``1.5``-style decimals in the
    same file keep commas off (they would turn to text); thousands are never guessed where a
    dotted value (``1.5``, ``05.01.2024``) would be misread."""
    workspace.data_dir.mkdir(parents=True, exist_ok=True)
    path = workspace.data_dir / "labels.csv"
    path.write_text('name;code;when;day;revenue\n"Smith, John";1,2,3;2024-01-05;05.01.2024;1,5\n'
                    '"Doe, Jane";4,5,6;2024-02-05;06.01.2024;1.234,5\n')
    options = frames.csv_options(path)  # the dotted dates rule thousands="." out: revenue is converted on its own
    assert {k: v for k, v in options.items() if k != "converters"} == {"sep": ";", "decimal": ","}
    assert list(options["converters"]) == ["revenue"]
    frame, _ = frames.load(workspace, "labels.csv")
    assert frame["revenue"].tolist() == [1.5, 1234.5]
    assert frame["name"].tolist() == ["Smith, John", "Doe, Jane"]
    assert frame["code"].tolist() == ["1,2,3", "4,5,6"]
    assert frame["when"].tolist() == ["2024-01-05", "2024-02-05"] and frame["day"].tolist() == ["05.01.2024", "06.01.2024"]
    mixed = workspace.data_dir / "mixed.csv"
    mixed.write_text("name;share;ratio\nx;1,5;1.5\ny;2,5;2.25\n")
    assert frames.csv_options(mixed) == {"sep": ";"}
    assert frames.load(workspace, "mixed.csv")[0]["ratio"].tolist() == [1.5, 2.25]
    thousands = workspace.data_dir / "thousands.csv"
    thousands.write_text("name;units\nx;1.234\ny;2.345\n")  # no decimal comma anywhere: 1.234 is a decimal
    assert frames.csv_options(thousands) == {"sep": ";"}
    assert frames.load(workspace, "thousands.csv")[0]["units"].tolist() == [1.234, 2.345]
    quoted = workspace.data_dir / "quoted.csv"
    quoted.write_text('name,revenue\nx,"1,5"\n')  # comma-separated: a comma is never the decimal mark
    assert frames.csv_options(quoted) == {"sep": ","}


def test_the_report_says_when_the_users_file_had_decimal_commas(workspace, sample_path) -> None:
    raw = pd.read_csv(sample_path)
    raw.to_csv(workspace.data_dir / "euro.csv", index=False, sep=";", decimal=",")
    euro = call(workspace, "write_report", dataset="euro.csv")
    assert "read as semicolon-separated CSV with decimal commas" in Path(euro["report"]).read_text()
    assert euro["total"] == pytest.approx(call(workspace, "write_report", dataset=sample_path.name)["total"])


_CELLS = {  # column kind -> the values a cell of it may hold (None: an empty cell)
    "ints": st.one_of(st.none(), st.integers(-10**6, 10**6)),
    "floats": st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False).map(lambda x: round(x, 3))),
    "text": st.one_of(st.none(), st.sampled_from(["a", "b,c", 'say "hi"', "two\nlines", "x\r\ny", " pad "])),
    "flags": st.one_of(st.none(), st.booleans()),
    "codes": st.one_of(st.none(), st.integers(0, 9), st.sampled_from(["A1", "n/a"])),  # numbers and text mixed
    "yes_no": st.one_of(st.none(), st.booleans(), st.integers(0, 1)),  # flags and numbers mixed
}


@st.composite
def _tables(draw: st.DrawFn) -> pd.DataFrame:
    rows = draw(st.integers(1, 25))
    kinds = draw(st.lists(st.sampled_from(sorted(_CELLS)), min_size=1, max_size=4))
    return pd.DataFrame({f"{kind}_{i}": draw(st.lists(_CELLS[kind], min_size=rows, max_size=rows))
                         for i, kind in enumerate(kinds)}).astype(object)


@settings(max_examples=60)
@given(table=_tables(), partitions=st.integers(1, 6), chunk=st.integers(1, 7), suffix=st.sampled_from(["csv", "parquet"]))
def test_a_partition_loads_as_the_same_rows_of_the_whole_file(table, partitions, chunk, suffix) -> None:
    """Nulls, quoted separators and newlines, numbers and text in one column, a null only in some
    other partition: each partition read alone equals its slice of the whole file's load — values,
    dtypes and index — with the CSV scanned in chunks of ``chunk`` rows."""
    from relaygraph.tools import frames

    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        data = Path(tmp) / "data"
        data.mkdir()
        if suffix == "csv":
            table.to_csv(data / "t.csv", index=False)
        else:
            typed = pd.read_csv(_csv_copy(table, Path(tmp)), low_memory=False)  # the types a CSV read infers
            typed.to_parquet(data / "t.parquet", index=False, row_group_size=chunk)
        patch.setattr(frames, "COUNT_CHUNK_ROWS", chunk)
        workspace = Workspace(data, Path(tmp) / "out", "p")
        whole, _ = frames.load(workspace, f"t.{suffix}")
        for k in range(1, partitions + 1):
            part, _ = frames.load(workspace, f"t.{suffix}", f"{k}/{partitions}")
            pd.testing.assert_frame_equal(part, take_partition(whole, f"{k}/{partitions}"))


def _csv_copy(table: pd.DataFrame, where: Path) -> Path:
    path = where / "copy.csv"
    table.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_a_partition_is_read_without_the_whole_file(suffix, monkeypatch, tmp_path) -> None:
    """The whole-file reader is never called for a partition, and no read holds more rows than a
    scan chunk (CSV) or a row group (Parquet)."""
    from relaygraph.tools import frames

    data = tmp_path / "data"
    data.mkdir()
    frame = pd.DataFrame({"region": ["north", "south", None, "east"] * 50, "units": range(200)})
    (frame.to_csv(data / "x.csv", index=False) if suffix == "csv"
     else frame.to_parquet(data / "x.parquet", index=False, row_group_size=40))
    whole, _ = frames.load(Workspace(data, tmp_path / "one", "p"), f"x.{suffix}")
    held: list[int] = []
    read_csv = pd.read_csv

    def spied_csv(*args, **kwargs):
        found = read_csv(*args, **kwargs)
        if isinstance(found, pd.DataFrame):
            held.append(len(found))
            return found
        return (held.append(len(chunk)) or chunk for chunk in found)

    monkeypatch.setattr(frames, "COUNT_CHUNK_ROWS", 40)
    monkeypatch.setattr(frames.pd, "read_csv", spied_csv)
    monkeypatch.setattr(frames, "read_frame", lambda path: pytest.fail("the whole file was read"))
    monkeypatch.setattr(frames.pd, "read_parquet", lambda *a, **k: pytest.fail("the whole file was read"))
    part, _ = frames.load(Workspace(data, tmp_path / "out", "p"), f"x.{suffix}", "3/4")
    monkeypatch.undo()
    pd.testing.assert_frame_equal(part, take_partition(whole, "3/4"))
    assert all(rows <= 1000 for rows in held), held  # the file check's head is 1,000 rows; the file is 200
    assert suffix == "parquet" or held and max(held[1:] or [0]) <= 50, held  # chunks and the 50-row partition


def _written(day: int, month: int, style: str) -> str:
    """A 2024 date as ``style`` writes it: iso, dotted (``dd.mm.yyyy``), dmy or mdy (with ``/``)."""
    return {"iso": f"2024-{month:02d}-{day:02d}", "dotted": f"{day:02d}.{month:02d}.2024",
            "dmy": f"{day:02d}/{month:02d}/2024", "mdy": f"{month:02d}/{day:02d}/2024"}[style]


@st.composite
def dated_sales(draw) -> tuple[pd.DataFrame, list[tuple[int, int]]]:
    """A sales table with (day, month) dates over two months at least, one day > 12 (so a
    ``dd/mm/yyyy`` column tells its order), and a measure up to a million."""
    frame = draw(sales_frames())
    days = [draw(st.integers(13, 28)), *draw(st.lists(st.integers(1, 28), min_size=len(frame) - 1,
                                                           max_size=len(frame) - 1))]
    months = [int(d[5:7]) for d in frame["order_date"]]
    return frame, list(zip(days, months, strict=True))


@settings(max_examples=25, deadline=None)
@given(sales=dated_sales(), grouped=st.booleans(), style=st.sampled_from(["dotted", "dmy"]))
def test_a_european_csv_gives_the_same_aggregate_and_trend_as_the_iso_version(sales, grouped, style) -> None:
    """``;``, decimal commas (``.`` thousands or not) and day-first dates (``31.12.2024``, or
    ``31/12/2024`` where some day is > 12) read as the same numbers and months as the ISO file:
    dotted dates must not keep ``1.234,56`` amounts as text, nor a day <= 12 be read as a month."""
    frame, dates = sales
    iso = frame.assign(order_date=[_written(d, m, "iso") for d, m in dates])
    european = iso.assign(order_date=[_written(d, m, style) for d, m in dates],
                          revenue=[_decimal_comma(v, grouped) for v in frame["revenue"]])
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Workspace(Path(tmp) / "data", Path(tmp) / "out", "euro-run")
        workspace.data_dir.mkdir(parents=True)
        iso.to_csv(workspace.data_dir / "iso.csv", index=False)
        european.to_csv(workspace.data_dir / "euro.csv", index=False, sep=";")
        for tool, args in (("aggregate", {"group_by": "region", "metric": "revenue"}),
                           ("detect_trends", {"metric": "revenue"})):
            ours, theirs = (call(workspace, tool, dataset=name, **args) for name in ("iso.csv", "euro.csv"))
            strip = ("summary", "artifacts", "dataset")
            assert {k: v for k, v in theirs.items() if k not in strip} == \
                   {k: v for k, v in ours.items() if k not in strip}


def test_a_month_first_file_with_days_over_12_is_read_month_first(workspace) -> None:
    workspace.data_dir.mkdir(parents=True, exist_ok=True)
    rows = [(3, 1, 10.0), (20, 1, 5.0), (2, 3, 7.0), (4, 5, 1.0)]  # (day, month, revenue)
    for style in ("iso", "mdy"):
        pd.DataFrame({"order_date": [_written(d, m, style) for d, m, _ in rows],
                      "revenue": [r for *_, r in rows]}).to_csv(workspace.data_dir / f"{style}.csv", index=False)
    assert frames.date_order(pd.Series([_written(d, m, "mdy") for d, m, _ in rows])) == "month_first"
    iso, mdy = (call(workspace, "detect_trends", dataset=f"{s}.csv", metric="revenue") for s in ("iso", "mdy"))
    assert mdy["series"] == iso["series"] and mdy["series"]["2024-01"] == 15.0
    assert mdy["date_note"] is None


def test_an_ambiguous_date_column_is_read_month_first_and_the_report_says_so(workspace) -> None:
    """No value > 12 in either field: nothing tells ``03/01/2024`` apart, so it reads as March
    (as before) — but never silently: the trend and the report say how the dates were read."""
    workspace.data_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"order_date": ["01/02/2024", "03/01/2024", "03/05/2024", "06/02/2024"],
                  "region": ["a", "b", "a", "b"], "revenue": [1.0, 2.0, 4.0, 8.0]}).to_csv(
        workspace.data_dir / "amb.csv", index=False)
    trend = call(workspace, "detect_trends", dataset="amb.csv", metric="revenue")
    assert {k: v for k, v in trend["series"].items() if v} == {"2024-01": 1.0, "2024-03": 6.0, "2024-06": 8.0}
    assert trend["date_note"] == "dates in 'order_date' read as month/day; no value tells day/month apart"
    report = Path(call(workspace, "write_report", dataset="amb.csv")["report"]).read_text()
    assert "read as month/day; no value tells day/month apart" in report
    pd.DataFrame({"order_date": ["2024-01-02", "2024-03-01"], "revenue": [1.0, 2.0]}).to_csv(
        workspace.data_dir / "iso.csv", index=False)
    assert "month/day" not in Path(call(workspace, "write_report", dataset="iso.csv")["report"]).read_text()


def test_each_date_column_is_read_in_the_order_its_values_tell() -> None:
    order = frames.date_order
    assert order(pd.Series(["03.01.2025", "04.01.2025", None])) == "day_first"
    assert order(pd.Series(["03/01/2025", "13/01/2025"])) == "day_first"
    assert order(pd.Series(["01/03/2025", "01/13/2025"])) == "month_first"
    assert order(pd.Series(["01/03/2025", "02/04/2025"])) == "ambiguous"
    assert order(pd.Series(["2025-01-03", "2025-01-13"])) == "other"
    assert frames.parse_dates(pd.Series(["03.01.2025", "13.01.2025"])).dt.month.tolist() == [1, 1]
    assert frames.parse_dates(pd.Series(["03/01/2025", "13/01/2025", ""])).dt.month.tolist()[:2] == [1, 1]


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
@pytest.mark.parametrize("decided", [True, False])
def test_every_partition_reads_dates_in_the_order_the_whole_file_tells(suffix, decided) -> None:
    """A ``dd/mm/yyyy`` file whose only day > 12 lies in its last partition: every partition reads
    it day first (a partition alone would read it month first), so the partitions' trend months
    add up to the whole file's; the month/day note appears only when the whole file is ambiguous."""
    partitions = 3
    days = [i % 12 + 1 for i in range(12)]
    months = [(i * 5) % 12 + 1 for i in range(12)]
    if decided:
        days[-1] = 20  # the last row: in the last partition only
    revenue = [(i * 37) % 101 for i in range(12)]
    frame = pd.DataFrame({"order_date": [_written(d, m, "dmy") for d, m in zip(days, months, strict=True)],
                          "revenue": [float(r) for r in revenue]})
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Workspace(Path(tmp) / "data", Path(tmp) / "out", "dates-run")
        workspace.data_dir.mkdir(parents=True)
        path = workspace.data_dir / f"d.{suffix}"
        if suffix == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False, row_group_size=7)
        whole = measures.trend(frames.load(workspace, path.name)[0], "order_date", "revenue")
        parts = [measures.trend(frames.load(workspace, path.name, f"{k}/{partitions}")[0], "order_date", "revenue")
                 for k in range(1, partitions + 1)]
        source = frames.open_rows(workspace, path.name)  # the per-partition report's reader
        read_parts = [measures.trend(source.read(lo, hi), "order_date", "revenue")
                      for lo, hi in (frames.partition_bounds(f"{k}/{partitions}", source.rows)
                                     for k in range(1, partitions + 1))]
    note = "dates in 'order_date' read as month/day; no value tells day/month apart"
    assert whole.date_note == (None if decided else note)
    assert all(part.date_note == whole.date_note for part in parts + read_parts)
    read: dict[str, float] = {}  # month -> revenue, as the file's order reads it
    for d, m, r in zip(days, months, revenue, strict=True):
        month = f"2024-{m:02d}" if decided else f"2024-{d:02d}"
        read[month] = read.get(month, 0.0) + r
    assert {k: v for k, v in whole.series.items() if v} == {k: v for k, v in read.items() if v}
    for pieces in (parts, read_parts):
        added: dict[str, float] = {}
        for part in pieces:
            for month, value in part.series.items():
                added[month] = added.get(month, 0.0) + value
        assert {k: v for k, v in added.items() if v} == {k: v for k, v in read.items() if v}


def test_a_frame_not_read_from_a_file_decides_its_dates_from_its_own_values() -> None:
    """Only a frame read from a file carries the file's order; a slice of it keeps it, any other
    frame's column decides from its values."""
    frame = pd.DataFrame({"d": ["03/01/2025", "04/01/2025", "13/01/2025"]})
    assert frames.date_order(frame["d"].iloc[:2]) == "ambiguous"
    decided = frames.with_date_orders(frame.copy(), {"d": "day_first"})
    assert frames.parse_dates(decided.iloc[:2]["d"]).dt.month.tolist() == [1, 1]
    assert frames.date_order_note(decided.iloc[:2]["d"], "d") is None


def test_dotted_dates_do_not_leave_grouped_amounts_as_text(workspace) -> None:
    """``03.01.2025`` forbids ``thousands="."`` for the file, yet ``1.087,20`` in another column is
    still a number, in every read (whole, partitions, head); an empty amount is missing."""
    workspace.data_dir.mkdir(parents=True, exist_ok=True)
    path = workspace.data_dir / "euro.csv"
    path.write_text("order_date;store;amount;units\n03.01.2025;Graz;1.087,20;9\n13.01.2025;Gent;625,12;16\n"
                    "04.02.2025;Graz;;3\n05.02.2025;Gent;2.000,00;4\n")
    whole, _ = frames.load(workspace, "euro.csv")
    assert whole["amount"].tolist()[:2] == [1087.2, 625.12] and pd.isna(whole["amount"][2])
    assert whole["units"].tolist() == [9, 16, 3, 4]
    parts = pd.concat([frames.load(workspace, "euro.csv", f"{k}/2")[0] for k in (1, 2)])
    pd.testing.assert_series_equal(parts["amount"], whole["amount"])
    rows = frames.open_rows(workspace, "euro.csv")
    assert rows.read(0, 4, text=["amount", "store"])["amount"].tolist()[:2] == [1087.2, 625.12]
    trend = call(workspace, "detect_trends", dataset="euro.csv", metric="amount")
    assert trend["series"] == {"2025-01": 1712.32, "2025-02": 2000.0}
