"""Tracing: OpenTelemetry spans for every run, node, agent, ReAct step, LLM call and tool call.

    configure() ─► TracerProvider(service.name) ─► OTLP / console (OTEL_* env) + span store (DB)
        │
        └─► LangChain configure hook ─► SpanHandler sees every LangGraph run, however started
              root graph run ─► invoke_workflow {graph}      (CLI, graph.invoke, `langgraph dev`)
              task run       ─► node {node}                  (step, attempt, checkpoint ids)
              subgraph run   ─► invoke_workflow {subgraph}
              chat model     ─► chat {model}                 (LangChain models: routers, supervisors)
    nodes/agent.py ─► AgentTrace ─► invoke_agent {agent} ─► react_step ─► chat {model}
                                                                     └─► execute_tool {tool}

Why a callback hook and not a wrapper per node: ``register_configure_hook`` is LangChain's public
way to add a handler to *every* callback manager, so runs started by our runner, by
``graph.invoke`` in a notebook, or by ``langgraph dev`` are all traced the same way, and every
node — agents, routers, aggregators, subgraphs — gets its span without touching graph modules.
The handler makes node spans *current* (attach on start, detach on end, in the task's own
context), so spans opened inside a node — LangGraph's thread pool, smolagents' tool threads,
``traceparent`` on HTTP calls — get the right parent.

Why node spans may end a little late: the checkpoint a node produced only exists after its
superstep. Checkpoint events come from relaygraph's saver as it stores them (so plain
``invoke`` and ``langgraph dev`` runs are covered) and from the runner's ``checkpoints`` stream
(:func:`checkpoint_feed`, which covers any saver). While a workflow runs, a finished node's
span is kept open (its end time is fixed when the node finishes) until the checkpoint it
started from and the one its step produced are both known, or the workflow ends.

Names and attributes follow the OpenTelemetry GenAI conventions (``gen_ai.*``) and carry
OpenInference kinds (``openinference.span.kind``) so Jaeger, Phoenix and Langfuse render them.
Prompts, messages, tool arguments and results are recorded only with
``RELAYGRAPH_TRACE_CONTENT=true``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

TRACER_NAME = "relaygraph"
CONTENT_LIMIT = 4000  # characters of recorded content (opt-in) per attribute

# Attribute keys (GenAI semantic conventions, OpenInference, LangGraph, relaygraph).
OP = "gen_ai.operation.name"
OI_KIND = "openinference.span.kind"
THREAD_ID = "relaygraph.thread_id"
RUN_ID = "relaygraph.run_id"
NODE = "langgraph.node"
STEP = "langgraph.step"
ATTEMPT = "relaygraph.node.attempt"
AGENT_NODE = "relaygraph.agent.node"  # the agent's name for its node (its progress entry), not LangGraph's
CHECKPOINT_ID = "langgraph.checkpoint.id"
PARENT_CHECKPOINT_ID = "langgraph.checkpoint.parent_id"
USAGE_IN, USAGE_OUT = "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"
ROLLUP_IN, ROLLUP_OUT = "relaygraph.usage.input_tokens", "relaygraph.usage.output_tokens"
ROLLUP_COST, ROLLUP_CALLS = "relaygraph.usage.cost_usd", "relaygraph.usage.llm_calls"


# --- configuration ------------------------------------------------------------------------


class ModelPrice(BaseModel):
    """USD per 1M tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)


# Public list prices (USD / 1M tokens) of common OpenAI models; extend or override with
# RELAYGRAPH_MODEL_PRICES='{"my-model": {"input": 0.2, "output": 0.8}}'. Unknown model → cost None.
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gpt-4o-mini": ModelPrice(input=0.15, output=0.60),
    "gpt-4o": ModelPrice(input=2.50, output=10.00),
    "gpt-4.1": ModelPrice(input=2.00, output=8.00),
    "gpt-4.1-mini": ModelPrice(input=0.40, output=1.60),
    "gpt-4.1-nano": ModelPrice(input=0.10, output=0.40),
}


