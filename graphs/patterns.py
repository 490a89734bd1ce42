"""Pattern builders: your own agents and tools, composed the way relaygraph's graphs are.

    sequential_team(agents)            START ─► a1 ─► a2 ─► … ─► finalize ─► END
    parallel_team(specialists, prepare) START ─► prepare ─► Send(each specialist × partition)
                                                         ─► aggregate ─► finalize ─► END

Each builder returns an uncompiled ``StateGraph`` (compile it with a checkpointer, or hand it to
``langgraph dev`` from your own ``langgraph.json``), built from :class:`AgentSpec`s — in Python
or loaded from YAML/TOML with :func:`relaygraph.nodes.specs.load_agents` — whose tools are the
built-in ones or yours (:func:`relaygraph.tools.register_tool`). Every team gets what relaygraph's
own graphs have: a fresh agent per execution, ReAct steps in state, retries, approval gates on any
node, side-effecting tools run once per task, and a ``result`` node. Extend the state with your
own keys (``state_schema``, a subclass of the default) and the result with your own fields
(``result_schema``, a subclass of :class:`RunResult`, filled by ``result_fields(state)``).

The built-in ``sequential`` and ``parallel`` graphs are these builders applied to their agents.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from relaygraph.nodes.agent import AgentSpec
from relaygraph.nodes.approval import rejected, with_approval
from relaygraph.nodes.contracts import ParallelResult, RunResult
from relaygraph.nodes.failures import agent_node, agent_retry_policy, failed_nodes, unless_failed
from relaygraph.nodes.parallel import (
    BranchInput,
    ParallelState,
    aggregate,
    fan_out,
    make_branch_node,
    plan_from_config,
)
from relaygraph.nodes.results import extend_result, result_update, run_result
from relaygraph.nodes.state import RunInput, WorkflowState

ResultFields = Callable[[dict[str, Any]], dict[str, Any]]


def _finalize(answer_from: str | None, result_schema: type[RunResult] | None,
              result_fields: ResultFields | None) -> Callable[[dict[str, Any], RunnableConfig], dict[str, Any]]:
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
    builder = StateGraph(state_schema, input_schema=input_schema)
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
                "success_rate": summary.get("success_rate"), **extra}

    builder = StateGraph(state_schema, input_schema=input_schema)
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
