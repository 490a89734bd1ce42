"""Reverse (procurement) auctions for task allocation: the lowest cost wins.

Bids are *costs* — what an agent says doing the task would cost it — so the auctioneer buys
and the cheapest eligible agent wins. Three formats:

* ``sealed`` (first-price): the winner is paid its own bid. Simple; bidders have a reason to
  shade their bids up, so prices run above costs.
* ``vickrey`` (second-price): the winner is paid the second-lowest bid (capped at the reserve).
  Bidding one's true cost is a dominant strategy, so bids can be read as costs.
* ``english`` (descending clock): the price starts at the reserve and falls by ``decrement``
  while at least two bidders stay in; a bidder drops out once the price is below its cost (its
  bid is its drop-out price — proxy bidding, so one round trip per bidder suffices). The winner
  is paid the last price at which a competitor was still in: within one decrement above the
  second-lowest cost.

Rules every format shares (and the property tests check):

* **Eligibility.** Only bids from ``eligible`` bidders count (capability and reputation are
  checked by the caller); others are kept in ``rejected`` with the reason. No eligible bidder
  at all is the outcome ``no_eligible_agent``; eligible bidders of whom none bid, ``no_bid``.
* **Reserve.** The most the auctioneer will pay. Bids above it cannot win; when none is at or
  under it the outcome is ``no_bid_under_reserve``. ``reserve=None`` means no reserve.
* **Ties** (equal lowest cost): the higher reputation wins, then the name in alphabetical
  order — deterministic, and a reliable record pays off.

Why hand-written: no maintained Python library runs procurement auctions with these rules
(reserve, reputation ties, clock rounds recorded for the trace); each format is a few lines
over :func:`rank`, and the invariants are proven by hypothesis tests
(``tests/test_auctions.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

AuctionKind = Literal["sealed", "vickrey", "english"]
Outcome = Literal["awarded", "no_eligible_agent", "no_bid", "no_bid_under_reserve"]
KINDS: tuple[str, ...] = ("sealed", "vickrey", "english")

#: Reputation: where a newcomer starts, the least that stays eligible, and how it moves.
DEFAULT_REPUTATION = 0.8
MIN_REPUTATION = 0.3
SUCCESS_GAIN = 0.1   # r += 0.1·(1 − r): slow to earn...
BREACH_FACTOR = 0.5  # r *= 0.5: ...quick to lose — two breaches make a newcomer ineligible


class Bid(BaseModel):
    """A bidder's offer: the cost at which it will do the task."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bidder: str = Field(min_length=1)
    cost: float = Field(ge=0)
    reputation: float = Field(default=DEFAULT_REPUTATION, ge=0, le=1)

    @field_validator("cost")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("a bid must be a finite cost")
        return value


class AuctionRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: AuctionKind = "vickrey"
    reserve: float | None = Field(default=None, gt=0)
    decrement: float = Field(default=1.0, gt=0)  # english only


class ClockRound(BaseModel):
    """One price step of an english auction: the price and who was still in."""

    model_config = ConfigDict(frozen=True)

    round: int
    price: float
    active: list[str]


class AuctionResult(BaseModel):
    """What happened: outcome, winner and price, every bid ranked, and why."""

    kind: AuctionKind
    outcome: Outcome
    winner: str | None = None
    price: float | None = None
    winning_bid: float | None = None
    ranking: list[Bid] = Field(default_factory=list)
    rejected: dict[str, str] = Field(default_factory=dict)
    rounds: list[ClockRound] = Field(default_factory=list)
    reason: str

    def utility(self, bidder: str, cost: float) -> float:
        """A bidder's profit from this outcome given its true ``cost`` (0 unless it won)."""
        return (self.price or 0.0) - cost if self.winner == bidder else 0.0


def tie_key(bid: Bid) -> tuple[float, float, str]:
    """The documented order: lower cost, then higher reputation, then name."""
    return (bid.cost, -bid.reputation, bid.bidder)


def rank(bids: Iterable[Bid]) -> list[Bid]:
    return sorted(bids, key=tie_key)


