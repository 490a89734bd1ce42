"""Tables of relaygraph's own beside the checkpoints, in the run's checkpoint database.

The voter track records (consensus), the market history and reputation (auctions,
negotiation) and the experience store (planning) each keep a few tables, created through the
saver's migrations (a :class:`~langgraph.checkpoint.sqlalchemy.MigrationSet` each), in the
database the run checkpoints to — so ``--checkpoint-db`` decides where everything a run learns
is kept, and two databases never share it. One :class:`SideTables` per store gives:

* :meth:`SideTables.engine` — the engine for the run's saver (a sync saver lends its own, so
  these writes queue with the saver's instead of fighting them for SQLite's write lock; an
  async saver gets a sync engine on its URL) or for a database URL; migrated on first use;
* :meth:`SideTables.write` — a write transaction the way the saver writes: ``BEGIN IMMEDIATE``
  on SQLite (a deferred read-then-write transaction fails at once with "database is locked"
  when another writer is pending), queued behind this process's other writers to the file.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from langgraph.checkpoint.sqlalchemy import MigrationSet
from langgraph.checkpoint.sqlalchemy.engines import WRITE_OPTION, make_engine, sqlite_write_lock
from sqlalchemy.ext.asyncio import AsyncEngine


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
                self.migrations.apply(engine)
                self._migrated.add(id(engine))
            return engine

    @contextlib.contextmanager
    def write(self, target: Any) -> Iterator[sa.Connection]:
        """A write transaction on ``target``'s database, queued like the saver's writes."""
        engine = self.engine(target)
        lock = sqlite_write_lock(engine.url) if engine.dialect.name == "sqlite" else contextlib.nullcontext()
        with lock, engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
            yield conn
