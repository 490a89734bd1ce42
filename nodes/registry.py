"""The agent registry over ``AgentSpec``s: who exists, what they can do, where they serve.

Graph modules declare their agents as module-level ``AgentSpec``s (alone or in dicts, lists
and tuples); :func:`specs_in` finds them, so a graph joins the registry by declaring agents,
with no registration call to forget. Capability matching is the pure logic of
:mod:`relaygraph.coordination.registry`.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType
from typing import Any

from pydantic import BaseModel
from relaygraph.coordination.registry import Registry, Requirement
from relaygraph.nodes.agent import AgentSpec

__all__ = ["AgentEntry", "Registry", "Requirement", "entries", "known_capabilities", "parse_requirement",
           "runtime_tools", "specs_in"]


def specs_in(module: ModuleType) -> list[AgentSpec]:
    """Every AgentSpec a module declares at top level, once each, in declaration order."""
    found: dict[str, AgentSpec] = {}

    def visit(value: Any) -> None:
        if isinstance(value, AgentSpec):
            found.setdefault(value.name, value)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)

    for name, value in vars(module).items():
        if not name.startswith("_"):
            visit(value)
    return list(found.values())


class AgentEntry(BaseModel):
    """One row of ``relaygraph agents``."""

    graph: str
    name: str
    role: str
    capabilities: list[str]
    #: every tool the agent can call in its graph: its spec's own, then those the graph hands it
    #: while it runs (``runtime_tools``: bid/negotiation/handoff tools bound to the task at hand)
    tools: list[str]
    runtime_tools: list[str] = []
    #: the market reputation stored for this agent name (None: no record, the default applies)
    reputation: float | None = None
    contracts: int = 0
    breaches: int = 0


def runtime_tools(module: ModuleType) -> dict[str, tuple[str, ...]]:
    """The tools a graph hands its agents while running (its ``RUNTIME_TOOLS``, by agent name):
    agents whose tools are bound to the task at hand declare none in their spec."""
    return dict(getattr(module, "RUNTIME_TOOLS", {}) or {})


def known_capabilities(graphs: Iterable[tuple[str, ModuleType]]) -> list[str]:
    """Every capability name some agent declares, sorted (what ``--capability`` can find)."""
    return sorted({c.name for _, module in graphs for spec in specs_in(module) for c in spec.capabilities})


def entries(graphs: Iterable[tuple[str, ModuleType]], *requirements: Requirement) -> list[AgentEntry]:
    """The registry of each graph's agents, filtered by ``requirements`` (all must hold)."""
    rows = []
    for graph, module in graphs:
        granted = runtime_tools(module)
        for spec in Registry(specs_in(module)).find(*requirements):
            extra = [t for t in granted.get(spec.name, ()) if t not in spec.tools]
            rows.append(AgentEntry(graph=graph, name=spec.name, role=spec.role,
                                   capabilities=[str(c) for c in spec.capabilities],
                                   tools=[*spec.tools, *extra], runtime_tools=extra))
    return rows


def parse_requirement(text: str) -> Requirement:
    """``name`` or ``name>=version`` (the form ``relaygraph agents --capability`` takes)."""
    name, _, version = text.partition(">=")
    return Requirement(name=name.strip(), min_version=version.strip() or "0")
