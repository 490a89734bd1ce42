"""Plan execution nodes: observe the world, plan, run tasks with agents, recover, replan.

    observe ─► plan ─► execute ⟲ ─► finalize
       ▲                 │ failure
       └──── recover ◄───┘  (retry → execute · replan → observe · stop → finalize)

The plan (:class:`relaygraph.coordination.htn.Plan`), the world state, the cursor and the
replanning history are graph state, so every step is checkpointed and ``resume`` continues a
killed run at the task it was on. World facts are *observed*: ``observe`` runs the
``profile_dataset`` and ``validate_dataset`` tools on the dataset the run works on now.

Each primitive task is run by a fresh smolagents ReAct agent built from the task (agent name,
instructions, tools) through :func:`relaygraph.nodes.agent.make_agent_node`; when the world is
scaled down (``partitions`` > 1) and every tool of the task takes a partition, the agent runs
once per partition, each run cut at the task's learned timeout (``timeouts``, mined from the
experience store when the plan is made). A task succeeds when its agent finished *and* each of
its tools returned a result at least once; otherwise its errors are classified and handled by
the policies of :mod:`relaygraph.coordination.replanning`.

Agents are on the one failure path of every graph (:mod:`relaygraph.nodes.failures`):
``execute`` is :func:`~relaygraph.nodes.failures.recording_failures` over the task run and is
compiled with ``agent_retry_policy()``, so a failing agent gets the run's ``max_retries``
attempts before its failure is classified; critic and reviser are
:func:`~relaygraph.nodes.failures.agent_node`\\ s. The result is a declared
:class:`~relaygraph.nodes.contracts.PlannedResult`.
"""

from __future__ import annotations

import json
import operator
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from langchain_core.runnables import RunnableConfig
from relaygraph.config.settings import settings_from_config
from relaygraph.coordination import critique as critique_logic
from relaygraph.coordination import experience, replanning
from relaygraph.coordination.htn import Domain, Plan, PlannedTask, PlanningError, unmet
from relaygraph.coordination.htn import plan as make_plan
from relaygraph.coordination.world import (
    DATA_DOMAIN,
    GOAL,
    RUN_FACTS,
    facts_from_observations,
    merge_facts,
)
from relaygraph.nodes import experience as experience_store
from relaygraph.nodes.agent import (
    AgentRunError,
    AgentSpec,
    make_agent_node,
    resolve_dataset,
    thread_id,
)
from relaygraph.nodes.contracts import AgentFailure, PlannedResult, PlanSummary
from relaygraph.nodes.failures import Failure, agent_node, failed_nodes, recording_failures
from relaygraph.nodes.params import declared_roles
from relaygraph.nodes.results import extend_result, result_update, run_result
from relaygraph.nodes.state import WorkflowState
from relaygraph.observability import tracing
from relaygraph.tools import TOOLS, Workspace, build_tools
from relaygraph.tools.frames import DATE_NAME_HINTS, named_as_date

MAX_REPLANS = 6
PARTITION_TOOLS = {name for name, cls in TOOLS.items() if "partition" in cls.inputs}
DATE_TOOLS = {name for name, cls in TOOLS.items() if "date_column" in cls.inputs}


class PlannedState(WorkflowState, total=False):
    """Shared state plus the plan and its execution (all checkpointed)."""

    world: dict[str, Any]  # facts the planner plans from (observed + the run's own)
    columns: dict[str, str]  # the columns of the dataset the run works on now, with dtypes (observed)
    overrides: dict[str, Any]  # facts a failure policy asserted over observation, until a task sets them
    plan: dict[str, Any] | None
    plans: Annotated[list[dict[str, Any]], operator.add]  # every accepted plan, in order
    cursor: int
    done: list[dict[str, Any]]  # completed tasks
    retries: dict[str, int]  # transient retries per task id
    excluded: list[str]  # methods a failure ruled out
    fired: dict[str, int]  # injected failures fired per "task:class"
    ran_on: dict[str, Any]  # per completed task name: the dataset it last ran on (what its artifacts are of)
    executions: dict[str, int]  # runs per task name (names each run's node)
    pending: dict[str, Any] | None  # the failure being recovered from
    replans: Annotated[list[dict[str, Any]], operator.add]
    stop_reason: str | None
    learned: dict[str, float]  # method probabilities the last plan used instead of the domain's
    timeouts: dict[str, float]  # seconds per task name its agent may run (learned), cut after
    first_world: dict[str, Any]  # the world the first plan was made from (what the experience is keyed to)
    critique: list[dict[str, Any]]  # critique rounds over the report (critic, then reviser)
    plan_notes: list[str]  # what the first plan leaves out by learning, shown when the plan is made


def options(config: RunnableConfig) -> dict[str, Any]:
    return (config or {}).get("configurable", {}) or {}


def learning(config: RunnableConfig) -> bool:
    """``configurable.learn`` (default on): plan with what earlier runs taught."""
    return str(options(config).get("learn", True)).strip().lower() not in ("false", "0", "no", "off")


def adaptations(config: RunnableConfig, rows: int | None = None,
                facts: Mapping[str, Any] | None = None) -> list[experience.Adaptation]:
    """What the experience store teaches for this task type (empty with learning off);
    ``rows``: the size of the data the run works on (scales the learned timeouts); ``facts``:
    the world the run started from (the method probabilities are those learned on data like it)."""
    if not learning(config):
        return []
    settings = settings_from_config(config)
    prior = {m.name: m.success_probability for m in DATA_DOMAIN.methods}
    found = experience_store.load(experience_store.store_for(config, settings.checkpoint_db), GOAL)
    return experience.mine(found, prior, task_type=GOAL, backoff_s=replanning.BACKOFF_S, rows=rows, facts=facts)


def _rows(world: Mapping[str, Any]) -> int | None:
    rows = world.get("row_count")
    return int(rows) if isinstance(rows, int | float) and rows > 0 else None


def learned_stop(base: Domain, world: Mapping[str, Any], learned: Mapping[str, float],
                 mined: Sequence[experience.Adaptation], excluded: Sequence[str]) -> str:
    """When a plan fell below the threshold only because of learned probabilities: which, from
    what evidence, and the way out. Empty when the priors would not have done better."""
    if not learned:
        return ""
    try:
        unlearned = make_plan(base.without_methods(list(excluded)), GOAL, dict(world))
    except PlanningError:
        return ""
    if unlearned.confidence <= replanning.MIN_CONFIDENCE:
        return ""
    lowered = [a for a in mined if a.kind == "method_probability" and a.previous is not None
               and a.value < a.previous]
    what = "; ".join(f"{a.target} {a.previous:g} -> {a.value:g} ({a.evidence})" for a in lowered) \
        or ", ".join(f"{k}={v:g}" for k, v in learned.items())
    return (f". Learned from earlier runs (relaygraph experience show): {what}; with the domain's priors the "
            f"plan's confidence would be {unlearned.confidence:.3f}. To run anyway: --param learn=false; to "
            f"forget what was learned: relaygraph experience reset (same --checkpoint-db)")


