"""Bad input is one clear line and exit 2 before any work (issue 10, §4): data files and the
checkpoint database URL."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from relaygraph.cli.main import app
from relaygraph.tools import DataFileError, Workspace, check_data_file
from relaygraph.tools.frames import load
from typer.testing import CliRunner

cli = CliRunner()

#: file name -> (bytes, what the one line must say)
BAD_FILES: dict[str, tuple[bytes, str]] = {
    "empty.csv": (b"", "is empty (0 bytes)"),
    "blank.csv": (b"\n  \n\n", "is empty (only blank lines)"),
    "header.csv": (b"city,temp_c\n", "has a header (city, temp_c) but no data rows"),
    "binary.csv": (bytes(range(256)) * 4, "is binary, not CSV text (a NUL byte at offset 0)"),
    "sheet.csv": (b"PK\x03\x04\x14\x00\x06\x00rest-of-a-workbook", "a zip archive (an Excel .xlsx workbook?)"),
    "latin1.csv": ("city,temp_c\nZürich,4\n".encode("latin-1"), "is not UTF-8 text: byte 0xfc at offset 13 (line 2)"),
    "utf16.csv": ("city,temp_c\nOslo,1\n".encode("utf-16"), "is UTF-16 text"),
    "ragged.csv": (b"a,b\n1,2\n3,4,5\n", "cannot be parsed as CSV"),
    "corrupt.parquet": (b"PAR1 not really parquet", "is not a readable Parquet file"),
}


def write_bad(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "in" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(BAD_FILES[name][0])
    return path


def assert_no_work_done(isolated_env: dict[str, Path]) -> None:
    """No checkpoint database, no run folder: the run was refused before it started."""
    assert not isolated_env["db"].exists()
    assert not isolated_env["out"].exists() or not any(isolated_env["out"].iterdir())


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_data_file_is_one_line_naming_it_and_exit_2_before_any_work(tmp_path, isolated_env, name) -> None:
    path = write_bad(tmp_path, name)
    result = cli.invoke(app, ["run", "sequential", "--data", str(path), "--thread-id", "bad-data"])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in result.output
    assert str(path) in line and BAD_FILES[name][1] in line
    assert_no_work_done(isolated_env)


def test_an_empty_parquet_file_is_refused(tmp_path, isolated_env) -> None:
    path = tmp_path / "none.parquet"
    pd.DataFrame({"city": pd.Series([], dtype=str), "temp_c": pd.Series([], dtype=float)}).to_parquet(path)
    result = cli.invoke(app, ["run", "sequential", "--data", str(path)])
    assert result.exit_code == 2
    assert f"Data file {path} has columns but no rows" in result.stderr
    assert_no_work_done(isolated_env)


def test_a_bad_file_named_by_input_or_param_inside_the_data_dir_is_refused_too(isolated_env, tmp_path) -> None:
    isolated_env["data"].mkdir(parents=True)
    (isolated_env["data"] / "header.csv").write_bytes(BAD_FILES["header.csv"][0])
    spec = tmp_path / "input.json"
    spec.write_text('{"task": "Analyse.", "data": "header.csv"}')
    for args in (["--input", str(spec)], ["--param", "dataset=header.csv"]):
        result = cli.invoke(app, ["run", "sequential", *args])
        assert result.exit_code == 2, result.output
        assert "header.csv has a header (city, temp_c) but no data rows" in result.stderr
    assert_no_work_done(isolated_env)


def test_good_files_pass_the_check(tmp_path) -> None:
    csv = tmp_path / "ok.csv"
    csv.write_text("\ufeffcity,temp_c\nZürich,-4.5\n", encoding="utf-8")  # BOM, non-ASCII, negative
    parquet = tmp_path / "ok.parquet"
    pd.DataFrame({"city": ["Oslo"], "temp_c": [-9.0]}).to_parquet(parquet)
    check_data_file(csv)
    check_data_file(parquet)


@pytest.mark.parametrize("name", ["empty.csv", "header.csv", "binary.csv", "latin1.csv", "corrupt.parquet"])
def test_python_loader_raises_a_typed_error_naming_the_file(isolated_env, name) -> None:
    isolated_env["data"].mkdir(parents=True)
    (isolated_env["data"] / name).write_bytes(BAD_FILES[name][0])
    workspace = Workspace(isolated_env["data"], isolated_env["out"], "py")
    with pytest.raises(DataFileError, match=name):
        load(workspace, name)
    with pytest.raises(DataFileError, match=name):
        check_data_file(isolated_env["data"] / name)


def test_sqlite_url_in_a_missing_folder_is_exit_2_naming_the_folder_and_creates_nothing(tmp_path) -> None:
    folder = tmp_path / "no" / "such"
    result = cli.invoke(app, ["run", "sequential", "--checkpoint-db", f"sqlite:///{folder}/runs.db"])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    assert f"folder {folder} does not exist; create it (mkdir -p {folder})" in line
    assert not (tmp_path / "no").exists()


def test_the_default_database_in_an_existing_folder_is_created(tmp_path, monkeypatch) -> None:
    """The documented default (``sqlite:///relaygraph.db`` in the working directory) needs no
    folder to be created; the file itself is created on first use."""
    monkeypatch.delenv("RELAYGRAPH_CHECKPOINT_DB")
    monkeypatch.chdir(tmp_path)
    result = cli.invoke(app, ["threads"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "relaygraph.db").is_file()


# --- what each graph offers: relaygraph graphs [--json], run --help (§5) ---------------------


def test_graphs_json_lists_description_params_and_approvable_nodes() -> None:
    result = cli.invoke(app, ["graphs", "--json"])
    assert result.exit_code == 0, result.output
    graphs = {g["name"]: g for g in json.loads(result.stdout)}
    assert set(graphs) == {"auction", "consensus", "handoff", "hierarchical", "negotiation", "parallel",
                           "planned", "sequential"}
    for info in graphs.values():
        assert info["description"] and info["approvable_nodes"]
        assert {"model", "max_steps", "max_retries"} <= set(info["params"])
    sequential = graphs["sequential"]
    assert {"extract", "clean", "analyze", "report", "finalize"} == set(sequential["approvable_nodes"])
    assert sequential["params"]["max_steps"] | {"description": ""} == {
        "type": "int", "default": None, "accepts": "int from 1 to 100", "description": "", "common": True,
        "minimum": 1, "maximum": 100}
    parallel = graphs["parallel"]["params"]
    assert parallel["partitions"]["minimum"] == 1 and parallel["partitions"]["maximum"] == 64
    assert parallel["partitions"]["common"] is False
    assert parallel["specialists"]["choices"] == ["validator", "profiler", "segmenter", "scorer"]
    assert parallel["specialists"]["type"] == "list of str"
    auction = graphs["auction"]["params"]
    assert auction["auction"] == {"type": "str", "default": "vickrey", "accepts": "one of sealed, vickrey, english",
                                  "description": "", "common": False, "choices": ["sealed", "vickrey", "english"]}
    assert auction["reserve_factor"]["exclusive_minimum"] == 0 and auction["reserve_factor"]["accepts"] == "float > 0"
    assert "segments" in graphs["hierarchical"]["approvable_nodes"]  # a worker inside a team-lead subgraph


def test_every_listed_approvable_node_is_accepted_by_approve_before(monkeypatch) -> None:
    """The list is the one --approve-before checks: a listed node reaches the run with its gate
    configured, an unlisted one is refused naming the list."""
    from relaygraph.cli import runner

    gates: list[list[str]] = []

    def stop_before_running(graph, graph_input, config, on_progress=None):
        gates.append(config["configurable"]["approve_before"])
        raise RuntimeError("stopped before the run")

    monkeypatch.setattr(runner, "execute", stop_before_running)
    graphs = json.loads(cli.invoke(app, ["graphs", "--json"]).stdout)
    for info in graphs:
        for node in info["approvable_nodes"]:
            result = cli.invoke(app, ["run", info["name"], "--approve-before", node])
            assert "stopped before the run" in result.stderr and gates[-1] == [node], (info["name"], node)
        refused = cli.invoke(app, ["run", info["name"], "--approve-before", "nosuchnode"])
        assert refused.exit_code == 2
        assert f"nodes: {', '.join(info['approvable_nodes'])}." in refused.stderr


def test_graphs_and_run_help_show_params_and_approvable_nodes_readably() -> None:
    listing = cli.invoke(app, ["graphs"])
    assert listing.exit_code == 0
    assert "  approve before: analyze, clean, extract, finalize, report" in listing.stdout
    assert "  --param partitions: int from 1 to 64 — Row slices per specialist" in listing.stdout
    assert "  --param auction: one of sealed, vickrey, english, default vickrey" in listing.stdout
    assert ("Every graph also takes --param model (Model provider: offline, openai or local), model_id (Model name "
            "sent to the provider), dataset (Dataset file inside the data directory), max_steps (int from 1") \
        in listing.stdout  # a free-text param says what it takes, not just "str"
    said = "Inject failures: TASK:CLASS[xN], comma-separated"  # a free-text key's description, said once
    assert f"  --param fail: {said}" in listing.stdout and listing.stdout.count(said) == 1, listing.stdout
    help_text = cli.invoke(app, ["run", "--help"]).stdout
    assert "sequential: approve before analyze, clean, extract, finalize, report" in help_text
    assert "--param partitions: int from 1 to 64" in help_text
    assert "parallel: approve before aggregate, finalize, prepare, profiler, scorer, segmenter, specialist, validator" in " ".join(help_text.split())


def test_a_refused_path_is_exit_2_before_any_work(tmp_path, isolated_env) -> None:
    """The run's folder may not lead out of the output directory (a planted symlink): refused
    with exit 2 and one line, nothing copied, no thread started."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    isolated_env["out"].mkdir(parents=True)
    (isolated_env["out"] / "planted").symlink_to(elsewhere, target_is_directory=True)
    data = tmp_path / "mine.csv"
    data.write_text("city,temp_c\nOslo,-3\n", encoding="utf-8")
    result = cli.invoke(app, ["run", "sequential", "--data", str(data), "--thread-id", "planted"])
    assert result.exit_code == 2, result.output
    assert "does not resolve inside" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not any(elsewhere.iterdir())
    assert "No threads" in cli.invoke(app, ["threads"]).stdout  # no checkpoint was written


@pytest.mark.parametrize("how", ["relative", "absolute", "absolute-unparseable", "symlink", "input"])
def test_a_dataset_outside_the_data_dir_is_refused_up_front_without_opening_it(
        tmp_path, isolated_env, monkeypatch, how) -> None:
    """The sandbox rule comes first: exit 2, one line naming the data directory and --data, no
    thread, and the outside file is never opened or parsed (it may be anything, e.g. /etc/passwd)."""
    import relaygraph.cli.main as cli_main

    outside = tmp_path / "outside.csv"
    outside.write_text("a,b\n1,2\n" if how != "absolute-unparseable" else "root:x:0:0\na b c d\n", encoding="utf-8")
    isolated_env["data"].mkdir(parents=True)
    opened: list[Path] = []
    monkeypatch.setattr(cli_main, "tools_check_data_file", lambda path: opened.append(Path(path)))
    name = {"relative": "../outside.csv", "absolute": str(outside), "absolute-unparseable": str(outside),
            "symlink": "link.csv", "input": "../outside.csv"}[how]
    if how == "symlink":
        (isolated_env["data"] / "link.csv").symlink_to(outside)
    if how == "input":
        spec = tmp_path / "in.json"
        spec.write_text(json.dumps({"task": "t", "data": name}), encoding="utf-8")
        args = ["--input", str(spec)]
    else:
        args = ["--param", f"dataset={name}"]
    result = cli.invoke(app, ["run", "sequential", *args])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1, line
    assert "--data FILE" in line and ("outside the data directory" in line), line
    assert opened == []
    assert_no_work_done(isolated_env)


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "~/x.csv", "a/../../x.csv"])
def test_python_callers_get_the_same_rule_from_the_input_and_param_models(name) -> None:
    from pydantic import ValidationError
    from relaygraph.nodes.params import ParamError, RunParams, validate_params
    from relaygraph.nodes.state import RunInput

    with pytest.raises(ValidationError, match="outside the data directory"):
        RunInput.model_validate({"task": "t", "data": name})
    with pytest.raises(ParamError, match="outside the data directory"):
        validate_params(RunParams, {"dataset": name})
    assert RunInput.model_validate({"task": "t", "data": "sub/../in.csv"}).data == "sub/../in.csv"


def test_a_file_that_still_reads_as_one_column_with_a_separator_in_its_header_is_refused(
        tmp_path, isolated_env) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("region;revenue\nNorth;1;2\nSouth\nEast;3;4;5\n")  # ragged: no separator splits it evenly
    result = cli.invoke(app, ["run", "sequential", "--data", str(path)])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "reads as 1 column, but its header contains ';'" in line and "semicolon-separated" in line
    assert_no_work_done(isolated_env)


def test_a_semicolon_separated_file_is_read_with_its_separator(tmp_path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text("region;revenue\nNorth;1.5\nSouth;2\n")
    check_data_file(path)  # accepted
    workspace = Workspace(tmp_path, tmp_path / "out", "t")
    frame, _ = load(workspace, "semi.csv")
    assert list(frame.columns) == ["region", "revenue"] and frame["revenue"].sum() == 3.5
