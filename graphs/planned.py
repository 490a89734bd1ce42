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

import json
from typing import Any

from langgraph.graph import END, START, StateGraph
from pydantic import Field, field_validator
from relaygraph.coordination.replanning import parse_injections
from relaygraph.coordination.world import DATA_DOMAIN
from relaygraph.nodes.approval import with_approval
from relaygraph.nodes.contracts import PlannedResult
from relaygraph.nodes.failures import agent_retry_policy
from relaygraph.nodes.params import RunParams
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
from relaygraph.tools.report import SECTIONS

DESCRIPTION = "HTN plan (validate/clean → analyse → report) run by agents, replanned on failure."
DEFAULT_TASK = "Plan and carry out a cleaned, analysed report of the dataset."


class PlannedParams(RunParams):
    """``--param`` keys of the planned graph (see the module docstring)."""

    fail: str | None = Field(default=None, description="Inject failures: TASK:CLASS[xN], comma-separated.")
    retry_backoff_s: float | None = Field(default=None, ge=0, le=60)
    method_probabilities: str | None = Field(default=None, description="JSON object: method name -> success "
                                             "probability in [0, 1], overriding what the planner believes.")
    learn: bool | None = Field(default=None, description="Plan with what the experience store learned (default on).")
    learn_injected: bool | None = Field(default=None, description="Count this run's injected failures as "
                                        "evidence in the experience store (simulations, e.g. bench/learning.py); "
                                        "by default an injected failure teaches nothing.")
    date_column: str | None = Field(default=None, description="The date column the plan expects; a dataset "
                                    "where it is missing or renamed is a schema failure the run adapts to.")
    sections: str | None = Field(default=None, description="Report sections to write, comma-separated, of "
                                 f"{', '.join(SECTIONS)} (default all); each only if the executed plan did its analysis.")

    @field_validator("fail")
    @classmethod
    def _injections(cls, value: str | None) -> str | None:
        known = [t.name for t in DATA_DOMAIN.primitives]
        for injection in parse_injections(value):  # ValueError names the expected TASK:CLASS[xN] form
            if injection.task not in known:
                raise ValueError(f"unknown task {injection.task!r} in fail={value!r}; the domain's tasks are "
                                 f"{', '.join(known)}")
        return value

    @field_validator("sections")
    @classmethod
    def _sections(cls, value: str | None) -> str | None:
        if value is None:
            return None
        asked = [p.strip() for p in value.split(",") if p.strip()]
        unknown = [p for p in asked if p not in SECTIONS]
        if unknown or not asked:
            raise ValueError(f"unknown report section(s) {', '.join(unknown) or '(none given)'} in sections={value!r}; "
                             f"the sections are {', '.join(SECTIONS)}")
        return ",".join(asked)

    @field_validator("method_probabilities", mode="before")
    @classmethod
    def _probabilities(cls, value: Any) -> Any:
        return None if value is None else json.dumps(method_probabilities(value))


def method_probabilities(value: Any) -> dict[str, float]:
    """``method_probabilities`` (a JSON object, or a mapping) checked: known method names, each a
    probability in [0, 1]; ValueError saying which and what is allowed."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON ({exc.msg} at char {exc.pos}); expected e.g. "
                             "'{\"partitioned_analysis\": 0.5}'") from None
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object of method name -> probability, e.g. '{\"partitioned_analysis\": 0.5}'")
    known = [m.name for m in DATA_DOMAIN.methods]
    out: dict[str, float] = {}
    for name, p in value.items():
        if name not in known:
            raise ValueError(f"unknown method {name!r}; the methods are {', '.join(known)}")
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"{name}={p!r} is not a probability in [0, 1]")
        out[str(name)] = float(p)
    return out


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
    builder = StateGraph(state_schema, input_schema=input_schema)
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
