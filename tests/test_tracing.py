"""Span structure: one trace per run, correct parents everywhere, checkpoint ids, rollups, errors.

Every graph registered in the CLI is run under an in-memory exporter; the trees are checked
against the run's real checkpoints and ReAct steps, not against expected literals.
"""

from __future__ import annotations

import importlib
import json
import operator
import threading
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import RetryPolicy, Send
from opentelemetry.trace import StatusCode
from relaygraph.cli import registry, runner
from relaygraph.nodes.agent import AgentRunError, AgentSpec, make_agent_node
from relaygraph.nodes.results import make_result_node
from relaygraph.nodes.state import RunInput, WorkflowState
from relaygraph.observability import instrument_langchain, tracing

GRAPHS = {name: registry.module_name(name) for name in registry.graph_names()}

# --- helpers ----------------------------------------------------------------------------------


def by_id(finished: Any) -> dict[int, Any]:
    return {s.context.span_id: s for s in finished}


def ancestors(span: Any, index: dict[int, Any]) -> list[Any]:
    chain = []
    while span.parent is not None and span.parent.span_id in index:
        span = index[span.parent.span_id]
        chain.append(span)
    return chain


def parent_of(span: Any, index: dict[int, Any]) -> Any:
    return index.get(span.parent.span_id) if span.parent else None


def named(finished: Any, prefix: str) -> list[Any]:
    return [s for s in finished if s.name.startswith(prefix)]


def run_graph(builder: StateGraph, name: str, graph_input: dict[str, Any], thread: str | None = None):
    saver = InMemorySaver()
    graph = runner.compile_graph(builder, saver, name)
    config = runner.run_config(thread or f"t-{uuid.uuid4().hex[:8]}", name)
    outcome = runner.execute(graph, graph_input, config)
    return graph, config, outcome


def assert_one_rooted_trace(finished: Any, graph_name: str) -> Any:
    """One trace, one root (the run span), and every span's parent chain ends at it."""
    assert len({s.context.trace_id for s in finished}) == 1
    roots = [s for s in finished if s.parent is None]
    assert [r.name for r in roots] == [f"invoke_workflow {graph_name}"]
    index = by_id(finished)
    for span in finished:
        if span is not roots[0]:
            assert ancestors(span, index)[-1] is roots[0], f"{span.name} does not reach the run span"
    return roots[0]


# --- every registered graph ---------------------------------------------------------------------


@pytest.mark.parametrize("graph_name", sorted(GRAPHS))
def test_every_graph_run_is_one_rooted_trace_of_nodes_agents_steps_and_calls_at_their_checkpoints_smoke_offline_policy(
    spans, graph_name: str
) -> None:
    """Every registered graph on the offline provider end to end (no per-graph script): the tree
    is checked against the run's own progress, steps and checkpoints, not against literals.

    Node spans carry the checkpoint they started from and the one their step produced."""
    module = importlib.import_module(GRAPHS[graph_name])
    graph, config, outcome = run_graph(module.build_graph(), graph_name,
                                       {"task": getattr(module, "DEFAULT_TASK", "Analyse the dataset.")})
    finished = spans.get_finished_spans()
    root = assert_one_rooted_trace(finished, graph_name)
    index = by_id(finished)
    assert root.attributes["relaygraph.thread_id"] == config["configurable"]["thread_id"]
    assert root.attributes["gen_ai.operation.name"] == "invoke_workflow"

    # Every completed execution the state recorded has exactly one span: its agent's when an agent
    # ran under that name (its steps say so), else its node's (the auction's award, negotiation's
    # close_round).
    progressed = Counter(p["node"] for p in outcome.values.get("progress") or [] if p["status"] == "completed")
    steps = outcome.values.get("steps") or []
    agent_nodes = {step["node"] for step in steps}
    agent_spans = Counter(s.attributes.get("relaygraph.agent.node") for s in named(finished, "invoke_agent ")
                          if s.status.status_code != StatusCode.ERROR)
    node_spans = Counter(s.attributes.get("langgraph.node") for s in named(finished, "node ")
                         if s.status.status_code != StatusCode.ERROR)
    assert progressed
    for node, count in progressed.items():
        assert (agent_spans if node in agent_nodes else node_spans)[node] == count, node

    # Agents sit in nodes, steps in agents, LLM and tool calls in steps.
    for agent in named(finished, "invoke_agent "):
        parent = parent_of(agent, index)
        # graphs group agents under their own spans: the planned graph's "task X" and "critique", the
        # auction's "bid ana" and "execute t1", the mediator's "conflict.resolve", a negotiator's "turn ana"
        while parent.name.startswith(("task ", "critique", "bid ", "execute ", "conflict.resolve", "turn ")):
            parent = parent_of(parent, index)
        assert parent.name.startswith("node "), (agent.name, parent.name)
    for step in named(finished, "react_step "):
        assert parent_of(step, index).name.startswith("invoke_agent ")
    for call in named(finished, "chat ") + named(finished, "execute_tool "):
        assert parent_of(call, index).name.startswith(("react_step ", "node ")), call.name
    assert len(named(finished, "react_step ")) == len(steps) > 0  # one span per step the state kept

    history = {s.config["configurable"]["checkpoint_id"]: s for s in graph.get_state_history(config)}
    top_level = [s for s in named(finished, "node ")
                 if "|" not in s.attributes["langgraph.checkpoint.ns"] and s.status.status_code != StatusCode.ERROR]
    assert top_level
    assert_node_checkpoints(top_level, history)


