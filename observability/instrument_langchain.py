"""LangGraph and LangChain runs as spans: workflows, nodes, subgraphs, chat models, tools.

    root graph run ─► invoke_workflow {graph}      (CLI, graph.invoke, `langgraph dev`)
    task run       ─► node {node}                  (step, attempt, checkpoint ids; a Send
                                                    branch is named by its branch id: node {node}[{id}])
    subgraph run   ─► invoke_workflow {subgraph}
    chat model     ─► chat {model}                 (LangChain models: routers, supervisors)
    tool           ─► execute_tool {tool}          (LangChain tools: handoff tools)

Why a callback hook and not a wrapper per node: ``register_configure_hook`` is LangChain's public
way to add a handler to *every* callback manager, so runs started by our runner, by
``graph.invoke`` in a notebook, or by ``langgraph dev`` are all traced the same way, and every
node — agents, routers, aggregators, subgraphs — gets its span without touching graph modules.

Why only relaygraph's graphs: the hook sees every LangChain/LangGraph run in the process, and a
user who imports relaygraph next to graphs of their own must not find those traced (nor a
global TracerProvider set up by them). So the handler acts only on runs whose metadata carries
:data:`INSTRUMENTED` — set on every graph compiled from a :class:`TracedStateGraph` (all of
relaygraph's builders) or passed through :func:`instrumented` (the runner) — and on what runs
inside them. Any other root run is ignored whole: no settings read, no span. Importing this
module registers the handler; a relaygraph root run configures tracing from the settings once
per process (``tracing.ensure_configured``), and the handler is free while tracing is off. The handler makes node spans *current* (attach on start, detach on
end, in the task's own context), so spans opened inside a node — LangGraph's thread pool,
smolagents' tool threads, ``traceparent`` on HTTP calls — get the right parent.

Why node spans may end a little late: the checkpoint a node produced only exists after its
superstep. Checkpoint events come from a saver that was handed :func:`checkpoint_listener`
(``langgraph dev``'s, or yours) and from the runner's ``checkpoints`` stream
(:func:`checkpoint_feed`, which covers any saver). While a workflow runs, a finished node's
span is kept open (its end time is fixed when the node finishes) until the checkpoint it
started from and the one its step produced are both known, or the workflow ends.

Why hand-written and not ``openinference-instrumentation-langchain``: see the evaluation in
:mod:`relaygraph.observability` (checkpoint ids, attempts and usage rollups need LangGraph's
task metadata and the saver's events, which no generic LangChain tracer sees).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.tracers.context import register_configure_hook
from langgraph.errors import GraphBubbleUp, GraphInterrupt
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind
from relaygraph.observability import messages, tracing
from relaygraph.observability.messages import dumps as dump_messages
from relaygraph.observability.messages import langchain_message
from relaygraph.observability.semconv import (
    ATTEMPT,
    CHECKPOINT_ID,
    INPUT_MESSAGES,
    NODE,
    OI_KIND,
    OP,
    OUTPUT_MESSAGES,
    PARENT_CHECKPOINT_ID,
    RUN_ID,
    STEP,
    THREAD_ID,
    USAGE_IN,
    USAGE_OUT,
    tool_attributes,
)
from relaygraph.observability.tracing import enabled, record_content, record_error, tracer
from relaygraph.observability.usage import Usage, record_llm_usage, with_usage

BRANCH_ID = "relaygraph.branch.id"

#: Run metadata: this run is relaygraph's, so its instrumentation traces it (see the docstring).
INSTRUMENTED = "relaygraph_instrumented"


def instrumented(graph: CompiledStateGraph) -> CompiledStateGraph:
    """``graph`` with :data:`INSTRUMENTED` in its config metadata: its runs get relaygraph's spans."""
    return graph.with_config(metadata={INSTRUMENTED: True})


class TracedStateGraph(StateGraph):
    """A ``StateGraph`` whose compiled graphs relaygraph's instrumentation traces.

    Why in the builder: ``build_graph().compile(checkpointer=...)`` is how users (and
    ``langgraph dev``, through each module's ``graph``) get relaygraph's graphs, so the mark has
    to survive a ``compile`` that relaygraph does not call itself."""

    def compile(self, *args: Any, **kwargs: Any) -> CompiledStateGraph:
        return instrumented(super().compile(*args, **kwargs))


def _ours(metadata: dict[str, Any] | None) -> bool:
    return bool((metadata or {}).get(INSTRUMENTED))


