"""The tool registry: the built-in tools by name, tools a user registers, fresh instances per run.

Re-exported by :mod:`relaygraph.tools` (lazily: see its docstring), which maps every other public
name to the module that defines it."""

from __future__ import annotations

import copy
from collections.abc import Callable

from relaygraph.tools.analytics import ANALYTICS_TOOLS
from relaygraph.tools.data import DATA_TOOLS, DataTool
from relaygraph.tools.workspace import Workspace
from smolagents import Tool

__all__ = [
    "CUSTOM_TOOLS",
    "DATA_TOOLS",
    "TOOLS",
    "DataTool",
    "build_tools",
    "known_tools",
    "register_tool",
    "unregister_tool",
]

#: Every tool an AgentSpec may name: the data tools plus the specialists' analytics tools.
TOOLS: dict[str, type[DataTool]] = {**DATA_TOOLS, **ANALYTICS_TOOLS}


#: Tools a user registered (:func:`register_tool`): name -> a factory of fresh instances.
CUSTOM_TOOLS: dict[str, Callable[[Workspace, int | None], Tool]] = {}


def register_tool(tool: type[Tool] | Tool, *, replace: bool = False) -> str:
    """Make a tool nameable in an :class:`~relaygraph.nodes.agent.AgentSpec`; returns its name.

    * a :class:`DataTool` subclass gets the run's :class:`Workspace` (so it reads and writes only
      inside the sandbox, like the built-in tools) and the run's enums;
    * any other smolagents ``Tool`` subclass is built with no arguments;
    * a ``Tool`` instance (e.g. from smolagents' ``@tool``) is copied for each run, so runs
      never share one instance.

    Confinement holds for tools that reach files through their workspace; a function tool is
    trusted code. Declare ``side_effects = True`` on a tool that acts on the world so it runs
    once per task across crashes (:mod:`relaygraph.tools.ledger`).
    """
    name = tool.name
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"A tool needs an identifier name, got {name!r}.")
    if (name in TOOLS or name in CUSTOM_TOOLS) and not replace:
        raise ValueError(f"A tool named {name!r} is already registered; pass replace=True to swap it.")
    CUSTOM_TOOLS[name] = _factory(tool)
    return name


def _factory(tool: type[Tool] | Tool) -> Callable[[Workspace, int | None], Tool]:
    """Fresh instances of a registered tool, one per agent run (see :func:`register_tool`)."""
    if isinstance(tool, Tool):
        return lambda workspace, chars: copy.deepcopy(tool)
    if issubclass(tool, DataTool):
        data_tool = tool
        return lambda workspace, chars: data_tool(workspace, chars)
    if issubclass(tool, Tool):
        plain = tool
        return lambda workspace, chars: plain()
    raise TypeError(f"register_tool takes a smolagents Tool class or instance, got {tool!r}.")


def unregister_tool(name: str) -> None:
    """Forget a registered tool (the built-in ones stay)."""
    CUSTOM_TOOLS.pop(name, None)


def known_tools() -> list[str]:
    return sorted({*TOOLS, *CUSTOM_TOOLS})


def build_tools(
    names: list[str], workspace: Workspace, allowed: dict[str, list[str]] | None = None,
    observation_chars: int | None = None,
) -> list[Tool]:
    """Fresh tool instances for one agent run, narrowed to the run's known values.

    ``observation_chars`` caps the text a model reads from each result (the typed result itself
    is kept whole: see :mod:`relaygraph.tools.result`)."""
    unknown = [n for n in names if n not in TOOLS and n not in CUSTOM_TOOLS]
    if unknown:
        raise ValueError(f"Unknown tool(s) {', '.join(unknown)}; known tools: {', '.join(known_tools())}.")
    tools: list[Tool] = []
    for name in names:
        tool = TOOLS[name](workspace, observation_chars) if name in TOOLS else CUSTOM_TOOLS[name](
            workspace, observation_chars)
        tools.append(tool.constrain(allowed or {}) if isinstance(tool, DataTool) else tool)
    return tools
