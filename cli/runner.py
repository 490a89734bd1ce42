"""Running a workflow: compile with the checkpointer, stream progress, resume after a failure.

Failures are recorded by the graph itself (:mod:`relaygraph.nodes.failures`), so a run here,
a plain ``graph.invoke`` and a ``langgraph dev`` run leave the same state; this module only
reports what the graph did.

Used by the CLI and usable from Python. It takes an uncompiled ``StateGraph`` (from a graph
module's ``build_graph()``) so that ``runtime`` never imports ``graphs``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.checkpoint.sqlalchemy import (
    ConnectionLostError,
    Lease,
    SQLAlchemySaver,
    thread_lease,
)
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, Durability
from relaygraph.observability import instrument_langchain, tracing

INTERRUPT = "__interrupt__"  # the channel of interrupt writes (langgraph._internal._constants; not public)

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[str, dict[str, Any]], None]


@dataclass
class RunOutcome:
    """What a run returned: its final values, or the interrupt it is waiting on."""

    thread_id: str
    values: dict[str, Any]
    interrupts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def waiting(self) -> bool:
        return bool(self.interrupts)


def new_thread_id() -> str:
    return uuid.uuid4().hex[:12]


def run_config(thread_id: str, graph_name: str, overrides: dict[str, Any] | None = None) -> RunnableConfig:
    """Run config: the thread, per-run settings overrides, and the graph name in metadata
    (kept in every checkpoint, so ``resume`` knows which graph a thread belongs to)."""
    configurable = {"thread_id": thread_id, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    return {"configurable": configurable, "metadata": {"relaygraph_graph": graph_name}}


def compile_graph(
    builder: StateGraph, checkpointer: BaseCheckpointSaver | None, name: str, **kwargs: Any
) -> CompiledStateGraph:
    """Compile for a run of relaygraph's: marked :data:`instrument_langchain.INSTRUMENTED`, so it is
    traced whatever the builder (a plain ``StateGraph`` handed to the runner is relaygraph's run too)."""
    return instrument_langchain.instrumented(builder.compile(checkpointer=checkpointer, name=name, **kwargs))


def execute(
    graph: CompiledStateGraph,
    graph_input: dict[str, Any] | Command | None,
    config: RunnableConfig,
    on_progress: ProgressCallback | None = None,
) -> RunOutcome:
    """Stream a run to its end (or to an interrupt), reporting each node's update.

    An agent that failed on its last attempt is in the final state (``errors``, ``result.status``
    ``failed``/``partial``), written there by the graph; :func:`retry_point` finds where
    ``resume`` picks such a run up again.

    The database going away mid-run: the saver retries (``RetryPolicy``); past its bound the run
    stops with ``ConnectionLostError`` naming this thread (continue it with ``resume``). A run
    whose result was computed and saved is never reported as failed because reading it back
    failed: its outcome then comes from the run's own last state.
    """
    thread_id = config["configurable"]["thread_id"]
    # Whether the thread has a checkpoint to continue from if the database goes away.
    resumable = [graph_input is None or isinstance(graph_input, Command)
                 or bool(config["configurable"].get("checkpoint_id"))]

    def saved(payload: dict[str, Any]) -> None:
        # Tracing: node spans end, and stored spans catch up, at each commit (a kill loses neither).
        instrument_langchain.checkpoint_listener(payload)
        # a checkpoint, not writes (they may come first)
        if "parent_config" in payload and payload["config"]["configurable"].get("thread_id") == thread_id:
            resumable[0] = True

    saver = graph.checkpointer if isinstance(graph.checkpointer, SQLAlchemySaver) else None
    if saver is not None:
        saver.add_listener(saved)
    seen: set[str] = set()  # nodes whose updates the run reported
    try:
        with _run_lease(graph.checkpointer, thread_id) as lease:
            return _execute(graph, graph_input, config, on_progress, lease, seen)
    except ConnectionLostError as exc:
        if exc.thread_id:
            raise
        raise exc.for_thread(thread_id, resumable=resumable[0], result_computed="result" in seen) from exc
    finally:
        if saver is not None:
            saver.remove_listener(saved)


def _run_lease(checkpointer: Any, thread_id: str) -> AbstractContextManager[Lease]:
    """One run per thread at a time (:func:`langgraph.checkpoint.sqlalchemy.thread_lease`):
    a second process on a busy thread is refused instead of forking its history."""
    if isinstance(checkpointer, SQLAlchemySaver):
        return thread_lease(checkpointer.engine, thread_id, retry=checkpointer.retry)
    return nullcontext(Lease(thread_id))


def _execute(
    graph: CompiledStateGraph,
    graph_input: dict[str, Any] | Command | None,
    config: RunnableConfig,
    on_progress: ProgressCallback | None,
    lease: Lease,
    seen: set[str],
) -> RunOutcome:
    final: dict[str, Any] | None = None  # the run's last state, as the stream reported it
    for mode, chunk in _traced_stream(graph, graph_input, config):
        if mode == "values":
            final = chunk
            continue
        node, update = chunk
        if node == INTERRUPT:
            continue
        if isinstance(update, dict) and "result" in update:
            seen.add("result")
        if on_progress:
            on_progress(node, update if isinstance(update, dict) else {})
        if not (isinstance(update, dict) and "result" in update):
            lease.verify()  # still this run's thread before the next step (lease.py)
    head: RunnableConfig = {**config, "configurable": {
        k: v for k, v in config.get("configurable", {}).items() if k != "checkpoint_id"}}
    try:
        return outcome(graph, head)  # the thread's head, also after a run forked from an earlier checkpoint
    except ConnectionLostError:
        if not (isinstance(final, dict) and final.get("result")):
            raise
        # The stream ended, so every checkpoint was committed (sync durability): the run finished.
        logger.warning("thread %r finished, but reading its final state back failed; "
                       "reporting the state the run ended with", config["configurable"]["thread_id"])
        return RunOutcome(thread_id=config["configurable"]["thread_id"], values=dict(final))


def retry_point(graph: CompiledStateGraph, config: RunnableConfig) -> RunnableConfig | None:
    """For a finished run whose result is ``failed``: the config of the checkpoint just before
    the failed node ran, so running from it (a fork) redoes that node and what follows, and
    keeps every agent that finished before it. None when there is nothing to retry."""
    snapshot = graph.get_state(config)
    if snapshot.next or (snapshot.values.get("result") or {}).get("status") != "failed":
        return None
    failed = {e.get("node") for e in snapshot.values.get("errors") or []}
    for earlier in graph.get_state_history(config):  # newest first
        if failed & set(earlier.next):  # the run's own options stay; only the checkpoint moves
            moved: RunnableConfig = {**config, "configurable": {**config.get("configurable", {}),
                                                                **earlier.config.get("configurable", {})}}
            return moved
    return None


#: Every finished agent step is committed before the next starts: a step costs seconds of model
#: calls and a commit milliseconds, so the CLI does not take ``async`` durability's risk of
#: losing the last step's writes on a crash (README, "Durability").
DURABILITY: Durability = "sync"


# --- tracing: node spans learn the checkpoints they started from and produced -------------


def _traced_stream(
    graph: CompiledStateGraph, graph_input: dict[str, Any] | Command | None, config: RunnableConfig
) -> Iterator[tuple[str, Any]]:
    """The top-level graph's ``("updates", (node, update))`` and ``("values", state)`` events.
    With tracing on, the ``checkpoints`` stream (subgraphs included) is passed to tracing, so
    node spans carry their checkpoint ids."""
    tracing.ensure_configured()
    if not tracing.enabled():
        for mode, chunk in graph.stream(graph_input, config, stream_mode=["updates", "values"],
                                        durability=DURABILITY):
            yield from _events(mode, chunk)
        return
    config = with_trace_root(graph, config)
    with instrument_langchain.checkpoint_feed(config["configurable"]["thread_id"]) as feed:
        for namespace, mode, chunk in graph.stream(graph_input, config,
                                                   stream_mode=["updates", "values", "checkpoints"],
                                                   subgraphs=True, durability=DURABILITY):
            if mode == "checkpoints":
                feed(cast(dict[str, Any], chunk))  # stream_mode "checkpoints": one checkpoint event
            elif not namespace:
                yield from _events(mode, chunk)


def _events(mode: str, chunk: Any) -> Iterator[tuple[str, Any]]:
    if mode == "values":
        yield "values", chunk
    else:  # stream_mode "updates": {node: update}
        for item in cast(dict[str, Any], chunk).items():
            yield "updates", item


def with_trace_root(graph: CompiledStateGraph, config: RunnableConfig) -> RunnableConfig:
    """Name this run's root span in its metadata (kept in every checkpoint it writes) and link it
    to the root span of the thread's previous run (resume, retry, fork), read from the thread's
    latest checkpoint — see :data:`relaygraph.observability.tracing.ROOT_KEY`."""
    metadata: dict[str, Any] = {**(config.get("metadata") or {}), tracing.ROOT_KEY: tracing.new_root_ref()}
    metadata.pop(tracing.LINK_KEY, None)
    if isinstance(graph.checkpointer, BaseCheckpointSaver):
        head = graph.checkpointer.get_tuple({"configurable": {
            "thread_id": config["configurable"]["thread_id"], "checkpoint_ns": ""}})
        previous = (head.metadata or {}).get(tracing.ROOT_KEY) if head else None
        if head is not None and isinstance(previous, str) and tracing.parse_ref(previous):
            metadata[tracing.LINK_KEY] = previous
            _stand_in_for_killed_root(graph.checkpointer, head, previous)
    return {**config, "metadata": metadata}


def _stand_in_for_killed_root(saver: BaseCheckpointSaver, head: CheckpointTuple, ref: str) -> None:
    """The previous run's root span is missing from the span store when its process was killed:
    store a stand-in over that run's checkpoints, so its stored spans have their root and this
    run's link resolves (:func:`relaygraph.observability.tracing.store_killed_root`)."""
    if tracing.store_url() is None:
        return
    thread_id = str(head.config["configurable"]["thread_id"])
    first = head
    for first in saver.list({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}},
                            filter={tracing.ROOT_KEY: ref}):
        pass  # newest first: the last one is the run's first checkpoint
    graph = (head.metadata or {}).get("relaygraph_graph") or (head.metadata or {}).get("graph_id") or "workflow"
    try:
        tracing.store_killed_root(ref, thread_id=thread_id, graph=str(graph),
                                  first_ns=_ts_ns(first.checkpoint["ts"]), last_ns=_ts_ns(head.checkpoint["ts"]))
    except Exception as exc:  # noqa: BLE001 - tracing never stops a run
        logger.warning("could not store a stand-in for the root span of thread %r's previous run: %s",
                       thread_id, exc)


