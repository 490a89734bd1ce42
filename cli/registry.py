"""The graph registry: ``langgraph.json``, read by the CLI as it is by ``langgraph dev``.

One list of workflows. A new graph is registered by adding it to ``langgraph.json``'s ``graphs``
(``"name": "relaygraph.graphs.module:graph"``); the CLI finds it there. The file ships inside the
package (``relaygraph/langgraph.json``, package data in pyproject.toml), so installed copies read
the same list as a checkout. Graph modules are imported only when a command needs one.
"""

from __future__ import annotations

import importlib
import json
from functools import cache
from importlib.resources import files
from types import ModuleType

REGISTRY_FILE = "langgraph.json"


class UnknownGraph(LookupError):
    """A graph name that the registry does not list."""


@cache
def graphs() -> dict[str, str]:
    """Graph name → ``module:attribute`` of its compiled graph, as langgraph.json lists them."""
    text = files("relaygraph").joinpath(REGISTRY_FILE).read_text(encoding="utf-8")
    return dict(json.loads(text)["graphs"])


def graph_names() -> list[str]:
    return sorted(graphs())


def module_name(name: str) -> str:
    """The module that defines graph ``name`` (its ``build_graph()``, ``DESCRIPTION``, ...)."""
    if name not in graphs():
        raise UnknownGraph(f"Unknown graph {name!r}; available: {', '.join(graph_names())}.")
    return graphs()[name].partition(":")[0]


def graph_module(name: str) -> ModuleType:
    """Import graph ``name``'s module (raises :class:`UnknownGraph` for a name not listed)."""
    return importlib.import_module(module_name(name))
