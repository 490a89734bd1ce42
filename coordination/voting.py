"""Voting: turn ballots into one decision under a declared rule.

Modes (all thresholds are *strict or inclusive exactly as written here*, and tested against a
reference computed independently in tests/test_consensus_voting.py):

* ``majority``  — a choice backed by **more than half of the electorate** (``count > n/2``).
  Voters who cast no ballot (crashed, silent) are in the electorate: silence never helps a
  choice win.
* ``qualified`` — a choice backed by **at least ``threshold`` of the electorate**
  (``count >= threshold * n``); threshold defaults to 0.67 and must lie in 0.51–1.0, so at
  most one choice can qualify.
* ``unanimous`` — every member of the electorate voted, all for the same choice.
* ``weighted``  — weight of a ballot = its confidence × its voter's reputation
  (:class:`Reputation`, the voter's track record; the seeds' "proof of stake"). A choice wins
  with **more than half of the weight cast**.

Ties. None of the modes above can decide on a tie: a tied top share is at most one half of
the electorate (or of the weight), which never passes a strict majority, and qualified needs
more than half. A tie is reported (``tie=True``, no decision). Only the *plurality fallback*
(:func:`plurality`, used when BFT rounds run out) must always name a winner; it breaks a tie
by the higher summed confidence, then by the alphabetically first choice — arbitrary but
deterministic, so a replay decides the same way, and the result still says ``tie: true``.

Confidence. Every decision reports how much of the team stands behind it, the same way in
every protocol (:func:`decision_confidence`): the share of the **whole electorate** whose
counted ballot backs the decision — a ballot counts when its voter was not caught lying,
equivocating, withholding, crashing or arriving late — so silence and flagged ballots lower
it; in ``weighted`` mode, the decision's share of the weight cast (that mode's own measure).
No decision: 0.0. A majority decision therefore has confidence > 0.5, a qualified one at least
its threshold, a unanimous one 1.0, a BFT agreement at least (n−f)/n, and the BFT plurality
fallback whatever share of all voters really backed it.

Why hand-written: these are a few lines of counting whose exact rules we must state and test;
no library offers them with our tie and electorate semantics.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from enum import StrEnum
from fractions import Fraction

from pydantic import BaseModel, ConfigDict, Field
from relaygraph.coordination.ballots import Ballot

QUALIFIED_DEFAULT = 0.67
QUALIFIED_MIN, QUALIFIED_MAX = 0.51, 1.0


class VotingMode(StrEnum):
    MAJORITY = "majority"
    QUALIFIED = "qualified"
    UNANIMOUS = "unanimous"
    WEIGHTED = "weighted"


class VoteResult(BaseModel):
    """The outcome of one tally, with everything needed to check it by hand."""

    model_config = ConfigDict(frozen=True)

    mode: str
    decision: str | None
    support: dict[str, float]  # per choice: ballots (count modes) or weight (weighted)
    total: float  # the denominator: electorate size, or weight cast
    share: float  # the leading choice's share of ``total``
    threshold: float | None = None
    electorate: int
    cast: int
    tie: bool = False
    reason: str


class Reputation(BaseModel):
    """Each voter's track record: how often its ballot matched the decision.

    Score = (agreed + 1) / (decisions + 2): Laplace's rule, so a newcomer starts at 0.5 and
    one lucky or unlucky vote does not swing its weight to 0 or 1.
    """

    model_config = ConfigDict(frozen=True)

    record: dict[str, tuple[int, int]] = Field(default_factory=dict)  # voter -> (agreed, decisions)

    def score(self, voter: str) -> float:
        agreed, total = self.record.get(voter, (0, 0))
        return (agreed + 1) / (total + 2)

    def scores(self, voters: Sequence[str]) -> dict[str, float]:
        return {v: self.score(v) for v in voters}

    def plus(self, runs: Mapping[str, tuple[int, int]]) -> Reputation:
        """The record with one run's ``(agreed, counted)`` per voter added (see :func:`run_record`)."""
        record = dict(self.record)
        for voter, (agreed, counted) in runs.items():
            before = record.get(voter, (0, 0))
            record[voter] = (before[0] + agreed, before[1] + counted)
        return Reputation(record=record)

    def after(self, ballots: Sequence[Ballot], decision: str | None) -> Reputation:
        """The record once ``decision`` is known (no decision: nothing to learn)."""
        if decision is None:
            return self
        record = dict(self.record)
        for ballot in ballots:
            agreed, total = record.get(ballot.voter, (0, 0))
            record[ballot.voter] = (agreed + int(ballot.choice == decision), total + 1)
        return Reputation(record=record)


