"""Voting modes and BFT rounds against references computed here, independently of the code."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from relaygraph.coordination.ballots import Ballot, Evidence, evidence_problems
from relaygraph.coordination.bft import MAX_ROUNDS, evaluate, resolve
from relaygraph.coordination.voting import (
    Reputation,
    VotingMode,
    decision_confidence,
    plurality,
    result_confidence,
    tally,
)

CHOICES = ["north", "south", "east"]


@st.composite
def elections(draw):
    n = draw(st.integers(1, 9))
    voters = [f"v{i}" for i in range(n)]
    cast = draw(st.lists(st.sampled_from(voters), unique=True))
    ballots = [Ballot(voter=v, choice=draw(st.sampled_from(CHOICES)),
                      confidence=draw(st.sampled_from([0.0, 0.25, 0.5, 0.8, 1.0]))) for v in cast]
    return n, ballots


def reference(n, ballots, mode, threshold=Fraction(67, 100), rep=None):
    """Exact arithmetic, written from the rules in the docstring, not from the code."""
    if mode == "weighted":
        weights = {}
        for b in ballots:
            weights[b.choice] = weights.get(b.choice, 0) + Fraction(str(b.confidence)) * (rep or {}).get(b.voter, 1)
        total = sum(weights.values())
        winners = [c for c, w in weights.items() if total > 0 and w * 2 > total]
        return winners[0] if winners else None
    counts = {c: sum(1 for b in ballots if b.choice == c) for c in CHOICES}
    if mode == "majority":
        winners = [c for c, k in counts.items() if k * 2 > n]
    elif mode == "qualified":
        winners = [c for c, k in counts.items() if k >= threshold * n]
    else:
        winners = [c for c, k in counts.items() if k == n]
    assert len(winners) <= 1
    return winners[0] if winners else None


@settings(max_examples=300, deadline=None)
@given(elections(), st.sampled_from(["majority", "qualified", "unanimous", "weighted"]))
def test_every_mode_decides_exactly_as_the_reference(election, mode) -> None:
    n, ballots = election
    result = tally(ballots, mode, electorate=n)
    assert result.decision == reference(n, ballots, mode), result
    assert result.cast == len(ballots) and result.electorate == n
    top = max(result.support.values(), default=0)
    assert result.tie == (sum(1 for s in result.support.values() if s == top) > 1 and bool(result.support))
    if result.tie:
        assert result.decision is None  # a tie never passes a strict majority or a qualified threshold


@settings(max_examples=200, deadline=None)
@given(elections(), st.integers(51, 100))
def test_qualified_threshold_is_inclusive_and_any_allowed_value_works(election, percent) -> None:
    n, ballots = election
    threshold = percent / 100
    assert tally(ballots, "qualified", electorate=n, threshold=threshold).decision == \
        reference(n, ballots, "qualified", Fraction(percent, 100))


@pytest.mark.parametrize("bad", [0.5, 0.3, 1.01])
def test_a_threshold_outside_051_to_1_is_refused(bad) -> None:
    with pytest.raises(ValueError, match="0.51–1.0"):
        tally([Ballot(voter="a", choice="x", confidence=1)], "qualified", threshold=bad)


@settings(max_examples=200, deadline=None)
@given(elections(), st.data())
def test_weighted_uses_confidence_times_reputation(election, data) -> None:
    n, ballots = election
    record = {b.voter: (data.draw(st.integers(0, 5)), 5) for b in ballots}
    rep = Reputation(record={v: (min(a, t), t) for v, (a, t) in record.items()})
    expected_rep = {v: Fraction(min(a, t) + 1, t + 2) for v, (a, t) in record.items()}
    assert tally(ballots, VotingMode.WEIGHTED, electorate=n, reputation=rep).decision == \
        reference(n, ballots, "weighted", rep=expected_rep)


def test_reputation_follows_the_track_record() -> None:
    ballots = [Ballot(voter="a", choice="x", confidence=1), Ballot(voter="b", choice="y", confidence=1)]
    rep = Reputation().after(ballots, "x").after(ballots, "x")
    assert rep.score("a") == 3 / 4 and rep.score("b") == 1 / 4 and rep.score("new") == 1 / 2
    assert Reputation().after(ballots, None) == Reputation()


@settings(max_examples=200, deadline=None)
@given(elections())
def test_plurality_always_decides_and_breaks_ties_by_confidence_then_name(election) -> None:
    _, ballots = election
    result = plurality(ballots)
    if not ballots:
        assert result.decision is None
        return
    counts = {c: sum(1 for b in ballots if b.choice == c) for c in CHOICES}
    conf = {c: sum(Fraction(str(b.confidence)) for b in ballots if b.choice == c) for c in CHOICES}
    top = max(counts.values())
    tied = [c for c in CHOICES if counts[c] == top]
    best = max(conf[c] for c in tied)
    assert result.decision == min(c for c in tied if conf[c] == best)
    assert result.tie == (len(tied) > 1)


def test_one_ballot_per_voter() -> None:
    with pytest.raises(ValueError, match="more than one ballot"):
        tally([Ballot(voter="a", choice="x", confidence=1)] * 2, "majority")


def test_choices_compare_normalised_and_blank_is_refused() -> None:
    assert Ballot(voter="a", choice="  North\n", confidence=1).choice == "north"
    with pytest.raises(ValueError):
        Ballot(voter="a", choice="   ", confidence=1)


def test_fabricated_evidence_is_named() -> None:
    ballot = Ballot(voter="a", choice="north", confidence=0.9, evidence=(
        Evidence(tool="aggregate", facts={"top": "north", "total": 10.0}), Evidence(tool="validate_dataset")))
    observed = {"aggregate": {"top": "South", "total": 10.0000001}}
    assert evidence_problems(ballot, observed) == [
        "cites aggregate.top='north'; the tool returned 'South'", "cites validate_dataset but never called it"]
    assert evidence_problems(ballot.model_copy(update={"evidence": ballot.evidence[:1]}),
                             {"aggregate": {"top": "NORTH", "total": 10}}) == []


# --- BFT rounds --------------------------------------------------------------------------------


@st.composite
def bft_runs(draw):
    n = draw(st.integers(1, 10))
    voters = [f"v{i}" for i in range(n)]
    rounds = []
    for r in range(draw(st.integers(1, MAX_ROUNDS))):
        cast = draw(st.lists(st.sampled_from(voters), unique=True))
        rounds.append({v: Ballot(voter=v, choice=draw(st.sampled_from(CHOICES[:2])), confidence=0.5, round=r + 1)
                       for v in cast})
    return voters, rounds


@settings(max_examples=300, deadline=None)
@given(bft_runs())
def test_bft_agrees_exactly_when_n_minus_f_match_and_falls_back_after_five_rounds(run) -> None:
    voters, rounds = run
    n = len(voters)
    f = (n - 1) // 3
    outcome = evaluate(voters, rounds)
    first = next((i for i, r in enumerate(rounds)
                  if any(sum(1 for b in r.values() if b.choice == c) >= n - f for c in CHOICES)), None)
    if first is not None:
        expected = next(c for c in CHOICES if sum(1 for b in rounds[first].values() if b.choice == c) >= n - f)
        assert (outcome.decision, outcome.agreed, outcome.fallback) == (expected, True, False)
        assert len(outcome.rounds) == first + 1
    elif len(rounds) == MAX_ROUNDS:
        assert outcome.fallback and not outcome.agreed and outcome.done
        assert outcome.decision == plurality(list(rounds[-1].values())).decision
    else:
        assert outcome.decision is None and not outcome.done
    for record in outcome.rounds:
        for voter in record.silent:
            assert f"silent in round {record.round}" in outcome.suspects[voter]


def test_equivocators_and_fabricators_do_not_count_and_are_flagged() -> None:
    voters = ["a", "b", "c", "d"]
    good = {v: Ballot(voter=v, choice="x", confidence=0.9) for v in "abc"}
    deliveries = [(v, p, b) for v, b in good.items() for p in voters]
    deliveries += [("d", p, Ballot(voter="d", choice="x" if p in "ab" else "y", confidence=1)) for p in voters]
    ballots, equivocators = resolve(deliveries)
    assert set(ballots) == {"a", "b", "c"} and "equivocated" in equivocators["d"]
    outcome = evaluate(voters, [ballots], excluded=[equivocators])
    assert outcome.decision == "x" and outcome.agreed and outcome.needed == 3
    assert "round 1: equivocated" in outcome.suspects["d"][0]
    liar = {**ballots, "c": Ballot(voter="c", choice="y", confidence=1)}
    outcome = evaluate(voters, [liar], excluded=[{"c": "fabricated evidence"}])
    assert outcome.decision is None and outcome.rounds[0].tally == {"x": 2}


def test_inconsistent_changes_are_suspected_but_following_the_tally_is_not() -> None:
    voters = list("abcdefg")  # n=7, f=2: agreement needs 5

    def r(choices):
        return {v: Ballot(voter=v, choice=c, confidence=0.5) for v, c in zip(voters, choices, strict=True)}

    outcome = evaluate(voters, [r("xxxyyzz"), r("xxxyxwz"), r("xxxyxzz")])
    assert outcome.decision is None and len(outcome.rounds) == 3
    assert "e" not in outcome.suspects  # y → x: moved to round 1's leader
    assert any("nobody led" in s for s in outcome.suspects["f"])  # z → w: nobody led w
    assert any("flipped back" in s for s in outcome.suspects["f"])  # w → z: back to an abandoned choice


@settings(max_examples=300, deadline=None)
@given(elections(), st.sampled_from(["majority", "qualified", "unanimous", "weighted"]))
def test_confidence_is_the_share_of_all_voters_or_of_the_weight_behind_the_decision(election, mode) -> None:
    """Every mode's confidence, against a reference from the definition (exact fractions): the
    share of the whole electorate whose ballot backs the decision (weighted: of the weight
    cast), 0 without one — so it is never above what the rule needed to be false."""
    n, ballots = election
    result = tally(ballots, mode, electorate=n)
    confidence = result_confidence(result, {b.voter: b.choice for b in ballots})
    decision = result.decision
    if decision is None:
        assert confidence == 0.0
        return
    if mode == "weighted":
        weight = {c: sum(Fraction(str(b.confidence)) for b in ballots if b.choice == c) for c in CHOICES}
        expected = weight[decision] / sum(weight.values())
        assert confidence > 0.5  # more than half of the weight cast, as the rule says
    else:
        expected = Fraction(sum(1 for b in ballots if b.choice == decision), n)
        assert {"majority": confidence > 0.5, "qualified": confidence >= 0.67,
                "unanimous": confidence == 1.0}[mode], (mode, confidence)
    assert confidence == round(float(expected), 3)
    against = [b for b in ballots if b.choice != decision]
    assert confidence <= 1.0 and (mode == "weighted" or not against or confidence < 1.0)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10), st.data())
def test_a_bft_decision_reports_at_least_n_minus_f_over_n_unless_it_fell_back(n, data) -> None:
    """BFT's confidence is the same definition over its deciding round: an agreement (≥ n−f
    matching ballots) reports ≥ (n−f)/n; the plurality fallback reports the share really behind
    it, which is below that."""
    voters = [f"v{i}" for i in range(n)]
    rounds = []
    for _ in range(data.draw(st.integers(1, MAX_ROUNDS))):
        cast = data.draw(st.lists(st.sampled_from(voters), unique=True))
        rounds.append({v: Ballot(voter=v, choice=data.draw(st.sampled_from(CHOICES)), confidence=0.5) for v in cast})
    outcome = evaluate(voters, rounds)
    if not outcome.done:
        return
    last = outcome.rounds[-1]
    confidence = decision_confidence(outcome.decision, last.counted, n)
    backing = sum(1 for c in last.counted.values() if c == outcome.decision)
    assert confidence == round(backing / n, 3)
    if outcome.fallback:
        assert backing < outcome.needed
    else:
        assert backing >= outcome.needed == n - outcome.f and confidence >= round((n - outcome.f) / n, 3)


def test_confidence_refuses_an_electorate_smaller_than_its_voters() -> None:
    with pytest.raises(ValueError, match="smaller than the voters counted"):
        decision_confidence("x", {"a": "x", "b": "x"}, 1)
    assert decision_confidence(None, {"a": "x"}, 3) == 0.0
