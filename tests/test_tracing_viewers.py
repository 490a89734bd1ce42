"""What trace viewers need from our spans: GenAI-convention messages (Phoenix drops any other
shape silently), resource attributes beyond service.name, and prices that apply however a run
is started."""

from __future__ import annotations

import json
import uuid
from importlib.metadata import version
from typing import Annotated, Any, Literal

import pytest
import sqlalchemy as sa
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from relaygraph.nodes.agent import AgentSpec, make_agent_node
from relaygraph.nodes.results import make_result_node
from relaygraph.nodes.state import RunInput, WorkflowState
from relaygraph.observability import trace_export, trace_store, tracing
from relaygraph.observability.instrument_langchain import TracedStateGraph

# --- the GenAI semantic-convention message shape, as a strict schema -----------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Strict):
    type: Literal["text"]
    content: str


class ToolCallPart(_Strict):
    type: Literal["tool_call"]
    id: str | None
    name: str
    arguments: Any


class ToolCallResponsePart(_Strict):
    type: Literal["tool_call_response"]
    id: str
    response: Any


Part = Annotated[TextPart | ToolCallPart | ToolCallResponsePart, Field(discriminator="type")]


class InputMessage(_Strict):
    role: Literal["system", "user", "assistant", "tool"]
    parts: list[Part]


class OutputMessage(InputMessage):
    finish_reason: str


INPUTS, OUTPUTS = TypeAdapter(list[InputMessage]), TypeAdapter(list[OutputMessage])


@pytest.fixture
def content_spans(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("RELAYGRAPH_TRACE_STORE", "false")
    exporter = InMemorySpanExporter()
    tracing.configure(enabled=True, processors=[SimpleSpanProcessor(exporter)], trace_content=True, force=True)
    try:
        yield exporter
    finally:
        tracing.shutdown()


def _chats(exporter: InMemorySpanExporter) -> list[Any]:
    return [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]


def test_smolagents_llm_calls_record_messages_in_the_genai_shape(content_spans, script, sample_path) -> None:
    script.play(("call", "profile_dataset", {"dataset": "sample_sales.csv"}), ("final", "profiled"))
    spec = AgentSpec(name="extract", role="extractor", instructions="Profile the dataset.",
                     tools=("profile_dataset",))
    builder = StateGraph(WorkflowState, input_schema=RunInput)
    builder.add_node("extract", make_agent_node(spec))
    builder.add_edge(START, "extract")
    builder.add_edge("extract", END)
    builder.compile(checkpointer=InMemorySaver()).invoke(
        {"task": "Profile the dataset."}, {"configurable": {"thread_id": f"t-{uuid.uuid4().hex[:6]}"}})

    first, second = _chats(content_spans)
    asked = INPUTS.validate_json(first.attributes["gen_ai.input.messages"])
    assert {m.role for m in asked} == {"system", "user"}
    assert any("Profile the dataset." in p.content for m in asked for p in m.parts if m.role == "user")
    (answer,) = OUTPUTS.validate_json(first.attributes["gen_ai.output.messages"])
    call = next(p for p in answer.parts if isinstance(p, ToolCallPart))
    assert answer.role == "assistant" and answer.finish_reason == "tool_call"
    assert call.name == "profile_dataset" and call.arguments == {"dataset": "sample_sales.csv"}
    assert call.id and call.id.startswith("call_")
    # The second call sees the first step: the call and the tool's observation.
    history = INPUTS.validate_json(second.attributes["gen_ai.input.messages"])
    assert [m.role for m in history][-2:] == ["assistant", "tool"]
    assert "sample_sales" in " ".join(p.content for p in history[-1].parts if isinstance(p, TextPart))


def test_langchain_chat_calls_record_tool_calls_and_results_in_the_genai_shape(content_spans) -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage("the total is 42")]))
    history = [SystemMessage("Add numbers."), HumanMessage("1 + 41?"),
               AIMessage("", tool_calls=[{"id": "c1", "name": "add", "args": {"a": 1, "b": 41}}]),
               ToolMessage("42", tool_call_id="c1")]
    builder = TracedStateGraph(dict)  # relaygraph's instrumentation traces relaygraph's graphs only
    builder.add_node("ask", lambda state: {"answer": model.invoke(history).content})
    builder.add_edge(START, "ask")
    builder.compile().invoke({"answer": ""})

    (chat,) = _chats(content_spans)
    asked = INPUTS.validate_json(chat.attributes["gen_ai.input.messages"])
    assert [m.role for m in asked] == ["system", "user", "assistant", "tool"]
    assert asked[2].parts == [ToolCallPart(type="tool_call", id="c1", name="add", arguments={"a": 1, "b": 41})]
    assert asked[3].parts == [ToolCallResponsePart(type="tool_call_response", id="c1", response="42")]
    (reply,) = OUTPUTS.validate_json(chat.attributes["gen_ai.output.messages"])
    assert reply.parts == [TextPart(type="text", content="the total is 42")] and reply.finish_reason == "stop"


# --- resource attributes, kept by the span store and its exports -----------------------------------


