"""Group commit: every write queued while a transaction runs goes into the next one.

Why: LangGraph saves each parallel task's writes and each checkpoint from background
threads (or tasks); committing them one by one pays one commit (and fsync) each, so a
100-branch fan-out pays 100. Here whoever gets the commit lock takes every queued job
and commits them together (static inserts merged into one executemany per statement);
the others find their job done. An uncontended write commits at once, so nothing waits
for a timer. A failing batch is retried job by job, so one bad write fails only its
own caller.

Deferred writes (LangGraph's ``async`` durability, see ``base.py``) are jobs nobody waits
for: they join the next transaction, or a flush after ``flush_delay`` seconds.

``BaseGroupCommitter`` holds the queue, batching and settling; ``GroupCommitter`` (threads,
``Engine``) and ``AsyncGroupCommitter`` (asyncio, ``AsyncEngine``) only differ in how they
lock, wait and drive a transaction - like httpx's ``Client``/``AsyncClient`` over one base.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from langgraph.checkpoint.sqlalchemy.base import (
    Op,
    StaticCalls,
    T,
    adrive,
    drive,
    execute,
)
from langgraph.checkpoint.sqlalchemy.errors import ConnectionLostError
from langgraph.checkpoint.sqlalchemy.fastpath import RawConnections
from langgraph.checkpoint.sqlalchemy.retry import DEFAULT_RETRY, RetryPolicy, aretrying, retrying
from langgraph.checkpoint.sqlalchemy.urls import redact

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger(__name__)

_WHAT = "a checkpoint write"


class Job:
    """One write: a generator op (may read) or static rows to insert (mergeable)."""

    __slots__ = ("factory", "calls", "on_commit", "done", "error", "result")

    def __init__(
        self,
        factory: Callable[[], Op[Any]] | None = None,
        calls: StaticCalls | None = None,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.factory = factory
        self.calls = calls
        self.on_commit = on_commit
        self.done = False
        self.error: BaseException | None = None
        self.result: Any = None


def merge_static(batch: Iterable[StaticCalls]) -> StaticCalls:
    """Rows of several jobs' writes as one executemany per statement.

    Safe because static jobs only insert: statement groups run in order of first
    appearance and rows keep their order within a group, so a key written twice ends
    with the same row as running the jobs one by one (inserts that ignore clashes keep
    the first row, upserts the last, and an ignore never overrides an upsert).
    """
    merged: dict[sa.Executable, list[dict[str, Any]]] = {}
    for calls in batch:
        for stmt, rows in calls:
            merged.setdefault(stmt, []).extend(rows)
    return list(merged.items())


def batch_steps(batch: list[Job]) -> Iterator[tuple[StaticCalls | None, Job | None]]:
    """The batch as alternating merged static writes and generator jobs, in order."""
    static: list[StaticCalls] = []
    for job in batch:
        if job.calls is not None:
            static.append(job.calls)
            continue
        if static:
            yield merge_static(static), None
            static = []
        yield None, job
    if static:
        yield merge_static(static), None


def batch_op(batch: list[Job]) -> Op[None]:
    """The whole batch as one operation, for a SQLAlchemy (sync or async) connection."""
    for calls, job in batch_steps(batch):
        if calls is not None:
            for stmt, rows in calls:
                yield execute(stmt, rows)
        else:
            assert job is not None and job.factory is not None
            job.result = yield from job.factory()


class BaseGroupCommitter:
    """The queue of one saver's writes; subclasses lock, wait and run transactions."""

    def __init__(self, flush_delay: float, retry: RetryPolicy, url: object) -> None:
        self.flush_delay = flush_delay
        self.retry = retry
        self.url = url
        self._queue: list[Job] = []
        self._deferred: list[Job] = []
        # A deferred write that failed has no caller waiting: the next call raises it.
        self._deferred_error: BaseException | None = None
        self._unwaited: set[Job] = set()  # deferred jobs not yet committed or failed

    @property
    def has_deferred(self) -> bool:
        return bool(self._deferred)

    def _take(self) -> list[Job]:
        """Everything waiting, deferred writes first (they were made earlier)."""
        batch = self._deferred + self._queue
        self._deferred, self._queue = [], []
        return batch

    def _settle(self, batch: list[Job]) -> None:
        for job in batch:
            job.done = True
            self._unwaited.discard(job)
            if job.on_commit is not None:
                job.on_commit()

    def _fail(self, job: Job, exc: BaseException) -> None:
        job.error, job.done = exc, True
        if job in self._unwaited:
            self._unwaited.discard(job)
            logger.error("a deferred checkpoint write failed: %s", exc)
            self._deferred_error = self._deferred_error or exc

    def _fail_all(self, batch: list[Job], exc: BaseException) -> bool:
        """Fail the whole batch when retrying its jobs one by one cannot help."""
        if len(batch) == 1 or isinstance(exc, ConnectionLostError):
            for job in batch:
                self._fail(job, exc)
            return True
        return False

    def _raise_deferred_error(self) -> None:
        exc, self._deferred_error = self._deferred_error, None
        if exc is not None:
            raise exc


