"""Conflicts between agents' proposals: analysis, resolution strategies, and choosing one.

A conflict is a set of proposals on one topic — numeric (an outlier threshold, a budget
share) or categorical (a cleaning rule). :func:`analyse` measures it:

* **similarity** (0–1): numeric, ``1 − (max − min) / scale`` with ``scale`` the topic's range
  (or the largest magnitude); categorical, the weighted share of the most supported option;
* **stakes** (0–1): how much the agents lose by not getting their way — the spread itself for
  numeric topics, ``1 − similarity`` for categorical ones, raised to the caller's stakes when given;
* **cooperative potential** (0–1): from the agents' utilities, the game's (see
  :func:`relaygraph.coordination.games.cooperative_potential`); without utilities, how close the
  positions already are (similarity).

Strategies (each a pure function here; the graph adds the agents):

* ``negotiation`` — up to 5 rounds; each round every agent states its updated position, which
  :func:`check_position` accepts only as a concession; agreement when similarity ≥ 0.8
  (:func:`round_of`, :func:`negotiation_over`, :func:`conclude`). :func:`concession` is the
  documented rule — a fraction of the way toward the weighted centre (numeric) or, once the
  concession budget covers the gap, the best supported option (categorical) — which
  :func:`negotiate` plays for every agent and the graph offers its agents as a suggestion;
* ``compromise`` — numeric: the weighted mean; categorical: the option with the most weight;
* ``majority`` — one ballot per agent through the consensus voting
  (:func:`relaygraph.coordination.voting.tally`, mode ``majority``: more than half of the
  agents); without such a majority, its plurality fallback decides and the result says so;
* ``arbitration``, ``auction`` and ``game`` are run by the graph (a mediator agent; the auctions
  of :mod:`relaygraph.coordination.auctions`; :func:`relaygraph.coordination.games.solve`).

:class:`StrategySelector` picks one by a documented rule and learns from history.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from relaygraph.coordination.auctions import AuctionRules, Bid, run_auction
from relaygraph.coordination.ballots import Ballot, normalize_choice
from relaygraph.coordination.voting import VotingMode, plurality, tally

Strategy = Literal["negotiation", "arbitration", "majority", "compromise", "auction", "game"]
STRATEGIES: tuple[str, ...] = ("negotiation", "arbitration", "majority", "compromise", "auction", "game")
AGREEMENT = 0.8
MAX_ROUNDS = 5


class Proposal(BaseModel):
    """One agent's position, how much its view counts, and how far it will move per round."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agent: str = Field(min_length=1)
    value: float | str
    weight: float = Field(default=1.0, gt=0)
    flexibility: float = Field(default=0.3, ge=0, le=1)
    rationale: str = ""
    cost: float | None = Field(default=None, ge=0)  # what carrying out its own position would cost it
    utilities: dict[str, float] = Field(default_factory=dict)  # its utility for each option


class Conflict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str
    proposals: tuple[Proposal, ...] = Field(min_length=2)
    scale: float | None = Field(default=None, gt=0)  # numeric topics: the range that counts as "far apart"
    stakes: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _one_kind(self) -> Conflict:
        kinds = {isinstance(p.value, str) for p in self.proposals}
        if len(kinds) != 1:
            raise ValueError("proposals must be all numbers or all options, not a mix")
        if len({p.agent for p in self.proposals}) != len(self.proposals):
            raise ValueError("one proposal per agent")
        return self

    @property
    def kind(self) -> Literal["numeric", "categorical"]:
        return "categorical" if isinstance(self.proposals[0].value, str) else "numeric"

    def options(self) -> list[str]:
        found = {str(p.value) for p in self.proposals} | {o for p in self.proposals for o in p.utilities}
        return sorted(found)


def similarity(values: Sequence[float | str], weights: Sequence[float], scale: float | None = None) -> float:
    """How close positions are, 0–1 (see the module docstring)."""
    if isinstance(values[0], str):
        support: defaultdict[str, float] = defaultdict(float)
        for v, w in zip(values, weights, strict=True):
            support[str(v)] += w
        return round(max(support.values()) / sum(weights), 6)
    numbers = [float(v) for v in values]
    spread = max(numbers) - min(numbers)
    width = scale or max(abs(v) for v in numbers) or 1.0
    return round(max(0.0, 1 - spread / width), 6)


