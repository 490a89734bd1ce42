"""PBFT (Castro & Liskov, 1999): Byzantine-tolerant agreement on a sequence of values.

    client requests ─► primary of view v: PRE-PREPARE(v, s, d, value)
                        backups: PREPARE(v, s, d)    — 2f matching from distinct backups ⇒ prepared
                        everyone: COMMIT(v, s, d)   — 2f+1 matching (prepared too) ⇒ committed
    timeout / bad primary ─► VIEW-CHANGE(v+1, prepared certificates) ─► 2f+1 of them ⇒
                        new primary: NEW-VIEW(v+1, the view changes, re-issued pre-prepares)

``n ≥ 3f+1`` is checked up front (:func:`check_size`). Every message is signed by its sender
(:mod:`~relaygraph.coordination.crypto`), so prepared certificates carried in a view change
cannot be forged and two conflicting signed messages are proof of equivocation. Digests are
SHA-256 of the proposal's canonical JSON.

Replicas are agents in the consensus graph: ``validate(value)`` is the replica's own check of
a proposal (in the graph: "does it match my ballot and evidence?"). A proposal carried into a
new view by a prepared certificate is re-issued without that check: 2f+1 replicas, f+1 of them
honest, already accepted it, and refusing it could undo a commit.

Simplifications, stated: no checkpoints/garbage collection (a decision log is short), requests
are known to every replica from the start (clients broadcast), and execution deduplicates.
State transfer is a commit certificate (pre-prepare + 2f+1 signed commits) sent to a replica
that asks for a view change, so one cut off while the others decided still catches up.
Timers double on each view change without progress (the paper's liveness argument).

Faulty replicas run this same code while the network rewrites what they send
(:meth:`PbftReplica.forge`); Byzantine replicas share one :class:`Coalition`, the standard
model of an adversary that controls all faulty replicas at once.

Why hand-written: no maintained Python PBFT library exists that we could run over our
transport and fault model; crypto and hashing come from ``cryptography``/``hashlib``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from relaygraph.coordination.ballots import digest
from relaygraph.coordination.crypto import Keyring
from relaygraph.coordination.network import Context, Message

NULL = "(null request)"
VIEW_TIMER = "view"


LIE_MARK = "lie:"  # a forged value on the simulated wire: distinct from every honest value


def shown(value: str) -> str:
    """A value as a person reads it: the simulator's forgery mark is not part of the value."""
    return value.removeprefix(LIE_MARK)


class QuorumError(ValueError):
    """The replica count cannot tolerate the faults asked for."""


def max_faulty(n: int) -> int:
    return (n - 1) // 3


def check_size(n: int, f: int | None = None) -> int:
    """``f`` (default: the most ``n`` tolerates), refusing ``n < 3f+1`` with the reason."""
    if n < 1:
        raise QuorumError("PBFT needs at least one replica")
    f = max_faulty(n) if f is None else f
    if f < 0:
        raise QuorumError(f"f must be ≥ 0, got {f}")
    if n < 3 * f + 1:
        raise QuorumError(f"PBFT tolerating f={f} faulty replicas needs n ≥ 3f+1 = {3 * f + 1} replicas; "
                          f"got n={n} (with {n} replicas it tolerates f={max_faulty(n)})")
    return f


def expected_messages(n: int, requests: int = 1) -> int:
    """Messages of a fault-free run, per the protocol: (n−1) pre-prepares, (n−1)² prepares,
    n(n−1) commits per request — O(n²)."""
    return requests * ((n - 1) + (n - 1) ** 2 + n * (n - 1))


@dataclass
class Coalition:
    """What colluding Byzantine replicas agree on: per (view, seq) the two values they tell."""

    pairs: dict[tuple[int, int], tuple[str, str]] = field(default_factory=dict)


