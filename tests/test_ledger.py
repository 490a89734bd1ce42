"""Tool side effects happen once: a task that runs again after a crash gets the recorded
result of a side-effecting call instead of doing it twice (issue 11 §6)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.sqlalchemy import ConnectionLostError, SQLAlchemySaver
from langgraph.graph import END, START, StateGraph
from relaygraph.cli.runner import continue_run, thread_status
from relaygraph.nodes.agent import AgentSpec, make_agent_node
from relaygraph.nodes.results import make_result_node
from relaygraph.nodes.state import WorkflowState
from relaygraph.providers import Provider, register_provider
from relaygraph.providers.offline import OfflineChatModel
from relaygraph.tools.ledger import LEDGER, CallScope, MemoryLedger, guard_side_effects
from smolagents import Tool
from smolagents.models import (
    ChatMessage,
    ChatMessageToolCall,
    ChatMessageToolCallFunction,
    MessageRole,
    Model,
)


class BumpTool(Tool):
    """A side effect you can count: appends a line to a file."""

    name = "bump"
    description = "Record one payment."
    inputs = {"amount": {"type": "integer", "description": "How much."}}
    output_type = "string"

    def __init__(self, path: Path, side_effects: bool) -> None:
        self.path, self.side_effects = path, side_effects
        super().__init__()

    def forward(self, amount: int) -> str:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(f"{amount}\n")
        return f"paid {amount}"


class PayOnceThenDie(Model):
    """Calls ``bump`` first; on its next turn kills the process (once, marked by a file) —
    after the tool ran and was recorded, before the node's writes are saved."""

    def __init__(self, marker: Path) -> None:
        super().__init__(model_id="pay-once")
        self.marker = marker

    def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None, **kw):
        called = any("paid" in str(getattr(m, "content", m)) for m in messages)
        if not called:
            name, args = "bump", {"amount": 7}
        elif not self.marker.exists():
            self.marker.write_text("killed")
            os.kill(os.getpid(), signal.SIGKILL)
        else:
            name, args = "final_answer", {"answer": "paid 7 once"}
        call = ChatMessageToolCall(id=f"c{uuid.uuid4().hex[:6]}", type="function",
                                   function=ChatMessageToolCallFunction(name=name, arguments=args))
        return ChatMessage(role=MessageRole.ASSISTANT, content=f"Thought: {name}", tool_calls=[call])


@pytest.fixture
def pay_provider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    marker = tmp_path / "killed-once"
    register_provider(Provider("pay-once", lambda s: PayOnceThenDie(marker), lambda s: OfflineChatModel(),
                               lambda s: "scripted test double"))
    monkeypatch.setenv("RELAYGRAPH_MODEL", "pay-once")
    return marker


def build(counter: Path, side_effects: bool) -> StateGraph:
    spec = AgentSpec(name="payer", role="payer", instructions="Record the payment.", tools=())
    builder = StateGraph(WorkflowState)
    builder.add_node("payer", make_agent_node(spec, extra_tools=lambda ctx: [BumpTool(counter, side_effects)]))
    builder.add_node("finalize", make_result_node("payer"))
    builder.add_edge(START, "payer")
    builder.add_edge("payer", "finalize")
    builder.add_edge("finalize", END)
    return builder


def run_until_killed(url: str, counter: Path, side_effects: bool) -> None:
    with SQLAlchemySaver.from_conn_string(url) as saver:
        saver.setup()
        graph = build(counter, side_effects).compile(checkpointer=saver)
        graph.invoke({"task": "Pay 7."}, {"configurable": {"thread_id": "pay"}})


def crash_then_resume(url: str, counter: Path, side_effects: bool) -> dict[str, Any]:
    child = multiprocessing.get_context("fork").Process(target=run_until_killed, args=(url, counter, side_effects))
    child.start()
    child.join(120)
    assert child.exitcode == -signal.SIGKILL
    assert counter.read_text() == "7\n"  # the tool had run before the kill
    with SQLAlchemySaver.from_conn_string(url) as saver:
        graph = build(counter, side_effects).compile(checkpointer=saver)
        config = {"configurable": {"thread_id": "pay"}}
        assert thread_status(graph, config) == "unfinished"
        return continue_run(graph, config).values["result"]


@pytest.mark.slow
def test_a_side_effect_recorded_before_a_kill_happens_once_after_resume(pay_provider, sqlite_url, tmp_path) -> None:
    counter = tmp_path / "payments.txt"
    result = crash_then_resume(sqlite_url, counter, side_effects=True)
    assert result["status"] == "completed", result
    assert counter.read_text() == "7\n"  # once, not twice
    with SQLAlchemySaver.from_conn_string(sqlite_url) as saver, saver.engine.connect() as conn:
        rows = conn.execute(LEDGER.select()).all()
    assert [(r.tool, r.call_index, r.thread_id) for r in rows] == [("bump", 0, "pay")]


