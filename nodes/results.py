"""Result nodes: turn a finished workflow's state into the public ``result``.

Every graph ends in one, so ``result`` always has the same shape: status, the answer, where
the artifacts are, per-agent confidence and timing, and which provider produced it (the
offline policy labels itself as not being an LLM).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from relaygraph.config.settings import settings_from_config
from relaygraph.coordination.metareasoning import analyze_trace
from relaygraph.nodes.contracts import AgentFailure, AgentSummary, RunResult, RunStatus, RunUsage
from relaygraph.nodes.protocols import UpdateNode
from relaygraph.observability.usage import Prices, Usage, price_table, priced_model, usage_rollup
from relaygraph.providers import provider_label

R = TypeVar("R", bound=RunResult)


def agent_summaries(steps: list[dict[str, Any]], model: str | None = None,
                    prices: Prices | None = None) -> dict[str, AgentSummary]:
    """Per agent: steps taken, tool calls, errors, final confidence, time, tokens and cost
    (tokens None when the model reported none, e.g. the offline policy; cost None when the
    model has no price — see :mod:`relaygraph.observability.usage`)."""
    out: dict[str, AgentSummary] = {}
    usage: dict[str, Usage] = {}
    for step in steps:
        agent = out.setdefault(step["agent"], AgentSummary())
        usage.setdefault(step["agent"], Usage(prices)).add(model, step.get("input_tokens"),
                                                     step.get("output_tokens"))
        agent.steps += 1
        agent.tool_calls += int(bool(step.get("tool")) and step.get("tool") != "final_answer")
        agent.errors += int(bool(step.get("error")))
        agent.duration_s = round(agent.duration_s + step.get("duration_s", 0.0), 4)
        if step.get("tool") == "final_answer":
            agent.confidence = step["confidence"]
    for name, agent in out.items():
        totals = usage[name].summary()
        agent.input_tokens, agent.output_tokens, agent.cost_usd = (
            totals["input_tokens"], totals["output_tokens"], totals["cost_usd"])
        agent.reasoning = reasoning([s for s in steps if s["agent"] == name])
    return out


def reasoning(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Meta-reasoning over one agent's trace (see :mod:`relaygraph.coordination.metareasoning`).

    Each node the agent ran in is analysed on its last attempt (earlier attempts failed and
    were retried); an agent that ran in several nodes (parallel branches) reports the worst
    circularity and progress and the mean action choice and confidence trend.
    """
    runs: dict[str, list[dict[str, Any]]] = {}
    last = {s.get("node", ""): s.get("attempt", 1) for s in steps}
    for s in steps:
        if s.get("attempt", 1) == last[s.get("node", "")]:
            runs.setdefault(s.get("node", ""), []).append(s)
    analyses = [analyze_trace(run) for run in runs.values()]
    rank = {"none": 0, "medium": 1, "high": 2}
    worst = max(analyses, key=lambda a: (rank[a.circular.severity], -a.progress))
    return {
        "circular": worst.circular.model_dump(),
        "progress": min(a.progress for a in analyses),
        "action_choice": round(sum(a.action_choice for a in analyses) / len(analyses), 4),
        "confidence_trend": round(sum(a.confidence_trend for a in analyses) / len(analyses), 4),
        "notes": sorted({n for a in analyses for n in a.notes}),
        "attempts": max(last.values()),
    }