class TelemetrySettings(BaseSettings):
    """The standard OpenTelemetry variables, plus relaygraph's own tracing switches."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    service_name: str = Field(default="relaygraph", alias="OTEL_SERVICE_NAME")
    traces_exporter: str | None = Field(default=None, alias="OTEL_TRACES_EXPORTER")
    otlp_endpoint: str | None = Field(default=None, alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    otlp_traces_endpoint: str | None = Field(default=None, alias="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    otlp_protocol: str = Field(default="http/protobuf", alias="OTEL_EXPORTER_OTLP_PROTOCOL")
    otlp_traces_protocol: str | None = Field(default=None, alias="OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
    sdk_disabled: bool = Field(default=False, alias="OTEL_SDK_DISABLED")
    trace_store: bool = Field(default=True, alias="RELAYGRAPH_TRACE_STORE",
                              description="Persist spans with the run in the checkpoint database.")
    model_prices: dict[str, ModelPrice] = Field(default_factory=dict, alias="RELAYGRAPH_MODEL_PRICES")

    def exporter_names(self) -> list[str]:
        """OTEL_TRACES_EXPORTER as a list; an OTLP endpoint alone implies ``otlp`` (the spec default)."""
        if self.traces_exporter:
            return [n.strip().lower() for n in self.traces_exporter.split(",") if n.strip()]
        return ["otlp"] if (self.otlp_endpoint or self.otlp_traces_endpoint) else []

    @property
    def requested(self) -> bool:
        """Does the environment ask for tracing? (It is off unless something asks.)"""
        return not self.sdk_disabled and any(n != "none" for n in self.exporter_names())


class TelemetryError(RuntimeError):
    """Tracing cannot be configured as asked; the message says how to fix it."""


def span_exporters(settings: TelemetrySettings) -> list[SpanExporter]:
    """The exporters OTEL_TRACES_EXPORTER names (``otlp``, ``console``, ``none``)."""
    exporters: list[SpanExporter] = []
    for name in settings.exporter_names():
        if name == "none":
            continue
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
        elif name == "otlp":
            protocol = (settings.otlp_traces_protocol or settings.otlp_protocol).strip().lower()
            if protocol == "http/protobuf":
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                exporters.append(OTLPSpanExporter())  # reads the endpoint/headers variables itself
            elif protocol == "grpc":
                try:
                    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                        OTLPSpanExporter as GrpcExporter,
                    )
                except ImportError:
                    raise TelemetryError(
                        "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs `pip install "
                        "opentelemetry-exporter-otlp-proto-grpc`; or use http/protobuf (Jaeger: port 4318)."
                    ) from None
                exporters.append(GrpcExporter())
            else:
                raise TelemetryError(
                    f"Unsupported OTEL_EXPORTER_OTLP_PROTOCOL {protocol!r}: use http/protobuf or grpc."
                )
        else:
            raise TelemetryError(
                f"Unsupported OTEL_TRACES_EXPORTER {name!r}: use otlp, console or none."
            )
    return exporters


@dataclass
class _State:
    provider: TracerProvider | None = None
    tracer: trace.Tracer | None = None
    key: tuple[Any, ...] | None = None
    trace_content: bool = False
    prices: dict[str, ModelPrice] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    store_url: str | None = None


_state = _State()
_lock = threading.RLock()
_hook_installed = False


def enabled() -> bool:
    """Is tracing on? (Instrumentation costs nothing measurable when it is off.)"""
    return _state.tracer is not None


def tracer() -> trace.Tracer:
    """The relaygraph tracer (a no-op tracer while tracing is off)."""
    return _state.tracer or trace.NoOpTracer()


def trace_content() -> bool:
    return _state.trace_content


def configure(
    *,
    enabled: bool | None = None,
    store_url: str | None = None,
    processors: Sequence[SpanProcessor] = (),
    exporters: Sequence[SpanExporter] | None = None,
    trace_content: bool | None = None,
    force: bool = False,
) -> bool:
    """Set tracing up once per process; calling it again with the same arguments does nothing.

    ``enabled``: None follows the environment (OTEL_TRACES_EXPORTER / OTEL_EXPORTER_OTLP_ENDPOINT),
    True turns tracing on even without an exporter (spans still go to the span store and to
    ``processors``), False turns it off. ``store_url``: the checkpoint database to persist spans
    in (default: settings.checkpoint_db; RELAYGRAPH_TRACE_STORE=false disables). ``exporters``
    replaces the environment's exporters (each behind a BatchSpanProcessor); ``processors`` are
    added as given (tests pass a SimpleSpanProcessor over an in-memory exporter). Returns whether
    tracing is on.
    """
    from relaygraph.config.settings import get_settings

    with _lock:
        env = TelemetrySettings()
        settings = get_settings()
        on = env.requested if enabled is None else enabled
        on = on and not env.sdk_disabled
        content = settings.trace_content if trace_content is None else trace_content
        url = (store_url or settings.checkpoint_db) if env.trace_store else None
        key = (on, url, tuple(map(id, processors)), None if exporters is None else tuple(map(id, exporters)),
               content, env.model_dump_json())
        if key == _state.key and not force:
            return _state.tracer is not None
        chosen = (span_exporters(env) if exporters is None else list(exporters)) if on else []  # may raise
        _shutdown_provider()
        _state.key, _state.trace_content, _state.store_url = key, content, url if on else None
        _state.prices = {**DEFAULT_PRICES, **env.model_prices}
        if not on:
            return False
        provider = TracerProvider(resource=Resource.create({"service.name": env.service_name}))
        for exporter in chosen:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        if url:
            from relaygraph.observability.trace_store import SpanStoreExporter

            provider.add_span_processor(BatchSpanProcessor(SpanStoreExporter(url)))
        for processor in processors:
            provider.add_span_processor(processor)
        _state.provider = provider
        _state.tracer = provider.get_tracer(TRACER_NAME)
        _install_hook()
        if not isinstance(trace.get_tracer_provider(), TracerProvider):
            trace.set_tracer_provider(provider)  # first one wins: other instrumentation shares it
        return True


def configure_from_env() -> bool:
    """Turn tracing on when the environment asks (used on import, so `langgraph dev` and plain
    ``graph.invoke`` are traced from the ``env`` of langgraph.json with no code)."""
    if not TelemetrySettings().requested or enabled():
        return enabled()
    return configure()


def flush(timeout_millis: int = 10_000) -> bool:
    """Export everything finished so far (before printing a trace or exiting)."""
    provider = _state.provider
    return provider.force_flush(timeout_millis) if provider else True


def shutdown() -> None:
    """Flush and turn tracing off (tests; the SDK also shuts down at exit)."""
    with _lock:
        _shutdown_provider()
        _state.key = None


def _shutdown_provider() -> None:
    provider, _state.provider, _state.tracer = _state.provider, None, None
    if provider is not None:
        provider.shutdown()
    _handler.reset()


def store_url() -> str | None:
    """Where spans are persisted (None when not stored)."""
    return _state.store_url


# --- token and cost rollups ---------------------------------------------------------------


def price_of(model: str | None) -> ModelPrice | None:
    return _state.prices.get(model) if model else None


def cost_usd(model: str | None, input_tokens: int | None, output_tokens: int | None) -> float | None:
    """USD for one call from the price table; None when the model or its token counts are unknown."""
    price = price_of(model)
    if price is None or input_tokens is None or output_tokens is None:
        return None
    return (input_tokens * price.input + output_tokens * price.output) / 1_000_000


class Usage:
    """Tokens and cost summed over LLM calls — for a run, a node, an agent or a step.

    Honest about missing data: tokens are None when no call reported any (the offline policy
    reports none), cost is None unless every call had a price and token counts.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.llm_calls = self.reported = self.priced = 0
        self.input_tokens = self.output_tokens = 0
        self.cost = 0.0

    def add(self, model: str | None, input_tokens: int | None, output_tokens: int | None) -> None:
        cost = cost_usd(model, input_tokens, output_tokens)
        with self._lock:
            self.llm_calls += 1
            if input_tokens is not None and output_tokens is not None:
                self.reported += 1
                self.input_tokens += input_tokens
                self.output_tokens += output_tokens
            if cost is not None:
                self.priced += 1
                self.cost += cost

    def summary(self) -> dict[str, Any]:
        tokens = self.reported > 0
        return {
            "llm_calls": self.llm_calls,
            "input_tokens": self.input_tokens if tokens else None,
            "output_tokens": self.output_tokens if tokens else None,
            "cost_usd": round(self.cost, 6) if self.llm_calls and self.priced == self.llm_calls else None,
        }

    def attributes(self, *, gen_ai: bool = False) -> dict[str, Any]:
        s = self.summary()
        attrs: dict[str, Any] = {ROLLUP_CALLS: s["llm_calls"]}
        if s["input_tokens"] is not None:
            attrs.update({ROLLUP_IN: s["input_tokens"], ROLLUP_OUT: s["output_tokens"]})
            if gen_ai:
                attrs.update({USAGE_IN: s["input_tokens"], USAGE_OUT: s["output_tokens"]})
        if s["cost_usd"] is not None:
            attrs[ROLLUP_COST] = s["cost_usd"]
        return attrs


