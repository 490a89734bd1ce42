"""smolagents tools that do real work on real data, confined to a workspace.

The names below are loaded on first use (PEP 562), not when the package is imported: so
``relaygraph.tools.declared`` and ``relaygraph.tools.workspace`` — what the ``--param`` schemas
need — import without smolagents, pandas and matplotlib, and the CLI can refuse a bad
``--param`` in a fraction of a second (:mod:`relaygraph.cli.entry`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relaygraph.tools.frames import DataFileError, check_data_file
    from relaygraph.tools.result import Observation, ToolResult, TypedTool, result_of
    from relaygraph.tools.toolbox import (
        CUSTOM_TOOLS,
        DATA_TOOLS,
        TOOLS,
        DataTool,
        build_tools,
        known_tools,
        register_tool,
        unregister_tool,
    )
    from relaygraph.tools.workspace import PathNotAllowed, Workspace

#: Where each public name lives.
_EXPORTS = {
    **dict.fromkeys(("CUSTOM_TOOLS", "DATA_TOOLS", "TOOLS", "DataTool", "build_tools", "known_tools",
                     "register_tool", "unregister_tool"), "relaygraph.tools.toolbox"),
    **dict.fromkeys(("DataFileError", "check_data_file"), "relaygraph.tools.frames"),
    **dict.fromkeys(("Observation", "ToolResult", "TypedTool", "result_of"), "relaygraph.tools.result"),
    **dict.fromkeys(("PathNotAllowed", "Workspace"), "relaygraph.tools.workspace"),
}

__all__ = [
    "CUSTOM_TOOLS",
    "DATA_TOOLS",
    "TOOLS",
    "DataFileError",
    "DataTool",
    "Observation",
    "PathNotAllowed",
    "ToolResult",
    "TypedTool",
    "Workspace",
    "build_tools",
    "check_data_file",
    "known_tools",
    "register_tool",
    "result_of",
    "unregister_tool",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