def assert_node_checkpoints(node_spans: Any, history: dict[str, Any]) -> None:
    for span in node_spans:
        produced = history[span.attributes["langgraph.checkpoint.id"]]
        parent_id = span.attributes["langgraph.checkpoint.parent_id"]
        assert produced.parent_config["configurable"]["checkpoint_id"] == parent_id
        assert produced.metadata["step"] == span.attributes["langgraph.step"]
        # the task really ran from that parent checkpoint
        assert span.attributes["langgraph.task.id"] in {t.id for t in history[parent_id].tasks}


@pytest.mark.parametrize("graph_name", sorted(GRAPHS))
def test_plain_invoke_with_relaygraphs_saver_also_links_nodes_to_their_checkpoints_smoke_offline_policy(
        spans, graph_name: str) -> None:
    """No runner, no checkpoint stream (as under `langgraph dev`): the saver reports what it
    stores to the listener it was handed. Every graph, on the offline provider (no per-graph script)."""
    from relaygraph.config.checkpointing import open_checkpointer

    module = importlib.import_module(GRAPHS[graph_name])
    config = {"configurable": {"thread_id": f"plain-{uuid.uuid4().hex[:8]}"}}
    with open_checkpointer(listeners=[instrument_langchain.checkpoint_listener]) as saver:
        graph = module.build_graph().compile(checkpointer=saver)
        graph.invoke({"task": getattr(module, "DEFAULT_TASK", "Analyse the dataset.")}, config)
        history = {s.config["configurable"]["checkpoint_id"]: s for s in graph.get_state_history(config)}
    top_level = [s for s in named(spans.get_finished_spans(), "node ")
                 if "|" not in s.attributes["langgraph.checkpoint.ns"] and s.status.status_code != StatusCode.ERROR]
    assert top_level and all("langgraph.checkpoint.id" in s.attributes for s in top_level)
    assert_node_checkpoints(top_level, history)


# --- parallel branches, subgraphs, tool threads -------------------------------------------------


class FanState(WorkflowState, total=False):
    partition: str


def send_fan_out_graph() -> StateGraph:
    """Three agent branches via ``Send``, each with its own partition of the data."""
    spec = AgentSpec(name="profiler", role="profiler", instructions="Profile the dataset.",
                     tools=("profile_dataset",))
    builder = StateGraph(FanState, input_schema=RunInput)
    builder.add_node("plan", lambda state: {"context": {"plan": "3 branches"}})
    builder.add_node("branch", make_agent_node(spec, node="branch"))
    builder.add_node("finalize", make_result_node())
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", lambda state: [Send("branch", {**state, "partition": f"{k}/3"})
                                                         for k in range(1, 4)], ["branch"])
    builder.add_edge("branch", "finalize")
    builder.add_edge("finalize", END)
    return builder