@dataclass
class _Run:
    """One LangChain run the handler saw; ``span`` is None for runs that get no span of their own."""

    kind: str  # workflow | node | chat | tool | pass
    name: str
    ctx: otel_context.Context  # what children of this run are parented to
    span: Span | None = None
    token: Token[otel_context.Context] | None = None
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
        self._generation = tracing.generation()

    def reset(self) -> None:
        """Forget every run (tracing was reconfigured: their spans belong to an old provider)."""
        with self._lock:
            self._generation = tracing.generation()
            self._runs.clear()
            self._attempts.clear()
            self._threads.clear()

    # -- chains: workflow, node, subgraph ---------------------------------------------------

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
                       tags: list[str] | None = None, metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        parent = self._runs.get(parent_run_id) if parent_run_id else None
        if parent is None and (parent_run_id is not None or not _ours(metadata)):
            return  # someone else's run, or one inside a run that got no span: not ours to trace
        if parent_run_id is None:  # a run starts: the first one reads the settings; stale runs go
            tracing.ensure_configured()
            if self._generation != tracing.generation():
                self.reset()
        if not enabled():
            return
        metadata = metadata or {}
        name = kwargs.get("name") or "chain"
        step_tag = next((t for t in tags or () if t.startswith("graph:step:")), None)
        if parent is None and metadata.get("ls_integration") == "langgraph":
            self._start_workflow(run_id, name, metadata, inputs)
        elif step_tag is not None and parent is not None and parent_run_id is not None:
            if parent.kind == "pass":
                self._promote_subgraph(parent_run_id, parent)
            self._start_node(run_id, name, parent, metadata, inputs)
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
        # The runner names this run's root span and the run it continues (tracing.ROOT_KEY/LINK_KEY)
        links = tracing.link_to(metadata.get(tracing.LINK_KEY), "continues")
        with tracing.preset_root(metadata.get(tracing.ROOT_KEY)):
            span = tracer().start_span(f"invoke_workflow {name}", attributes=attrs, links=links)
        record_content(span, "input.value", inputs)
        usage = Usage(tracing.prices())
        ctx = with_usage(trace.set_span_in_context(span), usage)
        self._runs[run_id] = _Run("workflow", name, ctx, span, otel_context.attach(ctx), usage, root=run_id,
                                  thread_id=str(thread_id) if thread_id is not None else None)
        if thread_id is not None:  # the saver's checkpoint events are collected while the run lasts
            self.feed_open(str(thread_id))

    def _promote_subgraph(self, run_id: UUID, run: _Run) -> None:
        """A pass-through run with node children is a (sub)graph: give it its span after all."""
        span = tracer().start_span(f"invoke_workflow {run.name}", context=run.ctx, start_time=run.start_ns,
                                   attributes={OP: "invoke_workflow", "gen_ai.workflow.name": run.name,
                                               OI_KIND: "CHAIN", "langgraph.graph": run.name})
        run.kind, run.span, run.usage = "workflow", span, Usage(tracing.prices())
        run.ctx = with_usage(trace.set_span_in_context(span, run.ctx), run.usage)

    def _start_node(self, run_id: UUID, name: str, parent: _Run, metadata: dict[str, Any], inputs: Any) -> None:
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
        branch = _branch_id(inputs)
        if branch is not None:
            attrs[BRANCH_ID] = branch
        # Parallel branches of one node (Send): each is named by what it ran.
        span_name = f"node {name}" if branch in (None, name) else f"node {name}[{branch}]"
        span = tracer().start_span(span_name,
                                   context=parent.ctx, attributes=attrs)
        usage = Usage(tracing.prices())
        ctx = with_usage(trace.set_span_in_context(span, parent.ctx), usage)
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
            record_content(span, "output.value", outputs)
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

    def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[BaseMessage]], *,
                            run_id: UUID, parent_run_id: UUID | None = None,
                            tags: list[str] | None = None, metadata: dict[str, Any] | None = None,
                            **kwargs: Any) -> None:
        parent = self._runs.get(parent_run_id) if parent_run_id else None
        if not enabled() or (parent is None and not _ours(metadata)):
            return
        metadata = metadata or {}
        params = kwargs.get("invocation_params") or {}
        model = str(metadata.get("ls_model_name") or params.get("model") or params.get("model_name")
                    or kwargs.get("name") or "unknown")
        ctx = parent.ctx if parent else otel_context.get_current()
        span = tracer().start_span(f"chat {model}", context=ctx, kind=SpanKind.CLIENT, attributes={
            OP: "chat", "gen_ai.request.model": model, OI_KIND: "LLM", "llm.model_name": model,
            "gen_ai.provider.name": str(metadata.get("ls_provider") or "unknown")})
        if tracing.trace_content():  # one chat call gets one batch
            span.set_attribute(INPUT_MESSAGES, dump_messages(
                [langchain_message(m) for batch in messages for m in batch]))
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
        if tracing.trace_content():
            outputs = [messages.output_message(_generation_message(g), _finish_reason(g))
                       for batch in response.generations for g in batch]
            run.span.set_attribute(OUTPUT_MESSAGES, messages.dumps(outputs))
        run.span.end()

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.pop(run_id, None)
        if run is None or run.span is None:
            return
        _detach(run)
        record_error(run.span, error)
        record_llm_usage(run.model, None, None, run.ctx)
        run.span.end()

    def on_tool_start(self, serialized: Any, input_str: str, *, run_id: UUID, parent_run_id: UUID | None = None,
                      **kwargs: Any) -> None:
        parent = self._runs.get(parent_run_id) if parent_run_id else None
        if not enabled() or (parent is None and not _ours(kwargs.get("metadata"))):
            return
        name = str((serialized or {}).get("name") or kwargs.get("name") or "tool")
        ctx = parent.ctx if parent else otel_context.get_current()
        span = tracer().start_span(f"execute_tool {name}", context=ctx, attributes=tool_attributes(name))
        record_content(span, "gen_ai.tool.call.arguments", kwargs.get("inputs") or input_str)
        child = trace.set_span_in_context(span, ctx)
        self._runs[run_id] = _Run("tool", name, child, span, otel_context.attach(child),
                                  root=parent.root if parent else None)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = self._runs.pop(run_id, None)
        if run is None or run.span is None:
            return
        _detach(run)
        run.span.set_attribute("relaygraph.tool.status", "ok")
        record_content(run.span, "gen_ai.tool.call.result", str(output))
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
    if isinstance(error, GraphInterrupt):
        span.set_attribute("langgraph.interrupted", True)
    elif isinstance(error, GraphBubbleUp):
        span.set_attribute("langgraph.command", "parent")
    else:
        record_error(span, error)