def _ts_ns(ts: str) -> int:
    """A checkpoint's ISO 8601 timestamp in Unix nanoseconds (microsecond precision)."""
    moment = datetime.fromisoformat(ts)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def outcome(graph: CompiledStateGraph, config: RunnableConfig) -> RunOutcome:
    thread_id = config["configurable"]["thread_id"]
    if graph.checkpointer is None:
        raise RuntimeError("outcome() needs a checkpointer to read the thread's state")
    snapshot = graph.get_state(config)
    interrupts = [
        {"id": i.id, "value": i.value} for task in snapshot.tasks for i in getattr(task, "interrupts", ())
    ]
    return RunOutcome(thread_id=thread_id, values=dict(snapshot.values), interrupts=interrupts)


# --- where a thread stands: finished is decided by the run's own end ------------------------

ThreadStatus = Literal["new", "finished", "waiting", "unfinished"]


def thread_status(graph: CompiledStateGraph, config: RunnableConfig) -> ThreadStatus:
    """``new`` (no checkpoint), ``waiting`` (paused at an interrupt, e.g. an approval gate),
    ``finished`` (the result node has written ``result``) or ``unfinished`` (anything else).

    Why not ``get_state(...).next``: LangGraph leaves out of ``next`` the tasks that already
    saved their writes. A run killed after a step's writes and before the next checkpoint has
    an empty ``next`` and no result — it is not finished, and ``invoke(None)`` continues it
    (the saved writes are applied, finished tasks are not run again).
    Likewise a run whose result node's writes were saved but whose last checkpoint was not (the
    database went away in between): its state shows the result, but its head still has the result
    task to apply, so it is ``unfinished`` and continuing it saves that checkpoint.
    """
    snapshot = graph.get_state(config)
    if not snapshot.created_at:
        return "new"
    if any(getattr(task, "interrupts", ()) for task in snapshot.tasks):
        return "waiting"
    if snapshot.values.get("result") and not snapshot.next and not snapshot.tasks:
        return "finished"
    return "unfinished"


