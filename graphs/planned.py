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
``date_column`` names the date column the plan expects (without it: a column named as a
date); one missing or renamed in the data is a schema failure, adapted to by mapping the date
role to the column observation found.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from pydantic import Field, field_validator
from relaygraph.coordination.replanning import parse_injections
from relaygraph.nodes.approval import with_approval
from relaygraph.nodes.contracts import PlannedResult
from relaygraph.nodes.failures import agent_retry_policy
from relaygraph.nodes.params import RunParams
from relaygraph.nodes.planning import (
    PlannedState,
    after_critique,
    after_execute,
    after_observe,
    after_plan,
    after_recover,
    critique,
    execute,
    finalize,
    observe,
    plan_node,
    recover,
)
from relaygraph.nodes.results import ResultFields, with_result_fields
from relaygraph.nodes.state import RunInput

DESCRIPTION = "HTN plan (validate/clean → analyse → report) run by agents, replanned on failure."
DEFAULT_TASK = "Plan and carry out a cleaned, analysed report of the dataset."


class PlannedParams(RunParams):
    """``--param`` keys of the planned graph (see the module docstring)."""

    fail: str | None = Field(default=None, description="Inject failures: TASK:CLASS[xN], comma-separated.")
    retry_backoff_s: float | None = Field(default=None, ge=0, le=60)
    method_probabilities: str | dict[str, float] | None = None
    learn: bool | None = Field(default=None, description="Plan with what the experience store learned (default on).")
    date_column: str | None = Field(default=None, description="The date column the plan expects; a dataset "
                                    "where it is missing or renamed is a schema failure the run adapts to.")

    @field_validator("fail")
    @classmethod
    def _injections(cls, value: str | None) -> str | None:
        parse_injections(value)  # ValueError names the expected TASK:CLASS[xN] form
        return value


PARAMS = PlannedParams


def planned_team(
    *,
    state_schema: type[Any] = PlannedState,
    input_schema: type[Any] = RunInput,
    result_schema: type[PlannedResult] | None = None,
    result_fields: ResultFields | None = None,
    approve_before: list[str] | None = None,
) -> StateGraph:
    """The planned pattern with your own state and result fields: an HTN planner decomposes the
    data-report goal into tasks from what it observes, agents run them, failures are classified
    and replanned around, and a critic checks the report's figures.

    What is honestly yours here: extra state keys (``state_schema``, a subclass of
    :class:`PlannedState`) and result fields (``result_schema``, a subclass of
    :class:`PlannedResult`, filled by ``result_fields(state)``). The planning domain (methods,
    tasks and their agents) is relaygraph's data-report domain
    (:mod:`relaygraph.coordination.htn`); it is not a parameter yet.
    """
    builder = StateGraph(state_schema, input_schema=input_schema)
    builder.add_node("observe", observe)
    builder.add_node("plan", plan_node)
    builder.add_node("execute", execute, retry_policy=agent_retry_policy())  # agents: the one failure path
    builder.add_node("recover", recover)
    builder.add_node("critique", critique, retry_policy=agent_retry_policy())
    builder.add_node("finalize", with_result_fields(finalize, result_schema, result_fields))
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