def _assert_siblings(branches: list[Any], index: dict[int, Any]) -> None:
    assert len({b.parent.span_id for b in branches}) == 1
    ids = {b.context.span_id for b in branches}
    for branch in branches:
        assert not ids & {a.context.span_id for a in ancestors(branch, index)}, "branches nested in each other"
        own = [s for s in index.values() if branch in ancestors(s, index)]
        assert named(own, "invoke_agent "), "each branch holds its own agent"


def test_send_branches_are_sibling_spans_under_the_run_not_nested_in_each_other(spans, cast, sample_path) -> None:
    # Three branches of one role in flight at once share its script: each step looks at its own
    # agent's brief (a profile first, then the answer), so the order they interleave in is free.
    cast.scripts["profiler"] = [lambda b: ("final", "profiled") if b.calls else
                                ("call", "profile_dataset", {"dataset": "sample_sales.csv"})] * 6
    run_graph(send_fan_out_graph(), "fan", {"task": "Profile the dataset."})
    finished = spans.get_finished_spans()
    root = assert_one_rooted_trace(finished, "fan")
    index = by_id(finished)
    branches = [s for s in named(finished, "node branch")]
    assert len(branches) == 3
    assert parent_of(branches[0], index) is root
    _assert_siblings(branches, index)
    plan = named(finished, "node plan")[0]
    assert all(b.attributes["langgraph.step"] == plan.attributes["langgraph.step"] + 1 for b in branches)


def test_parallel_workflow_branches_are_siblings(spans, cast, sample_path) -> None:
    from test_workflows import SPECIALIST_ROLES, specialists

    module = importlib.import_module("relaygraph.graphs.parallel")
    specialists(cast, *(name for name in SPECIALIST_ROLES if name in module.SPECIALISTS))
    run_graph(module.build_graph(), "parallel", {"task": module.DEFAULT_TASK})
    finished = spans.get_finished_spans()
    assert_one_rooted_trace(finished, "parallel")
    steps = Counter(s.attributes["langgraph.step"] for s in named(finished, "node "))
    fan_step = max(steps, key=lambda k: steps[k])
    assert steps[fan_step] == len(module.SPECIALISTS)  # every specialist's branch in one step
    fanned = [s for s in named(finished, "node ") if s.attributes["langgraph.step"] == fan_step]
    _assert_siblings(fanned, by_id(finished))
    # Named by what ran, not all "node specialist": the branch id (specialist, partition).
    assert len({s.name for s in fanned}) == len(fanned)
    for span in fanned:
        assert span.name == f"node specialist[{span.attributes['relaygraph.branch.id']}]"
        (agent,) = [s for s in finished if s.name.startswith("invoke_agent ") and s.parent.span_id == span.context.span_id]
        assert agent.attributes["gen_ai.agent.name"] == span.attributes["relaygraph.branch.id"]


class Numbers(TypedDict, total=False):
    xs: Annotated[list[int], operator.add]


