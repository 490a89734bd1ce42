"""Voters' track records across consensus runs, kept in the run's checkpoint database.

One table, created and upgraded through the saver's named migration sets
(:data:`CONSENSUS_MIGRATIONS`, version table ``relaygraph_consensus_migrations``), so it
follows the checkpoints to any database the saver supports:

* ``relaygraph_voter_records`` — one row per (thread, voter) of a finished consensus run: the
  voter's choice, the decision, whether its ballot was on the decided side, whether the
  protocol flagged it as a suspect, and what that run adds to its track record
  (``agreed``/``counted``, see :func:`relaygraph.coordination.voting.run_record`).

A voter's reputation is the sum of its rows (:func:`load_records`), read when a run plans
and written when it finalizes. Writes replace the thread's rows, so a run that finalizes
again after a crash (or a resume) counts once — and so does a write retried after a lost
connection (:meth:`~relaygraph.config.stores.SideTables.transaction`), even one lost at COMMIT
that had committed. The store is per database: a fresh checkpoint database starts every voter
at the neutral score.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from langgraph.checkpoint.sqlalchemy import MigrationSet, create_tables
from relaygraph.config.stores import SideTables

metadata = sa.MetaData()

voter_records = sa.Table(
    "relaygraph_voter_records", metadata,
    sa.Column("thread_id", sa.String(255), primary_key=True),
    sa.Column("voter", sa.String(100), primary_key=True),
    sa.Column("mode", sa.String(20), nullable=False),
    sa.Column("question", sa.String(100), nullable=False),
    sa.Column("choice", sa.String(255)),  # None: cast no ballot
    sa.Column("decision", sa.String(255)),  # None: the protocol did not decide
    sa.Column("suspected", sa.Boolean, nullable=False),
    sa.Column("agreed", sa.Integer, nullable=False),
    sa.Column("counted", sa.Integer, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)

CONSENSUS_MIGRATIONS = MigrationSet("relaygraph_consensus", [create_tables(voter_records)])

_TABLES = SideTables(CONSENSUS_MIGRATIONS)
engine_for = _TABLES.engine


def load_records(target: Any, voters: list[str]) -> dict[str, tuple[int, int]]:
    """Per voter with any history: (agreed, counted) summed over every recorded run."""
    query = (sa.select(voter_records.c.voter, sa.func.sum(voter_records.c.agreed), sa.func.sum(voter_records.c.counted))
             .where(voter_records.c.voter.in_(voters)).group_by(voter_records.c.voter))
    return _TABLES.read(target, "a voter-record read", lambda conn: {
        voter: (int(agreed), int(counted)) for voter, agreed, counted in conn.execute(query)})


def record_run(target: Any, *, thread_id: str, mode: str, question: str, decision: str | None,
               voters: Mapping[str, Mapping[str, Any]]) -> None:
    """Replace the thread's rows with this run's (``voters``: voter -> choice, suspected,
    agreed, counted)."""
    now = datetime.now(UTC)
    rows = [{"thread_id": thread_id, "voter": voter, "mode": mode, "question": question, "decision": decision,
             "choice": row.get("choice"), "suspected": bool(row["suspected"]), "agreed": int(row["agreed"]),
             "counted": int(row["counted"]), "recorded_at": now} for voter, row in voters.items()]

    def replace(conn: sa.Connection) -> None:
        conn.execute(voter_records.delete().where(voter_records.c.thread_id == thread_id))
        if rows:
            conn.execute(voter_records.insert(), rows)

    _TABLES.transaction(target, "a voter-record write", replace)


def history(target: Any, voter: str | None = None) -> list[dict[str, Any]]:
    """The recorded rows, oldest first (all voters, or one)."""
    query = sa.select(voter_records).order_by(voter_records.c.recorded_at, voter_records.c.thread_id,
                                              voter_records.c.voter)
    if voter is not None:
        query = query.where(voter_records.c.voter == voter)
    return _TABLES.read(target, "a voter-record read", lambda conn: [dict(r) for r in conn.execute(query).mappings()])
