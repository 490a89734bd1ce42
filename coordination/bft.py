"""BFT voting rounds, as the seeds describe them: agree with n−f matching ballots, or revise.

    round r: every voter broadcasts a ballot ──► tally ──► ≥ n−f match? ──yes──► decided
                                                   │no (r < 5)
                                                   ▼
             voters see round r's tally and may revise ──► round r+1
    after round 5 without agreement ──► plurality fallback, marked ``fallback: true``

``f = (n−1)//3`` voters may be faulty; n−f matching ballots means the honest voters agree
even if every faulty voter joined them. What a faulty voter does is caught where it can be
proven, and its ballot then does not count:

* **equivocation** — it sent different ballots to different peers (:func:`resolve`);
* **fabricated evidence** — its evidence does not match what its tools returned
  (``problems``, from :func:`~relaygraph.coordination.ballots.evidence_problems`).

Suspicion without proof flags the voter but keeps its ballot: **silence** in a round, and an
**inconsistent change** — switching to a choice nobody led in the previous round (revision
should follow the tally or new evidence) or flipping back to a choice it had abandoned.

The functions are pure (data in, data out), so the graph can keep each round in its state
and a checkpoint holds the protocol's progress. Why hand-written: the rules are the seeds'
own, not a published protocol with a library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field
from relaygraph.coordination.ballots import Ballot
from relaygraph.coordination.voting import VoteResult, plurality

MAX_ROUNDS = 5


def max_faulty(n: int) -> int:
    return (n - 1) // 3


def agreement_needed(n: int) -> int:
    return n - max_faulty(n)


class RoundRecord(BaseModel):
    """One round: the ballots that counted, the tally, and whether it agreed."""

    model_config = ConfigDict(frozen=True)

    round: int
    counted: dict[str, str]  # voter -> choice
    tally: dict[str, int]
    leaders: list[str]
    agreed: str | None
    excluded: dict[str, str] = Field(default_factory=dict)  # voter -> why its ballot did not count
    silent: list[str] = Field(default_factory=list)


class BftOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    decision: str | None
    agreed: bool
    fallback: bool
    rounds: list[RoundRecord]
    needed: int
    f: int
    suspects: dict[str, list[str]]
    fallback_result: VoteResult | None = None
    done: bool


def resolve(deliveries: Sequence[tuple[str, str, Ballot]]) -> tuple[dict[str, Ballot], dict[str, str]]:
    """(sender, receiver, ballot) copies ⇒ one ballot per sender, and the senders that told
    different receivers different choices (proof of equivocation: their ballots do not count)."""
    by_voter: dict[str, dict[str, Ballot]] = {}
    for sender, _, ballot in deliveries:
        by_voter.setdefault(sender, {})[ballot.choice] = ballot
    ballots, equivocators = {}, {}
    for voter, choices in by_voter.items():
        if len(choices) > 1:
            equivocators[voter] = f"equivocated: told peers {sorted(choices)}"
        else:
            ballots[voter] = next(iter(choices.values()))
    return ballots, equivocators


def evaluate(
    voters: Sequence[str],
    rounds: Sequence[Mapping[str, Ballot]],
    *,
    excluded: Sequence[Mapping[str, str]] = (),
    max_rounds: int = MAX_ROUNDS,
) -> BftOutcome:
    """Judge the rounds so far. ``rounds[i]`` maps voter → ballot (after :func:`resolve`);
    ``excluded[i]`` maps voter → proof that its round-i ballot must not count."""
    n = len(voters)
    f, needed = max_faulty(n), agreement_needed(n)
    records: list[RoundRecord] = []
    suspects: dict[str, list[str]] = {}
    history: dict[str, list[str]] = {v: [] for v in voters}
    previous_leaders: list[str] = []

    def flag(voter: str, why: str) -> None:
        if why not in suspects.setdefault(voter, []):
            suspects[voter].append(why)

    decision = None
    for index, ballots in enumerate(rounds[:max_rounds], start=1):
        proof = dict(excluded[index - 1]) if index - 1 < len(excluded) else {}
        counted: dict[str, str] = {}
        silent = [v for v in voters if v not in ballots and v not in proof]
        for voter in silent:
            flag(voter, f"silent in round {index}")
        for voter, why in proof.items():
            flag(voter, f"round {index}: {why}")
        for voter, ballot in ballots.items():
            if voter in proof:
                continue
            past = history.setdefault(voter, [])
            if past and ballot.choice != past[-1]:
                if ballot.choice in past:
                    flag(voter, f"round {index}: flipped back to {ballot.choice!r}, which it had abandoned")
                elif ballot.choice not in previous_leaders:
                    flag(voter, f"round {index}: changed to {ballot.choice!r}, which nobody led in round {index - 1}")
            past.append(ballot.choice)
            counted[voter] = ballot.choice
        tally: dict[str, int] = {}
        for choice in counted.values():
            tally[choice] = tally.get(choice, 0) + 1
        top = max(tally.values(), default=0)
        leaders = sorted(c for c, k in tally.items() if k == top)
        agreed = leaders[0] if len(leaders) == 1 and top >= needed else None
        records.append(RoundRecord(round=index, counted=counted, tally=tally, leaders=leaders, agreed=agreed,
                                   excluded=proof, silent=silent))
        previous_leaders = leaders
        if agreed is not None:
            decision = agreed
            break
    fallback_result = None
    fallback = False
    if decision is None and len(records) >= max_rounds:
        last = rounds[max_rounds - 1]
        proof = dict(excluded[max_rounds - 1]) if max_rounds - 1 < len(excluded) else {}
        fallback_result = plurality([b for v, b in last.items() if v not in proof])
        decision, fallback = fallback_result.decision, True
    done = decision is not None or len(records) >= max_rounds
    return BftOutcome(decision=decision, agreed=decision is not None and not fallback, fallback=fallback,
                      rounds=records, needed=needed, f=f, suspects=suspects, fallback_result=fallback_result,
                      done=done)