def test_subgraph_nodes_nest_under_a_subgraph_span_inside_the_calling_node(spans) -> None:
    inner = StateGraph(Numbers)
    inner.add_node("double", lambda s: {"xs": [2 * (s.get("xs") or [1])[-1]]})
    inner.add_edge(START, "double")
    sub = inner.compile(name="doubler")
    outer = StateGraph(Numbers)
    outer.add_node("first", lambda s: {"xs": [1]})
    outer.add_node("as_node", sub)
    outer.add_node("calls_sub", lambda s: {"xs": sub.invoke({"xs": s["xs"][-1:]})["xs"][-1:]})
    outer.add_edge(START, "first")
    outer.add_edge("first", "as_node")
    outer.add_edge("as_node", "calls_sub")
    graph, config, outcome = run_graph(outer, "outer", {"xs": []})
    finished = spans.get_finished_spans()
    assert_one_rooted_trace(finished, "outer")
    index = by_id(finished)
    doubles = named(finished, "node double")
    assert len(doubles) == 2
    for double in doubles:
        sub_span = parent_of(double, index)
        assert sub_span.name == "invoke_workflow doubler"
        assert parent_of(sub_span, index).name in ("node as_node", "node calls_sub")
        assert sub_span.start_time <= double.start_time and double.end_time <= sub_span.end_time
    outer_checkpoints = {s.attributes.get("langgraph.checkpoint.id") for s in named(finished, "node ")
                         if "|" not in s.attributes["langgraph.checkpoint.ns"]}
    for double in doubles:  # the subgraph's own checkpoints, not the parent graph's
        assert double.attributes["langgraph.checkpoint.id"] not in outer_checkpoints


class TwoToolsAtOnce:
    """A model double that asks for two tool calls in one message (smolagents runs them in threads)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, settings: Any) -> Any:
        from smolagents import Model
        from smolagents.models import (
            ChatMessage,
            ChatMessageToolCall,
            ChatMessageToolCallFunction,
            MessageRole,
        )

        double = self

        class Parallel(Model):
            def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None, **kw):
                double.calls += 1
                if double.calls == 1:
                    names = [("profile_dataset", {}), ("validate_dataset", {})]
                else:
                    names = [("final_answer", {"answer": "both done"})]
                calls = [ChatMessageToolCall(id=f"c{i}", type="function",
                                             function=ChatMessageToolCallFunction(name=n, arguments=a))
                         for i, (n, a) in enumerate(names)]
                return ChatMessage(role=MessageRole.ASSISTANT, content="Thought: both at once", tool_calls=calls)

        return Parallel(model_id="parallel-double")


def test_tool_calls_run_in_smolagents_threads_stay_children_of_their_step(spans, monkeypatch) -> None:
    from relaygraph.providers import Provider, register_provider
    from relaygraph.providers.offline import OfflineChatModel

    register_provider(Provider("two-at-once", TwoToolsAtOnce(), lambda s: OfflineChatModel(), lambda s: "double"))
    monkeypatch.setenv("RELAYGRAPH_MODEL", "two-at-once")
    spec = AgentSpec(name="checker", role="checker", instructions="Profile and validate.",
                     tools=("profile_dataset", "validate_dataset"))
    builder = StateGraph(WorkflowState, input_schema=RunInput)
    builder.add_node("checker", make_agent_node(spec))
    builder.add_edge(START, "checker")
    run_graph(builder, "threads", {"task": "Profile and validate."})
    finished = spans.get_finished_spans()
    index = by_id(finished)
    tools = {s.attributes["gen_ai.tool.name"]: s for s in named(finished, "execute_tool ")}
    first_step = parent_of(tools["profile_dataset"], index)
    assert first_step.name == "react_step checker"
    assert parent_of(tools["validate_dataset"], index) is first_step
    assert parent_of(tools["final_answer"], index) is not first_step


# --- LLM calls over HTTP: traceparent, token usage, cost rollups --------------------------------


class FakeOpenAI:
    """An OpenAI-compatible /chat/completions endpoint answering with a final_answer tool call."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                body = json.dumps({
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
                    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                        "role": "assistant", "content": None,
                        "tool_calls": [{"id": "call_1", "type": "function", "function": {
                            "name": "final_answer", "arguments": json.dumps({"answer": "42 rows"})}}]}}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"


