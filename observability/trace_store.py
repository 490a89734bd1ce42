"""Span storage: each run's spans persisted next to its checkpoints, for later inspection.

    TracerProvider ─► BatchSpanProcessor ─► SpanStoreExporter ─► relaygraph_spans (checkpoint DB)
                                                                        │
    relaygraph traces show/export THREAD ◄─ load_spans(url, thread) ◄───┘

One SQLAlchemy Core table in the same database as the checkpoints (settings.checkpoint_db /
``--checkpoint-db``), with its own engine so it depends on nothing of ``persistence/``. Spans
are found by thread: a run's root and node spans carry ``relaygraph.thread_id``; every span of
those traces (agents, LLM and tool calls) belongs to the thread. Writes happen on the batch
processor's thread, off the run's path; SQLite gets WAL and a busy timeout so they never fight
the checkpointer's writes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import format_span_id, format_trace_id
from pydantic import BaseModel, Field
from relaygraph.observability.telemetry import THREAD_ID
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    insert,
    select,
)

metadata = MetaData()

spans_table = Table(
    "relaygraph_spans",
    metadata,
    Column("trace_id", String(32), primary_key=True),
    Column("span_id", String(16), primary_key=True),
    Column("parent_span_id", String(16), nullable=True),
    Column("thread_id", String(255), nullable=True),
    Column("name", String(512), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("start_ns", BigInteger, nullable=False),
    Column("end_ns", BigInteger, nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("status_message", Text, nullable=True),
    Column("attributes", Text, nullable=False),
    Column("events", Text, nullable=False),
    Column("service_name", String(255), nullable=False),
    Column("scope", String(255), nullable=False),
    Index("ix_relaygraph_spans_thread", "thread_id"),
)


class StoredSpan(BaseModel):
    """A finished span as kept in the database and read back by the exporters."""

    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    thread_id: str | None = None
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status_code: int = 0  # 0 unset, 1 ok, 2 error (OTLP numbering)
    status_message: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    events: list[dict[str, Any]] = Field(default_factory=list)
    service_name: str = "relaygraph"
    scope: str = "relaygraph"

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def sqlalchemy_url(url: str) -> str:
    """Pick the drivers relaygraph installs (psycopg 3, PyMySQL) for bare backend URLs."""
    for prefix, driver in (("postgres://", "postgresql+psycopg://"), ("postgresql://", "postgresql+psycopg://"),
                           ("mysql://", "mysql+pymysql://"), ("mariadb://", "mariadb+pymysql://")):
        if url.startswith(prefix):
            return driver + url[len(prefix):]
    return url


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def engine_for(url: str) -> Engine:
    """One engine per database (created with its table on first use)."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = create_engine(sqlalchemy_url(url), pool_pre_ping=True)
            if engine.dialect.name == "sqlite":
                event.listen(engine, "connect", _sqlite_pragmas)
            metadata.create_all(engine, checkfirst=True)
            _engines[url] = engine
        return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def dispose_engines() -> None:
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def _row(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    attributes = dict(span.attributes or {})
    thread = attributes.get(THREAD_ID)
    return {
        "trace_id": format_trace_id(context.trace_id),
        "span_id": format_span_id(context.span_id),
        "parent_span_id": format_span_id(span.parent.span_id) if span.parent else None,
        "thread_id": str(thread) if thread is not None else None,
        "name": span.name[:512],
        "kind": span.kind.name,
        "start_ns": span.start_time or 0,
        "end_ns": span.end_time or span.start_time or 0,
        "status_code": span.status.status_code.value,
        "status_message": span.status.description,
        "attributes": json.dumps(attributes, default=_jsonable),
        "events": json.dumps([{"name": e.name, "time_ns": e.timestamp, "attributes": dict(e.attributes or {})}
                              for e in span.events], default=_jsonable),
        "service_name": str(span.resource.attributes.get("service.name", "relaygraph")),
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else "relaygraph",
    }


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else str(value)


class SpanStoreExporter(SpanExporter):
    """Writes finished spans into ``relaygraph_spans`` (use behind a BatchSpanProcessor)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        try:
            self._engine = self._engine or engine_for(self.url)
            with self._engine.begin() as conn:
                conn.execute(insert(spans_table), [_row(s) for s in spans])
        except Exception as exc:  # noqa: BLE001 - tracing must never break a run
            import logging

            logging.getLogger(__name__).warning("could not store %d spans in %s: %s", len(spans), self.url, exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._engine = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def load_spans(url: str, thread_id: str, *, trace_id: str | None = None) -> list[StoredSpan]:
    """Every span of every run on ``thread_id`` (or of one trace), oldest first."""
    engine = engine_for(url)
    traces = select(spans_table.c.trace_id).where(spans_table.c.thread_id == thread_id).distinct()
    query = select(spans_table).where(spans_table.c.trace_id.in_(traces))
    if trace_id is not None:
        query = query.where(spans_table.c.trace_id == trace_id)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(spans_table.c.start_ns)).mappings().all()
    return [StoredSpan(**{**row, "attributes": json.loads(row["attributes"]), "events": json.loads(row["events"])})
            for row in rows]


def thread_ids(url: str) -> list[str]:
    """Threads with stored spans (for error messages that say what exists)."""
    with engine_for(url).connect() as conn:
        rows = conn.execute(select(spans_table.c.thread_id).where(spans_table.c.thread_id.is_not(None))
                            .distinct()).scalars().all()
    return sorted(rows)
