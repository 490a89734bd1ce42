"""Sequential workflow: extract → clean → analyze → report, then the result.

    START ─► extract ─► clean ─► analyze ─► report ─► finalize ─► END
                 └─────────┴─────────┴── an agent that failed on its last attempt ──► finalize

Four tool-using agents pass one shared context: the extractor profiles the dataset, the
cleaner validates it and writes a cleaned copy (its name replaces ``dataset`` in the context),
the analyst computes breakdowns, trends and outliers on the cleaned data, and the reporter
writes a Markdown report with a chart from it.
"""

from __future__ import annotations

from langgraph.graph import StateGraph
from relaygraph.graphs.patterns import sequential_team
from relaygraph.nodes.agent import AgentSpec
from relaygraph.nodes.params import RunParams

DESCRIPTION = "extract → clean → analyze → report: four agents build a data report."
DEFAULT_TASK = "Profile, validate and clean the sales dataset, analyse it and write a report."
PARAMS = RunParams  # no keys of its own: the per-run settings overrides only

AGENTS = (
    AgentSpec(
        name="extract",
        role="data extractor",
        instructions="Profile the dataset: its schema, column roles and size.",
        tools=("profile_dataset", "list_datasets"),
    ),
    AgentSpec(
        name="clean",
        role="data cleaner",
        instructions="Validate the dataset for nulls, duplicates and out-of-range values, "
        "then clean it and hand the cleaned file on.",
        tools=("validate_dataset", "clean_dataset"),
    ),
    AgentSpec(
        name="analyze",
        role="data analyst",
        instructions="Aggregate the main metric by category, detect trends over time and "
        "detect outliers.",
        tools=("aggregate", "detect_trends", "detect_outliers"),
    ),
    AgentSpec(
        name="report",
        role="report writer",
        instructions="Write the report with a chart, including the team's findings as notes.",
        tools=("write_report",),
    ),
)


def build_graph(approve_before: list[str] | None = None) -> StateGraph:
    """The uncompiled graph: compile it with the checkpointer of your choice.

    Every node can pause for approval (``approve_before`` here, or ``configurable.approve_before``
    in a run's config); see :mod:`relaygraph.nodes.approval`. Built with the same pattern users
    build their own teams with (:func:`relaygraph.graphs.patterns.sequential_team`).
    """
    return sequential_team(AGENTS, answer_from="report", approve_before=approve_before)


graph = build_graph().compile(name="sequential")