_USAGE_KEY = otel_context.create_key("relaygraph-usage")


def _with_usage(ctx: otel_context.Context, usage: Usage) -> otel_context.Context:
    """A context whose LLM calls also count towards ``usage`` (and every enclosing rollup)."""
    return otel_context.set_value(_USAGE_KEY, (*(otel_context.get_value(_USAGE_KEY, ctx) or ()), usage), ctx)


def record_llm_usage(model: str | None, input_tokens: int | None, output_tokens: int | None,
                     ctx: otel_context.Context | None = None) -> None:
    for usage in otel_context.get_value(_USAGE_KEY, ctx) or ():
        usage.add(model, input_tokens, output_tokens)


def priced_model(settings: Any) -> str | None:
    """The model name to price a run's calls by: the configured model of a paid provider."""
    return settings.model_id if getattr(settings, "provider", None) == "openai" else None


def usage_rollup(steps: Sequence[dict[str, Any]], model: str | None) -> dict[str, Any]:
    """Tokens and cost per node and for the run, from the ReAct steps kept in graph state.

    The run's ``result`` carries this, so the numbers survive without a tracing backend.
    """
    total, by_node = Usage(), {}
    for step in steps:  # one ReAct step is one LLM call
        node = by_node.setdefault(step.get("node") or step.get("agent") or "?", Usage())
        for usage in (total, node):
            usage.add(model, step.get("input_tokens"), step.get("output_tokens"))
    return {**total.summary(), "by_node": {name: u.summary() for name, u in by_node.items()}}


# --- content (opt-in) ---------------------------------------------------------------------