def run_record(voters: Sequence[str], choices: Mapping[str, str | None], decision: str | None,
               suspects: Collection[str]) -> dict[str, tuple[int, int]]:
    """What one finished run adds to each voter's track record: ``(agreed, counted)``.

    A run counts for a voter when the protocol decided or flagged that voter as a suspect
    (it lied, equivocated, fell silent, crashed). It agrees when its ballot was on the decided
    side *and* it was not flagged — a liar whose fabricated ballot happened to match gains
    nothing. An undecided run says nothing about an unflagged voter: ``(0, 0)``.
    """
    out: dict[str, tuple[int, int]] = {}
    flagged = set(suspects)
    for voter in voters:
        if voter in flagged:
            out[voter] = (0, 1)
        elif decision is not None:
            out[voter] = (int(choices.get(voter) == decision), 1)
        else:
            out[voter] = (0, 0)
    return out


def check_threshold(threshold: float) -> float:
    if not QUALIFIED_MIN <= threshold <= QUALIFIED_MAX:
        raise ValueError(f"qualified threshold must lie in {QUALIFIED_MIN}–{QUALIFIED_MAX}, got {threshold}")
    return threshold


def _one_per_voter(ballots: Sequence[Ballot]) -> None:
    seen: set[str] = set()
    for ballot in ballots:
        if ballot.voter in seen:
            raise ValueError(f"voter {ballot.voter!r} cast more than one ballot in one tally")
        seen.add(ballot.voter)


def _exact(value: float) -> Fraction:
    """The decimal a user wrote (0.67, not 0.67000000000000003996...)."""
    return Fraction(repr(float(value)))


def _reputation(reputation: Reputation | Mapping[str, float] | None, voter: str) -> Fraction:
    if reputation is None:
        return Fraction(1)
    if isinstance(reputation, Reputation):
        agreed, total = reputation.record.get(voter, (0, 0))
        return Fraction(agreed + 1, total + 2)
    return _exact(reputation.get(voter, 1.0))


