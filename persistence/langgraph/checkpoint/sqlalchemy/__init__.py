"""relaygraph persistence: LangGraph checkpoint savers on SQLAlchemy.

``SQLAlchemySaver`` (sync ``Engine``) and ``AsyncSQLAlchemySaver`` (``AsyncEngine``) store
checkpoints in SQLite, PostgreSQL or MariaDB/MySQL with one schema, incremental blobs
and append-only deltas for growing lists such as message histories.
"""

from langgraph.checkpoint.sqlalchemy import schema
from langgraph.checkpoint.sqlalchemy.aio import AsyncSQLAlchemySaver
from langgraph.checkpoint.sqlalchemy.base import CheckpointListener, StorageOptions
from langgraph.checkpoint.sqlalchemy.errors import (
    CheckpointCorruptError,
    ConnectionLostError,
    DatabaseUnavailableError,
    LeaseLostError,
    MetadataTooLargeError,
    MissingDriverError,
    PersistenceError,
    SchemaVersionError,
    ThreadBusyError,
    UnstorableTextError,
    UnsupportedDatabaseURL,
)
from langgraph.checkpoint.sqlalchemy.lease import Lease, thread_lease
from langgraph.checkpoint.sqlalchemy.migrations import MigrationSet, create_tables
from langgraph.checkpoint.sqlalchemy.retry import RetryPolicy
from langgraph.checkpoint.sqlalchemy.saver import SQLAlchemySaver
from langgraph.checkpoint.sqlalchemy.urls import normalize_url

__all__ = [
    "AsyncSQLAlchemySaver",
    "CheckpointCorruptError",
    "CheckpointListener",
    "ConnectionLostError",
    "DatabaseUnavailableError",
    "Lease",
    "LeaseLostError",
    "MetadataTooLargeError",
    "MigrationSet",
    "MissingDriverError",
    "PersistenceError",
    "RetryPolicy",
    "SQLAlchemySaver",
    "SchemaVersionError",
    "ThreadBusyError",
    "StorageOptions",
    "UnstorableTextError",
    "UnsupportedDatabaseURL",
    "create_tables",
    "normalize_url",
    "thread_lease",
]
