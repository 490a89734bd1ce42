"""Errors raised by the checkpoint savers.

Every message says what went wrong *and* what to do next, because these surface in
the CLI as a single line with no traceback.

The tree::

    PersistenceError
    ├── UnsupportedDatabaseURL (also ValueError)
    ├── DatabaseUnavailableError
    ├── MissingDriverError (also ImportError)
    ├── SchemaVersionError
    ├── CheckpointCorruptError   - stored data is unreadable or missing (names where)
    ├── UnstorableTextError (also ValueError) - a key or metadata string no database keeps
    ├── MetadataTooLargeError (also ValueError) - metadata over 1 MiB (values are chunked)
    └── ThreadBusyError
"""

from __future__ import annotations


class PersistenceError(Exception):
    """Base class for checkpoint-storage errors (one line, actionable)."""


class UnsupportedDatabaseURL(PersistenceError, ValueError):
    """The checkpoint database URL has a scheme relaygraph cannot use."""


class DatabaseUnavailableError(PersistenceError):
    """The checkpoint database could not be reached or opened."""


class MissingDriverError(PersistenceError, ImportError):
    """The database driver for a URL is not installed."""


class SchemaVersionError(PersistenceError):
    """The database schema is newer than this version of relaygraph understands."""


class CheckpointCorruptError(PersistenceError):
    """A stored value could not be decoded, or a row it needs is missing (a blob, a chunk
    of a large value, a delta of a chain); names exactly where it lives.

    Why a dedicated error: a raw msgpack/unpickling traceback says nothing about
    which thread to repair or delete, and a missing row must not silently drop a
    channel from the state. ``get_tuple`` raises it; ``list`` skips such checkpoints
    and reports them (see ``BaseSQLAlchemySaver.corrupt_skipped``).
    """

    def __init__(
        self,
        *,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str | None,
        channel: str,
        reason: str,
    ) -> None:
        self.thread_id = thread_id
        self.checkpoint_ns = checkpoint_ns
        self.checkpoint_id = checkpoint_id
        self.channel = channel
        self.reason = reason
        ns = f", namespace {checkpoint_ns!r}" if checkpoint_ns else ""
        super().__init__(
            f"corrupted checkpoint data in thread {thread_id!r}{ns}, checkpoint "
            f"{checkpoint_id!r}, channel {channel!r}: {reason}. Resume from an earlier "
            f"checkpoint or delete the thread (relaygraph db prune / delete_thread)."
        )


class UnstorableTextError(PersistenceError, ValueError):
    """A thread id, namespace, other key or metadata string holds text that could not be
    stored faithfully on every database: a NUL character (PostgreSQL refuses it, and
    LangGraph strips it from metadata) or a lone surrogate (not valid Unicode; no
    driver can encode it as UTF-8).

    Raised before anything is written or queried, with the field and the position,
    instead of a driver's ``DataError`` or silently changed text.
    """

    def __init__(self, field: str, value: str, index: int, problem: str) -> None:
        self.field = field
        self.value = value
        self.index = index
        self.problem = problem
        shown = value if len(value) <= 60 else value[:57] + "..."
        super().__init__(
            f"{field} {shown!r} contains {problem} at index {index}, which the checkpoint "
            f"database cannot store faithfully; remove it from the {field}"
        )


class MetadataTooLargeError(PersistenceError, ValueError):
    """A checkpoint's metadata serializes to more than the saver stores in one row.

    Channel values and writes of any size are stored in chunks; metadata is not, because
    it is kept as JSON that ``list(filter=...)`` searches. Refused on every backend (not
    only where a server's packet limit would fail the write with a lost connection).
    """


class ThreadBusyError(PersistenceError):
    """Another process holds this thread's run lease: two runs would fork its history."""


class LeaseLostError(ThreadBusyError):
    """A run's lease went with its dropped database connection, and another process took
    the thread before this run could take it back; the run stops instead of forking it."""


class ConnectionLostError(DatabaseUnavailableError):
    """The database connection was lost mid-run and could not be re-opened in time.

    Raised once the saver has retried for ``RetryPolicy.reconnect_within_s`` seconds. Every
    checkpoint committed before it is kept; nothing half-written is: continue the run once
    the database is back (``relaygraph resume THREAD``, or ``graph.invoke(None, config)``).
    ``thread_id`` is set when the caller knows the run (the CLI's runner does).
    """

    def __init__(
        self,
        *,
        what: str,
        url: object,
        waited_s: float,
        reason: str,
        thread_id: str | None = None,
        resumable: bool = True,
        result_computed: bool = False,
    ) -> None:
        self.what, self.url, self.waited_s, self.reason = what, url, waited_s, reason
        self.thread_id, self.resumable, self.result_computed = thread_id, resumable, result_computed
        where = f" {url}" if url else ""
        if result_computed:  # which of the last saves went through is unknown until it is back
            stopped = "the run had computed its result, but not all of it may be saved"
            then = (f"`relaygraph resume {thread_id or 'THREAD'}` saves what is missing "
                    "(or says the thread already finished)")
        elif not resumable:  # the run's first checkpoint was not confirmed saved
            then = (f"run it again (nothing of this run was saved), or `relaygraph resume "
                    f"{thread_id or 'THREAD'}` if the thread turns out to have a checkpoint")
            stopped = "the run stopped before its first checkpoint was confirmed saved"
        else:
            stopped = "the run stopped after its last saved checkpoint"
            then = "continue with " + (
                f"`relaygraph resume {thread_id}`" if thread_id
                else "`relaygraph resume THREAD` (or graph.invoke(None, config))"
            ) + " (if it says the thread already finished, the run's last saves went through)"
        super().__init__(
            f"lost the connection to the checkpoint database{where} during {what} and could "
            f"not reconnect for {waited_s:.1f}s ({reason}); {stopped}. Check that the "
            f"database is up and reachable, then {then}"
        )

    @classmethod
    def after(
        cls, *, what: str, url: object, waited_s: float, cause: BaseException
    ) -> ConnectionLostError:
        text = str(cause).strip()
        reason = text.splitlines()[0] if text else type(cause).__name__
        return cls(what=what, url=url, waited_s=waited_s, reason=reason)

    def for_thread(
        self, thread_id: str, *, resumable: bool = True, result_computed: bool = False
    ) -> ConnectionLostError:
        """The same error, telling which thread to resume (or, when ``resumable`` is false
        because no checkpoint of the run was saved, to run it again; ``result_computed``: the
        run's result node had finished, so resume may find the thread already finished)."""
        return ConnectionLostError(
            what=self.what, url=self.url, waited_s=self.waited_s, reason=self.reason,
            thread_id=thread_id, resumable=resumable, result_computed=result_computed,
        )
