"""Result nodes: turn a finished workflow's state into the public ``result``.

Every graph ends in one, so ``result`` always has the same shape: status, the answer, where
the artifacts are, per-agent confidence and timing, and which provider produced it (the
offline policy labels itself as not being an LLM).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.runnables import RunnableConfig
from relaygraph.config.settings import settings_from_config
from relaygraph.coordination.metareasoning import analyze_trace
from relaygraph.observability import telemetry
from relaygraph.providers import provider_label


def agent_summaries(steps: list[dict[str, Any]], model: str | None = None) -> dict[str, dict[str, Any]]:
    """Per agent: steps taken, tool calls, errors, final confidence, time, tokens and cost
    (tokens None when the model reported none, e.g. the offline policy; cost None when the
    model has no price — see :mod:`relaygraph.observability.telemetry`)."""
    out: dict[str, dict[str, Any]] = {}
    usage: dict[str, telemetry.Usage] = {}
    for step in steps:
        agent = out.setdefault(step["agent"], {"steps": 0, "tool_calls": 0, "errors": 0,
                                               "confidence": None, "duration_s": 0.0,
                                               "input_tokens": None, "output_tokens": None, "cost_usd": None})
        usage.setdefault(step["agent"], telemetry.Usage()).add(model, step.get("input_tokens"),
                                                               step.get("output_tokens"))
        agent["steps"] += 1
        agent["tool_calls"] += int(bool(step.get("tool")) and step.get("tool") != "final_answer")
        agent["errors"] += int(bool(step.get("error")))
        agent["duration_s"] = round(agent["duration_s"] + step.get("duration_s", 0.0), 4)
        if step.get("tool") == "final_answer":
            agent["confidence"] = step["confidence"]
    for name, agent in out.items():
        agent.update({k: v for k, v in usage[name].summary().items() if k != "llm_calls"})
        agent["reasoning"] = reasoning([s for s in steps if s["agent"] == name])
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


def make_result_node(
    answer_from: str | None = None, *, title: str = "result"
) -> Callable[[dict[str, Any], RunnableConfig], dict[str, Any]]:
    """A node writing ``result``; ``answer_from`` names the agent whose answer leads it."""

    def finalize(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        settings = settings_from_config(config)
        answers = state.get("answers") or {}
        completed = {p["node"] for p in state.get("progress") or [] if p.get("status") == "completed"}
        # A failure that a later retry or resume got past no longer counts against the run.
        errors = [e for e in state.get("errors") or [] if e.get("node") not in completed]
        context = state.get("context") or {}
        answer = answers.get(answer_from) if answer_from else None
        if answer is None:
            answer = "\n\n".join(f"{name}: {text}" for name, text in answers.items())
        status = "failed" if errors and not answers else ("partial" if errors else "completed")
        rejection = next((a for a in state.get("approvals") or [] if a.get("approved") is False), None)
        if rejection:  # a human stopped the run before a node: say so, with their comment
            status = "rejected"
            answer = (f"Rejected before node {rejection['node']!r}"
                      f"{': ' + rejection['comment'] if rejection.get('comment') else ''}.\n\n{answer}").strip()
        result = {
            "status": status,
            "answer": answer,
            "artifacts": {k: v for k, v in context.items() if k in ("dataset", "report", "chart")},
            "agents": agent_summaries(state.get("steps") or [], telemetry.priced_model(settings)),
            "usage": telemetry.usage_rollup(state.get("steps") or [], telemetry.priced_model(settings)),
            "errors": errors,
            "provider": provider_label(settings),
        }
        if state.get("approvals"):
            result["approvals"] = state["approvals"]
        return {"result": result, "status": result["status"]}

    finalize.__name__ = title
    return finalize
