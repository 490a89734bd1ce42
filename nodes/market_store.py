"""Market and conflict history, kept in the run's checkpoint database.

Three tables, created and upgraded through the saver's named migration sets
(``relaygraph_markets_migrations`` holds their version):

* ``relaygraph_auctions`` — one row per auction round of a task: format, outcome, winner,
  price, every bid, how long the round took, and its settlement (paid, which breach, or unverified);
* ``relaygraph_reputation`` — each agent's reputation after its latest contract, so a breach
  in one run still counts at the next run's eligibility and ties;
* ``relaygraph_resolutions`` — one row per resolved conflict: its features bucket, the
  strategy and why, whether it resolved — what :class:`StrategySelector` learns from.

Writes are idempotent per (thread, task, round) and (thread, conflict): a node that runs again
after a crash records its round once, and so does a write retried after a lost connection
(:meth:`~relaygraph.config.stores.SideTables.transaction` runs the whole transaction again — also
after a connection lost at COMMIT, which may have committed). A row is inserted only when its
key is missing; a winner's reputation moves in the same transaction as its auction row and only
when that row is new, so a contract is counted once however often its settlement is written.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from langgraph.checkpoint.sqlalchemy import MigrationSet, create_tables
from relaygraph.config.stores import SideTables

metadata = sa.MetaData()

auctions = sa.Table(
    "relaygraph_auctions", metadata,
    sa.Column("thread_id", sa.String(255), primary_key=True),
    sa.Column("task_id", sa.String(100), primary_key=True),
    sa.Column("round", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("outcome", sa.String(40), nullable=False),
    sa.Column("winner", sa.String(100)),
    sa.Column("price", sa.Float),
    sa.Column("bids", sa.Text, nullable=False),  # JSON {bidder: cost}
    sa.Column("duration_s", sa.Float, nullable=False),
    sa.Column("settlement", sa.String(20)),  # paid | breach | unverified | None (not awarded)
    sa.Column("breach", sa.String(20)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

reputation = sa.Table(
    "relaygraph_reputation", metadata,
    sa.Column("agent", sa.String(100), primary_key=True),
    sa.Column("reputation", sa.Float, nullable=False),
    sa.Column("contracts", sa.Integer, nullable=False),
    sa.Column("breaches", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

resolutions = sa.Table(
    "relaygraph_resolutions", metadata,
    sa.Column("thread_id", sa.String(255), primary_key=True),
    sa.Column("conflict_id", sa.String(100), primary_key=True),
    sa.Column("topic", sa.String(200), nullable=False),
    sa.Column("bucket", sa.String(100), nullable=False, index=True),
    sa.Column("strategy", sa.String(20), nullable=False),
    sa.Column("resolved", sa.Boolean, nullable=False),
    sa.Column("rounds", sa.Integer, nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),  # JSON: value, reason
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

MARKETS = MigrationSet("relaygraph_markets", [create_tables(auctions, reputation, resolutions)])

_TABLES = SideTables(MARKETS)
engine_for = _TABLES.engine


def _now() -> datetime:
    return datetime.now(UTC)


def _insert_once(conn: sa.Connection, table: sa.Table, row: dict[str, Any]) -> bool:
    """Insert ``row`` unless its primary key is there (False): safe to run again. Check-first,
    not a dialect's upsert: the run's lease keeps two writers of one thread's keys apart."""
    keys = [c.name for c in table.primary_key.columns]
    exists = conn.execute(sa.select(sa.literal(1)).select_from(table)
                          .where(*[table.c[k] == row[k] for k in keys])).first()
    if exists:
        return False
    conn.execute(table.insert().values(**row))
    return True


def record_auction(target: Any, *, thread_id: str, task_id: str, round: int, kind: str, outcome: str,
                   winner: str | None, price: float | None, bids: dict[str, float], duration_s: float,
                   settlement: str | None, breach: str | None, reputation_after: float | None = None,
                   counted_breach: bool = False) -> bool:
    """One auction round; False when this (thread, task, round) was already recorded.

    With ``reputation_after`` (a settled contract), the winner's stored reputation becomes it
    and its contract count (and breach count, when ``counted_breach``) goes up by one — only
    when the round's row is new, in the same transaction: a settlement written again (a re-run
    node, a retry after a lost connection, even one whose COMMIT had gone through) counts once.
    A retry after such a COMMIT returns False: the round was recorded, by the first attempt."""
    row = {"thread_id": thread_id, "task_id": task_id, "round": round, "kind": kind, "outcome": outcome,
           "winner": winner, "price": price, "bids": json.dumps(bids, sort_keys=True), "duration_s": duration_s,
           "settlement": settlement, "breach": breach, "created_at": _now()}

    def settle(conn: sa.Connection) -> bool:
        if not _insert_once(conn, auctions, row):
            return False
        if reputation_after is not None and winner is not None:
            _apply_reputation(conn, winner, reputation_after, breach=counted_breach)
        return True

    return _TABLES.transaction(target, "a market-history write", settle)