def _clip(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= CONTENT_LIMIT else f"{text[:CONTENT_LIMIT]}… [truncated]"


def _content(span: Span, key: str, value: Any) -> None:
    """Record prompts/arguments/results only when RELAYGRAPH_TRACE_CONTENT is on."""
    if _state.trace_content and value is not None:
        span.set_attribute(key, _clip(value))


def _error(span: Span, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:500]))
    span.set_attribute("error.type", type(exc).__qualname__)


def _ns(seconds: float | None) -> int | None:
    return int(seconds * 1e9) if seconds else None


# --- LangGraph / LangChain: the callback handler --------------------------------------------

from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402
from langchain_core.tracers.context import register_configure_hook  # noqa: E402


@dataclass
class _Run:
    """One LangChain run the handler saw; ``span`` is None for runs that get no span of their own."""

    kind: str  # workflow | node | chat | tool | pass
    name: str
    ctx: otel_context.Context  # what children of this run are parented to
    span: Span | None = None
    token: object | None = None
    usage: Usage | None = None
    root: UUID | None = None
    start_ns: int = 0
    thread_id: str | None = None
    graph_ns: str = ""
    task_id: str | None = None
    end_ns: int | None = None
    parent_checkpoint: str | None = None
    model: str | None = None


@dataclass
class _CheckpointIndex:
    """What the ``checkpoints`` stream told us about one thread (see :func:`checkpoint_feed`)."""

    parent_of_task: dict[str, str] = field(default_factory=dict)
    child_of: dict[tuple[str, str], str] = field(default_factory=dict)
    pending: dict[UUID, _Run] = field(default_factory=dict)
    feeds: int = 0


