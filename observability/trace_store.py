"""Span storage: each run's spans persisted next to its checkpoints, for later inspection.

    TracerProvider ─► BatchSpanProcessor ─► SpanStoreExporter ─► relaygraph_spans (checkpoint DB)
                                                                        │
    relaygraph traces show/export THREAD ◄─ load_spans(url, thread) ◄───┘

One SQLAlchemy Core table in the same database as the checkpoints (settings.checkpoint_db /
``--checkpoint-db``). It goes through the saver's own machinery: its URL handling and
engines (driver choice, SQLite WAL and busy timeout, BEGIN IMMEDIATE writes behind the same
in-process lock as the saver's commits) and its migrations (the named set ``relaygraph_spans``,
version table ``relaygraph_spans_migrations``). Spans are found by thread: a run's root and
node spans carry ``relaygraph.thread_id``; every span of those traces (agents, LLM and tool
calls) belongs to the thread. Writes happen on the batch processor's thread, off the run's path,
and at each checkpoint commit on the saver's writing thread (``tracing.checkpoint_committed``:
stored spans are as durable as checkpoints). A killed run's root span, never ended, is stored
later as a stand-in (:func:`store_stand_in`, from ``tracing.store_killed_root`` on resume).

A lost connection is retried like every store beside the checkpoints
(:class:`~relaygraph.config.stores.SideTables`: the saver's ``RetryPolicy``, bound
``RELAYGRAPH_DB_RECONNECT_S``, per outage). A batch is inserted only where its spans are not
stored yet (one INSERT that skips stored keys: it runs at every commit), so a retry after a
connection lost at a COMMIT that went through stores each span once. Past the bound a batch is
dropped with a warning (tracing never stops a run; the run's own writes stop it); reads
(``relaygraph traces``) raise ``ConnectionLostError``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from functools import cache
from typing import Any

import sqlalchemy as sa
from langgraph.checkpoint.sqlalchemy import MigrationSet, RetryPolicy, create_tables, schema
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import format_span_id, format_trace_id
from pydantic import BaseModel, Field
from relaygraph.config.stores import SideTables, retry_policy
from relaygraph.observability.semconv import THREAD_ID
from sqlalchemy.schema import SchemaItem

logger = logging.getLogger(__name__)


def _columns() -> list[SchemaItem]:
    return [
        sa.Column("trace_id", sa.String(32), primary_key=True),
        sa.Column("span_id", sa.String(16), primary_key=True),
        sa.Column("parent_span_id", sa.String(16), nullable=True),
        sa.Column("thread_id", sa.String(255), nullable=True),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("start_ns", sa.BigInteger, nullable=False),
        sa.Column("end_ns", sa.BigInteger, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("status_message", sa.Text, nullable=True),
        sa.Column("attributes", sa.Text, nullable=False),
        sa.Column("events", sa.Text, nullable=False),
        sa.Column("service_name", sa.String(255), nullable=False),
        sa.Column("scope", sa.String(255), nullable=False),
        sa.Index("ix_relaygraph_spans_thread", "thread_id"),
    ]


# Version 1 as it was first created (before migrations existed: databases may hold it already).
_spans_v1 = sa.Table("relaygraph_spans", sa.MetaData(), *_columns())

#: The table as this code reads and writes it.
spans_table = sa.Table("relaygraph_spans", sa.MetaData(), *_columns(),
                       sa.Column("resource", sa.Text, nullable=True),  # v2: resource attributes as JSON
                       sa.Column("links", sa.Text, nullable=True))  # v3: span links as JSON


def _v2_resource(conn: sa.Connection) -> None:
    conn.execute(sa.text("ALTER TABLE relaygraph_spans ADD COLUMN resource TEXT"))


def _v3_links(conn: sa.Connection) -> None:
    conn.execute(sa.text("ALTER TABLE relaygraph_spans ADD COLUMN links TEXT"))


SPANS = MigrationSet("relaygraph_spans", [create_tables(_spans_v1), _v2_resource, _v3_links])


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
    resource: dict[str, Any] = Field(default_factory=dict)
    #: OpenTelemetry links: ``{"trace_id", "span_id", "attributes"}`` (a resumed run's root
    #: links to the root of the run it continues).
    links: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


_TABLES = SideTables(SPANS)


def engine_for(url: str) -> sa.Engine:
    """One engine per database, made by the saver's ``make_engine``; the span tables are
    migrated on first use."""
    return _TABLES.engine(url)


def dispose_engines() -> None:
    _TABLES.dispose()


def _row(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    if context is None:  # a ReadableSpan built by hand: no ids to key it by (export logs it)
        raise ValueError(f"span {span.name!r} has no span context")
    attributes = dict(span.attributes or {})
    thread = attributes.get(THREAD_ID)
    resource = dict(span.resource.attributes)
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
        "service_name": str(resource.get("service.name", "relaygraph")),
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else "relaygraph",
        "resource": json.dumps(resource, default=_jsonable),
        "links": json.dumps([{"trace_id": format_trace_id(link.context.trace_id),
                              "span_id": format_span_id(link.context.span_id),
                              "attributes": dict(link.attributes or {})} for link in span.links],
                            default=_jsonable) if span.links else None,
    }


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else str(value)


def _insert_missing(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Insert the spans not stored yet: running it again (a retried batch) stores nothing twice.
    One statement for the batch (the dialect's insert that skips a stored key), not a read of
    the stored keys first: it runs at every checkpoint commit."""
    conn.execute(_insert_for(conn.dialect.name), rows)