def learned_probabilities(config: RunnableConfig,
                          learned: list[experience.Adaptation] | None = None) -> dict[str, float]:
    """Method success probabilities to plan with: ``configurable.method_probabilities`` if
    given (JSON), else what the experience store learned (``learned``, else mined now)."""
    raw = options(config).get("method_probabilities")
    if raw is None:
        return experience.learned_probabilities(adaptations(config) if learned is None else learned)
    if isinstance(raw, str):
        raw = json.loads(raw)
    return {str(k): float(v) for k, v in raw.items()}


# --- observe ----------------------------------------------------------------------------------


def _observation(text: Any) -> dict[str, Any]:
    if isinstance(text, str):
        return json.loads(text)
    if hasattr(text, "model_dump"):  # a typed tool result
        dumped = text.model_dump()
        return {**(dumped.get("facts") or {}), **dumped}
    return dict(text)


def observe(state: PlannedState, config: RunnableConfig) -> dict[str, Any]:
    """World facts from the profile and validation tools, run on the current dataset."""
    settings = settings_from_config(config)
    workspace = Workspace(settings.data_dir, settings.output_dir, thread_id(config), roles=declared_roles(config))
    dataset = resolve_dataset(state, settings, workspace)
    profile_tool, validate_tool = build_tools(["profile_dataset", "validate_dataset"], workspace)
    with tracing.tracer().start_as_current_span("observe", attributes={"relaygraph.dataset": dataset}):
        profile = _observation(profile_tool.forward(dataset=dataset))
        observed = facts_from_observations(profile, _observation(validate_tool.forward(dataset=dataset)))
    columns = {str(c): str((info or {}).get("dtype", "")) for c, info in (profile.get("columns") or {}).items()}
    run_facts = {k: v for k, v in (state.get("world") or {}).items() if k in RUN_FACTS}
    world = {**merge_facts(observed, run_facts), **(state.get("overrides") or {})}
    context: dict[str, Any] = {"dataset": dataset}
    expected = options(config).get("date_column")
    if expected and state.get("plan") is None and not (state.get("context") or {}).get("date_column"):
        context["date_column"] = str(expected)  # what the plan expects; a mismatch is a schema failure
    return {"world": world, "columns": columns, "context": context}


# --- plan -------------------------------------------------------------------------------------


TeamAgents = Mapping[str, AgentSpec] | Sequence[AgentSpec]


def assign_agents(agents: TeamAgents | None, domain: Domain = DATA_DOMAIN) -> dict[str, AgentSpec]:
    """Which of a team's agents runs which primitive task (task name → spec).

    A mapping keys an agent by a task name (``"trends"``) or by a domain agent's name
    (``"analyst"``: all of its tasks; a task-name key wins over it). In a sequence, an agent
    runs the tasks named like it (its name is a task or a domain agent) or named by one of its
    ``capabilities`` (``Capability(name="trends")``). An agent that matches no task, and two
    agents for one task, are refused: nothing is silently left to the built-in agent."""
    tasks = {t.name: t for t in domain.primitives}
    roles = sorted({t.agent for t in tasks.values()})
    known = f"tasks: {', '.join(tasks)}; domain agents: {', '.join(roles)}"
    if not agents:
        return {}
    out: dict[str, AgentSpec] = {}
    if isinstance(agents, Mapping):
        by_role = {k: v for k, v in agents.items() if k not in tasks}
        unknown = sorted(set(by_role) - set(roles))
        if unknown:
            raise ValueError(f"planned_team agents: no task or domain agent {', '.join(unknown)} ({known})")
        for role, spec in by_role.items():
            out.update({t: spec for t, task in tasks.items() if task.agent == role})
        out.update({k: v for k, v in agents.items() if k in tasks})
        return out
    for spec in agents:
        wanted = {c.name for c in spec.capabilities} | {spec.name}
        targets = [t for t, task in tasks.items() if t in wanted or task.agent in wanted]
        if not targets:
            raise ValueError(f"planned_team agent {spec.name!r} matches no task: name it after a task or a "
                             f"domain agent, or give it a capability named after a task ({known})")
        for t in targets:
            if t in out:
                raise ValueError(f"planned_team: task {t!r} matches two agents, {out[t].name!r} and "
                                 f"{spec.name!r}; give it to one (e.g. a mapping {{{t!r}: spec}})")
            out[t] = spec
    return out


def team_domain(assigned: Mapping[str, AgentSpec], domain: Domain = DATA_DOMAIN) -> Domain:
    """``domain`` with each assigned task's agent renamed to the team's agent, so the plan,
    the progress lines, the errors and the experience store name who really ran it."""
    if not assigned:
        return domain
    primitives = [t.model_copy(update={"agent": assigned[t.name].name}) if t.name in assigned else t
                  for t in domain.primitives]
    return Domain.model_validate({**domain.model_dump(), "primitives": [p.model_dump() for p in primitives]})


def task_spec(task: PlannedTask, own: AgentSpec | None = None) -> AgentSpec:
    """The agent that runs ``task``: the domain's (named by the task), or a team's own agent —
    its role, instructions and tools, told the task and given the task's tools (the task is
    done when those returned results, whoever runs it)."""
    if own is None:
        return AgentSpec(name=task.agent, role=task.agent.replace("_", " "), instructions=task.instructions,
                         tools=task.tools)
    tools = (*own.tools, *(t for t in task.tools if t not in own.tools))
    return own.model_copy(update={"instructions": f"{own.instructions.rstrip()} Your task now: {task.instructions}",
                                  "tools": tools})


def make_plan_node(domain: Domain = DATA_DOMAIN) -> Any:
    """The ``plan`` node over ``domain`` (a team's: :func:`team_domain`)."""

    def plan(state: PlannedState, config: RunnableConfig) -> dict[str, Any]:
        return plan_run(state, config, domain)

    plan.__name__ = "plan_node"
    return plan


def plan_node(state: PlannedState, config: RunnableConfig) -> dict[str, Any]:
    """The built-in graph's ``plan`` node (relaygraph's data-report domain and agents)."""
    return plan_run(state, config)


def no_plan_reason(exc: PlanningError, pending: Mapping[str, Any] | None, excluded: list[str]) -> str:
    """Why no plan was found, cause first. After a failure, the cause is the failed task: it ruled
    out the methods that contain it. The planner's own list (every unmet precondition of every
    other method, e.g. ``is_clean == False`` on clean data) names no cause a user can act on, so it
    is kept only in the replanning record (``planner_detail``)."""
    if not pending or not excluded:
        return str(exc)
    return (f"the failed task {pending['task']!r} ruled out {', '.join(excluded)} (each needs it), and no "
            f"other method reaches the goal from this data; fix what made {pending['task']!r} fail "
            f"({pending.get('error') or pending.get('failure_class') or 'see errors'}) and run again")


