"""Errors raised by the checkpoint savers.

Every message says what went wrong *and* what to do next, because these surface in
the CLI as a single line with no traceback.
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
    """A stored value could not be decoded; names exactly where it lives.

    Why a dedicated error: a raw msgpack/unpickling traceback says nothing about
    which thread to repair or delete.
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


class ThreadBusyError(PersistenceError):
    """Another process holds this thread's run lease: two runs would fork its history."""
