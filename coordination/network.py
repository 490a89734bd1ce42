"""Transport interface and a deterministic, seeded simulated network with injectable faults.

    Process ──ctx.send──► Simulation ──(drop? duplicate? partition? delay)──► heap ──► Process
               ctx.set_timer ─────────────────────────────────────────────► heap ──► on_timer

Protocols (:mod:`~relaygraph.coordination.pbft`, :mod:`~relaygraph.coordination.raft`) are
written against :class:`Process` and :class:`Context` only, so the same replica code runs on
this simulator (property tests, the benchmark) and on the graph's transport.

Determinism: every random draw — delays, drops, duplicates, a replica's randomized timeout, a
Byzantine replica's choices — comes from generators seeded by ``seed`` (per-node streams are
derived from ``seed`` and the node id), and events at equal times run in send order. So a run
is a pure function of (scenario, seed): a failing schedule is replayed from its printed seed.

Reordering comes from independent random delays (a later message may overtake an earlier one).
``Conditions.stable_after`` is the global stabilisation time of partial synchrony: from then on
nothing is dropped and partitions are healed — "eventual delivery".

Faults (:class:`Behaviour`) act on what a node *sends* (and, for crash, on whether it runs):
``crash`` stops it (optionally restarting it later: Raft's catch-up), ``silent`` drops all it
sends, ``delay`` holds its messages back, ``lie`` and ``equivocate`` rewrite them through the
protocol's own :meth:`Process.forge` (a lie to everyone; equivocation one version to
even-indexed peers and another to odd-indexed ones), ``random`` picks one of these per
message. Why hand-written: simulators we know of (e.g. SimPy) give events but not this
fault/partition/replay model, which is most of the code.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import json
import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator


@dataclass(frozen=True)
class Message:
    """One protocol message. ``signature`` covers (src, kind, body) — see crypto.signed_bytes."""

    src: str
    dst: str
    kind: str
    body: Mapping[str, Any]
    signature: str = ""

    def signed(self) -> dict[str, Any]:
        """The message as a self-contained, forwardable record (dst is not signed)."""
        return {"src": self.src, "kind": self.kind, "body": self.body, "signature": self.signature}


class Transport(Protocol):
    """Where a protocol's messages go. The simulator is one; the graph's state log is another."""

    def send(self, message: Message) -> None: ...


class Context(Protocol):
    """What a process may do: send, set timers, read the clock and its own random stream."""

    node: str
    peers: tuple[str, ...]  # every member, this node included, in a fixed order
    rng: random.Random

    @property
    def now(self) -> float: ...

    def send(self, dst: str, kind: str, body: Mapping[str, Any], signature: str = "") -> None: ...

    def set_timer(self, tag: str, delay: float) -> None: ...

    def cancel_timer(self, tag: str) -> None: ...


@runtime_checkable
class Process(Protocol):
    id: str

    def start(self, ctx: Context) -> None: ...

    def on_message(self, message: Message, ctx: Context) -> None: ...

    def on_timer(self, tag: str, ctx: Context) -> None: ...


class Behaviour(StrEnum):
    CRASH = "crash"
    SILENT = "silent"
    DELAY = "delay"
    LIE = "lie"
    EQUIVOCATE = "equivocate"
    RANDOM = "random"


BYZANTINE = (Behaviour.SILENT, Behaviour.DELAY, Behaviour.LIE, Behaviour.EQUIVOCATE, Behaviour.RANDOM)


class Fault(BaseModel):
    """A behaviour from time ``start``; a crash with ``restart`` comes back then (state kept
    as the protocol keeps it on disk: see ``on_restart``)."""

    model_config = ConfigDict(frozen=True)

    behaviour: Behaviour
    start: float = Field(default=0.0, ge=0)
    restart: float | None = None
    extra_delay: float = Field(default=200.0, ge=0)


class Partition(BaseModel):
    """From ``start`` to ``end`` only nodes in the same group can talk."""

    model_config = ConfigDict(frozen=True)

    start: float = Field(ge=0)
    end: float
    groups: tuple[frozenset[str], ...]

    @model_validator(mode="after")
    def _ordered(self) -> Partition:
        if self.end <= self.start:
            raise ValueError("a partition must end after it starts")
        return self

    def separates(self, a: str, b: str, at: float) -> bool:
        if not self.start <= at < self.end:
            return False
        return not any(a in g and b in g for g in self.groups)


class Conditions(BaseModel):
    """The network's misbehaviour (all probabilities per message)."""

    model_config = ConfigDict(frozen=True)

    min_delay: float = Field(default=1.0, ge=0)
    max_delay: float = Field(default=10.0, ge=0)
    drop: float = Field(default=0.0, ge=0, le=1)
    duplicate: float = Field(default=0.0, ge=0, le=1)
    partitions: tuple[Partition, ...] = ()
    stable_after: float = math.inf  # no drops and no partitions from here on

    @model_validator(mode="after")
    def _delays(self) -> Conditions:
        if self.max_delay < self.min_delay:
            raise ValueError("max_delay must be at least min_delay")
        return self


