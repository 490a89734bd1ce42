"""Contract-net task allocation: announce → bids → award → contract → execute → verify → settle.

The data is split into partitions, one analysis method each; bidder agents price every task
from the data and their own load, a reverse auction (``configurable.auction``: ``vickrey``,
``sealed`` or ``english``) awards it, the winner runs it, a verifier checks it, and a breach
sends it back to auction without the breaker. See :mod:`relaygraph.nodes.market`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from relaygraph.coordination.registry import Capability, Registry
from relaygraph.nodes.agent import AgentSpec
from relaygraph.nodes.approval import with_approval
from relaygraph.nodes.contracts import AgentFailure, AuctionResult
from relaygraph.nodes.failures import agent_retry_policy
from relaygraph.nodes.market import (
    METHOD_CAPABILITY,
    BidInput,
    CheckAcceptanceTool,
    EstimateCostTool,
    MarketConfig,
    MarketState,
    SubmitBidTool,
    announce,
    award,
    check_market_data,
    make_bid_node,
    make_execute_node,
    make_settle_node,
    make_verify_node,
    open_task,
    route_award,
    route_bids,
    summarize,
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
#: Tools the graph hands each agent while it runs (its spec lists none: they are bound to the task
#: at hand): a bidder prices and bids, and executes the methods its capabilities cover; the
#: verifier checks acceptance. ``relaygraph agents`` lists them.
RUNTIME_TOOLS: dict[str, tuple[str, ...]] = {
    **{name: (EstimateCostTool.name, SubmitBidTool.name,
              *(m for m, cap in METHOD_CAPABILITY.items() if any(c.name == cap for c in spec.capabilities)))
       for name, spec in BIDDERS.items()},
    VERIFIER.name: (CheckAcceptanceTool.name,),
}


PARAMS = MarketConfig


def check_config(configurable: dict[str, Any]) -> None:
    """Bad options fail here, before any agent runs (the CLI calls it up front)."""
    check_market_data(configurable)


def finalize_market(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
    """The shared result plus the market. Status: the market's (every task settled → completed,
    some → partial, none → failed), made worse — never better — by the shared result's own
    (agents that failed for good, a human rejection)."""
    base = run_result(state, config)
    answer, summary = summarize(state)
    settled = "completed" if summary["settled"] == summary["total"] else ("partial" if summary["settled"] else "failed")
    status = base.status if base.status in ("rejected", "failed") else (
        "partial" if base.status == "partial" and settled == "completed" else settled)
    # a task that never settled is a failed part of the run: listed with the errors, by its last
    # winner — or, when the work could not be verified, by the market's verify step (not the winner's doing)
    unsettled = [AgentFailure(agent="market", node=f"verify_{task_id}", reason=f"task {task_id} ({t['method']}) "
                              f"unverified: {t.get('reason')}") if t.get("outcome") == "unverified" else
                 AgentFailure(agent=t.get("winner") or "market", node=f"execute_{task_id}",
                              reason=f"task {task_id} ({t['method']}) {t.get('outcome') or 'not settled'}: "
                                     f"{'; '.join(t['breaches']) or t.get('reason') or 'no reason recorded'}")
                 for task_id, t in summary["tasks"].items() if t.get("outcome") != "paid"]
    unsupported = [AgentFailure(agent="market", node="announce",
                                reason=f"task {u['id']} ({u['method']} on partition {u['partition']}) unsupported "
                                       f"by the data: no {', '.join(u['missing'])}; not announced — choose "
                                       f"other methods with --param methods=... or data that has them")
                   for u in summary["unsupported"]]
    unsettled += unsupported
    return result_update(extend_result(base, AuctionResult, status=status, answer=answer, market=summary,
                                       errors=[*base.errors, *unsettled]))


def auction_team(
    bidders: Sequence[AgentSpec],
    verifier: AgentSpec = VERIFIER,
    *,
    state_schema: type[Any] = MarketState,
    input_schema: type[Any] = RunInput,
    result_schema: type[AuctionResult] | None = None,
    result_fields: ResultFields | None = None,
    approve_before: list[str] | None = None,
) -> StateGraph:
    """The contract-net market with your own bidders: each data partition × analysis method is a
    task, announced to the bidders whose ``capabilities`` make them eligible; they price it with
    a tool, the auction (``configurable.auction``) awards it, the winner runs the method, the
    ``verifier`` checks the acceptance criteria, and settlement pays or names the breach.

    Bidders are :class:`AgentSpec`s with ``capabilities`` (e.g. ``Capability(name="validation",
    version="1.0")``); their ``tools`` are given per task (the method's tool), so they may be
    empty. The methods are relaygraph's verifiable data tools (``configurable.methods``).
    """
    names = [b.name for b in bidders]
    if len(bidders) < 2:
        raise ValueError("An auction needs at least two bidders to compare prices.")
    if len(set(names)) != len(names):
        raise ValueError(f"Bidder names must be unique; got {', '.join(names)}.")
    without = [b.name for b in bidders if not b.capabilities]
    if without:
        raise ValueError(f"Bidder(s) {', '.join(without)} declare no capabilities, so no task could ever "
                         "be awarded to them; give each capabilities=(Capability(name=..., version=...),).")
    registry: Registry[AgentSpec] = Registry(bidders)
    builder = TracedStateGraph(state_schema, input_schema=input_schema)
    builder.add_node("announce", announce(registry))
    builder.add_node("open_task", open_task(registry))
    builder.add_node("bid", make_bid_node(registry), input_schema=BidInput, retry_policy=agent_retry_policy())
    builder.add_node("award", award)
    builder.add_node("execute", make_execute_node(registry), retry_policy=agent_retry_policy())
    builder.add_node("verify", make_verify_node(verifier), retry_policy=agent_retry_policy())
    builder.add_node("settle", make_settle_node())
    builder.add_node("finalize", with_result_fields(finalize_market, result_schema, result_fields,
                                                    AuctionResult))
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


def build_graph(approve_before: list[str] | None = None) -> StateGraph:
    """The uncompiled graph (announce, open_task, bid, award, execute, verify, settle, finalize)."""
    return auction_team(list(BIDDERS.values()), VERIFIER, approve_before=approve_before)


graph = build_graph().compile(name="auction")