def no_category_reason(world: Mapping[str, Any]) -> str:
    """Why a file without a column to group by gets no plan, and what would help."""
    empty = world.get("empty_columns")
    held = f" ({empty}: no value in any row)" if empty else ""
    return (f"your file has no category column to break the figures down by{held}; every analysis "
            "method starts with that breakdown, so none was run, though a total"
            f"{' and a monthly trend' if world.get('has_time_column') else ''} alone could be computed. "
            "Fill in or add a column of categories (2 to 50 distinct values) and run again")


def plan_run(state: PlannedState, config: RunnableConfig, base: Domain = DATA_DOMAIN) -> dict[str, Any]:
    """Plan (or replan, after a failure) from the observed world; accept only above 0.6."""
    pending = state.get("pending")
    excluded = list(state.get("excluded") or [])
    world = state.get("world") or {}
    # keyed to the data the run started on, as its own experience will be (first_world)
    mined = adaptations(config, _rows(world), state.get("first_world") or world)
    learned = learned_probabilities(config, mined)
    domain = base.without_methods(excluded).with_probabilities(learned)
    if not pending and world.get("has_category_column") is False:
        return {"pending": None, "first_world": state.get("first_world") or dict(world),
                "stop_reason": f"planning stopped: {no_category_reason(world)}"}
    span_name = "replan" if pending else "plan"
    detail = None
    with tracing.tracer().start_as_current_span(span_name) as span:
        try:
            new = make_plan(domain, GOAL, world)
            accepted, why = replanning.accept(new, replan=bool(pending))
        except PlanningError as exc:
            new, accepted, why = None, False, no_plan_reason(exc, pending, excluded)
            detail = str(exc)
        span.set_attribute("relaygraph.plan.accepted", accepted)
        if new is not None:
            span.set_attribute("relaygraph.plan.confidence", new.confidence)
            span.set_attribute("relaygraph.plan.methods", new.method_names())
        if pending:  # what triggered the replan, and what it changed
            old_confidence = (state.get("plan") or {}).get("confidence")
            span.set_attributes({
                "relaygraph.replan.task": str(pending.get("task") or ""),
                "relaygraph.failure.class": str(pending.get("failure_class") or ""),
                "relaygraph.failure.error": str(pending.get("error") or "")[:500],
                "relaygraph.replan.policy": str(pending.get("policy") or ""),
                "relaygraph.replan.why": why[:500],
                **({"relaygraph.replan.old_confidence": float(old_confidence)} if old_confidence is not None else {}),
            })
    if not accepted and options(config).get("method_probabilities") is None:
        why += learned_stop(base, world, learned, mined, excluded)
    update: dict[str, Any] = {"pending": None, "learned": learned, "timeouts": experience.learned_timeouts(mined)}
    if not state.get("first_world"):
        update["first_world"] = dict(world)
    if pending:
        old = state.get("plan") or {}
        update["replans"] = [{
            **pending,
            "old_methods": [m["method"] for m in old.get("methods", [])],
            "new_methods": new.method_names() if new else [],
            "new_tasks": [t.name for t in new.tasks] if new else [],
            "new_confidence": new.confidence if new else None,
            "accepted": accepted,
            "why": why,
            **({"planner_detail": detail} if detail else {}),
        }]
    if not accepted:
        if not pending:
            update["stop_reason"] = f"planning stopped: {why}"
            return update
        # the run ends on this task's failure: name it, its class, and show it (a ✗ line)
        update["stop_reason"] = (f"replanning after task {pending['task']!r} failed "
                                 f"({pending['failure_class']}: {pending.get('error') or ''}) stopped: {why}")
        update["errors"] = [{"node": pending["task"], "agent": pending.get("agent") or pending["task"],
                             "reason": pending.get("error") or "", "failure_class": pending["failure_class"]}]
        return update
    assert new is not None
    nothing = None if pending else nothing_requested(state, config, new, learned)
    if nothing:  # a plan for none of what the user asked: refused, not run into an empty report
        update["stop_reason"] = f"planning stopped: {nothing}"
        return update
    kept = _still_valid(state, new) if pending else []
    if kept:  # finished work the replan would redo: kept, its effects stand
        update["replans"][-1]["kept"] = [t.name for t in kept]
        update["world"] = {**world, **{k: v for t in kept for k, v in t.effects.items()}}
    update.update(plan=new.model_dump(mode="json"), plans=[new.model_dump(mode="json")], cursor=len(kept))
    if not pending:  # the console says what learning left out now, not after the report
        trial = {**state, **update, "done": [t.model_dump(mode="json") for t in new.tasks],
                 "first_world": update.get("first_world") or state.get("first_world") or world}
        update["plan_notes"] = list(left_out_by_learning(trial, config).values())  # type: ignore[arg-type]
    return update


def _dataset_now(state: PlannedState, produced: dict[str, Any] | None = None) -> Any:
    return {**(state.get("context") or {}), **(produced or {})}.get("dataset") or state.get("data")


def _still_valid(state: PlannedState, new: Plan) -> list[PlannedTask]:
    """The leading tasks of a replan that already finished on the dataset the run works on now
    (so their artifacts still hold): not run again. Stops at the first task that must run, and
    at the task a dependency policy asked to re-run."""
    done = {t["name"] for t in state.get("done") or []}
    ran_on = state.get("ran_on") or {}
    rerun = ((state.get("pending") or {}).get("changes") or {}).get("rerun")
    dataset = _dataset_now(state)
    kept = []
    for task in new.tasks:
        if task.name == rerun or task.name not in done or ran_on.get(task.name) != dataset:
            break
        kept.append(task)
    return kept


# --- execute ----------------------------------------------------------------------------------


def _injected(state: PlannedState, config: RunnableConfig, task: PlannedTask) -> str | None:
    fired = state.get("fired") or {}
    for injection in replanning.parse_injections(options(config).get("fail")):
        key = f"{injection.task}:{injection.failure_class}"
        if injection.task == task.name and fired.get(key, 0) < injection.times:
            return key
    return None


def _schema_mismatch(task: PlannedTask, state: PlannedState) -> str | None:
    """Why a date-using task cannot run on the data as the plan expects it.

    With an expected date column (``--param date_column``, or a mapping a schema policy made):
    the dataset does not have it — renamed, or gone. Without one, the plan expects a column
    *named* as a date (``date``/``time``/``day``/``month`` in its name): a date column found
    only by its values (``when``) is a renamed one, to be mapped by the schema policy rather
    than used silently.
    """
    columns = state.get("columns")
    if columns is None or not set(task.tools) & DATE_TOOLS:
        return None
    world = state.get("world") or {}
    expected = (state.get("context") or {}).get("date_column")
    observed = world.get("date_column")
    if not expected:
        if not observed or named_as_date(str(observed)) or "datetime" in columns.get(str(observed), ""):
            return None  # declared a date by its name or its type
        return (f"missing column: no column of {world.get('dataset') or 'the dataset'} is named as a date "
                f"({'/'.join(DATE_NAME_HINTS)}); {observed!r} holds dates only by its values (renamed?)")
    if expected in columns:
        return None
    found = f"its dates are in column {world['date_column']!r} (renamed?)" if world.get("date_column") \
        else "no column of it parses as dates"
    return (f"missing column {expected!r}: the date column the plan expects is not in "
            f"{world.get('dataset') or 'the dataset'} ({len(columns)} columns); {found}")