def run_auction(bids: Sequence[Bid], rules: AuctionRules, eligible: Iterable[str] | None = None) -> AuctionResult:
    """Run one single-item reverse auction. ``eligible=None`` means every bidder is eligible."""
    allowed = None if eligible is None else set(eligible)
    rejected: dict[str, str] = {}
    valid: dict[str, Bid] = {}
    for bid in bids:
        if allowed is not None and bid.bidder not in allowed:
            rejected[bid.bidder] = "not eligible (capability or reputation)"
        elif bid.bidder in valid:
            rejected[bid.bidder] = "second bid from the same bidder ignored; the first stands"
        else:
            valid[bid.bidder] = bid
    base: dict[str, Any] = {"kind": rules.kind, "rejected": rejected}
    if allowed is not None and not allowed:
        return AuctionResult(**base, outcome="no_eligible_agent", reason="no agent has the required capability "
                             "and reputation")
    ranking = rank(valid.values())
    reserve = math.inf if rules.reserve is None else rules.reserve
    under = [b for b in ranking if b.cost <= reserve]
    for bid in ranking:
        if bid.cost > reserve:
            rejected[bid.bidder] = f"bid {bid.cost:g} above the reserve {reserve:g}"
    if not ranking:  # eligible agents exist (or anyone may bid) but nobody did
        who = ("" if allowed is None else
               f" of the {len(allowed)} eligible agent{'s' if len(allowed) != 1 else ''} ({', '.join(sorted(allowed))})")
        return AuctionResult(**base, outcome="no_bid", reason=f"none{who} bid")
    if not under:
        return AuctionResult(**base, outcome="no_bid_under_reserve", ranking=ranking,
                             reason=f"no bid at or under the reserve {reserve:g}")
    if rules.kind == "english":
        return _english(ranking, under, reserve, rules, base)
    winner = under[0]
    if rules.kind == "sealed":
        price, why = winner.cost, "first-price: paid its own bid"
    else:
        second = ranking[1].cost if len(ranking) > 1 else None
        if second is not None:
            price = min(second, reserve)
            why = ("second-price: paid the second-lowest bid" if second <= reserve
                   else "second-price: the second-lowest bid is above the reserve, so paid the reserve")
        elif math.isfinite(reserve):
            price, why = reserve, "second-price with a single bid: paid the reserve"
        else:
            price, why = winner.cost, "second-price with a single bid and no reserve: paid its own bid"
    return AuctionResult(**base, outcome="awarded", winner=winner.bidder, price=price, winning_bid=winner.cost,
                         ranking=ranking, reason=why)


def exact(value: float) -> Decimal:
    """A float as the decimal it prints as (``0.05`` → ``Decimal("0.05")``), so clock prices are
    computed in exact decimal steps and come out as the numbers a person would write."""
    return Decimal(repr(value))


def _english(ranking: list[Bid], under: list[Bid], reserve: float, rules: AuctionRules,
             base: dict[str, Any]) -> AuctionResult:
    """The descending clock at prices ``start − k·decrement`` (no drift from repeated subtraction).

    The clock is advanced event by event — to the next round where a bidder drops out — rather
    than step by step, so a fine decrement costs nothing; ``rounds`` records the start and every
    round in which the set of bidders still in changed.
    """
    start = exact(reserve if math.isfinite(reserve) else ranking[-1].cost)
    dec = exact(rules.decrement)

    def price(k: int) -> Decimal:  # exact decimal steps: 0.45 − 7·0.05 is 0.1, not 0.09999999999999998
        return start - k * dec

    def active(p: Decimal) -> list[str]:
        return [b.bidder for b in under if exact(b.cost) <= p]

    def drop_round(cost: float) -> int:
        """The first round whose price is below ``cost``."""
        c = exact(cost)
        k = max(0, math.floor((start - c) / dec))
        while price(k) >= c:
            k += 1
        while k > 0 and price(k - 1) < c:
            k -= 1
        return k

    rounds = [ClockRound(round=0, price=float(start), active=active(start))]
    if len(under) == 1:
        stop = 0
    else:
        stop = drop_round(under[1].cost)  # the second-lowest leaves: fewer than two remain
        for k in sorted({drop_round(b.cost) for b in under if drop_round(b.cost) <= stop}):
            rounds.append(ClockRound(round=k, price=float(price(k)),
                                     active=active(price(k)) if price(k) >= 0 else []))
        stop -= 1  # the last round with a competitor still in
    final = float(price(stop))
    contenders = active(price(stop))
    winner = next(b for b in under if b.bidder == contenders[0])  # ranked: ties by the tie rule
    why = ("english: sole bidder under the reserve, paid the starting price" if len(contenders) == 1
           else f"english: the clock stopped at {final:g}, the last price a competitor accepted")
    return AuctionResult(**base, outcome="awarded", winner=winner.bidder, price=final, winning_bid=winner.cost,
                         ranking=ranking, rounds=rounds, reason=why)