def _generation_message(generation: Any) -> messages.Message:
    message = getattr(generation, "message", None)
    if message is not None:
        return messages.langchain_message(message)
    return {"role": "assistant", "parts": messages.text_parts(getattr(generation, "text", ""))}


def _finish_reason(generation: Any) -> str | None:
    info = getattr(generation, "generation_info", None) or {}
    metadata = getattr(getattr(generation, "message", None), "response_metadata", None) or {}
    reason = info.get("finish_reason") or metadata.get("finish_reason")
    if reason is None:
        return None
    return {"tool_calls": "tool_call", "function_call": "tool_call"}.get(reason, reason)


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


def _branch_id(inputs: Any) -> str | None:
    """A ``Send`` branch's id (relaygraph's branch state: ``{"branch": {"id": ...}}``), if any."""
    branch = inputs.get("branch") if isinstance(inputs, dict) else None
    found = branch.get("id") if isinstance(branch, dict) else getattr(branch, "id", None)
    return None if found is None else str(found)


_handler = SpanHandler()
_handler_var: ContextVar[SpanHandler | None] = ContextVar("relaygraph_span_handler", default=_handler)


def checkpoint_listener(payload: dict[str, Any]) -> None:
    """A saver listener (``SQLAlchemySaver(..., listeners=[checkpoint_listener])`` or
    ``saver.add_listener(checkpoint_listener)``): node spans of runs on that saver carry the
    checkpoint they started from and the one their step produced, with no checkpoint stream
    (plain ``invoke``, ``langgraph dev``), and the spans that ended by this commit (nodes whose
    step it saved included) are stored before the run goes on — as durable as the checkpoint
    (:func:`tracing.checkpoint_committed`). The runner adds it to relaygraph's saver for each
    run. Free while tracing is off."""
    _handler.observe_checkpoint(payload)
    tracing.checkpoint_committed()


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




# Registered once, at import: inert (no provider, no settings read) until a run of relaygraph's
# graphs starts; every other run passes through it untouched.
register_configure_hook(_handler_var, True)
