"""What each graph offers a person: description, ``--param`` keys, nodes to approve before.

One source for ``relaygraph graphs`` (readable), ``relaygraph graphs --json`` and the graph list
at the end of ``relaygraph run --help``: the graphs ``langgraph.json`` lists
(:mod:`relaygraph.cli.registry`), each module's ``DESCRIPTION`` and ``PARAMS``
(:mod:`relaygraph.nodes.params`), and the nodes a gate can stand before — the same set
``--approve-before`` accepts (:func:`relaygraph.cli.threads.node_names`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer.core
from relaygraph.cli import registry
from relaygraph.cli.threads import node_names
from relaygraph.nodes.params import RunParams, field_info

if TYPE_CHECKING:  # typer vendors click (typer._click) and passes its own Context and formatter
    from typer._click import Context, HelpFormatter


def graph_info(name: str) -> dict[str, Any]:
    """One graph as ``relaygraph graphs --json`` lists it."""
    module = registry.graph_module(name)
    schema: type[RunParams] = getattr(module, "PARAMS", RunParams)
    return {
        "name": name,
        "description": getattr(module, "DESCRIPTION", ""),
        "params": {key: field_info(schema, key) for key in schema.model_fields},
        "approvable_nodes": sorted(node_names(module.graph)),
    }


def catalog() -> list[dict[str, Any]]:
    return [graph_info(name) for name in registry.graph_names()]


def _default(value: Any) -> str:
    if value is None:
        return ""
    text = ",".join(map(str, value)) if isinstance(value, list) else json.dumps(value) if isinstance(
        value, dict) else str(value)
    return f", default {text}"


def own_param_lines(info: dict[str, Any]) -> list[str]:
    """``KEY  what it accepts, default …  description`` for the graph's own keys."""
    return [f"{key}: {p['accepts']}{_default(p['default'])}" + (f" — {p['description']}" if _adds(p) else "")
            for key, p in info["params"].items() if not p["common"]]


def _adds(param: dict[str, Any]) -> bool:
    """Whether a key's description says more than what it accepts (a free-form text key's
    "accepts" *is* its description: printed once, not twice)."""
    return bool(param["description"]) and param["description"].rstrip(".") != param["accepts"]


def common_param_line() -> str:
    """The keys every graph takes (RunParams), once."""
    return ", ".join(f"{key} ({field_info(RunParams, key)['accepts']})" for key in RunParams.model_fields)


class RunCommand(typer.core.TyperCommand):
    """``run --help`` ends with each graph's ``--param`` keys and approvable nodes, read from the
    graphs only when the help is shown (importing every graph on each run would be slow)."""

    def format_epilog(self, ctx: Context, formatter: HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        with formatter.section("Graphs (relaygraph graphs --json for types, defaults and ranges)"):
            for info in catalog():
                formatter.write_text(f"{info['name']}: approve before {', '.join(info['approvable_nodes'])}")
                with formatter.indentation():
                    for line in own_param_lines(info):
                        formatter.write_text(f"--param {line}")
                    if not own_param_lines(info):
                        formatter.write_text("(no --param keys of its own)")
            formatter.write_paragraph()
            formatter.write_text(f"Every graph also takes --param {common_param_line()}.")