def run_result(state: Mapping[str, Any], config: RunnableConfig, answer_from: str | None = None) -> RunResult:
    """The shared part of every graph's result; ``answer_from`` names the agent whose answer leads it.

    Status: ``failed`` when an agent failed and no agent answered — or the agent whose answer
    *is* the result (``answer_from``) never answered; ``partial`` when some agent failed but the
    result's answer exists; ``rejected`` when a human stopped the run; else ``completed``.
    """
    settings = settings_from_config(config)
    answers = state.get("answers") or {}
    completed = {p["node"] for p in state.get("progress") or [] if p.get("status") == "completed"}
    # A failure that a later retry or resume got past no longer counts against the run.
    errors = [e for e in state.get("errors") or [] if e.get("node") not in completed]
    context = state.get("context") or {}
    answer = answers.get(answer_from) if answer_from else None
    if answer is None:
        answer = "\n\n".join(f"{name}: {text}" for name, text in answers.items())
    missing = not answers or (answer_from is not None and answer_from not in answers)
    status: RunStatus = "failed" if errors and missing else ("partial" if errors else "completed")
    # a rejected branch (its record names it) is a listed error of a partial run, not the run's end
    rejection = next((a for a in state.get("approvals") or [] if a.get("approved") is False
                      and not a.get("branch")), None)
    if rejection:  # a human stopped the run before a node: say so, with their comment
        status = "rejected"
        answer = (f"Rejected before node {rejection['node']!r}"
                  f"{': ' + rejection['comment'] if rejection.get('comment') else ''}.\n\n{answer}").strip()
    model = priced_model(settings)
    return RunResult(
        status=status,
        answer=answer,
        artifacts={k: str(v) for k, v in context.items() if k in ("dataset", "report", "chart")},
        agents=agent_summaries(state.get("steps") or [], model, price_table(settings)),
        usage=RunUsage.model_validate(usage_rollup(state.get("steps") or [], settings)),
        errors=[AgentFailure.model_validate(e) for e in errors],
        provider=provider_label(settings),
        approvals=state.get("approvals") or None,
    )


def extend_result(base: RunResult, schema: type[R], **fields: Any) -> R:
    """``base`` as the graph's declared result type, with that type's own fields filled in."""
    return schema.model_validate({**base.model_dump(), **fields})


def result_update(result: RunResult) -> dict[str, Any]:
    """The state update of a result node: ``result`` as a plain dict, and ``status``."""
    return {"result": result.to_state(), "status": result.status}


def make_result_node(
    answer_from: str | None = None, *, title: str = "result"
) -> UpdateNode:
    """A node writing the shared :class:`RunResult` (graphs with more to say extend it)."""

    def finalize(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        return result_update(run_result(state, config, answer_from))

    finalize.__name__ = title
    return finalize


ResultFields = Callable[[Any], dict[str, Any]]


def require_result_schema(result_schema: type[RunResult] | None, result_fields: ResultFields | None,
                          base: type[RunResult] = RunResult) -> None:
    """Refuse, when the graph is built, ``result_fields`` that no ``result_schema`` declares.

    Why: a result is a declared type (``extra="forbid"``); fields with no schema could only be
    dropped or patched in unvalidated, and either surprises the caller at run time.
    """
    if result_fields is not None and result_schema is None:
        raise ValueError(f"result_fields needs a result_schema: declare the fields it returns on a subclass of "
                         f"{base.__name__} and pass it as result_schema=.")


def with_result_fields(
    finalize: UpdateNode,
    result_schema: type[RunResult] | None = None,
    result_fields: ResultFields | None = None,
    base: type[RunResult] = RunResult,
) -> UpdateNode:
    """A graph's result node, its ``result`` extended with a team's own fields.

    ``result_schema`` (a subclass of the graph's own result type, ``base``) declares and validates
    them; ``result_fields(state)`` computes them from the final state. ``result_fields`` without a
    ``result_schema`` is refused here, at build time (:func:`require_result_schema`).
    """
    require_result_schema(result_schema, result_fields, base)
    if result_schema is None:
        return finalize
    schema = result_schema

    def finalize_with_fields(state: Any, config: RunnableConfig) -> dict[str, Any]:
        out = finalize(state, config)
        result = {**out["result"], **(result_fields(state) if result_fields else {})}
        return {**out, "result": schema.model_validate(result).to_state()}

    finalize_with_fields.__name__ = getattr(finalize, "__name__", "finalize")
    return finalize_with_fields