# --- contracts, verification, settlement, reputation ---------------------------------------


# --- sequencing: which task to auction next ----------------------------------------------------

AuctionOrder = Literal["announced", "regret"]


def regret(bids: Sequence[Bid]) -> float:
    """What a task loses if its cheapest bidder is not the one that gets it: the second-lowest bid
    minus the lowest (``inf`` with a single bidder — nobody else can do it; ``-inf`` with none)."""
    costs = sorted(b.cost for b in bids)
    if not costs:
        return -math.inf
    return math.inf if len(costs) == 1 else costs[1] - costs[0]


def next_by_regret(bids: Mapping[str, Sequence[Bid]]) -> str | None:
    """The open task to auction next, given every bidder's current bid for every open task: the
    one with the largest :func:`regret` — the task whose cheap option is most at risk of being
    lost once its best bidder's load rises; ties: the lower lowest bid, then the task id. None
    when no task has a bid."""
    ranked = [(t, regret(b), min((x.cost for x in b), default=math.inf)) for t, b in bids.items() if b]
    if not ranked:
        return None
    return min(ranked, key=lambda item: (-item[1], item[2], item[0]))[0]


def sequential_auctions(
    tasks: Sequence[str], price: Callable[[str, dict[str, int]], Sequence[Bid]], rules: AuctionRules,
    order: AuctionOrder = "regret",
) -> list[tuple[str, AuctionResult]]:
    """Allocate ``tasks`` by sequential single-item auctions: one task per round, awarded by
    :func:`run_auction` on the bids for that task alone, in ``order``:

    * ``announced`` — the tasks as listed; each round asks for bids on that one task;
    * ``regret`` — each round every bidder prices every open task (its load includes what it
      won in earlier rounds), and the task :func:`next_by_regret` names is auctioned. The
      other bids of that round are discarded: the next round asks again, at the new loads.

    ``price(task, wins)`` returns the bids for ``task`` when each bidder has won ``wins[bidder]``
    tasks so far. A task with no bid under the reserve stays unallocated (its result says why).
    Returns (task, result) in award order.
    """
    wins: dict[str, int] = {}
    open_tasks = list(tasks)
    awarded: list[tuple[str, AuctionResult]] = []
    while open_tasks:
        if order == "regret":
            offers = {t: list(price(t, dict(wins))) for t in open_tasks}
            task = next_by_regret(offers) or open_tasks[0]
            bids = offers[task]
        else:
            task = open_tasks[0]
            bids = list(price(task, dict(wins)))
        result = run_auction(bids, rules)
        if result.winner is not None:
            wins[result.winner] = wins.get(result.winner, 0) + 1
        awarded.append((task, result))
        open_tasks.remove(task)
    return awarded


class AcceptanceCriterion(BaseModel):
    """One check the verifier makes: ``name`` with the value it must find."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    expected: Any = None


class Contract(BaseModel):
    """The award, typed: who does which task, for how much, by when, judged how."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: str
    winner: str
    price: float = Field(ge=0)
    kind: AuctionKind
    round: int = Field(default=1, ge=1)
    deadline_s: float = Field(gt=0)
    acceptance: tuple[AcceptanceCriterion, ...]


class Verification(BaseModel):
    """The verifier's findings: one boolean per acceptance criterion, with what it saw."""

    checks: dict[str, bool]
    observed: dict[str, Any] = Field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(self.checks.values())


BreachKind = Literal["failure", "late", "wrong_result"]


class Settlement(BaseModel):
    task_id: str
    winner: str
    #: ``unverified``: the work was delivered in time but the verifier failed, so nobody can say
    #: whether it meets the criteria — nothing is paid and the winner's reputation is unchanged
    status: Literal["paid", "breach", "unverified"]
    paid: float
    breach: BreachKind | None = None
    #: who a failure is down to: ``agent``, or ``data`` (the method fails on the data whoever runs
    #: it — the reputation is left as it was)
    cause: Literal["agent", "data"] | None = None
    reason: str
    reputation_before: float
    reputation_after: float


