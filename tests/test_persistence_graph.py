"""The savers under real LangGraph graphs: histories, interrupts, fan-out, crash recovery."""

from __future__ import annotations

import json
import operator
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
import sqlalchemy as sa
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.sqlalchemy import AsyncSQLAlchemySaver, SQLAlchemySaver, schema
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, Send, interrupt
from relaygraph.config.checkpointing import open_async_checkpointer, open_checkpointer

REPO = Path(__file__).resolve().parent.parent


class Chat(TypedDict):
    messages: Annotated[list, add_messages]


def chat_builder() -> StateGraph:
    def reply(state: Chat) -> dict[str, Any]:
        last = state["messages"][-1].content
        return {"messages": [AIMessage(f"echo: {last} " + "lorem ipsum " * 10)]}

    g = StateGraph(Chat)
    g.add_node("reply", reply)
    g.add_edge(START, "reply")
    g.add_edge("reply", END)
    return g


def test_chat_history_survives_a_new_saver_and_is_stored_as_deltas(any_url: str) -> None:
    config = {"configurable": {"thread_id": "conversation"}}
    with SQLAlchemySaver.from_conn_string(any_url) as saver:
        graph = chat_builder().compile(checkpointer=saver)
        for turn in range(6):
            graph.invoke({"messages": [HumanMessage(f"turn {turn}")]}, config)
    with SQLAlchemySaver.from_conn_string(any_url) as saver:  # as after a restart
        graph = chat_builder().compile(checkpointer=saver)
        out = graph.invoke({"messages": [HumanMessage("turn 6")]}, config)
        assert [m.content for m in out["messages"][::2]] == [f"turn {i}" for i in range(7)]
        history = list(graph.get_state_history(config))
        assert len(history) == 7 * 3  # input, __start__ and reply checkpoints per turn
        final = out["messages"]
        for snapshot in history:  # every stored state is an intact prefix of the final one
            messages = snapshot.values.get("messages", [])
            assert messages == final[: len(messages)]
        with saver.engine.connect() as conn:
            rows = conn.execute(sa.select(schema.blobs.c.version, schema.blobs.c.base_version).where(
                schema.blobs.c.channel == "messages").order_by(schema.blobs.c.version)).all()
        # 7 turns × (input, reply) = 14 versions; the first (one message) is inline in its
        # checkpoint, the next stored in full, and every later one as a delta of the one before
        assert len(rows) == 13
        assert [base for _, base in rows] == [None, *(version for version, _ in rows[:-1])]


class Review(TypedDict):
    draft: str
    verdict: str


def review_builder() -> StateGraph:
    def write(state: Review) -> dict[str, Any]:
        return {"draft": state["draft"] + " (written)"}

    def ask(state: Review) -> dict[str, Any]:
        return {"verdict": interrupt({"question": "approve?", "draft": state["draft"]})}

    g = StateGraph(Review)
    g.add_node("write", write)
    g.add_node("ask", ask)
    g.add_edge(START, "write")
    g.add_edge("write", "ask")
    g.add_edge("ask", END)
    return g


async def test_async_interrupt_and_resume_in_a_new_saver(any_url: str) -> None:
    config = {"configurable": {"thread_id": "review"}}
    async with AsyncSQLAlchemySaver.from_conn_string(any_url) as saver:
        graph = review_builder().compile(checkpointer=saver)
        out = await graph.ainvoke({"draft": "plan", "verdict": ""}, config)
        assert out["__interrupt__"][0].value == {"question": "approve?", "draft": "plan (written)"}
    async with AsyncSQLAlchemySaver.from_conn_string(any_url) as saver:
        graph = review_builder().compile(checkpointer=saver)
        state = await graph.aget_state(config)
        assert state.next == ("ask",)
        out = await graph.ainvoke(Command(resume="approved"), config)
        assert out == {"draft": "plan (written)", "verdict": "approved"}


class Fan(TypedDict):
    results: Annotated[list, operator.add]