class SpanHandler(BaseCallbackHandler):
    """Turns LangGraph runs into spans. Inline, so spans become current in the node's context."""

    run_inline = True
    raise_error = False

    def __init__(self) -> None:
        self._runs: dict[UUID, _Run] = {}
        self._attempts: dict[tuple[UUID | None, str], int] = {}
        self._threads: dict[str, _CheckpointIndex] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._runs.clear()
            self._attempts.clear()
            self._threads.clear()

    # -- chains: workflow, node, subgraph ---------------------------------------------------

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
                       tags: list[str] | None = None, metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not enabled():
            return
        metadata = metadata or {}
        name = kwargs.get("name") or "chain"
        parent = self._runs.get(parent_run_id) if parent_run_id else None
        step_tag = next((t for t in tags or () if t.startswith("graph:step:")), None)
        if parent is None and parent_run_id is None and metadata.get("ls_integration") == "langgraph":
            self._start_workflow(run_id, name, metadata, inputs)
        elif step_tag is not None and parent is not None:
            if parent.kind == "pass":
                self._promote_subgraph(parent_run_id, parent)
            self._start_node(run_id, name, parent, metadata)
        else:
            ctx = parent.ctx if parent else otel_context.get_current()
            self._runs[run_id] = _Run("pass", name, ctx, root=parent.root if parent else None,
                                      start_ns=time.time_ns())

    def _start_workflow(self, run_id: UUID, name: str, metadata: dict[str, Any], inputs: Any) -> None:
        thread_id = metadata.get("thread_id")
        attrs = {OP: "invoke_workflow", "gen_ai.workflow.name": name, OI_KIND: "CHAIN", RUN_ID: str(run_id),
                 "langgraph.graph": name}
        if thread_id is not None:
            attrs.update({THREAD_ID: str(thread_id), "gen_ai.conversation.id": str(thread_id),
                          "session.id": str(thread_id)})
        span = tracer().start_span(f"invoke_workflow {name}", attributes=attrs)
        _content(span, "input.value", inputs)
        usage = Usage()
        ctx = _with_usage(trace.set_span_in_context(span), usage)
        self._runs[run_id] = _Run("workflow", name, ctx, span, otel_context.attach(ctx), usage, root=run_id,
                                  thread_id=str(thread_id) if thread_id is not None else None)
        if thread_id is not None:  # the saver's checkpoint events are collected while the run lasts
            self.feed_open(str(thread_id))

    def _promote_subgraph(self, run_id: UUID, run: _Run) -> None:
        """A pass-through run with node children is a (sub)graph: give it its span after all."""
        span = tracer().start_span(f"invoke_workflow {run.name}", context=run.ctx, start_time=run.start_ns,
                                   attributes={OP: "invoke_workflow", "gen_ai.workflow.name": run.name,
                                               OI_KIND: "CHAIN", "langgraph.graph": run.name})
        run.kind, run.span, run.usage = "workflow", span, Usage()
        run.ctx = _with_usage(trace.set_span_in_context(span, run.ctx), run.usage)

    def _start_node(self, run_id: UUID, name: str, parent: _Run, metadata: dict[str, Any]) -> None:
        task_ns = str(metadata.get("langgraph_checkpoint_ns") or "")
        graph_ns, _, last = task_ns.rpartition("|")
        task_id = last.partition(":")[2] or None
        thread_id = metadata.get("thread_id")
        with self._lock:
            key = (parent.root, task_id or str(run_id))
            attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
        attrs: dict[str, Any] = {NODE: name, "graph.node.id": name, STEP: int(metadata.get("langgraph_step") or 0),
                                 ATTEMPT: attempt, OI_KIND: "CHAIN", "langgraph.checkpoint.ns": task_ns}
        if task_id:
            attrs["langgraph.task.id"] = task_id
        if thread_id is not None:
            attrs[THREAD_ID] = str(thread_id)
        triggers = metadata.get("langgraph_triggers")
        if triggers:
            attrs["langgraph.triggers"] = [str(t) for t in triggers]
        span = tracer().start_span(f"node {name}", context=parent.ctx, attributes=attrs)
        usage = Usage()
        ctx = _with_usage(trace.set_span_in_context(span, parent.ctx), usage)
        run = _Run("node", name, ctx, span, otel_context.attach(ctx), usage, root=parent.root,
                   thread_id=str(thread_id) if thread_id is not None else None, graph_ns=graph_ns, task_id=task_id)
        index = self._threads.get(run.thread_id or "")
        if index and task_id and task_id in index.parent_of_task:
            run.parent_checkpoint = index.parent_of_task[task_id]
            span.set_attribute(PARENT_CHECKPOINT_ID, run.parent_checkpoint)
        self._runs[run_id] = run

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, None, outputs)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id, error, None)

    def _end(self, run_id: UUID, error: BaseException | None, outputs: Any) -> None:
        run = self._runs.pop(run_id, None)
        if run is None or run.span is None:
            return
        _detach(run)
        span = run.span
        if error is not None:
            _record_run_error(span, error)
        elif run.kind != "node":
            _content(span, "output.value", outputs)
        if run.usage is not None:
            span.set_attributes(run.usage.attributes(gen_ai=run.kind == "workflow"))
        if run.kind == "node" and error is None and run.thread_id in self._threads:
            run.end_ns = time.time_ns()
            with self._lock:
                index = self._threads[run.thread_id]
                index.pending[run_id] = run
                self._try_finish(index, run_id, run)
            return
        if run.kind == "workflow" and run.root == run_id:
            self._forget_root(run_id)
            if run.thread_id is not None:
                self.feed_close(run.thread_id)  # finishes node spans whose checkpoint never came
        span.end()

    # -- checkpoint ids, fed by the runner ---------------------------------------------------

    def feed_open(self, thread_id: str) -> None:
        with self._lock:
            self._threads.setdefault(thread_id, _CheckpointIndex()).feeds += 1

    def feed_close(self, thread_id: str) -> None:
        with self._lock:
            index = self._threads.get(thread_id)
            if index is None:
                return
            index.feeds -= 1
            if index.feeds > 0:
                return
            del self._threads[thread_id]
            pending = list(index.pending.values())
        for run in pending:  # the step's checkpoint never came (error elsewhere, interrupt)
            _finish_node(run)

    def observe_checkpoint(self, payload: dict[str, Any]) -> None:
        configurable = (payload.get("config") or {}).get("configurable") or {}
        thread_id, checkpoint_id = configurable.get("thread_id"), configurable.get("checkpoint_id")
        if thread_id is None or checkpoint_id is None:
            return
        ns = str(configurable.get("checkpoint_ns") or "")
        parent_id = ((payload.get("parent_config") or {}).get("configurable") or {}).get("checkpoint_id")
        with self._lock:
            index = self._threads.get(str(thread_id))
            if index is None:
                return
            for task in payload.get("tasks") or ():
                index.parent_of_task[str(task["id"])] = checkpoint_id
            if parent_id:
                index.child_of[(ns, parent_id)] = checkpoint_id
            for run_id, run in list(index.pending.items()):
                self._try_finish(index, run_id, run)
        for run in tuple(self._runs.values()):  # nodes started before their parent was known
            if run.kind == "node" and run.parent_checkpoint is None and run.thread_id == str(thread_id):
                found = index.parent_of_task.get(run.task_id or "")
                if found and run.span is not None:
                    run.parent_checkpoint = found
                    run.span.set_attribute(PARENT_CHECKPOINT_ID, found)

    def _try_finish(self, index: _CheckpointIndex, run_id: UUID, run: _Run) -> None:
        """End a finished node's span once the checkpoint it started from and the one it produced are known."""
        parent = run.parent_checkpoint or index.parent_of_task.get(run.task_id or "")
        produced = index.child_of.get((run.graph_ns, parent)) if parent else None
        if parent is None or produced is None:
            return
        run.parent_checkpoint = parent
        assert run.span is not None
        run.span.set_attributes({PARENT_CHECKPOINT_ID: parent, CHECKPOINT_ID: produced})
        index.pending.pop(run_id, None)
        _finish_node(run)

    def _forget_root(self, root: UUID) -> None:
        with self._lock:
            for key in [k for k in self._attempts if k[0] == root]:
                del self._attempts[key]

    # -- LangChain chat models and tools (routers, supervisors, handoff tools) ---------------

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
                            tags: list[str] | None = None, metadata: dict[str, Any] | None = None,
                            **kwargs: Any) -> None:
        if not enabled():
            return
        metadata = metadata or {}
        params = kwargs.get("invocation_params") or {}
        model = str(metadata.get("ls_model_name") or params.get("model") or params.get("model_name")
                    or kwargs.get("name") or "unknown")
        parent = self._runs.get(parent_run_id) if parent_run_id else None
        ctx = parent.ctx if parent else otel_context.get_current()
        span = tracer().start_span(f"chat {model}", context=ctx, kind=SpanKind.CLIENT, attributes={
            OP: "chat", "gen_ai.request.model": model, OI_KIND: "LLM", "llm.model_name": model,
            "gen_ai.provider.name": str(metadata.get("ls_provider") or "unknown")})
        if _state.trace_content:
            _content(span, "gen_ai.input.messages", [[_message_dict(m) for m in batch] for batch in messages])
        child = trace.set_span_in_context(span, ctx)
        self._runs[run_id] = _Run("chat", model, child, span, otel_context.attach(child), model=model,
                                  root=parent.root if parent else None)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.pop(run_id, None)
        if run is None or run.span is None:
            return
        _detach(run)
        input_tokens, output_tokens = _langchain_usage(response)
        if input_tokens is not None:
            run.span.set_attributes({USAGE_IN: input_tokens, USAGE_OUT: output_tokens,
                                     "llm.token_count.prompt": input_tokens,
                                     "llm.token_count.completion": output_tokens})
        record_llm_usage(run.model, input_tokens, output_tokens, run.ctx)
        if _state.trace_content:
            gens = [g.message.content if hasattr(g, "message") else g.text
                    for batch in response.generations for g in batch]
            _content(run.span, "gen_ai.output.messages", gens)
        run.span.end()

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.pop(run_id, None)
        if run is None or run.span is None:
            return
        _detach(run)
        _error(run.span, error)
        record_llm_usage(run.model, None, None, run.ctx)
        run.span.end()

    def on_tool_start(self, serialized: Any, input_str: str, *, run_id: UUID, parent_run_id: UUID | None = None,
                      **kwargs: Any) -> None:
        if not enabled():
            return
        name = str((serialized or {}).get("name") or kwargs.get("name") or "tool")
        parent = self._runs.get(parent_run_id) if parent_run_id else None
        ctx = parent.ctx if parent else otel_context.get_current()
        span = tracer().start_span(f"execute_tool {name}", context=ctx, attributes=_tool_attrs(name))
        _content(span, "gen_ai.tool.call.arguments", kwargs.get("inputs") or input_str)
        child = trace.set_span_in_context(span, ctx)
        self._runs[run_id] = _Run("tool", name, child, span, otel_context.attach(child),
                                  root=parent.root if parent else None)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.pop(run_id, None)
        if run is None or run.span is None:
            return
        _detach(run)
        run.span.set_attribute("relaygraph.tool.status", "ok")
        _content(run.span, "gen_ai.tool.call.result", str(output))
        run.span.end()

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.pop(run_id, None)
        if run is None or run.span is None:
            return
        _detach(run)
        run.span.set_attribute("relaygraph.tool.status", "error")
        _record_run_error(run.span, error)
        run.span.end()


