"""Planned workflow: an HTN plan executed by agents, replanned when a task fails.

    START ─► observe ─► plan ─► execute ⟲ ─► finalize ─► END
                ▲                  │ failure
                └──── recover ◄────┘   retry → execute · replan → observe · stop → finalize

``observe`` reads world facts off the profile/validation tools; ``plan`` decomposes the goal
with the HTN planner (:mod:`relaygraph.coordination.htn`) over the data-report domain
(:mod:`relaygraph.coordination.world`); ``execute`` runs one primitive task with a fresh
smolagents agent; ``recover`` applies the failure class's policy
(:mod:`relaygraph.coordination.replanning`). Options (``--param`` / ``configurable``):
``fail=TASK:CLASS[xN]`` injects failures, ``retry_backoff_s`` sets the transient backoff base,
``method_probabilities`` (JSON) overrides what the planner believes about its methods,
``sections`` picks the report's sections (each written only if the executed plan did its
analysis; the graph hands them to ``write_report`` itself, whatever the reporter passes),
``date_column`` names the date column the plan expects (without it: a column named as a
date); one missing or renamed in the data is a schema failure, adapted to by mapping the date
role to the column observation found.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from relaygraph.nodes.approval import with_approval
from relaygraph.nodes.contracts import PlannedResult
from relaygraph.nodes.failures import agent_retry_policy
from relaygraph.nodes.planned_params import PlannedParams
from relaygraph.nodes.planning import (
    PlannedState,
    TeamAgents,
    after_critique,
    after_execute,
    after_observe,
    after_plan,
    after_recover,
    assign_agents,
    critique,
    finalize,
    make_execute,
    make_plan_node,
    observe,
    recover,
    team_domain,
)
from relaygraph.nodes.results import ResultFields, with_result_fields
from relaygraph.nodes.state import RunInput
from relaygraph.observability.instrument_langchain import TracedStateGraph

DESCRIPTION = "HTN plan (validate/clean → analyse → report) run by agents, replanned on failure."
DEFAULT_TASK = "Plan and carry out a cleaned, analysed report of the dataset."


PARAMS = PlannedParams


def planned_team(
    agents: TeamAgents | None = None,
    *,
    state_schema: type[Any] = PlannedState,
    input_schema: type[Any] = RunInput,
    result_schema: type[PlannedResult] | None = None,
    result_fields: ResultFields | None = None,
    approve_before: list[str] | None = None,
) -> StateGraph:
    """The planned pattern: an HTN planner decomposes the data-report goal into tasks from what it
    observes, agents run them, failures are classified and replanned around, and a critic checks
    the report's figures.

    ``agents``: your own agents for the primitive tasks (validate, clean, aggregate, trends,
    outliers, report) — a mapping keyed by task name or by the domain agent whose tasks it takes
    (validator, cleaner, analyst, reporter), or a list matched by name or by a capability named
    after a task (:func:`relaygraph.nodes.planning.assign_agents`; an agent that matches nothing is
    refused). Each keeps its role, instructions and tools, is told its task and given the task's
    tools; the plan, progress and experience name it. Unassigned tasks keep relaygraph's agents.
    Also yours: extra state keys (``state_schema``, a subclass of :class:`PlannedState`) and
    result fields (``result_schema``, a subclass of :class:`PlannedResult`). The methods and
    tasks themselves are relaygraph's data-report domain (:mod:`relaygraph.coordination.world`).
    """
    assigned = assign_agents(agents)
    builder = TracedStateGraph(state_schema, input_schema=input_schema)
    builder.add_node("observe", observe)
    builder.add_node("plan", make_plan_node(team_domain(assigned)))
    builder.add_node("execute", make_execute(assigned), retry_policy=agent_retry_policy())  # the one failure path
    builder.add_node("recover", recover)
    builder.add_node("critique", critique, retry_policy=agent_retry_policy())
    builder.add_node("finalize", with_result_fields(finalize, result_schema, result_fields, PlannedResult))
    builder.add_edge(START, "observe")
    builder.add_conditional_edges("observe", after_observe, ["plan", "execute"])
    builder.add_conditional_edges("plan", after_plan, ["execute", "finalize"])
    builder.add_conditional_edges("execute", after_execute,
                                  ["execute", "recover", "observe", "critique", "finalize"])
    builder.add_conditional_edges("critique", after_critique, ["critique", "finalize"])
    builder.add_conditional_edges("recover", after_recover, ["execute", "observe", "finalize"])
    builder.add_edge("finalize", END)
    return with_approval(builder, approve_before)


def build_graph(approve_before: list[str] | None = None) -> StateGraph:
    """The uncompiled graph (observe, plan, execute, recover, critique, finalize)."""
    return planned_team(approve_before=approve_before)


graph = build_graph().compile(name="planned")
