"""The ``relaygraph`` script: bad ``--param``\\ s refused before the heavy imports, then the CLI.

The full CLI (:mod:`relaygraph.cli.main`) imports LangGraph, smolagents, langchain and pandas —
seconds of work before a command body runs. ``relaygraph run GRAPH --param ...`` with a key or
value the graph refuses must be one line and exit 2 *before any work*, so this module reads the
command line first, with nothing but the standard library, pydantic and the graph's light
``--param`` schema (:mod:`relaygraph.cli.params`). Anything it does not fully understand (an
unknown option, ``--help``, ``--debug``, a graph whose schema is not light) it leaves to the
full CLI, which checks the same params again with the same code: the message and exit code are
the same either way.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

#: ``run``'s options that take a value (``relaygraph.cli.main.run``; tests/test_params.py checks).
RUN_VALUE_OPTIONS = frozenset({"--task", "--input", "--data", "--thread-id", "--model", "--checkpoint-db",
                               "--approve-before", "--max-concurrency", "--param"})
#: ``run``'s flags, less ``--debug`` (a traceback is wanted: the full CLI shows it) and ``--help``.
RUN_FLAGS = frozenset({"--json", "--trace"})


def run_params(argv: Sequence[str]) -> tuple[str, list[str]] | None:
    """``(graph, [KEY=VALUE, ...])`` of a ``run`` command line; None when it is not one, or has
    anything this reader does not know (left to the full CLI)."""
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
    return (graph, params) if graph is not None and params else None


def precheck(argv: Sequence[str]) -> str | None:
    """The one-line error for a ``--param`` the graph refuses, or None (nothing found wrong)."""
    found = run_params(argv)
    if found is None:
        return None
    from relaygraph.cli.params import check_params
    from relaygraph.nodes.params import ParamError

    try:
        check_params(*found)
    except ParamError as exc:
        return str(exc).strip().splitlines()[0]
    return None


def main() -> None:
    problem = precheck(sys.argv[1:])
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    from relaygraph.cli.main import main as full_cli

    full_cli()


if __name__ == "__main__":
    main()
