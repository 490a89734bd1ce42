"""Tables of relaygraph's own beside the checkpoints, in the run's checkpoint database.

The voter track records (consensus), the market history and reputation (auctions,
negotiation), the experience store (planning) and the span store (tracing) each keep a few
tables, created through the saver's migrations (a :class:`~langgraph.checkpoint.sqlalchemy.MigrationSet`
each), in the database the run checkpoints to — so ``--checkpoint-db`` decides where everything
a run learns is kept, and two databases never share it. One :class:`SideTables` per store gives:

* :meth:`SideTables.engine` — the engine for the run's saver (a sync saver lends its own, so
  these writes queue with the saver's instead of fighting them for SQLite's write lock; an
  async saver gets a sync engine on its URL) or for a database URL; migrated on first use;
* :meth:`SideTables.transaction` — ``fn(conn)`` in a write transaction the way the saver writes
  (``BEGIN IMMEDIATE`` on SQLite, queued behind this process's other writers to the file), and
  :meth:`SideTables.read` — ``fn(conn)`` on a plain connection. Both ride out a lost connection
  the way the saver does (``langgraph.checkpoint.sqlalchemy.retry``: the saver's own
  ``RetryPolicy``, else ``RELAYGRAPH_DB_RECONNECT_S``; the bound is per outage and shared with the
  saver's operations on the same engine), and raise ``ConnectionLostError`` (one line: check the
  database, then resume) past it.

A retried write runs ``fn`` again from the start in a new transaction. That is safe when the
lost one rolled back — and also when the connection was lost *at* COMMIT, which may have
committed: so every ``fn`` given to :meth:`SideTables.transaction` must be idempotent (replace
its rows, insert keyed by a natural id only when missing, set absolute values), never "add one".
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import sqlalchemy as sa
from langgraph.checkpoint.sqlalchemy import MigrationSet, RetryPolicy
from langgraph.checkpoint.sqlalchemy.engines import WRITE_OPTION, make_engine, sqlite_write_lock
from langgraph.checkpoint.sqlalchemy.retry import retrying
from langgraph.checkpoint.sqlalchemy.urls import redact
from relaygraph.config.settings import get_settings
from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")


def retry_policy(target: Any) -> RetryPolicy:
    """How long a lost connection is retried for ``target``: its saver's policy (the run's
    ``RELAYGRAPH_DB_RECONNECT_S`` when the CLI opened it), else the configured bound."""
    policy = getattr(target, "retry", None)
    if isinstance(policy, RetryPolicy):
        return policy
    return RetryPolicy(reconnect_within_s=get_settings().db_reconnect_s)


class SideTables:
    """One store's tables in the checkpoint database (see the module docstring)."""

    def __init__(self, migrations: MigrationSet) -> None:
        self.migrations = migrations
        self._engines: dict[str, sa.Engine] = {}
        self._migrated: set[int] = set()
        self._lock = threading.Lock()

    def engine(self, target: Any) -> sa.Engine:
        """The engine for ``target``: a SQLAlchemy saver (sync or async) or a database URL."""
        with self._lock:
            engine = getattr(target, "engine", None)
            if not isinstance(engine, sa.Engine):
                url = (engine.url.render_as_string(hide_password=False)
                       if isinstance(engine, AsyncEngine) else str(target))
                engine = self._engines.get(url)
                if engine is None:
                    engine = self._engines[url] = make_engine(url)
            if id(engine) not in self._migrated:
                self.migrations.apply(engine, retry_policy(target))
                self._migrated.add(id(engine))
            return engine

    def dispose(self) -> None:
        """Close the engines this store made for URLs (a saver's own engine is the saver's)."""
        with self._lock:
            for engine in self._engines.values():
                self._migrated.discard(id(engine))
                engine.dispose()
            self._engines.clear()

    @contextlib.contextmanager
    def write(self, target: Any) -> Iterator[sa.Connection]:
        """One write transaction on ``target``'s database, queued like the saver's writes.
        Not retried: use :meth:`transaction`."""
        engine = self.engine(target)
        with self._begin(engine) as conn:
            yield conn

    @staticmethod
    @contextlib.contextmanager
    def _begin(engine: sa.Engine) -> Iterator[sa.Connection]:
        lock = sqlite_write_lock(engine.url) if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        with lock, engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
            yield conn

    def transaction(self, target: Any, what: str, fn: Callable[[sa.Connection], T],
                    *, retry: RetryPolicy | None = None) -> T:
        """``fn(conn)`` in a write transaction on ``target``'s database; the whole transaction
        is run again on a fresh connection when the connection is lost (or on a deadlock), as the
        saver's ``RetryPolicy`` allows — so ``fn`` must be idempotent (module docstring).
        ``what`` names the operation in the one-line ``ConnectionLostError``. ``retry``: the
        policy :func:`retry_policy` gave a frequent writer once (reading the settings for a URL
        target costs about a millisecond of CPU, more than a small write)."""
        engine = self.engine(target)

        def attempt() -> T:
            with self._begin(engine) as conn:
                return fn(conn)

        return retrying(retry or retry_policy(target), what, attempt, redact(engine.url))

    def read(self, target: Any, what: str, fn: Callable[[sa.Connection], T]) -> T:
        """``fn(conn)`` on a connection to ``target``'s database, run again on a fresh one when
        the connection is lost, as :meth:`transaction` is."""
        engine = self.engine(target)

        def attempt() -> T:
            with engine.connect() as conn:
                return fn(conn)

        return retrying(retry_policy(target), what, attempt, redact(engine.url))
