"""Handoff workflow: a triage agent routes the request; specialists hand off to each other.

    START ─► triage ─handoff_*─► quality ◄──► analytics ◄──► customers ◄──► reporting
                                    └──────────────┴──────────────┴────────────┴─► finalize ─► END

Every agent holds ``handoff_<peer>`` tools next to its domain tools; which peer it picks is its
own decision (a model's, or under ``offline`` the policy's rule: the peer the request mentions
first). Transfers are validated, invalid ones rolled back, and a loop guard (``max_handoffs``,
default 6, in ``configurable``; A→B→A ping-pong) ends the run with a reason — see
:mod:`relaygraph.nodes.handoff`.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from pydantic import Field
from relaygraph.nodes.agent import AgentSpec
from relaygraph.nodes.approval import with_approval
from relaygraph.nodes.contracts import HandoffResult
from relaygraph.nodes.failures import agent_retry_policy
from relaygraph.nodes.handoff import (
    DEFAULT_MAX_HANDOFFS,
    HandoffState,
    handoff_summary,
    make_handoff_node,
)
from relaygraph.nodes.params import RunParams
from relaygraph.nodes.results import extend_result, result_update, run_result
from relaygraph.nodes.state import RunInput

DESCRIPTION = "triage → specialists handing off to each other (validated, rolled back, loop-guarded)."
DEFAULT_TASK = ("Check the data quality, analyse sales by region with trends, segment the customers "
                "and write a report.")


class HandoffParams(RunParams):
    """``--param`` keys of the handoff graph."""

    max_handoffs: int | None = Field(default=None, ge=1, le=100,
                                     description=f"Handoffs before the loop guard stops the run (default {DEFAULT_MAX_HANDOFFS}).")


PARAMS = HandoffParams

#: Each agent: its spec and the scope its peers see in the handoff tool's description.
AGENTS: dict[str, tuple[AgentSpec, str]] = {
    "triage": (AgentSpec(
        name="triage", role="triage agent", max_steps=10, tools=(),
        instructions="Read the request and hand it to the one specialist whose domain it names first.",
    ), "routes requests"),
    "quality": (AgentSpec(
        name="quality", role="data quality specialist", max_steps=12,
        tools=("validate_dataset", "clean_dataset"),
        instructions="Validate the dataset for nulls, duplicates and out-of-range values, then clean it. "
        "When your part is done, hand the request on if it asks for more.",
    ), "data quality: validation and cleaning"),
    "analytics": (AgentSpec(
        name="analytics", role="sales analyst", max_steps=12,
        tools=("aggregate", "detect_trends", "detect_outliers"),
        instructions="Aggregate the main metric by category, detect trends over time and detect outliers. "
        "When your part is done, hand the request on if it asks for more.",
    ), "analytics: breakdowns, trends, outliers"),
    "customers": (AgentSpec(
        name="customers", role="customer analyst", max_steps=12,
        tools=("segment_customers", "score_records"),
        instructions="Segment the customers by recency, frequency and spend, then score every record. "
        "When your part is done, hand the request on if it asks for more.",
    ), "customers: segments and record scores"),
    "reporting": (AgentSpec(
        name="reporting", role="report writer", max_steps=12, tools=("write_report",),
        instructions="Write the report with a chart, including the team's findings as notes. "
        "When your part is done, hand the request on if it asks for more.",
    ), "reporting: the written report"),
}
SPECIALISTS = [name for name in AGENTS if name != "triage"]


def finalize_handoff(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
    """The shared result, led by the last agent's answer, plus the handoff route and history."""
    base = run_result(state, config, state.get("active"))
    stopped = bool(state.get("stop_reason")) and base.status != "rejected"
    return result_update(extend_result(
        base, HandoffResult, handoffs=handoff_summary(state),
        **({"status": "stopped", "reason": state["stop_reason"]} if stopped else {})))


def build_graph(approve_before: list[str] | None = None) -> StateGraph:
    """The uncompiled graph (nodes: triage, the specialists, finalize)."""
    builder = StateGraph(HandoffState, input_schema=RunInput)
    for name, (spec, _) in AGENTS.items():
        peers = {p: scope for p, (_, scope) in AGENTS.items() if p not in (name, "triage")}
        builder.add_node(name, make_handoff_node(spec, peers), retry_policy=agent_retry_policy(),
                         destinations=(*peers, "finalize"))
    builder.add_node("finalize", finalize_handoff)
    builder.add_edge(START, "triage")
    builder.add_edge("finalize", END)
    return with_approval(builder, approve_before)


graph = build_graph().compile(name="handoff")
