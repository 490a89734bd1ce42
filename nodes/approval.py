"""Human approval before any named node, decided per run.

    node ──► gate: is NODE in approve_before? ──no──► run NODE
                        │ yes
                        ▼
                  interrupt({...})  ── the run pauses; the checkpoint keeps it ──
                        │ Command(resume={"approved": true|false, "comment": ...})
             approved ──┴── rejected ──► skip NODE, record the decision, go to the finish node

:func:`with_approval` wraps every node of a builder once, at build time, and each gate reads
the node names at *run* time — from ``build_graph(approve_before=[...])`` or from the run
config's ``configurable.approve_before`` — so one compiled graph serves the CLI
(``--approve-before NODE``), Python and ``langgraph dev`` alike.

A rejection ends the run cleanly instead of failing it: the decision goes into ``approvals``
(an append-only list, so parallel branches can record theirs at once), every later node sees
it and does nothing, and the finish node (the one writing ``result``) reports ``rejected``.
Every rejection — of a node or of one branch — is also a ``progress`` entry and an ``errors``
entry with status/outcome ``rejected``, so progress lines, ``result.errors`` and the thread's
history show what never ran and why, as they do for what failed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig
from langgraph._internal._constants import (
    CONFIG_KEY_CHECKPOINT_MAP,
    CONFIG_KEY_CHECKPOINT_NS,
    CONFIG_KEY_CHECKPOINTER,
    CONFIG_KEY_RESUMING,
    CONFIG_KEY_TASK_ID,
    INTERRUPT,
    NS_SEP,
    RESUME,
)
from langgraph._internal._runnable import RunnableCallable
from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt
from pydantic import BaseModel, ConfigDict, Field, model_validator
from relaygraph.nodes.contracts import AgentFailure, NodeProgress
from relaygraph.nodes.entry import check_new_run

APPROVAL = "approval"


class ApprovalDecision(BaseModel):
    """What a human answers to an approval interrupt (``Command(resume=...)``)."""

    model_config = ConfigDict(extra="forbid")

    approved: bool
    comment: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="before")
    @classmethod
    def _accept_shorthands(cls, value: Any) -> Any:
        """``True``/``False`` and ``"approve"``/``"reject"`` are accepted as well as the dict."""
        if isinstance(value, bool):
            return {"approved": value}
        if isinstance(value, str) and value.strip().lower() in ("approve", "approved", "yes"):
            return {"approved": True}
        if isinstance(value, str) and value.strip().lower() in ("reject", "rejected", "no"):
            return {"approved": False}
        return value


def configured_targets(config: RunnableConfig | None) -> set[str]:
    """The run config's ``configurable.approve_before`` (a list or a comma-separated string)."""
    configured = ((config or {}).get("configurable") or {}).get("approve_before") or []
    if isinstance(configured, str):
        configured = configured.split(",")
    return {n.strip() for n in configured if n and n.strip()}


def approval_targets(
    config: RunnableConfig | None, fixed: Iterable[str] = (), state: dict[str, Any] | None = None
) -> set[str]:
    """Nodes to approve: build-time names, ``configurable.approve_before``, and the gates the
    thread recorded earlier (``state["gates"]``) — so a later call on the same thread that
    forgets ``approve_before`` (a plain ``invoke(None)``, a new input) still stops at them."""
    recorded = (state or {}).get("gates") or []
    return {n.strip() for n in [*fixed, *recorded] if n and n.strip()} | configured_targets(config)