def update_reputation(reputation: float, success: bool) -> float:
    """Success moves reputation a tenth of the way to 1; a breach halves it."""
    value = reputation + SUCCESS_GAIN * (1 - reputation) if success else reputation * BREACH_FACTOR
    return round(min(1.0, max(0.0, value)), 6)


def settle(contract: Contract, reputation: float, *, error: str | None, duration_s: float,
           verification: Verification | None, cause: Literal["agent", "data"] = "agent",
           verifier_error: str | None = None) -> Settlement:
    """Pay on success; otherwise name the breach (failure, late, wrong result) and pay nothing.

    Precedence: a failed execution is a failure whatever else; then lateness; then the
    acceptance criteria. A failure whose ``cause`` is the data (the method fails on it with its
    defaults, whoever runs it) is still a breach — the task is not done — but leaves the
    winner's reputation unchanged. Work delivered in time that the verifier could not check
    (``verifier_error``, no verification) is ``unverified``: not paid, and not the winner's
    breach either — a broken verifier is no evidence about the winner.
    """
    breach: BreachKind | None = None
    if error:
        breach, reason = "failure", f"execution failed: {error}"
        if cause == "data":
            return Settlement(task_id=contract.task_id, winner=contract.winner, status="breach", paid=0.0,
                              breach=breach, cause="data", reason=reason + " (caused by the data, not the agent: "
                              "reputation unchanged)", reputation_before=reputation, reputation_after=reputation)
    elif duration_s > contract.deadline_s:
        breach, reason = "late", f"took {duration_s:.2f}s, deadline {contract.deadline_s:g}s"
    elif verification is None and verifier_error:
        return Settlement(task_id=contract.task_id, winner=contract.winner, status="unverified", paid=0.0,
                          reason=f"not verified: the verifier failed ({verifier_error}); nothing paid, the "
                          "winner's reputation unchanged", reputation_before=reputation, reputation_after=reputation)
    elif verification is None or not verification.passed:
        failed = [k for k, ok in (verification.checks if verification else {}).items() if not ok]
        breach = "wrong_result"
        reason = f"acceptance criteria not met: {', '.join(failed) or 'not verified'}"
    else:
        reason = "every acceptance criterion met in time"
    after = update_reputation(reputation, breach is None)
    return Settlement(task_id=contract.task_id, winner=contract.winner,
                      status="paid" if breach is None else "breach", paid=contract.price if breach is None else 0.0,
                      breach=breach, cause=None if breach is None else "agent", reason=reason, reputation_before=reputation, reputation_after=after)


def eligible_bidders(candidates: Iterable[str], reputations: dict[str, float], *,
                     exclude: Iterable[str] = (), min_reputation: float = MIN_REPUTATION) -> list[str]:
    """Capable candidates that have not breached this task and whose reputation is high enough."""
    barred = set(exclude)
    return sorted(c for c in candidates if c not in barred
                  and reputations.get(c, DEFAULT_REPUTATION) >= min_reputation)


# --- cost model -----------------------------------------------------------------------------

#: Work units per 1,000 rows for each method (profiled on the sample: relative tool run times).
METHOD_COST: dict[str, float] = {
    "profile_dataset": 1.0,
    "aggregate": 1.0,
    "validate_dataset": 1.5,
    "detect_outliers": 2.0,
    "score_records": 2.5,
    "segment_customers": 3.0,
}
LOAD_COST = 0.5  # work units per 1,000 rows already on the bidder's plate


def estimate_cost(rows: int, method: str, *, load_rows: int = 0, match: float = 1.0) -> float:
    """A bidder's cost for a task: the method's work on ``rows``, faster with a better
    capability ``match`` (see :func:`relaygraph.coordination.registry.match_score`), plus
    the congestion of the work it has already won in this run."""
    if method not in METHOD_COST:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(sorted(METHOD_COST))}")
    if match <= 0:
        raise ValueError("a bidder without the capability cannot estimate a cost")
    return round(METHOD_COST[method] * rows / 1000 / match + LOAD_COST * load_rows / 1000, 4)