class GroupCommitter(BaseGroupCommitter):
    """Group commit on a sync ``Engine``; static batches go straight to the DBAPI cursor
    (``fastpath.py``), batches with operations through SQLAlchemy."""

    def __init__(
        self,
        engine: sa.Engine,
        commit_lock: threading.Lock,
        flush_delay: float,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        super().__init__(flush_delay, retry, redact(engine.url))
        self._engine = engine
        self.lock = commit_lock
        self._mutex = threading.Lock()
        self._timer: threading.Timer | None = None
        self.raw = RawConnections(engine)

    def run(
        self,
        factory: Callable[[], Op[T]] | None = None,
        calls: StaticCalls | None = None,
        on_commit: Callable[[], None] | None = None,
    ) -> T:
        if calls is not None and self._alone():
            # Nobody else is writing or waiting: commit on this thread without a job
            # (the queue, its mutex and the batch bookkeeping were a fifth of the saver's
            # own CPU per put). A failure raises here exactly as a one-job batch's would.
            try:
                retrying(self.retry, _WHAT, functools.partial(self.raw.write, calls), self.url)
                if on_commit is not None:
                    on_commit()
            finally:
                self.lock.release()
            self._raise_deferred_error()
            return None  # type: ignore[return-value]  # static writes return nothing
        job = Job(factory, calls, on_commit)
        with self._mutex:
            self._queue.append(job)
        with self.lock:
            if not job.done:
                with self._mutex:
                    batch = self._take()
                self._commit(batch)
        if job.error is not None:
            raise job.error
        self._raise_deferred_error()
        return job.result

    def _alone(self) -> bool:
        """Take the commit lock if it is free and no write is queued or deferred."""
        if self._queue or self._deferred or not self.lock.acquire(blocking=False):
            return False
        if self._queue or self._deferred:  # queued meanwhile: theirs go in one batch
            self.lock.release()
            return False
        return True

    def defer(self, calls: StaticCalls) -> None:
        """Queue rows for the next transaction; a timer flushes them if none comes."""
        job = Job(calls=calls)
        with self._mutex:
            self._deferred.append(job)
            self._unwaited.add(job)
            if self._timer is None:
                self._timer = threading.Timer(self.flush_delay, self._on_timer)
                self._timer.daemon = True
                self._timer.start()

    def _on_timer(self) -> None:
        with self._mutex:
            self._timer = None
        try:
            self.flush(raise_errors=False)
        except Exception:  # noqa: BLE001 - kept for the next call (see _fail)
            logger.exception("flushing deferred checkpoint writes failed")

    def flush(self, raise_errors: bool = True) -> None:
        """Commit deferred writes now (before a read, on close, on error or interrupt)."""
        if self._deferred:
            with self.lock:
                with self._mutex:
                    batch = self._take()
                if batch:
                    self._commit(batch)
        if raise_errors:
            self._raise_deferred_error()

    def cancel_timer(self) -> None:
        with self._mutex:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _transaction(self, batch: list[Job]) -> None:
        static_only = all(job.calls is not None for job in batch)
        # One job (the uncontended case) is written as it is: its statements are distinct
        # already, and merging would only copy them.
        calls = batch[0].calls if len(batch) == 1 else None

        def attempt() -> None:
            if calls is not None:
                self.raw.write(calls)
            elif static_only:  # puts and put_writes: straight to the DBAPI cursor
                self.raw.write(merge_static(job.calls for job in batch))  # type: ignore[misc]
            else:
                with self._engine.connect() as conn, conn.begin():
                    drive(conn, batch_op(batch))

        retrying(self.retry, _WHAT, attempt, self.url)
        self._settle(batch)

    def _commit(self, batch: list[Job]) -> None:
        try:
            self._transaction(batch)
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the callers below
            if self._fail_all(batch, exc):
                return
        for job in batch:
            try:
                self._transaction([job])
            except BaseException as exc:  # noqa: BLE001
                self._fail(job, exc)


class AsyncGroupCommitter(BaseGroupCommitter):
    """Group commit on an ``AsyncEngine`` (one event loop)."""

    def __init__(
        self, engine: AsyncEngine, flush_delay: float, retry: RetryPolicy = DEFAULT_RETRY
    ) -> None:
        super().__init__(flush_delay, retry, redact(engine.url))
        self._engine = engine
        self.lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()

    async def run(
        self,
        factory: Callable[[], Op[T]] | None = None,
        calls: StaticCalls | None = None,
        on_commit: Callable[[], None] | None = None,
    ) -> T:
        job = Job(factory, calls, on_commit)
        self._queue.append(job)
        async with self.lock:
            if not job.done:
                await self._commit(self._take())
        if job.error is not None:
            raise job.error
        self._raise_deferred_error()
        return job.result

    def defer(self, calls: StaticCalls) -> None:
        job = Job(calls=calls)
        self._deferred.append(job)
        self._unwaited.add(job)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.flush_delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        task = asyncio.ensure_future(self.flush(raise_errors=False))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def flush(self, raise_errors: bool = True) -> None:
        if self._deferred:
            async with self.lock:
                batch = self._take()
                if batch:
                    await self._commit(batch)
        if raise_errors:
            self._raise_deferred_error()

    def cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    async def _transaction(self, batch: list[Job]) -> None:
        async def attempt() -> None:
            async with self._engine.connect() as conn, conn.begin():
                await adrive(conn, batch_op(batch))

        await aretrying(self.retry, _WHAT, attempt, self.url)
        self._settle(batch)

    async def _commit(self, batch: list[Job]) -> None:
        try:
            await self._transaction(batch)
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the callers
            if self._fail_all(batch, exc):
                return
        for job in batch:
            try:
                await self._transaction([job])
            except BaseException as exc:  # noqa: BLE001
                self._fail(job, exc)