def rejected(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """The rejection that ended this run, if any (routers and result nodes check this)."""
    for record in (state or {}).get("approvals") or []:
        if record.get("approved") is False and not record.get("branch"):  # a branch's rejection ends the branch
            return record
    return None


@dataclasses.dataclass(frozen=True)
class BranchGates:
    """A fan-out node whose branches can be gated one by one, by their agent's name.

    ``names`` lists the names a gate may use (for ``--approve-before`` and ``graphs --json``);
    ``of(state)`` names the branch a ``Send`` runs (its own id first, then its agent's name);
    ``on_reject(state, record)`` is the node's update when a human rejects that branch (e.g. its
    slot marked rejected); the gate adds the ``rejected`` progress and errors entries, and the
    other branches and the run go on.
    """

    names: tuple[str, ...]
    of: Callable[[dict[str, Any]], tuple[str, ...]]
    on_reject: Callable[[dict[str, Any], dict[str, Any]], Any]


def branch_gated(node: Any, gates: BranchGates) -> Any:
    """Mark ``node`` (a node function) as gated per branch; :func:`with_approval` reads it."""
    node.branch_gates = gates
    return node


def _branch_gates(runnable: Any) -> BranchGates | None:
    found = getattr(runnable, "branch_gates", None) or getattr(getattr(runnable, "func", None), "branch_gates", None)
    return found if isinstance(found, BranchGates) else None


def approvable_names(builder: StateGraph) -> set[str]:
    """Every name ``approve_before`` takes for ``builder``: its nodes and their branches' names."""
    names = set(builder.nodes)
    for spec in builder.nodes.values():
        gates = _branch_gates(spec.runnable)
        names |= set(gates.names) if gates else set()
    return names


def ask_approval(node: str, state: dict[str, Any]) -> dict[str, Any]:
    """Pause for a decision on ``node``; return the decision as a record for ``approvals``."""
    answer = interrupt({
        "type": APPROVAL,
        "node": node,
        "question": f"Approve running node {node!r}?",
        "task": state.get("task"),
        "resume_with": {"approved": "true | false", "comment": "optional text"},
    })
    decision = ApprovalDecision.model_validate(answer)
    return {"node": node, **decision.model_dump(), "decided_at": datetime.now(UTC).isoformat()}


def _with_writes(output: Any, writes: dict[str, list[Any]]) -> Any:
    """``output`` (a dict update, a ``Command`` or ``None``) with ``writes`` added to its update.

    Each key of ``writes`` is a reducer-backed list in state (``approvals``, ``gates``), so added
    values go in front of any the node wrote itself rather than replacing them."""
    writes = {key: values for key, values in writes.items() if values}
    if not writes:
        return output
    if isinstance(output, Command):
        if isinstance(output.update, dict):
            update: Any = _with_writes(output.update, writes)
        else:  # None, or a sequence of (key, value) writes
            update = [*writes.items(), *(output.update or [])]
        return dataclasses.replace(output, update=update)
    if isinstance(output, dict):
        return {**output, **{key: [*values, *output.get(key, [])] for key, values in writes.items()}}
    return writes  # the node returned no update; these writes are all of it


def rejection_marks(asked: str, record: dict[str, Any]) -> dict[str, list[Any]]:
    """What a rejection of ``asked`` (a node or a branch id) adds to state: a ``rejected``
    progress entry and an ``errors`` entry naming it, with the human's comment."""
    why = f"rejected before it ran{': ' + record['comment'] if record.get('comment') else ''}"
    progress = NodeProgress(node=asked, status="rejected", duration_s=0.0, attempt=0, detail=why)
    error = AgentFailure(agent=asked, node=asked, reason=why, attempt=0, outcome="rejected",
                         branch=record.get("branch"))
    return {"progress": [progress.model_dump()], "errors": [error.model_dump(exclude_none=True)]}


def _approval_writes(state: dict[str, Any], config: RunnableConfig,
                     record: dict[str, Any] | None = None) -> dict[str, list[Any]]:
    """What a gate adds to its node's update: the approval ``record`` (if a human decided), and
    the run config's gates when the thread has not recorded them, so they hold for every later
    call on the thread (graphs without a ``gates`` key drop it)."""
    new = configured_targets(config) - set((state or {}).get("gates") or [])
    return {"approvals": [record] if record else [], "gates": sorted(new)}


# --- a paused thread stays paused --------------------------------------------------------------
# A gate on a graph's first node asks before any node has written ``gates`` into the state, so a
# later call that forgets ``approve_before`` would find neither the config nor the state naming
# it, and run the node unapproved. The interrupt the gate raised is still in the pending writes
# of the checkpoint the thread paused at, so the gate looks there:
#   * resuming (``invoke(None)``, ``langgraph dev`` with input null): LangGraph re-runs exactly
#     the interrupted task from that checkpoint — a task that finds its own approval interrupt
#     there asks again;
#   * a new input on the paused thread: the run starts from an ``input`` checkpoint whose parent
#     is the paused one — an entry node (reached from START) whose approval was pending there,
#     unanswered, asks again.
# Looked up only for a node no gate names: on a resumed run's first step, and for entry nodes.


@dataclasses.dataclass(frozen=True)
class _Lookup:
    saver: Any
    where: dict[str, Any]  # the checkpoint the task runs from
    thread: dict[str, Any]  # its thread and namespace
    task_id: str
    resuming: bool


def _lookup(config: RunnableConfig, entry: bool) -> _Lookup | None:
    """Where to look for a pending approval of this task, or None when no call can have skipped
    one (no saver; not a resumed run's first step; not an entry node of the root graph)."""
    conf = (config or {}).get("configurable") or {}
    saver, task_id = conf.get(CONFIG_KEY_CHECKPOINTER), conf.get(CONFIG_KEY_TASK_ID)
    resuming = bool(conf.get(CONFIG_KEY_RESUMING))
    graph_ns = str(conf.get(CONFIG_KEY_CHECKPOINT_NS) or "").rpartition(NS_SEP)[0]
    if saver is None or task_id is None or "thread_id" not in conf or not (resuming or (entry and not graph_ns)):
        return None
    checkpoint_id = (conf.get(CONFIG_KEY_CHECKPOINT_MAP) or {}).get(graph_ns)
    if checkpoint_id is None:
        return None
    where = {"configurable": {"thread_id": conf["thread_id"], "checkpoint_ns": graph_ns,
                              "checkpoint_id": checkpoint_id}}
    thread = {"configurable": {"thread_id": conf["thread_id"], "checkpoint_ns": graph_ns}}
    return _Lookup(saver, where, thread, str(task_id), resuming)


def _asked(name: str, found: Any, task_id: str | None) -> bool:
    """Did ``found`` (a checkpoint tuple) keep an unanswered approval interrupt for ``name``
    (raised by ``task_id``, or by any task when None)?"""
    writes = getattr(found, "pending_writes", None) or ()
    answered = {writer for writer, channel, _ in writes if channel == RESUME}
    for writer, channel, value in writes:
        if channel != INTERRUPT or (task_id is not None and writer != task_id):
            continue
        if task_id is None and writer in answered:
            continue
        for item in value if isinstance(value, list | tuple) else [value]:
            asked = getattr(item, "value", None)
            if isinstance(asked, dict) and asked.get("type") == APPROVAL and asked.get("node") == name:
                return True
    return False


def paused_at_gate(name: str, config: RunnableConfig, entry: bool = False) -> bool:
    """Is the thread waiting for approval of ``name`` at the checkpoint this task runs from
    (resumed) or at the one its new input replaced (an entry node)?"""
    lookup = _lookup(config, entry)
    if lookup is None:
        return False
    if lookup.resuming:
        return _asked(name, lookup.saver.get_tuple(lookup.where), lookup.task_id)
    return _asked(name, _replaced(lookup.saver.list(lookup.thread, before=lookup.where, limit=2)), None)


async def apaused_at_gate(name: str, config: RunnableConfig, entry: bool = False) -> bool:
    lookup = _lookup(config, entry)
    if lookup is None:
        return False
    if lookup.resuming:
        return _asked(name, await lookup.saver.aget_tuple(lookup.where), lookup.task_id)
    older = [t async for t in lookup.saver.alist(lookup.thread, before=lookup.where, limit=2)]
    return _asked(name, _replaced(older), None)


def _replaced(older: Any) -> Any:
    """The newest stored checkpoint before this task's that is not this run's ``input`` one: the
    paused head a new input replaced. Read through ``list(before=...)``, so this run's own
    checkpoints, which ``async`` durability may not have stored yet, are never needed."""
    return next((t for t in older if (t.metadata or {}).get("source") != "input"), None)


def gate(
    name: str, inner: Runnable, *, fixed: frozenset[str], finish: str, routes_statically: bool,
    entry: bool = False, branches: BranchGates | None = None,
) -> RunnableCallable:
    """The wrapper around one node (see the module docstring), sync and async.

    The async face matters: under ``langgraph dev`` the graph runs with ``ainvoke`` and an
    async-only saver, and a subgraph node must then be entered with ``ainvoke`` too.
    With ``branches``, each branch is also gated by its own names: the question names the
    branch, and a rejection records that branch as rejected instead of ending the run.
    """

    def asked_as(state: dict[str, Any], config: RunnableConfig) -> tuple[str, bool | None]:
        """(the name the gate asks by, True: ask / False: run / None: only if paused here)."""
        targets = approval_targets(config, fixed, state)
        own = branches.of(state) if branches else ()
        if name in targets:
            return name, True
        if any(n in targets for n in own):
            return own[0], True  # asked by the branch's id: partitions of one agent are asked one by one
        return (own[0] if own else name), (None if _lookup(config, entry) is not None else False)

    def before(state: dict[str, Any], config: RunnableConfig, ask: bool, asked: str) -> tuple[str, Any]:
        """("skip", output) | ("run", (state to run with, approval record or None, extra writes))
        | ("end", output)."""
        if rejected(state) and name != finish:
            return "skip", {}  # an earlier rejection ended the run; let it reach the finish node
        if not ask:
            return "run", (state, None, {})
        record = ask_approval(asked, state)
        if record["approved"]:
            return "run", (state, record, {})
        if branches is not None and asked != name:  # this branch only: the others and the run go on
            record = {**record, "branch": asked}
            return "end", _with_writes(branches.on_reject(state, record),
                                       {"approvals": [record], **rejection_marks(asked, record)})
        marks = rejection_marks(asked, record)
        if name == finish:  # rejecting the result node still needs a result that says so
            run_state = {**state, **{key: [*(state.get(key) or []), *values]
                                     for key, values in {"approvals": [record], **marks}.items()}}
            return "run", (run_state, record, marks)
        if routes_statically:  # its edges lead on through no-op nodes to the finish node
            return "end", {"approvals": [record], **marks}
        return "end", Command(goto=finish, update={"approvals": [record], **marks})

    def gated(state: dict[str, Any], config: RunnableConfig) -> Any:
        check_new_run(state, config, entry)
        asked, ask = asked_as(state, config)
        action, value = before(state, config, paused_at_gate(asked, config, entry) if ask is None else ask, asked)
        if action != "run":
            return _with_writes(value, _approval_writes(state, config))
        run_state, record, marks = value
        output = inner.invoke(run_state, config)
        return _with_writes(output, {**_approval_writes(state, config, record), **marks})

    async def agated(state: dict[str, Any], config: RunnableConfig) -> Any:
        check_new_run(state, config, entry)
        asked, ask = asked_as(state, config)
        action, value = before(state, config,
                               await apaused_at_gate(asked, config, entry) if ask is None else ask, asked)
        if action != "run":
            return _with_writes(value, _approval_writes(state, config))
        run_state, record, marks = value
        output = await inner.ainvoke(run_state, config)
        return _with_writes(output, {**_approval_writes(state, config, record), **marks})

    return RunnableCallable(gated, agated, name=name, trace=False)


def with_approval(
    builder: StateGraph, approve_before: Iterable[str] | None = None, *, finish: str = "finalize"
) -> StateGraph:
    """Put an approval gate in front of every node of ``builder`` (in place; returns it).

    ``approve_before`` names nodes that always ask; others ask when the run config names them.
    ``finish`` is the node that writes the result (it runs even after a rejection).
    """
    fixed = frozenset(approve_before or ())
    known = approvable_names(builder)
    unknown = sorted(fixed - known)
    if unknown:
        raise ValueError(f"Cannot approve before unknown node(s) {', '.join(unknown)}; "
                         f"nodes and branches are: {', '.join(sorted(known))}.")
    if finish not in builder.nodes:
        raise ValueError(f"Finish node {finish!r} is not in the graph.")
    entries = _entry_nodes(builder)
    for name, spec in list(builder.nodes.items()):
        static = any(src == name for src, _ in builder.edges) or name in builder.branches
        if not isinstance(spec.runnable, Runnable):  # add_node stores a Runnable; the spec's type is wider
            raise TypeError(f"Node {name!r} is not a Runnable ({type(spec.runnable).__name__}).")
        branches = _branch_gates(spec.runnable)
        gated = gate(name, spec.runnable, fixed=fixed, finish=finish, routes_statically=static,
                     entry=name in entries, branches=branches)
        if branches is not None:
            gated.branch_gates = branches  # type: ignore[attr-defined]  # listed by approvable_names
        builder.nodes[name] = dataclasses.replace(spec, runnable=gated)
    return builder


def _entry_nodes(builder: StateGraph) -> set[str]:
    """Nodes a run can start with: START's edges and the targets its routers may choose (all
    nodes when a router at START declares no targets)."""
    entries = {dst for src, dst in builder.edges if src == START}
    for branch in builder.branches.get(START, {}).values():
        ends = getattr(branch, "ends", None)
        entries |= set(ends.values()) if ends else set(builder.nodes)
    return entries