def _detach(run: _Run) -> None:
    if run.token is not None:
        try:
            otel_context.detach(run.token)
        except Exception:  # noqa: BLE001 - a context from elsewhere: never break the run
            pass
        run.token = None


def _finish_node(run: _Run) -> None:
    if run.span is not None and run.span.is_recording():
        run.span.end(end_time=run.end_ns)


def _record_run_error(span: Span, error: BaseException) -> None:
    """Interrupts and Command(graph=PARENT) handoffs travel as exceptions; they are not failures."""
    from langgraph.errors import GraphBubbleUp, GraphInterrupt

    if isinstance(error, GraphInterrupt):
        span.set_attribute("langgraph.interrupted", True)
    elif isinstance(error, GraphBubbleUp):
        span.set_attribute("langgraph.command", "parent")
    else:
        _error(span, error)


def _message_dict(message: Any) -> dict[str, Any]:
    return {"role": getattr(message, "type", "unknown"), "content": getattr(message, "content", str(message))}


def _langchain_usage(response: Any) -> tuple[int | None, int | None]:
    for batch in getattr(response, "generations", None) or ():
        for gen in batch:
            usage = getattr(getattr(gen, "message", None), "usage_metadata", None)
            if usage:
                return usage.get("input_tokens"), usage.get("output_tokens")
    token_usage = (getattr(response, "llm_output", None) or {}).get("token_usage") or {}
    if token_usage:
        return token_usage.get("prompt_tokens"), token_usage.get("completion_tokens")
    return None, None


def _tool_attrs(name: str) -> dict[str, Any]:
    return {OP: "execute_tool", "gen_ai.tool.name": name, "gen_ai.tool.type": "function",
            OI_KIND: "TOOL", "tool.name": name}


