"""The checkpointer factory: the one place that decides where run state is persisted.

Interim implementation on langgraph's SQLite saver; the project's own SQLAlchemy saver
(``persistence/``) replaces it here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from langgraph.checkpoint.base import BaseCheckpointSaver

from runtime.settings import get_settings


@contextmanager
def open_checkpointer(url: str | None = None) -> Iterator[BaseCheckpointSaver]:
    """A saver for ``url`` (default: settings.checkpoint_db), closed on exit."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    url = url or get_settings().checkpoint_db
    if not url.startswith("sqlite:///"):
        raise ValueError(f"Unsupported checkpoint database {url!r}: expected sqlite:///PATH.")
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), check_same_thread=False)
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()
