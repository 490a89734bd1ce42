"""Span names' vocabulary: the attribute keys relaygraph's spans carry, in one place.

OpenTelemetry GenAI semantic conventions (``gen_ai.*``, status: development) for viewers
that speak them (Jaeger, Phoenix's GenAI mapping), OpenInference keys
(``openinference.span.kind``, ``llm.token_count.*``, ``session.id``) for Phoenix and
Langfuse, LangGraph's own (``langgraph.*``) and relaygraph's (``relaygraph.*``).
"""

from __future__ import annotations

from typing import Any

TRACER_NAME = "relaygraph"
CONTENT_LIMIT = 4000  # characters of recorded content (opt-in) per attribute

OP = "gen_ai.operation.name"
OI_KIND = "openinference.span.kind"
THREAD_ID = "relaygraph.thread_id"
RUN_ID = "relaygraph.run_id"
NODE = "langgraph.node"
STEP = "langgraph.step"
ATTEMPT = "relaygraph.node.attempt"
AGENT_NODE = "relaygraph.agent.node"  # the agent's name for its node (its progress entry)
CHECKPOINT_ID = "langgraph.checkpoint.id"
PARENT_CHECKPOINT_ID = "langgraph.checkpoint.parent_id"
INPUT_MESSAGES, OUTPUT_MESSAGES = "gen_ai.input.messages", "gen_ai.output.messages"
USAGE_IN, USAGE_OUT = "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"
ROLLUP_IN, ROLLUP_OUT = "relaygraph.usage.input_tokens", "relaygraph.usage.output_tokens"
ROLLUP_COST, ROLLUP_CALLS = "relaygraph.usage.cost_usd", "relaygraph.usage.llm_calls"
#: Calls to the offline rule-based policy: model calls, but not LLM calls, so never counted as ones.
ROLLUP_POLICY_CALLS = "relaygraph.usage.offline_policy_calls"


def tool_attributes(name: str) -> dict[str, Any]:
    """What every tool span carries, whichever instrumentation opened it."""
    return {OP: "execute_tool", "gen_ai.tool.name": name, "gen_ai.tool.type": "function",
            OI_KIND: "TOOL", "tool.name": name}