def test_fanout_failure_keeps_finished_branches_and_resume_reruns_only_the_failed(
    sqlite_url: str, tmp_path: Path
) -> None:
    runs: list[int] = []
    broken = tmp_path / "broken"
    broken.write_text("1")
    savers: list[SQLAlchemySaver] = []

    def others_saved() -> bool:
        latest = savers[-1].get_tuple(config)
        return latest is not None and len({w[0] for w in latest.pending_writes}) >= 19

    def branch(i: int) -> dict[str, Any]:
        runs.append(i)
        if i == 7 and broken.exists():
            # Once a task fails LangGraph cancels branches not yet started and drops the
            # writes of those finishing after it; wait until the other 19 are saved so
            # the test is about the saver, not about thread scheduling.
            deadline = time.monotonic() + 30
            while not others_saved() and time.monotonic() < deadline:
                time.sleep(0.005)
            raise RuntimeError("branch 7 failed")
        return {"results": [i]}

    g = StateGraph(Fan)
    g.add_node("start", lambda s: {})
    g.add_node("branch", branch)
    g.add_edge(START, "start")
    g.add_conditional_edges("start", lambda s: [Send("branch", i) for i in range(20)])
    g.add_edge("branch", END)
    config = {"configurable": {"thread_id": "fan"}}
    with SQLAlchemySaver.from_conn_string(sqlite_url) as saver:
        savers.append(saver)
        graph = g.compile(checkpointer=saver)
        with pytest.raises(RuntimeError, match="branch 7"):
            graph.invoke({"results": []}, config)
    broken.unlink()
    runs.clear()
    with SQLAlchemySaver.from_conn_string(sqlite_url) as saver:
        graph = g.compile(checkpointer=saver)
        out = graph.invoke(None, config)
    assert runs == [7]  # the 19 finished branches were restored from their pending writes
    assert sorted(out["results"]) == list(range(20))


def test_runtime_factory_uses_settings_url(isolated_env: dict[str, Path]) -> None:
    with open_checkpointer() as saver:
        assert isinstance(saver, SQLAlchemySaver)
        chat_builder().compile(checkpointer=saver).invoke(
            {"messages": [HumanMessage("hi")]}, {"configurable": {"thread_id": "f"}})
    assert isolated_env["db"].exists()


async def test_async_runtime_factory(sqlite_url: str) -> None:
    async with open_async_checkpointer(sqlite_url) as saver:
        assert isinstance(saver, AsyncSQLAlchemySaver)
        out = await chat_builder().compile(checkpointer=saver).ainvoke(
            {"messages": [HumanMessage("hi")]}, {"configurable": {"thread_id": "f"}})
        assert len(out["messages"]) == 2