@dataclass
class Stats:
    sent: int = 0
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0
    by_kind: Counter = field(default_factory=Counter)
    by_src: Counter = field(default_factory=Counter)  # delivered, per sender


class _NodeContext:
    def __init__(self, sim: Simulation, node: str) -> None:
        self.sim, self.node, self.peers = sim, node, sim.members
        self.rng = random.Random(f"{sim.seed}:{node}")

    @property
    def now(self) -> float:
        return self.sim.now

    def send(self, dst: str, kind: str, body: Mapping[str, Any], signature: str = "") -> None:
        self.sim.submit(Message(self.node, dst, kind, body, signature))

    def set_timer(self, tag: str, delay: float) -> None:
        self.sim.set_timer(self.node, tag, delay)

    def cancel_timer(self, tag: str) -> None:
        self.sim.cancel_timer(self.node, tag)


class Simulation:
    """A discrete-event run of ``processes`` over a faulty network, reproducible from ``seed``."""

    def __init__(self, processes: Sequence[Process], *, seed: int, conditions: Conditions | None = None,
                 faults: Mapping[str, Fault] | None = None, record: bool = False) -> None:
        self.seed = seed
        self.conditions = conditions or Conditions()
        self.faults = dict(faults or {})
        self.members: tuple[str, ...] = tuple(p.id for p in processes)
        self.index = {m: i for i, m in enumerate(self.members)}
        unknown = set(self.faults) - set(self.members)
        if unknown:
            raise ValueError(f"faults name unknown nodes: {sorted(unknown)}")
        self.processes = {p.id: p for p in processes}
        self.contexts = {p.id: _NodeContext(self, p.id) for p in processes}
        self.rng = random.Random(seed)
        self.now = 0.0
        self.stats = Stats()
        self.alive = {m: True for m in self.members}
        self.record = record
        self.log: list[str] = []
        self.events = 0  # events processed so far: a position a deterministic replay can stop at
        self.wire: list[dict[str, Any]] = []  # every message transmitted, as data (see on_transmit)
        self.keep_wire = False
        self._heap: list[tuple[float, int, str, Any]] = []
        self._seq = 0
        self._timers: dict[tuple[str, str], int] = {}
        self._started = False

    # --- scheduling ----------------------------------------------------------------------

    def _push(self, at: float, kind: str, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, kind, payload))

    def at(self, time: float, action: Callable[[], None]) -> None:
        """Run ``action`` at ``time`` (a client request, a crash, a check)."""
        self._push(time, "call", action)

    def set_timer(self, node: str, tag: str, delay: float) -> None:
        gen = self._timers.get((node, tag), 0) + 1
        self._timers[(node, tag)] = gen
        self._push(self.now + max(delay, 0.0), "timer", (node, tag, gen))

    def cancel_timer(self, node: str, tag: str) -> None:
        self._timers[(node, tag)] = self._timers.get((node, tag), 0) + 1

    # --- the network ---------------------------------------------------------------------

    def _behaviour(self, node: str) -> Fault | None:
        fault = self.faults.get(node)
        if fault is None or self.now < fault.start:
            return None
        return fault

    def submit(self, message: Message) -> None:
        """A node sends: faults rewrite it, then the network may drop, duplicate and delay it."""
        if not self.alive.get(message.src, False):
            return
        fault = self._behaviour(message.src)
        if fault is not None and fault.behaviour is Behaviour.CRASH:
            fault = None  # a crash is whether the node runs (self.alive), not what it sends
        extra = 0.0
        outgoing: Iterable[Message] = (message,)
        if fault is not None:
            behaviour: Behaviour | str | None = fault.behaviour
            if behaviour is Behaviour.RANDOM:
                behaviour = self.contexts[message.src].rng.choice(
                    (None, Behaviour.SILENT, Behaviour.DELAY, Behaviour.LIE, Behaviour.EQUIVOCATE, "duplicate"))
            if behaviour is Behaviour.SILENT:
                self._note(f"{message.src} withholds {message.kind}→{message.dst}")
                return
            if behaviour is Behaviour.DELAY:
                extra = fault.extra_delay
            elif behaviour in (Behaviour.LIE, Behaviour.EQUIVOCATE):
                variant = 1 if behaviour is Behaviour.LIE else self.index[message.dst] % 2
                forged = self._forge(message, str(behaviour), variant)  # a StrEnum: its value
                outgoing = (forged,) if forged is not None else ()
            elif behaviour == "duplicate":
                outgoing = (message, message)
        for out in outgoing:
            self._transmit(out, extra)

    def _forge(self, message: Message, how: str, variant: int) -> Message | None:
        forge = getattr(self.processes[message.src], "forge", None)
        if forge is None:
            return message
        return forge(message, how, variant)

    def _transmit(self, message: Message, extra: float = 0.0) -> None:
        c = self.conditions
        self.stats.sent += 1
        if self.keep_wire:
            self.wire.append({"at": self.now, "src": message.src, "dst": message.dst, "kind": message.kind,
                              "body": dict(message.body), "signature": message.signature})
        self.stats.by_kind[message.kind] += 1
        unstable = self.now < c.stable_after
        if message.src != message.dst and unstable and c.drop and self.rng.random() < c.drop:
            self.stats.dropped += 1
            self._note(f"drop {message.kind} {message.src}→{message.dst}")
            return
        copies = 1
        if message.src != message.dst and c.duplicate and self.rng.random() < c.duplicate:
            copies = 2
            self.stats.duplicated += 1
        for _ in range(copies):
            delay = 0.0 if message.src == message.dst else self.rng.uniform(c.min_delay, c.max_delay)
            self._push(self.now + delay + extra, "deliver", message)

    def partitioned(self, a: str, b: str) -> bool:
        if a == b or self.now >= self.conditions.stable_after:
            return False
        return any(p.separates(a, b, self.now) for p in self.conditions.partitions)

    # --- crash and restart ---------------------------------------------------------------

    def crash(self, node: str) -> None:
        self.alive[node] = False
        for key in [k for k in self._timers if k[0] == node]:
            self._timers[key] += 1
        self._note(f"{node} crashes")

    def restart(self, node: str) -> None:
        if self.alive[node]:
            return
        self.alive[node] = True
        self._note(f"{node} restarts")
        process = self.processes[node]
        getattr(process, "on_restart", process.start)(self.contexts[node])

    # --- running -------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        for node, fault in self.faults.items():
            if fault.behaviour is Behaviour.CRASH:
                self.at(fault.start, functools.partial(self.crash, node))
                if fault.restart is not None:
                    self.at(max(fault.restart, fault.start), functools.partial(self.restart, node))
        for node in self.members:
            if self.faults.get(node) and self.faults[node].behaviour is Behaviour.CRASH and self.faults[node].start <= 0:
                self.alive[node] = False
                continue
            self.processes[node].start(self.contexts[node])

    def run(self, until: float = math.inf, *, stop: Callable[[], bool] | None = None,
            max_events: int = 2_000_000) -> bool:
        """Process events up to time ``until``; True if ``stop()`` became true first."""
        self.start()
        for _ in range(max_events):
            if stop is not None and stop():
                return True
            if not self._heap or self._heap[0][0] > until:
                self.now = max(self.now, min(until, self.now if not self._heap else self._heap[0][0]))
                return bool(stop and stop())
            at, _, kind, payload = heapq.heappop(self._heap)
            self.now = at
            self.events += 1
            if kind == "call":
                payload()
            elif kind == "timer":
                node, tag, gen = payload
                if self.alive[node] and self._timers.get((node, tag)) == gen:
                    self.processes[node].on_timer(tag, self.contexts[node])
            else:
                self._deliver(payload)
        raise RuntimeError(f"simulation (seed={self.seed}) exceeded {max_events} events")

    def _deliver(self, message: Message) -> None:
        if not self.alive.get(message.dst, False):
            return
        if self.partitioned(message.src, message.dst):
            self.stats.dropped += 1
            self._note(f"partition drops {message.kind} {message.src}→{message.dst}")
            return
        self.stats.delivered += 1
        self.stats.by_src[message.src] += 1
        self._note(f"deliver {message.kind} {message.src}→{message.dst} {dict(message.body)}")
        self.processes[message.dst].on_message(message, self.contexts[message.dst])

    def _note(self, line: str) -> None:
        if self.record:
            self.log.append(f"{self.now:9.2f} {line}")


