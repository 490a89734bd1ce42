"""The experience store: one row per finished planned run, in the checkpoint database.

Its table is created and upgraded through the saver's named migration sets
(:data:`EXPERIENCE_MIGRATIONS`, version table ``relaygraph_experience_migrations``), so it
follows the checkpoints to any database the saver supports. Each store (one per task type by
default) is bounded: when it passes 1,000 rows it is trimmed to the newest 800. A run is
recorded once per thread (a resumed run replaces its earlier row), so a write retried after a
lost connection (:meth:`~relaygraph.config.stores.SideTables.transaction`), even one lost at a
COMMIT that went through, leaves one row too.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
import sqlalchemy.ext.asyncio
from langgraph.checkpoint.sqlalchemy import MigrationSet, create_tables
from langgraph.constants import CONFIG_KEY_CHECKPOINTER
from relaygraph.config.stores import SideTables
from relaygraph.coordination.experience import STORE_KEEP, STORE_LIMIT, Experience

metadata = sa.MetaData()
experiences = sa.Table(
    "relaygraph_experiences", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("store", sa.String(128), nullable=False),
    sa.Column("thread_id", sa.String(255), nullable=False),
    sa.Column("task_type", sa.String(128), nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("recorded_at", sa.Float, nullable=False),
    sa.Column("record", sa.Text, nullable=False),  # the Experience as JSON
    sa.Index("ix_relaygraph_experiences_store", "store", "recorded_at"),
    sa.UniqueConstraint("store", "thread_id", name="uq_relaygraph_experiences_thread"),
)

EXPERIENCE_MIGRATIONS = MigrationSet("relaygraph_experience", [create_tables(experiences)])

_TABLES = SideTables(EXPERIENCE_MIGRATIONS)
engine_for = _TABLES.engine


def record(url: Any, experience: Experience, *, store: str | None = None) -> int:
    """Save one run's experience (replacing the thread's earlier row); returns the store's size.
    ``url``: a database URL or the run's saver (see :func:`store_for`)."""
    name = store or experience.task_type
    experience = experience.model_copy(update={"recorded_at": experience.recorded_at or time.time()})

    def replace(conn: sa.Connection) -> int:
        conn.execute(experiences.delete().where(experiences.c.store == name,
                                                experiences.c.thread_id == experience.thread_id))
        conn.execute(experiences.insert(), {
            "store": name, "thread_id": experience.thread_id, "task_type": experience.task_type,
            "outcome": experience.outcome, "recorded_at": experience.recorded_at,
            "record": experience.model_dump_json()})
        size = conn.execute(sa.select(sa.func.count()).where(experiences.c.store == name)).scalar_one()
        if size > STORE_LIMIT:
            keep = (sa.select(experiences.c.id).where(experiences.c.store == name)
                    .order_by(experiences.c.recorded_at.desc(), experiences.c.id.desc()).limit(STORE_KEEP))
            kept = [row[0] for row in conn.execute(keep)]
            conn.execute(experiences.delete().where(experiences.c.store == name, experiences.c.id.not_in(kept)))
            size = len(kept)
        return int(size)

    return _TABLES.transaction(url, "an experience-store write", replace)


def load(url: Any, store: str) -> list[Experience]:
    """A store's experiences, oldest first."""
    query = (sa.select(experiences.c.record).where(experiences.c.store == store)
             .order_by(experiences.c.recorded_at, experiences.c.id))
    rows = _TABLES.read(url, "an experience-store read", lambda conn: conn.execute(query).all())
    return [Experience.model_validate_json(r[0]) for r in rows]


def clear(url: Any, store: str | None = None) -> int:
    """Delete a store's experiences (``None``: every store's); returns how many were removed."""
    query = experiences.delete()
    if store is not None:
        query = query.where(experiences.c.store == store)
    return _TABLES.transaction(url, "an experience-store reset", lambda conn: int(conn.execute(query).rowcount))


def stores(url: Any) -> dict[str, int]:
    query = sa.select(experiences.c.store, sa.func.count()).group_by(experiences.c.store)
    rows = _TABLES.read(url, "an experience-store read", lambda conn: conn.execute(query).all())
    return {r[0]: int(r[1]) for r in rows}


def store_for(config: Any, default_url: str) -> Any:
    """Where a run's experiences live: the database of the run's own checkpointer (so runs on
    different ``--checkpoint-db`` databases never learn from each other), else ``default_url``
    (an in-memory or absent checkpointer)."""
    saver = ((config or {}).get("configurable") or {}).get(CONFIG_KEY_CHECKPOINTER)
    engine = getattr(saver, "engine", None)
    return saver if isinstance(engine, sa.Engine | sa.ext.asyncio.AsyncEngine) else default_url
