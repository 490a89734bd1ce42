"""Conflict resolution nodes: propose ×N → analyse → resolve (one of six strategies) → record.

The conflict: analysts disagree on the outlier threshold — the IQR multiplier ``k`` that decides
which rows of a numeric column get flagged for review. Each proposer is a ReAct agent whose
``propose_threshold`` tool derives its position from the data: the smallest ``k`` that flags no
more than the share of rows its policy tolerates (strict 1 %, balanced 3 %, lenient 6 % by
default). Utilities are grounded the same way: an agent's utility for an option is how close the
share of rows that option flags is to its own target.

The resolver (pure logic in :mod:`relaygraph.coordination.conflicts` and ``games``) analyses the
conflict, picks a strategy by the documented rule corrected by persisted history (or the
caller's ``configurable.strategy``), and resolves:

* ``negotiation`` — rounds of concessions (each agent's flexibility) to ≥ 0.8 similarity, ≤ 5 rounds;
* ``arbitration`` — a mediator agent reviews the proposals with its tool and decides with a
  written rationale;
* ``majority`` — the consensus voting tally; ``compromise`` — the weighted mean;
* ``auction`` — the proposals' review costs (rows flagged) in a sealed reverse auction;
* ``game`` — each agent chooses an option; agreement pays its utility, disagreement nothing;
  equilibria, the Pareto set and Nash bargaining decide (see ``games.solve``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal, TypedDict

import numpy as np
import pandas as pd
from langchain_core.runnables import RunnableConfig
from langgraph.types import Send
from pydantic import BaseModel, ConfigDict, Field
from relaygraph.config.settings import settings_from_config
from relaygraph.coordination.auctions import AuctionRules, Bid, run_auction
from relaygraph.coordination.conflicts import (
    Conflict,
    PastResolution,
    Proposal,
    Resolution,
    StrategySelector,
    analyse,
    compromise,
    majority,
    negotiate,
)
from relaygraph.coordination.games import Game, solve
from relaygraph.nodes import market_store
from relaygraph.nodes.agent import (
    AgentRunError,
    AgentSpec,
    make_agent_node,
    resolve_dataset,
    thread_id,
)
from relaygraph.nodes.market import span, store
from relaygraph.nodes.params import RunParams
from relaygraph.nodes.state import NodeProgress, WorkflowState, merge_dicts
from relaygraph.tools import ToolResult, TypedTool, Workspace
from relaygraph.tools.frames import load

K_GRID = tuple(round(float(x), 2) for x in np.arange(0.5, 6.01, 0.1))


def flagged_share(values: pd.Series, k: float) -> float:
    """Share of rows outside [Q1 − k·IQR, Q3 + k·IQR]."""
    q1, q3 = values.quantile(0.25), values.quantile(0.75)
    iqr = q3 - q1
    return float(((values < q1 - k * iqr) | (values > q3 + k * iqr)).mean())


def threshold_for(values: pd.Series, target: float) -> float:
    """The smallest k on the grid that flags at most ``target`` of the rows."""
    return next((k for k in K_GRID if flagged_share(values, k) <= target), K_GRID[-1])


def utility(share: float, target: float) -> float:
    """1 at the agent's target share, falling linearly to 0 ten points away."""
    return round(max(0.0, 1 - abs(share - target) / 0.1), 6)


class NegotiationConfig(RunParams):
    """``--param`` keys of the negotiation graph."""

    strategy: Literal["negotiation", "arbitration", "majority", "compromise", "auction", "game"] | None = Field(
        default=None, description="Resolve with this strategy; default: the resolver chooses (rule + history).")
    column: str = Field(default="quantity", description="The numeric column the outlier threshold is for.")


def negotiation_config(config: RunnableConfig | None) -> NegotiationConfig:
    configurable = (config or {}).get("configurable") or {}
    return NegotiationConfig.model_validate({k: v for k, v in configurable.items()
                                             if k in NegotiationConfig.model_fields})


class Stance(BaseModel):
    """A proposer's policy: the share of rows it will tolerate flagging, and its give."""

    model_config = ConfigDict(frozen=True)

    target: float = Field(gt=0, lt=1)
    flexibility: float = Field(ge=0, le=1)
    weight: float = Field(default=1.0, gt=0)


class NegotiationState(WorkflowState, total=False):
    proposals: Annotated[dict[str, dict[str, Any]], merge_dicts]
    conflict: dict[str, Any]
    resolution: dict[str, Any]


class ProposeInput(TypedDict, total=False):
    task: str
    data: str | None
    context: dict[str, Any]
    proposer: str


class ProposalBox:
    def __init__(self) -> None:
        self.proposal: dict[str, Any] | None = None


