"""One run per thread at a time: a lease the database (or the OS) releases when its holder dies.

Two processes running the same thread both read checkpoint N and both write N+1: the history
forks and updates are lost. LangGraph itself does not prevent it (its API server queues runs
per thread; a library caller has no such queue). :func:`thread_lease` is that queue's lock:

- PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) on a connection held for the run;
- MariaDB/MySQL: a named lock (``GET_LOCK``) on a connection held for the run;
- SQLite: an OS lock (``flock``) on a per-thread file beside the database — the same kind of
  lock SQLite itself relies on; an in-memory database has only one process, so no lease.

All three are released by the server or the kernel when the holder's session or process ends
(a SIGKILL included), never by a timeout guess.

A server lease lives as long as its database session, so a terminated connection
(``pg_terminate_backend``, ``KILL``, a restart) releases it mid-run. It must not vanish
unnoticed: :meth:`Lease.verify` (the CLI's runner calls it after every node, before the
next step starts) checks that the session holding it is still the one that took it; if
not, it takes the lease again on a new connection (logging a warning) - or, when another
process took the thread in the meantime, raises :class:`LeaseLostError` so this run stops
instead of forking the thread. Releasing a lease whose connection is already gone is not
an error: the database released it with the session.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlalchemy.errors import LeaseLostError, ThreadBusyError
from langgraph.checkpoint.sqlalchemy.retry import (
    DEFAULT_RETRY,
    RetryPolicy,
    is_connection_lost,
    retrying,
)
from langgraph.checkpoint.sqlalchemy.urls import redact

import sqlalchemy as sa

logger = logging.getLogger(__name__)

POLL_S = 0.1

PG_TRY_LOCK = "SELECT pg_try_advisory_lock(%(key)s)"
PG_UNLOCK = "SELECT pg_advisory_unlock(%(key)s)"
PG_SESSION = "SELECT pg_backend_pid()"
MYSQL_GET_LOCK = "SELECT GET_LOCK(%(name)s, 0)"
MYSQL_RELEASE_LOCK = "SELECT RELEASE_LOCK(%(name)s)"
MYSQL_SESSION = "SELECT CONNECTION_ID()"


def _digest(thread_id: str) -> bytes:
    return hashlib.sha256(b"relaygraph-thread-lease\0" + thread_id.encode("utf-8", "surrogatepass")).digest()


def _busy(thread_id: str) -> ThreadBusyError:
    return ThreadBusyError(
        f"Thread {thread_id!r} is being run by another process; wait for it to finish "
        "(or stop it), then resume the thread — or use another thread id."
    )


class Lease:
    """A held run lease. An OS lease (SQLite) lasts until released or the process ends."""

    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id
        #: How often the lease was lost with its connection and taken again.
        self.retaken = 0

    def verify(self) -> None:
        """Raise :class:`LeaseLostError` if the lease is gone and cannot be taken again."""


class _SessionLease(Lease):
    """A lease held by one database session (PostgreSQL advisory lock, MySQL ``GET_LOCK``)."""

    def __init__(
        self,
        engine: sa.Engine,
        thread_id: str,
        *,
        take_sql: str,
        release_sql: str,
        session_sql: str,
        params: dict[str, Any],
        retry: RetryPolicy,
    ) -> None:
        super().__init__(thread_id)
        self.engine, self.retry = engine, retry
        self._take_sql, self._release_sql, self._session_sql = take_sql, release_sql, session_sql
        self._params = params
        self._conn: sa.Connection | None = None
        self._session: Any = None  # the server's id of the session holding the lease

    def take(self, wait_s: float) -> None:
        """Take the lease, waiting up to ``wait_s`` for a busy thread (a lost connection
        is retried as the saver's ``RetryPolicy`` allows)."""
        deadline = time.monotonic() + wait_s

        def attempt() -> None:
            conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                while not conn.exec_driver_sql(self._take_sql, self._params).scalar():
                    if time.monotonic() >= deadline:
                        raise _busy(self.thread_id)
                    time.sleep(POLL_S)
                session = conn.exec_driver_sql(self._session_sql).scalar()
            except BaseException:
                _discard(conn)
                raise
            self._conn, self._session = conn, session

        retrying(self.retry, "taking the run lease", attempt, redact(self.engine.url))

    def _holds(self, conn: sa.Connection | None) -> bool:
        """Whether the session that took the lease is still ``conn``'s session.

        Compared by id because SQLAlchemy may reconnect an invalidated connection: a fresh
        session answers queries but holds no lease.
        """
        if conn is None:
            return False
        try:
            return bool(conn.exec_driver_sql(self._session_sql).scalar() == self._session)
        except sa.exc.DBAPIError as exc:
            if is_connection_lost(exc):
                return False
            raise

    def verify(self) -> None:
        if self._holds(self._conn):
            return
        conn, self._conn = self._conn, None
        if conn is not None:
            _discard(conn)
        logger.warning(
            "thread %r: the run lease was released with its database connection; taking it again",
            self.thread_id,
        )
        try:
            self.take(wait_s=0)
        except ThreadBusyError:
            raise LeaseLostError(
                f"Thread {self.thread_id!r}: this run's lease was released when the database "
                "dropped its connection, and another process has taken the thread since; this run "
                "stopped after its last checkpoint so that the two do not fork the thread. Let the "
                f"other run finish, then check the thread (`relaygraph resume {self.thread_id}`)."
            ) from None
        self.retaken += 1

    def release(self) -> None:
        """Give the lease back; never fails: a session that is gone took its lease with it."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if self._holds(conn):
                conn.exec_driver_sql(self._release_sql, self._params)
                conn.close()
                return
        except Exception as exc:  # noqa: BLE001 - a finished run must not fail on its release
            if not is_connection_lost(exc):
                logger.warning("thread %r: releasing the run lease failed: %s", self.thread_id, exc)
        _discard(conn)  # closing the session releases whatever it held


def _discard(conn: sa.Connection) -> None:
    """Close a connection without returning its session to the pool (it may hold a lease)."""
    with contextlib.suppress(Exception):
        conn.invalidate()
    with contextlib.suppress(Exception):
        conn.close()


@contextmanager
def thread_lease(
    engine: sa.Engine, thread_id: str, *, wait_s: float = 0.0, retry: RetryPolicy | None = None
) -> Iterator[Lease]:
    """Hold ``thread_id``'s run lease for the ``with`` block; yields the :class:`Lease`.

    Waits up to ``wait_s`` seconds for a busy thread, then raises :class:`ThreadBusyError`.
    ``retry`` (default: ``RetryPolicy()``) bounds how long a lost connection is retried
    while taking it (or taking it again in :meth:`Lease.verify`).
    """
    backend = engine.dialect.name
    if backend == "sqlite":
        with _sqlite_lease(engine, thread_id, wait_s):
            yield Lease(thread_id)
        return
    if backend == "postgresql":
        key = int.from_bytes(_digest(thread_id)[:8], "big", signed=True)
        lease = _SessionLease(
            engine, thread_id, take_sql=PG_TRY_LOCK, release_sql=PG_UNLOCK,
            session_sql=PG_SESSION, params={"key": key}, retry=retry or DEFAULT_RETRY,
        )
    elif backend in ("mysql", "mariadb"):
        name = "relaygraph:" + _digest(thread_id).hex()[:48]  # GET_LOCK names are at most 64 chars
        lease = _SessionLease(
            engine, thread_id, take_sql=MYSQL_GET_LOCK, release_sql=MYSQL_RELEASE_LOCK,
            session_sql=MYSQL_SESSION, params={"name": name}, retry=retry or DEFAULT_RETRY,
        )
    else:  # pragma: no cover - the savers accept only the three backends above
        raise NotImplementedError(f"no thread lease for {backend}")
    lease.take(wait_s)
    try:
        yield lease
    finally:
        lease.release()


@contextmanager
def _sqlite_lease(engine: sa.Engine, thread_id: str, wait_s: float) -> Iterator[None]:
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        yield  # one process owns an in-memory database
        return
    folder = Path(os.path.abspath(os.path.expanduser(database)) + ".leases")
    folder.mkdir(exist_ok=True)
    fd = os.open(folder / f"{_digest(thread_id).hex()[:32]}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _busy(thread_id) from None
                time.sleep(POLL_S)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)