# --- running a protocol one phase at a time -------------------------------------------------


def _reached(sim: Simulation, events: int) -> bool:
    """True once ``sim`` has processed ``events`` events (a replay's stop condition)."""
    return sim.events >= events


class ReplayDiverged(RuntimeError):
    """A replay did not send the messages a checkpoint recorded for the same steps."""


@dataclass(frozen=True)
class PhaseStep:
    """One phase of a protocol run: its name, where it ended, and the messages sent in it."""

    index: int
    phase: str
    events: int  # the simulation's event count when the step ended
    time: float
    messages: tuple[dict[str, Any], ...]
    done: bool

    def record(self) -> dict[str, Any]:
        """The step as data (what graph state keeps), messages left out: they are kept apart."""
        return {"step": self.index, "phase": self.phase, "events": self.events, "time": self.time,
                "messages": len(self.messages), "digest": wire_digest(self.messages), "done": self.done}


def wire_digest(messages: Iterable[Mapping[str, Any]]) -> str:
    """SHA-256 over the messages' canonical JSON (what a replay must reproduce exactly)."""
    h = hashlib.sha256()
    for m in messages:
        h.update(json.dumps({k: m[k] for k in ("src", "dst", "kind", "body", "signature")}, sort_keys=True,
                            separators=(",", ":"), default=str).encode())
    return h.hexdigest()