def test_llm_http_calls_carry_the_chat_spans_traceparent_and_tokens_roll_up_with_cost(spans, monkeypatch) -> None:
    server = FakeOpenAI()
    monkeypatch.setenv("RELAYGRAPH_MODEL", "openai")
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("RELAYGRAPH_MODEL_ID", "gpt-4o-mini")
    try:
        spec = AgentSpec(name="solo", role="analyst", instructions="Answer.", tools=("profile_dataset",))
        builder = StateGraph(WorkflowState, input_schema=RunInput)
        builder.add_node("solo", make_agent_node(spec))
        builder.add_node("finalize", make_result_node("solo"))
        builder.add_edge(START, "solo")
        builder.add_edge("solo", "finalize")
        _, _, outcome = run_graph(builder, "http", {"task": "How many rows?"})
    finally:
        server.server.shutdown()
    finished = spans.get_finished_spans()
    chat = named(finished, "chat gpt-4o-mini")
    assert len(chat) == 1 == len(server.headers)
    version, trace_id, parent_id, _ = server.headers[0]["traceparent"].split("-")
    assert int(trace_id, 16) == chat[0].context.trace_id
    assert int(parent_id, 16) == chat[0].context.span_id
    assert chat[0].attributes["gen_ai.usage.input_tokens"] == 100
    assert chat[0].attributes["gen_ai.usage.output_tokens"] == 20
    cost = (100 * 0.15 + 20 * 0.60) / 1e6
    for name in ("react_step solo", "invoke_agent solo", "node solo", "invoke_workflow http"):
        span = named(finished, name)[0]
        assert span.attributes["relaygraph.usage.input_tokens"] == 100, name
        assert span.attributes["relaygraph.usage.cost_usd"] == pytest.approx(cost), name
    assert named(finished, "node finalize")[0].attributes["relaygraph.usage.llm_calls"] == 0
    result = outcome.values["result"]
    assert result["usage"]["input_tokens"] == 100 and result["usage"]["output_tokens"] == 20
    assert result["usage"]["cost_usd"] == pytest.approx(cost)
    assert result["usage"]["by_node"]["solo"]["input_tokens"] == 100
    assert result["agents"]["solo"]["cost_usd"] == pytest.approx(cost)


def test_an_offline_run_reports_no_tokens_and_no_cost_rather_than_zero(spans, invoke_config) -> None:
    from relaygraph.graphs.sequential import graph

    state = graph.invoke({"task": "Profile the dataset."}, invoke_config)
    usage = state["result"]["usage"]
    # The offline policy is not an LLM: its calls are counted as what they are, never as LLM calls.
    assert usage["offline_policy_calls"] == len(state["steps"]) > 0 and usage["llm_calls"] == 0
    assert all(n["llm_calls"] == 0 and n["offline_policy_calls"] > 0 for n in usage["by_node"].values())
    assert usage["input_tokens"] is None and usage["cost_usd"] is None
    assert all(a["input_tokens"] is None for a in state["result"]["agents"].values())
    finished = spans.get_finished_spans()
    assert not [s for s in finished if "gen_ai.usage.input_tokens" in (s.attributes or {})]
    root = named(finished, "invoke_workflow sequential")[0]
    assert root.attributes["relaygraph.usage.offline_policy_calls"] == usage["offline_policy_calls"]
    assert not [s.name for s in finished if (s.attributes or {}).get("relaygraph.usage.llm_calls")]


def test_the_cli_trace_of_an_offline_run_says_offline_policy_calls_not_llm_calls(isolated_env) -> None:
    from relaygraph.cli.main import app
    from typer.testing import CliRunner

    shown = CliRunner().invoke(app, ["run", "sequential", "--thread-id", "offline-trace", "--trace"])
    assert shown.exit_code == 0, shown.output
    assert "offline-policy calls=" in shown.stdout and "llm calls" not in shown.stdout


# --- errors and retries -----------------------------------------------------------------------