def test_spans_carry_service_version_and_sdk_attributes_through_store_and_exports(spans, tmp_path) -> None:
    builder = TracedStateGraph(dict)
    builder.add_node("only", lambda state: {"x": 1})
    builder.add_edge(START, "only")
    builder.compile().invoke({"x": 0}, {"configurable": {"thread_id": "res-1"}})
    finished = spans.get_finished_spans()
    resource = dict(finished[0].resource.attributes)
    assert resource["service.name"] == "relaygraph"
    assert resource["service.version"] == version("relaygraph")
    assert resource["telemetry.sdk.language"] == "python" and resource["telemetry.sdk.name"] == "opentelemetry"

    url = f"sqlite:///{tmp_path / 'spans.db'}"
    trace_store.SpanStoreExporter(url).export(finished)
    stored = trace_store.load_spans(url, "res-1")
    assert len(stored) == len(finished) and all(s.resource == resource for s in stored)
    (process,) = trace_export.to_jaeger(stored)["data"][0]["processes"].values()
    assert {t["key"]: t["value"] for t in process["tags"]}["service.version"] == version("relaygraph")
    otlp = trace_export.to_otlp_json(stored)["resourceSpans"][0]["resource"]["attributes"]
    assert {"key": "telemetry.sdk.name", "value": {"stringValue": "opentelemetry"}} in otlp


def test_a_span_table_from_before_migrations_is_upgraded_in_place(tmp_path) -> None:
    """Databases written before the span store used the saver's migrations hold the version-1
    table and no version row: it is adopted as version 1 and gains the resource and links columns."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        trace_store._spans_v1.create(conn)  # noqa: SLF001 - the old layout, as old code made it
        conn.execute(trace_store._spans_v1.insert(), [{  # noqa: SLF001
            "trace_id": "a" * 32, "span_id": "b" * 16, "thread_id": "old", "name": "invoke_workflow x",
            "kind": "INTERNAL", "start_ns": 1, "end_ns": 2, "status_code": 0, "attributes": "{}",
            "events": "[]", "service_name": "svc", "scope": "relaygraph"}])
    engine.dispose()
    trace_store.dispose_engines()
    (span,) = trace_store.load_spans(url, "old")
    assert span.resource == {"service.name": "svc"} and span.links == []
    with trace_store.engine_for(url).connect() as conn:
        assert trace_store.SPANS.current_version(conn) == trace_store.SPANS.version == 3


# --- prices apply wherever a run starts ----------------------------------------------------------


def test_model_prices_from_the_environment_price_a_plain_run_without_tracing(tracing_off, monkeypatch) -> None:
    """RELAYGRAPH_MODEL_PRICES used to reach result rollups only through the CLI's tracing setup."""
    monkeypatch.setenv("RELAYGRAPH_MODEL", "openai")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    monkeypatch.setenv("RELAYGRAPH_MODEL_ID", "house-model")
    monkeypatch.setenv("RELAYGRAPH_MODEL_PRICES", json.dumps({"house-model": {"input": 1000, "output": 2000}}))
    step = {"agent": "a", "node": "a", "tool": "profile_dataset", "confidence": 0.7, "duration_s": 0.1,
            "thought": "look", "observation": "rows: 3"}
    steps = [{**step, "step": 1, "input_tokens": 100, "output_tokens": 10},
             {**step, "step": 2, "tool": "final_answer", "input_tokens": 200, "output_tokens": 20}]
    out = make_result_node("a")({"steps": steps, "answers": {"a": "done"}}, {"configurable": {"thread_id": "p"}})
    expected = (300 * 1000 + 30 * 2000) / 1_000_000
    assert out["result"]["usage"]["cost_usd"] == pytest.approx(expected)
    assert out["result"]["agents"]["a"]["cost_usd"] == pytest.approx(expected)
    assert not tracing.enabled()


def test_traces_show_names_a_failed_tasks_class_and_what_triggered_a_replan() -> None:
    from relaygraph.observability.trace_export import _label
    from relaygraph.observability.trace_store import StoredSpan

    failed = StoredSpan(trace_id="t", span_id="a", name="task aggregate", kind="INTERNAL", start_ns=0, end_ns=10**6,
                        status_code=2, status_message="MemoryError: out of memory (injected)",
                        attributes={"relaygraph.failure.class": "resource"})
    replan = StoredSpan(trace_id="t", span_id="b", name="replan", kind="INTERNAL", start_ns=0, end_ns=10**6,
                        attributes={"relaygraph.failure.class": "resource", "relaygraph.replan.task": "aggregate",
                                    "relaygraph.replan.policy": "scale down: 1 → 2 partitions, replan",
                                    "relaygraph.replan.old_confidence": 0.77, "relaygraph.plan.confidence": 0.81,
                                    "relaygraph.plan.accepted": True})
    assert "class=resource" in _label(failed).plain and "error: MemoryError: out of memory" in _label(failed).plain
    shown = _label(replan).plain
    for part in ("class=resource", "after=aggregate", "policy=scale down: 1 → 2 partitions, replan",
                 "confidence was=0.77", "confidence=0.81", "accepted=True"):
        assert part in shown, shown
