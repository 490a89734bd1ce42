"""``relaygraph plan``: look at the HTN plan a ``planned`` run made (and remade).

    relaygraph plan show THREAD            the current plan as a Mermaid flowchart
    relaygraph plan show THREAD --all      every plan the run accepted, oldest first

Paste the output into any Mermaid renderer (GitHub Markdown, mermaid.live). The plan is read
from the thread's latest checkpoint, so it works on running, stopped and finished threads.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import typer
from relaygraph.config.checkpointing import open_checkpointer
from relaygraph.coordination.htn import Plan
from relaygraph.nodes.planning import PARTITION_TOOLS

plan_app = typer.Typer(add_completion=False, no_args_is_help=True,
                       help="Show the HTN plan of a planned run as a Mermaid diagram.")


def _fail(message: str) -> NoReturn:
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
    stored = values.get("plans") if every else [values.get("plan")]
    plans: list[dict[str, Any]] = [p for p in stored or [] if p]
    if not plans:
        _fail(f"Thread {thread_id!r} has no plan: only `relaygraph run planned` runs make one.")
    if not every:
        print(Plan.model_validate(plans[0]).mermaid())
        return
    print(every_plan(plans, values.get("replans") or []))


def every_plan(plans: list[dict[str, Any]], replans: list[dict[str, Any]]) -> str:
    """Markdown: one heading and one valid ```mermaid block per accepted plan (a diagram takes
    one ``flowchart`` header), the task that failed and ended each replaced plan marked, and a
    plan scaled down to partitions saying so on the tasks that ran once per partition."""
    accepted = [r for r in replans if r.get("action") == "replan" and r.get("accepted")]
    out: list[str] = []
    partitions = 1
    for i, raw in enumerate(plans):
        plan = Plan.model_validate(raw)
        ended = accepted[i] if i < len(accepted) and i + 1 < len(plans) else None
        title = f"## Plan {i + 1} of {len(plans)}"
        if ended:
            title += f" — replaced: {ended.get('task')} failed ({ended.get('failure_class')}: {ended.get('policy')})"
        diagram = plan.mermaid().splitlines()
        if partitions > 1:
            title += f" — scaled down to {partitions} partitions"
            diagram = [line.replace("<br/>", f" ×{partitions} partitions<br/>", 1)
                       if any(f"{t.name}<br/>" in line for t in plan.tasks if set(t.tools) <= PARTITION_TOOLS)
                       else line for line in diagram]
        made_by = accepted[i - 1] if 0 < i <= len(accepted) else None
        kept = [t for t in plan.tasks if t.name in ((made_by or {}).get("kept") or [])]
        if kept:  # finished before the replan, its artifacts still hold: not run again
            title += f" — kept from plan {i}: {', '.join(t.name for t in kept)}"
            nodes = {"n" + "".join(ch if ch.isalnum() else "_" for ch in t.id): t for t in kept}
            diagram = [line.replace(f'. {nodes[line.split("(", 1)[0].strip()].name}<br/>',
                                    f'. {nodes[line.split("(", 1)[0].strip()].name} · kept, done<br/>', 1)
                       if line.split("(", 1)[0].strip() in nodes else line for line in diagram]
            diagram += ["  classDef kept fill:#eee,stroke:#888,stroke-dasharray:4 3,color:#555",
                        *(f"  class {node} kept" for node in nodes)]
        if ended:
            failed = next((t for t in plan.tasks if t.name == ended.get("task")), None)
            if failed:
                node = "n" + "".join(ch if ch.isalnum() else "_" for ch in failed.id)
                diagram += ["  classDef failed stroke:#c00,stroke-width:3px", f"  class {node} failed"]
            partitions = int(((ended.get("changes") or {}).get("facts") or {}).get("partitions") or partitions)
        out += [title, "", "```mermaid", *diagram, "```", ""]
    return "\n".join(out).rstrip() + "\n"
