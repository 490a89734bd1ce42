"""``relaygraph agents``: the agent registry — every graph's agents and their capabilities.

    relaygraph agents                               all agents, by graph
    relaygraph agents --capability trend_analysis>=1.1 [--json]
    relaygraph agents reset-reputation [NAME...]    forget stored market reputation (all, or NAMEs)

Reputation is the auction market's, stored per agent name in the checkpoint database
(``RELAYGRAPH_CHECKPOINT_DB``); an agent without a record starts at the default.
"""

from __future__ import annotations

import json
import sys

import typer
from pydantic import ValidationError
from relaygraph.cli import registry
from relaygraph.config.settings import get_settings
from relaygraph.coordination.auctions import DEFAULT_REPUTATION, MIN_REPUTATION
from relaygraph.nodes.market_store import reputation_records, reset_reputation
from relaygraph.nodes.registry import entries, parse_requirement
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
    rows = entries([(name, registry.graph_module(name)) for name in registry.graph_names()], *requirements)
    stored = reputation_records(get_settings().checkpoint_db)
    rows = [r.model_copy(update={k: stored[r.name][k] for k in ("reputation", "contracts", "breaches")})
            if r.name in stored else r for r in rows]
    if as_json:
        sys.stdout.write(json.dumps([r.model_dump() for r in rows], indent=2) + "\n")
        return
    table = Table("graph", "agent", "role", "capabilities", "tools", "reputation")
    for row in rows:
        rep = (f"{row.reputation:g} ({row.breaches}/{row.contracts} breached)"
               + (" below min" if row.reputation < MIN_REPUTATION else "")
               if row.reputation is not None else f"— ({DEFAULT_REPUTATION:g} default)")
        table.add_row(row.graph, row.name, row.role, ", ".join(row.capabilities) or "—", ", ".join(row.tools), rep)
    Console().print(table)


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