def test_errors_are_recorded_on_spans_and_the_retried_run_still_completes(spans, script) -> None:
    script.play(RuntimeError("server overloaded"),                       # attempt 1: model error
                ("call", "profile_dataset", {"dataset": "missing.csv"}),  # attempt 2: a tool error...
                ("call", "profile_dataset", {"dataset": "sample_sales.csv"}),  # ...then the right call
                ("final", "profiled"))
    spec = AgentSpec(name="extract", role="extractor", instructions="Profile the dataset.",
                     tools=("profile_dataset",))
    builder = StateGraph(WorkflowState, input_schema=RunInput)
    builder.add_node("extract", make_agent_node(spec),
                     retry_policy=RetryPolicy(max_attempts=2, retry_on=AgentRunError, initial_interval=0.01))
    builder.add_node("finalize", make_result_node("extract"))
    builder.add_edge(START, "extract")
    builder.add_edge("extract", "finalize")
    _, _, outcome = run_graph(builder, "retry", {"task": "Profile the dataset."})
    assert outcome.values["result"]["status"] == "completed"
    finished = spans.get_finished_spans()
    assert_one_rooted_trace(finished, "retry")
    attempts = sorted(named(finished, "node extract"), key=lambda s: s.attributes["relaygraph.node.attempt"])
    assert [s.attributes["relaygraph.node.attempt"] for s in attempts] == [1, 2]
    assert attempts[0].status.status_code == StatusCode.ERROR
    assert any(e.name == "exception" for e in attempts[0].events)
    assert attempts[1].status.status_code != StatusCode.ERROR
    failed_chat = [s for s in named(finished, "chat ") if s.status.status_code == StatusCode.ERROR]
    assert len(failed_chat) == 1 and "server overloaded" in failed_chat[0].status.description
    tool_errors = [s for s in named(finished, "execute_tool ") if s.attributes["relaygraph.tool.status"] == "error"]
    assert len(tool_errors) == 1 and tool_errors[0].attributes["error.type"]
    assert by_id(finished)[tool_errors[0].parent.span_id].status.status_code == StatusCode.ERROR  # its step


# --- content is opt-in ------------------------------------------------------------------------

CONTENT_KEYS = {"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.tool.call.arguments",
                "gen_ai.tool.call.result", "input.value", "output.value"}


SEQUENTIAL = ("data extractor", "data cleaner", "data analyst", "report writer")


def sequential_cast(cast: Any, runs: int = 1) -> None:
    """The sequential graph's agents, scripted for ``runs`` runs: the extractor profiles the data
    (a tool call with arguments and a result), the others answer at once."""
    profile = [("call", "profile_dataset", {"dataset": "sample_sales.csv"}), ("final", "profiled")]
    for role in SEQUENTIAL:
        cast.scripts[role] = (profile if role == SEQUENTIAL[0] else [("final", "done")]) * runs


def test_prompts_messages_and_tool_arguments_are_recorded_only_when_opted_in(spans, cast, sample_path,
                                                                            invoke_config) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from relaygraph.graphs.sequential import graph

    sequential_cast(cast, runs=2)

    graph.invoke({"task": "Profile the dataset."}, invoke_config)
    assert not [k for s in spans.get_finished_spans() for k in s.attributes if k in CONTENT_KEYS]

    with_content = InMemorySpanExporter()
    tracing.configure(enabled=True, processors=[SimpleSpanProcessor(with_content)], trace_content=True)
    graph.invoke({"task": "Profile the dataset."}, {"configurable": {"thread_id": "with-content"}})
    recorded = {k for s in with_content.get_finished_spans() for k in s.attributes}
    assert CONTENT_KEYS <= recorded


def test_configure_is_idempotent_and_with_tracing_off_the_hook_makes_no_spans(spans, cast, sample_path,
                                                                              invoke_config) -> None:
    sequential_cast(cast)
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    processors = [SimpleSpanProcessor(InMemorySpanExporter())]
    assert tracing.configure(enabled=True, processors=processors)
    provider = tracing._state.provider  # noqa: SLF001
    assert tracing.configure(enabled=True, processors=processors)
    assert tracing._state.provider is provider  # noqa: SLF001

    assert tracing.configure(enabled=False) is False
    from relaygraph.graphs.sequential import graph

    graph.invoke({"task": "Profile the dataset."}, invoke_config)
    assert isinstance(tracing.tracer(), trace.NoOpTracer)
    assert not instrument_langchain._handler._runs  # noqa: SLF001 - the installed hook stayed inert
