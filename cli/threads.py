"""Thread-level CLI: run options, approval answers, checkpoint history and forks.

    relaygraph run GRAPH --approve-before NODE [--max-concurrency N] [--param KEY=VALUE]
    relaygraph resume THREAD --approve|--reject [--comment TEXT]
    relaygraph history THREAD                      checkpoints: step, node, time
    relaygraph fork THREAD --checkpoint ID         continue from ID on a new thread

Kept out of :mod:`relaygraph.cli.main` so that module stays a thin command table; ``register(app)``
adds the ``history`` and ``fork`` commands to it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from collections import Counter, defaultdict
from typing import Any, cast

import typer
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointMetadata
from langgraph.checkpoint.sqlalchemy.maintenance import all_threads
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command
from relaygraph.cli import runner
from relaygraph.cli.common import (
    Progress,
    UsageError,
    err,
    finish_provider,
    guarded,
    out,
    print_outcome,
)
from relaygraph.cli.params import parse_params
from relaygraph.cli.registry import graph_module
from relaygraph.config.checkpointing import open_checkpointer
from relaygraph.config.settings import get_settings
from relaygraph.nodes.approval import approvable_names
from relaygraph.nodes.params import RunParams, validate_params
from relaygraph.tools import Workspace

OPTIONS_KEY = "relaygraph_options"


# --- run options -----------------------------------------------------------------------------


def node_names(graph: CompiledStateGraph) -> set[str]:
    """Every node a gate can stand before, subgraph nodes included (by their own name)."""
    names = approvable_names(graph.builder)  # fan-out nodes add their branches' agent names
    for node_id in graph.get_graph(xray=True).nodes:
        names.update(node_id.split(":"))  # "customers_lead:segments": the lead and its worker
    return names - {"__start__", "__end__"}


def with_run_options(
    config: RunnableConfig,
    graph: CompiledStateGraph,
    approve_before: list[str] | None,
    max_concurrency: int | None,
    params: list[str] | None,
    schema: type[RunParams] = RunParams,
) -> RunnableConfig:
    """Add approval gates, the concurrency cap and ``--param``s to a run config (the params
    validated against the graph's declared ``PARAMS`` schema before any work)."""
    config["configurable"].update(validate_params(schema, parse_params(params)))
    if approve_before:
        unknown = sorted(set(approve_before) - node_names(graph))
        if unknown:
            raise UsageError(f"--approve-before: no node {', '.join(unknown)} in this graph; "
                             f"nodes: {', '.join(sorted(node_names(graph)))}.")
        config["configurable"]["approve_before"] = list(dict.fromkeys(approve_before))
    if max_concurrency is not None:
        if max_concurrency < 1:
            raise UsageError("--max-concurrency must be at least 1.")
        config["max_concurrency"] = max_concurrency  # LangGraph reads it at the top level
    # Kept in every checkpoint's metadata (as JSON: LangGraph keeps only scalar metadata values),
    # so resume and fork run under the same options.
    config["metadata"][OPTIONS_KEY] = json.dumps({
        "configurable": {k: v for k, v in config["configurable"].items() if k not in ("thread_id", "model")},
        "max_concurrency": max_concurrency,
    }, default=str)
    return config


def restore_run_options(saver: BaseCheckpointSaver, config: RunnableConfig) -> RunnableConfig:
    """Re-apply the options a thread was started with (approval gates above all: a gate that
    is not configured on resume would run its node without looking at the answer)."""
    thread = config["configurable"]["thread_id"]
    found = saver.get_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": ""}})
    stored = ((found.metadata if found else None) or {}).get(OPTIONS_KEY)
    options = json.loads(stored) if isinstance(stored, str) else {}
    for key, value in (options.get("configurable") or {}).items():
        config["configurable"].setdefault(key, value)
    if options.get("max_concurrency"):
        config["max_concurrency"] = options["max_concurrency"]
    if stored:
        config["metadata"][OPTIONS_KEY] = stored
    return config


# --- resume with an approval answer --------------------------------------------------------------


def pending_interrupts(graph: CompiledStateGraph, config: RunnableConfig) -> list[Any]:
    return list(graph.get_state(config).interrupts)


def resume_input(
    graph: CompiledStateGraph, config: RunnableConfig, approve: bool, reject: bool, comment: str | None
) -> Command | None:
    """What ``resume`` sends: None after a crash, ``Command(resume=...)`` to answer approvals."""
    if approve and reject:
        raise UsageError("Choose one of --approve and --reject.")
    thread = config["configurable"]["thread_id"]
    waiting = pending_interrupts(graph, config)
    if not waiting:
        if approve or reject or comment:
            raise UsageError(f"Thread {thread!r} is not waiting for approval; resume it without "
                             "--approve/--reject/--comment.")
        return None
    if not (approve or reject):
        nodes = sorted({str((i.value or {}).get("node", "?")) for i in waiting if isinstance(i.value, dict)})
        raise UsageError(f"Thread {thread!r} is waiting for approval before {', '.join(nodes) or 'a node'}; "
                         "resume with --approve or --reject [--comment TEXT].")
    decision = {"approved": approve, "comment": comment}
    if len(waiting) == 1:
        return Command(resume=decision)
    return Command(resume={i.id: decision for i in waiting})  # parallel branches: answer each


# --- history and fork --------------------------------------------------------------------------


def names(nodes: tuple[str, ...]) -> str:
    """``specialist×4`` for four parallel branches of one node."""
    counts = Counter(nodes)
    return ", ".join(f"{n}×{c}" if c > 1 else n for n, c in counts.items()) or "-"


def checkpoint_rows(graph: CompiledStateGraph, thread_id: str) -> list[dict[str, Any]]:
    """The thread's checkpoints, oldest first: id, step, which node(s) wrote it, next, time."""
    snapshots = list(graph.get_state_history({"configurable": {"thread_id": thread_id}}))[::-1]
    rows: list[dict[str, Any]] = []
    previous_next: tuple[str, ...] = ()
    for snap in snapshots:
        meta = snap.metadata or {}
        source = meta.get("source", "")
        wrote = "(input)" if source == "input" else ("(update)" if source == "update" else
                                                     names(previous_next))
        rows.append({"checkpoint_id": snap.config["configurable"]["checkpoint_id"], "step": meta.get("step"),
                     "node": wrote, "next": names(snap.next), "created_at": snap.created_at,
                     "waiting": bool(snap.interrupts), "forked_from": meta.get("relaygraph_forked_from")})
        previous_next = snap.next
    return rows


def copy_until(saver: BaseCheckpointSaver, source: str, target: str, checkpoint_id: str) -> int:
    """Copy ``source``'s checkpoints up to ``checkpoint_id`` (all namespaces, with their pending
    writes) to ``target``, so the fork point is ``target``'s latest checkpoint. Returns how many.

    The fork point's own pending writes are copied only when it is the source's latest
    checkpoint: otherwise they are the results of the steps taken after it — exactly what a
    fork re-runs.

    Uses only the saver contract (``list``/``put``/``put_writes``), so it works with any saver;
    ``copy_thread`` would copy the later checkpoints too, which a fork must not inherit.
    """
    every = list(saver.list({"configurable": {"thread_id": source}}))
    is_latest = max(t.config["configurable"]["checkpoint_id"] for t in every) == checkpoint_id
    tuples = [t for t in every if t.config["configurable"]["checkpoint_id"] <= checkpoint_id]
    tuples.sort(key=lambda t: t.config["configurable"]["checkpoint_id"])
    for item in tuples:
        ns = item.config["configurable"].get("checkpoint_ns", "")
        parent = (item.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        put_config: RunnableConfig = {"configurable": {"thread_id": target, "checkpoint_ns": ns,
                                       **({"checkpoint_id": parent} if parent else {})}}
        # LangGraph's CheckpointMetadata names only its own keys; runs store more (graph, options).
        metadata: dict[str, Any] = dict(item.metadata or {})
        if item.config["configurable"]["checkpoint_id"] == checkpoint_id:
            metadata["relaygraph_forked_from"] = {"thread_id": source, "checkpoint_id": checkpoint_id}
        stored = saver.put(put_config, item.checkpoint, cast(CheckpointMetadata, metadata),
                           dict(item.checkpoint["channel_versions"]))
        by_task: dict[str, list[tuple[str, Any]]] = defaultdict(list)
        at_fork = item.config["configurable"]["checkpoint_id"] == checkpoint_id
        for task_id, channel, value in (item.pending_writes or []) if (is_latest or not at_fork) else []:
            by_task[task_id].append((channel, value))
        for task_id, writes in by_task.items():
            saver.put_writes(stored, writes, task_id)
    return len(tuples)


def copy_outputs(source: str, target: str, model: str | None) -> None:
    """The fork gets the source's run folder: files that its checkpoints refer to by name."""
    settings = get_settings(model=model)
    src = Workspace(settings.data_dir, settings.output_dir, source)
    dst = Workspace(settings.data_dir, settings.output_dir, target)
    if src.run_dir.is_dir():
        shutil.copytree(src.run_dir, dst.run_dir, dirs_exist_ok=True)


def history_command(
    thread_id: str = typer.Argument(..., metavar="THREAD"),
    checkpoint_db: str | None = typer.Option(None, "--checkpoint-db", help="Checkpoint database URL."),
    as_json: bool = typer.Option(False, "--json", help="Print the checkpoints as JSON."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """List a thread's checkpoints (step, node, time), oldest first — fork from any of them.

    \b
    Example:
      relaygraph history q3
    """
    with open_checkpointer(checkpoint_db) as saver:
        graph_name = runner.thread_graph_name(saver, thread_id)
        if graph_name is None:
            raise UsageError(f"No run found on thread {thread_id!r} in this checkpoint database.")
        graph = runner.compile_graph(graph_module(graph_name).build_graph(), saver, graph_name)
        rows = checkpoint_rows(graph, thread_id)
    if as_json:
        sys.stdout.write(json.dumps({"thread_id": thread_id, "graph": graph_name, "checkpoints": rows},
                                    indent=2, default=str) + "\n")
        return
    out.print(f"[bold]{graph_name}[/] thread [bold]{thread_id}[/] — {len(rows)} checkpoints", highlight=False)
    for row in rows:
        wait = "  [yellow]waiting for approval[/]" if row["waiting"] else ""
        out.print(f"{row['checkpoint_id']}  step {row['step']!s:>3}  {row['created_at'][:19]}  "
                  f"{row['node']:<22} → {row['next'] if row['next'] != '-' else 'END'}{wait}",
                  highlight=False, soft_wrap=True)
    out.print(f"Fork with: relaygraph fork {thread_id} --checkpoint CHECKPOINT_ID", highlight=False)


def fork_command(
    thread_id: str = typer.Argument(..., metavar="THREAD"),
    checkpoint: str = typer.Option(..., "--checkpoint", help="Checkpoint to continue from (see `history`)."),
    new_thread: str | None = typer.Option(None, "--thread-id", help="The new thread (default: new id)."),
    model: str | None = typer.Option(None, "--model", help="Provider: offline, openai or local."),
    checkpoint_db: str | None = typer.Option(None, "--checkpoint-db", help="Checkpoint database URL."),
    as_json: bool = typer.Option(False, "--json", help="Print the final state as JSON."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Continue a thread from an earlier checkpoint on a new thread (the original is untouched).

    \b
    Example:
      relaygraph fork q3 --checkpoint 1f0c2a... --thread-id q3-retry
    """
    target = new_thread or runner.new_thread_id()
    try:
        with open_checkpointer(checkpoint_db) as saver:
            graph_name = runner.thread_graph_name(saver, thread_id)
            if graph_name is None:
                raise UsageError(f"No run found on thread {thread_id!r} in this checkpoint database.")
            if saver.get_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": "",
                                                 "checkpoint_id": checkpoint}}) is None:
                raise UsageError(f"Thread {thread_id!r} has no checkpoint {checkpoint!r}; "
                                 f"list them with `relaygraph history {thread_id}`.")
            if runner.thread_graph_name(saver, target) is not None:
                raise UsageError(f"Thread {target!r} already exists; choose another --thread-id.")
            copy_until(saver, thread_id, target, checkpoint)
            copy_outputs(thread_id, target, model)
            graph = runner.compile_graph(graph_module(graph_name).build_graph(), saver, graph_name)
            config = restore_run_options(saver, runner.run_config(target, graph_name, {"model": model}))
            if not as_json:
                out.print(f"Forked [bold]{thread_id}[/] at {checkpoint} onto thread [bold]{target}[/]",
                          highlight=False)
            if runner.thread_status(graph, config) == "unfinished":
                outcome = runner.execute(graph, None, config, Progress(err if as_json else out, as_json))
            else:  # finished there, or waiting for approval: nothing to run until resumed
                outcome = runner.outcome(graph, config)
    finally:
        finish_provider(model)
    print_outcome(outcome, as_json)


def threads_command(
    checkpoint_db: str | None = typer.Option(None, "--checkpoint-db", help="Checkpoint database URL."),
    limit: int = typer.Option(50, "--limit", min=1, help="Show at most this many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print the threads as JSON."),
) -> None:
    """List the threads in the checkpoint database — from the CLI, Python or langgraph dev.

    \b
    Example:
      relaygraph threads --limit 10
    """
    with open_checkpointer(checkpoint_db) as saver:
        infos = [i for i in (runner.describe_thread(saver, t) for t in all_threads(saver)) if i is not None]
    infos = sorted(infos, key=lambda i: i.updated, reverse=True)[:limit]
    if as_json:
        sys.stdout.write(json.dumps([dataclasses.asdict(i) for i in infos], indent=2) + "\n")
        return
    if not infos:
        out.print("No threads in this checkpoint database.")
        return
    out.print(f"{'THREAD':<24} {'GRAPH':<14} {'STATUS':<11} UPDATED", highlight=False)
    for info in infos:
        status = info.status + (f" ({', '.join(info.waiting_on)})" if info.waiting_on else "")
        out.print(f"{info.thread_id:<24} {info.graph or '?':<14} {status:<11} {info.updated}",
                  highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    """Add ``threads``, ``history`` and ``fork`` to the main CLI (each guarded like the others)."""
    app.command("threads")(guarded(threads_command))
    app.command("history")(guarded(history_command))
    app.command("fork")(guarded(fork_command))
