"""``AsyncSQLAlchemySaver``: the asyncio checkpoint saver on a SQLAlchemy ``AsyncEngine``.

Same schema, statements and operations as ``SQLAlchemySaver`` (see ``base.py``); only
the driving differs (aiosqlite, psycopg async, aiomysql).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
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
    adrive,
    fetch_op,
)
from langgraph.checkpoint.sqlalchemy.commit import AsyncGroupCommitter
from langgraph.checkpoint.sqlalchemy.engines import (
    WRITE_OPTION,
    SqliteSynchronous,
    acheck_connection,
    install_sqlite_hooks,
    make_engine,
    unavailable,
)
from langgraph.checkpoint.sqlalchemy.retry import RetryPolicy, aretrying
from langgraph.checkpoint.sqlalchemy.urls import redact

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine


class AsyncSQLAlchemySaver(BaseSQLAlchemySaver):
    """Async LangGraph checkpoint saver on SQLite, PostgreSQL or MariaDB/MySQL.

    ``async with AsyncSQLAlchemySaver.from_conn_string(url) as saver`` owns its engine;
    ``AsyncSQLAlchemySaver(async_engine)`` shares yours. Sync methods work from other
    threads (they run on the saver's event loop), as with the official async savers.
    A lost connection is retried as in ``SQLAlchemySaver`` (``retry.py``).
    """

    def __init__(
        self,
        engine: AsyncEngine,
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
        self._url = redact(engine.url)
        self.engine = engine
        if self.dialect == "sqlite":
            install_sqlite_hooks(engine.sync_engine, busy_timeout_ms=30_000, synchronous="NORMAL")
        self._write_engine = engine.execution_options(**{WRITE_OPTION: True})
        self._committer = AsyncGroupCommitter(
            self._write_engine, flush_delay=self.storage.writes_flush_delay, retry=self.retry
        )
        self._auto_setup = auto_setup
        self._is_setup = False
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
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
    ) -> AsyncIterator[AsyncSQLAlchemySaver]:
        """A saver on a new async engine for ``url``, disposed on exit.

        See ``SQLAlchemySaver.from_conn_string`` for ``sqlite_synchronous``.
        """
        engine = make_engine(
            url,
            async_=True,
            busy_timeout_ms=busy_timeout_ms,
            sqlite_synchronous=sqlite_synchronous,
            **engine_kwargs,
        )
        try:
            await acheck_connection(engine)
            saver = cls(engine, serde=serde, storage=storage, listeners=listeners, retry=retry)
            try:
                yield saver
            finally:
                await saver.aclose()
        finally:
            await engine.dispose()

    # --- plumbing -----------------------------------------------------------------------

    async def setup(self) -> None:
        """Create or migrate the tables; refuses a schema newer than this code."""
        async with self._committer.lock:
            if self._is_setup:
                return
            async def attempt() -> None:
                async with self._write_engine.connect() as conn, conn.begin():
                    await conn.run_sync(migrations.migrate)

            try:
                await aretrying(self.retry, "setup", attempt, self._url)
            except sa.exc.OperationalError as exc:
                raise unavailable(self.engine.url, exc) from None
            self._is_setup = True

    async def migrate(self, *sets: migrations.MigrationSet) -> None:
        """Create or upgrade other tables kept in this database (``MigrationSet``s), with
        the saver's lock and error reporting; each set has its own version table."""
        async with self._committer.lock:
            async def attempt() -> None:
                async with self._write_engine.connect() as conn, conn.begin():
                    for migration_set in sets:
                        await conn.run_sync(migration_set.migrate)

            try:
                await aretrying(self.retry, "creating tables", attempt, self._url)
            except sa.exc.OperationalError as exc:
                raise unavailable(self.engine.url, exc) from None

    async def _ready(self) -> None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        if not self._is_setup and self._auto_setup:
            await self.setup()

    async def aclose(self) -> None:
        """Commit writes still waiting (``async`` durability); ``from_conn_string`` calls
        it on exit. The saver stays usable."""
        self._committer.cancel_timer()
        await self._committer.flush()

    async def _read(self, factory: Callable[[], Op[T]]) -> T:
        """Run a read operation (a fresh one on each retry) in one transaction."""
        await self._ready()
        await self._committer.flush()  # a read sees every write made before it

        async def attempt() -> T:
            async with self.engine.connect() as conn, conn.begin():
                return await adrive(conn, factory())

        return await aretrying(self.retry, "a checkpoint read", attempt, self._url)

    async def _write(
        self, factory: Callable[[], Op[T]], on_commit: Callable[[], None] | None = None
    ) -> T:
        await self._ready()
        return await self._committer.run(factory, on_commit=on_commit)

    # --- the saver contract (async) ------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names, or the thread's latest when it names none."""
        return await self._read(functools.partial(self._get_tuple_op, config))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Checkpoints newest first; ``filter`` matches metadata keys exactly.

        A checkpoint whose stored data is unreadable or missing is skipped, not raised:
        one corrupt row must not hide every other thread's history. Each skipped one is
        logged as a warning and kept in ``corrupt_skipped`` (``corrupt_skipped_count``
        counts them); ``get_tuple`` on it raises ``CheckpointCorruptError``.
        """
        stmt = self._list_stmt(config, filter, before, limit)
        rows = await self._read(lambda: fetch_op(stmt))
        for page in self._list_pages(rows):
            for item in await self._read(page):
                yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint and the channel values of ``new_versions``."""
        calls, on_commit, stored = self._begin_put(config, checkpoint, metadata, new_versions)
        await self._ready()
        await self._committer.run(calls=calls, on_commit=on_commit)
        self._announce_put(config, stored)
        return stored

    async def aput_writes(
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
            await self._ready()
            if self._may_defer(config, writes):
                self._committer.defer(calls)
            else:
                await self._committer.run(calls=calls)
        self._announce_writes(config, task_id)

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, write and blob of a thread."""
        await self._write(lambda: self._delete_threads_op([str(thread_id)]))
        self._chains_forget([str(thread_id)])

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) created by the given runs."""
        run_ids = [str(r) for r in run_ids]
        if not run_ids:
            return
        threads: set[str] = set()
        try:
            await self._write(lambda: self._delete_for_runs_op(run_ids, threads))
        finally:  # also when it failed: an earlier attempt may have committed
            self._chains_forget(threads)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, write and blob of a thread under another thread ID."""
        await self._write(
            lambda: self._copy_thread_op(str(source_thread_id), str(target_thread_id))
        )

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest``: keep each namespace's newest checkpoint; ``delete``: drop all."""
        ids, transactions = self._prune_plan(thread_ids, strategy)
        for op in transactions:
            await self._write(op)
        if ids:
            self._chains_forget(ids)

    # --- sync API (from other threads, on the saver's loop) ----------------------------

    def _sync(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None and running is self.loop:
            coro.close()
            raise asyncio.InvalidStateError(
                "synchronous calls to AsyncSQLAlchemySaver are only allowed from another "
                "thread; in async code use the a* methods (await saver.aget_tuple(...), "
                "await graph.ainvoke(...)) or use SQLAlchemySaver"
            )
        if self.loop is None or self.loop.is_closed():
            coro.close()
            raise asyncio.InvalidStateError(
                "AsyncSQLAlchemySaver has no running event loop: create it inside "
                "the loop that runs your graph, or use SQLAlchemySaver"
            )
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._sync(self.aget_tuple(config))

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        async def collect() -> list[CheckpointTuple]:
            return [t async for t in self.alist(config, filter=filter, before=before, limit=limit)]

        yield from self._sync(collect())

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._sync(self.aput(config, checkpoint, metadata, new_versions))

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._sync(self.aput_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self._sync(self.adelete_thread(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        self._sync(self.adelete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._sync(self.acopy_thread(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self._sync(self.aprune(thread_ids, strategy=strategy))
