"""The sandbox holds: hostile thread ids, per-run attempts to widen it, symlinked and
outside data files, and absurd prune durations are refused before any work (issue 11 §5)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from langgraph.checkpoint.sqlalchemy.maintenance import MAX_DURATION, parse_duration
from relaygraph.cli.db import db_app
from relaygraph.cli.main import app, stage_data
from relaygraph.config.ids import InvalidThreadId, validate_thread_id
from relaygraph.config.settings import SandboxOverride, settings_from_config
from relaygraph.tools import Workspace
from relaygraph.tools.workspace import PathNotAllowed
from typer.testing import CliRunner

cli = CliRunner()


@given(st.text(min_size=0, max_size=40))
def test_an_accepted_thread_id_is_always_one_folder_inside_the_output_dir(value: str) -> None:
    out = Path("/srv/out")
    try:
        validate_thread_id(value)
    except InvalidThreadId as exc:
        assert str(exc)  # refused with a reason
        return
    folder = Path(out, value)
    assert folder.parent == out and folder.name == value
    assert "\x00" not in value and not value.startswith(".")  # no ., .. nor a hidden folder


@pytest.mark.parametrize("bad", ["..", ".", ".hidden", "a/b", "../x", "a\\b", "a\x00b", "a\nb", "x\ud800y", " x", ""])
def test_hostile_thread_ids_are_refused_everywhere(bad: str, isolated_env) -> None:
    with pytest.raises(InvalidThreadId):
        validate_thread_id(bad)
    with pytest.raises(InvalidThreadId):
        Workspace(isolated_env["data"], isolated_env["out"], bad)


@pytest.mark.parametrize("args", [
    ["fork", "some-thread", "--checkpoint", "1", "--thread-id", ".."],
    ["run", "sequential", "--thread-id", "../escape"],
    ["resume", "a/b"],
    ["history", "x\x01y"],
])
def test_cli_refuses_a_hostile_thread_id_with_one_line_and_exit_2(args, isolated_env) -> None:
    result = cli.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Thread id" in lines[0], result.output
    # nothing was written next to (or above) the output directory
    assert not any(isolated_env["out"].parent.glob("escape*"))


def test_fork_onto_dot_dot_writes_nothing_outside_the_output_dir(isolated_env) -> None:
    before = set(isolated_env["out"].parent.iterdir())
    cli.invoke(app, ["fork", "t", "--checkpoint", "1", "--thread-id", ".."])
    assert set(isolated_env["out"].parent.iterdir()) == before


@pytest.mark.parametrize("key", ["data_dir", "output_dir", "checkpoint_db"])
def test_a_run_config_cannot_widen_the_sandbox(key: str) -> None:
    with pytest.raises(SandboxOverride, match=key):
        settings_from_config({"configurable": {key: "/"}})


def test_graph_invoke_with_data_dir_in_configurable_fails_before_any_tool(isolated_env) -> None:
    from relaygraph.graphs.sequential import graph

    with pytest.raises(SandboxOverride):
        graph.invoke({"task": "Profile the dataset."},
                     {"configurable": {"thread_id": "t1", "data_dir": "/etc"}})
    assert not (isolated_env["out"] / "t1").exists() or not any((isolated_env["out"] / "t1").iterdir())


@pytest.mark.slow
def test_langgraph_dev_caller_cannot_widen_the_sandbox(langgraph_dev: str) -> None:
    with httpx.Client(base_url=langgraph_dev, timeout=120) as client:
        thread = client.post("/threads", json={}).raise_for_status().json()["thread_id"]
        response = client.post(f"/threads/{thread}/runs/wait", json={
            "assistant_id": "sequential", "input": {"task": "Profile the dataset."},
            "config": {"configurable": {"data_dir": "/etc", "dataset": "passwd"}},
        })
        state = response.json()
    assert "result" not in state or state["result"]["status"] != "completed", state
    assert "deployment setting" in response.text


def test_symlinked_data_inside_the_data_dir_is_used_where_it_points(isolated_env, tmp_path) -> None:
    real = isolated_env["data"] / "sub" / "orders.csv"
    real.parent.mkdir(parents=True)
    real.write_text("a,b\n1,2\n")
    link = tmp_path / "elsewhere" / "link-name.csv"
    link.parent.mkdir()
    link.symlink_to(real)
    assert stage_data(link, "t-link", None) == {"dataset": "sub/orders.csv"}
    assert not (isolated_env["out"] / "t-link" / "link-name.csv").exists()


def test_data_outside_the_data_dir_is_copied_into_the_run_not_exposed(isolated_env, tmp_path) -> None:
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "mine.csv").write_text("a,b\n1,2\n")
    (outside / "secret.csv").write_text("token\nhunter2\n")
    assert stage_data(outside / "mine.csv", "t-out", None) == {"dataset": "mine.csv"}
    workspace = Workspace(isolated_env["data"], isolated_env["out"], "t-out")
    assert workspace.resolve_input("mine.csv").read_text() == "a,b\n1,2\n"
    with pytest.raises((PathNotAllowed, FileNotFoundError)):
        workspace.resolve_input(str(outside / "secret.csv"))
    with pytest.raises((PathNotAllowed, FileNotFoundError)):
        workspace.resolve_input("secret.csv")


@pytest.mark.parametrize("text", ["0s", "0d", "0.0h", "99999999999999999999d", "40000w"])
def test_prune_refuses_zero_and_absurd_durations(text: str, sqlite_url: str) -> None:
    with pytest.raises(ValueError, match="more than 0"):
        parse_duration(text)
    result = cli.invoke(db_app, ["prune", "--older-than", text, "--checkpoint-db", sqlite_url])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_prune_accepts_the_largest_sensible_duration() -> None:
    assert parse_duration(f"{MAX_DURATION.days}d") == MAX_DURATION


@pytest.mark.parametrize("graph", ["sequential", "parallel", "handoff"])
@pytest.mark.parametrize("data", ["../secret.csv", "/etc/passwd", "~/x.csv"])
def test_python_input_outside_the_data_dir_is_refused_before_any_agent(graph: str, data: str, isolated_env,
                                                                     cast) -> None:
    """LangGraph does not validate a graph's input schema on ``invoke``: the first node applies
    RunInput's sandbox rule, so no agent (none is scripted) is asked to read the path."""
    import importlib

    from relaygraph.config.checkpointing import open_checkpointer

    with open_checkpointer() as saver:
        compiled = importlib.import_module(f"relaygraph.graphs.{graph}").build_graph().compile(checkpointer=saver)
        with pytest.raises(ValueError, match="outside the data directory"):
            compiled.invoke({"task": "Analyse.", "data": data}, {"configurable": {"thread_id": f"out-{graph}"}})


def test_python_dataset_param_outside_the_data_dir_is_refused_before_any_agent(isolated_env, cast) -> None:
    import importlib

    from relaygraph.config.checkpointing import open_checkpointer

    with open_checkpointer() as saver:
        compiled = importlib.import_module("relaygraph.graphs.sequential").build_graph().compile(checkpointer=saver)
        with pytest.raises(ValueError, match="configurable.dataset '../x.csv' is outside the data directory"):
            compiled.invoke({"task": "Analyse."}, {"configurable": {"thread_id": "out-param", "dataset": "../x.csv"}})