@dataclass
class Slot:
    pre_prepare: dict[str, Any] | None = None  # signed record
    prepares: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: defaultdict(dict))
    commits: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: defaultdict(dict))
    prepared: bool = False
    committed: bool = False


class PbftReplica:
    """One PBFT replica (a :class:`~relaygraph.coordination.network.Process`)."""

    def __init__(self, node: str, members: Sequence[str], keyring: Keyring, *, requests: Sequence[str],
                 f: int | None = None, validate: Callable[[str], bool] | None = None,
                 timeout: float = 60.0, coalition: Coalition | None = None) -> None:
        self.id = node
        self.members = tuple(members)
        self.n = len(self.members)
        self.f = check_size(self.n, f)
        self.keyring = keyring
        self.signer = keyring.signer(node)
        self.requests = list(dict.fromkeys(requests))
        self.valid_values = sorted(set(self.requests) | {NULL})
        self.validate = validate or (lambda value: value in self.valid_values)
        self.base_timeout = timeout
        self.coalition = coalition or Coalition()
        self.view = 0
        self.changing = False  # sent VIEW-CHANGE for self.view, waiting for NEW-VIEW
        self.attempts = 0
        self.slots: dict[tuple[int, int], Slot] = defaultdict(Slot)
        self.certs: dict[int, dict[str, Any]] = {}  # seq -> highest-view prepared certificate
        self.committed: dict[int, str] = {}
        self.executed: list[str] = []
        self.next_exec = 1
        self.next_seq = 1
        self.assigned: dict[str, int] = {}  # primary: value -> seq in this view
        self.view_changes: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.new_view_sent: set[int] = set()
        self.values: dict[str, str] = {}  # digest -> value seen
        self.seen_pre_prepares: dict[tuple[str, int, int], str] = {}  # (primary, v, s) -> digest
        self.suspects: dict[str, set[str]] = defaultdict(set)
        self.deferred: list[dict[str, Any]] = []  # pre-prepares for a view not entered yet
        self.proofs: dict[int, dict[str, Any]] = {}  # seq -> commit certificate (state transfer)
        self.helped: set[tuple[str, int]] = set()
        self.sent = 0

    # --- helpers -------------------------------------------------------------------------

    def primary(self, view: int) -> str:
        return self.members[view % self.n]

    def pending(self) -> list[str]:
        return [r for r in self.requests if r not in self.executed]

    def record(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        return {"src": self.id, "kind": kind, "body": body, "signature": self.signer.sign(kind, body)}

    def broadcast(self, ctx: Context, record: dict[str, Any]) -> None:
        for peer in self.members:
            if peer != self.id:
                self.sent += 1
                ctx.send(peer, record["kind"], record["body"], record["signature"])

    def authentic(self, record: Mapping[str, Any]) -> bool:
        return self.keyring.verify(record.get("src", ""), record.get("kind", ""), record.get("body"),
                                   record.get("signature", ""))

    def suspect(self, who: str, why: str) -> None:
        if who != self.id:
            self.suspects[who].add(why)

    # --- lifecycle -----------------------------------------------------------------------

    def start(self, ctx: Context) -> None:
        if self.primary(self.view) == self.id:
            self.propose_pending(ctx)
        self.arm(ctx)

    def arm(self, ctx: Context) -> None:
        """Backups (and the primary) wait for progress; silence past the timeout ⇒ view change."""
        if self.pending():
            ctx.set_timer(VIEW_TIMER, self.base_timeout * (2 ** min(self.attempts, 12)))
        else:
            ctx.cancel_timer(VIEW_TIMER)

    def on_timer(self, tag: str, ctx: Context) -> None:
        if tag == VIEW_TIMER and self.pending():
            if not self.changing:
                self.suspect(self.primary(self.view), f"no progress in view {self.view} before the timeout")
            self.start_view_change(self.view + 1, ctx)

    def on_message(self, message: Message, ctx: Context) -> None:
        record = {"src": message.src, "kind": message.kind, "body": dict(message.body),
                  "signature": message.signature}
        if not self.authentic(record):
            self.suspect(message.src, f"bad signature on {message.kind}")
            return
        handler = {"pre-prepare": self.on_pre_prepare, "prepare": self.on_prepare, "commit": self.on_commit,
                   "view-change": self.on_view_change, "new-view": self.on_new_view,
                   "commit-proof": self.on_commit_proof}.get(message.kind)
        if handler is not None:
            try:
                handler(record, ctx)
            except (KeyError, TypeError, ValueError) as exc:  # malformed body from a faulty peer
                self.suspect(message.src, f"malformed {message.kind}: {type(exc).__name__}")

    # --- normal case ---------------------------------------------------------------------

    def propose_pending(self, ctx: Context) -> None:
        for value in self.pending():
            if value in self.assigned:
                continue
            seq = self.next_seq
            self.next_seq += 1
            self.assigned[value] = seq
            self.issue_pre_prepare(seq, value, ctx)

    def issue_pre_prepare(self, seq: int, value: str, ctx: Context) -> None:
        body: dict[str, Any] = {"view": self.view, "seq": seq, "digest": digest(value), "value": value}
        record = self.record("pre-prepare", body)
        self.values[body["digest"]] = value
        self.accept_pre_prepare(record, ctx)
        self.broadcast(ctx, record)

    def check_equivocation(self, record: Mapping[str, Any]) -> bool:
        """Two signed pre-prepares from one primary for one (view, seq) prove it lied."""
        b = record["body"]
        key = (record["src"], int(b["view"]), int(b["seq"]))
        known = self.seen_pre_prepares.setdefault(key, b["digest"])
        if known != b["digest"]:
            self.suspect(record["src"], f"equivocated: two pre-prepares for view {b['view']} seq {b['seq']}")
            return True
        return False

    def on_pre_prepare(self, record: dict[str, Any], ctx: Context) -> None:
        b = record["body"]
        view, seq, value = int(b["view"]), int(b["seq"]), str(b["value"])
        if record["src"] != self.primary(view):
            self.suspect(record["src"], f"sent a pre-prepare for view {view} without being its primary")
            return
        if digest(value) != b["digest"]:
            self.suspect(record["src"], "pre-prepare digest does not match its value")
            return
        if self.check_equivocation(record):
            self.start_view_change(max(self.view, view) + 1, ctx)
            return
        if view > self.view or (view == self.view and self.changing):
            self.deferred.append(record)  # NEW-VIEW may still be on its way: keep it for then
            return
        if view != self.view or seq < 1:
            return
        if not self.validate(value):
            self.suspect(record["src"], f"proposed {shown(value)!r}, which this replica's own check rejects")
            return
        self.accept_pre_prepare(record, ctx)

    def accept_pre_prepare(self, record: dict[str, Any], ctx: Context) -> None:
        b = record["body"]
        view, seq = int(b["view"]), int(b["seq"])
        slot = self.slots[(view, seq)]
        if slot.pre_prepare is not None:
            return
        slot.pre_prepare = record
        self.values[b["digest"]] = b["value"]
        if self.id != self.primary(view):
            prepare = self.record("prepare", {"view": view, "seq": seq, "digest": b["digest"]})
            slot.prepares[b["digest"]][self.id] = prepare
            self.broadcast(ctx, prepare)
        self.check_prepared(view, seq, ctx)

    def on_prepare(self, record: dict[str, Any], ctx: Context) -> None:
        b = record["body"]
        view, seq = int(b["view"]), int(b["seq"])
        if record["src"] == self.primary(view):
            return  # the primary's pre-prepare stands for its prepare
        slot = self.slots[(view, seq)]
        for other, votes in slot.prepares.items():
            if other != b["digest"] and record["src"] in votes:
                self.suspect(record["src"], f"equivocated: two prepares for view {view} seq {seq}")
        slot.prepares[b["digest"]].setdefault(record["src"], record)
        self.check_prepared(view, seq, ctx)

    def check_prepared(self, view: int, seq: int, ctx: Context) -> None:
        slot = self.slots[(view, seq)]
        if slot.prepared or slot.pre_prepare is None or view != self.view or self.changing:
            return
        d = slot.pre_prepare["body"]["digest"]
        backups = {src: r for src, r in slot.prepares[d].items() if src != self.primary(view)}
        if len(backups) < 2 * self.f:
            return
        slot.prepared = True
        current = self.certs.get(seq)
        if current is None or current["view"] < view:
            self.certs[seq] = {"view": view, "seq": seq, "digest": d, "value": slot.pre_prepare["body"]["value"],
                               "pre_prepare": slot.pre_prepare,
                               "prepares": [backups[s] for s in sorted(backups)][: 2 * self.f]}
        commit = self.record("commit", {"view": view, "seq": seq, "digest": d})
        slot.commits[d][self.id] = commit
        self.broadcast(ctx, commit)
        self.check_committed(view, seq, ctx)

    def on_commit(self, record: dict[str, Any], ctx: Context) -> None:
        b = record["body"]
        view, seq = int(b["view"]), int(b["seq"])
        slot = self.slots[(view, seq)]
        slot.commits[b["digest"]].setdefault(record["src"], record)
        self.check_committed(view, seq, ctx)

    def check_committed(self, view: int, seq: int, ctx: Context) -> None:
        slot = self.slots[(view, seq)]
        if slot.committed or not slot.prepared:
            return
        assert slot.pre_prepare is not None  # a prepared slot has its pre-prepare
        d = slot.pre_prepare["body"]["digest"]
        if len(slot.commits[d]) < 2 * self.f + 1:
            return
        slot.committed = True
        value = slot.pre_prepare["body"]["value"]
        self.committed.setdefault(seq, value)
        self.proofs.setdefault(seq, {"view": view, "seq": seq, "value": value, "pre_prepare": slot.pre_prepare,
                                     "commits": [slot.commits[d][s] for s in sorted(slot.commits[d])]})
        self.execute(ctx)

    # --- state transfer: a replica that missed a commit learns it from a certificate -------

    def help_laggard(self, peer: str, view: int, ctx: Context) -> None:
        """A peer asking for a view change may have missed commits (messages lost before the
        network stabilised): send it our commit certificates — 2f+1 signed commits prove a
        value committed, so it can adopt them without trusting us."""
        if peer == self.id or not self.proofs or (peer, view) in self.helped:
            return
        self.helped.add((peer, view))
        body = {"proofs": [self.proofs[s] for s in sorted(self.proofs)]}
        self.sent += 1
        ctx.send(peer, "commit-proof", body, self.signer.sign("commit-proof", body))

    def valid_commit_proof(self, proof: Mapping[str, Any]) -> bool:
        view, seq, value = int(proof["view"]), int(proof["seq"]), proof["value"]
        pp = proof["pre_prepare"]
        d = digest(value)
        if not (self.authentic(pp) and pp["kind"] == "pre-prepare" and pp["src"] == self.primary(view)
                and (int(pp["body"]["view"]), int(pp["body"]["seq"]), pp["body"]["digest"]) == (view, seq, d)
                and pp["body"]["value"] == value):
            return False
        signers = {c["src"] for c in proof["commits"]
                   if self.authentic(c) and c["kind"] == "commit"
                   and (int(c["body"]["view"]), int(c["body"]["seq"]), c["body"]["digest"]) == (view, seq, d)}
        return len(signers) >= 2 * self.f + 1

    def on_commit_proof(self, record: dict[str, Any], ctx: Context) -> None:
        for proof in record["body"]["proofs"]:
            if not self.valid_commit_proof(proof):
                self.suspect(record["src"], "sent an invalid commit certificate")
                return
            seq = int(proof["seq"])
            if seq not in self.committed:
                self.committed[seq] = proof["value"]
                self.proofs[seq] = proof
        self.execute(ctx)

    def execute(self, ctx: Context) -> None:
        progressed = False
        while self.next_exec in self.committed:
            value = self.committed[self.next_exec]
            if value != NULL and value not in self.executed:
                self.executed.append(value)
                progressed = True
            self.next_exec += 1
        if progressed:
            self.attempts = 0
            self.arm(ctx)

    # --- view change ---------------------------------------------------------------------

    def start_view_change(self, new_view: int, ctx: Context) -> None:
        if new_view < self.view or (new_view == self.view and self.changing):
            return
        self.view, self.changing = new_view, True
        self.attempts += 1
        record = self.record("view-change", {"view": new_view, "prepared": [self.certs[s] for s in sorted(self.certs)]})
        self.view_changes[new_view][self.id] = record
        self.broadcast(ctx, record)
        self.arm(ctx)
        self.try_new_view(ctx)

    def valid_cert(self, cert: Mapping[str, Any]) -> bool:
        view, seq, d = int(cert["view"]), int(cert["seq"]), cert["digest"]
        pp = cert["pre_prepare"]
        if not (self.authentic(pp) and pp["kind"] == "pre-prepare" and pp["src"] == self.primary(view)):
            return False
        pb = pp["body"]
        if (int(pb["view"]), int(pb["seq"]), pb["digest"]) != (view, seq, d) or digest(pb["value"]) != d \
                or cert["value"] != pb["value"]:
            return False
        signers = set()
        for p in cert["prepares"]:
            pb = p["body"]
            if not (self.authentic(p) and p["kind"] == "prepare" and p["src"] != self.primary(view)
                    and (int(pb["view"]), int(pb["seq"]), pb["digest"]) == (view, seq, d)):
                return False
            signers.add(p["src"])
        self.check_equivocation(pp)
        return len(signers) >= 2 * self.f

    def on_view_change(self, record: dict[str, Any], ctx: Context) -> None:
        new_view = int(record["body"]["view"])
        if not all(self.valid_cert(c) for c in record["body"]["prepared"]):
            self.suspect(record["src"], "view change carries an invalid prepared certificate")
            return
        self.view_changes[new_view].setdefault(record["src"], record)
        self.help_laggard(record["src"], new_view, ctx)
        # f+1 replicas already moved past our view: at least one is honest, so follow them.
        ahead = sorted({v for v, msgs in self.view_changes.items() if v > self.view for _ in msgs})
        if ahead:
            senders = {s for v, msgs in self.view_changes.items() if v > self.view for s in msgs}
            if len(senders) >= self.f + 1:
                self.start_view_change(ahead[0], ctx)
        self.try_new_view(ctx)

    def new_view_proposals(self, view: int, changes: Sequence[Mapping[str, Any]]) -> dict[int, str]:
        """The values a NEW-VIEW must re-issue: per seq, the highest-view prepared one; gaps null."""
        best: dict[int, Mapping[str, Any]] = {}
        for vc in changes:
            for cert in vc["body"]["prepared"]:
                s = int(cert["seq"])
                if s not in best or int(cert["view"]) > int(best[s]["view"]):
                    best[s] = cert
        top = max(best, default=0)
        return {s: (best[s]["value"] if s in best else NULL) for s in range(1, top + 1)}

    def try_new_view(self, ctx: Context) -> None:
        view = self.view
        if not self.changing or self.primary(view) != self.id or view in self.new_view_sent:
            return
        changes = self.view_changes[view]
        if len(changes) < 2 * self.f + 1:
            return
        self.new_view_sent.add(view)
        chosen = [changes[s] for s in sorted(changes)][: 2 * self.f + 1]
        proposals = self.new_view_proposals(view, chosen)
        pre_prepares = [self.record("pre-prepare", {"view": view, "seq": s, "digest": digest(v), "value": v})
                        for s, v in sorted(proposals.items())]
        record = self.record("new-view", {"view": view, "view_changes": chosen, "pre_prepares": pre_prepares})
        self.broadcast(ctx, record)
        self.enter_view(view, proposals, pre_prepares, ctx)

    def on_new_view(self, record: dict[str, Any], ctx: Context) -> None:
        b = record["body"]
        view = int(b["view"])
        if view < self.view or (view == self.view and not self.changing) or record["src"] != self.primary(view):
            return
        changes = {vc["src"]: vc for vc in b["view_changes"]
                   if self.authentic(vc) and vc["kind"] == "view-change" and int(vc["body"]["view"]) == view
                   and all(self.valid_cert(c) for c in vc["body"]["prepared"])}
        proposals = self.new_view_proposals(view, list(changes.values()))
        issued = {int(p["body"]["seq"]): p for p in b["pre_prepares"]}
        ok = len(changes) >= 2 * self.f + 1 and set(issued) == set(proposals) and all(
            self.authentic(p) and p["src"] == record["src"] and p["kind"] == "pre-prepare"
            and int(p["body"]["view"]) == view and p["body"]["value"] == proposals[s]
            and p["body"]["digest"] == digest(proposals[s]) for s, p in issued.items())
        if not ok:
            self.suspect(record["src"], f"invalid new-view for view {view}")
            self.start_view_change(view + 1, ctx)
            return
        self.view = view
        self.enter_view(view, proposals, [issued[s] for s in sorted(issued)], ctx)

    def enter_view(self, view: int, proposals: Mapping[int, str], pre_prepares: Sequence[dict[str, Any]],
                   ctx: Context) -> None:
        self.changing = False
        self.assigned = {v: s for s, v in proposals.items() if v != NULL}
        self.next_seq = max(proposals, default=0) + 1
        for s in self.committed:  # never reuse a sequence number this replica saw committed
            self.next_seq = max(self.next_seq, s + 1)
        for record in pre_prepares:
            self.check_equivocation(record)
            self.accept_pre_prepare(record, ctx)
        waiting, self.deferred = self.deferred, [r for r in self.deferred if int(r["body"]["view"]) > view]
        for record in waiting:
            if int(record["body"]["view"]) == view:
                self.on_pre_prepare(record, ctx)
        for (v, s) in list(self.slots):
            if v == view:
                self.check_prepared(v, s, ctx)
                self.check_committed(v, s, ctx)
        if self.primary(view) == self.id:
            self.propose_pending(ctx)
        self.arm(ctx)

    # --- what a Byzantine replica sends instead ------------------------------------------

    def forge(self, message: Message, how: str, variant: int) -> Message | None:
        """The message this replica sends when it lies or equivocates (re-signed with its own
        key: it cannot sign as anyone else). ``variant`` 1 is the lie; equivocation tells
        variant 0 (the coalition's first value) to even-indexed peers and 1 to odd ones."""
        if message.kind not in ("pre-prepare", "prepare", "commit"):
            return message
        b = dict(message.body)
        key = (int(b["view"]), int(b["seq"]))
        value = b.get("value", self.values.get(b["digest"]))
        if value is None:
            return message
        if how == "lie":
            told = f"{LIE_MARK}{value}"
        else:
            first, second = self.coalition.pairs.setdefault(key, (value, self._alternative(value)))
            told = first if variant == 0 else second
        b["digest"] = digest(told)
        if "value" in b:
            b["value"] = told
        self.values.setdefault(b["digest"], told)
        return Message(message.src, message.dst, message.kind, b, self.signer.sign(message.kind, b))

    def _alternative(self, value: str) -> str:
        """Another value honest replicas would accept: the next valid one, cyclically."""
        options = self.valid_values
        if value not in options:
            return options[0]
        return options[(options.index(value) + 1) % len(options)]
