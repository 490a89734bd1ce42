"""A task that finished is not run again after a kill, even when LangGraph had not yet stored
its writes (issue 11 §1/§6, issue 12: "a voter shown as finished is not asked again").

LangGraph hands a finished task's writes to its executor, which in a fan-out wider than
``max_concurrency`` first runs the remaining tasks; a kill in one of them loses the writes of
every task that finished before it. The one failure path records each finished output in the
run's ledger before the node returns, and a re-run of the same task returns it."""

from __future__ import annotations

import multiprocessing
import operator
import os
import signal
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.sqlalchemy import SQLAlchemySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from relaygraph.nodes.failures import recording_failures

WORKERS = ("a", "b", "c")


class Fan(TypedDict, total=False):
    done: Annotated[list[str], operator.add]
    worker: str


def build(log: Path, marker: Path) -> StateGraph:
    def work(state: dict[str, Any], config: Any) -> dict[str, Any]:
        name = state["worker"]
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"{name}\n")
        if name == "b" and not marker.exists():  # dies once, after "a" finished
            marker.write_text("killed")
            os.kill(os.getpid(), signal.SIGKILL)
        return {"done": [name]}

    builder = StateGraph(Fan)
    builder.add_node("work", recording_failures(work, who=lambda s: (s["worker"], "work")))
    builder.add_conditional_edges(START, lambda _s: [Send("work", {"worker": w}) for w in WORKERS])
    builder.add_edge("work", END)
    return builder


CONFIG: dict[str, Any] = {"configurable": {"thread_id": "fan"}, "max_concurrency": 1}


def run_until_killed(url: str, log: Path, marker: Path) -> None:
    with SQLAlchemySaver.from_conn_string(url) as saver:
        saver.setup()
        build(log, marker).compile(checkpointer=saver).invoke({"done": []}, CONFIG, durability="sync")


def test_a_task_that_finished_before_a_kill_is_not_run_again_on_resume(sqlite_url: str, tmp_path: Path) -> None:
    log, marker = tmp_path / "runs.txt", tmp_path / "killed"
    child = multiprocessing.get_context("fork").Process(target=run_until_killed, args=(sqlite_url, log, marker))
    child.start()
    child.join(120)
    assert child.exitcode == -signal.SIGKILL
    assert log.read_text().split() == ["a", "b"]  # "a" finished; its writes were still queued
    with SQLAlchemySaver.from_conn_string(sqlite_url) as saver:
        graph = build(log, marker).compile(checkpointer=saver)
        final = graph.invoke(None, CONFIG, durability="sync")
    assert sorted(final["done"]) == ["a", "b", "c"]
    assert log.read_text().split() == ["a", "b", "b", "c"]  # "a" ran once; "b" again, as it never finished


def test_without_a_durable_saver_nothing_is_recorded(tmp_path: Path) -> None:
    """The record exists for kills: with an in-memory checkpointer a task has nothing to outlive,
    so the process-local ledger is not filled with every output."""
    from langgraph.checkpoint.memory import InMemorySaver
    from relaygraph.tools.ledger import OUTPUT_INDEX, _MEMORY

    log, marker = tmp_path / "runs.txt", tmp_path / "killed"
    marker.write_text("no kill")
    before = dict(_MEMORY._entries)
    final = build(log, marker).compile(checkpointer=InMemorySaver()).invoke({"done": []}, CONFIG)
    assert sorted(final["done"]) == ["a", "b", "c"]
    assert [k for k in _MEMORY._entries if k not in before and k[1] == OUTPUT_INDEX] == []
