"""Checkpointer factory for ``langgraph dev`` / LangGraph API servers.

langgraph.json::

    "checkpointer": {"path": "./persistence/langgraph_dev.py:checkpointer"}

The server enters ``checkpointer()`` once at start-up and uses the saver for every run,
so threads persist in ``RELAYGRAPH_CHECKPOINT_DB`` (default ``sqlite:///relaygraph.db``)
across restarts instead of the server's in-memory store.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

# langgraph dev imports this file by path; make the package importable from anywhere.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from persistence.aio import AsyncSQLAlchemySaver  # noqa: E402
from persistence.urls import DEFAULT_URL  # noqa: E402


@asynccontextmanager
async def checkpointer() -> AsyncIterator[AsyncSQLAlchemySaver]:
    """The async saver on ``RELAYGRAPH_CHECKPOINT_DB``, schema ready."""
    url = os.environ.get("RELAYGRAPH_CHECKPOINT_DB") or DEFAULT_URL
    async with AsyncSQLAlchemySaver.from_conn_string(url) as saver:
        await saver.setup()
        yield saver
