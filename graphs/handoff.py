"""Handoff workflow: a triage agent routes the request; specialists hand off to each other.

    START ─► triage ─handoff_*─► quality ◄──► analytics ◄──► customers ◄──► reporting
                                    └──────────────┴──────────────┴────────────┴─► finalize ─► END

Every agent holds ``handoff_<peer>`` tools next to its domain tools; which peer it picks is its
own decision (a model's, or under ``offline`` the policy's rule: the not-yet-visited peer whose
scope the request mentions first; triage, with no tools of its own, always hands off). Transfers are validated, invalid ones rolled back, and a loop guard (``max_handoffs``,
default 6, in ``configurable``; A→B→A ping-pong) ends the run with a reason — see
:mod:`relaygraph.nodes.handoff`.
"""

from __future__ import annotations

from langgraph.graph import StateGraph
from relaygraph.graphs.patterns import handoff_team
from relaygraph.nodes.agent import AgentSpec
from relaygraph.nodes.handoff import HANDOFF_PREFIX
from relaygraph.nodes.team_params import HandoffParams

DESCRIPTION = "triage → specialists handing off to each other (validated, rolled back, loop-guarded)."
DEFAULT_TASK = ("Check the data quality, analyse sales by region with trends, segment the customers "
                "and write a report.")


PARAMS = HandoffParams

#: Each agent: its spec and the scope its peers see in the handoff tool's description.
AGENTS: dict[str, tuple[AgentSpec, str]] = {
    "triage": (AgentSpec(
        name="triage", role="triage agent", max_steps=10, tools=(),
        instructions="Read the request and hand it to the one specialist whose domain it names first.",
    ), "routes requests"),
    "quality": (AgentSpec(
        name="quality", role="data quality specialist", max_steps=12,
        tools=("validate_dataset", "clean_dataset"),
        instructions="Validate the dataset for nulls, duplicates and out-of-range values, then clean it. "
        "When your part is done, hand the request on if it asks for more.",
    ), "data quality: validation and cleaning"),
    "analytics": (AgentSpec(
        name="analytics", role="sales analyst", max_steps=12,
        tools=("aggregate", "detect_trends", "detect_outliers"),
        instructions="Aggregate the main metric by category, detect trends over time and detect outliers. "
        "When your part is done, hand the request on if it asks for more.",
    ), "analytics: breakdowns by category (totals, means, shares), trends over time, outliers"),
    "customers": (AgentSpec(
        name="customers", role="customer analyst", max_steps=12,
        tools=("segment_customers", "score_records"),
        instructions="Segment the customers by recency, frequency and spend, then score every record. "
        "When your part is done, hand the request on if it asks for more.",
    ), "customers: segments and record scores"),
    "reporting": (AgentSpec(
        name="reporting", role="report writer", max_steps=12, tools=("write_report",),
        instructions="Write the report with a chart, including the team's findings as notes. "
        "When your part is done, hand the request on if it asks for more.",
    ), "reporting: writes the report with a chart"),
}
SPECIALISTS = [name for name in AGENTS if name != "triage"]
#: The ``handoff_<peer>`` tools the graph gives each agent next to its own (any specialist but itself).
RUNTIME_TOOLS: dict[str, tuple[str, ...]] = {
    name: tuple(f"{HANDOFF_PREFIX}{peer}" for peer in SPECIALISTS if peer != name) for name in AGENTS}


def build_graph(approve_before: list[str] | None = None) -> StateGraph:
    """The uncompiled graph (nodes: triage, the specialists, finalize), built with the pattern
    users build their own teams with (:func:`relaygraph.graphs.patterns.handoff_team`)."""
    return handoff_team(AGENTS["triage"][0], [spec for name, (spec, _) in AGENTS.items() if name != "triage"],
                        scopes={name: f"{scope}; tools: {', '.join(spec.tools)}"
                                for name, (spec, scope) in AGENTS.items() if name != "triage"},
                        approve_before=approve_before)


graph = build_graph().compile(name="handoff")
