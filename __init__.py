"""relaygraph: teams of smolagents ReAct agents as durable, traced LangGraph state graphs.

One import root. The repository's top-level folders are its sub-packages (``graphs/`` is
``relaygraph.graphs``, ``nodes/`` is ``relaygraph.nodes``, ...); the checkpoint saver is its own
distribution, ``langgraph-checkpoint-sqlalchemy`` (``langgraph.checkpoint.sqlalchemy``), built
from ``persistence/``. Importing this package does nothing else: no settings are read, no
tracing is configured.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("relaygraph")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
