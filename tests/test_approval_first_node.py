"""An approval gate on a graph's very first node (issue 10, §3): the run pauses before it, only an
answer gets past it — also from Python and ``langgraph dev`` calls that forget ``approve_before``
(the gate is not yet recorded in the state when the first node has not run) — and
``resume --approve|--reject`` continues.

Every agent call is scripted (the strict ``cast`` double): a rejected run must not call any
agent (an unscripted call fails the test), an approved one answers at once — the gate is what
is tested, not the offline policy."""

from __future__ import annotations

import asyncio
import importlib
import json

import pytest
from langgraph.graph import START
from langgraph.types import Command
from relaygraph.cli.main import app
from relaygraph.config.checkpointing import open_async_checkpointer, open_checkpointer
from relaygraph.nodes.entry import ThreadFinishedError
from typer.testing import CliRunner

cli = CliRunner()

#: Each graph's first node (negotiation's START routes to ``propose`` per analyst).
FIRST = {"auction": "announce", "consensus": "plan", "handoff": "triage", "hierarchical": "supervisor",
         "negotiation": "propose", "parallel": "prepare", "planned": "observe", "sequential": "extract"}


SEQUENTIAL = ("data extractor", "data cleaner", "data analyst", "report writer")


def answers_at_once(cast, *roles: str) -> None:
    cast.scripts.update({role: [("final", "done")] for role in roles})


def builder(graph: str):
    return importlib.import_module(f"relaygraph.graphs.{graph}").build_graph()


@pytest.mark.parametrize(("graph", "answer"), [*((g, "--reject") for g in sorted(FIRST)),
                                              ("sequential", "--approve")])
def test_cli_gate_on_the_first_node_pauses_and_the_answer_continues(graph, answer, isolated_env, cast) -> None:
    if answer == "--approve":
        answers_at_once(cast, *SEQUENTIAL)
    first = FIRST[graph]
    starts = {dst for src, dst in builder(graph).edges if src == START}
    assert starts in ({first}, set())  # the table is right (set(): a router at START, negotiation)
    paused = cli.invoke(app, ["run", graph, "--approve-before", first, "--thread-id", "g", "--json"])
    assert paused.exit_code == 0, paused.output
    state = json.loads(paused.stdout)
    assert {i["value"]["node"] for i in state["interrupts"]} == {first}
    assert "result" not in state and not state.get("steps")  # nothing ran before the gate
    again = cli.invoke(app, ["resume", "g"])
    assert again.exit_code == 2 and f"waiting for approval before {first}" in again.stderr
    answered = cli.invoke(app, ["resume", "g", answer, "--comment", "decided", "--json"])
    assert answered.exit_code == 0, answered.output
    final = json.loads(answered.stdout)
    assert final["result"]["status"] == ("rejected" if answer == "--reject" else "completed"), final["result"]
    assert {(a["node"], a["approved"]) for a in final["approvals"]} == {(first, answer == "--approve")}
    assert "interrupts" not in final


def test_python_call_without_approve_before_cannot_pass_a_first_node_gate(isolated_env, cast) -> None:
    answers_at_once(cast, *SEQUENTIAL)
    with open_checkpointer() as saver:
        graph = builder("sequential").compile(checkpointer=saver)
        graph.invoke({"task": "Analyse."}, {"configurable": {"thread_id": "py", "approve_before": ["extract"]}})
        bare = {"configurable": {"thread_id": "py"}}  # forgets approve_before, as langgraph dev would
        state = graph.invoke(None, bare)
        assert [i.value["node"] for i in state["__interrupt__"]] == ["extract"]
        assert "result" not in state and not state.get("steps")
        state = graph.invoke(Command(resume={"approved": True, "comment": "ok"}), bare)
        assert state["result"]["status"] == "completed"
        assert [(a["node"], a["comment"]) for a in state["approvals"]] == [("extract", "ok")]


def test_async_call_without_approve_before_cannot_pass_a_first_node_gate(isolated_env, cast) -> None:
    """``langgraph dev`` runs with ``ainvoke`` and an async saver; a run with input null on the
    paused thread stays paused."""

    async def scenario() -> None:
        async with open_async_checkpointer() as saver:
            graph = builder("parallel").compile(checkpointer=saver)
            await graph.ainvoke({"task": "Analyse."},
                                {"configurable": {"thread_id": "dev", "approve_before": ["prepare"]}})
            bare = {"configurable": {"thread_id": "dev"}}
            state = await graph.ainvoke(None, bare)
            assert [i.value["node"] for i in state["__interrupt__"]] == ["prepare"]
            state = await graph.ainvoke({"task": "Something else."}, bare)  # a new input: still there
            assert [i.value["node"] for i in state["__interrupt__"]] == ["prepare"]
            state = await graph.ainvoke(Command(resume=False), bare)
            assert state["result"]["status"] == "rejected"

    asyncio.run(scenario())


def test_a_new_input_on_a_thread_paused_before_its_first_node_stops_there_again(isolated_env, cast) -> None:
    """LangGraph starts a new run from a new input and drops the pending interrupt; the gate it
    stood at still holds, as gates recorded in the state do for later nodes."""
    with open_checkpointer() as saver:
        graph = builder("handoff").compile(checkpointer=saver)
        graph.invoke({"task": "Analyse."}, {"configurable": {"thread_id": "new", "approve_before": ["triage"]}})
        bare = {"configurable": {"thread_id": "new"}}
        state = graph.invoke({"task": "Something else."}, bare)
        assert [i.value["node"] for i in state["__interrupt__"]] == ["triage"]
        assert "result" not in state and not state.get("steps")
        state = graph.invoke(Command(resume={"approved": False}), bare)
        assert state["result"]["status"] == "rejected"
        # the run ended (rejected): a further new input is refused, not merged into the old run
        # (it would otherwise stand as "rejected" again without running anything)
        with pytest.raises(ThreadFinishedError, match=r"already ran to its end \(status rejected\).*another thread_id"):
            graph.invoke({"task": "Analyse again."}, bare)
        assert graph.get_state(bare).values["result"]["status"] == "rejected"


def test_a_new_input_on_a_finished_thread_is_refused_not_merged(isolated_env, cast) -> None:
    """Python and ``langgraph dev`` callers get what the CLI says: a finished thread takes no new
    input; its result stays the finished run's."""
    answers_at_once(cast, *SEQUENTIAL)
    with open_checkpointer() as saver:
        graph = builder("sequential").compile(checkpointer=saver)
        config = {"configurable": {"thread_id": "done"}}
        assert graph.invoke({"task": "Analyse."}, config)["result"]["status"] == "completed"
        with pytest.raises(ThreadFinishedError, match="'done' already ran to its end"):
            graph.invoke({"task": "Something else."}, config)
        assert graph.get_state(config).values["result"]["status"] == "completed"  # nothing re-ran
