"""Raft against its safety properties and its progress guarantee, over random schedules with
crashes (and restarts), partitions, message loss and duplication. A failing example prints
its scenario; ``scenario.run()`` replays it exactly from the seed."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from relaygraph.coordination.network import Behaviour, Conditions, Fault, Partition, Simulation
from relaygraph.coordination.raft import RaftNode, RaftObserver, log_matching_violations

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HEAL = 3000.0


@dataclass(frozen=True)
class Scenario:
    n: int
    seed: int
    drop: float
    duplicate: float
    partitions: tuple[tuple[float, float, tuple[int, ...]], ...]  # (start, end, cut-off indices)
    crashes: tuple[tuple[int, float, float | None], ...]  # (index, at, restart)
    until: float = HEAL + 4000

    def run(self, record: bool = False):
        ids = [f"n{i}" for i in range(self.n)]
        observer = RaftObserver()
        nodes = [RaftNode(i, ids, observer=observer) for i in ids]
        partitions = tuple(Partition(start=s, end=e, groups=(frozenset(ids[i] for i in cut),
                                                             frozenset(ids) - frozenset(ids[i] for i in cut)))
                           for s, e, cut in self.partitions)
        faults = {ids[i]: Fault(behaviour=Behaviour.CRASH, start=at, restart=back) for i, at, back in self.crashes}
        sim = Simulation(nodes, seed=self.seed, faults=faults, record=record,
                         conditions=Conditions(drop=self.drop, duplicate=self.duplicate, partitions=partitions,
                                               stable_after=HEAL))
        submitted: list[str] = []

        def client() -> None:  # a client that keeps looking for the leader
            leaders = [x for x in nodes if x.role == "leader" and sim.alive[x.id]]
            if leaders:
                leader = max(leaders, key=lambda x: x.term)
                value = f"cmd{len(submitted)}@{sim.now:.0f}"
                if leader.submit(value, sim.contexts[leader.id]):
                    submitted.append(value)
            if sim.now < self.until - 2000:
                sim.at(sim.now + 120, client)

        sim.at(50, client)
        sim.run(until=self.until)
        return sim, nodes, observer, submitted


@st.composite
def scenarios(draw, *, majority_survives: bool = False) -> Scenario:
    n = draw(st.sampled_from([3, 5]))
    partitions = []
    for _ in range(draw(st.integers(0, 3))):
        start = draw(st.floats(0, HEAL - 200))
        end = draw(st.floats(start + 50, HEAL))
        cut = tuple(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n - 1, unique=True)))
        partitions.append((start, end, cut))
    crashes = []
    for i in draw(st.lists(st.integers(0, n - 1), max_size=n if not majority_survives else n // 2, unique=True)):
        at = draw(st.floats(0, HEAL))
        back = draw(st.one_of(st.none(), st.floats(at, HEAL)))
        crashes.append((i, at, back))
    return Scenario(n=n, seed=draw(st.integers(0, 2**32 - 1)), drop=draw(st.sampled_from([0.0, 0.1, 0.3])),
                    duplicate=draw(st.sampled_from([0.0, 0.1])), partitions=tuple(partitions),
                    crashes=tuple(crashes))


@FAST
@given(scenarios())
def test_election_safety_log_matching_leader_completeness_and_state_machine_safety(scenario: Scenario) -> None:
    note(repr(scenario))
    _, nodes, observer, _ = scenario.run()
    assert observer.violations == [], scenario  # ≤1 leader per term, completeness, same applied values
    assert log_matching_violations(nodes) == [], scenario
    for node in nodes:  # every node's state machine is a prefix of the committed log
        assert node.applied == [observer.committed[i][1] for i in range(1, len(node.applied) + 1)]


@FAST
@given(scenarios(majority_survives=True))
def test_progress_once_a_majority_is_connected_and_stragglers_catch_up(scenario: Scenario) -> None:
    note(repr(scenario))
    sim, nodes, observer, submitted = scenario.run()
    assert observer.violations == []
    up = [x for x in nodes if sim.alive[x.id]]
    assert len(up) >= len(nodes) // 2 + 1
    after_heal = [v for v in submitted if float(v.split("@")[1]) >= HEAL + 1000]
    assert after_heal, (scenario, "no leader accepted commands after the network healed")
    committed = {value for _, value in observer.committed.values()}
    assert set(after_heal) <= committed, scenario
    # Every live node (restarted ones included) has caught up with everything committed by then.
    last = max(observer.committed)
    assert all(x.commit_index >= last - 2 for x in up), ([x.commit_index for x in up], last)
    assert all(x.applied[:last - 2] == [observer.committed[i][1] for i in range(1, last - 1)] for x in up)


def test_the_same_seed_gives_the_same_run_and_another_seed_another() -> None:
    base = Scenario(n=5, seed=11, drop=0.2, duplicate=0.1, partitions=((100, 900, (0, 1)),),
                    crashes=((2, 400, 1500),), until=4000)
    first, second = base.run(record=True)[0], base.run(record=True)[0]
    assert first.log == second.log and first.stats == second.stats
    other = Scenario(**{**base.__dict__, "seed": 12}).run(record=True)[0]
    assert other.log != first.log


def test_a_crashed_follower_catches_up_after_restart() -> None:
    scenario = Scenario(n=3, seed=5, drop=0.0, duplicate=0.0, partitions=(), crashes=((0, 600, 2600),), until=5000)
    _sim, nodes, observer, _submitted = scenario.run()
    assert observer.violations == []
    assert nodes[0].restarts == 1
    assert nodes[0].applied == [observer.committed[i][1] for i in range(1, len(nodes[0].applied) + 1)]
    assert nodes[0].commit_index >= max(observer.committed) - 2


@st.composite
def graph_raft_runs(draw):
    """The consensus graph's Raft run (nodes.consensus.raft_run): ballots, crashed/silent voters."""
    from relaygraph.coordination.ballots import Ballot

    n = draw(st.sampled_from([3, 5]))
    down = draw(st.lists(st.integers(1, n), max_size=(n - 1) // 2, unique=True))
    faults = {f"voter_{i}": draw(st.sampled_from(["crash", "silent"])) for i in down}
    choices = {f"voter_{i}": draw(st.sampled_from(["north", "south"])) for i in range(1, n + 1)}
    ballots = {f"r1/{v}": {"voter": v, "ballot": Ballot(voter=v, choice=c, confidence=0.8).model_dump(mode="json")}
               for v, c in choices.items()}
    return n, faults, ballots, draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 12))