@pytest.mark.slow
def test_without_the_declaration_the_resumed_task_repeats_the_side_effect(pay_provider, sqlite_url, tmp_path) -> None:
    """The control: what the ledger prevents really happens to an undeclared tool."""
    counter = tmp_path / "payments.txt"
    result = crash_then_resume(sqlite_url, counter, side_effects=False)
    assert result["status"] == "completed", result
    assert counter.read_text() == "7\n7\n"


def test_a_different_call_at_the_same_position_runs_and_replaces_the_record(tmp_path) -> None:
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    counter, ledger, serde = tmp_path / "c.txt", MemoryLedger(), JsonPlusSerializer()
    first = guard_side_effects([BumpTool(counter, True)], ledger, serde, CallScope("t", "ns", "task"))[0]
    assert first(amount=1) == "paid 1"
    again = guard_side_effects([BumpTool(counter, True)], ledger, serde, CallScope("t", "ns", "task"))[0]
    assert again(amount=1) == "paid 1"  # same task, same call: recorded result
    assert counter.read_text() == "1\n"
    other = guard_side_effects([BumpTool(counter, True)], ledger, serde, CallScope("t", "ns", "task"))[0]
    assert other(amount=2) == "paid 2"  # same position, different arguments: runs
    assert counter.read_text() == "1\n2\n"
    fresh_task = guard_side_effects([BumpTool(counter, True)], ledger, serde, CallScope("t", "ns", "task-2"))[0]
    assert fresh_task(amount=2) == "paid 2"  # another task is another scope
    assert counter.read_text() == "1\n2\n2\n"


def test_a_typed_tool_result_is_recorded_and_returned_whole(workspace, sample_path) -> None:
    """clean_dataset declares its file write; its ToolResult comes back from the ledger as is."""
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
    from relaygraph.tools import build_tools
    from relaygraph.tools.result import ToolResult

    ledger, serde = MemoryLedger(), JsonPlusSerializer()

    def clean_tool():
        (tool,) = build_tools(["clean_dataset"], workspace)
        assert tool.side_effects
        return guard_side_effects([tool], ledger, serde, CallScope("t", "", "task"))[0]

    first = clean_tool().forward(dataset=sample_path.name)
    assert isinstance(first, ToolResult)
    written = workspace.resolve_input(first.artifacts["dataset"])
    written.unlink()
    again = clean_tool().forward(dataset=sample_path.name)
    assert again == first  # the recorded result, whole
    assert not written.exists()  # and the tool did not run a second time


class LedgerAway:
    """A ledger whose database stayed away past its retry bound."""

    def get(self, scope: str, index: int) -> Any:
        raise ConnectionLostError(what="a tool-ledger read", url="sqlite:///x.db", waited_s=3.0,
                                  reason="gone")

    def put(self, scope: str, index: int, thread_id: str, entry: Any) -> None:
        raise AssertionError("not reached")


class PayTwiceThenAnswer(Model):
    """Calls ``bump`` until it has tried twice, then answers: an agent that would go on after
    a failed tool call, as smolagents turns a tool's exception into an observation."""

    def __init__(self) -> None:
        super().__init__(model_id="pay-twice")

    def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None, **kw):
        tried = sum("bump" in str(getattr(m, "content", m)) for m in messages if "Error" in str(getattr(m, "content", m)))
        name, args = ("bump", {"amount": 7}) if tried < 2 else ("final_answer", {"answer": "could not pay"})
        call = ChatMessageToolCall(id=f"c{uuid.uuid4().hex[:6]}", type="function",
                                   function=ChatMessageToolCallFunction(name=name, arguments=args))
        return ChatMessage(role=MessageRole.ASSISTANT, content=f"Thought: {name}", tool_calls=[call])


def test_a_ledger_whose_database_stayed_away_stops_the_run_instead_of_failing_the_tool(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tool's error would be an observation the agent works around (or a failure LangGraph
    retries, waiting out the outage again); the run must stop with the one-line error, exit 75."""
    import relaygraph.nodes.agent as agent_module
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
    from relaygraph.nodes.failures import agent_node

    register_provider(Provider("pay-twice", lambda s: PayTwiceThenAnswer(), lambda s: OfflineChatModel(),
                               lambda s: "scripted test double"))
    monkeypatch.setenv("RELAYGRAPH_MODEL", "pay-twice")
    monkeypatch.setattr(agent_module, "ledger_for", lambda _saver: (LedgerAway(), JsonPlusSerializer()))
    counter = tmp_path / "payments.txt"
    spec = AgentSpec(name="payer", role="payer", instructions="Record the payment.", tools=())
    builder = StateGraph(WorkflowState)
    builder.add_node("payer", agent_node(spec, extra_tools=lambda ctx: [BumpTool(counter, True)]))
    builder.add_edge(START, "payer")
    builder.add_edge("payer", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    with pytest.raises(ConnectionLostError):
        graph.invoke({"task": "Pay 7."}, {"configurable": {"thread_id": "away"}})
    assert not counter.exists()  # the ledger could not be read: the tool never ran