class ProposeThresholdTool(TypedTool):
    name = "propose_threshold"
    description = ("Propose the outlier threshold your policy supports: finds, in the data, the smallest IQR "
                   "multiplier k that flags no more than your tolerated share of rows, and records it as your "
                   "proposal.")
    inputs: ClassVar[dict] = {"column": {"type": "string", "description": "The numeric column the threshold is for."}}

    def __init__(self, workspace: Workspace, dataset: str, column: str, stance: Stance, box: ProposalBox) -> None:
        self.workspace, self.dataset, self.stance, self.box = workspace, dataset, stance, box
        self.inputs = {"column": {**type(self).inputs["column"], "enum": [column]}}
        super().__init__()

    def forward(self, column: str) -> ToolResult:
        frame, _ = load(self.workspace, self.dataset)
        values = pd.to_numeric(frame[column], errors="coerce").dropna()
        k = threshold_for(values, self.stance.target)
        share = flagged_share(values, k)
        self.box.proposal = {"value": k, "share": share, "flagged": int(round(share * len(values))),
                             "rows": len(values)}
        return ToolResult(summary=f"k = {k:g} flags {share:.2%} of {len(values):,} {column} values "
                                  f"(tolerated: {self.stance.target:.0%}).",
                          facts={"k": k, "flagged_share": share, "rows": len(values)})


def route_proposers(names: list[str]) -> Callable[[dict[str, Any]], list[Send]]:
    def fan_out(state: dict[str, Any]) -> list[Send]:
        return [Send("propose", {"task": state.get("task"), "data": state.get("data"),
                                 "context": state.get("context") or {}, "proposer": name}) for name in names]

    return fan_out


