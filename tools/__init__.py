"""smolagents tools that do real work on real data, confined to a workspace."""

from __future__ import annotations

from relaygraph.tools.analytics import ANALYTICS_TOOLS
from relaygraph.tools.data import DATA_TOOLS, DataTool
from relaygraph.tools.result import Observation, ToolResult, TypedTool, result_of
from relaygraph.tools.workspace import PathNotAllowed, Workspace
from smolagents import Tool

__all__ = [
    "DATA_TOOLS",
    "TOOLS",
    "DataTool",
    "Observation",
    "PathNotAllowed",
    "ToolResult",
    "TypedTool",
    "Workspace",
    "build_tools",
    "known_tools",
    "result_of",
]

#: Every tool an AgentSpec may name: the data tools plus the specialists' analytics tools.
TOOLS: dict[str, type[DataTool]] = {**DATA_TOOLS, **ANALYTICS_TOOLS}


def known_tools() -> list[str]:
    return sorted(TOOLS)


def build_tools(
    names: list[str], workspace: Workspace, allowed: dict[str, list[str]] | None = None,
    observation_chars: int | None = None,
) -> list[Tool]:
    """Fresh tool instances for one agent run, narrowed to the run's known values.

    ``observation_chars`` caps the text a model reads from each result (the typed result itself
    is kept whole: see :mod:`relaygraph.tools.result`)."""
    unknown = [n for n in names if n not in TOOLS]
    if unknown:
        raise ValueError(f"Unknown tool(s) {', '.join(unknown)}; known tools: {', '.join(known_tools())}.")
    return [TOOLS[n](workspace, observation_chars).constrain(allowed or {}) for n in names]
