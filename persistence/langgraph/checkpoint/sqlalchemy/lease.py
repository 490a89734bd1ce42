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
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from langgraph.checkpoint.sqlalchemy.errors import ThreadBusyError

import sqlalchemy as sa

POLL_S = 0.1

PG_TRY_LOCK = "SELECT pg_try_advisory_lock(%(key)s)"
PG_UNLOCK = "SELECT pg_advisory_unlock(%(key)s)"
MYSQL_GET_LOCK = "SELECT GET_LOCK(%(name)s, %(wait)s)"
MYSQL_RELEASE_LOCK = "SELECT RELEASE_LOCK(%(name)s)"


def _digest(thread_id: str) -> bytes:
    return hashlib.sha256(b"relaygraph-thread-lease\0" + thread_id.encode("utf-8", "surrogatepass")).digest()


def _busy(thread_id: str) -> ThreadBusyError:
    return ThreadBusyError(
        f"Thread {thread_id!r} is being run by another process; wait for it to finish "
        "(or stop it), then resume the thread — or use another thread id."
    )


@contextmanager
def thread_lease(engine: sa.Engine, thread_id: str, *, wait_s: float = 0.0) -> Iterator[None]:
    """Hold ``thread_id``'s run lease for the ``with`` block.

    Waits up to ``wait_s`` seconds for a busy thread, then raises :class:`ThreadBusyError`.
    """
    backend = engine.dialect.name
    if backend == "sqlite":
        with _sqlite_lease(engine, thread_id, wait_s):
            yield
    elif backend == "postgresql":
        with _postgres_lease(engine, thread_id, wait_s):
            yield
    elif backend in ("mysql", "mariadb"):
        with _mysql_lease(engine, thread_id, wait_s):
            yield
    else:  # pragma: no cover - the savers accept only the three backends above
        raise NotImplementedError(f"no thread lease for {backend}")


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


@contextmanager
def _postgres_lease(engine: sa.Engine, thread_id: str, wait_s: float) -> Iterator[None]:
    key = int.from_bytes(_digest(thread_id)[:8], "big", signed=True)
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        deadline = time.monotonic() + wait_s
        while not conn.exec_driver_sql(PG_TRY_LOCK, {"key": key}).scalar():
            if time.monotonic() >= deadline:
                raise _busy(thread_id)
            time.sleep(POLL_S)
        try:
            yield
        finally:
            conn.exec_driver_sql(PG_UNLOCK, {"key": key})


@contextmanager
def _mysql_lease(engine: sa.Engine, thread_id: str, wait_s: float) -> Iterator[None]:
    name = "relaygraph:" + _digest(thread_id).hex()[:48]  # GET_LOCK names are at most 64 chars
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        if not conn.exec_driver_sql(MYSQL_GET_LOCK, {"name": name, "wait": max(0, int(wait_s))}).scalar():
            raise _busy(thread_id)
        try:
            yield
        finally:
            conn.exec_driver_sql(MYSQL_RELEASE_LOCK, {"name": name})
