"""Conflict resolution: analysts propose outlier thresholds from the data; a resolver settles it.

propose ×N (agents, in parallel) → analyse (kind, stakes, cooperative potential; strategy by
rule + history, or ``configurable.strategy``) → negotiation rounds (concede ×N → close_round,
a graph step per round) | resolve (majority, compromise, auction, game) | arbitrate (a mediator
agent; also the fallback) → record (history) → finalize.
See :mod:`relaygraph.nodes.negotiation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from relaygraph.coordination.registry import Capability
from relaygraph.nodes.agent import AgentSpec
from relaygraph.nodes.approval import with_approval
from relaygraph.nodes.contracts import NegotiationResult
from relaygraph.nodes.failures import agent_retry_policy, unless_failed
from relaygraph.nodes.negotiation import (
    MEDIATOR,
    ArbitrateTool,
    ConcedeInput,
    NegotiationConfig,
    NegotiationState,
    ProposePositionTool,
    ProposeInput,
    ProposeThresholdTool,
    ReviewPositionsTool,
    ReviewProposalsTool,
    Stance,
    analyse_conflict,
    check_negotiation_data,
    close_round,
    make_arbitrate_node,
    make_concede_node,
    make_propose_node,
    next_round,
    record_outcome,
    resolve_conflict,
    route_after_analyse,
    route_after_resolve,
    route_proposers,
    summary_lines,
)
from relaygraph.nodes.results import (
    ResultFields,
    extend_result,
    result_update,
    run_result,
    with_result_fields,
)
from relaygraph.nodes.state import RunInput
from relaygraph.observability.instrument_langchain import TracedStateGraph

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
#: Tools the graph hands each agent per turn (its spec lists none): a proposer proposes from the
#: data, then negotiates; the mediator reviews and decides. ``relaygraph agents`` lists them.
RUNTIME_TOOLS: dict[str, tuple[str, ...]] = {
    **{name: (ProposeThresholdTool.name, ReviewPositionsTool.name, ProposePositionTool.name) for name in PROPOSERS},
    MEDIATOR.name: (ReviewProposalsTool.name, ArbitrateTool.name),
}


PARAMS = NegotiationConfig


def check_config(configurable: dict[str, Any]) -> None:
    """Bad options fail here, before any agent runs (the CLI calls it up front)."""
    check_negotiation_data(configurable)


def finalize_negotiation(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
    """The shared result plus the resolution. Status: ``failed`` when nothing was resolved;
    ``partial`` when it was, but an agent failed for good on the way (errors list it);
    ``rejected`` when a human stopped the run; else ``completed``."""
    base = run_result(state, config)
    answer, summary = summary_lines(state)
    if base.status == "rejected":
        status, answer = "rejected", f"{base.answer.splitlines()[0]}\n\n{answer}"
    elif not summary["resolved"]:
        status = "failed"
    else:
        status = "partial" if base.errors else "completed"
    return result_update(extend_result(base, NegotiationResult, status=status, answer=answer, negotiation=summary))


def negotiation_team(
    proposers: Mapping[str, tuple[AgentSpec, Stance]],
    mediator: AgentSpec = MEDIATOR,
    *,
    state_schema: type[Any] = NegotiationState,
    input_schema: type[Any] = RunInput,
    result_schema: type[NegotiationResult] | None = None,
    result_fields: ResultFields | None = None,
    approve_before: list[str] | None = None,
) -> StateGraph:
    """The negotiation pattern with your own proposers: each agent derives its opening outlier
    threshold from the data (its :class:`Stance`: the share of rows it tolerates flagging, how
    far it concedes, its weight), the conflict is analysed and settled by the configured
    strategy (``configurable.strategy``), escalating to the ``mediator`` when it must.

    ``proposers`` maps a name to (its :class:`AgentSpec`, its :class:`Stance`); the specs get
    the ``propose_threshold``/concession tools per round, so their ``tools`` may be empty.
    """
    if len(proposers) < 2:
        raise ValueError("A negotiation needs at least two proposers with different stances.")
    mismatched = [name for name, (spec, _) in proposers.items() if spec.name != name]
    if mismatched:
        raise ValueError(f"Proposer key(s) {', '.join(mismatched)} differ from their AgentSpec name; use the name.")
    specs = {name: spec for name, (spec, _) in proposers.items()}
    stances = {name: stance for name, (_, stance) in proposers.items()}
    retry = agent_retry_policy()
    builder = TracedStateGraph(state_schema, input_schema=input_schema)
    builder.add_node("propose", make_propose_node(specs, stances), input_schema=ProposeInput, retry_policy=retry)
    builder.add_node("analyse", analyse_conflict)
    builder.add_node("concede", make_concede_node(specs, stances), input_schema=ConcedeInput, retry_policy=retry)
    builder.add_node("close_round", close_round)
    builder.add_node("resolve", resolve_conflict)
    builder.add_node("arbitrate", make_arbitrate_node(mediator), retry_policy=retry)
    builder.add_node("record", record_outcome)
    builder.add_node("finalize", with_result_fields(finalize_negotiation, result_schema, result_fields,
                                                    NegotiationResult))
    builder.add_conditional_edges(START, route_proposers(list(specs)), ["propose"])
    builder.add_edge("propose", "analyse")
    builder.add_conditional_edges("analyse", route_after_analyse, ["concede", "resolve", "arbitrate", "finalize"])
    builder.add_edge("concede", "close_round")
    builder.add_conditional_edges("close_round", next_round, ["concede", "resolve", "finalize"])
    builder.add_conditional_edges("resolve", route_after_resolve, ["arbitrate", "record", "finalize"])
    builder.add_conditional_edges("arbitrate", unless_failed("arbitrate", "record"), ["record", "finalize"])
    builder.add_edge("record", "finalize")
    builder.add_edge("finalize", END)
    return with_approval(builder, approve_before)


def build_graph(approve_before: list[str] | None = None) -> StateGraph:
    """The uncompiled graph (propose, analyse, concede, close_round, resolve, arbitrate, record, finalize)."""
    return negotiation_team({name: (spec, STANCES[name]) for name, spec in PROPOSERS.items()}, MEDIATOR,
                            approve_before=approve_before)


graph = build_graph().compile(name="negotiation")
