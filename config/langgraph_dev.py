"""Checkpointer factory for ``langgraph dev`` / LangGraph API servers.

langgraph.json::

    "checkpointer": {"path": "relaygraph.config.langgraph_dev.checkpointer"}

The server enters ``checkpointer()`` once at start-up and uses the saver for every run,
so threads persist in ``RELAYGRAPH_CHECKPOINT_DB`` (default ``sqlite:///relaygraph.db``)
across restarts instead of the server's in-memory store.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from langgraph.checkpoint.sqlalchemy.aio import AsyncSQLAlchemySaver
from langgraph.checkpoint.sqlalchemy.urls import DEFAULT_URL


@asynccontextmanager
async def checkpointer() -> AsyncIterator[AsyncSQLAlchemySaver]:
    """The async saver on ``RELAYGRAPH_CHECKPOINT_DB``, schema ready."""
    url = os.environ.get("RELAYGRAPH_CHECKPOINT_DB") or DEFAULT_URL
    async with AsyncSQLAlchemySaver.from_conn_string(url) as saver:
        await saver.setup()
        yield saver
