"""PBFT against its invariants, over many random schedules of the seeded simulated network.

Every scenario is a pure function of its parameters and seed; a failing example prints the
scenario (hypothesis shows it), and ``scenario.run(record=True)`` replays it exactly with the
event log.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, Phase, find, given, note, settings
from hypothesis import strategies as st
from relaygraph.coordination.ballots import digest
from relaygraph.coordination.crypto import Ed25519Keyring, HmacKeyring
from relaygraph.coordination.network import (
    BYZANTINE,
    Behaviour,
    Conditions,
    Fault,
    Partition,
    PhasedRun,
    ReplayDiverged,
    Simulation,
)
from relaygraph.coordination.pbft import (
    NULL,
    Coalition,
    PbftReplica,
    QuorumError,
    check_size,
    expected_messages,
)

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Scenario:
    n: int
    seed: int
    faulty: tuple[tuple[int, str], ...]  # (replica index, behaviour)
    requests: tuple[str, ...] = ("A",)
    drop: float = 0.0
    duplicate: float = 0.0
    max_delay: float = 10.0
    stable_after: float = 0.0
    partition: tuple[int, ...] | None = None  # indices cut off until stable_after
    ed25519: bool = False
    until: float = 60_000.0

    def run(self, record: bool = False) -> tuple[Simulation, list[PbftReplica]]:
        sim, replicas = self.build(record)
        sim.run(until=self.until, stop=self.stop(replicas))
        return sim, replicas

    def stop(self, replicas: list[PbftReplica]):
        honest = self.honest(replicas)
        return lambda: all(len(r.executed) == len(self.requests) for r in honest)

    def build(self, record: bool = False) -> tuple[Simulation, list[PbftReplica]]:
        ids = [f"r{i}" for i in range(self.n)]
        keyring = (Ed25519Keyring if self.ed25519 else HmacKeyring)(ids, self.seed)
        coalition = Coalition()
        replicas = [PbftReplica(i, ids, keyring, requests=self.requests, timeout=60.0, coalition=coalition)
                    for i in ids]
        partitions = ()
        if self.partition and self.stable_after > 0:
            cut = frozenset(ids[i] for i in self.partition)
            partitions = (Partition(start=0, end=self.stable_after, groups=(cut, frozenset(ids) - cut)),)
        conditions = Conditions(max_delay=self.max_delay, drop=self.drop, duplicate=self.duplicate,
                                partitions=partitions, stable_after=self.stable_after)
        faults = {ids[i]: Fault(behaviour=Behaviour(b), start=0.0) for i, b in self.faulty}
        return Simulation(replicas, seed=self.seed, conditions=conditions, faults=faults, record=record), replicas

    def honest(self, replicas: list[PbftReplica]) -> list[PbftReplica]:
        bad = {f"r{i}" for i, _ in self.faulty}
        return [r for r in replicas if r.id not in bad]


def violations(scenario: Scenario, replicas: list[PbftReplica]) -> list[str]:
    """Safety (one value per sequence number among honest replicas) and validity."""
    found = []
    honest = scenario.honest(replicas)
    seqs = {s for r in honest for s in r.committed}
    for s in sorted(seqs):
        values = {r.committed[s] for r in honest if s in r.committed}
        if len(values) > 1:
            found.append(f"safety: seq {s} committed as {sorted(values)}")
    proposed = set(scenario.requests) | {NULL}
    for r in honest:
        for s, v in r.committed.items():
            if v not in proposed:
                found.append(f"validity: {r.id} committed {v!r} at {s}, never proposed")
    return found


@st.composite
def scenarios(draw, *, extra_faulty: int = 0, eventual: bool = False, sizes=(4, 7)) -> Scenario:
    n = draw(st.sampled_from(sizes))
    f = (n - 1) // 3
    count = f + extra_faulty if extra_faulty else draw(st.integers(0, f))
    indices = draw(st.lists(st.integers(0, n - 1), min_size=count, max_size=count, unique=True))
    behaviours = [b.value for b in (Behaviour.CRASH, *BYZANTINE)]
    faulty = tuple((i, draw(st.sampled_from(behaviours))) for i in sorted(indices))
    requests = tuple(draw(st.lists(st.sampled_from(["A", "B", "C"]), min_size=1, max_size=3, unique=True)))
    stable = draw(st.sampled_from([0.0, 150.0, 400.0]))
    partition = None
    if stable and draw(st.booleans()):
        partition = tuple(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n // 2, unique=True)))
    return Scenario(
        n=n, seed=draw(st.integers(0, 2**32 - 1)), faulty=faulty, requests=requests,
        drop=draw(st.sampled_from([0.0, 0.1, 0.3])) if stable or not eventual else 0.0,
        duplicate=draw(st.sampled_from([0.0, 0.2])), max_delay=draw(st.sampled_from([5.0, 10.0, 20.0])),
        stable_after=stable, partition=partition,
    )


@FAST
@given(scenarios())
def test_honest_replicas_never_commit_different_values_and_only_proposed_ones(scenario: Scenario) -> None:
    note(repr(scenario))
    _, replicas = scenario.run()
    assert violations(scenario, replicas) == [], scenario


@FAST
@given(scenarios(eventual=True))
def test_with_eventual_delivery_honest_replicas_commit_after_a_bounded_number_of_view_changes(
        scenario: Scenario) -> None:
    note(repr(scenario))
    sim, replicas = scenario.run()
    honest = scenario.honest(replicas)
    f = (scenario.n - 1) // 3
    assert all(sorted(r.executed) == sorted(scenario.requests) for r in honest), (scenario, sim.now)
    assert violations(scenario, replicas) == []
    # Each view change doubles the timeout; past stabilisation at most f faulty primaries in a row
    # (plus the view in progress) can stall — the view number is bounded accordingly.
    timeouts_before_stable = 0
    while 60.0 * (2 ** timeouts_before_stable - 1) < scenario.stable_after:
        timeouts_before_stable += 1
    bound = timeouts_before_stable + f + 2
    assert max(r.view for r in honest) <= bound, (scenario, [r.view for r in honest])


def test_with_f_plus_one_byzantine_replicas_the_search_finds_a_safety_violation() -> None:
    """The n ≥ 3f+1 bound is real: one Byzantine replica too many and honest replicas diverge."""
    found = find(scenarios(extra_faulty=1, sizes=(4,)),
                 lambda s: bool(violations(s, s.run()[1])),
                 settings=settings(max_examples=1000, deadline=None, database=None, phases=[Phase.generate],
                                   suppress_health_check=list(HealthCheck)))
    _, replicas = found.run()
    problems = violations(found, replicas)
    assert problems and problems[0].startswith(("safety", "validity")), problems
    print(f"violation with {len(found.faulty)} faulty of {found.n}: {problems} — replay: {found!r}")


def test_a_fault_free_run_sends_the_theoretical_message_count() -> None:
    for n in (4, 7, 10):
        sim, replicas = Scenario(n=n, seed=n, faulty=()).run()
        assert sim.stats.sent == expected_messages(n) == (n - 1) + (n - 1) ** 2 + n * (n - 1)
        assert {r.committed[1] for r in replicas} == {"A"}


def test_too_few_replicas_for_the_faults_is_refused_with_the_reason() -> None:
    assert check_size(4) == 1 and check_size(7) == 2
    with pytest.raises(QuorumError, match=r"needs n ≥ 3f\+1 = 7 replicas; got n=4"):
        check_size(4, 2)
    ids = ["a", "b", "c"]
    with pytest.raises(QuorumError, match="f=1"):
        PbftReplica("a", ids, HmacKeyring(ids), requests=["A"], f=1)


def test_a_silent_primary_is_replaced_by_a_view_change_and_suspected() -> None:
    scenario = Scenario(n=4, seed=7, faulty=((0, "silent"),))
    _sim, replicas = scenario.run()
    honest = scenario.honest(replicas)
    assert all(r.executed == ["A"] and r.view == 1 for r in honest)
    assert all("r0" in r.suspects for r in honest)


def test_a_lying_primary_is_refused_by_every_honest_replica() -> None:
    scenario = Scenario(n=4, seed=3, faulty=((0, "lie"),))
    _, replicas = scenario.run()
    for r in scenario.honest(replicas):
        assert r.executed == ["A"] and r.view == 1  # one view change, away from the liar
        assert any("proposed 'A'," in why for why in r.suspects["r0"]), r.suspects  # the value, not its mark
        assert not any("lie:" in why for why in r.suspects["r0"]), r.suspects


def test_forged_or_tampered_messages_are_rejected() -> None:
    ids = ["r0", "r1", "r2", "r3"]
    keyring = HmacKeyring(ids)
    replica = PbftReplica("r1", ids, keyring, requests=["A"])
    from relaygraph.coordination.network import Message

    class Ctx:
        node, peers, rng, now = "r1", tuple(ids), None, 0.0

        def send(self, *a, **k): ...

        def set_timer(self, *a): ...

        def cancel_timer(self, *a): ...

    body = {"view": 0, "seq": 1, "digest": digest("A"), "value": "A"}
    forged = keyring.signer("r2").sign("pre-prepare", body)  # r2 signing as if it were r0
    replica.on_message(Message("r0", "r1", "pre-prepare", body, forged), Ctx())
    assert replica.slots[(0, 1)].pre_prepare is None and "r0" in replica.suspects
    good = keyring.signer("r0").sign("pre-prepare", body)
    replica.on_message(Message("r0", "r1", "pre-prepare", {**body, "value": "B"}, good), Ctx())
    assert replica.slots[(0, 1)].pre_prepare is None  # tampered after signing
    replica.on_message(Message("r0", "r1", "pre-prepare", body, good), Ctx())
    accepted = replica.slots[(0, 1)].pre_prepare
    assert accepted is not None and (accepted["src"], accepted["body"]) == ("r0", body)


@settings(max_examples=5, deadline=None)
@given(scenarios())
def test_safety_holds_with_real_ed25519_signatures(scenario: Scenario) -> None:
    scenario = Scenario(**{**scenario.__dict__, "ed25519": True})
    _, replicas = scenario.run()
    assert violations(scenario, replicas) == []


def phased(scenario: Scenario, keyed: bool = False) -> tuple[PhasedRun, list[PbftReplica]]:
    sim, replicas = scenario.build()
    kinds: list[str] = []

    def phase() -> str:  # the newest message kind first seen: coarse phases, many boundaries
        for m in sim.wire[len(kinds):]:
            kinds.append(m["kind"] if m["kind"] in kinds else f"new:{m['kind']}")
        return next((k for k in reversed(kinds) if k.startswith("new:")), "start")

    key = (lambda m: f"{m['kind']} (view {m['body'].get('view')})") if keyed else None  # the graph's way
    return PhasedRun(sim, phase=phase, done=scenario.stop(replicas), until=scenario.until, key=key), replicas


@FAST
@given(scenarios(), st.integers(0, 30), st.booleans())
def test_a_run_in_phases_resumed_after_any_phase_is_the_uninterrupted_run(scenario, cut, keyed) -> None:
    """Phase by phase (what the graph checkpoints) equals one uninterrupted run; rebuilding from
    the records of the first ``cut`` phases and going on reproduces every later phase."""
    note(repr(scenario))
    whole_sim, whole = scenario.run()
    run, replicas = phased(scenario, keyed)
    while not run.finished():
        run.step(last=len(run.steps) >= 40)
    assert [r.committed for r in replicas] == [r.committed for r in whole]
    assert (run.sim.events, run.sim.stats.sent) == (whole_sim.events, whole_sim.stats.sent)
    assert sum(len(s.messages) for s in run.steps) == whole_sim.stats.sent
    cut = min(cut, len(run.steps) - 1)
    again, replicas_again = phased(scenario, keyed)
    again.replay([s.record() for s in run.steps[:cut]])
    while not again.finished():
        again.step(last=len(again.steps) >= 40)
    assert [s.record() for s in again.steps] == [s.record() for s in run.steps]
    assert [r.committed for r in replicas_again] == [r.committed for r in whole]
    if keyed:  # every message is filed under a step whose label names its phase
        assert all(run.key(m) in s.phase.split(" + ") for s in run.steps for m in s.messages)  # type: ignore[misc]


def test_a_replay_that_does_not_reproduce_the_recorded_messages_is_refused() -> None:
    scenario = Scenario(n=4, seed=7, faulty=((0, "silent"),))
    run, _ = phased(scenario)
    first = run.step().record()
    bad = {**first, "digest": "0" * 64}
    again, _ = phased(scenario)
    with pytest.raises(ReplayDiverged, match="does not reproduce step 1"):
        again.replay([bad])
