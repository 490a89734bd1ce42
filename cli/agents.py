"""``relaygraph agents``: the agent registry — every graph's agents and their capabilities.

    relaygraph agents                               all agents, by graph
    relaygraph agents --capability trend_analysis>=1.1 [--json]
"""

from __future__ import annotations

import json
import sys

import typer
from pydantic import ValidationError
from relaygraph.cli import registry
from relaygraph.nodes.registry import entries, parse_requirement
from rich.console import Console
from rich.table import Table

agents_app = typer.Typer(add_completion=False, invoke_without_command=True,
                         help="List the agent registry: agents, roles, versioned capabilities, tools.")


@agents_app.callback()
def list_agents(
    capability: list[str] | None = typer.Option(None, "--capability", metavar="NAME[>=VERSION]",
                                                help="Only agents with this capability (repeatable: all must hold)."),
    as_json: bool = typer.Option(False, "--json", help="Print the registry as JSON."),
) -> None:
    """List every graph's agents with their versioned capabilities."""
    try:
        requirements = [parse_requirement(c) for c in capability or []]
    except ValidationError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] bad --capability: {exc.errors()[0]['msg']}", highlight=False)
        raise typer.Exit(2) from None
    rows = entries([(name, registry.graph_module(name)) for name in registry.graph_names()], *requirements)
    if as_json:
        sys.stdout.write(json.dumps([r.model_dump() for r in rows], indent=2) + "\n")
        return
    table = Table("graph", "agent", "role", "capabilities", "tools")
    for row in rows:
        table.add_row(row.graph, row.name, row.role, ", ".join(row.capabilities) or "—", ", ".join(row.tools))
    Console().print(table)
