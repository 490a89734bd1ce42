"""The simulated network itself: reproducible from its seed, and each fault does what it says."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from relaygraph.coordination.network import (
    Behaviour,
    Conditions,
    Fault,
    Message,
    Partition,
    Simulation,
)


class Echo:
    """Sends ``count`` numbered pings to every peer at start; records what arrives, when."""

    def __init__(self, node: str, count: int = 5) -> None:
        self.id, self.count, self.got = node, count, []

    def start(self, ctx) -> None:
        for k in range(self.count):
            for peer in ctx.peers:
                if peer != self.id:
                    ctx.send(peer, "ping", {"k": k, "value": "true"})

    def on_message(self, message, ctx) -> None:
        self.got.append((round(ctx.now, 6), message.src, message.body["k"], message.body["value"]))

    def on_timer(self, tag, ctx) -> None: ...

    def forge(self, message: Message, how: str, variant: int) -> Message:
        return Message(message.src, message.dst, message.kind, {**message.body, "value": f"{how}{variant}"})


def run(seed: int, conditions: Conditions, faults=None) -> tuple[Simulation, list[Echo]]:
    nodes = [Echo(f"p{i}") for i in range(4)]
    sim = Simulation(nodes, seed=seed, conditions=conditions, faults=faults or {}, record=True)
    sim.run(until=10_000)
    return sim, nodes


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0, 0.5), st.floats(0, 0.5))
def test_a_seed_replays_the_same_schedule(seed, drop, duplicate) -> None:
    conditions = Conditions(drop=drop, duplicate=duplicate, max_delay=30)
    (a, na), (b, nb) = run(seed, conditions), run(seed, conditions)
    assert a.log == b.log and [n.got for n in na] == [n.got for n in nb]
    assert a.stats.sent == a.stats.delivered + a.stats.dropped - a.stats.duplicated


def test_delays_reorder_and_drops_stop_at_stabilisation() -> None:
    sim, nodes = run(1, Conditions(max_delay=50, drop=1.0, stable_after=0.0))
    assert sim.stats.dropped == 0 and all(len(n.got) == 15 for n in nodes)
    order = [k for _, src, k, _ in nodes[0].got if src == "p1"]
    assert order != sorted(order)  # later pings overtook earlier ones
    sim, nodes = run(1, Conditions(drop=1.0))
    assert sim.stats.delivered == 0 and sim.stats.dropped == 60


def test_partitions_cut_links_only_between_groups_and_only_while_they_last() -> None:
    cut = Partition(start=0, end=100, groups=(frozenset({"p0", "p1"}), frozenset({"p2", "p3"})))
    _, nodes = run(2, Conditions(partitions=(cut,)))
    assert {src for _, src, _, _ in nodes[0].got} == {"p1"}
    late = Partition(start=100, end=200, groups=cut.groups)
    _, nodes = run(2, Conditions(partitions=(late,)))
    assert {src for _, src, _, _ in nodes[0].got} == {"p1", "p2", "p3"}


def test_fault_behaviours() -> None:
    _, nodes = run(3, Conditions(), {"p0": Fault(behaviour=Behaviour.SILENT)})
    assert all(src != "p0" for n in nodes for _, src, _, _ in n.got)
    _, nodes = run(3, Conditions(), {"p0": Fault(behaviour=Behaviour.CRASH)})
    assert nodes[0].got == [] and all(src != "p0" for n in nodes for _, src, _, _ in n.got)
    _, nodes = run(3, Conditions(max_delay=10), {"p0": Fault(behaviour=Behaviour.DELAY, extra_delay=500)})
    assert min(t for t, src, _, _ in nodes[1].got if src == "p0") >= 500
    _, nodes = run(3, Conditions(), {"p0": Fault(behaviour=Behaviour.LIE)})
    assert {v for _, src, _, v in nodes[1].got + nodes[2].got if src == "p0"} == {"lie1"}
    _, nodes = run(3, Conditions(), {"p0": Fault(behaviour=Behaviour.EQUIVOCATE)})
    told = {n.id: {v for _, src, _, v in n.got if src == "p0"} for n in nodes[1:]}
    assert told == {"p1": {"equivocate1"}, "p2": {"equivocate0"}, "p3": {"equivocate1"}}
    _sim, nodes = run(3, Conditions(), {"p0": Fault(behaviour=Behaviour.RANDOM)})
    assert len({v for n in nodes for _, src, _, v in n.got if src == "p0"}) > 1