class Analysis(BaseModel):
    kind: Literal["numeric", "categorical"]
    agents: int
    similarity: float
    stakes: float
    cooperative_potential: float
    has_costs: bool
    has_utilities: bool
    unique_cheapest: bool = False  # costs known and one proposal's is strictly the lowest
    indifferent: bool = False  # every agent's utility is the same for every option: no real conflict

    def bucket(self) -> str:
        """The features the selector learns on: kind, stakes band, cooperation band, data at hand."""
        band = lambda x: "low" if x < 0.34 else ("mid" if x < 0.67 else "high")
        extras = "+costs" if self.has_costs else ""
        extras += "+utilities" if self.has_utilities else ""
        return f"{self.kind}/stakes-{band(self.stakes)}/coop-{band(self.cooperative_potential)}{extras}"


def indifferent(conflict: Conflict, tolerance: float = 1e-9) -> bool:
    """Every agent's utilities are known and the same for every option it rates: whichever
    position wins, nobody loses anything — there is no real conflict, however far apart the
    numbers are (e.g. every k flags the same rows)."""
    return all(p.utilities and max(p.utilities.values()) - min(p.utilities.values()) <= tolerance
               for p in conflict.proposals)


def analyse(conflict: Conflict, cooperative_potential: float | None = None) -> Analysis:
    """Stakes and cooperative potential are 0 when every agent is :func:`indifferent` (nothing to
    lose, nothing to gain together) — the distance between the numbers alone said 0.92 for
    positions that did exactly the same thing to the data."""
    values = [p.value for p in conflict.proposals]
    weights = [p.weight for p in conflict.proposals]
    sim = similarity(values, weights, conflict.scale)
    stakes = 1 - sim
    if conflict.stakes is not None:
        stakes = max(stakes, conflict.stakes)
    has_utilities = all(p.utilities for p in conflict.proposals)
    coop = sim if cooperative_potential is None else cooperative_potential
    nothing_at_stake = indifferent(conflict)
    if nothing_at_stake:
        stakes = coop = 0.0
    has_costs = all(p.cost is not None for p in conflict.proposals)
    costs = sorted(float(p.cost or 0.0) for p in conflict.proposals)
    return Analysis(kind=conflict.kind, agents=len(conflict.proposals), similarity=sim, stakes=round(stakes, 6),
                    cooperative_potential=round(coop, 6), has_costs=has_costs, has_utilities=has_utilities,
                    unique_cheapest=has_costs and costs[0] < costs[1], indifferent=nothing_at_stake)


# --- strategies ------------------------------------------------------------------------------


class Round(BaseModel):
    number: int
    positions: dict[str, float | str]
    similarity: float
    #: Per agent, how it took its turn when agents play the rounds (the graph: stated or held, why).
    turns: dict[str, dict[str, Any]] = Field(default_factory=dict)


class Resolution(BaseModel):
    """A strategy's outcome: the agreed value (None when it failed to agree), and the steps."""

    strategy: Strategy
    resolved: bool
    value: float | str | None
    rounds: list[Round] = Field(default_factory=list)
    detail: dict[str, Any] = Field(default_factory=dict)
    reason: str


def weighted_centre(positions: dict[str, float | str], weights: dict[str, float]) -> float | str:
    """Numeric: the weighted mean; categorical: the option with the most weight (ties by name)."""
    if isinstance(next(iter(positions.values())), str):
        support: dict[str, float] = defaultdict(float)
        for agent, option in positions.items():
            support[str(option)] += weights[agent]
        return min(support, key=lambda o: (-support[o], o))
    total = sum(weights.values())
    return sum(float(v) * weights[a] for a, v in positions.items()) / total


def concession(proposal: Proposal, own: float | str, positions: dict[str, float | str],
               weights: dict[str, float], number: int) -> float | str:
    """The documented concession rule for round ``number`` — what :func:`negotiate` plays for every
    agent, and what the graph's ``review_positions`` tool suggests to an agent (which decides).

    Numeric: move ``flexibility`` of the way toward the current weighted mean. Categorical:
    switch to the best supported option once the accumulated concession
    (``flexibility × round``) covers the utility given up (1 − u(best)/u(own), or a full
    concession without utilities); otherwise hold.
    """
    centre = weighted_centre(positions, weights)
    if not isinstance(own, str):
        return round(float(own) + proposal.flexibility * (float(centre) - float(own)), 9)
    if own == centre:
        return own
    u_own, u_best = proposal.utilities.get(str(own), 1.0), proposal.utilities.get(str(centre), 0.0)
    give_up = 1.0 if not proposal.utilities else max(0.0, 1 - u_best / u_own) if u_own > 0 else 0.0
    return centre if proposal.flexibility * number >= give_up else own


