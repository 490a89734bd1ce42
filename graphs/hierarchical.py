"""Hierarchical workflow: a supervisor delegates to team leads, which delegate to workers.

    START ─► supervisor ─► prepare ─┬─Send─► quality_lead   [plan ─Send─► validation, outliers ─► team_review] ─┐
                                    ├─Send─► sales_lead     [plan ─Send─► breakdown, trends    ─► team_review] ─┼─► synthesis ─► finalize ─► END
                                    └─Send─► customers_lead [plan ─Send─► segments, scores     ─► team_review] ─┘

Both levels delegate **in parallel**: the supervisor sends the task to every team it chose at
once, and each lead sends it to every worker it chose at once. Team leads are compiled
subgraphs (their own checkpoints, resumable on their own); workers are agent nodes, each its
own agent instance in its own slot (:mod:`relaygraph.nodes.parallel`). Routing, limits and the quality
assessment at each level are in :mod:`relaygraph.nodes.hierarchy`.

``prepare`` cleans the data once before delegating: the quality team is handed the raw file
(finding its defects is its job), every other team the cleaned one — so a sales breakdown
counts five regions, not twenty-five spellings of them.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from relaygraph.nodes.agent import AgentSpec
from relaygraph.nodes.approval import rejected, with_approval
from relaygraph.nodes.contracts import HierarchicalResult
from relaygraph.nodes.failures import (
    agent_node,
    agent_retry_policy,
    failed_nodes,
    recording_failures,
    unless_failed,
)
from relaygraph.nodes.hierarchy import (
    HierarchyLimits,
    check_delegation,
    choice_model,
    decide,
    level_quality,
    worker_quality,
)
from relaygraph.nodes.parallel import make_branch_node
from relaygraph.nodes.protocols import StateNode, UpdateNode
from relaygraph.nodes.results import (
    ResultFields,
    extend_result,
    result_update,
    run_result,
    with_result_fields,
)
from relaygraph.nodes.state import RunInput, WorkflowState, merge_dicts
from relaygraph.nodes.team_params import HierarchicalParams
from relaygraph.observability.instrument_langchain import TracedStateGraph

DESCRIPTION = "supervisor → team leads (subgraphs) → workers, delegating in parallel with quality at each level."
DEFAULT_TASK = ("Assess data quality (validation and outliers), analyse sales (breakdown and trends) "
                "and study customers (segments and scores).")


PARAMS = HierarchicalParams

#: team → (scope shown to the deciding model, workers)
TEAMS: dict[str, tuple[str, tuple[AgentSpec, ...]]] = {
    "quality": ("data quality: validation and outliers", (
        AgentSpec(name="validation", role="data validator", tools=("validate_dataset",),
                  instructions="Validate the dataset for nulls, duplicates and out-of-range values."),
        AgentSpec(name="outliers", role="outlier analyst", tools=("detect_outliers",),
                  instructions="Detect outliers in every numeric column."),
    )),
    "sales": ("sales analysis: breakdown by category and trends over time", (
        AgentSpec(name="breakdown", role="sales analyst", tools=("aggregate",),
                  instructions="Aggregate the main metric by category."),
        AgentSpec(name="trends", role="trend analyst", tools=("detect_trends",),
                  instructions="Detect trends of the main metric over time."),
    )),
    "customers": ("customers: RFM segments and record scores", (
        AgentSpec(name="segments", role="customer segmenter", tools=("segment_customers",),
                  instructions="Segment the customers by recency, frequency and spend."),
        AgentSpec(name="scores", role="record scorer", tools=("score_records",),
                  instructions="Score every record on its value and completeness."),
    )),
}

PREPARER = AgentSpec(
    name="prepare", role="data preparer", tools=("clean_dataset",),
    instructions="Clean the dataset once so the teams analyse clean data.",
)
RAW_DATA_TEAMS = frozenset({"quality"})

SUPERVISOR_PROMPT = ("You supervise a data team. Decompose the user's request: choose only the teams "
                     "it needs; they work in parallel.")
LEAD_PROMPT = "You lead one team. Choose the workers of your team that the user's request needs; they work in parallel."

#: team -> (the scope the supervisor is told, the team's workers)
Teams = Mapping[str, tuple[str, Sequence[AgentSpec]]]


class HierarchyState(WorkflowState, total=False):
    delegation: dict[str, Any]
    teams: Annotated[dict[str, dict[str, Any]], merge_dicts]
    quality: dict[str, Any]


class TeamInput(TypedDict, total=False):
    task: str
    data: str | None
    context: dict[str, Any]
    team: str
    depth: int


class TeamOutput(TypedDict, total=False):
    """What a team hands up: only reducer keys, so parallel teams merge instead of colliding."""

    steps: Annotated[list[dict[str, Any]], operator.add]
    progress: Annotated[list[dict[str, Any]], operator.add]
    errors: Annotated[list[dict[str, Any]], operator.add]
    approvals: Annotated[list[dict[str, Any]], operator.add]
    answers: Annotated[dict[str, str], merge_dicts]
    teams: Annotated[dict[str, dict[str, Any]], merge_dicts]


class TeamState(TeamInput, TeamOutput, total=False):
    plan: dict[str, Any]
    branches: Annotated[dict[str, dict[str, Any]], merge_dicts]


# --- supervisor level ------------------------------------------------------------------------


def make_supervisor(teams: Teams) -> UpdateNode:
    delegation = choice_model("Delegation", "teams", list(teams),
                              "Teams to delegate to: " + "; ".join(f"{t} = {s}" for t, (s, _) in teams.items()))

    def supervisor(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        """Decompose the request into teams (a structured decision), within the limits."""
        decision = decide(delegation, SUPERVISOR_PROMPT, state["task"], config, who="supervisor").model_dump()
        chosen = list(dict.fromkeys(decision["teams"]))
        check_delegation("supervisor", 1, chosen, HierarchyLimits.from_config(config))
        return {"delegation": {"teams": chosen, "rationale": decision["rationale"], "depth": 1}}

    # on the agents' one failure path: a failure for good is recorded, and the run goes to finalize
    return recording_failures(supervisor, who=lambda _state: ("supervisor", "supervisor"))


def team_context(team: str, context: dict[str, Any], raw_data_teams: Collection[str] = RAW_DATA_TEAMS) -> dict[str, Any]:
    """The raw-data teams (quality) audit the raw data; the others get the prepared (cleaned) file."""
    if team in raw_data_teams and context.get("source_dataset"):
        return {**context, "dataset": context["source_dataset"]}
    return context


def make_delegate_to_teams(prepare: str | None, raw_data_teams: Collection[str]
                           ) -> Callable[[dict[str, Any]], list[Send] | str]:
    def delegate_to_teams(state: dict[str, Any]) -> list[Send] | str:
        failed = failed_nodes(state)
        if rejected(state) or "supervisor" in failed or (prepare is not None and prepare in failed):
            return "finalize"
        context = state.get("context") or {}
        return [Send(f"{team}_lead", {"task": state["task"], "data": state.get("data"),
                                      "context": team_context(team, context, raw_data_teams), "team": team,
                                      "depth": 2})
                for team in state["delegation"]["teams"]]

    return delegate_to_teams


def synthesis(state: dict[str, Any]) -> dict[str, Any]:
    """The supervisor's review: every team's result and quality, and the overall quality."""
    teams = state.get("teams") or {}
    planned = (state.get("delegation") or {}).get("teams", [])
    overall = level_quality({t: {"status": r.get("status"), "score": r["quality"]["score"]}
                             for t, r in teams.items()}, planned)
    lines = []
    for team in planned:
        report = teams.get(team, {"status": "missing"})
        lines.append(f"{team}: {report.get('status')} — quality {report.get('quality', {}).get('score', 0):.2f} "
                     f"({report.get('quality', {}).get('grade', 'poor')})")
        for worker, answer in (report.get("answers") or {}).items():
            lines.append(f"  {worker}: {answer}")
    lines.append(f"overall quality {overall['score']:.2f} ({overall['grade']}); "
                 f"{overall['delivered']}/{overall['planned']} teams delivered"
                 + (f" ({overall['partial']} partial)" if overall.get("partial") else "") + ".")
    return {"quality": {"overall": overall, "teams": {t: r.get("quality") for t, r in teams.items()}},
            "answers": {"synthesis": "\n".join(lines)}}


def finalize_hierarchy(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
    """The result; a run whose planned teams all failed is ``failed``, though synthesis wrote a summary."""
    base = run_result(state, config, "synthesis")
    overall = (state.get("quality") or {}).get("overall") or {}
    nothing = bool(overall.get("planned")) and not overall.get("delivered") and not overall.get("partial")
    status = "failed" if base.status == "partial" and nothing else base.status
    return result_update(extend_result(
        base, HierarchicalResult, status=status, quality=state.get("quality") or {},
        delegation=state.get("delegation") or {}, teams=state.get("teams") or {}))


# --- team level (one subgraph per team) --------------------------------------------------------


def make_lead(team: str, workers: Sequence[AgentSpec]) -> UpdateNode:
    schema = choice_model(f"{team.title().replace('_', '')}Plan", "workers", [w.name for w in workers],
                          f"Workers of the {team} team: " + "; ".join(f"{w.name} = {w.instructions}" for w in workers))

    lead = f"{team}_lead"

    def plan(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        """The lead's structured decision: which of its workers the request needs."""
        decision = decide(schema, f"{LEAD_PROMPT} Your team: {team}.", state["task"], config, who=lead).model_dump()
        chosen = list(dict.fromkeys(decision["workers"]))
        check_delegation(lead, state.get("depth", 2), chosen, HierarchyLimits.from_config(config))
        return {"plan": {"workers": chosen, "rationale": decision["rationale"]}}

    # recorded under the lead's name (its node in the parent graph); the team then ends at team_review
    return recording_failures(plan, who=lambda _state: (lead, lead))


