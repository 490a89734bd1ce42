"""The experience store: one row per finished planned run, in the checkpoint database.

Its table is created and upgraded through the saver's named migration sets
(:data:`EXPERIENCE_MIGRATIONS`, version table ``relaygraph_experience_migrations``), so it
follows the checkpoints to any database the saver supports. Each store (one per task type by
default) is bounded: when it passes 1,000 rows it is trimmed to the newest 800. A run is
recorded once per thread (a resumed run replaces its earlier row).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from langgraph.checkpoint.sqlalchemy import MigrationSet, create_tables
from langgraph.checkpoint.sqlalchemy.engines import make_engine
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

_engines: dict[str, sa.Engine] = {}
_lock = threading.Lock()


def _engine(url: str) -> sa.Engine:
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = make_engine(url)
            EXPERIENCE_MIGRATIONS.apply(engine)
            _engines[url] = engine
        return engine


@contextmanager
def _begin(url: str) -> Iterator[sa.Connection]:
    with _engine(url).begin() as conn:
        yield conn


def record(url: str, experience: Experience, *, store: str | None = None) -> int:
    """Save one run's experience (replacing the thread's earlier row); returns the store's size."""
    name = store or experience.task_type
    experience = experience.model_copy(update={"recorded_at": experience.recorded_at or time.time()})
    with _begin(url) as conn:
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


def load(url: str, store: str) -> list[Experience]:
    """A store's experiences, oldest first."""
    with _begin(url) as conn:
        rows = conn.execute(sa.select(experiences.c.record).where(experiences.c.store == store)
                            .order_by(experiences.c.recorded_at, experiences.c.id)).all()
    return [Experience.model_validate_json(r[0]) for r in rows]


def stores(url: str) -> dict[str, int]:
    with _begin(url) as conn:
        rows = conn.execute(sa.select(experiences.c.store, sa.func.count()).group_by(experiences.c.store)).all()
    return {r[0]: int(r[1]) for r in rows}