def make_propose_node(specs: dict[str, AgentSpec], stances: dict[str, Stance]
                      ) -> Callable[[dict[str, Any], RunnableConfig], dict[str, Any]]:
    def propose(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        name = state["proposer"]
        settings, cfg = settings_from_config(config), negotiation_config(config)
        workspace = Workspace(settings.data_dir, settings.output_dir, thread_id(config))
        dataset = resolve_dataset(state, settings, workspace)
        box = ProposalBox()
        tools = lambda _ctx: [ProposeThresholdTool(workspace, dataset, cfg.column, stances[name], box)]
        context = {**(state.get("context") or {}), "column": cfg.column}
        update = make_agent_node(specs[name], extra_tools=tools)({**state, "context": context}, config)
        if box.proposal is None:
            raise AgentRunError({"agent": name, "node": "propose", "reason": "no proposal submitted",
                                 "steps": update["steps"]})
        stance = stances[name]
        return {"steps": update["steps"], "context": {"dataset": dataset},
                "proposals": {name: box.proposal | {"target": stance.target, "flexibility": stance.flexibility,
                                                    "weight": stance.weight, "rationale": update["answers"][name]}}}

    return propose


def build_conflict(proposals: dict[str, dict[str, Any]], values: pd.Series) -> Conflict:
    """Positions, weights, costs (rows to review) and data-grounded utilities per option."""
    options = sorted({p["value"] for p in proposals.values()})
    shares = {k: flagged_share(values, k) for k in options}
    return Conflict(topic="outlier threshold (IQR multiplier k)", scale=max(options) or 1.0, proposals=tuple(
        Proposal(agent=name, value=float(p["value"]), weight=p["weight"], flexibility=p["flexibility"],
                 rationale=p.get("rationale", "")[:300], cost=float(p["flagged"]),
                 utilities={f"{k:g}": utility(shares[k], p["target"]) for k in options})
        for name, p in sorted(proposals.items())))


def game_of(conflict: Conflict) -> Game:
    """Each agent picks an option; all picking the same one pays each its utility, else 0."""
    options = sorted(conflict.proposals[0].utilities, key=float)
    n, m = len(conflict.proposals), len(options)
    payoffs = np.zeros((n, *([m] * n)))
    for i, p in enumerate(conflict.proposals):
        for k, option in enumerate(options):
            payoffs[(i, *([k] * n))] = p.utilities[option]
    return Game(players=tuple(p.agent for p in conflict.proposals),
                strategies=tuple(tuple(options) for _ in conflict.proposals), payoffs=payoffs)


def history_of(target: Any) -> list[PastResolution]:
    return [PastResolution(bucket=r["bucket"], strategy=r["strategy"], resolved=r["resolved"])
            for r in market_store.resolution_history(target)]


def analyse_conflict(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
    """Kind, stakes and cooperative potential; the strategy and why."""
    settings, cfg = settings_from_config(config), negotiation_config(config)
    workspace = Workspace(settings.data_dir, settings.output_dir, thread_id(config))
    frame, _ = load(workspace, resolve_dataset(state, settings, workspace))
    conflict = build_conflict(state["proposals"], pd.to_numeric(frame[cfg.column], errors="coerce").dropna())
    potential = solve(game_of(conflict)).cooperative_potential
    analysis = analyse(conflict, cooperative_potential=potential)
    if cfg.strategy:
        strategy, why = cfg.strategy, "named by the caller (configurable.strategy)"
    else:
        strategy, why = StrategySelector(history_of(store(config, settings))).choose(analysis)
    return {"conflict": {"conflict": conflict.model_dump(), "analysis": analysis.model_dump(),
                         "bucket": analysis.bucket(), "strategy": strategy, "why": why},
            "progress": [NodeProgress(node="analyse", status="completed", duration_s=0.0,
                                      detail=f"{analysis.bucket()}: {strategy} — {why}").model_dump()]}


class ArbitrationBox:
    def __init__(self) -> None:
        self.decision: dict[str, Any] | None = None


class ReviewProposalsTool(TypedTool):
    name = "review_proposals"
    description = ("Review the agents' proposals: each option's flagged share and every agent's utility for it, "
                   "and the option with the least worst-case regret.")
    inputs: ClassVar[dict] = {}

    def __init__(self, conflict: Conflict) -> None:
        self.conflict = conflict
        super().__init__()

    def forward(self) -> ToolResult:
        options = sorted(self.conflict.proposals[0].utilities, key=float)
        regret = {o: max(max(p.utilities.values()) - p.utilities[o] for p in self.conflict.proposals)
                  for o in options}
        best = min(options, key=lambda o: (regret[o], float(o)))
        table = {o: {p.agent: p.utilities[o] for p in self.conflict.proposals} for o in options}
        return ToolResult(summary=f"{len(options)} options; least worst-case regret: k = {best} "
                                  f"(regret {regret[best]:.2f}).",
                          facts={"utilities": table, "regret": regret, "recommended": best},
                          artifacts={"value": best, "rationale": f"k = {best} leaves no agent more than "
                                                                 f"{regret[best]:.2f} utility short of its own "
                                                                 "proposal (minimax regret)."})


class ArbitrateTool(TypedTool):
    name = "arbitrate"
    description = "Decide the conflict: the threshold k everyone must use, with your written rationale."
    inputs: ClassVar[dict] = {
        "value": {"type": "number", "description": "The decided IQR multiplier k."},
        "rationale": {"type": "string", "description": "Why this value (one or two sentences)."},
    }

    def __init__(self, conflict: Conflict, box: ArbitrationBox) -> None:
        self.conflict, self.box = conflict, box
        super().__init__()

    def forward(self, value: float, rationale: str) -> ToolResult:
        values = [float(p.value) for p in self.conflict.proposals]
        value = float(value)
        if not min(values) <= value <= max(values):
            raise ValueError(f"decide within the proposals' range {min(values):g}–{max(values):g}")
        if not rationale.strip():
            raise ValueError("an arbitration needs a written rationale")
        self.box.decision = {"value": value, "rationale": rationale.strip()}
        return ToolResult(summary=f"Decided k = {value:g}.", facts={"value": value})


MEDIATOR = AgentSpec(name="mediator", role="mediator",
                     instructions="Review the proposals with review_proposals, then arbitrate: decide the "
                                  "threshold with arbitrate and a written rationale.", tools=())


def resolve_conflict(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
    """Run the chosen strategy; a strategy that fails to agree falls back to arbitration."""
    block = state["conflict"]
    conflict = Conflict.model_validate(block["conflict"])
    strategy = block["strategy"]
    steps: list[dict[str, Any]] = []
    with span("conflict.resolve", **{"conflict.strategy": strategy, "conflict.why": block["why"]}):
        resolution = _run(strategy, conflict, state, config, steps)
        for r in resolution.rounds:  # negotiation: a span per round, positions and similarity
            with span("negotiation.round", **{"negotiation.round": r.number, "negotiation.similarity": r.similarity,
                                              "negotiation.positions": r.positions}):
                pass
    fallback = None
    if not resolution.resolved and strategy != "arbitration":
        with span("conflict.resolve", **{"conflict.strategy": "arbitration", "conflict.why": "fallback"}):
            fallback = _run("arbitration", conflict, state, config, steps)
    return {"resolution": {"primary": resolution.model_dump(),
                           "fallback": fallback.model_dump() if fallback else None}, "steps": steps}


def _run(strategy: str, conflict: Conflict, state: dict[str, Any], config: RunnableConfig,
         steps: list[dict[str, Any]]) -> Resolution:
    if strategy == "negotiation":
        return negotiate(conflict)
    if strategy == "compromise":
        return compromise(conflict)
    if strategy == "majority":
        return majority(conflict)
    if strategy == "auction":
        result = run_auction([Bid(bidder=p.agent, cost=p.cost or 0.0) for p in conflict.proposals],
                             AuctionRules(kind="sealed"))
        value = next(p.value for p in conflict.proposals if p.agent == result.winner)
        return Resolution(strategy="auction", resolved=True, value=value, detail=result.model_dump(),
                          reason=f"{result.winner}'s position is cheapest to carry out "
                                 f"({result.winning_bid:g} rows to review): {result.reason}")
    if strategy == "game":
        game = game_of(conflict)
        solution = solve(game)
        chosen = [game.strategies[i][int(np.argmax(p))] for i, p in enumerate(solution.profile)]
        agreed = len(set(chosen)) == 1 and all(max(p) > 1 - 1e-9 for p in solution.profile)
        return Resolution(strategy="game", resolved=agreed, value=float(chosen[0]) if agreed else None,
                          detail={"equilibria": [e.label(game) for e in solution.equilibria],
                                  "pareto": [[game.strategies[i][s] for i, s in enumerate(o)] for o in solution.pareto],
                                  "cooperative_potential": solution.cooperative_potential,
                                  "choice": solution.choice},
                          reason=solution.reason)
    box = ArbitrationBox()
    tools = lambda _ctx: [ReviewProposalsTool(conflict), ArbitrateTool(conflict, box)]
    try:
        update = make_agent_node(MEDIATOR, extra_tools=tools)(state, config)
        steps.extend(update["steps"])
    except AgentRunError as exc:
        steps.extend(exc.record.get("steps", []))
        return Resolution(strategy="arbitration", resolved=False, value=None, reason=exc.record["reason"])
    if box.decision is None:
        return Resolution(strategy="arbitration", resolved=False, value=None, reason="the mediator did not decide")
    return Resolution(strategy="arbitration", resolved=True, value=box.decision["value"],
                      detail={"rationale": box.decision["rationale"]},
                      reason=f"the mediator decided: {box.decision['rationale']}")


def record_outcome(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
    """Persist the resolution (what the selector learns from) and write the result."""
    settings = settings_from_config(config)
    block, resolution = state["conflict"], state["resolution"]
    primary = resolution["primary"]
    final = resolution["fallback"] or primary
    market_store.record_resolution(
        store(config, settings), thread_id=thread_id(config), conflict_id="c1", topic=block["conflict"]["topic"],
        bucket=block["bucket"], strategy=block["strategy"], resolved=primary["resolved"],
        rounds=max(0, len(primary.get("rounds") or []) - 1),
        outcome={"value": final["value"], "reason": final["reason"], "by": final["strategy"]})
    return {"progress": [NodeProgress(node="record", status="completed", duration_s=0.0,
                                      detail=f"{block['strategy']}: {primary['reason']}").model_dump()],
            "context": {"resolved_at": time.time()}}


def summary_lines(state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    block, resolution = state.get("conflict") or {}, state.get("resolution") or {}
    primary, fallback = resolution.get("primary") or {}, resolution.get("fallback")
    final = fallback or primary
    lines = [f"Conflict: {block.get('conflict', {}).get('topic')} — "
             + ", ".join(f"{p['agent']} k={p['value']:g}" for p in block.get("conflict", {}).get("proposals", []))]
    analysis = block.get("analysis") or {}
    lines.append(f"Analysis: {analysis.get('kind')}, similarity {analysis.get('similarity', 0):.2f}, "
                 f"stakes {analysis.get('stakes', 0):.2f}, cooperative potential "
                 f"{analysis.get('cooperative_potential', 0):.2f}")
    lines.append(f"Strategy: {block.get('strategy')} — {block.get('why')}")
    for r in primary.get("rounds") or []:
        positions = ", ".join(f"{a}={v:g}" if isinstance(v, float) else f"{a}={v}" for a, v in r["positions"].items())
        lines.append(f"  round {r['number']}: {positions} (similarity {r['similarity']:.2f})")
    lines.append(f"Outcome ({primary.get('strategy')}): {primary.get('reason')}")
    if fallback:
        lines.append(f"Fallback ({fallback['strategy']}): {fallback['reason']}")
    lines.append(f"Resolved: {'k = ' + format(final.get('value'), 'g') if final.get('resolved') else 'no'}")
    return "\n".join(lines), {"conflict": block.get("conflict"), "analysis": analysis,
                              "strategy": block.get("strategy"), "why": block.get("why"),
                              "rounds": primary.get("rounds") or [], "outcome": primary, "fallback": fallback,
                              "resolved": bool(final.get("resolved")), "value": final.get("value")}