def check_position(agent: str, new: float | str, positions: dict[str, float | str],
                   weights: dict[str, float], options: Sequence[str] = ()) -> float | str:
    """An agent's updated position, accepted only as a concession (monotonic concession protocol).

    Numeric: within the current positions' range and no farther from the weighted centre than
    the agent's own position (holding still is allowed; moving away is not). Categorical: one of
    the options on the table. Returns the position as stored; raises ``ValueError`` saying what
    would be accepted.
    """
    own = positions[agent]
    if isinstance(own, str):
        allowed = sorted({str(v) for v in positions.values()} | set(options))
        if str(new) not in allowed:
            raise ValueError(f"{new!r} is not on the table; choose one of {', '.join(allowed)}")
        return str(new)
    if isinstance(new, str) or math.isnan(float(new)):
        raise ValueError(f"a position on this topic is a number, not {new!r}")
    value = float(new)
    low, high = min(float(v) for v in positions.values()), max(float(v) for v in positions.values())
    centre = float(weighted_centre(positions, weights))
    if not low - 1e-9 <= value <= high + 1e-9:
        raise ValueError(f"{value:g} is outside the current positions ({low:g}–{high:g}); propose within them")
    if abs(value - centre) > abs(float(own) - centre) + 1e-9:
        raise ValueError(f"{value:g} moves away from the others (weighted centre {centre:g}); hold at "
                         f"{float(own):g} or concede toward {centre:g}")
    return round(value, 9)


def round_of(number: int, positions: dict[str, float | str], weights: dict[str, float],
             scale: float | None = None) -> Round:
    """Round ``number`` closed on ``positions``: its similarity (agents in ``weights`` order)."""
    agents = list(weights)
    return Round(number=number, positions={a: positions[a] for a in agents},
                 similarity=similarity([positions[a] for a in agents], [weights[a] for a in agents], scale))


def negotiation_over(rounds: Sequence[Round], *, max_rounds: int = MAX_ROUNDS, threshold: float = AGREEMENT) -> bool:
    """Stop after the latest round: agreement (similarity ≥ ``threshold``) or ``max_rounds`` played."""
    return rounds[-1].similarity >= threshold or rounds[-1].number >= max_rounds


def conclude(rounds: Sequence[Round], weights: dict[str, float], *, max_rounds: int = MAX_ROUNDS,
             threshold: float = AGREEMENT) -> Resolution:
    """The negotiation's outcome from its rounds (round 0 = the opening proposals): on agreement,
    the weighted centre of the last positions; otherwise unresolved."""
    last = rounds[-1]
    agreed = last.similarity >= threshold
    value = weighted_centre(dict(last.positions), weights) if agreed else None
    if isinstance(value, float):
        value = round(value, 6)
    reason = (f"agreement after {last.number} round(s): similarity {last.similarity:.2f} ≥ {threshold}" if agreed
              else f"no agreement in {max_rounds} rounds: similarity {last.similarity:.2f} < {threshold}")
    return Resolution(strategy="negotiation", resolved=agreed, value=value, rounds=list(rounds), reason=reason)


def negotiate(conflict: Conflict, *, max_rounds: int = MAX_ROUNDS, threshold: float = AGREEMENT) -> Resolution:
    """Rounds of concessions until positions are ≥ ``threshold`` similar, at most ``max_rounds``:
    every agent plays :func:`concession` on the previous round's positions (simultaneous moves).

    The graph plays the same rounds with agents deciding each move (:func:`check_position`
    keeps them concessions); this is the reference it is tested against.
    """
    weights = {p.agent: p.weight for p in conflict.proposals}
    positions: dict[str, float | str] = {p.agent: p.value for p in conflict.proposals}
    rounds = [round_of(0, positions, weights, conflict.scale)]
    while not negotiation_over(rounds, max_rounds=max_rounds, threshold=threshold):
        number = rounds[-1].number + 1
        positions = {p.agent: concession(p, positions[p.agent], positions, weights, number)
                     for p in conflict.proposals}
        rounds.append(round_of(number, positions, weights, conflict.scale))
    return conclude(rounds, weights, max_rounds=max_rounds, threshold=threshold)


