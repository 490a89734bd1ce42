"""Threads, inputs and approvals (issue 10 §3): a used thread is never silently re-fed, a
pending approval cannot be walked past, and every thread in the database can be listed."""

from __future__ import annotations

import json

from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.sqlalchemy import SQLAlchemySaver
from relaygraph.cli.main import app
from relaygraph.cli.runner import describe_thread
from relaygraph.graphs.sequential import build_graph
from typer.testing import CliRunner

cli = CliRunner()


def one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def test_a_pending_approval_holds_for_later_calls_that_forget_the_gate(sqlite_url: str, isolated_env, cast) -> None:
    """The skip: a second call without ``approve_before`` used to run the gated node."""
    for role in ("data extractor", "data cleaner", "data analyst"):  # the report writer must not run
        cast.scripts[role] = [("final", f"{role} done")]
    with SQLAlchemySaver.from_conn_string(sqlite_url) as saver:
        saver.setup()
        graph = build_graph().compile(checkpointer=saver)
        gated = {"configurable": {"thread_id": "g", "approve_before": ["report"]}}
        plain = {"configurable": {"thread_id": "g"}}
        graph.invoke({"task": "Profile, clean, analyse and report."}, gated)
        assert graph.get_state(plain).next == ("report",)
        graph.invoke(None, plain)  # continue without naming the gate
        assert graph.get_state(plain).next == ("report",), "the gate was walked past"
        assert "report" not in (graph.get_state(plain).values.get("answers") or {})
        assert describe_thread(saver, "g").waiting_on == ["report"]


def test_cli_refuses_to_re_feed_a_used_thread_and_says_how_to_continue(isolated_env) -> None:
    paused = cli.invoke(app, ["run", "sequential", "--thread-id", "t", "--approve-before", "report", "--json"])
    assert paused.exit_code == 0, paused.output

    again = cli.invoke(app, ["run", "sequential", "--thread-id", "t", "--task", "Something else."])
    assert again.exit_code == 2
    assert "waiting for approval before report" in one_line(again) and "--approve" in one_line(again)

    listed = cli.invoke(app, ["threads", "--json"])
    assert listed.exit_code == 0, listed.output
    (info,) = json.loads(listed.stdout)
    assert (info["thread_id"], info["graph"], info["status"], info["waiting_on"]) == (
        "t", "sequential", "waiting", ["report"])

    done = cli.invoke(app, ["resume", "t", "--approve", "--json"])
    assert done.exit_code == 0, done.output
    finished = cli.invoke(app, ["run", "sequential", "--thread-id", "t"])
    assert finished.exit_code == 2
    assert "already ran to its end (status completed)" in one_line(finished)


def test_threads_lists_threads_that_other_callers_created(sqlite_url: str) -> None:
    with SQLAlchemySaver.from_conn_string(sqlite_url) as saver:
        saver.setup()
        for thread, metadata in (("from-python", {}), ("from-dev", {"graph_id": "parallel"})):
            config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
            saver.put(config, empty_checkpoint(), {"source": "input", "step": -1, **metadata}, {})
    listed = cli.invoke(app, ["threads", "--json", "--checkpoint-db", sqlite_url])
    assert listed.exit_code == 0, listed.output
    rows = {r["thread_id"]: (r["graph"], r["status"]) for r in json.loads(listed.stdout)}
    assert rows == {"from-python": (None, "unfinished"), "from-dev": ("parallel", "unfinished")}
