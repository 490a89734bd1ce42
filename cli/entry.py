"""The ``relaygraph`` script: a light command table, bad input refused before the heavy imports.

The full CLI (:mod:`relaygraph.cli.main`) imports LangGraph, smolagents, langchain and pandas —
seconds of work before a command body runs. ``relaygraph run GRAPH --param ...`` with a key or
value the graph refuses must be one line and exit 2 *before any work*, so this module reads the
command line first, with nothing but the standard library, pydantic and the graph's light
``--param`` schema (:mod:`relaygraph.cli.params`). Anything it does not fully understand (an
unknown option, ``--help``, ``--debug``, a graph whose schema is not light) it leaves to the
full CLI, which checks the same params again with the same code: the message and exit code are
the same either way. An unknown graph (``relaygraph run nosuchgraph``) is refused the same way,
from the registry's ``langgraph.json`` alone.

The command table itself is light too (:class:`LazyGroup`): ``relaygraph --help`` and a
mistyped command are answered from :data:`COMMANDS`, and the full CLI is imported only when a
command is resolved to run (or to show its own help). Modules are imported by dotted name
(``importlib``), as :mod:`relaygraph.cli.registry` imports the graphs: no ``import`` statement
inside a function (tests/test_layers.py), and no cycle either — nothing imports this module.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import typer.core
from relaygraph.cli import registry

if TYPE_CHECKING:  # typer vendors click (typer._click) and passes its own Context and formatter
    from typer._click import Command, Context, HelpFormatter

#: The module that defines every command (its ``app``), imported when a command is resolved.
FULL_CLI = "relaygraph.cli.main"
#: The full CLI's top-level help.
HELP = "Orchestrate teams of AI agents as durable, traced LangGraph workflows."
#: Top-level command -> its short help, in the full CLI's order (tests/test_cli.py checks both).
COMMANDS = {
    "graphs": "List the workflows: what each does, its --param keys and the nodes --approve-before takes.",
    "run": "Run a workflow; its state is checkpointed on a thread so it can be resumed.",
    "resume": "Continue an interrupted or crashed run from its last checkpoint (or answer its approval).",
    "threads": "List the threads in the checkpoint database — from the CLI, Python or langgraph dev.",
    "history": "List a thread's checkpoints (step, node, time), oldest first — fork from any of them.",
    "fork": "Continue a thread from an earlier checkpoint on a new thread (the original is untouched).",
    "db": "Inspect and prune the checkpoint database (threads, checkpoints, bytes).",
    "model": "The bundled local LLM (SmolLM2-135M-Instruct via llama.cpp) over the OpenAI protocol.",
    "traces": "Inspect the traces stored with each run (spans of runs, nodes, agents, LLM and tool calls).",
    "plan": "Show the HTN plan of a planned run as a Mermaid diagram.",
    "agents": "List the agent registry: agents, roles, versioned capabilities, tools.",
    "experience": "Show what planned runs learned from earlier runs (experience store).",
}

#: ``run``'s options that take a value (``relaygraph.cli.main.run``; tests/test_params.py checks).
RUN_VALUE_OPTIONS = frozenset({"--task", "--input", "--data", "--thread-id", "--model", "--checkpoint-db",
                               "--approve-before", "--max-concurrency", "--param"})
#: ``run``'s flags, less ``--debug`` (a traceback is wanted: the full CLI shows it) and ``--help``.
RUN_FLAGS = frozenset({"--json", "--trace"})


def run_params(argv: Sequence[str]) -> tuple[str, list[str]] | None:
    """``(graph, [KEY=VALUE, ...])`` of a ``run`` command line (params possibly none); None when it
    is not one, or has anything this reader does not know (left to the full CLI)."""
    if not argv or argv[0] != "run":
        return None
    graph: str | None = None
    params: list[str] = []
    rest = list(argv[1:])
    while rest:
        token = rest.pop(0)
        if token.startswith("-"):
            name, eq, inline = token.partition("=")
            if name in RUN_FLAGS and not eq:
                continue
            if name not in RUN_VALUE_OPTIONS:
                return None
            if not eq:
                if not rest:
                    return None
                inline = rest.pop(0)
            if name == "--param":
                params.append(inline)
        elif graph is None:
            graph = token
        else:
            return None  # a second argument: click says what is wrong
    return (graph, params) if graph is not None else None


def precheck(argv: Sequence[str]) -> str | None:
    """The one-line error for a ``run`` of a graph the registry does not list, or with a
    ``--param`` the graph refuses; None when nothing is found wrong."""
    found = run_params(argv)
    if found is None:
        return None
    graph, params = found
    try:
        registry.module_name(graph)
    except registry.UnknownGraph as exc:
        return str(exc)
    if not params:
        return None
    light = importlib.import_module("relaygraph.cli.params")  # pydantic: only for a line with --param
    try:
        light.check_params(graph, params)
    except importlib.import_module("relaygraph.nodes.params").ParamError as exc:
        return str(exc).strip().splitlines()[0]
    return None


class LazyGroup(typer.core.TyperGroup):
    """The top-level command group, listing :data:`COMMANDS` without importing them: a command
    is taken from the full CLI (:data:`FULL_CLI`) only when it is resolved."""

    def list_commands(self, ctx: Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name not in COMMANDS:
            return None
        full: Any = typer.main.get_group(importlib.import_module(FULL_CLI).app)
        command: Command | None = full.get_command(ctx, cmd_name)
        return command

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl(list(COMMANDS.items()))


def cli() -> LazyGroup:
    """The ``relaygraph`` group as the full CLI's ``app`` configures it, minus its imports."""
    return LazyGroup(name="relaygraph", help=HELP, no_args_is_help=True, rich_markup_mode=None)


def main() -> None:
    problem = precheck(sys.argv[1:])
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    cli()(prog_name="relaygraph")


if __name__ == "__main__":
    main()