def continue_run(
    graph: CompiledStateGraph, config: RunnableConfig, on_progress: ProgressCallback | None = None
) -> RunOutcome:
    """Continue an unfinished thread from its last checkpoint (the helper for Python callers;
    over ``langgraph dev``'s API the same is a run on the thread with ``"input": null``).

    Raises ``ValueError`` for a thread that is new, finished, or waiting for an answer to an
    interrupt (answer that with ``Command(resume=...)`` instead).
    """
    status = thread_status(graph, config)
    if status != "unfinished":
        raise ValueError(f"Thread {config['configurable']['thread_id']!r} is {status}; nothing to continue.")
    return execute(graph, None, config, on_progress)


def thread_graph_name(checkpointer: BaseCheckpointSaver, thread_id: str) -> str | None:
    """The graph a thread was started with, from its latest checkpoint's metadata: the CLI's
    own key, else the ``graph_id`` that ``langgraph dev`` records for its runs."""
    found = checkpointer.get_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})
    if found is None:
        return None
    metadata = found.metadata or {}
    name = metadata.get("relaygraph_graph") or metadata.get("graph_id")
    return str(name) if name else None


@dataclass
class ThreadInfo:
    """One thread as ``relaygraph threads`` lists it — read from the checkpoint alone, so it
    works for threads that ``langgraph dev`` or Python callers created."""

    thread_id: str
    graph: str | None
    status: str  # the result's status, "waiting" (an interrupt), or "unfinished"
    updated: str  # the latest checkpoint's timestamp (ISO 8601)
    checkpoints_step: int | None
    waiting_on: list[str] = field(default_factory=list)  # nodes whose approval it waits for