def tally(
    ballots: Sequence[Ballot],
    mode: VotingMode | str,
    *,
    electorate: int | None = None,
    threshold: float = QUALIFIED_DEFAULT,
    reputation: Reputation | Mapping[str, float] | None = None,
) -> VoteResult:
    """Decide by ``mode`` (see the module docstring for the exact rules)."""
    mode = VotingMode(mode)
    _one_per_voter(ballots)
    n = len(ballots) if electorate is None else electorate
    if n < len(ballots):
        raise ValueError(f"electorate ({n}) is smaller than the ballots cast ({len(ballots)})")
    if n < 1:
        raise ValueError("a vote needs at least one voter")
    limit = check_threshold(threshold) if mode is VotingMode.QUALIFIED else None

    # Exact rational arithmetic, so "more than half" never hinges on a float rounding error.
    exact: dict[str, Fraction] = {}
    if mode is VotingMode.WEIGHTED:
        for b in ballots:
            exact[b.choice] = exact.get(b.choice, Fraction(0)) + _exact(b.confidence) * _reputation(reputation, b.voter)
        total_exact = sum(exact.values(), Fraction(0))
    else:
        for b in ballots:
            exact[b.choice] = exact.get(b.choice, Fraction(0)) + 1
        total_exact = Fraction(n)
    support = {c: float(w) for c, w in exact.items()}
    total = float(total_exact)

    top_exact = max(exact.values(), default=Fraction(0))
    top = float(top_exact)
    leaders = sorted(c for c, w in exact.items() if w == top_exact) if exact else []
    tie = len(leaders) > 1
    share = float(top_exact / total_exact) if total_exact > 0 else 0.0
    leader = leaders[0] if len(leaders) == 1 else None

    if mode is VotingMode.MAJORITY:
        passed = leader is not None and top_exact * 2 > n
        rule = f"needs more than half of {n} voters"
    elif mode is VotingMode.QUALIFIED:
        assert limit is not None  # checked above for this mode
        passed = leader is not None and top_exact >= _exact(limit) * n
        rule = f"needs at least {limit:g} of {n} voters ({limit * n:g})"
    elif mode is VotingMode.UNANIMOUS:
        passed = leader is not None and len(exact) == 1 and len(ballots) == n
        rule = f"needs all {n} voters to agree"
    else:
        passed = leader is not None and total_exact > 0 and top_exact * 2 > total_exact
        rule = f"needs more than half of the weight cast ({total:.3f})"
    decision = leader if passed else None
    if decision is not None:
        reason = f"{decision!r} decided with {top:g} of {total:g} ({share:.0%}); {rule}"
    elif tie:
        reason = f"tie between {', '.join(map(repr, leaders))} at {top:g} each; {rule}"
    elif not support:
        reason = f"no ballots; {rule}"
    else:
        reason = f"no decision: best was {leaders[0]!r} with {top:g} of {total:g}; {rule}"
    return VoteResult(mode=mode.value, decision=decision, support=support, total=total, share=share,
                      threshold=limit, electorate=n, cast=len(ballots), tie=tie, reason=reason)


def decision_confidence(decision: str | None, choices: Mapping[str, str | None], electorate: int) -> float:
    """The share of all ``electorate`` voters whose counted ballot (``choices``: voter → the
    choice its counted ballot names, None for none) backs ``decision``; 0.0 without a decision.
    Rounded to 3 places (exact arithmetic first)."""
    if electorate < 1:
        raise ValueError("a vote needs at least one voter")
    if len(choices) > electorate:
        raise ValueError(f"electorate ({electorate}) is smaller than the voters counted ({len(choices)})")
    if decision is None:
        return 0.0
    backing = sum(1 for choice in choices.values() if choice == decision)
    return round(float(Fraction(backing, electorate)), 3)


def result_confidence(result: VoteResult, choices: Mapping[str, str | None]) -> float:
    """:func:`decision_confidence` for a tally: by ballots in the count modes, by the share of
    the weight cast in ``weighted`` (0.0 without a decision)."""
    if result.decision is None:
        return 0.0
    if result.mode == VotingMode.WEIGHTED:
        return round(result.share, 3)
    return decision_confidence(result.decision, choices, result.electorate)


def plurality(ballots: Sequence[Ballot]) -> VoteResult:
    """The fallback that always decides (when any ballot exists): most ballots wins; ties go to
    the higher summed confidence, then to the alphabetically first choice."""
    _one_per_voter(ballots)
    count: dict[str, int] = {}
    conf: dict[str, Fraction] = {}
    for b in ballots:
        count[b.choice] = count.get(b.choice, 0) + 1
        conf[b.choice] = conf.get(b.choice, Fraction(0)) + _exact(b.confidence)
    if not count:
        return VoteResult(mode="plurality", decision=None, support={}, total=0, share=0.0,
                          electorate=0, cast=0, reason="no ballots at all")
    top = max(count.values())
    tied = [c for c in count if count[c] == top]
    winner = min(tied, key=lambda c: (-conf[c], c))
    reason = f"plurality fallback: {winner!r} with {top} of {len(ballots)} ballots"
    if len(tied) > 1:
        reason += f" (tie with {', '.join(repr(c) for c in sorted(tied) if c != winner)}, broken by summed confidence, then alphabetically)"
    return VoteResult(mode="plurality", decision=winner, support={c: float(v) for c, v in count.items()},
                      total=float(len(ballots)), share=top / len(ballots), electorate=len(ballots),
                      cast=len(ballots), tie=len(tied) > 1, reason=reason)
