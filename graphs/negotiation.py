"""Conflict resolution: analysts propose outlier thresholds from the data; a resolver settles it.

propose ×N (agents, in parallel) → analyse (kind, stakes, cooperative potential; strategy by
rule + history, or ``configurable.strategy``) → resolve (negotiation, arbitration, majority,
compromise, auction or game; arbitration as the fallback) → record (history) → finalize.
See :mod:`relaygraph.nodes.negotiation`.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import RetryPolicy
from relaygraph.coordination.registry import Capability
from relaygraph.nodes.agent import AgentRunError, AgentSpec
from relaygraph.nodes.approval import with_approval
from relaygraph.nodes.negotiation import (
    MEDIATOR,
    NegotiationConfig,
    NegotiationState,
    ProposeInput,
    Stance,
    analyse_conflict,
    make_propose_node,
    record_outcome,
    resolve_conflict,
    route_proposers,
    summary_lines,
)
from relaygraph.nodes.results import make_result_node
from relaygraph.nodes.state import RunInput

DESCRIPTION = "conflict resolution: analysts' outlier thresholds settled by negotiation, arbitration, vote, compromise, auction or game."
DEFAULT_TASK = "Agree on one outlier threshold for the quantity column."

PROPOSERS: dict[str, AgentSpec] = {
    spec.name: spec for spec in (
        AgentSpec(name=name, role=f"{name} analyst", tools=(),
                  instructions=f"Your policy is {name}. Propose your outlier threshold with propose_threshold.",
                  capabilities=(Capability(name="outlier_detection", version="1.0"),))
        for name in ("strict", "balanced", "lenient"))
}
STANCES: dict[str, Stance] = {
    "strict": Stance(target=0.01, flexibility=0.5),
    "balanced": Stance(target=0.03, flexibility=0.3),
    "lenient": Stance(target=0.06, flexibility=0.2),
}
AGENTS = (*PROPOSERS.values(), MEDIATOR)


PARAMS = NegotiationConfig


def finalize_negotiation(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
    update = make_result_node()(state, config)
    answer, summary = summary_lines(state)
    status = update["result"]["status"]
    if status not in ("rejected", "failed"):
        status = "completed" if summary["resolved"] else "failed"
    update["result"] |= {"answer": answer, "status": status, "negotiation": summary}
    return {"result": update["result"], "status": status}


def build_graph(approve_before: list[str] | None = None) -> StateGraph:
    retry = RetryPolicy(max_attempts=2, retry_on=AgentRunError)
    builder = StateGraph(NegotiationState, input_schema=RunInput)
    builder.add_node("propose", make_propose_node(PROPOSERS, STANCES), input_schema=ProposeInput,
                     retry_policy=retry)
    builder.add_node("analyse", analyse_conflict)
    builder.add_node("resolve", resolve_conflict)
    builder.add_node("record", record_outcome)
    builder.add_node("finalize", finalize_negotiation)
    builder.add_conditional_edges(START, route_proposers(list(PROPOSERS)), ["propose"])
    builder.add_edge("propose", "analyse")
    builder.add_edge("analyse", "resolve")
    builder.add_edge("resolve", "record")
    builder.add_edge("record", "finalize")
    builder.add_edge("finalize", END)
    return with_approval(builder, approve_before)


graph = build_graph().compile(name="negotiation")
