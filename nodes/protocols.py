"""What a node function is, typed the way ``StateGraph.add_node`` declares it.

LangGraph's ``add_node`` overloads take callables with *named* ``state`` and ``config``
parameters; ``Callable[[dict[str, Any], RunnableConfig], ...]`` has positional-only ones, which
mypy does not accept there. Node factories return these protocols instead.

``state`` is ``Any`` here: ``add_node`` binds it to a type variable bounded by LangGraph's
``StateLike`` (TypedDict, dataclass, pydantic model), which a plain ``dict`` does not meet,
while relaygraph's nodes read their state as ``dict[str, Any]``.
"""

from __future__ import annotations

from typing import Any, Protocol

from langchain_core.runnables import RunnableConfig


class Node(Protocol):
    """A LangGraph node that reads the state and the run's config: ``node(state, config)``,
    returning its update (a dict, a ``Command``, or ``None``). Named, like any function (the
    graph shows ``__name__`` where a node has no name of its own)."""

    __name__: str

    def __call__(self, state: Any, config: RunnableConfig) -> Any: ...


class UpdateNode(Protocol):
    """A :class:`Node` whose update is always a dict."""

    __name__: str

    def __call__(self, state: Any, config: RunnableConfig) -> dict[str, Any]: ...


class StateNode(Protocol):
    """A node that reads only the state: ``node(state)``, returning a dict update."""

    __name__: str

    def __call__(self, state: Any) -> dict[str, Any]: ...