@cache
def _insert_for(dialect: str) -> sa.Executable:
    return schema.insert_if_missing(spans_table, dialect)


class SpanStoreExporter(SpanExporter):
    """Writes finished spans into ``relaygraph_spans`` (use behind a BatchSpanProcessor).

    ``retry``: how long a lost connection is retried (default: :func:`retry_policy` for the URL,
    i.e. ``RELAYGRAPH_DB_RECONNECT_S``), chosen once here — the exporter writes at every
    checkpoint commit, and reading the settings per write cost more than the write."""

    def __init__(self, url: str, *, retry: RetryPolicy | None = None) -> None:
        self.url = url
        self.retry = retry or retry_policy(url)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        try:
            rows = [_row(s) for s in spans]
            _TABLES.transaction(self.url, "a span-store write", lambda conn: _insert_missing(conn, rows),
                                retry=self.retry)
        except Exception as exc:  # noqa: BLE001 - tracing must never break a run
            logger.warning("could not store %d spans in %s: %s", len(spans), self.url, exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def stored_span_bounds(url: str, trace_id: str, span_id: str) -> tuple[int, ...] | None:
    """None when span ``span_id`` is stored; else the earliest start and latest end of the
    trace's stored spans (empty when it has none) — what a stand-in root must cover."""
    def read(conn: sa.Connection) -> tuple[int, ...] | None:
        found = conn.execute(sa.select(spans_table.c.span_id).where(
            spans_table.c.trace_id == trace_id, spans_table.c.span_id == span_id)).first()
        if found is not None:
            return None
        low, high = conn.execute(sa.select(sa.func.min(spans_table.c.start_ns), sa.func.max(spans_table.c.end_ns))
                                 .where(spans_table.c.trace_id == trace_id)).one()
        return () if low is None else (int(low), int(high))

    return _TABLES.read(url, "a span-store read", read)


def store_stand_in(url: str, span: StoredSpan) -> bool:
    """Store a span written after the fact (a killed run's root); False when one with its ids
    is stored already (a concurrent resume wrote it first)."""
    row = {**span.model_dump(exclude={"attributes", "events", "resource", "links"}),
           "attributes": json.dumps(span.attributes, default=_jsonable),
           "events": json.dumps(span.events, default=_jsonable),
           "resource": json.dumps(span.resource, default=_jsonable),
           "links": json.dumps(span.links, default=_jsonable) if span.links else None}

    def insert(conn: sa.Connection) -> bool:
        before = conn.execute(sa.select(sa.func.count()).select_from(spans_table).where(
            spans_table.c.trace_id == span.trace_id, spans_table.c.span_id == span.span_id)).scalar_one()
        _insert_missing(conn, [row])
        return not before

    return bool(_TABLES.transaction(url, "a span-store write", insert))


def load_spans(url: str, thread_id: str, *, trace_id: str | None = None) -> list[StoredSpan]:
    """Every span of every run on ``thread_id`` (or of one trace), oldest first."""
    traces = sa.select(spans_table.c.trace_id).where(spans_table.c.thread_id == thread_id).distinct()
    query = sa.select(spans_table).where(spans_table.c.trace_id.in_(traces))
    if trace_id is not None:
        query = query.where(spans_table.c.trace_id == trace_id)
    query = query.order_by(spans_table.c.start_ns)
    rows = _TABLES.read(url, "a span-store read", lambda conn: conn.execute(query).mappings().all())
    return [_stored(row) for row in rows]


def _stored(row: Any) -> StoredSpan:
    resource = json.loads(row["resource"]) if row["resource"] else {"service.name": row["service_name"]}
    return StoredSpan(**{**row, "attributes": json.loads(row["attributes"]), "events": json.loads(row["events"]),
                         "resource": resource, "links": json.loads(row["links"]) if row["links"] else []})


def thread_ids(url: str) -> list[str]:
    """Threads with stored spans (for error messages that say what exists)."""
    query = sa.select(spans_table.c.thread_id).where(spans_table.c.thread_id.is_not(None)).distinct()
    return sorted(_TABLES.read(url, "a span-store read", lambda conn: conn.execute(query).scalars().all()))
