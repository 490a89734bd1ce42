"""Raft (Ongaro & Ousterhout, 2014): a crash-fault-tolerant, ordered log of decisions.

    follower ──election timeout (randomized)──► candidate ──majority of votes──► leader
    leader: AppendEntries(prev index/term, entries, commit) ──► followers (heartbeats too)
    an entry of the leader's term on a majority ⇒ committed ⇒ applied in log order

Use it when agents may crash or fall silent but do not lie: it needs only a majority
(``n ≥ 2f+1``) and fewer messages than PBFT, and tolerates no Byzantine member.

Timeouts are randomized per node from its own seeded stream: the seeds ask for 5–10 s; the
simulator runs in abstract time units with ``election_timeout=(150, 300)`` by default
(``scale`` it to seconds for a deployment). A restarted node keeps what Raft keeps on disk
(term, vote, log) and loses the rest (role, commit index, state machine), then catches up from
the leader's AppendEntries — including entries committed while it was down.

:class:`RaftObserver` watches every node and records violations of Raft's safety properties
as they happen (election safety, leader completeness, state-machine safety); log matching is
checked on demand. Why hand-written: Python Raft libraries (e.g. PySyncObj) own their sockets
and clocks; we need the algorithm on our deterministic transport.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from relaygraph.coordination.network import Context, Message

ELECTION, HEARTBEAT = "election", "heartbeat"


@dataclass
class RaftObserver:
    """Collects what happened, and every safety violation the moment it happens."""

    leaders: dict[int, set[str]] = field(default_factory=dict)
    committed: dict[int, tuple[int, str]] = field(default_factory=dict)  # index -> (term, value)
    applied: dict[int, str] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    def on_leader(self, node: RaftNode) -> None:
        who = self.leaders.setdefault(node.term, set())
        who.add(node.id)
        if len(who) > 1:
            self.violations.append(f"election safety: term {node.term} has leaders {sorted(who)}")
        for index, (term, value) in self.committed.items():
            if term < node.term and (index > len(node.log) or tuple(node.log[index - 1]) != (term, value)):
                self.violations.append(f"leader completeness: {node.id}, leader of term {node.term}, "
                                       f"lacks committed entry {index} ({term}, {value!r})")

    def on_commit(self, node: RaftNode, index: int) -> None:
        term, value = node.log[index - 1]  # a tuple, or a list after a JSON round trip
        entry = (term, value)
        known = self.committed.setdefault(index, entry)
        if known != entry:
            self.violations.append(f"commit safety: index {index} committed as {known} and {entry} ({node.id})")

    def on_apply(self, node: RaftNode, index: int, value: str) -> None:
        known = self.applied.setdefault(index, value)
        if known != value:
            self.violations.append(f"state-machine safety: {node.id} applied {value!r} at {index}, "
                                   f"another node applied {known!r}")


def log_matching_violations(nodes: Sequence[RaftNode]) -> list[str]:
    """Log matching: same index and term ⇒ identical logs up to that index."""
    found = []
    for a in nodes:
        for b in nodes:
            if a.id >= b.id:
                continue
            for i in range(min(len(a.log), len(b.log)), 0, -1):
                if a.log[i - 1][0] == b.log[i - 1][0]:
                    if [tuple(e) for e in a.log[:i]] != [tuple(e) for e in b.log[:i]]:
                        found.append(f"log matching: {a.id} and {b.id} agree on the term at {i} but differ before")
                    break
    return found


class RaftNode:
    """One Raft member (a :class:`~relaygraph.coordination.network.Process`)."""

    def __init__(self, node: str, members: Sequence[str], *, election_timeout: tuple[float, float] = (150, 300),
                 heartbeat: float = 50, observer: RaftObserver | None = None) -> None:
        self.id = node
        self.members = tuple(members)
        self.election_timeout, self.heartbeat = election_timeout, heartbeat
        self.observer = observer or RaftObserver()
        # persistent (survives a restart)
        self.term = 0
        self.voted_for: str | None = None
        self.log: list[tuple[int, str]] = []
        self.restarts = 0
        self.reset_volatile()
        self.sent = 0

    def reset_volatile(self) -> None:
        self.role = "follower"
        self.leader: str | None = None
        self.commit_index = 0
        self.applied: list[str] = []
        self.votes: set[str] = set()
        self.next_index: dict[str, int] = {}
        self.match_index: dict[str, int] = {}

    @property
    def majority(self) -> int:
        return len(self.members) // 2 + 1

    def last(self) -> tuple[int, int]:
        return len(self.log), (self.log[-1][0] if self.log else 0)

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, ctx: Context) -> None:
        self.arm_election(ctx)

    def on_restart(self, ctx: Context) -> None:
        self.restarts += 1
        self.reset_volatile()
        self.arm_election(ctx)

    def arm_election(self, ctx: Context) -> None:
        ctx.set_timer(ELECTION, ctx.rng.uniform(*self.election_timeout))

    def send(self, ctx: Context, dst: str, kind: str, body: dict[str, Any]) -> None:
        self.sent += 1
        ctx.send(dst, kind, body)

    def on_timer(self, tag: str, ctx: Context) -> None:
        if tag == ELECTION and self.role != "leader":
            self.campaign(ctx)
        elif tag == HEARTBEAT and self.role == "leader":
            self.replicate(ctx)
            ctx.set_timer(HEARTBEAT, self.heartbeat)

    def campaign(self, ctx: Context) -> None:
        self.term += 1
        self.role, self.voted_for, self.votes, self.leader = "candidate", self.id, {self.id}, None
        last_index, last_term = self.last()
        for peer in self.members:
            if peer != self.id:
                self.send(ctx, peer, "request-vote", {"term": self.term, "last_index": last_index,
                                                      "last_term": last_term})
        self.arm_election(ctx)
        self.maybe_win(ctx)

    def step_down(self, term: int, ctx: Context) -> None:
        if term > self.term:
            self.term, self.voted_for = term, None
        if self.role != "follower":
            self.role = "follower"
            ctx.cancel_timer(HEARTBEAT)
            self.arm_election(ctx)

    # --- messages --------------------------------------------------------------------------

    def on_message(self, message: Message, ctx: Context) -> None:
        b = message.body
        if b["term"] > self.term:
            self.step_down(b["term"], ctx)
        getattr(self, "on_" + message.kind.replace("-", "_"))(message.src, b, ctx)

    def on_request_vote(self, src: str, b: Any, ctx: Context) -> None:
        last_index, last_term = self.last()
        up_to_date = (b["last_term"], b["last_index"]) >= (last_term, last_index)
        grant = b["term"] == self.term and self.voted_for in (None, src) and up_to_date
        if grant:
            self.voted_for = src
            self.arm_election(ctx)
        self.send(ctx, src, "vote", {"term": self.term, "granted": grant})

    def on_vote(self, src: str, b: Any, ctx: Context) -> None:
        if self.role == "candidate" and b["term"] == self.term and b["granted"]:
            self.votes.add(src)
            self.maybe_win(ctx)

    def maybe_win(self, ctx: Context) -> None:
        if self.role != "candidate" or len(self.votes) < self.majority:
            return
        self.role, self.leader = "leader", self.id
        self.next_index = {p: len(self.log) + 1 for p in self.members}
        self.match_index = {p: 0 for p in self.members}
        self.match_index[self.id] = len(self.log)
        ctx.cancel_timer(ELECTION)
        self.observer.on_leader(self)
        self.replicate(ctx)
        ctx.set_timer(HEARTBEAT, self.heartbeat)

    def submit(self, value: str, ctx: Context) -> bool:
        """A client command: appended if this node leads (else the client must find the leader)."""
        if self.role != "leader":
            return False
        self.log.append((self.term, value))
        self.match_index[self.id] = len(self.log)
        self.replicate(ctx)
        self.advance_commit(ctx)
        return True

    def replicate(self, ctx: Context) -> None:
        for peer in self.members:
            if peer == self.id:
                continue
            prev = self.next_index[peer] - 1
            self.send(ctx, peer, "append", {
                "term": self.term, "prev_index": prev, "prev_term": self.log[prev - 1][0] if prev else 0,
                "entries": [list(e) for e in self.log[prev:]], "commit": self.commit_index})

    def on_append(self, src: str, b: Any, ctx: Context) -> None:
        if b["term"] < self.term:
            self.send(ctx, src, "append-reply", {"term": self.term, "success": False, "match": 0})
            return
        if self.role != "follower":
            self.step_down(b["term"], ctx)
        self.leader = src
        self.arm_election(ctx)
        prev = b["prev_index"]
        if prev > len(self.log) or (prev and self.log[prev - 1][0] != b["prev_term"]):
            self.send(ctx, src, "append-reply", {"term": self.term, "success": False,
                                                 "match": min(prev - 1, len(self.log))})
            return
        for offset, (term, value) in enumerate(b["entries"]):
            index = prev + offset + 1
            if index <= len(self.log) and self.log[index - 1][0] != term:
                del self.log[index - 1:]  # a conflicting suffix from a deposed leader
            if index > len(self.log):
                self.log.append((term, value))
        match = prev + len(b["entries"])
        if b["commit"] > self.commit_index:
            self.set_commit(min(b["commit"], match), ctx)
        self.send(ctx, src, "append-reply", {"term": self.term, "success": True, "match": match})

    def on_append_reply(self, src: str, b: Any, ctx: Context) -> None:
        if self.role != "leader" or b["term"] != self.term:
            return
        if b["success"]:
            self.match_index[src] = max(self.match_index[src], b["match"])
            self.next_index[src] = self.match_index[src] + 1
            self.advance_commit(ctx)
        else:  # back up (to the follower's hint) and retry
            self.next_index[src] = max(1, min(self.next_index[src] - 1, b["match"] + 1))
            prev = self.next_index[src] - 1
            self.send(ctx, src, "append", {
                "term": self.term, "prev_index": prev, "prev_term": self.log[prev - 1][0] if prev else 0,
                "entries": [list(e) for e in self.log[prev:]], "commit": self.commit_index})

    def advance_commit(self, ctx: Context) -> None:
        """Commit the highest index a majority stores — only an entry of this term (§5.4.2)."""
        for index in range(len(self.log), self.commit_index, -1):
            if self.log[index - 1][0] != self.term:
                break
            if sum(1 for m in self.match_index.values() if m >= index) >= self.majority:
                self.set_commit(index, ctx)
                break

    def set_commit(self, index: int, ctx: Context) -> None:
        if index <= self.commit_index:
            return
        for i in range(self.commit_index + 1, index + 1):
            self.observer.on_commit(self, i)
        self.commit_index = index
        while len(self.applied) < self.commit_index:
            value = self.log[len(self.applied)][1]
            self.applied.append(value)
            self.observer.on_apply(self, len(self.applied), value)