def _tool_errors(task: PlannedTask, steps: list[dict[str, Any]]) -> list[str]:
    """Why the task's work is not done: tools never called successfully, with their errors."""
    ok = {s["tool"] for s in steps if s.get("tool") and not s.get("error")}
    problems = []
    for tool in task.tools:
        if tool not in ok:
            errors = [s["error"] for s in steps if s.get("tool") == tool and s.get("error")]
            problems.append(f"{tool}: " + (errors[-1] if errors else "never called"))
    return problems


def _current(state: PlannedState) -> tuple[PlannedTask, str, dict[str, int]]:
    """The task at the cursor, the name of this execution's node (``task#n``) and the run counts."""
    task = Plan.model_validate(state["plan"]).tasks[state.get("cursor") or 0]
    runs = dict(state.get("executions") or {})
    runs[task.name] = runs.get(task.name, 0) + 1
    return task, f"{task.name}#{runs[task.name]}", runs


def _run_task(state: PlannedState, config: RunnableConfig,
              agents: Mapping[str, AgentSpec] | None = None) -> dict[str, Any]:
    """Run the task at the cursor (preconditions first), or say why it cannot run.

    An agent that fails raises :class:`AgentRunError` (carrying the steps of every slice run
    so far): :func:`execute` puts that on the one failure path of agent nodes.
    """
    task, node, runs = _current(state)
    world = state.get("world") or {}
    base: dict[str, Any] = {"executions": runs}
    with tracing.tracer().start_as_current_span(f"task {task.name}", attributes={
            "relaygraph.task.id": task.id, "relaygraph.task.agent": task.agent,
            "relaygraph.task.method": task.method or ""}) as span:
        missing = unmet(task.preconditions, world)
        if missing:
            error = f"precondition {', '.join(map(str, missing))} does not hold before {task.name}"
            return {**base, "pending": _failure(task, error, "dependency", span=span)}
        mismatch = _schema_mismatch(task, state)
        if mismatch:
            return {**base, "pending": _failure(task, mismatch, replanning.classify(mismatch), span=span)}
        injected = _injected(state, config, task)
        if injected:
            cls = injected.split(":", 1)[1]
            fired = {**(state.get("fired") or {}), injected: (state.get("fired") or {}).get(injected, 0) + 1}
            message = replanning.INJECTED_MESSAGES[cls]  # type: ignore[index]
            span.set_attribute("relaygraph.task.injected", cls)
            return {**base, "fired": fired,
                    "pending": _failure(task, message, replanning.classify(message), injected=True, span=span)}
        spec = task_spec(task, (agents or {}).get(task.name))
        partitions = int(world.get("partitions") or 1)
        slices = ([f"{k}/{partitions}" for k in range(1, partitions + 1)]
                  if partitions > 1 and set(task.tools) <= PARTITION_TOOLS else [None])
        merged: dict[str, Any] = {"steps": [], "answers": {}, "context": {}, "progress": []}
        context = dict(state.get("context") or {})
        fixed = report_args(state, config) if "write_report" in task.tools else {}
        context.update(fixed.get("write_report", {}))  # told to the reporter, and held whatever it passes
        timeout = (state.get("timeouts") or {}).get(task.name)
        if timeout is not None:
            span.set_attribute("relaygraph.task.timeout_s", timeout)
        for part in slices:
            run_state = {**state, "context": {**context, **({"partition": part} if part else {})}}
            # each slice's tools run on its partition, whatever partition (or none) the model passes
            sliced = {tool: {"partition": part} for tool in task.tools} if part else {}
            agent = make_agent_node(spec, node=node if part is None else f"{node}/{part}", timeout_s=timeout,
                                    fixed_args={**fixed, **sliced})
            try:
                out = agent(run_state, config)
            except AgentRunError as exc:
                exc.record["steps"] = merged["steps"] + exc.record.get("steps", [])
                span.set_attribute("relaygraph.failure.class", replanning.classify(str(exc)))
                raise  # the span ends ERROR with the exception
            merged["steps"] += out["steps"]
            merged["progress"] += out["progress"]
            merged["answers"].update(out["answers"])
            merged["context"].update({k: v for k, v in out["context"].items() if k != "findings"})
            produced = out["context"].get("findings", {})
            if part:  # one partition's note, never shown as if it were the whole file's
                produced = {f"{agent} (partition {part})": label_note(note, task.tools, f"partition {part}")
                            for agent, note in produced.items()}
            merged["context"]["findings"] = {**merged["context"].get("findings", {}), **produced}
        problems = _tool_errors(task, merged["steps"])
        if problems:
            error = "; ".join(problems)
            return {**base, "steps": merged["steps"],
                    "pending": _failure(task, error, replanning.classify(error), span=span)}
    facts = {**world, **task.effects}
    overrides = {k: v for k, v in (state.get("overrides") or {}).items() if k not in task.effects}
    _keep_first_findings(state, merged["context"], node)
    return {**base, **merged, "world": facts, "overrides": overrides,
            "cursor": (state.get("cursor") or 0) + 1,
            "done": [*(state.get("done") or []), task.model_dump(mode="json")],
            "ran_on": {**(state.get("ran_on") or {}), task.name: _dataset_now(state)}}


def _keep_first_findings(state: PlannedState, produced: dict[str, Any], node: str) -> None:
    """A task run again (a data_quality replan validates and cleans the cleaned copy) adds to
    what the run found, never replaces it: the user's file stays the ``source_dataset`` (the
    report's "Your file"), and the first run's findings (48 duplicates, 5 invalid rows in the
    user's file) stay beside the new ones, which are keyed by their node (``validator
    (validate#2)``)."""
    context = state.get("context") or {}
    if context.get("source_dataset") and "source_dataset" in produced:
        produced["source_dataset"] = context["source_dataset"]
    if (state.get("executions") or {}).get(node.split("#", 1)[0], 0) < 1:
        return  # the task's first run: one agent's later tasks replace its note, as ever
    earlier = context.get("findings") or {}
    new = produced.get("findings") or {}
    for agent in [a for a in new if a in earlier and earlier[a] != new[a]]:
        new[f"{agent} ({node})"] = label_note(new.pop(agent), (), node)


def label_note(note: str, tools: Sequence[str], label: str) -> str:
    """An agent's note with ``label`` after each tool name it quotes (``detect_outliers
    (partition 1/2): 2 outlier values …``, ``validate_dataset (validate#2): …``), or in front
    when it quotes none: the report shows notes without their keys, so the text itself must
    say which partition or which run of a task a figure is from."""
    names = "|".join(re.escape(t) for t in tools) or r"[a-z_]+"
    labelled, count = re.subn(rf"(^|; )({names}): ", rf"\1\2 ({label}): ", note)
    return labelled if count else f"({label}) {note}"


