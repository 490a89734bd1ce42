"""``--param KEY=VALUE``: parsed, and checked against a graph's schema without importing the graph.

:func:`parse_params` turns the pairs into ``configurable`` values. :data:`LIGHT_SCHEMAS` names,
per graph, where its ``PARAMS`` schema lives in a light module (pydantic and pure logic only: no
LangGraph, smolagents, langchain, pandas), so :mod:`relaygraph.cli.entry` can refuse a bad
``--param`` with one line and exit 2 in well under a second, before the full CLI and its graphs
are imported. ``tests/test_params.py`` checks that each entry *is* its graph's ``PARAMS``; a
graph not listed is checked as before, once the CLI has imported it.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

from relaygraph.nodes.params import RESERVED, ParamError, RunParams, validate_params

#: graph name -> ``module:attribute`` of its ``PARAMS`` in a module that imports nothing heavy.
LIGHT_SCHEMAS = {
    "planned": "relaygraph.nodes.planned_params:PlannedParams",
    "sequential": "relaygraph.nodes.params:RunParams",
    "parallel": "relaygraph.nodes.team_params:ParallelParams",
    "hierarchical": "relaygraph.nodes.team_params:HierarchicalParams",
    "handoff": "relaygraph.nodes.team_params:HandoffParams",
    "consensus": "relaygraph.nodes.team_params:ConsensusParams",
}


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs for ``configurable``; values are JSON when they parse, else text."""
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParamError(f"--param expects KEY=VALUE, got {item!r} (e.g. --param partitions=4).")
        if key in RESERVED:
            raise ParamError(f"--param {key} is reserved; use the dedicated option instead.")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


def light_schema(graph: str) -> type[RunParams] | None:
    """Graph ``graph``'s ``PARAMS`` from its light module; None for a graph not listed."""
    where = LIGHT_SCHEMAS.get(graph)
    if where is None:
        return None
    module, _, name = where.partition(":")
    schema: type[RunParams] = getattr(importlib.import_module(module), name)
    return schema


def check_params(graph: str, items: list[str]) -> None:
    """Raise :class:`ParamError` for a ``--param`` graph ``graph`` would refuse, when its schema is
    light (:data:`LIGHT_SCHEMAS`); ``dataset`` is left to the CLI, whose sandbox check of a
    dataset name comes first and says more."""
    schema = light_schema(graph)
    if schema is None:
        return
    values = parse_params(items)
    values.pop("dataset", None)
    validate_params(schema, values)