def compromise(conflict: Conflict) -> Resolution:
    weights = {p.agent: p.weight for p in conflict.proposals}
    value = weighted_centre({p.agent: p.value for p in conflict.proposals}, weights)
    how = "weighted mean" if conflict.kind == "numeric" else "weighted choice (most total weight)"
    if isinstance(value, float):
        value = round(value, 6)
    return Resolution(strategy="compromise", resolved=True, value=value, detail={"weights": weights},
                      reason=f"{how} of the proposals")


def majority(conflict: Conflict) -> Resolution:
    """One ballot per agent for its own position (numbers vote as themselves), tallied by the
    consensus voting; confidence is the agent's weight relative to the heaviest agent's."""
    heaviest = max(p.weight for p in conflict.proposals)
    ballots = [Ballot(voter=p.agent, choice=str(p.value), confidence=p.weight / heaviest, rationale=p.rationale)
               for p in conflict.proposals]
    result = tally(ballots, VotingMode.MAJORITY)
    if result.decision is None:
        result = plurality(ballots)
    original = {normalize_choice(str(p.value)): p.value for p in conflict.proposals}
    value = original.get(result.decision) if result.decision is not None else None
    reason = result.reason
    if conflict.kind == "numeric" and value is not None:  # the tally quotes its choice as text ('6.0')
        reason = reason.replace(repr(result.decision), f"{float(value):g}", 1)
    if result.tie and conflict.kind == "numeric":  # the tally breaks ties by text ("10" < "9.5"): redo
        conf: defaultdict[str, float] = defaultdict(float)
        for b in ballots:
            conf[normalize_choice(b.choice)] += b.confidence
        top = max(result.support.values())
        tied = [c for c, n in result.support.items() if n == top]
        best = max(conf[c] for c in tied)
        tied = [c for c in tied if abs(conf[c] - best) < 1e-12]
        value = min((original[c] for c in tied if c in original), key=float)
        reason = (f"tie between {', '.join(f'{float(original[c]):g}' for c in tied if c in original)} "
                  f"({top:g} vote(s) each, equal weight): the smaller number wins, compared numerically")
    return Resolution(strategy="majority", resolved=value is not None, value=value,
                      detail={"votes": result.support, "mode": result.mode, "tie": result.tie},
                      reason=reason)


# --- strategy selection -----------------------------------------------------------------------


class PastResolution(BaseModel):
    bucket: str
    strategy: Strategy
    resolved: bool


def rule_choice(analysis: Analysis) -> tuple[Strategy, str]:
    """The documented rule, first match wins — the cheapest strategy that fits the conflict:

    0. every agent indifferent (:func:`indifferent`) → ``majority``: no real conflict, any option
       is equally good; the most supported proposal wins, ties to the smaller value (a proposed
       position, unlike compromise's mean, whose utility nobody stated);
    1. positions already close (similarity ≥ 0.6) → ``compromise`` (no one loses much);
    2. numeric with stakes < 0.67 → ``negotiation`` (room to concede);
    3. utilities known and cooperative potential > 0.5 → ``game`` (a joint gain to find: the
       Nash bargaining outcome);
    4. costs known and one position strictly cheapest → ``auction`` (the positions are too far
       apart to meet; carry out the one that costs least);
    5. categorical with ≥ 3 agents → ``majority``;
    6. otherwise → ``arbitration`` (high stakes, nothing to tell the positions apart: a mediator
       decides).

    Costs no longer come first: every proposal of the threshold conflict carries one, which made
    ``auction`` the choice for every conflict, even ones the agents could negotiate. Negotiation
    comes before ``game`` for the same reason: now that cooperative potential measures the gain
    of agreeing over failing to (:func:`relaygraph.coordination.games.cooperative_potential`),
    nearly every threshold conflict has one, and agents with room to concede should concede.
    """
    if analysis.indifferent:
        return "majority", ("no real conflict: every agent is indifferent between the options (each gives it "
                            "the same utility), so any option is equally good; the most supported proposal "
                            "is taken (ties: the smaller value)")
    if analysis.similarity >= 0.6:
        return "compromise", f"positions are already close (similarity {analysis.similarity:.2f} ≥ 0.6)"
    if analysis.kind == "numeric" and analysis.stakes < 0.67:
        return "negotiation", f"numeric positions with moderate stakes ({analysis.stakes:.2f}): room to concede"
    if analysis.has_utilities and analysis.cooperative_potential > 0.5:
        return "game", (f"the agents' utilities show a joint gain (cooperative potential "
                        f"{analysis.cooperative_potential:.2f} > 0.5): bargain for it")
    if analysis.has_costs and analysis.unique_cheapest:
        return "auction", (f"stakes too high to meet ({analysis.stakes:.2f}) and one position is cheapest "
                           "to carry out")
    if analysis.kind == "categorical" and analysis.agents >= 3:
        return "majority", f"{analysis.agents} agents choosing between options"
    return "arbitration", f"high stakes ({analysis.stakes:.2f}) and no structure to exploit: a mediator decides"