#: Which report section each analysis task's work backs.
SECTION_OF = {"aggregate": "breakdown", "trends": "trend", "outliers": "outliers"}


def report_sections(state: PlannedState, config: RunnableConfig | None = None) -> str:
    """The report sections (``write_report``'s ``sections``) the tasks done so far back, of
    those the run asked for (``configurable.sections``, default all): a plan that dropped
    ``trends`` (or never had it) gets a report without a trend section."""
    done = {t["name"] for t in state.get("done") or []}
    raw = options(config or {}).get("sections")
    asked = None if raw is None else {p.strip() for p in str(raw).split(",") if p.strip()}
    return ",".join(section for task, section in SECTION_OF.items()
                    if task in done and (asked is None or section in asked))


def requested(config: RunnableConfig | None) -> tuple[str | None, set[str] | None]:
    """``--param sections`` as given, and as a set (None: every section)."""
    raw = options(config or {}).get("sections")
    return (None, None) if raw is None else (str(raw), {p.strip() for p in str(raw).split(",") if p.strip()})


def none_delivered(state: PlannedState, config: RunnableConfig | None = None) -> str | None:
    """When the run asked for sections (``--param sections``) and its tasks back none of them:
    what was asked, and why each was left out. Such a run has delivered nothing it was asked
    for, so it is ``failed``, never ``partial``."""
    raw, asked = requested(config)
    if not asked or report_sections(state, config):
        return None
    why = left_out_reasons(state, config)
    return (f"none of the requested sections (--param sections={raw}) can be delivered: "
            + "; ".join(f"{s}: {why.get(s) or 'no task of the plan makes it'}" for s in sorted(asked)))


def nothing_requested(state: PlannedState, config: RunnableConfig, new: Plan,
                      learned: Mapping[str, float]) -> str | None:
    """:func:`none_delivered` for a first plan before it runs (its tasks as if done)."""
    planned = [t.model_dump(mode="json") for t in new.tasks]
    trial = {**state, "done": [], "plans": [new.model_dump(mode="json")], "learned": dict(learned),
             "first_world": state.get("first_world") or state.get("world") or {}}
    if report_sections({**trial, "done": planned}, config):  # type: ignore[typeddict-item]
        return None
    return none_delivered(trial, config)  # type: ignore[arg-type]


def left_out_reasons(state: PlannedState, config: RunnableConfig | None = None) -> dict[str, str]:
    """Why each report section the run does not write is left out, for the report to say: not
    requested (``--param sections``), the data has no date column, a replan planned around a
    failure, or what earlier runs taught the planner (a learned probability that changed its
    choice of method — with the way back to the priors)."""
    done = {t["name"] for t in state.get("done") or []}
    raw = options(config or {}).get("sections")
    asked = None if raw is None else {p.strip() for p in str(raw).split(",") if p.strip()}
    world = {**(state.get("world") or {}), **(state.get("first_world") or {})}
    first = {t["name"] for t in ((state.get("plans") or [{}])[0]).get("tasks", [])}
    learned = state.get("learned") or {}
    out: dict[str, str] = {}
    for task, section in SECTION_OF.items():
        if asked is not None and section not in asked:
            out[section] = f"not requested: --param sections={raw}"
        elif task in done:
            continue
        elif task in first:
            failed = next((r for r in state.get("replans") or [] if r.get("action") == "replan"
                           and task not in (r.get("new_tasks") or [task])), None)
            if failed:
                out[section] = (f"left out: the run replanned around {failed.get('task')} "
                                f"({failed.get('failure_class')}), see result.replanning")
        elif task == "trends" and not world.get("has_time_column"):
            months, column = world.get("date_months"), world.get("date_column")
            few = column and months is not None and months < 2  # a date column, one month of it
            out[section] = (f"the data covers {'only one month' if months == 1 else 'no month'} of {column}; "
                            "a trend needs at least two") if few else "the data has no date column"
        elif learned:
            because = _learned_choice(task, world, learned, state.get("excluded") or [])
            if because:
                out[section] = because
    return out


def left_out_by_learning(state: PlannedState, config: RunnableConfig | None = None) -> dict[str, str]:
    """Per requested report section that learned probabilities left out (the priors would have
    planned its task): the run summary's words, e.g. ``left out: trend (learned:
    time_series_analysis 0.9 -> 0.5625; --param learn=false to plan with priors)``. The run is
    then ``partial``: a section the user asked for (by default, all) is missing by a choice the
    planner made, unlike a section the data cannot have (no date column: ``completed``)."""
    world = {**(state.get("world") or {}), **(state.get("first_world") or {})}
    learned = state.get("learned") or {}
    out = {}
    for section, why in left_out_reasons(state, config).items():
        if not why.startswith(LEARNED_LEFT_OUT):
            continue
        task = next(t for t, s in SECTION_OF.items() if s == section)
        moved = learned_moves(task, world, learned, state.get("excluded") or []) or ["learned probabilities"]
        out[section] = (f"left out: {section} (learned: {', '.join(moved)}; --param learn=false to plan with "
                        "priors)")
    return out


def _learned_choice(task: str, world: Mapping[str, Any], learned: Mapping[str, float],
                    excluded: Sequence[str]) -> str:
    """Would the domain's priors have planned ``task``? If so: which learned probabilities
    made the planner choose otherwise."""
    moved = learned_moves(task, world, learned, excluded)
    if moved is None:
        return ""
    return (f"{LEARNED_LEFT_OUT}: {', '.join(moved) or 'learned probabilities'} "
            "(relaygraph experience show); --param learn=false plans from the priors")


#: How a section left out by learning is introduced (the report's reason; finalize looks for it).
LEARNED_LEFT_OUT = "left out by what earlier runs taught the planner"


def learned_moves(task: str, world: Mapping[str, Any], learned: Mapping[str, float],
                  excluded: Sequence[str]) -> list[str] | None:
    """The learned probabilities (``method prior -> learned``) that kept ``task`` out of the
    plan the priors would have made; None when the priors would not have planned it either."""
    try:
        unlearned = make_plan(DATA_DOMAIN.without_methods(list(excluded)), GOAL, dict(world))
    except PlanningError:
        return None
    if task not in {t.name for t in unlearned.tasks}:
        return None
    prior = {m.name: m.success_probability for m in DATA_DOMAIN.methods}
    return [f"{m} {prior[m]:g} -> {learned[m]:g}" for m in unlearned.method_names()
            if m in learned and m in prior and learned[m] < prior[m]]


def report_args(state: PlannedState, config: RunnableConfig) -> dict[str, dict[str, Any]]:
    """``write_report``'s arguments the graph decides, not the model (``fixed_args``): the
    sections the executed plan backs and the run asked for, and — for a run scaled down to
    partitions — the partition count, so its figures are computed per partition and combined."""
    partitions = int((state.get("world") or {}).get("partitions") or 1)
    args: dict[str, Any] = {"sections": report_sections(state, config)}
    why = left_out_reasons(state, config)
    if why:
        args["left_out_why"] = json.dumps(why)
    source = (state.get("context") or {}).get("source_dataset") or state.get("data")
    if source and "clean" in {t["name"] for t in state.get("done") or []} and _dataset_now(state) != source:
        args["cleaned_from"] = Path(str(source)).name  # the report names the user's file, not only the scratch copy
    if partitions > 1:
        args["partitions"] = partitions
    return {"write_report": args}


