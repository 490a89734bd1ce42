"""Hierarchical delegation: structured routing decisions, limits, and quality at every level.

    supervisor ─ chat model → Delegation(teams) ─Send×teams─► team lead (subgraph)
                                                   lead ─ chat model → TeamPlan(workers) ─Send×workers─► workers
                                                   team_review: worker scores → team score
    synthesis: team scores → overall score

Routing is a model's decision, made with ``chat_model(settings).with_structured_output(...)``
so it is typed and validated; under ``offline`` the same call is answered by the rule-based
chat model (enums by mention in the request, else all). A routing node is on the one failure
path of the agent nodes: a model error is retried at the run's ``max_retries`` and then recorded
in state, as is a broken limit (at once: asking again cannot fix it). Every delegation passes
:func:`check_delegation`, which enforces ``max_depth`` and ``max_fanout`` (``configurable``)
with an error that says which limit and how to raise it.

Quality is computed, not asked for: a worker's score is its final confidence scaled by its
tool success rate; a team's is the mean of its workers' scores times the share of planned
workers that delivered; the overall score treats teams the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.errors import GraphBubbleUp
from pydantic import BaseModel, ConfigDict, Field, create_model
from relaygraph.config.settings import settings_from_config
from relaygraph.nodes.agent import AgentRunError
from relaygraph.nodes.team_params import DEFAULT_MAX_DEPTH, DEFAULT_MAX_FANOUT
from relaygraph.providers import chat_model


class DelegationLimitError(RuntimeError):
    """A delegation broke ``max_depth`` or ``max_fanout``; ``record`` goes into the run's errors."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        super().__init__(record["reason"])

    def __reduce__(self) -> tuple[type[DelegationLimitError], tuple[dict[str, Any]]]:
        return (type(self), (self.record,))


class HierarchyLimits(BaseModel):
    model_config = ConfigDict(frozen=True)

    max_depth: int = Field(default=DEFAULT_MAX_DEPTH, ge=1, le=10)
    max_fanout: int = Field(default=DEFAULT_MAX_FANOUT, ge=1, le=64)

    @classmethod
    def from_config(cls, config: RunnableConfig | None) -> HierarchyLimits:
        configurable = (config or {}).get("configurable") or {}
        return cls(**{k: configurable[k] for k in ("max_depth", "max_fanout") if configurable.get(k) is not None})


def check_delegation(who: str, depth: int, delegates: Sequence[str], limits: HierarchyLimits) -> None:
    """Raise :class:`DelegationLimitError` unless ``who`` (at ``depth``) may delegate to all of them."""
    reason = None
    if not delegates:
        reason = f"{who} planned no delegates; nothing would be done"
    elif depth + 1 > limits.max_depth:
        reason = (f"{who} at depth {depth} cannot delegate to {', '.join(delegates)} at depth {depth + 1}: "
                  f"max_depth is {limits.max_depth} (raise configurable.max_depth)")
    elif len(delegates) > limits.max_fanout:
        reason = (f"{who} planned {len(delegates)} parallel delegates ({', '.join(delegates)}) but "
                  f"max_fanout is {limits.max_fanout} (raise configurable.max_fanout or narrow the request)")
    if reason:
        raise DelegationLimitError({"agent": who, "node": who, "reason": reason, "depth": depth,
                                    "delegates": list(delegates)})


def choice_model(name: str, field: str, options: Sequence[str], described: str) -> type[BaseModel]:
    """A structured-output schema: a list of ``options`` (an enum) plus a rationale."""
    choices: Any = list[Literal[tuple(options)]]  # type: ignore[misc]  # run-time options: pydantic reads them, mypy cannot
    fields: dict[str, Any] = {field: (choices, Field(min_length=1, description=described)),
                              "rationale": (str, Field(description="One sentence: why these."))}
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


def decide(schema: type[BaseModel], system: str, request: str, config: RunnableConfig, *,
           who: str) -> BaseModel:
    """One routing decision of ``who`` from the provider's chat model, as a validated ``schema`` instance.

    A model that errors, or answers outside the schema, raises :class:`AgentRunError` like an
    agent's model error: the node's RetryPolicy asks again, and the last attempt's failure is
    recorded in state (:func:`relaygraph.nodes.failures.recording_failures`), not raised out of
    the run. A provider that cannot be built is not retried.
    """
    model = chat_model(settings_from_config(config)).with_structured_output(schema)
    try:
        decision = model.invoke([SystemMessage(content=system), HumanMessage(content=request)], config)
        return decision if isinstance(decision, schema) else schema.model_validate(decision)
    except GraphBubbleUp:
        raise  # interrupts and other control flow are LangGraph's
    except Exception as exc:  # noqa: BLE001 - any failure of the model's answer is the model's
        raise AgentRunError({"agent": who, "node": who, "reason": f"model error: {type(exc).__name__}: "
                                                                  f"{' '.join(str(exc).split())[:300]}"}) from exc


def worker_quality(slot: dict[str, Any], steps: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A worker's score: final confidence × (0.5 + 0.5 × tool success rate); 0 when it failed."""
    calls = [s for s in steps if s.get("tool") and s["tool"] != "final_answer"]
    ok = [s for s in calls if not s.get("error")]
    success = len(ok) / len(calls) if calls else 0.0
    confidence = slot.get("confidence") or 0.0
    completed = slot.get("status") == "completed"
    score = round(confidence * (0.5 + 0.5 * success), 3) if completed else 0.0
    return {"status": slot.get("status"), "score": score, "confidence": confidence,
            "tool_success": round(success, 3), "tool_calls": len(calls), "error": slot.get("error")}


def grade(score: float) -> str:
    return "good" if score >= 0.75 else "fair" if score >= 0.5 else "poor"


def level_quality(parts: dict[str, dict[str, Any]], planned: Sequence[str]) -> dict[str, Any]:
    """One level's score: mean score of the parts that delivered × coverage of the plan.

    ``delivered`` counts only the parts that completed, the same rule as the run status and the
    parallel graph's "N/M branches succeeded"; a partial part is counted apart (``partial``), so a
    summary never calls a partial team delivered. Coverage (for the score) still credits a partial
    part with what it did deliver.
    """
    done = [p for p in parts.values() if p.get("status") in ("completed", "partial")]
    coverage = len(done) / len(planned) if planned else 0.0
    mean = sum(p["score"] for p in done) / len(done) if done else 0.0
    score = round(mean * coverage, 3)
    return {"score": score, "grade": grade(score), "coverage": round(coverage, 3),
            "delivered": sum(1 for p in done if p.get("status") == "completed"),
            "partial": sum(1 for p in done if p.get("status") == "partial"), "planned": len(planned)}
