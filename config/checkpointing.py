"""The checkpointer factory: the one place that decides where run state is persisted.

Everything that runs a graph (CLI, runner, tests) opens its saver here, so switching the
database is one URL: ``--checkpoint-db`` / ``RELAYGRAPH_CHECKPOINT_DB`` (default
``sqlite:///relaygraph.db``). SQLite, PostgreSQL and MariaDB/MySQL are supported by
relaygraph's own SQLAlchemy saver (``persistence/``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlalchemy import AsyncSQLAlchemySaver, RetryPolicy, SQLAlchemySaver
from langgraph.checkpoint.sqlalchemy.urls import is_memory_sqlite, normalize_url
from relaygraph.config.settings import get_settings


def checkpoint_url(url: str | None = None) -> str:
    """The URL to use: the explicit one, else the configured default."""
    return url or get_settings().checkpoint_db


def missing_sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names when it is not there, else None (other databases: None).

    Why: opening a SQLite URL creates the file (and its lock file), so a read-only command
    (``traces show``, ``db stats``) asked about a database that does not exist checks this first
    and says there is nothing stored instead of leaving an empty database behind."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "sqlite" or is_memory_sqlite(parsed) or parsed.query.get("uri"):
        return None
    database = str(parsed.database)
    if database.startswith("file:"):
        return None
    path = Path(database).expanduser()
    return None if path.exists() else path


def _with_retry(options: dict[str, Any]) -> dict[str, Any]:
    """A lost connection is retried for ``RELAYGRAPH_DB_RECONNECT_S`` unless the caller says."""
    options.setdefault("retry", RetryPolicy(reconnect_within_s=get_settings().db_reconnect_s))
    return options


@contextmanager
def open_checkpointer(url: str | None = None, **options: Any) -> Iterator[SQLAlchemySaver]:
    """A ready (schema created/migrated) sync saver for ``url``, closed on exit.

    Raises ``langgraph.checkpoint.sqlalchemy.PersistenceError`` subclasses with one-line messages for an
    unknown scheme, a missing driver, an unreachable database or a too-new schema.
    """
    with SQLAlchemySaver.from_conn_string(checkpoint_url(url), **_with_retry(options)) as saver:
        saver.setup()
        yield saver


@asynccontextmanager
async def open_async_checkpointer(
    url: str | None = None, **options: Any
) -> AsyncIterator[AsyncSQLAlchemySaver]:
    """Async twin of :func:`open_checkpointer` (for ``ainvoke`` and servers)."""
    async with AsyncSQLAlchemySaver.from_conn_string(checkpoint_url(url), **_with_retry(options)) as saver:
        await saver.setup()
        yield saver