def _gave_up(state: PlannedState, failed: Failure) -> dict[str, Any]:
    """The task's agent failed on its last attempt: recorded (steps, a failed ``progress``) and
    handed to ``recover`` as a classified failure. It goes to ``errors`` only if the run stops."""
    task, _, runs = _current(state)
    reason = failed.failure.reason
    update = failed.update()
    timeout = (failed.failure.model_extra or {}).get("timeout_s")  # set when its timeout cut the agent
    return {"executions": runs, "steps": update["steps"], "progress": update["progress"],
            "pending": _failure(task, reason, replanning.classify(reason), timeout_s=timeout)}


def _who(state: PlannedState) -> tuple[str, str]:
    task, node, _ = _current(state)
    return task.agent, node


#: The execute node: :func:`_run_task` on the one failure path of agent nodes
#: (:mod:`relaygraph.nodes.failures`) — compiled with ``agent_retry_policy()``, an agent that
#: fails is retried up to the run's ``max_retries`` attempts, then classified and recovered from.
def make_execute(agents: Mapping[str, AgentSpec] | None = None) -> Any:
    """The ``execute`` node; ``agents``: a team's own agents by task name (:func:`assign_agents`)."""
    own = dict(agents or {})

    def run_task(state: PlannedState, config: RunnableConfig) -> dict[str, Any]:
        return _run_task(state, config, own)

    node = recording_failures(run_task, who=_who, on_failure=_gave_up)
    node.__name__ = "execute"
    return node


execute = make_execute()


def _failure(task: PlannedTask, error: str, cls: str, *, injected: bool = False,
             timeout_s: float | None = None, span: Any = None) -> dict[str, Any]:
    """The task's failure, for ``recover``; ``span``: the task's span, marked ERROR with it."""
    if span is not None:
        tracing.record_failure(span, error, cls)
    return replanning.Failure(task=task.name, task_id=task.id, failure_class=cls,  # type: ignore[arg-type]
                              error=error[:500], injected=injected, timeout_s=timeout_s).model_dump()


def after_execute(state: PlannedState) -> str:
    if state.get("pending"):
        return "recover"
    current = state.get("plan") or {}
    if (state.get("cursor") or 0) >= len(current.get("tasks", [])):
        return "critique" if (state.get("context") or {}).get("report") else "finalize"
    done = state.get("done") or []
    if done and done[-1]["name"] == "clean":  # the dataset changed: observe it before going on
        return "observe"
    return "execute"


# --- recover ----------------------------------------------------------------------------------


def recover(state: PlannedState, config: RunnableConfig) -> dict[str, Any]:
    """Apply the failure's policy: retry, change the world and replan, or stop."""
    failure = replanning.Failure.model_validate(state["pending"])
    current = Plan.model_validate(state["plan"])
    task = current.tasks[state.get("cursor") or 0]
    done = [PlannedTask.model_validate(t) for t in state.get("done") or []]
    retries = dict(state.get("retries") or {})
    backoff = options(config).get("retry_backoff_s")
    if backoff is None:
        backoff = experience.learned_backoff(adaptations(config)) or replanning.BACKOFF_S
    backoff = float(backoff)
    used = (state.get("context") or {}).get("date_column")
    observed = (state.get("world") or {}).get("date_column")
    if not used and observed and named_as_date(str(observed)):
        used = observed  # the tools found it by its name: mapping the role to it would change nothing
    decision = replanning.decide(failure, task, current, state.get("world") or {}, done,
                                 retries.get(task.id, 0), backoff_s=backoff, rows=_rows(state.get("world") or {}),
                                 expected_date_column=used)
    decision = _around_exhausted_retries(decision, task, state)
    entry = {**failure.model_dump(), "method": task.method, "agent": task.agent,
             "action": decision.action, "policy": decision.policy,
             "changes": {"facts": decision.facts, "exclude_methods": decision.exclude_methods,
                         "context": decision.context, "rerun": decision.rerun}}
    if decision.failure_class == "resource" and failure.failure_class == "transient":  # a timeout on large data
        entry.update(failure_class="resource", classified_as="transient")
    if decision.action == "retry":
        time.sleep(decision.backoff_s)
        retries[task.id] = retries.get(task.id, 0) + 1
        return {"retries": retries, "pending": None, "replans": [entry]}
    if decision.action == "stop":
        return {"pending": None, "replans": [entry], "stop_reason": decision.reason or decision.policy,
                "errors": [{"node": f"{task.name}", "agent": task.agent, "reason": failure.error,
                            "failure_class": failure.failure_class}]}
    replanned = sum(1 for r in state.get("replans") or [] if r.get("action") == "replan")
    if replanned >= MAX_REPLANS:
        return {"pending": None, "replans": [entry],
                "stop_reason": f"gave up after {MAX_REPLANS} replans; last failure: {failure.error}"}
    context = dict(decision.context)
    if context.get("dataset") == "<source>":
        source = (state.get("context") or {}).get("source_dataset") or state.get("data")
        context["dataset"] = source
        if not source:
            context.pop("dataset")
    world = {**(state.get("world") or {}), **decision.facts}
    return {"pending": entry, "overrides": {**(state.get("overrides") or {}), **decision.facts},
            "world": world, "excluded": sorted({*(state.get("excluded") or []), *decision.exclude_methods}),
            "context": context}


def _around_exhausted_retries(decision: replanning.Decision, task: PlannedTask,
                              state: PlannedState) -> replanning.Decision:
    """A transient failure that outlived its retries stops the run only if nothing reportable
    finished. When analysis for another report section is done (trends failing after aggregate
    finished), the run falls back like an unknown failure: replanned without the methods that
    need the failed task, keeping the finished work — a ``partial`` report without that section,
    not a failed run that throws the finished work away."""
    if decision.action != "stop" or decision.failure_class != "transient":
        return decision
    finished = [t["name"] for t in state.get("done") or [] if t["name"] in SECTION_OF and t["name"] != task.name]
    if not finished:
        return decision
    without = [m.name for m in DATA_DOMAIN.methods if task.name in m.subtasks]
    return replanning.Decision(
        action="replan", failure_class="transient", exclude_methods=without,
        policy=(f"retries exhausted: replan without {task.name!r} (methods {', '.join(without)}), keeping the "
                f"finished {', '.join(dict.fromkeys(finished))}"))


def after_recover(state: PlannedState) -> str:
    if state.get("stop_reason"):
        return "finalize"
    return "observe" if state.get("pending") else "execute"


def after_plan(state: PlannedState) -> str:
    return "finalize" if state.get("stop_reason") else "execute"


def after_observe(state: PlannedState) -> str:
    return "plan" if state.get("pending") or not state.get("plan") else "execute"


