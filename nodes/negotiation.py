"""Conflict resolution nodes: propose ×N → analyse → (rounds | resolve | arbitrate) → record.

    propose ×N ──► analyse ──negotiation──► concede ×N ──► close_round ──┐ (≤ 5 rounds, until
       (agents)       │                        ▲ (agents)                 │  similarity ≥ 0.8)
                      │                        └──────── another round ◄──┤
                      ├─ compromise/majority/auction/game ──► resolve ◄───┘ over
                      └─ arbitration ──► arbitrate (agent) ◄── resolve, when it did not agree
                                             │ ok                    │ agreed
                                             ▼                       ▼
                                           record ──────────────► finalize  (a failed mediator: straight there)

The conflict: analysts disagree on the outlier threshold — the IQR multiplier ``k`` that decides
which rows of a numeric column get flagged for review. Each proposer is a ReAct agent whose
``propose_threshold`` tool derives its position from the data: the smallest ``k`` that flags no
more than the share of rows its policy tolerates (strict 1 %, balanced 3 %, lenient 6 % by
default). Utilities are grounded the same way: an agent's utility for an option is how close the
share of rows that option flags is to its own target.

The resolver (pure logic in :mod:`relaygraph.coordination.conflicts` and ``games``) analyses the
conflict, picks a strategy by the documented rule corrected by persisted history (or the
caller's ``configurable.strategy``), and resolves:

* ``negotiation`` — each round every agent takes a turn (one ``Send`` per agent, one checkpointed
  graph step and one span per round): its ReAct agent reviews the table with ``review_positions``
  (the others' positions, what each flags in the data, what its flexibility allows) and states
  its position with ``propose_position``, accepted only as a concession
  (:func:`~relaygraph.coordination.conflicts.check_position`); ≤ 5 rounds, agreement at ≥ 0.8
  similarity. A crash mid-negotiation resumes at the round it was in: closed rounds and the
  turns already saved are not asked again;
* ``arbitration`` — a mediator agent reviews the proposals with its tool and decides with a
  written rationale (also the fallback of a strategy that did not agree);
* ``majority`` — the consensus voting tally; ``compromise`` — the weighted mean;
* ``auction`` — the proposals' review costs (rows flagged) in a sealed reverse auction;
* ``game`` — each agent chooses an option; agreement pays its utility, disagreement nothing;
  equilibria, the Pareto set and Nash bargaining decide (see ``games.solve``).

Every agent node (propose, concede, arbitrate) is on the one failure path of
:mod:`relaygraph.nodes.failures`: retried on the run's budget, then recorded in ``errors``. A
failed proposer leaves the conflict to the others; a failed negotiator holds its position for
that round; a failed mediator ends the run unresolved. The result says so (``partial``/``failed``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypedDict

import numpy as np
import pandas as pd
from langchain_core.runnables import RunnableConfig
from langgraph.types import Send
from pydantic import BaseModel, ConfigDict, Field
from relaygraph.config.settings import settings_from_config
from relaygraph.coordination.conflicts import (
    Conflict,
    PastResolution,
    Proposal,
    Resolution,
    Round,
    StrategySelector,
    analyse,
    auction_resolution,
    check_position,
    compromise,
    concession,
    conclude,
    indifferent,
    majority,
    negotiation_over,
    round_of,
    similarity,
    weighted_centre,
)
from relaygraph.coordination.games import Game, cooperative_potential, solve
from relaygraph.nodes import market_store
from relaygraph.nodes.agent import (
    AgentRunError,
    AgentSpec,
    make_agent_node,
    resolve_dataset,
    thread_id,
)
from relaygraph.nodes.approval import rejected
from relaygraph.nodes.failures import Failure, recording_failures
from relaygraph.nodes.market import elapsed, span, span_since, store
from relaygraph.nodes.params import RunParams, declared_roles
from relaygraph.nodes.protocols import UpdateNode
from relaygraph.nodes.state import NodeProgress, WorkflowState, merge_dicts
from relaygraph.tools import ToolResult, TypedTool, Workspace
from relaygraph.tools.frames import check_column, load

K_GRID = tuple(round(float(x), 2) for x in np.arange(0.5, 6.01, 0.1))


def flagged_share(values: pd.Series, k: float) -> float:
    """Share of rows outside [Q1 − k·IQR, Q3 + k·IQR]."""
    q1, q3 = values.quantile(0.25), values.quantile(0.75)
    iqr = q3 - q1
    return float(((values < q1 - k * iqr) | (values > q3 + k * iqr)).mean())


def threshold_for(values: pd.Series, target: float) -> tuple[float, bool]:
    """The smallest k on the grid that flags at most ``target`` of the rows, and ``True``; when no
    k on the grid does (heavy tails: the extreme rows stay outside any fence up to k = 6), the
    top of the grid — the k that flags the fewest — and ``False``, so the proposal can say that
    it misses its own tolerance instead of reading as if it met it."""
    met = next((k for k in K_GRID if flagged_share(values, k) <= target), None)
    return (met, True) if met is not None else (K_GRID[-1], False)


def describe_threshold(k: float, share: float, rows: int, column: str, target: float, met: bool) -> str:
    """A proposal in words: what k flags, against the tolerance — and, when the tolerance is out of
    reach on this data, that no k on the grid meets it and this is the closest."""
    if met:
        return f"k = {k:g} flags {share:.2%} of {rows:,} {column} values (tolerated: {target:.0%})."
    return (f"no k on the grid ({K_GRID[0]:g}–{K_GRID[-1]:g}) flags {target:.0%} or less of {rows:,} {column} "
            f"values; k = {k:g} is the closest ({share:.2%} flagged, tolerated: {target:.0%}).")


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


def check_negotiation_data(configurable: dict[str, Any]) -> None:
    """Before any work (the CLI's ``check_config``): the options, and that ``column`` is a
    numeric column of the dataset — else every proposer would run and then fail on it. A
    dataset that cannot be resolved here is left to the run's own checks."""
    config: RunnableConfig = {"configurable": configurable}
    cfg = negotiation_config(config)
    settings = settings_from_config(config)
    try:
        workspace = Workspace(settings.data_dir, settings.output_dir, thread_id(config), roles=declared_roles(config))
        frame, _ = load(workspace, resolve_dataset({}, settings, workspace))
    except (FileNotFoundError, PermissionError, OSError):
        return
    try:
        check_column(frame, cfg.column, numeric=True)
    except ValueError as exc:
        raise ValueError(f"--param column={cfg.column}: {str(exc).rstrip('.')}") from None


class Stance(BaseModel):
    """A proposer's policy: the share of rows it will tolerate flagging, and its give."""

    model_config = ConfigDict(frozen=True)

    target: float = Field(gt=0, lt=1)
    flexibility: float = Field(ge=0, le=1)
    weight: float = Field(default=1.0, gt=0)


class NegotiationState(WorkflowState, total=False):
    proposals: Annotated[dict[str, dict[str, Any]], merge_dicts]
    conflict: dict[str, Any]
    turns: Annotated[dict[str, dict[str, Any]], merge_dicts]  # "round#r" -> agent -> its turn
    rounds: list[dict[str, Any]]  # closed negotiation rounds; round 0 = the opening proposals
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
    inputs = {"column": {"type": "string", "description": "The numeric column the threshold is for."}}

    def __init__(self, workspace: Workspace, dataset: str, column: str, stance: Stance, box: ProposalBox) -> None:
        self.workspace, self.dataset, self.stance, self.box = workspace, dataset, stance, box
        self.inputs = {"column": {**self.inputs["column"], "enum": [column]}}
        super().__init__()

    def forward(self, column: str) -> ToolResult:
        frame, _ = load(self.workspace, self.dataset)
        values = pd.to_numeric(frame[column], errors="coerce").dropna()
        k, met = threshold_for(values, self.stance.target)
        share = flagged_share(values, k)
        self.box.proposal = {"value": k, "share": share, "flagged": int(round(share * len(values))),
                             "rows": len(values), "meets_tolerance": met}
        return ToolResult(summary=describe_threshold(k, share, len(values), column, self.stance.target, met),
                          facts={"k": k, "flagged_share": share, "rows": len(values), "meets_tolerance": met})


def route_proposers(names: list[str]) -> Callable[[dict[str, Any]], list[Send]]:
    def fan_out(state: dict[str, Any]) -> list[Send]:
        return [Send("propose", {"task": state.get("task"), "data": state.get("data"),
                                 "context": state.get("context") or {}, "proposer": name}) for name in names]

    return fan_out


def make_propose_node(specs: dict[str, AgentSpec], stances: dict[str, Stance]
                      ) -> UpdateNode:
    """Each proposer's agent derives its opening position from the data (one ``Send`` per proposer).

    On the one failure path (:func:`~relaygraph.nodes.failures.recording_failures`): an agent that
    states no proposal is retried on the run's budget, then recorded as failed; the conflict goes
    on between the others (the run is then at best ``partial``).
    """

    def propose(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        name = state["proposer"]
        settings, cfg = settings_from_config(config), negotiation_config(config)
        workspace = Workspace(settings.data_dir, settings.output_dir, thread_id(config), roles=declared_roles(config))
        dataset = resolve_dataset(state, settings, workspace)
        box = ProposalBox()
        tools = lambda _ctx: [ProposeThresholdTool(workspace, dataset, cfg.column, stances[name], box)]
        context = {**(state.get("context") or {}), "column": cfg.column}
        update = make_agent_node(specs[name], node=f"propose_{name}", extra_tools=tools)(
            {**state, "context": context}, config)
        if box.proposal is None:
            errors = [s["error"] for s in update["steps"] if s.get("error")]
            raise AgentRunError({"agent": name, "node": f"propose_{name}", "reason": "no proposal submitted "
                                 "(propose_threshold was never called successfully"
                                 + (f"; last error: {' '.join(errors[-1].split())[:300]})" if errors else ")"),
                                 "steps": update["steps"]})
        stance = stances[name]
        return {"steps": update["steps"], "context": {"dataset": dataset}, "progress": update["progress"],
                "proposals": {name: box.proposal | {"target": stance.target, "flexibility": stance.flexibility,
                                                    "weight": stance.weight, "rationale": update["answers"][name]}}}

    node = recording_failures(propose, who=lambda state: (state["proposer"], f"propose_{state['proposer']}"))
    node.__name__ = "propose"
    return node


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
    """Kind, stakes and cooperative potential; the strategy and why. A negotiation opens here:
    the proposals are its round 0."""
    started = time.perf_counter()
    proposals = state.get("proposals") or {}
    if len(proposals) < 2:  # the other proposers failed for good (recorded in errors)
        detail = (f"only {len(proposals)} proposal(s) ({', '.join(proposals) or 'none'}): no conflict to resolve; "
                  "see errors for the proposers that failed")
        return {"progress": [NodeProgress(node="analyse", status="completed", duration_s=elapsed(started),
                                          detail=detail).model_dump()]}
    settings, cfg = settings_from_config(config), negotiation_config(config)
    workspace = Workspace(settings.data_dir, settings.output_dir, thread_id(config), roles=declared_roles(config))
    frame, _ = load(workspace, resolve_dataset(state, settings, workspace))
    conflict = build_conflict(proposals, pd.to_numeric(frame[cfg.column], errors="coerce").dropna())
    # solves the game only if it must (games.py), and not at all when nobody has anything at stake
    potential = 0.0 if indifferent(conflict) else cooperative_potential(game_of(conflict))
    analysis = analyse(conflict, cooperative_potential=potential)
    if cfg.strategy:
        strategy, why = cfg.strategy, "named by the caller (configurable.strategy)"
    else:
        strategy, why = StrategySelector(history_of(store(config, settings))).choose(analysis)
    update: dict[str, Any] = {
        "conflict": {"conflict": conflict.model_dump(), "analysis": analysis.model_dump(),
                     "bucket": analysis.bucket(), "strategy": strategy, "why": why},
        "progress": [NodeProgress(node="analyse", status="completed", duration_s=elapsed(started),
                                  detail=f"{analysis.bucket()}: {strategy} — {why}").model_dump()]}
    if strategy == "negotiation":
        opening = round_of(0, {p.agent: p.value for p in conflict.proposals}, weights_of(conflict), conflict.scale)
        update["rounds"] = [round_span(opening.model_dump() | {"closed_at": time.time()})]
    return update


def weights_of(conflict: Conflict) -> dict[str, float]:
    return {p.agent: p.weight for p in conflict.proposals}


def round_span(closed: dict[str, Any], opened: float | None = None) -> dict[str, Any]:
    """A span for a closed negotiation round: its positions, similarity and who held or failed,
    timed from the round's opening (the previous close) to its close — the interval in which its
    turns ran. It cannot be their parent: each turn is its own ``Send`` task of one graph step and
    the round closes in the next, so LangGraph gives the turns' node spans the run as parent
    before the round is known to be complete; the round number on both ties them together."""
    turns = closed.get("turns") or {}
    with span_since("negotiation.round", None if opened is None else int(opened * 1e9), {
            "negotiation.round": closed["number"], "negotiation.similarity": closed["similarity"],
            "negotiation.positions": closed["positions"],
            "negotiation.held": ",".join(a for a, t in sorted(turns.items()) if t.get("status") != "proposed") or None}):
        pass
    return closed


def route_after_analyse(state: dict[str, Any]) -> list[Send] | str:
    block = state.get("conflict")
    if not block or rejected(state):
        return "finalize"
    if block["strategy"] == "arbitration":
        return "arbitrate"
    if block["strategy"] == "negotiation":
        return next_round(state)
    return "resolve"


# --- negotiation: a graph step per round, a turn per agent --------------------------------------


class ConcedeInput(TypedDict, total=False):
    task: str
    data: str | None
    context: dict[str, Any]
    turn: dict[str, Any]


def turn_key(number: int) -> str:
    return f"round#{number}"


def next_round(state: dict[str, Any]) -> list[Send] | str:
    """Another round — one ``Send`` per agent, each told the previous round's positions — or,
    when the negotiation is over (agreement or the last round played), on to ``resolve``."""
    rounds = [Round.model_validate(r) for r in state.get("rounds") or []]
    if not rounds or negotiation_over(rounds) or rejected(state):
        return "finalize" if rejected(state) else "resolve"
    conflict = state["conflict"]["conflict"]
    number = rounds[-1].number + 1
    return [Send("concede", {"task": state.get("task"), "data": state.get("data"),
                             "context": state.get("context") or {},
                             "turn": {"agent": agent, "round": number, "conflict": conflict,
                                      "positions": dict(rounds[-1].positions)}})
            for agent in rounds[-1].positions]


class PositionBox:
    def __init__(self) -> None:
        self.position: dict[str, Any] | None = None


class ReviewPositionsTool(TypedTool):
    """An agent's view of the table before it moves: the others' positions, and what each
    position means in the data (rows flagged) and to the agent (utility against its tolerance)."""

    name = "review_positions"
    description = ("Review this round of the negotiation: every agent's current threshold k, the weighted centre, "
                   "how many rows each would flag in the data and what that is worth to you, and the concession "
                   "your flexibility allows this round.")
    inputs = {}

    def __init__(self, proposal: Proposal, number: int, positions: dict[str, float | str],
                 weights: dict[str, float], scale: float | None, stance: Stance, values: pd.Series) -> None:
        self.proposal, self.number, self.positions, self.weights = proposal, number, positions, weights
        self.scale, self.stance, self.values = scale, stance, values
        super().__init__()

    def forward(self) -> ToolResult:
        own = float(self.positions[self.proposal.agent])
        centre = float(weighted_centre(self.positions, self.weights))
        suggested = float(concession(self.proposal, own, self.positions, self.weights, self.number))
        def view(k: float) -> dict[str, Any]:
            share = flagged_share(self.values, k)
            return {"k": round(k, 6), "flagged_share": round(share, 6),
                    "flagged_rows": round(share * len(self.values)), "utility": utility(share, self.stance.target)}

        others = {a: float(v) for a, v in self.positions.items() if a != self.proposal.agent}
        mine, middle, step = view(own), view(centre), view(suggested)
        rationale = (f"Round {self.number}: conceding {self.stance.flexibility:.0%} of the way from k={own:g} toward "
                     f"the others' weighted centre k={centre:g} — k={suggested:g} flags {step['flagged_share']:.2%} "
                     f"of the rows (I tolerate {self.stance.target:.0%}; utility {step['utility']:.2f}).")
        return ToolResult(
            summary=(f"Round {self.number}: you hold k={own:g} ({mine['flagged_share']:.2%} flagged), others "
                     + ", ".join(f"{a} k={v:g}" for a, v in sorted(others.items()))
                     + f"; weighted centre k={centre:g} ({middle['flagged_share']:.2%} flagged). Your flexibility "
                     f"allows k={suggested:g} ({step['flagged_share']:.2%} flagged, utility {step['utility']:.2f})."),
            facts={"round": self.number, "own": mine, "centre": middle, "suggested": step, "others": others,
                   "similarity": similarity([self.positions[a] for a in self.weights], list(self.weights.values()),
                                            self.scale)},
            artifacts={"value": repr(suggested), "rationale": rationale})


class ProposePositionTool(TypedTool):
    name = "propose_position"
    description = ("State your position for this round: the threshold k you now propose, with a short rationale. "
                   "It must be a concession: within the current positions, and no farther from the others' "
                   "weighted centre than where you stand (holding your position is allowed).")
    inputs = {
        "value": {"type": "number", "description": "The IQR multiplier k you propose this round."},
        "rationale": {"type": "string", "description": "Why (one or two sentences)."},
    }

    def __init__(self, agent: str, positions: dict[str, float | str], weights: dict[str, float],
                 box: PositionBox) -> None:
        self.agent, self.positions, self.weights, self.box = agent, positions, weights, box
        super().__init__()

    def forward(self, value: float, rationale: str) -> ToolResult:
        if self.box.position is not None:
            raise ValueError("you have already stated your position for this round")
        position = check_position(self.agent, value, self.positions, self.weights)
        self.box.position = {"position": position, "rationale": rationale.strip()}
        held = position == self.positions[self.agent]
        return ToolResult(summary=f"{'Held' if held else 'Moved to'} k = {position:g}.",
                          facts={"position": position, "held": held})


def negotiator(spec: AgentSpec, number: int) -> AgentSpec:
    """The proposer's agent, taking its turn in round ``number`` (the role names the round)."""
    return spec.model_copy(update={
        "role": f"{spec.name} negotiator, round {number}", "tools": (),
        "instructions": (f"Your policy is {spec.name}. This is round {number} of a negotiation on the outlier "
                         "threshold. Review the positions with review_positions, then state your updated position "
                         "with propose_position: concede toward the others as far as the data lets you accept.")})


def make_concede_node(specs: dict[str, AgentSpec], stances: dict[str, Stance]
                      ) -> UpdateNode:
    """One agent's turn in one round: its agent reviews the table and states its position.

    The position that counts is the one the agent states (checked to be a concession), not the
    suggestion. On the one failure path: retried on the run's budget; an agent that fails for
    good is recorded in ``errors`` and holds its previous position for this round.
    """

    def concede(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        turn = state["turn"]
        name, number = turn["agent"], turn["round"]
        conflict = Conflict.model_validate(turn["conflict"])
        proposal = next(p for p in conflict.proposals if p.agent == name)
        positions, weights = dict(turn["positions"]), weights_of(conflict)
        settings, cfg = settings_from_config(config), negotiation_config(config)
        workspace = Workspace(settings.data_dir, settings.output_dir, thread_id(config), roles=declared_roles(config))
        dataset = resolve_dataset(state, settings, workspace)
        frame, _ = load(workspace, dataset)
        values = pd.to_numeric(frame[cfg.column], errors="coerce").dropna()
        box = PositionBox()
        tools = lambda _ctx: [ReviewPositionsTool(proposal, number, positions, weights, conflict.scale,
                                                  stances[name], values),
                              ProposePositionTool(name, positions, weights, box)]
        node = f"round{number}_{name}"
        context = {**(state.get("context") or {}), "column": cfg.column, "round": number}
        # Named by the agent (every turn's node span is "node concede"), like the auction's "bid <name>".
        with span(f"turn {name}", **{"negotiation.agent": name, "negotiation.round": number}):
            update = make_agent_node(negotiator(specs[name], number), node=node, extra_tools=tools)(
                {**state, "context": context}, config)
        if box.position is None:
            raise AgentRunError({"agent": name, "node": node, "reason": f"no position stated in round {number} "
                                 "(propose_position was never accepted)", "steps": update["steps"]})
        record = {"status": "proposed", **box.position,
                  "suggested": concession(proposal, positions[name], positions, weights, number)}
        return {"steps": update["steps"], "progress": update["progress"],
                "turns": {turn_key(number): {name: record}}}

    def held(state: dict[str, Any], outcome: Failure) -> dict[str, Any]:
        turn = state["turn"]
        record = {"status": "failed", "position": turn["positions"][turn["agent"]],
                  "rationale": f"holds: {outcome.failure.reason}"}
        return {**outcome.update(), "turns": {turn_key(turn["round"]): {turn["agent"]: record}}}

    def who(state: dict[str, Any]) -> tuple[str, str]:
        turn = state["turn"]
        return turn["agent"], f"round{turn['round']}_{turn['agent']}"

    node = recording_failures(concede, who=who, on_failure=held)
    node.__name__ = "concede"
    return node


def close_round(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
    """The round's positions — each agent's stated one, or its previous one if it failed — and
    their similarity: one checkpointed step and one span per round."""
    rounds = list(state.get("rounds") or [])
    last = Round.model_validate(rounds[-1])
    number = last.number + 1
    conflict = Conflict.model_validate(state["conflict"]["conflict"])
    turns = (state.get("turns") or {}).get(turn_key(number)) or {}
    positions = {agent: (turns.get(agent) or {}).get("position", previous)
                 for agent, previous in last.positions.items()}
    # the round's wall time: from the previous round's close (or the opening) to this close
    opened = float(rounds[-1].get("closed_at") or time.time())
    closed = round_of(number, positions, weights_of(conflict), conflict.scale).model_dump() | {
        "turns": turns, "closed_at": time.time()}
    held = [a for a in positions if (turns.get(a) or {}).get("status") != "proposed"]
    detail = (f"round {number}: similarity {closed['similarity']:.2f}"
              + (f"; held after failing: {', '.join(held)}" if held else ""))
    return {"rounds": [*rounds, round_span(closed, opened)],
            "progress": [NodeProgress(node="close_round", status="completed",
                                      duration_s=round(max(0.0, closed["closed_at"] - opened), 6),
                                      detail=detail).model_dump()]}


# --- the other strategies, arbitration, history ------------------------------------------------


class ArbitrationBox:
    def __init__(self) -> None:
        self.decision: dict[str, Any] | None = None


class ReviewProposalsTool(TypedTool):
    name = "review_proposals"
    description = ("Review the agents' proposals: each option's flagged share and every agent's utility for it, "
                   "and the option with the least worst-case regret.")
    inputs = {}

    def __init__(self, conflict: Conflict) -> None:
        self.conflict = conflict
        super().__init__()

    def forward(self) -> ToolResult:
        options = sorted(self.conflict.proposals[0].utilities, key=float)
        regret = {o: max(max(p.utilities.values()) - p.utilities[o] for p in self.conflict.proposals)
                  for o in options}
        best = min(options, key=lambda o: (regret[o], float(o)))
        tied = [o for o in options if regret[o] - regret[best] <= 1e-9]
        table = {o: {p.agent: p.utilities[o] for p in self.conflict.proposals} for o in options}
        if len(tied) > 1:  # equally good by minimax regret: say it is a tie and which rule broke it
            rationale = (f"tie: k = {', '.join(tied)} leave no agent more than {regret[best]:.2f} utility short of "
                         f"its own proposal (minimax regret), so any of them is as good; broken by the tie rule "
                         f"(the smaller k): k = {best}.")
            summary = f"{len(options)} options; least worst-case regret: a tie between k = {', '.join(tied)} " \
                      f"(regret {regret[best]:.2f}); the tie rule (the smaller k) gives k = {best}."
        else:
            rationale = (f"k = {best} leaves no agent more than {regret[best]:.2f} utility short of its own "
                         "proposal (minimax regret).")
            summary = f"{len(options)} options; least worst-case regret: k = {best} (regret {regret[best]:.2f})."
        return ToolResult(summary=summary, facts={"utilities": table, "regret": regret, "recommended": best,
                                                  "tied": tied if len(tied) > 1 else []},
                          artifacts={"value": best, "rationale": rationale})


class ArbitrateTool(TypedTool):
    name = "arbitrate"
    description = "Decide the conflict: the threshold k everyone must use, with your written rationale."
    inputs = {
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
    """Run the chosen strategy that needs no agent here (negotiation: conclude its rounds)."""
    started = time.perf_counter()
    block = state["conflict"]
    conflict = Conflict.model_validate(block["conflict"])
    strategy = block["strategy"]
    with span("conflict.resolve", **{"conflict.strategy": strategy, "conflict.why": block["why"]}):
        resolution = _run(strategy, conflict, state)
    return {"resolution": {"primary": resolution.model_dump(), "fallback": None},
            "progress": [NodeProgress(node="resolve", status="completed", duration_s=elapsed(started),
                                      detail=f"{strategy}: {resolution.reason}").model_dump()]}


def route_after_resolve(state: dict[str, Any]) -> str:
    """A strategy that failed to agree falls back to arbitration."""
    if rejected(state):
        return "finalize"
    return "record" if state["resolution"]["primary"]["resolved"] else "arbitrate"


def _run(strategy: str, conflict: Conflict, state: dict[str, Any]) -> Resolution:
    if strategy == "negotiation":
        rounds = [Round.model_validate(r) for r in state.get("rounds") or []]
        return conclude(rounds, weights_of(conflict))
    if strategy == "compromise":
        return compromise(conflict)
    if strategy == "majority":
        return majority(conflict)
    if strategy == "auction":
        return auction_resolution(conflict)
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
    raise ValueError(f"strategy {strategy!r} is run by its own node, not resolve")


def make_arbitrate_node(mediator: AgentSpec) -> UpdateNode:
    """The mediator agent decides (the chosen strategy, or the fallback of one that failed to agree).

    On the one failure path: a mediator that decides nothing is retried on the run's budget,
    then recorded as failed (the graph then skips ``record``: an agent that failed says nothing
    about whether the strategy works, so it is not history to learn from).
    """

    def arbitrate(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        block = state["conflict"]
        conflict = Conflict.model_validate(block["conflict"])
        fallback = block["strategy"] != "arbitration"
        box = ArbitrationBox()
        tools = lambda _ctx: [ReviewProposalsTool(conflict), ArbitrateTool(conflict, box)]
        why = "fallback: the chosen strategy did not agree" if fallback else block["why"]
        with span("conflict.resolve", **{"conflict.strategy": "arbitration", "conflict.why": why}):
            update = make_agent_node(mediator, node="arbitrate", extra_tools=tools)(state, config)
        if box.decision is None:
            raise AgentRunError({"agent": mediator.name, "node": "arbitrate", "steps": update["steps"],
                                 "reason": "the mediator did not decide (arbitrate was never accepted)"})
        resolution = Resolution(strategy="arbitration", resolved=True, value=box.decision["value"],
                                detail={"rationale": box.decision["rationale"]},
                                reason=f"the mediator decided: {box.decision['rationale']}").model_dump()
        outcome = ({**state["resolution"], "fallback": resolution} if fallback
                   else {"primary": resolution, "fallback": None})
        return {**update, "resolution": outcome}

    node = recording_failures(arbitrate, who=lambda _state: (mediator.name, "arbitrate"))
    node.__name__ = "arbitrate"
    return node


def record_outcome(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
    """Persist the resolution (what the selector learns from) and write the result."""
    started = time.perf_counter()
    settings = settings_from_config(config)
    block, resolution = state["conflict"], state["resolution"]
    primary = resolution["primary"]
    final = resolution["fallback"] or primary
    market_store.record_resolution(
        store(config, settings), thread_id=thread_id(config), conflict_id="c1", topic=block["conflict"]["topic"],
        bucket=block["bucket"], strategy=block["strategy"], resolved=primary["resolved"],
        rounds=max(0, len(primary.get("rounds") or []) - 1),
        outcome={"value": final["value"], "reason": final["reason"], "by": final["strategy"]})
    return {"progress": [NodeProgress(node="record", status="completed", duration_s=elapsed(started),
                                      detail=f"{block['strategy']}: {primary['reason']}").model_dump()],
            "context": {"resolved_at": time.time()}}


def summary_lines(state: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    block, resolution = state.get("conflict") or {}, state.get("resolution") or {}
    primary, fallback = resolution.get("primary") or {}, resolution.get("fallback")
    final = fallback or primary
    proposals = (block.get("conflict") or {}).get("proposals") or []
    failed = sorted({e["agent"] for e in state.get("errors") or []})
    lines = [f"Conflict: {(block.get('conflict') or {}).get('topic', 'outlier threshold')} — "
             + (", ".join(f"{p['agent']} k={p['value']:g}" for p in proposals)
                or f"{len(state.get('proposals') or {})} proposal(s): nothing to resolve")]
    for name, p in sorted((state.get("proposals") or {}).items()):
        if p.get("meets_tolerance") is False:  # absent in runs from before this was recorded: say nothing
            lines.append(f"  {name}: no k on the grid meets its {p['target']:.0%} tolerance; k={p['value']:g} is "
                         f"the closest ({p['share']:.2%} flagged)")
    analysis = block.get("analysis") or {}
    if block:
        lines.append(f"Analysis: {analysis.get('kind')}, similarity {analysis.get('similarity', 0):.2f}, "
                     f"stakes {analysis.get('stakes', 0):.2f}, cooperative potential "
                     f"{analysis.get('cooperative_potential', 0):.2f}")
        lines.append(f"Strategy: {block.get('strategy')} — {block.get('why')}")
    rounds = primary.get("rounds") or state.get("rounds") or []
    for r in rounds:
        positions = ", ".join(f"{a}={v:g}" if isinstance(v, float) else f"{a}={v}" for a, v in r["positions"].items())
        held = [a for a, t in (r.get("turns") or {}).items() if t.get("status") != "proposed"]
        lines.append(f"  round {r['number']}: {positions} (similarity {r['similarity']:.2f})"
                     + (f" — {', '.join(held)} held after failing" if held else ""))
    if primary:
        lines.append(f"Outcome ({primary.get('strategy')}): {primary.get('reason')}")
    if fallback:
        lines.append(f"Fallback ({fallback['strategy']}): {fallback['reason']}")
    if failed:
        lines.append(f"Failed agents: {', '.join(failed)} (see errors)")
    lines.append(f"Resolved: {'k = ' + format(final.get('value'), 'g') if final.get('resolved') else 'no'}")
    return "\n".join(lines), {"conflict": block.get("conflict"), "analysis": analysis,
                              "strategy": block.get("strategy"), "why": block.get("why"),
                              "rounds": rounds, "outcome": primary, "fallback": fallback,
                              "resolved": bool(final.get("resolved")), "value": final.get("value")}
