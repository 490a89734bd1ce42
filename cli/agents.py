"""``relaygraph agents``: the agent registry — every graph's agents and their capabilities.

    relaygraph agents                               all agents, by graph
    relaygraph agents --capability trend_analysis>=1.1 [--json]
    relaygraph agents reset-reputation [NAME...]    forget stored market reputation (all, or NAMEs)

Reputation is the auction market's, stored per agent name in the checkpoint database
(``RELAYGRAPH_CHECKPOINT_DB``); an agent without a record starts at the default.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Sequence
from typing import Any

import typer
from pydantic import ValidationError
from relaygraph.cli import registry
from relaygraph.config.settings import get_settings
from relaygraph.coordination.auctions import DEFAULT_REPUTATION, MIN_REPUTATION
from relaygraph.nodes.market_store import reputation_records, reset_reputation
from relaygraph.nodes.registry import entries, known_capabilities, parse_requirement
from rich import box
from rich.console import Console
from rich.table import Table

agents_app = typer.Typer(add_completion=False, invoke_without_command=True,
                         help="List the agent registry: agents, roles, versioned capabilities, tools.")


@agents_app.callback()
def list_agents(
    ctx: typer.Context,
    capability: list[str] | None = typer.Option(None, "--capability", metavar="NAME[>=VERSION]",
                                                help="Only agents with this capability (repeatable: all must hold)."),
    as_json: bool = typer.Option(False, "--json", help="Print the registry as JSON."),
) -> None:
    """List every graph's agents with their versioned capabilities and stored reputation."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        requirements = [parse_requirement(c) for c in capability or []]
    except ValidationError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] bad --capability: {exc.errors()[0]['msg']}", highlight=False)
        raise typer.Exit(2) from None
    graphs = [(name, registry.graph_module(name)) for name in registry.graph_names()]
    known = known_capabilities(graphs)
    unknown = sorted({r.name for r in requirements} - set(known))
    if unknown:  # a typo would otherwise list nothing and exit 0, as if no agent qualified
        Console(stderr=True).print(f"[bold red]error:[/] no agent declares capability {', '.join(unknown)}; "
                                   f"known capabilities: {', '.join(known)}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    rows = entries(graphs, *requirements)
    stored = reputation_records(get_settings().checkpoint_db)
    rows = [r.model_copy(update={k: stored[r.name][k] for k in ("reputation", "contracts", "breaches")})
            if r.name in stored else r for r in rows]
    if as_json:
        sys.stdout.write(json.dumps([r.model_dump() for r in rows], indent=2) + "\n")
        return
    # One table per graph (its name the title: one column less), one capability and one tool per
    # line, never cut: capabilities and tools are single tokens (segmentation@2.0, validate_dataset *)
    # that a fold would split mid-word. Their columns do not wrap; when the terminal is too narrow
    # for that, each agent is listed as a block instead, one token per line.
    console = Console()
    for line in agent_lines(rows, console.width):
        console.print(line, highlight=False, soft_wrap=True)
    if not rows:
        console.print("no agents" + (" with " + " and ".join(capability or []) if capability else ""), highlight=False)
    elif any(row.runtime_tools for row in rows):
        console.print("* handed to the agent by its graph while it runs (bound to the task at hand)",
                      highlight=False)


def reputation_text(row: Any) -> str:
    return (f"{row.reputation:g} ({row.breaches}/{row.contracts} breached)"
            + (" below min" if row.reputation < MIN_REPUTATION else "")
            if row.reputation is not None else f"{DEFAULT_REPUTATION:g} (default)")


def shown_tools(row: Any) -> list[str]:
    return [f"{t} *" if t in row.runtime_tools else t for t in row.tools]


def agent_lines(rows: Sequence[Any], width: int) -> list[str]:
    """The registry as text lines at most ``width`` wide where the tokens allow, never splitting a
    capability or a tool: tables when every token fits whole, else one block per agent."""
    lines: list[str] = []
    for graph in dict.fromkeys(r.graph for r in rows):
        out = io.StringIO()
        table = Table(title=graph, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("agent", overflow="fold")
        table.add_column("role", overflow="fold")
        table.add_column("capabilities", no_wrap=True)
        table.add_column("tools", no_wrap=True)
        table.add_column("reputation", overflow="fold")
        members = [r for r in rows if r.graph == graph]
        for row in members:
            table.add_row(row.name, row.role, "\n".join(row.capabilities) or "—", "\n".join(shown_tools(row)) or "—",
                          reputation_text(row))
        Console(file=out, width=width, color_system=None, highlight=False).print(table)
        shown = out.getvalue().splitlines()
        tokens = {t for r in members for t in (*r.capabilities, *shown_tools(r), r.name)}
        if "…" in out.getvalue() or not all(any(t in line for line in shown) for t in tokens):
            break  # this graph's table would split a token at this width: list every graph as blocks
        lines += shown
    else:
        return lines
    blocks: list[str] = []
    for graph in dict.fromkeys(r.graph for r in rows):
        blocks.append(graph)
        for row in (r for r in rows if r.graph == graph):
            blocks += [f"  {row.name} ({row.role})", f"    reputation {reputation_text(row)}"]
            blocks += [f"    capability {c}" for c in row.capabilities] or ["    capability —"]
            blocks += [f"    tool {t}" for t in shown_tools(row)] or ["    tool —"]
    return blocks


@agents_app.command("reset-reputation")
def reset(names: list[str] | None = typer.Argument(None, metavar="[NAME...]",
                                                   help="Agents to reset (default: every stored one).")) -> None:
    """Forget stored market reputation, so the agents start again at the default."""
    db = get_settings().checkpoint_db
    if names:
        unknown = [n for n in names if n not in reputation_records(db)]
        if unknown:
            Console(stderr=True).print(f"[bold red]error:[/] no stored reputation for {', '.join(unknown)}; "
                                       "`relaygraph agents` lists the agents and their reputation.", highlight=False)
            raise typer.Exit(2)
    cleared = reset_reputation(db, names or None)
    Console().print(f"reset reputation of {', '.join(cleared)} (back to the default {DEFAULT_REPUTATION:g})"
                    if cleared else "no stored reputation to reset", highlight=False)