# --- critique ---------------------------------------------------------------------------------

CRITIC = AgentSpec(
    name="critic", role="report critic",
    instructions="Recompute the report's figures: profile the dataset, validate it, clean it, aggregate it "
                 "(the report's metric by its group-by column), detect trends (monthly) and detect outliers "
                 "(IQR).",
    tools=("profile_dataset", "validate_dataset", "clean_dataset", "aggregate", "detect_trends", "detect_outliers"))
REVISER = AgentSpec(
    name="reviser", role="report reviser",
    instructions="Write the report again with a chart from the data, with only the notes given in the "
                 "context; the corrections in the context list the figures that were wrong.",
    tools=("write_report",))


def critique(state: PlannedState, config: RunnableConfig) -> dict[str, Any]:
    """One critique round: the critic recomputes, discrepancies are listed, the reviser fixes.

    The critic runs on the report's dataset (told the report's metric and group-by column) and
    on its source (the notes describe both); its context is its own (its cleaned copy never
    becomes the run's dataset). Every figure of the report is then checked against the
    critic's recomputation (:func:`relaygraph.coordination.critique.check_report`); the reviser
    rewrites the report from the data, without the notes that could not be reproduced.
    """
    context = dict(state.get("context") or {})
    rounds = list(state.get("critique") or [])
    settings = settings_from_config(config)
    workspace = Workspace(settings.data_dir, settings.output_dir, thread_id(config), roles=declared_roles(config))
    report_path = Path(str(context["report"]))
    if not report_path.is_absolute():
        report_path = workspace.resolve_output(report_path.name)
    markdown = report_path.read_text(encoding="utf-8")
    number = len(rounds) + 1
    steps: list[dict[str, Any]] = []
    with tracing.tracer().start_as_current_span("critique", attributes={"relaygraph.critique.round": number}):
        sources = [context.get("dataset"), context.get("source_dataset") or state.get("data")]
        failures: list[dict[str, Any]] = []
        subject = critique_logic.report_subject(markdown)
        for i, dataset in enumerate(d for d in dict.fromkeys(sources) if d):
            run_state = {**state, "context": {"dataset": dataset, "output_name": f"critic_check_{number}_{i}.parquet",
                                              **subject}}
            out = agent_node(CRITIC, node=f"critic#{number}.{i + 1}")(run_state, config)
            steps += out["steps"]
            # a critic short of one recomputation (a tool the data cannot support) still checks the rest
            failures += [out] if any(e.get("outcome") != "partial" for e in out.get("errors") or []) else []
        if failures:  # the critic gave up (on its last attempt): nothing is verified this round
            return {"steps": steps, "errors": [e for f in failures for e in f["errors"]],
                    "progress": [p for f in failures for p in f["progress"]],
                    "critique": [*rounds, {"round": number, "discrepancies": [], "clean": False, "revised": False,
                                           "failed": "; ".join(e["reason"] for f in failures for e in f["errors"])}]}
        ok = [s for s in steps if s.get("tool") and s.get("tool") != "final_answer" and not s.get("error")]
        recomputed = [item for s in ok
                      for item in (s.get("facts") or {}, s.get("summary") or "", s.get("observation") or "")]
        calls = [(str(s["tool"]), s.get("facts") or {}) for s in ok]
        found = critique_logic.check_report(markdown, calls, notes_known=recomputed,
                                            partition_known=_recompute_partitions(state, markdown, workspace))
        entry: dict[str, Any] = {"round": number, "discrepancies": [d.model_dump() for d in found],
                                 "clean": not found, "revised": False}
        update: dict[str, Any] = {"steps": steps}
        if found and number < critique_logic.MAX_ROUNDS:
            findings = [str(v) for k, v in (context.get("findings") or {}).items()
                        if k not in (REVISER.name, "reporter")]  # a report does not quote its own writing
            kept = critique_logic.revise_notes(context.get("notes_kept") or findings, found)
            notes = "\n".join(f"- {n}" for n in kept) or "(no notes could be reproduced)"
            fixed = report_args(state, config)
            run_state = {**state, "context": {**context, "notes": notes, **fixed["write_report"],
                                              "corrections": critique_logic.corrections(found)}}
            out = agent_node(REVISER, node=f"reviser#{number}", fixed_args=fixed)(run_state, config)
            update["steps"] = steps + out["steps"]
            if out.get("errors"):  # the reviser gave up: the report stays as the critic found it
                entry["failed"] = out["errors"][0]["reason"]
                return {**update, "errors": out["errors"], "progress": out["progress"],
                        "critique": [*rounds, entry]}
            update["context"] = {k: v for k, v in out["context"].items() if k in ("report", "chart")}
            update["context"]["notes_kept"] = kept
            entry.update(revised=True, notes_kept=len(kept), notes_dropped=len(findings) - len(kept))
    return {**update, "critique": [*rounds, entry]}


def _recompute_partitions(state: PlannedState, markdown: str, workspace: Workspace) -> dict[str, list[Any]]:
    """For the notes labelled as one partition's: the same tool call run again on that
    partition (its arguments as the run made it), so their figures are checked against that
    partition's values — a partition's figure is neither trusted nor matched against the
    whole file's."""
    out: dict[str, list[Any]] = {}
    for tool, part in sorted(critique_logic.partition_notes(markdown)):
        made = [s for s in state.get("steps") or [] if s.get("tool") == tool and not s.get("error")
                and (s.get("facts") or {}).get("partition") == part]
        if tool not in PARTITION_TOOLS or not made:
            continue  # nothing to recompute it from: its figures stay unreproduced
        args = {**made[-1].get("arguments", {}), "partition": part}
        try:
            result = TOOLS[tool](workspace).forward(**args)
        except (ValueError, KeyError, TypeError, OSError):
            result = None  # a recomputation that fails reproduces nothing: the note's figures stay unreproduced
        if result is not None:
            out.setdefault(part, []).extend([result.facts, result.summary])
    return out


def after_critique(state: PlannedState) -> str:
    """Another round after a revision; to the finish when clean, at the limit, or when the
    critic or reviser failed for good (:func:`~relaygraph.nodes.failures.failed_nodes`)."""
    last = (state.get("critique") or [{}])[-1]
    gave_up = any(node.startswith(("critic#", "reviser#")) for node in failed_nodes(state))
    return "critique" if last.get("revised") and not gave_up else "finalize"


# --- finalize ---------------------------------------------------------------------------------

def injections(state: PlannedState, config: RunnableConfig) -> list[dict[str, Any]]:
    """Each ``fail=`` injection and whether it fired: one whose task the executed plans never
    reached (no ``trends`` on data without dates) is reported, not silently ignored."""
    fired = state.get("fired") or {}
    planned = {t["name"] for p in state.get("plans") or [] for t in p.get("tasks", [])}
    out = []
    for injection in replanning.parse_injections(options(config).get("fail")):
        key = f"{injection.task}:{injection.failure_class}"
        times = int(fired.get(key, 0))
        entry: dict[str, Any] = {"injection": key, "task": injection.task, "failure_class": injection.failure_class,
                                 "times": injection.times, "fired": times > 0, "fired_times": times}
        if not times:
            entry["why_not"] = (f"task {injection.task!r} was not in the executed plan" if injection.task not in planned
                                else f"the run stopped before task {injection.task!r} ran")
        out.append(entry)
    return out


