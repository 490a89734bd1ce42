"""Contract-net task allocation: announce → bids → award → contract → execute → verify → settle.

The data is split into partitions, one analysis method each; bidder agents price every task
from the data and their own load, a reverse auction (``configurable.auction``: ``vickrey``,
``sealed`` or ``english``) awards it, the winner runs it, a verifier checks it, and a breach
sends it back to auction without the breaker. See :mod:`relaygraph.nodes.market`.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from relaygraph.coordination.registry import Capability, Registry
from relaygraph.nodes.agent import AgentSpec
from relaygraph.nodes.approval import with_approval
from relaygraph.nodes.contracts import AgentFailure, AuctionResult
from relaygraph.nodes.failures import agent_retry_policy
from relaygraph.nodes.market import (
    BidInput,
    MarketConfig,
    MarketState,
    announce,
    award,
    make_bid_node,
    make_execute_node,
    make_settle_node,
    make_verify_node,
    open_task,
    route_award,
    route_bids,
    summarize,
)
from relaygraph.nodes.results import extend_result, result_update, run_result
from relaygraph.nodes.state import RunInput

DESCRIPTION = "contract-net: tasks per partition auctioned to capable agents (vickrey/sealed/english), verified, settled."
DEFAULT_TASK = "Allocate the analysis of each data partition to the agent that can do it cheapest, and do it."


def _caps(**versions: str) -> tuple[Capability, ...]:
    return tuple(Capability(name=name, version=version) for name, version in versions.items())


BIDDERS: dict[str, AgentSpec] = {
    spec.name: spec
    for spec in (
        AgentSpec(name="ana", role="analyst ana", instructions="You are a data-quality specialist.",
                  tools=(), capabilities=_caps(validation="2.0", profiling="1.0")),
        AgentSpec(name="ben", role="analyst ben", instructions="You are a generalist analyst.",
                  tools=(), capabilities=_caps(scoring="1.0", segmentation="1.0", validation="1.0",
                                               profiling="1.0")),
        AgentSpec(name="cai", role="analyst cai", instructions="You are a profiling and scoring specialist.",
                  tools=(), capabilities=_caps(profiling="2.0", scoring="1.5")),
        AgentSpec(name="dee", role="analyst dee", instructions="You are a customer analytics specialist.",
                  tools=(), capabilities=_caps(segmentation="2.0", scoring="1.0", validation="1.0")),
    )
}
VERIFIER = AgentSpec(name="verifier", role="contract verifier",
                     instructions="Check the contract's acceptance criteria with check_acceptance and report "
                                  "the verdict.", tools=(), capabilities=_caps(verification="1.0"))
REGISTRY: Registry[AgentSpec] = Registry(BIDDERS.values())


PARAMS = MarketConfig


def finalize_market(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
    """The shared result plus the market. Status: the market's (every task settled → completed,
    some → partial, none → failed), made worse — never better — by the shared result's own
    (agents that failed for good, a human rejection)."""
    base = run_result(state, config)
    answer, summary = summarize(state)
    settled = "completed" if summary["settled"] == summary["total"] else ("partial" if summary["settled"] else "failed")
    status = base.status if base.status in ("rejected", "failed") else (
        "partial" if base.status == "partial" and settled == "completed" else settled)
    # a task that never settled is a failed part of the run: listed with the errors, by its last winner
    unsettled = [AgentFailure(agent=t.get("winner") or "market", node=f"execute_{task_id}",
                              reason=f"task {task_id} ({t['method']}) {t.get('outcome') or 'not settled'}: "
                                     f"{'; '.join(t['breaches']) or t.get('reason') or 'no reason recorded'}")
                 for task_id, t in summary["tasks"].items() if t.get("outcome") != "paid"]
    return result_update(extend_result(base, AuctionResult, status=status, answer=answer, market=summary,
                                       errors=[*base.errors, *unsettled]))


def build_graph(approve_before: list[str] | None = None) -> StateGraph:
    """The uncompiled graph (announce, open_task, bid, award, execute, verify, settle, finalize)."""
    builder = StateGraph(MarketState, input_schema=RunInput)
    builder.add_node("announce", announce(REGISTRY))
    builder.add_node("open_task", open_task(REGISTRY))
    builder.add_node("bid", make_bid_node(REGISTRY), input_schema=BidInput, retry_policy=agent_retry_policy())
    builder.add_node("award", award)
    builder.add_node("execute", make_execute_node(REGISTRY))
    builder.add_node("verify", make_verify_node(VERIFIER))
    builder.add_node("settle", make_settle_node())
    builder.add_node("finalize", finalize_market)
    builder.add_edge(START, "announce")
    builder.add_edge("announce", "open_task")
    builder.add_conditional_edges("open_task", route_bids, ["bid", "finalize"])
    builder.add_edge("bid", "award")
    builder.add_conditional_edges("award", route_award, ["execute", "open_task", "finalize"])
    builder.add_edge("execute", "verify")
    builder.add_edge("verify", "settle")
    builder.add_edge("settle", "open_task")
    builder.add_edge("finalize", END)
    return with_approval(builder, approve_before)


graph = build_graph().compile(name="auction")
