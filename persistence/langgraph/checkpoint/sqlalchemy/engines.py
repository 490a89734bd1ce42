"""Engine creation and per-dialect connection setup.

SQLite needs the most care: pysqlite's own transaction handling is switched off so
SQLAlchemy's ``begin`` event can issue ``BEGIN IMMEDIATE`` for writes. A writer then
takes the lock up front and waits ``busy_timeout`` for it, instead of starting deferred
and failing with "database is locked" when it later tries to upgrade (LangGraph #8136).
Reads stay deferred, so under WAL they never block or get blocked.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Literal

from langgraph.checkpoint.sqlalchemy.errors import DatabaseUnavailableError
from langgraph.checkpoint.sqlalchemy.urls import (
    backend_of,
    is_memory_sqlite,
    normalize_url,
    redact,
    sqlite_folder_missing,
)

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.pool import StaticPool

SqliteSynchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]

# Execution option a write connection carries so the begin hook knows to lock up front.
WRITE_OPTION = "relaygraph_write"

_sqlite_locks: dict[str, threading.Lock] = {}
_sqlite_locks_guard = threading.Lock()


def sqlite_write_lock(url: URL) -> threading.Lock:
    """One in-process lock per SQLite file.

    Why: in-process writers queue on it instead of polling SQLite's busy handler (which
    sleeps in steps of up to 100 ms); other processes still wait via ``busy_timeout``.
    """
    key = os.path.abspath(os.path.expanduser(url.database or ":memory:"))
    with _sqlite_locks_guard:
        return _sqlite_locks.setdefault(key, threading.Lock())


def install_sqlite_hooks(
    engine: sa.Engine, *, busy_timeout_ms: int, synchronous: SqliteSynchronous
) -> None:
    """WAL, busy timeout, synchronous level, and BEGIN IMMEDIATE for writes."""
    if getattr(engine, "_relaygraph_sqlite_hooks", False):
        return
    memory = is_memory_sqlite(engine.url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy's begin hook issues BEGIN itself
        cur = dbapi_conn.cursor()
        try:
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.execute(f"PRAGMA synchronous={synchronous}")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    engine._relaygraph_sqlite_hooks = True  # type: ignore[attr-defined]


def install_postgres_hooks(engine: sa.Engine) -> None:
    """Plan every statement for its actual parameters.

    psycopg prepares a statement after a few runs and PostgreSQL may then switch to a
    generic plan, which for "this thread's blobs" cannot see that the thread is huge
    and reads all of it (a 10,000-checkpoint thread read in 10 ms instead of 0.1 ms).
    """
    if getattr(engine, "_relaygraph_pg_hooks", False):
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        autocommit = dbapi_conn.autocommit
        dbapi_conn.autocommit = True
        try:
            dbapi_conn.execute("SET plan_cache_mode = force_custom_plan")
        finally:
            dbapi_conn.autocommit = autocommit

    engine._relaygraph_pg_hooks = True  # type: ignore[attr-defined]


def engine_kwargs_for(url: URL, busy_timeout_ms: int, **engine_kwargs: Any) -> dict[str, Any]:
    """Defaults per backend, overridable by the caller's ``engine_kwargs``."""
    backend = backend_of(url)
    kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        connect_args = {"check_same_thread": False, "timeout": busy_timeout_ms / 1000}
        connect_args.update(engine_kwargs.pop("connect_args", {}))
        kwargs["connect_args"] = connect_args
        if is_memory_sqlite(url):
            kwargs["poolclass"] = StaticPool  # one shared in-memory database
    elif backend in ("mysql", "mariadb"):
        kwargs["pool_recycle"] = 3600  # MySQL drops idle connections after wait_timeout
    if backend != "sqlite":
        # A pooled connection whose backend was terminated (pg_terminate_backend, KILL, a
        # restart) is replaced at checkout instead of failing the next statement.
        kwargs["pool_pre_ping"] = True
    kwargs.update(engine_kwargs)
    return kwargs


def make_engine(
    url: str | URL,
    *,
    async_: bool = False,
    busy_timeout_ms: int = 30_000,
    sqlite_synchronous: SqliteSynchronous = "NORMAL",
    **engine_kwargs: Any,
) -> Any:
    """A configured ``Engine`` (or ``AsyncEngine``) for a checkpoint URL."""
    target = normalize_url(url, async_=async_)
    missing = sqlite_folder_missing(target)
    if missing is not None:  # SQLite would say only "unable to open database file"
        raise DatabaseUnavailableError(
            f"cannot open checkpoint database {redact(target)}: folder {missing} does not exist; "
            f"create it (mkdir -p {missing}) or use a URL in an existing folder"
        )
    kwargs = engine_kwargs_for(target, busy_timeout_ms, **engine_kwargs)
    if async_:
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(target, **kwargs)
        sync_engine = engine.sync_engine
    else:
        engine = sa.create_engine(target, **kwargs)
        sync_engine = engine
    if backend_of(target) == "sqlite":
        install_sqlite_hooks(
            sync_engine, busy_timeout_ms=busy_timeout_ms, synchronous=sqlite_synchronous
        )
    elif backend_of(target) == "postgresql":
        install_postgres_hooks(sync_engine)
    return engine


def unavailable(url: URL, exc: BaseException) -> DatabaseUnavailableError:
    """One sentence for "could not connect", naming the URL (password hidden)."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return DatabaseUnavailableError(
        f"cannot open the checkpoint database {redact(url)}: {reason}. Expected a running "
        "database at that URL: start it, or set --checkpoint-db / RELAYGRAPH_CHECKPOINT_DB "
        "to a reachable one"
    )


def check_connection(engine: sa.Engine) -> None:
    """Connect once so a wrong host or password fails now, with a clear message."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.DBAPIError as exc:
        raise unavailable(engine.url, exc) from None
    except OSError as exc:
        raise unavailable(engine.url, exc) from None


async def acheck_connection(engine: Any) -> None:
    """Async ``check_connection``."""
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
    except sa.exc.DBAPIError as exc:
        raise unavailable(engine.url, exc) from None
    except OSError as exc:
        raise unavailable(engine.url, exc) from None