def delegate_to_workers(state: dict[str, Any]) -> list[Send] | str:
    if rejected(state) or f"{state.get('team')}_lead" in failed_nodes(state):  # the lead's plan failed for good
        return "team_review"
    context = state.get("context") or {}
    return [Send(worker, {"task": state["task"], "data": state.get("data"), "context": context,
                          "branch": {"id": worker, "specialist": worker}})
            for worker in state["plan"]["workers"]]


def make_team_review(team: str) -> StateNode:
    def team_review(state: dict[str, Any]) -> dict[str, Any]:
        """The lead's review: each worker's quality, the team's, and the team's answers."""
        branches = state.get("branches") or {}
        planned = (state.get("plan") or {}).get("workers", [])
        steps = state.get("steps") or []
        workers = {w: worker_quality(slot, [s for s in steps if s.get("agent") == w]) for w, slot in branches.items()}
        quality = level_quality(workers, planned) | {"workers": workers}
        answers = {w: slot["answer"] for w, slot in branches.items() if slot.get("status") == "completed"}
        failed = {w: slot.get("error") for w, slot in branches.items() if slot.get("status") != "completed"}
        status = "completed" if not failed and answers else ("partial" if answers else "failed")
        return {"teams": {team: {"status": status, "plan": state.get("plan"), "answers": answers,
                                 "failed": failed, "quality": quality}}}

    return team_review


