"""smolagents agents as spans: the agent run, each ReAct step, its LLM calls and tool calls.

    nodes/agent.py ─► AgentTrace ─► invoke_agent {agent} ─► react_step {agent} ─► chat {model}
                                                                            └─► execute_tool {tool}

A ReAct step has no "step started" hook in smolagents, so its span opens at the step's first
LLM call (the first thing a step does) and closes in the step callback, which also knows the
step's tool, thought and confidence. LLM and tool spans opened in between — tools in
smolagents' thread pool included, which copies the context — are its children. Usage is
rolled up per step, agent, node and run along the OpenTelemetry context (``usage.py``).

Why not ``openinference-instrumentation-smolagents``: see the evaluation in
:mod:`relaygraph.observability` (it has no ReAct step spans, no usage rollups, and its
spans need its own TracerProvider wiring; ours are the same tree with those).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue
from relaygraph.observability import messages as messages_
from relaygraph.observability import tracing
from relaygraph.observability.semconv import (
    AGENT_NODE,
    ATTEMPT,
    INPUT_MESSAGES,
    OI_KIND,
    OP,
    OUTPUT_MESSAGES,
    THREAD_ID,
    USAGE_IN,
    USAGE_OUT,
    tool_attributes,
)
from relaygraph.observability.tracing import enabled, record_content, record_error, tracer
from relaygraph.observability.usage import Usage, record_llm_usage, with_usage
from smolagents.memory import ActionStep


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
        self.usage = Usage(tracing.prices())
        self._token: Token[otel_context.Context] | None = None
        self._step: tuple[Span, Token[otel_context.Context], Usage] | None = None
        self._smol_agent: Any = None

    def __enter__(self) -> AgentTrace:
        tracing.ensure_configured()  # an agent run outside any traced graph (rare) reads settings too
        if not enabled():
            return self
        attrs: dict[str, AttributeValue] = {
            OP: "invoke_agent", "gen_ai.agent.name": self.agent, "gen_ai.agent.id": f"{self.node}/{self.agent}",
            "gen_ai.provider.name": self.provider, "gen_ai.conversation.id": self.thread_id, OI_KIND: "AGENT",
            AGENT_NODE: self.node, THREAD_ID: self.thread_id, ATTEMPT: self.attempt}
        if self.model_id:
            attrs["gen_ai.request.model"] = self.model_id
        self.span = tracer().start_span(f"invoke_agent {self.agent}", attributes=attrs)
        ctx = with_usage(trace.set_span_in_context(self.span), self.usage)
        self._token = otel_context.attach(ctx)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self.span is None:
            return
        self._close_step(None)
        if exc is not None:
            record_error(self.span, exc)
            self.span.set_attribute("relaygraph.agent.failure", str(exc)[:500])
        self.span.set_attributes(self.usage.attributes(gen_ai=True))
        assert self._token is not None  # attached in __enter__ together with the span
        try:
            otel_context.detach(self._token)
        except Exception:  # noqa: BLE001
            pass
        self.span.end()

    def record_task(self, task: str) -> None:
        if self.span is not None:
            record_content(self.span, "input.value", task)

    def record_result(self, answer: str, steps: int, confidence: float | None) -> None:
        if self.span is None:
            return
        self.span.set_attribute("relaygraph.agent.steps", steps)
        if confidence is not None:
            self.span.set_attribute("relaygraph.agent.confidence", confidence)
        record_content(self.span, "output.value", answer)

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
                if tracing.trace_content():  # built only when recorded: this runs on every LLM call
                    span.set_attribute(INPUT_MESSAGES, messages_.dumps(
                        [messages_.smolagents_message(m) for m in messages]))
                try:
                    message = generate(messages, *args, **kwargs)
                except Exception as exc:
                    record_error(span, exc)
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
                if tracing.trace_content():
                    out = messages_.output_message(messages_.smolagents_message(message), None)
                    span.set_attribute(OUTPUT_MESSAGES, messages_.dumps([out]))
                record_llm_usage(model_id, *tokens)
                return message

        return traced

    def _traced_tool_call(self, execute: Callable[..., Any]) -> Callable[..., Any]:
        def traced(tool_name: str, arguments: Any) -> Any:
            with tracer().start_as_current_span(f"execute_tool {tool_name}", attributes=tool_attributes(tool_name),
                                                record_exception=False, set_status_on_exception=False) as span:
                record_content(span, "gen_ai.tool.call.arguments", arguments)
                try:
                    result = execute(tool_name, arguments)
                except Exception as exc:
                    span.set_attribute("relaygraph.tool.status", "error")
                    record_error(span, exc)
                    raise
                span.set_attribute("relaygraph.tool.status", "ok")
                record_content(span, "gen_ai.tool.call.result", result)
                return result

        return traced

    # -- ReAct steps -------------------------------------------------------------------------

    def _open_step(self) -> None:
        number = int(getattr(self._smol_agent, "step_number", 0) or 0)
        span = tracer().start_span(f"react_step {self.agent}", attributes={
            OP: "react_step", "gen_ai.agent.name": self.agent, "relaygraph.step.number": number,
            OI_KIND: "CHAIN", AGENT_NODE: self.node})
        usage = Usage(tracing.prices())
        ctx = with_usage(trace.set_span_in_context(span), usage)
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
            if self.span is None or not isinstance(step, ActionStep):
                return
            found = records()
            last: Any = found[-1] if found else None  # a record model, or a dict from a test double
            record = last.model_dump() if hasattr(last, "model_dump") else last
            self._close_step(record if record and record.get("step") == step.step_number else None, step.error)

        return on_step


def _summary(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else f"{line[:limit]}…"