def auction_resolution(conflict: Conflict) -> Resolution:
    """The ``auction`` strategy: the position cheapest to carry out wins (its agent's ``cost``).
    Equal lowest costs are a tie, reported as one and broken by the auctions' tie rule (higher
    reputation — here all equal — then the name); nobody is paid, so no payment rule applies."""
    bids = [Bid(bidder=p.agent, cost=p.cost or 0.0) for p in conflict.proposals]
    result = run_auction(bids, AuctionRules(kind="sealed"))
    assert result.winner is not None  # every proposal bids and there is no reserve
    value = next(p.value for p in conflict.proposals if p.agent == result.winner)
    lowest = min(b.cost for b in bids)
    tied = sorted(b.bidder for b in bids if b.cost == lowest)
    if len(tied) > 1:
        reason = (f"tie: {', '.join(tied)} cost the same ({lowest:g}); broken by the tie rule (reputation, "
                  f"then name): {result.winner}'s position")
    else:
        runner_up = sorted(b.cost for b in bids)[1]
        reason = f"{result.winner}'s position is cheapest to carry out ({lowest:g} vs next {runner_up:g})"
    detail = {"costs": {b.bidder: b.cost for b in bids}, "winner": result.winner, "tie": tied if len(tied) > 1 else []}
    return Resolution(strategy="auction", resolved=True, value=value, detail=detail, reason=reason)


class StrategySelector:
    """The rule, corrected by experience.

    For conflicts in the same bucket (:meth:`Analysis.bucket`), each strategy's success rate is
    Laplace-smoothed, ``(resolved + 1) / (tried + 2)`` — an untried strategy scores 0.5. Once the
    bucket has at least ``min_history`` past resolutions, the strategy with the best rate wins
    if it beats the rule's choice by more than ``margin``; otherwise the rule stands.
    """

    def __init__(self, history: Iterable[PastResolution] = (), *, min_history: int = 3, margin: float = 0.1):
        self.history = list(history)
        self.min_history, self.margin = min_history, margin

    def rates(self, bucket: str) -> dict[Strategy, tuple[float, int]]:
        tried: Counter[Strategy] = Counter()
        won: Counter[Strategy] = Counter()
        for past in self.history:
            if past.bucket == bucket:
                tried[past.strategy] += 1
                won[past.strategy] += int(past.resolved)
        return {s: ((won[s] + 1) / (tried[s] + 2), tried[s]) for s in tried}

    def choose(self, analysis: Analysis, allowed: Sequence[str] = STRATEGIES) -> tuple[Strategy, str]:
        ruled, why = rule_choice(analysis)
        if ruled not in allowed:
            ruled, why = "arbitration", f"{ruled} is not available here; a mediator decides"
        if analysis.indifferent:  # nothing to learn: any strategy's outcome is as good as any other
            return ruled, f"rule: {why}"
        bucket = analysis.bucket()
        rates = {s: r for s, r in self.rates(bucket).items() if s in allowed}
        seen = sum(n for _, n in rates.values())
        if seen < self.min_history:
            return ruled, f"rule: {why}"
        rule_rate = rates.get(ruled, (0.5, 0))[0]
        best = max(rates, key=lambda s: (rates[s][0], s == ruled, s))
        if best != ruled and rates[best][0] > rule_rate + self.margin:
            return best, (f"learned: in {seen} past '{bucket}' conflicts {best} resolved "
                          f"{rates[best][0]:.0%} (smoothed) vs the rule's {ruled} {rule_rate:.0%}")
        return ruled, f"rule: {why} (history agrees: {ruled} {rule_rate:.0%} in {seen} past '{bucket}' conflicts)"

    def record(self, analysis: Analysis, strategy: Strategy, resolved: bool) -> PastResolution:
        past = PastResolution(bucket=analysis.bucket(), strategy=strategy, resolved=resolved)
        self.history.append(past)
        return past