def build_team(team: str, approve_before: set[str], workers: Sequence[AgentSpec] | None = None) -> StateGraph:
    """One team lead's subgraph: plan (which workers), the workers in parallel, team_review."""
    workers = list(workers if workers is not None else TEAMS[team][1])
    builder = TracedStateGraph(TeamState, input_schema=TeamInput, output_schema=TeamOutput)
    builder.add_node("plan", make_lead(team, workers), retry_policy=agent_retry_policy())
    specs = {w.name: w for w in workers}
    for worker in workers:
        builder.add_node(worker.name, make_branch_node(specs), retry_policy=agent_retry_policy())
        builder.add_edge(worker.name, "team_review")
    builder.add_node("team_review", make_team_review(team))
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", delegate_to_workers, [*specs, "team_review"])
    builder.add_edge("team_review", END)
    return with_approval(builder, approve_before & set(builder.nodes), finish="team_review")


def hierarchical_team(
    teams: Teams,
    *,
    prepare: AgentSpec | None = None,
    raw_data_teams: Collection[str] = (),
    state_schema: type[Any] = HierarchyState,
    input_schema: type[Any] = RunInput,
    result_schema: type[HierarchicalResult] | None = None,
    result_fields: ResultFields | None = None,
    approve_before: list[str] | None = None,
) -> StateGraph:
    """A supervisor that delegates the request to the teams it needs, each team lead (a compiled
    subgraph) to the workers it needs — both in parallel — with quality scored at every level.

    ``teams`` maps a team name to (the scope the supervisor is told, its worker
    :class:`AgentSpec`s). ``prepare``, when given, runs once before delegating (e.g. cleaning);
    the ``raw_data_teams`` are then handed the original file instead of the prepared one.
    Limits: ``configurable.max_depth``/``max_fanout``. The result is a
    :class:`HierarchicalResult` (``delegation``, ``teams``, ``quality``), extended with
    ``result_schema``/``result_fields``.
    """
    if not teams:
        raise ValueError("A hierarchy needs at least one team.")
    workers = [w for _, members in teams.values() for w in members]
    empty = [t for t, (_, members) in teams.items() if not members]
    if empty:
        raise ValueError(f"Team(s) {', '.join(empty)} have no workers.")
    names = [w.name for w in workers] + [f"{t}_lead" for t in teams] + ([prepare.name] if prepare else [])
    reserved = {"supervisor", "synthesis", "finalize", "plan", "team_review"}
    clashes = sorted({n for n in names if names.count(n) > 1} | (set(names) & reserved))
    if clashes:
        raise ValueError(f"Names must be unique and not node names of the pattern: {', '.join(clashes)}.")
    unknown_raw = sorted(set(raw_data_teams) - set(teams))
    if unknown_raw:
        raise ValueError(f"raw_data_teams names unknown team(s): {', '.join(unknown_raw)}.")
    wanted = set(approve_before or ())
    builder = TracedStateGraph(state_schema, input_schema=input_schema)
    builder.add_node("supervisor", make_supervisor(teams), retry_policy=agent_retry_policy())
    for team, (_, members) in teams.items():
        builder.add_node(f"{team}_lead", build_team(team, wanted, members).compile(name=f"{team}_lead"))
        builder.add_edge(f"{team}_lead", "synthesis")
    builder.add_node("synthesis", synthesis)
    builder.add_node("finalize", with_result_fields(finalize_hierarchy, result_schema, result_fields,
                                                    HierarchicalResult))
    builder.add_edge(START, "supervisor")
    route = make_delegate_to_teams(prepare.name if prepare else None, raw_data_teams)
    destinations = [*(f"{t}_lead" for t in teams), "finalize"]
    if prepare is not None:
        builder.add_node(prepare.name, agent_node(prepare), retry_policy=agent_retry_policy())
        builder.add_conditional_edges("supervisor", unless_failed("supervisor", prepare.name),
                                      [prepare.name, "finalize"])
        builder.add_conditional_edges(prepare.name, route, destinations)
    else:
        builder.add_conditional_edges("supervisor", route, destinations)
    builder.add_edge("synthesis", "finalize")
    builder.add_edge("finalize", END)
    known = set(builder.nodes) | {w.name for w in workers} | {"plan", "team_review"}
    unknown = sorted(wanted - known)
    if unknown:
        raise ValueError(f"Cannot approve before unknown node(s) {', '.join(unknown)}; nodes are: "
                         f"{', '.join(sorted(known))}.")
    return with_approval(builder, wanted & set(builder.nodes))


def build_graph(approve_before: list[str] | None = None) -> StateGraph:
    """The uncompiled graph (nodes: supervisor, prepare, <team>_lead subgraphs, synthesis, finalize)."""
    return hierarchical_team(TEAMS, prepare=PREPARER, raw_data_teams=RAW_DATA_TEAMS, approve_before=approve_before)


graph = build_graph().compile(name="hierarchical")