@dataclass
class DroppedWork:
    """Work of the original plan a replan left out, and the failure that replan answered."""

    failure: dict[str, Any]  # the result.replanning entry of the replan that dropped it
    missing: list[dict[str, Any]]  # {"task", "tools", "artifacts"} per task whose effects no task produced

    @property
    def tasks(self) -> list[str]:
        return [m["task"] for m in self.missing]

    @property
    def artifacts(self) -> list[str]:
        return [f"{a} ({', '.join(m['tools'])})" for m in self.missing for a in m["artifacts"]]


def dropped_work(state: PlannedState) -> list[DroppedWork]:
    """What the first accepted plan was meant to produce and no completed task produced.

    An artifact is a task's effect (``trends_found``, ``validated``, ...). A replan that reaches
    the same effects another way (a retry, a remapped column, partitions that still detect
    trends) drops nothing; one that plans *around* a failing task (``cross_section_analysis``
    instead of ``time_series_analysis``) leaves the report without that task's artifact, and
    the run is ``partial`` with the failure listed, never ``completed``. Each missing task is
    blamed on the first replan whose new plan no longer had it (else the last failure).
    """
    plans = state.get("plans") or []
    if not plans or state.get("stop_reason"):
        return []
    produced = {(k, json.dumps(v)) for t in state.get("done") or [] for k, v in (t.get("effects") or {}).items()}
    missing: dict[str, dict[str, Any]] = {}
    for task in plans[0].get("tasks", []):
        lacking = [k for k, v in (task.get("effects") or {}).items() if (k, json.dumps(v)) not in produced]
        if lacking and task["name"] not in missing:
            missing[task["name"]] = {"task": task["name"], "tools": list(task.get("tools") or ()),
                                     "artifacts": lacking}
    if not missing:
        return []
    replans = [r for r in state.get("replans") or [] if r.get("action") == "replan" and r.get("accepted")]
    failures = [r for r in state.get("replans") or [] if r.get("task")]
    out: dict[int, DroppedWork] = {}
    for name, item in missing.items():
        blamed = next((r for r in replans if name not in (r.get("new_tasks") or [])), None)
        blamed = blamed or (failures[-1] if failures else {"task": name, "failure_class": None, "error": None})
        out.setdefault(id(blamed), DroppedWork(blamed, [])).missing.append(item)
    return list(out.values())


def finalize(state: PlannedState, config: RunnableConfig) -> dict[str, Any]:
    """The shared result extended as :class:`PlannedResult`: the plan, every replan, what was
    learned and the critique; the run is recorded in the experience store."""
    base = run_result(state, config, answer_from="reporter")
    status, answer, reason = base.status, base.answer, state.get("stop_reason")
    if reason:
        status, answer = "failed", f"Stopped: {reason}\n\n{answer}".strip()
    rounds = state.get("critique") or []
    if rounds and not rounds[-1].get("clean") and status == "completed":
        status = "partial"  # figures remain that the critic could not reproduce
        reason = f"after {len(rounds)} critique rounds, {len(rounds[-1]['discrepancies'])} figures unverified"
    dropped = dropped_work(state)
    if dropped and status == "completed":  # replanned around a failure, without what it was for
        status = "partial"
        reason = "replanned around " + "; ".join(
            f"{d.failure['task']} ({d.failure['failure_class']}), without {', '.join(d.tasks)}" for d in dropped)
    nothing = none_delivered(state, config) if status != "failed" else None
    if nothing:  # a report without any section the user asked for delivers nothing asked
        status, reason = "failed", nothing
    by_learning = left_out_by_learning(state, config)
    if by_learning and status == "completed":  # a requested section the learning chose to leave out
        status, reason = "partial", "; ".join(by_learning.values())
    current = state.get("plan") or {}
    plan = PlanSummary(
        goal=current.get("goal", GOAL), confidence=current.get("confidence"),
        methods=[m["method"] for m in current.get("methods", [])],
        tasks=[t["name"] for t in current.get("tasks", [])],
        completed=[t["name"] for t in state.get("done") or []],
        contingencies=[c for c in current.get("contingencies", []) if c.get("method")],
        without_contingency=[{"task": c.get("task"), "instead_of": c.get("instead_of"), "reason": c.get("reason")}
                             for c in current.get("contingencies", []) if not c.get("method")],
        plans_accepted=len(state.get("plans") or []),
        timeouts=state.get("timeouts") or {})
    errors = list(base.errors)
    listed: set[tuple[str | None, str]] = {(e.node, e.reason) for e in errors}
    for d in dropped:  # the failure each replan dropped work for, with what the report lacks
        failure = d.failure
        listed.add((failure.get("task"), failure.get("error") or ""))
        errors.append(AgentFailure.model_validate({  # ``missing`` is the planned graph's own key
            "agent": failure.get("agent") or failure["task"], "node": failure["task"],
            "reason": (f"{failure.get('error') or 'failed'}; replanned without {', '.join(d.tasks)}: the report "
                       f"has no {', '.join(d.artifacts)} (re-run with the cause fixed, or see result.replanning)"),
            "failure_class": failure.get("failure_class"), "missing": d.missing}))
    if status in ("failed", "partial"):  # the failed tasks the run ends without, as errors
        for entry in state.get("replans") or []:
            key = (entry.get("task"), entry.get("error") or "")
            if entry.get("task") not in plan.completed and key not in listed:
                listed.add(key)
                errors.append(AgentFailure(agent=entry.get("agent") or entry["task"], node=entry["task"],
                                           reason=key[1], failure_class=entry.get("failure_class")))
    shown: list[dict[str, Any]] = []
    if status == "partial":  # on the console too, not only one line inside the report (a "!" line)
        for section, why in by_learning.items():
            shown.append(AgentFailure.model_validate({  # ``section`` is the planned graph's own key
                "agent": "planner", "node": "plan", "reason": why, "outcome": "partial",
                "section": section}).model_dump(exclude_none=True))
        errors += [AgentFailure.model_validate(e) for e in shown]
    settings = settings_from_config(config)
    simulated = str(options(config).get("learn_injected", False)).strip().lower() in ("true", "1", "yes", "on")
    run = experience.experience_from_run(thread_id(config), GOAL, state, status, time.time(), simulated=simulated)
    size = experience_store.record(experience_store.store_for(config, settings.checkpoint_db), run)
    return result_update(extend_result(
        base, PlannedResult, status=status, answer=answer, reason=reason, plan=plan, errors=errors,
        replanning=state.get("replans") or [], world=state.get("world") or {},
        learned=state.get("learned") or {}, critique=rounds, experience_store={"store": GOAL, "size": size},
        injections=injections(state, config)))  # the console said ``shown`` when the plan was made (plan_notes)