_handler = SpanHandler()
_handler_var: ContextVar[SpanHandler | None] = ContextVar("relaygraph_span_handler", default=_handler)


def _install_hook() -> None:
    """Add the handler to every LangChain callback manager from now on (once per process)."""
    global _hook_installed
    if not _hook_installed:
        register_configure_hook(_handler_var, True)
        _hook_installed = True


def checkpoint_listener(payload: dict[str, Any]) -> None:
    """A saver listener (``SQLAlchemySaver(..., listeners=[checkpoint_listener])`` or
    ``saver.add_listener(checkpoint_listener)``): node spans of runs on that saver carry the
    checkpoint they started from and the one their step produced, with no checkpoint stream
    (plain ``invoke``, ``langgraph dev``). Free while tracing is off."""
    _handler.observe_checkpoint(payload)


@contextmanager
def checkpoint_feed(thread_id: str) -> Iterator[Callable[[dict[str, Any]], None]]:
    """While a caller streams a run with ``stream_mode="checkpoints"``, pass each event to the
    function this yields: node spans then carry the checkpoint they started from and the one
    their step produced (``langgraph.checkpoint.parent_id`` / ``.id``)."""
    if not enabled():
        yield lambda payload: None
        return
    _handler.feed_open(thread_id)
    try:
        yield _handler.observe_checkpoint
    finally:
        _handler.feed_close(thread_id)


# --- smolagents: agents, ReAct steps, LLM calls, tool calls ---------------------------------


