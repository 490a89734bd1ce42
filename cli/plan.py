"""``relaygraph plan``: look at the HTN plan a ``planned`` run made (and remade).

    relaygraph plan show THREAD            the current plan as a Mermaid flowchart
    relaygraph plan show THREAD --all      every plan the run accepted, oldest first

Paste the output into any Mermaid renderer (GitHub Markdown, mermaid.live). The plan is read
from the thread's latest checkpoint, so it works on running, stopped and finished threads.
"""

from __future__ import annotations

import sys

import typer
from relaygraph.config.checkpointing import open_checkpointer
from relaygraph.coordination.htn import Plan

plan_app = typer.Typer(add_completion=False, no_args_is_help=True,
                       help="Show the HTN plan of a planned run as a Mermaid diagram.")


def _fail(message: str) -> None:
    print(message, file=sys.stderr)
    raise typer.Exit(2)


@plan_app.command("show")
def show(
    thread_id: str = typer.Argument(..., metavar="THREAD"),
    every: bool = typer.Option(False, "--all", help="Every plan the run accepted, not only the current one."),
    checkpoint_db: str | None = typer.Option(None, "--checkpoint-db", help="Checkpoint database URL."),
) -> None:
    """Print the thread's plan as Mermaid (``flowchart TD``)."""
    with open_checkpointer(checkpoint_db) as saver:
        found = saver.get_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})
    if found is None:
        _fail(f"No run found on thread {thread_id!r} in this checkpoint database.")
    values = found.checkpoint.get("channel_values") or {}
    plans = values.get("plans") if every else [values.get("plan")]
    plans = [p for p in plans or [] if p]
    if not plans:
        _fail(f"Thread {thread_id!r} has no plan: only `relaygraph run planned` runs make one.")
    for i, raw in enumerate(plans):
        if every:
            print(f"%% plan {i + 1} of {len(plans)}")
        print(Plan.model_validate(raw).mermaid())