class PhasedRun:
    """Run a :class:`Simulation` one protocol *phase* at a time, so each phase can be its own
    step of a workflow (and its own checkpoint).

    ``phase()`` names the phase the protocol is in, from the processes' state or the messages
    sent so far (PBFT: the newest message kind and view; Raft: election or replication in a
    term). A step runs from where the previous one ended until the phase changes, ``done()``
    holds, or the clock reaches ``until``; it keeps every message transmitted during it.

    Resuming (:meth:`replay`): the simulation is a pure function of its processes and seed, so
    re-running it to the last recorded step's event count rebuilds every process exactly;
    each replayed step's messages are checked against the recorded ones (:func:`wire_digest`)
    and a mismatch raises :class:`ReplayDiverged` instead of continuing from a different past.
    """

    def __init__(self, sim: Simulation, *, phase: Callable[[], str], done: Callable[[], bool],
                 until: float, key: Callable[[Mapping[str, Any]], str] | None = None) -> None:
        self.sim, self.phase, self.done, self.until, self.key = sim, phase, done, until, key
        sim.keep_wire = True
        self.steps: list[PhaseStep] = []
        self._mark = 0  # where the current step's messages begin in ``sim.wire``
        self._opened: list[int] = []  # ``key``: wire positions where a message key first appears
        self._seen: set[str] = set()
        self._scanned = 0

    def _cut(self) -> int | None:
        """With ``key``: where the next phase's messages begin — the second key first seen at or
        after the step's start. The event that opens a phase also sent its first messages, so the
        step ends *before* them and they open the next step (each step holds its own phase's
        messages, plus stragglers of earlier phases, which its label then names too)."""
        assert self.key is not None  # only called in key mode
        wire = self.sim.wire
        for i in range(self._scanned, len(wire)):
            k = self.key(wire[i])
            if k not in self._seen:
                self._seen.add(k)
                self._opened.append(i)
        self._scanned = len(wire)
        opened = [p for p in self._opened if p >= self._mark]
        return opened[1] if len(opened) > 1 else None

    def _label(self, messages: Sequence[Mapping[str, Any]], current: str) -> str:
        """A step's name from its messages' keys, in order of first appearance (``key`` mode)."""
        if self.key is None or not messages:
            return current
        keys: list[str] = []
        for m in messages:
            if (k := self.key(m)) not in keys:
                keys.append(k)
        return " + ".join(keys)

    def finished(self) -> bool:
        return bool(self.steps) and self.steps[-1].done

    def current(self) -> str:
        """The phase the next step runs (starting the processes if nothing ran yet)."""
        self.sim.start()  # the first step includes what the processes send as they start
        return self.phase()

    def _end(self, current: str) -> PhaseStep:
        sim = self.sim
        finished = self.done() or sim.now >= self.until or not sim._heap
        end = len(sim.wire)
        if self.key is not None and not finished:
            end = cut if (cut := self._cut()) is not None else end
        messages = tuple(sim.wire[self._mark:end])
        step = PhaseStep(index=len(self.steps) + 1, phase=self._label(messages, current), events=sim.events,
                         time=sim.now, messages=messages, done=finished)
        self._mark = end
        self.steps.append(step)
        return step

    def step(self, *, last: bool = False) -> PhaseStep:
        """Run the next phase (``last``: everything that is left, in one step)."""
        if self.finished():
            raise RuntimeError("the protocol run is finished: there is no next phase")
        sim = self.sim
        current = self.current()
        if not last and self.key is not None:
            sim.run(self.until, stop=lambda: self.done() or self._cut() is not None)
        elif not last:
            sim.run(self.until, stop=lambda: self.done() or self.phase() != current)
        else:
            sim.run(self.until, stop=self.done)
        return self._end(current)

    def replay(self, recorded: Sequence[Mapping[str, Any]]) -> None:
        """Rebuild the run up to the end of the ``recorded`` steps (:meth:`PhaseStep.record`)."""
        sim = self.sim
        for rec in recorded:
            current = self.current()
            target = int(rec["events"])
            if sim.events < target:
                sim.run(self.until, stop=functools.partial(_reached, sim, target))
            step = self._end(current)
            if (step.events, step.phase, wire_digest(step.messages)) != (target, rec["phase"], rec["digest"]):
                raise ReplayDiverged(
                    f"replaying the protocol does not reproduce step {rec['step']} ({rec['phase']}) as "
                    "checkpointed: the code or the run's options changed since the checkpoint. Start the "
                    "run again on a new thread.")
