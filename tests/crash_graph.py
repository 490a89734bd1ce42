"""A small fan-out graph run in a child process that kills itself after the k-th saved write.

    python tests/crash_graph.py DB_URL THREAD KILL_AFTER   (0: never; prints the write count)

(tests fork a child and call :func:`run` there, which skips the interpreter start per kill).

``START → plan → (a, b, c in parallel) → join → result``: a kill after the k-th ``put_writes``
lands between a step's writes and the next checkpoint, for every k — the windows in which
LangGraph's ``next`` looks empty although the run has not finished.
"""

from __future__ import annotations

import operator
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.sqlalchemy import SQLAlchemySaver
from langgraph.graph import END, START, StateGraph


class State(TypedDict, total=False):
    task: str
    parts: Annotated[list[str], operator.add]
    result: dict[str, Any]


def build() -> StateGraph:
    builder = StateGraph(State)
    builder.add_node("plan", lambda s: {"parts": [f"plan:{s['task']}"]})
    for name in ("a", "b", "c"):
        builder.add_node(name, lambda s, name=name: {"parts": [name]})
        builder.add_edge("plan", name)
        builder.add_edge(name, "join")
    builder.add_node("join", lambda s: {"parts": ["join"]})
    builder.add_node("result", lambda s: {"result": {"status": "completed", "parts": sorted(s["parts"])}})
    builder.add_edge(START, "plan")
    builder.add_edge("join", "result")
    builder.add_edge("result", END)
    return builder


EXPECTED = {"status": "completed", "parts": sorted(["plan:t", "a", "b", "c", "join"])}


@contextmanager
def killed_after_put_writes(kill_after: int, method: str = "put_writes") -> Iterator[list[int]]:
    """While inside, SIGKILL this process right after the ``kill_after``-th saved write (0:
    never) — or, with ``method="put"``, right after the ``kill_after``-th saved checkpoint.
    Yields a one-item list that counts the saves so far.

    The one place that patches ``SQLAlchemySaver.put_writes``/``put`` (this module's :func:`run`
    and ``crash_runner.py``'s ``CRASH_AFTER_PUT_WRITES``/``CRASH_AFTER_PUT`` use it)."""
    count = [0]
    original = getattr(SQLAlchemySaver, method)

    def saved(self: SQLAlchemySaver, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        count[0] += 1
        if count[0] == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(SQLAlchemySaver, method, saved)
    try:
        yield count
    finally:
        setattr(SQLAlchemySaver, method, original)


def run(url: str, thread: str, kill_after: int, durability: str = "sync") -> int:
    """Run the graph on ``thread``; SIGKILL this process after the ``kill_after``-th saved write
    (0: never). Returns how many writes were saved."""
    with killed_after_put_writes(kill_after) as count, SQLAlchemySaver.from_conn_string(url) as saver:
        saver.setup()
        graph = build().compile(checkpointer=saver)
        graph.invoke({"task": "t"}, {"configurable": {"thread_id": thread}}, durability=durability)
    return count[0]


if __name__ == "__main__":
    print(run(sys.argv[1], sys.argv[2], int(sys.argv[3])))