class AgentTrace:
    """``invoke_agent {agent}`` around one smolagents run, with its steps, LLM and tool calls.

    A ReAct step has no "step started" hook in smolagents, so its span opens at the step's first
    LLM call (the first thing a step does) and closes in the step callback, which also knows
    the step's tool, thought and confidence. LLM and tool spans opened in between — tools in
    smolagents' thread pool included, which copies the context — are its children.
    """

    def __init__(self, agent: str, *, node: str, thread_id: str, provider: str, model: str | None,
                 attempt: int = 1) -> None:
        self.agent, self.node, self.thread_id = agent, node, thread_id
        self.provider, self.model_id, self.attempt = provider, model, attempt
        self.span: Span | None = None
        self.usage = Usage()
        self._token: object | None = None
        self._step: tuple[Span, object, Usage] | None = None
        self._smol_agent: Any = None

    def __enter__(self) -> AgentTrace:
        if not enabled():
            return self
        attrs = {OP: "invoke_agent", "gen_ai.agent.name": self.agent, "gen_ai.agent.id": f"{self.node}/{self.agent}",
                 "gen_ai.provider.name": self.provider, "gen_ai.conversation.id": self.thread_id, OI_KIND: "AGENT",
                 AGENT_NODE: self.node, THREAD_ID: self.thread_id, ATTEMPT: self.attempt}
        if self.model_id:
            attrs["gen_ai.request.model"] = self.model_id
        self.span = tracer().start_span(f"invoke_agent {self.agent}", attributes=attrs)
        ctx = _with_usage(trace.set_span_in_context(self.span), self.usage)
        self._token = otel_context.attach(ctx)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self.span is None:
            return
        self._close_step(None)
        if exc is not None:
            _error(self.span, exc)
            self.span.set_attribute("relaygraph.agent.failure", str(exc)[:500])
        self.span.set_attributes(self.usage.attributes(gen_ai=True))
        try:
            otel_context.detach(self._token)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001
            pass
        self.span.end()

    def record_task(self, task: str) -> None:
        if self.span is not None:
            _content(self.span, "input.value", task)

    def record_result(self, answer: str, steps: int, confidence: float | None) -> None:
        if self.span is None:
            return
        self.span.set_attribute("relaygraph.agent.steps", steps)
        if confidence is not None:
            self.span.set_attribute("relaygraph.agent.confidence", confidence)
        _content(self.span, "output.value", answer)

    # -- instrumentation of the agent's model and tools -------------------------------------

    def instrument(self, agent: Any) -> Any:
        """Trace this (fresh) agent's model calls and tool calls; returns the agent."""
        if self.span is None:
            return agent
        self._smol_agent = agent
        model = agent.model
        model.generate = self._traced_generate(model, model.generate)
        agent.execute_tool_call = self._traced_tool_call(agent.execute_tool_call)
        return agent

    def _traced_generate(self, model: Any, generate: Callable[..., Any]) -> Callable[..., Any]:
        model_id = str(getattr(model, "model_id", None) or self.model_id or type(model).__name__)

        def traced(messages: Any, *args: Any, **kwargs: Any) -> Any:
            if self._step is None:
                self._open_step()
            attrs = {OP: "chat", "gen_ai.request.model": model_id, "gen_ai.provider.name": self.provider,
                     OI_KIND: "LLM", "llm.model_name": model_id}
            with tracer().start_as_current_span(f"chat {model_id}", kind=SpanKind.CLIENT, attributes=attrs,
                                                record_exception=False, set_status_on_exception=False) as span:
                if _state.trace_content:  # built only when recorded: this runs on every LLM call
                    _content(span, "gen_ai.input.messages", [_smol_message(m) for m in messages])
                try:
                    message = generate(messages, *args, **kwargs)
                except Exception as exc:
                    _error(span, exc)
                    record_llm_usage(model_id, None, None)
                    raise
                usage = getattr(message, "token_usage", None)
                tokens = (usage.input_tokens, usage.output_tokens) if usage else (None, None)
                if usage:
                    span.set_attributes({USAGE_IN: usage.input_tokens, USAGE_OUT: usage.output_tokens,
                                         "llm.token_count.prompt": usage.input_tokens,
                                         "llm.token_count.completion": usage.output_tokens})
                calls = [c.function.name for c in getattr(message, "tool_calls", None) or ()]
                if calls:
                    span.set_attribute("relaygraph.llm.tool_calls", calls)
                if _state.trace_content:
                    _content(span, "gen_ai.output.messages", _smol_message(message))
                record_llm_usage(model_id, *tokens)
                return message

        return traced

    def _traced_tool_call(self, execute: Callable[..., Any]) -> Callable[..., Any]:
        def traced(tool_name: str, arguments: Any) -> Any:
            with tracer().start_as_current_span(f"execute_tool {tool_name}", attributes=_tool_attrs(tool_name),
                                                record_exception=False, set_status_on_exception=False) as span:
                _content(span, "gen_ai.tool.call.arguments", arguments)
                try:
                    result = execute(tool_name, arguments)
                except Exception as exc:
                    span.set_attribute("relaygraph.tool.status", "error")
                    _error(span, exc)
                    raise
                span.set_attribute("relaygraph.tool.status", "ok")
                _content(span, "gen_ai.tool.call.result", result)
                return result

        return traced

    # -- ReAct steps -------------------------------------------------------------------------

    def _open_step(self) -> None:
        number = int(getattr(self._smol_agent, "step_number", 0) or 0)
        span = tracer().start_span(f"react_step {self.agent}", attributes={
            OP: "react_step", "gen_ai.agent.name": self.agent, "relaygraph.step.number": number,
            OI_KIND: "CHAIN", AGENT_NODE: self.node})
        usage = Usage()
        ctx = _with_usage(trace.set_span_in_context(span), usage)
        self._step = (span, otel_context.attach(ctx), usage)

    def _close_step(self, record: dict[str, Any] | None, error: Any = None) -> None:
        if self._step is None:
            return
        span, token, usage = self._step
        self._step = None
        if record is not None:
            span.set_attribute("relaygraph.step.number", record["step"])
            span.set_attribute("relaygraph.step.confidence", record["confidence"])
            if record.get("tool"):
                span.set_attribute("relaygraph.step.tool", record["tool"])
            if record.get("thought"):
                span.set_attribute("relaygraph.step.thought_summary", _summary(record["thought"]))
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, str(error)[:500]))
            span.set_attribute("error.type", type(error).__qualname__)
        span.set_attributes(usage.attributes(gen_ai=True))
        try:
            otel_context.detach(token)
        except Exception:  # noqa: BLE001
            pass
        span.end()

    def step_callback(self, records: Callable[[], list[Any]]) -> Callable[..., None]:
        """A smolagents step callback closing the step span; ``records()`` gives the step records
        (run it after the StepRecorder, so the newest record is this step's)."""

        def on_step(step: Any, agent: Any = None) -> None:
            from smolagents.memory import ActionStep

            if self.span is None or not isinstance(step, ActionStep):
                return
            found = records()
            last = found[-1] if found else None
            record = last.model_dump() if hasattr(last, "model_dump") else last
            self._close_step(record if record and record.get("step") == step.step_number else None, step.error)

        return on_step


def _summary(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else f"{line[:limit]}…"


def _smol_message(message: Any) -> dict[str, Any]:
    if isinstance(message, dict):
        return {"role": str(message.get("role")), "content": message.get("content")}
    role = getattr(message, "role", "unknown")
    return {"role": str(getattr(role, "value", role)), "content": getattr(message, "content", None),
            "tool_calls": [{"name": c.function.name, "arguments": c.function.arguments}
                           for c in getattr(message, "tool_calls", None) or ()]}


# --- HTTP: W3C traceparent on calls to OpenAI-compatible servers ----------------------------


def inject_trace_headers(request: Any) -> None:
    """httpx request hook: add ``traceparent``/``tracestate`` of the current span (the LLM call's)."""
    if enabled():
        propagate.inject(request.headers)


def http_client() -> Any:
    """The OpenAI SDK's own httpx client (its timeouts and limits), propagating the trace."""
    from openai import DefaultHttpxClient

    return DefaultHttpxClient(event_hooks={"request": [inject_trace_headers]})


def async_http_client() -> Any:
    from openai import DefaultAsyncHttpxClient

    async def hook(request: Any) -> None:
        inject_trace_headers(request)

    return DefaultAsyncHttpxClient(event_hooks={"request": [hook]})


configure_from_env()