def describe_thread(checkpointer: BaseCheckpointSaver, thread_id: str) -> ThreadInfo | None:
    found = checkpointer.get_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})
    if found is None:
        return None
    metadata = found.metadata or {}
    values = found.checkpoint.get("channel_values") or {}
    result = values.get("result")
    interrupts = [v for _, channel, v in found.pending_writes or () if channel == INTERRUPT]
    waiting_on = sorted({str(i.value.get("node", "?")) for batch in interrupts
                         for i in (batch if isinstance(batch, list | tuple) else [batch])
                         if isinstance(getattr(i, "value", None), dict)})
    if interrupts:
        status = "waiting"
    elif isinstance(result, dict) and result.get("status"):
        status = str(result["status"])
    else:
        status = "unfinished"
    name = metadata.get("relaygraph_graph") or metadata.get("graph_id")
    return ThreadInfo(thread_id=thread_id, graph=str(name) if name else None, status=status,
                      updated=str(found.checkpoint.get("ts", "")), checkpoints_step=metadata.get("step"),
                      waiting_on=waiting_on)


def refuse_reuse(info: ThreadInfo) -> str:
    """Why a new run may not start on an existing thread, and what to do instead.

    A new input on a used thread would be merged into the old state (its context, its data, its
    approvals), so a run could quietly analyse the old file or walk past a pending approval.
    """
    thread = info.thread_id
    if info.status == "waiting":
        return (f"Thread {thread!r} is waiting for approval before {', '.join(info.waiting_on) or 'a node'}; "
                f"answer with `relaygraph resume {thread} --approve` or `--reject`.")
    if info.status == "unfinished":
        return (f"Thread {thread!r} has an unfinished run; continue it with `relaygraph resume {thread}`, "
                "or start a new run on another --thread-id.")
    return (f"Thread {thread!r} already ran to its end (status {info.status}); start a new run on another "
            f"--thread-id, or continue from one of its checkpoints with `relaygraph fork {thread}`.")
