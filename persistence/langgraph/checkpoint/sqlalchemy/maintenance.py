"""Retention tooling behind ``relaygraph db stats`` and ``relaygraph db prune``.

Checkpoints accumulate forever unless something removes them; these functions report
what a database holds and remove what an operator chooses, through the saver's own
``prune`` so blob garbage collection and delta chains stay consistent.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlalchemy import migrations, schema
from langgraph.checkpoint.sqlalchemy.saver import SQLAlchemySaver
from langgraph.checkpoint.sqlalchemy.urls import redact

import sqlalchemy as sa

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION = timedelta(days=36525)  # a century


def parse_duration(text: str) -> timedelta:
    """``30m``, ``12h``, ``7d``, ``2w`` -> timedelta (raises ValueError saying the format)."""
    match = _DURATION.match(text or "")
    if not match:
        raise ValueError(
            f"invalid duration {text!r}: use a number and a unit, e.g. 30m, 12h, 7d or 2w"
        )
    seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    # Zero would select every thread; beyond a century the cutoff date is meaningless (and
    # past ~2.7 million years timedelta overflows): both are mistakes, not requests.
    if not 0 < seconds <= MAX_DURATION.total_seconds():
        raise ValueError(
            f"invalid duration {text!r}: it must be more than 0 and at most {MAX_DURATION.days} days"
        )
    return timedelta(seconds=seconds)


@dataclass
class DbStats:
    """What a checkpoint database holds (bytes are stored payload bytes)."""

    url: str
    backend: str
    schema_version: int
    threads: int
    checkpoints: int
    writes: int
    blobs: int
    bytes: int
    checkpoint_bytes: int
    blob_bytes: int
    write_bytes: int
    file_bytes: int | None
    oldest: float | None  # epoch seconds of the oldest / newest checkpoint
    newest: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PruneResult:
    """What a prune did (or, with ``dry_run``, would do)."""

    threads_deleted: list[str]
    threads_compacted: list[str]
    checkpoints_before: int
    checkpoints_after: int
    bytes_before: int
    bytes_after: int
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sum_length(conn: sa.Connection, column: sa.Column, *where: Any) -> int:
    stmt = sa.select(sa.func.coalesce(sa.func.sum(sa.func.length(column)), 0)).where(*where)
    return int(conn.execute(stmt).scalar() or 0)


def _count(conn: sa.Connection, stmt: sa.Select) -> int:
    return int(conn.execute(stmt).scalar() or 0)


def collect_stats(saver: SQLAlchemySaver) -> DbStats:
    """Counts and sizes, read in one transaction (no schema is created)."""
    engine = saver.engine
    with engine.connect() as conn:
        version = migrations.current_version(conn)
        migrations.check_version(version)
        file_bytes = None
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            path = Path(engine.url.database)
            file_bytes = sum(
                p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists()
            )
        if version == 0:
            return DbStats(redact(engine.url), engine.dialect.name, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                           file_bytes, None, None)
        cp, bl, wr, ch = schema.checkpoints, schema.blobs, schema.writes, schema.chunks
        threads = _count(conn, sa.select(sa.func.count(sa.distinct(cp.c.thread_id))))
        checkpoints = _count(conn, sa.select(sa.func.count()).select_from(cp))
        writes = _count(conn, sa.select(sa.func.count()).select_from(wr))
        blobs = _count(conn, sa.select(sa.func.count()).select_from(bl))
        cp_bytes = _sum_length(conn, cp.c.checkpoint)
        # Large values live in chunks (schema v3): count them with their owners.
        chunked = version >= 3
        blob_bytes = _sum_length(conn, bl.c.blob) + (
            _sum_length(conn, ch.c.data, ch.c.kind == "b") if chunked else 0)
        write_bytes = _sum_length(conn, wr.c.blob) + (
            _sum_length(conn, ch.c.data, ch.c.kind == "w") if chunked else 0)
        oldest, newest = conn.execute(
            sa.select(sa.func.min(cp.c.created_at), sa.func.max(cp.c.created_at))
        ).one()
    return DbStats(
        url=redact(engine.url),
        backend=engine.dialect.name,
        schema_version=version,
        threads=threads,
        checkpoints=checkpoints,
        writes=writes,
        blobs=blobs,
        bytes=cp_bytes + blob_bytes + write_bytes,
        checkpoint_bytes=cp_bytes,
        blob_bytes=blob_bytes,
        write_bytes=write_bytes,
        file_bytes=file_bytes,
        oldest=oldest / 1000 if oldest is not None else None,
        newest=newest / 1000 if newest is not None else None,
    )


def idle_threads(saver: SQLAlchemySaver, older_than: timedelta) -> list[str]:
    """Threads whose latest checkpoint is older than ``older_than``."""
    cutoff_ms = int((time.time() - older_than.total_seconds()) * 1000)
    with saver.engine.connect() as conn:
        rows = conn.execute(schema.SELECT_THREAD_ACTIVITY).all()
    return sorted(r.thread_id for r in rows if r.last_at is not None and r.last_at < cutoff_ms)


def all_threads(saver: SQLAlchemySaver) -> list[str]:
    with saver.engine.connect() as conn:
        return sorted(r.thread_id for r in conn.execute(schema.SELECT_THREAD_IDS))


def prune(
    saver: SQLAlchemySaver,
    *,
    keep_latest: bool = False,
    older_than: timedelta | None = None,
    dry_run: bool = False,
) -> PruneResult:
    """Apply a retention policy.

    * ``older_than`` alone: delete threads idle for longer than that.
    * ``keep_latest`` alone: keep only each thread's latest checkpoint per namespace.
    * both: compact (keep_latest) only the threads idle for longer than ``older_than``,
      so they stay resumable but small.
    """
    if not keep_latest and older_than is None:
        raise ValueError("choose what to prune: --keep-latest and/or --older-than DURATION")
    before = collect_stats(saver)
    if before.schema_version == 0:
        return PruneResult([], [], 0, 0, 0, 0, dry_run)
    targets = idle_threads(saver, older_than) if older_than is not None else all_threads(saver)
    deleted = [] if keep_latest else targets
    compacted = targets if keep_latest else []
    if not dry_run:
        if deleted:
            saver.prune(deleted, strategy="delete")
        if compacted:
            saver.prune(compacted, strategy="keep_latest")
    after = before if dry_run else collect_stats(saver)
    return PruneResult(
        threads_deleted=deleted,
        threads_compacted=compacted,
        checkpoints_before=before.checkpoints,
        checkpoints_after=after.checkpoints,
        bytes_before=before.bytes,
        bytes_after=after.bytes,
        dry_run=dry_run,
    )