async def test_langgraph_dev_factory(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from relaygraph.cli.langgraph_dev import checkpointer

    monkeypatch.setenv("RELAYGRAPH_CHECKPOINT_DB", sqlite_url)
    async with checkpointer() as saver:
        assert isinstance(saver, AsyncSQLAlchemySaver)
        assert await saver.aget_tuple({"configurable": {"thread_id": "none"}}) is None


# --- crash recovery ---------------------------------------------------------------------

CRASH_SCRIPT = textwrap.dedent(
    """
    import json, operator, os, sys, time
    from typing import Annotated, TypedDict
    from langgraph.graph import END, START, StateGraph
    from langgraph.checkpoint.sqlalchemy import SQLAlchemySaver

    url, log_path, marker, crash_at, durability, mode = sys.argv[1:7]
    crash_at = int(crash_at)
    NODES = [f"n{i}" for i in range(1, 6)]

    class S(TypedDict):
        done: Annotated[list, operator.add]

    def make(name, index):
        def node(state):
            with open(log_path, "a") as log:
                log.write(name + "\\n")
                log.flush()
                os.fsync(log.fileno())
            if index == crash_at and mode == "run":
                # Only signal once node k's checkpoint is really in the database
                # (with "exit" durability nothing is saved before the run ends).
                with SQLAlchemySaver.from_conn_string(url) as probe:
                  if durability != "exit":
                    while True:
                        tup = probe.get_tuple({"configurable": {"thread_id": "crash"}})
                        if tup and f"n{crash_at - 1}" in tup.checkpoint["channel_values"].get("done", []):
                            break
                        time.sleep(0.05)
                  else:
                    assert probe.get_tuple({"configurable": {"thread_id": "crash"}}) is None
                open(marker, "w").close()
                time.sleep(3600)  # killed here
            return {"done": [name]}
        return node

    g = StateGraph(S)
    for i, name in enumerate(NODES, 1):
        g.add_node(name, make(name, i))
    g.add_edge(START, "n1")
    for a, b in zip(NODES, NODES[1:]):
        g.add_edge(a, b)
    g.add_edge("n5", END)
    with SQLAlchemySaver.from_conn_string(url) as saver:
        graph = g.compile(checkpointer=saver)
        config = {"configurable": {"thread_id": "crash"}}
        # Resuming a thread that has no checkpoint ("exit" durability) starts it again.
        fresh = mode == "run" or saver.get_tuple(config) is None
        out = graph.invoke({"done": []} if fresh else None, config, durability=durability)
        print(json.dumps(out))
    """
)


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_sigkilled_run_resumes_without_redoing_checkpointed_nodes(
    any_url: str, tmp_path: Path, durability: str
) -> None:
    """What each durability mode promises after a kill (README, "Durability"): ``sync``
    and ``async`` keep every finished step (``async`` once its checkpoint is saved,
    which the child waits for), so only the interrupted node runs again; ``exit``
    saves nothing before the run ends, so the whole run starts again."""
    k = 3  # nodes n1..n3 finish and checkpoint; n4 is running when the process dies
    script = tmp_path / "crash_graph.py"
    script.write_text(CRASH_SCRIPT)
    log, marker = tmp_path / "nodes.log", tmp_path / "n4-started"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, str(script), any_url, str(log), str(marker), str(k + 1), durability]
    proc = subprocess.Popen([*args, "run"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(f"run exited early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("node n4 never started")
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert log.read_text().split() == ["n1", "n2", "n3", "n4"]

    resumed = subprocess.run([*args, "resume"], env=env, capture_output=True, text=True,
                             timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads(resumed.stdout.strip().splitlines()[-1]) == {
        "done": ["n1", "n2", "n3", "n4", "n5"]
    }
    if durability == "exit":  # nothing was saved: everything ran again
        assert log.read_text().split() == ["n1", "n2", "n3", "n4", "n1", "n2", "n3", "n4", "n5"]
    else:  # n1..n3 ran once; only the interrupted n4 ran again, then n5.
        assert log.read_text().split() == ["n1", "n2", "n3", "n4", "n4", "n5"]


WRITES_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.sqlalchemy import SQLAlchemySaver, StorageOptions

    url, delay, durability, marker = sys.argv[1:5]
    storage = StorageOptions(writes_flush_delay=float(delay))
    with SQLAlchemySaver.from_conn_string(url, storage=storage) as saver:
        stored = saver.put({"configurable": {"thread_id": "w", "checkpoint_ns": ""}},
                           empty_checkpoint(), {"source": "loop", "step": 0}, {})
        # as LangGraph calls it from a run in this durability mode
        conf = {**stored["configurable"], "__pregel_durability": durability}
        saver.put_writes({"configurable": conf}, [("x", 1)], "task-1")
        open(marker, "w").close()
        time.sleep(3600)  # killed here
    """
)


@pytest.mark.parametrize(("durability", "delay", "wait", "kept"), [
    ("sync", 3600, 0, True),     # committed before put_writes returned
    ("async", 3600, 0, False),   # still waiting for the next checkpoint: lost, as allowed
    ("async", 0.05, 1.0, True),  # committed by the flush after the delay
])
def test_sigkill_keeps_writes_as_each_durability_mode_promises(
    sqlite_url: str, tmp_path: Path, durability: str, delay: float, wait: float, kept: bool
) -> None:
    script, marker = tmp_path / "writes.py", tmp_path / "written"
    script.write_text(WRITES_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script), sqlite_url, str(delay), durability,
                             str(marker)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(f"exited early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
            assert time.monotonic() < deadline, "the child never wrote"
            time.sleep(0.02)
        time.sleep(wait)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    with SQLAlchemySaver.from_conn_string(sqlite_url) as saver:
        tup = saver.get_tuple({"configurable": {"thread_id": "w"}})
        assert tup is not None  # the checkpoint itself is always there
        assert tup.pending_writes == ([("task-1", "x", 1)] if kept else [])