@FAST
@given(graph_raft_runs())
def test_the_graphs_raft_in_phases_is_safe_decides_the_majority_and_resumes_from_any_phase(case) -> None:
    from relaygraph.nodes.consensus import ConsensusConfig, raft_run

    n, faults, ballots, seed, cut = case
    note(repr(case))
    cfg = ConsensusConfig(mode="raft", voters=n, faults=faults, seed=seed)
    run, outcome = raft_run(cfg, cfg.names(), {k.split("/")[1]: _ballot(v) for k, v in ballots.items()},
                            _faults(faults))
    while not run.finished():
        run.step(last=len(run.steps) >= 30)
    decided = outcome()
    live = [b["ballot"]["choice"] for b in ballots.values() if b["voter"] not in faults]
    majority = next((c for c in set(live) if live.count(c) * 2 > n), None)
    assert decided["decision"] == majority and decided["log_safety_violations"] == []
    assert all(decided["caught_up"].values()) and len(decided["caught_up"]) == sum(
        1 for b in faults.values() if b == "crash")
    cut = min(cut, len(run.steps) - 1)
    again, again_outcome = raft_run(cfg, cfg.names(), {k.split("/")[1]: _ballot(v) for k, v in ballots.items()},
                                    _faults(faults))
    again.replay([s.record() for s in run.steps[:cut]])
    while not again.finished():
        again.step(last=len(again.steps) >= 30)
    assert [s.record() for s in again.steps] == [s.record() for s in run.steps]
    assert again_outcome() == decided


def _ballot(record):
    from relaygraph.coordination.ballots import Ballot

    return Ballot.model_validate(record["ballot"])


def _faults(faults):
    return {v: Fault(behaviour=Behaviour(b), extra_delay=400.0) for v, b in faults.items()}
