"""``SQLAlchemySaver``: the synchronous checkpoint saver on a SQLAlchemy ``Engine``."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.sqlalchemy import migrations
from langgraph.checkpoint.sqlalchemy.base import (
    BaseSQLAlchemySaver,
    CheckpointListener,
    Op,
    StorageOptions,
    T,
    drive,
    fetch_op,
)
from langgraph.checkpoint.sqlalchemy.commit import GroupCommitter
from langgraph.checkpoint.sqlalchemy.engines import (
    WRITE_OPTION,
    SqliteSynchronous,
    check_connection,
    install_sqlite_hooks,
    make_engine,
    sqlite_write_lock,
    unavailable,
)
from langgraph.checkpoint.sqlalchemy.retry import RetryPolicy, retrying
from langgraph.checkpoint.sqlalchemy.urls import redact

import sqlalchemy as sa


class SQLAlchemySaver(BaseSQLAlchemySaver):
    """LangGraph checkpoint saver on SQLite, PostgreSQL or MariaDB/MySQL (sync engine).

    Build it with ``SQLAlchemySaver.from_conn_string(url)`` (a context manager that owns
    the engine) or ``SQLAlchemySaver(engine)`` to share an engine you manage. The schema
    is created on first use (or by ``setup()``). Async methods run the sync ones in a
    worker thread, so the saver also works under ``graph.ainvoke``; prefer
    ``AsyncSQLAlchemySaver`` in async applications.

    A lost connection (a terminated backend, a restart) is retried on a new one for up to
    ``retry.reconnect_within_s`` seconds, then raises ``ConnectionLostError`` (``retry.py``).
    """

    def __init__(
        self,
        engine: sa.Engine,
        *,
        serde: SerializerProtocol | None = None,
        storage: StorageOptions | None = None,
        auto_setup: bool = True,
        listeners: Iterable[CheckpointListener] = (),
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(
            dialect=engine.dialect.name,
            serde=serde,
            storage=storage,
            listeners=listeners,
            retry=retry,
        )
        self.engine = engine
        if self.dialect == "sqlite":
            install_sqlite_hooks(engine, busy_timeout_ms=30_000, synchronous="NORMAL")
            lock = sqlite_write_lock(engine.url)
        else:
            lock = threading.Lock()
        self._write_engine = engine.execution_options(**{WRITE_OPTION: True})
        self._committer = committer = GroupCommitter(
            self._write_engine, lock, flush_delay=self.storage.writes_flush_delay, retry=self.retry
        )
        self._url = redact(engine.url)
        # Writes still waiting when the interpreter exits normally are committed then.
        weakref.finalize(self, committer.flush, False)
        self._auto_setup = auto_setup
        self._is_setup = False
        self._setup_lock = threading.Lock()

    @classmethod
    @contextmanager
    def from_conn_string(
        cls,
        url: str,
        *,
        serde: SerializerProtocol | None = None,
        sqlite_synchronous: SqliteSynchronous = "NORMAL",
        busy_timeout_ms: int = 30_000,
        storage: StorageOptions | None = None,
        listeners: Iterable[CheckpointListener] = (),
        retry: RetryPolicy | None = None,
        **engine_kwargs: Any,
    ) -> Iterator[SQLAlchemySaver]:
        """A saver on a new engine for ``url``, disposed on exit.

        ``sqlite_synchronous="NORMAL"`` (default) under WAL survives application crashes
        and kills but may lose the last commits on power loss or an OS crash; use
        ``"FULL"`` to fsync every commit. ``engine_kwargs`` go to ``create_engine``
        (e.g. ``connect_args={"prepare_threshold": None}`` behind PgBouncer).
        """
        engine = make_engine(
            url,
            busy_timeout_ms=busy_timeout_ms,
            sqlite_synchronous=sqlite_synchronous,
            **engine_kwargs,
        )
        try:
            check_connection(engine)
            saver = cls(engine, serde=serde, storage=storage, listeners=listeners, retry=retry)
            try:
                yield saver
            finally:
                saver.close()
        finally:
            engine.dispose()

    # --- plumbing -----------------------------------------------------------------------

    def close(self) -> None:
        """Commit writes still waiting (``async`` durability), then return the kept
        connections to the engine's pool (the saver stays usable: the next write takes
        one again). ``from_conn_string`` calls it on exit."""
        self._committer.cancel_timer()
        try:
            self._committer.flush()
        finally:
            with self._committer.lock:
                self._committer.raw.close()

    def setup(self) -> None:
        """Create or migrate the tables; refuses a schema newer than this code."""
        with self._setup_lock:
            if self._is_setup:
                return
            def attempt() -> None:
                with self._write_engine.connect() as conn, conn.begin():
                    migrations.migrate(conn)

            try:
                with self._committer.lock:
                    retrying(self.retry, "setup", attempt, self._url)
            except sa.exc.OperationalError as exc:
                raise unavailable(self.engine.url, exc) from None
            self._is_setup = True

    def migrate(self, *sets: migrations.MigrationSet) -> None:
        """Create or upgrade other tables kept in this database (``MigrationSet``s), with
        the saver's lock and error reporting; each set has its own version table."""
        def attempt() -> None:
            with self._write_engine.connect() as conn, conn.begin():
                for migration_set in sets:
                    migration_set.migrate(conn)

        try:
            with self._committer.lock:
                retrying(self.retry, "creating tables", attempt, self._url)
        except sa.exc.OperationalError as exc:
            raise unavailable(self.engine.url, exc) from None

    def _ready(self) -> None:
        if not self._is_setup and self._auto_setup:
            self.setup()

    def _read(self, factory: Callable[[], Op[T]]) -> T:
        """Run a read operation (a fresh one on each retry) in one transaction."""
        self._ready()
        self._committer.flush()  # a read sees every write made before it

        def attempt() -> T:
            with self.engine.connect() as conn, conn.begin():
                return drive(conn, factory())

        return retrying(self.retry, "a checkpoint read", attempt, self._url)

    def _write(self, factory: Callable[[], Op[T]], on_commit: Callable[[], None] | None = None) -> T:
        self._ready()
        return self._committer.run(factory, on_commit=on_commit)

    # --- the saver contract ---------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names, or the thread's latest when it names none."""
        self._ready()
        self._committer.flush()  # a read sees every write made before it
        raw = self._committer.raw
        return retrying(
            self.retry, "a checkpoint read",
            lambda: raw.read(self._get_tuple_op(config)), self._url,
        )

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first; ``filter`` matches metadata keys exactly.

        A checkpoint whose stored data is unreadable or missing is skipped, not raised:
        one corrupt row must not hide every other thread's history. Each skipped one is
        logged as a warning and kept in ``corrupt_skipped`` (``corrupt_skipped_count``
        counts them); ``get_tuple`` on it raises ``CheckpointCorruptError``.
        """
        stmt = self._list_stmt(config, filter, before, limit)
        rows = self._read(lambda: fetch_op(stmt))
        for page in self._list_pages(rows):
            yield from self._read(page)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint and the channel values of ``new_versions``."""
        calls, on_commit, stored = self._begin_put(config, checkpoint, metadata, new_versions)
        self._ready()
        self._committer.run(calls=calls, on_commit=on_commit)
        self._announce_put(config, stored)
        return stored

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes (idempotent; special channels are replaced).

        Under ``async`` durability they ride in the next transaction (see ``_may_defer``).
        """
        if calls := self._writes_calls(config, writes, task_id, task_path):
            self._ready()
            if self._may_defer(config, writes):
                self._committer.defer(calls)
            else:
                self._committer.run(calls=calls)
        self._announce_writes(config, task_id)

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, write and blob of a thread."""
        self._write(lambda: self._delete_threads_op([str(thread_id)]))
        self._chains_forget([str(thread_id)])

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) created by the given runs."""
        run_ids = [str(r) for r in run_ids]
        if not run_ids:
            return
        threads: set[str] = set()
        try:
            self._write(lambda: self._delete_for_runs_op(run_ids, threads))
        finally:  # also when it failed: an earlier attempt may have committed
            self._chains_forget(threads)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, write and blob of a thread under another thread ID."""
        self._write(lambda: self._copy_thread_op(str(source_thread_id), str(target_thread_id)))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest``: keep each namespace's newest checkpoint; ``delete``: drop all.

        Each thread is pruned in its own transaction.
        """
        ids, transactions = self._prune_plan(thread_ids, strategy)
        for op in transactions:
            self._write(op)
        if ids:
            self._chains_forget(ids)

    # --- async API (worker thread) ---------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        items = await asyncio.to_thread(
            lambda: list(self.list(config, filter=filter, before=before, limit=limit))
        )
        for item in items:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)

