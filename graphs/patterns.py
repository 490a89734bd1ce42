"""Pattern builders: your own agents and tools, composed the way relaygraph's graphs are.

    sequential_team(agents)            START ─► a1 ─► a2 ─► … ─► finalize ─► END
    parallel_team(specialists, prepare) START ─► prepare ─► Send(each specialist × partition)
                                                         ─► aggregate ─► finalize ─► END
    handoff_team(triage, specialists)  START ─► triage ─handoff_*─► specialist ◄──► specialist …
                                                         ─► finalize ─► END
    hierarchical_team(teams, prepare)  START ─► supervisor ─► prepare ─► Send(team lead subgraphs
                                                 ─► Send(workers) ─► team_review) ─► synthesis ─► finalize
    consensus_team(voters), auction_team(bidders, verifier), negotiation_team(proposers, mediator),
    planned_team(agents)               the coordination patterns, with your agents and your own
                                       state/result fields

Each builder returns an uncompiled ``StateGraph`` (compile it with a checkpointer, or hand it to
``langgraph dev`` from your own ``langgraph.json``), built from :class:`AgentSpec`s — in Python
or loaded from YAML/TOML with :func:`relaygraph.nodes.specs.load_agents` — whose tools are the
built-in ones or yours (:func:`relaygraph.tools.register_tool`). Every team gets what relaygraph's
own graphs have: a fresh agent per execution, ReAct steps in state, retries, approval gates on any
node, side-effecting tools run once per task, and a ``result`` node. Extend the state with your
own keys (``state_schema``, a subclass of the default) and the result with your own fields
(``result_schema``, a subclass of :class:`RunResult`, filled by ``result_fields(state)``).

Every built-in graph is one of these builders applied to its own agents. The coordination
builders live beside their graphs and are re-exported here: what each lets you supply is what
it can honestly vary (auction: bidders and verifier; negotiation: proposers with their stances
and the mediator; consensus: the voters, who vote on the configured question; planned: agents
for the domain's primitive tasks, by task, domain agent or capability).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from relaygraph.graphs.auction import auction_team
from relaygraph.graphs.consensus import consensus_team
from relaygraph.graphs.hierarchical import hierarchical_team
from relaygraph.graphs.negotiation import negotiation_team
from relaygraph.graphs.planned import planned_team
from relaygraph.nodes.agent import AgentSpec
from relaygraph.nodes.approval import rejected, with_approval
from relaygraph.nodes.contracts import HandoffResult, ParallelResult, RunResult
from relaygraph.nodes.failures import agent_node, agent_retry_policy, failed_nodes, unless_failed
from relaygraph.nodes.handoff import HandoffState, accepted, handoff_summary, make_handoff_node
from relaygraph.nodes.parallel import (
    BranchInput,
    ParallelState,
    aggregate,
    fan_out,
    make_branch_node,
    plan_from_config,
)
from relaygraph.nodes.protocols import UpdateNode
from relaygraph.nodes.results import (
    ResultFields,
    extend_result,
    require_result_schema,
    result_update,
    run_result,
)
from relaygraph.nodes.state import RunInput, WorkflowState
from relaygraph.observability.instrument_langchain import TracedStateGraph

__all__ = ["auction_team", "consensus_team", "handoff_team", "hierarchical_team", "negotiation_team",
           "parallel_team", "planned_team", "sequential_team"]


def _finalize(answer_from: str | None, result_schema: type[RunResult] | None,
              result_fields: ResultFields | None) -> UpdateNode:
    def finalize(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        result = run_result(state, config, answer_from)
        if result_schema is not None:
            result = extend_result(result, result_schema, **(result_fields(state) if result_fields else {}))
        return result_update(result)

    return finalize


def _check_names(agents: Sequence[AgentSpec], reserved: Sequence[str]) -> None:
    names = [a.name for a in agents]
    if not names:
        raise ValueError("A team needs at least one agent.")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"Agent names must be unique in a team; repeated: {', '.join(duplicates)}.")
    clashes = sorted(set(names) & set(reserved))
    if clashes:
        raise ValueError(f"Agent name(s) {', '.join(clashes)} are node names of the pattern; rename them.")


def sequential_team(
    agents: Sequence[AgentSpec],
    *,
    answer_from: str | None = None,
    state_schema: type[Any] = WorkflowState,
    input_schema: type[Any] = RunInput,
    result_schema: type[RunResult] | None = None,
    result_fields: ResultFields | None = None,
    approve_before: list[str] | None = None,
) -> StateGraph:
    """Agents in a row, passing one shared context; the last one's answer leads the result
    (or ``answer_from``'s)."""
    _check_names(agents, ("finalize",))
    require_result_schema(result_schema, result_fields)
    builder = TracedStateGraph(state_schema, input_schema=input_schema)
    builder.add_edge(START, agents[0].name)
    # an agent that failed on its last attempt ends the team's run: later agents would build on nothing
    for spec, after in zip(agents, [*(a.name for a in agents[1:]), "finalize"], strict=True):
        builder.add_node(spec.name, agent_node(spec), retry_policy=agent_retry_policy())
        builder.add_conditional_edges(spec.name, unless_failed(spec.name, after), [after, "finalize"])
    builder.add_node("finalize", _finalize(answer_from or agents[-1].name, result_schema, result_fields))
    builder.add_edge("finalize", END)
    return with_approval(builder, approve_before)


def parallel_team(
    specialists: Sequence[AgentSpec],
    *,
    prepare: AgentSpec | None = None,
    state_schema: type[Any] = ParallelState,
    input_schema: type[Any] = RunInput,
    result_fields: ResultFields | None = None,
    result_schema: type[ParallelResult] = ParallelResult,
    approve_before: list[str] | None = None,
) -> StateGraph:
    """An optional ``prepare`` agent, then every specialist at once — each as its own agent
    instance in its own state slot, optionally on row partitions (``configurable.specialists`` /
    ``partitions``) — then a fan-in aggregate and the result (``result.parallel``, ``failed``,
    ``success_rate``)."""
    _check_names([*specialists, *([prepare] if prepare else [])], ("specialist", "aggregate", "finalize"))
    by_name = {spec.name: spec for spec in specialists}

    def route(state: dict[str, Any], config: RunnableConfig) -> list[Send] | str:
        if rejected(state) or (prepare is not None and prepare.name in failed_nodes(state)):
            return "finalize"
        return fan_out(state, plan_from_config(config, list(by_name)), "specialist")

    def fields(state: dict[str, Any]) -> dict[str, Any]:
        summary = state.get("parallel") or {}
        extra = result_fields(state) if result_fields else {}
        return {"parallel": state.get("parallel"), "failed": summary.get("failed", {}),
                "rejected": summary.get("rejected", {}),
                "success_rate": summary.get("success_rate"), **extra}

    builder = TracedStateGraph(state_schema, input_schema=input_schema)
    builder.add_node("specialist", make_branch_node(by_name), input_schema=BranchInput,
                     retry_policy=agent_retry_policy())
    builder.add_node("aggregate", aggregate)
    builder.add_node("finalize", _finalize("aggregate", result_schema, fields))
    if prepare is not None:
        builder.add_node(prepare.name, agent_node(prepare), retry_policy=agent_retry_policy())
        builder.add_edge(START, prepare.name)
        builder.add_conditional_edges(prepare.name, route, ["specialist", "finalize"])
    else:
        builder.add_conditional_edges(START, route, ["specialist", "finalize"])
    builder.add_edge("specialist", "aggregate")
    builder.add_edge("aggregate", "finalize")
    builder.add_edge("finalize", END)
    return with_approval(builder, approve_before)


def default_scope(spec: AgentSpec) -> str:
    """What peers are told an agent does, unless the team says otherwise: its role and tools."""
    return f"{spec.role}; tools: {', '.join(spec.tools)}" if spec.tools else spec.role


def handoff_answer(state: dict[str, Any], entry: str) -> str | None:
    """The team's answer: every agent that worked on the request after ``entry``, in route order
    (one agent: its answer alone), so an answer covers each part the request asked for."""
    answers = state.get("answers") or {}
    route = [h["to"] for h in accepted(state)]
    worked = [name for name in dict.fromkeys(route) if name != entry and name in answers]
    if not worked:
        return None
    if len(worked) == 1:
        return answers[worked[0]]
    return "\n\n".join(f"{name}: {answers[name]}" for name in worked)


def handoff_team(
    triage: AgentSpec,
    specialists: Sequence[AgentSpec],
    *,
    scopes: dict[str, str] | None = None,
    state_schema: type[Any] = HandoffState,
    input_schema: type[Any] = RunInput,
    result_schema: type[HandoffResult] = HandoffResult,
    result_fields: ResultFields | None = None,
    approve_before: list[str] | None = None,
) -> StateGraph:
    """A ``triage`` agent that hands the request to one specialist, and specialists that hand it
    on to each other through ``handoff_<peer>`` tools, until one finishes.

    Every agent holds a handoff tool per specialist (never back to triage); ``scopes[name]`` is
    what those tools tell the holder about the peer (default: its role and tools). Transfers are
    validated and invalid ones rolled back; a loop guard (``configurable.max_handoffs``) ends
    endless routing with a reason (:mod:`relaygraph.nodes.handoff`). The result is a
    :class:`HandoffResult` (``handoffs``: route, history, rollbacks) whose answer joins the
    answers of the specialists that worked, in route order; status ``stopped`` when the loop
    guard or repeated invalid transfers ended the run.
    """
    _check_names([triage, *specialists], ("finalize",))
    if not specialists:
        raise ValueError("A handoff team needs at least one specialist to hand the request to.")
    scopes = scopes or {}
    unknown = sorted(set(scopes) - {s.name for s in specialists})
    if unknown:
        raise ValueError(f"scopes names agents that are not specialists of this team: {', '.join(unknown)}.")
    scope_of = {s.name: scopes.get(s.name) or default_scope(s) for s in specialists}

    def finalize(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        base = run_result(state, config, state.get("active"))
        stopped = bool(state.get("stop_reason")) and base.status != "rejected"
        answer = handoff_answer(state, triage.name)
        extra = result_fields(state) if result_fields else {}
        return result_update(extend_result(
            base, result_schema, handoffs=handoff_summary(state),
            **({"answer": answer} if answer is not None and base.status != "rejected" else {}),
            **({"status": "stopped", "reason": state["stop_reason"]} if stopped else {}), **extra))

    builder = TracedStateGraph(state_schema, input_schema=input_schema)
    for spec in (triage, *specialists):
        peers = {p: scope for p, scope in scope_of.items() if p != spec.name}
        builder.add_node(spec.name, make_handoff_node(spec, peers), retry_policy=agent_retry_policy(),
                         destinations=(*peers, "finalize"))
    builder.add_node("finalize", finalize)
    builder.add_edge(START, triage.name)
    builder.add_edge("finalize", END)
    return with_approval(builder, approve_before)
