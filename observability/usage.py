"""Tokens and cost: per LLM call, rolled up per ReAct step, agent, node and run.

Prices come from the settings (``RELAYGRAPH_MODEL_PRICES`` over :data:`DEFAULT_PRICES`), so
a run's ``result.usage`` is priced the same under the CLI, plain ``graph.invoke`` and
``langgraph dev``. Span rollups ride on the OpenTelemetry context: every span that wants a
rollup puts a :class:`Usage` into the context its children run in, and each LLM call adds
itself to all of them (:func:`record_llm_usage`), across threads, because the context is
copied into LangGraph's and smolagents' thread pools.

The offline provider is a rule-based policy, not an LLM: its calls are counted apart, as
``offline_policy_calls`` (span attribute ``relaygraph.usage.offline_policy_calls``), and never
as ``llm_calls`` — an offline run used to report "llm calls=70" for a run with no LLM in it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, cast

from opentelemetry import context as otel_context
from relaygraph.config.settings import ModelPrice, Settings
from relaygraph.observability.semconv import (
    ROLLUP_CALLS,
    ROLLUP_COST,
    ROLLUP_IN,
    ROLLUP_OUT,
    ROLLUP_POLICY_CALLS,
    USAGE_IN,
    USAGE_OUT,
)

# Public list prices (USD / 1M tokens) of common OpenAI models; unknown model → cost None.
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gpt-4o-mini": ModelPrice(input=0.15, output=0.60),
    "gpt-4o": ModelPrice(input=2.50, output=10.00),
    "gpt-4.1": ModelPrice(input=2.00, output=8.00),
    "gpt-4.1-mini": ModelPrice(input=0.40, output=1.60),
    "gpt-4.1-nano": ModelPrice(input=0.10, output=0.40),
}

Prices = Mapping[str, ModelPrice]

#: The offline rule-based policy: its model id (both model faces) and its provider name.
OFFLINE_POLICY_MODEL, OFFLINE_POLICY_PROVIDER = "relaygraph-offline-policy", "offline"


def is_policy_model(model: str | None) -> bool:
    """Whether calls to ``model`` are the offline policy's (not an LLM's)."""
    return model == OFFLINE_POLICY_MODEL


def price_table(settings: Settings) -> dict[str, ModelPrice]:
    """The built-in prices, overridden and extended by ``RELAYGRAPH_MODEL_PRICES``."""
    return {**DEFAULT_PRICES, **settings.model_prices}


def priced_model(settings: Settings) -> str | None:
    """The model name to price a run's calls by: the configured model of a paid provider."""
    return settings.model_id if settings.provider == "openai" else None


def cost_usd(prices: Prices, model: str | None, input_tokens: int | None,
             output_tokens: int | None) -> float | None:
    """USD for one call; None when the model has no price or its token counts are unknown."""
    price = prices.get(model) if model else None
    if price is None or input_tokens is None or output_tokens is None:
        return None
    return (input_tokens * price.input + output_tokens * price.output) / 1_000_000


class Usage:
    """Tokens and cost summed over model calls — for a run, a node, an agent or a step.

    Honest about missing data: tokens are None when no call reported any (the offline policy
    reports none), cost is None unless every LLM call had a price and token counts. Calls to
    the offline policy count as ``offline_policy_calls``, not ``llm_calls``.
    """

    def __init__(self, prices: Prices | None = None) -> None:
        self.prices = DEFAULT_PRICES if prices is None else prices
        self._lock = threading.Lock()
        self.llm_calls = self.policy_calls = self.reported = self.priced = 0
        self.input_tokens = self.output_tokens = 0
        self.cost = 0.0

    def add(self, model: str | None, input_tokens: int | None, output_tokens: int | None,
            *, policy: bool | None = None) -> None:
        """Count one call; ``policy`` (default: known from ``model``) says it was the offline policy's."""
        if policy if policy is not None else is_policy_model(model):
            with self._lock:
                self.policy_calls += 1
            return
        cost = cost_usd(self.prices, model, input_tokens, output_tokens)
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
            "offline_policy_calls": self.policy_calls,
            "input_tokens": self.input_tokens if tokens else None,
            "output_tokens": self.output_tokens if tokens else None,
            "cost_usd": round(self.cost, 6) if self.llm_calls and self.priced == self.llm_calls else None,
        }

    def attributes(self, *, gen_ai: bool = False) -> dict[str, Any]:
        """Span attributes of the rollup (``gen_ai.usage.*`` too where the span is one call's
        owner: workflow, agent, step)."""
        s = self.summary()
        attrs: dict[str, Any] = {}
        if s["llm_calls"] or not s["offline_policy_calls"]:  # an offline run says policy calls, not "0 LLM calls"
            attrs[ROLLUP_CALLS] = s["llm_calls"]
        if s["offline_policy_calls"]:
            attrs[ROLLUP_POLICY_CALLS] = s["offline_policy_calls"]
        if s["input_tokens"] is not None:
            attrs.update({ROLLUP_IN: s["input_tokens"], ROLLUP_OUT: s["output_tokens"]})
            if gen_ai:
                attrs.update({USAGE_IN: s["input_tokens"], USAGE_OUT: s["output_tokens"]})
        if s["cost_usd"] is not None:
            attrs[ROLLUP_COST] = s["cost_usd"]
        return attrs


def usage_rollup(steps: Sequence[dict[str, Any]], settings: Settings) -> dict[str, Any]:
    """Tokens and cost per node and for the run, from the ReAct steps kept in graph state.

    The run's ``result`` carries this, so the numbers survive without a tracing backend.
    """
    model, prices = priced_model(settings), price_table(settings)
    policy = settings.provider == OFFLINE_POLICY_PROVIDER  # the offline policy answered, not an LLM
    total = Usage(prices)
    by_node: dict[str, Usage] = {}
    for step in steps:  # one ReAct step is one model call
        node = by_node.setdefault(step.get("node") or step.get("agent") or "?", Usage(prices))
        for usage in (total, node):
            usage.add(model, step.get("input_tokens"), step.get("output_tokens"), policy=policy)
    return {**total.summary(), "by_node": {name: u.summary() for name, u in by_node.items()}}


# --- rollups along the OpenTelemetry context ------------------------------------------------

_USAGE_KEY = otel_context.create_key("relaygraph-usage")


def with_usage(ctx: otel_context.Context, usage: Usage) -> otel_context.Context:
    """A context whose LLM calls also count towards ``usage`` (and every enclosing rollup)."""
    return otel_context.set_value(_USAGE_KEY, (*_rollups(ctx), usage), ctx)


def record_llm_usage(model: str | None, input_tokens: int | None, output_tokens: int | None,
                     ctx: otel_context.Context | None = None) -> None:
    """Count one LLM call towards every rollup of ``ctx`` (default: the current context)."""
    for usage in _rollups(ctx):
        usage.add(model, input_tokens, output_tokens)


def _rollups(ctx: otel_context.Context | None) -> tuple[Usage, ...]:
    # Only with_usage sets this key, always to a tuple of Usage; the context API says object.
    return cast("tuple[Usage, ...]", otel_context.get_value(_USAGE_KEY, ctx) or ())