def _apply_reputation(conn: sa.Connection, agent: str, value: float, *, breach: bool) -> None:
    """One more contract for ``agent``: not idempotent on its own — run it only in the
    transaction that records the contract's auction row (``record_auction``)."""
    row = conn.execute(sa.select(reputation).where(reputation.c.agent == agent)).mappings().first()
    if row is None:
        conn.execute(reputation.insert().values(agent=agent, reputation=value, contracts=1,
                                                breaches=int(breach), updated_at=_now()))
    else:
        conn.execute(reputation.update().where(reputation.c.agent == agent).values(
            reputation=value, contracts=row["contracts"] + 1, breaches=row["breaches"] + int(breach),
            updated_at=_now()))


def load_reputation(target: Any, agents: list[str]) -> dict[str, float]:
    query = sa.select(reputation.c.agent, reputation.c.reputation).where(reputation.c.agent.in_(agents))
    rows = _TABLES.read(target, "a reputation read", lambda conn: conn.execute(query).all())
    return {agent: value for agent, value in rows}


def reputation_records(target: Any) -> dict[str, dict[str, Any]]:
    """Every stored reputation: agent -> reputation, contracts, breaches, updated_at."""
    return _TABLES.read(target, "a reputation read", lambda conn: {
        r["agent"]: {k: r[k] for k in ("reputation", "contracts", "breaches", "updated_at")}
        for r in conn.execute(sa.select(reputation)).mappings()})


def reset_reputation(target: Any, agents: list[str] | None = None) -> list[str]:
    """Forget the stored reputation of ``agents`` (all when None): they start again at the
    default. Returns the agents whose record was removed — also when the connection was lost
    at COMMIT after removing them and the retry found nothing left to remove."""
    removed: set[str] = set()  # by any attempt: one that rolled back leaves its rows to the next

    def reset(conn: sa.Connection) -> None:
        query = sa.select(reputation.c.agent)
        if agents is not None:
            query = query.where(reputation.c.agent.in_(agents))
        names = list(conn.execute(query).scalars())
        if names:
            conn.execute(reputation.delete().where(reputation.c.agent.in_(names)))
        removed.update(names)

    _TABLES.transaction(target, "a reputation reset", reset)
    return sorted(removed)


def auction_history(target: Any, thread_id: str | None = None) -> list[dict[str, Any]]:
    query = sa.select(auctions).order_by(auctions.c.created_at, auctions.c.task_id, auctions.c.round)
    if thread_id is not None:
        query = query.where(auctions.c.thread_id == thread_id)
    return _TABLES.read(target, "a market-history read", lambda conn: [
        dict(r) | {"bids": json.loads(r["bids"])} for r in conn.execute(query).mappings()])


def record_resolution(target: Any, *, thread_id: str, conflict_id: str, topic: str, bucket: str, strategy: str,
                      resolved: bool, rounds: int, outcome: dict[str, Any]) -> bool:
    """One resolved conflict; False when this (thread, conflict) was already recorded (also by
    the first attempt of a write retried after a connection lost at COMMIT)."""
    row = {"thread_id": thread_id, "conflict_id": conflict_id, "topic": topic, "bucket": bucket,
           "strategy": strategy, "resolved": resolved, "rounds": rounds,
           "outcome": json.dumps(outcome, default=str), "created_at": _now()}
    return _TABLES.transaction(target, "a conflict-history write", lambda conn: _insert_once(conn, resolutions, row))


def resolution_history(target: Any) -> list[dict[str, Any]]:
    query = sa.select(resolutions).order_by(resolutions.c.created_at)
    return _TABLES.read(target, "a conflict-history read", lambda conn: [
        dict(r) | {"outcome": json.loads(r["outcome"])} for r in conn.execute(query).mappings()])
