"""The ``local`` model provider: a bundled small LLM behind an OpenAI-compatible server.

relaygraph starts llama-cpp-python's server (with relaygraph's own chat handler, tool-call
grammar and request normalisation) on a free loopback port, so smolagents'
``OpenAIServerModel`` and langchain-openai's ``ChatOpenAI`` use it exactly like the ``openai``
provider — only the base URL differs. Needs the ``local`` extra (see :data:`INSTALL_HINT`).

Public API:

* :class:`LocalModelServer` — one server process; context manager.
* :func:`shared_server` — the process-wide server, started lazily and reused by every agent.
* :func:`shutdown_shared_server` — stop it (the CLI calls this when a run ends; also atexit).
* :func:`local_available` — ``(ok, reason)`` for clear skips and error messages.
"""

from __future__ import annotations

import atexit
import threading

from relaygraph.providers.local_llm.model_file import (
    INSTALL_HINT,
    MODEL_ID,
    LocalModelUnavailable,
    find_model_path,
    local_available,
)
from relaygraph.providers.local_llm.server import LocalModelServer

__all__ = [
    "INSTALL_HINT",
    "MODEL_ID",
    "LocalModelServer",
    "LocalModelUnavailable",
    "find_model_path",
    "local_available",
    "shared_server",
    "shutdown_shared_server",
]

#: Context window of the shared server. SmolLM2 was trained on 8k tokens, and smolagents'
#: system prompt plus a few steps of memory overflow 4k.
SHARED_N_CTX = 8192

_shared: LocalModelServer | None = None
_shared_lock = threading.Lock()
_atexit_registered = False


def shared_server() -> LocalModelServer:
    """The process-wide local server, started on first call (thread-safe) and then reused.

    Agents running in parallel threads share one model process; requests are served one at a
    time by llama.cpp, which is what a 2-core machine can do anyway.
    """
    global _shared, _atexit_registered
    with _shared_lock:
        if _shared is None or not _shared.running:
            server = LocalModelServer(n_ctx=SHARED_N_CTX)
            server.start()
            _shared = server
            if not _atexit_registered:
                atexit.register(shutdown_shared_server)
                _atexit_registered = True
        return _shared


def shutdown_shared_server() -> None:
    """Stop the shared server if one is running (idempotent)."""
    global _shared
    with _shared_lock:
        server, _shared = _shared, None
    if server is not None:
        server.stop()
