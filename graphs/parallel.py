"""Parallel workflow: clean once, fan out to specialist agents, fan in to an aggregator.

    START ─► prepare ─┬─Send─► specialist(validator)          ─┐
                      ├─Send─► specialist(profiler)           ─┤
                      ├─Send─► specialist(segmenter)          ─┼─► aggregate ─► finalize ─► END
                      └─Send─► specialist(scorer)             ─┘
                        (× partitions: validator_p1, validator_p2, ... for map-reduce)

The cleaner writes a cleaned copy of the data; every specialist then works on that same file,
each as its own agent instance writing only its own slot (see :mod:`relaygraph.nodes.parallel`). Which
specialists run, and on how many row partitions each, is decided per run from the config
(``configurable.specialists``, ``configurable.partitions``); how many run at once is LangGraph's
``max_concurrency`` (a top-level key of the run config).
"""

from __future__ import annotations

from langgraph.graph import StateGraph
from relaygraph.graphs.patterns import parallel_team
from relaygraph.nodes.agent import AgentSpec
from relaygraph.nodes.team_params import ParallelParams

DESCRIPTION = "clean → fan-out to validator, profiler, segmenter, scorer (isolated, partitionable) → aggregate."
DEFAULT_TASK = ("Clean the sales data, then in parallel validate it, profile and enrich it, "
                "segment the customers and score every record.")

CLEANER = AgentSpec(
    name="prepare",
    role="data cleaner",
    instructions="Clean the dataset and hand the cleaned file on to the specialists.",
    tools=("clean_dataset",),
)

SPECIALISTS: dict[str, AgentSpec] = {
    spec.name: spec
    for spec in (
        AgentSpec(name="validator", role="data validator",
                  instructions="Validate the dataset for nulls, duplicates and out-of-range values, "
                  "then detect outliers.",
                  tools=("validate_dataset", "detect_outliers")),
        AgentSpec(name="profiler", role="data profiler and enricher",
                  instructions="Profile the dataset's schema, then enrich it with derived date, "
                  "band and order-count columns.",
                  tools=("profile_dataset", "enrich_dataset")),
        AgentSpec(name="segmenter", role="customer segmenter",
                  instructions="Segment the customers by recency, frequency and spend.",
                  tools=("segment_customers",)),
        AgentSpec(name="scorer", role="record scorer",
                  instructions="Score every record on its value and completeness.",
                  tools=("score_records",)),
    )
}


PARAMS = ParallelParams


def build_graph(approve_before: list[str] | None = None) -> StateGraph:
    """The uncompiled graph (nodes: prepare, specialist, aggregate, finalize), built with the
    pattern users build their own teams with (:func:`relaygraph.graphs.patterns.parallel_team`)."""
    return parallel_team(list(SPECIALISTS.values()), prepare=CLEANER, approve_before=approve_before)


graph = build_graph().compile(name="parallel")
