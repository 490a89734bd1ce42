"""Checkpointer factory for ``langgraph dev`` / LangGraph API servers.

langgraph.json::

    "checkpointer": {"path": "relaygraph.cli.langgraph_dev.checkpointer"}

The server enters ``checkpointer()`` once at start-up and uses the saver for every run,
so threads persist in ``RELAYGRAPH_CHECKPOINT_DB`` (default ``sqlite:///relaygraph.db``)
across restarts instead of the server's in-memory store. Why here, at the top: the saver
is handed tracing's checkpoint listener, so node spans of server runs carry their
checkpoint ids (nobody streams ``checkpoints`` under the server).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from langgraph.checkpoint.sqlalchemy.aio import AsyncSQLAlchemySaver
from relaygraph.config.checkpointing import open_async_checkpointer
from relaygraph.observability.instrument_langchain import checkpoint_listener


@asynccontextmanager
async def checkpointer() -> AsyncIterator[AsyncSQLAlchemySaver]:
    """The async saver on ``RELAYGRAPH_CHECKPOINT_DB``, schema ready, reporting to tracing."""
    async with open_async_checkpointer(listeners=[checkpoint_listener]) as saver:
        yield saver
