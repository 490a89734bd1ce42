"""Fan-out/fan-in building blocks: isolated branches and the aggregator that reads them.

    plan ──Send×N──► branch(spec, partition) ──► branches[id] ──► aggregate ──► parallel summary

Isolation is by construction, not by care:

* every branch runs its *own* agent instance (``make_agent_node`` builds a fresh agent, model
  and tools per execution) under its own name, so two branches of one agent type never share
  memory — the failure mode of smolagents #1781;
* every branch writes only keys with reducers, and only under its own id
  (``branches[id]``, ``answers[id]``, appended ``steps``/``progress``/``errors``), so concurrent
  writes merge instead of raising ``InvalidUpdateError`` (LangGraph #2336);
* a branch that fails on its last attempt records the failure under its id and returns
  normally (:mod:`relaygraph.nodes.failures`, the one failure path of every agent node), so
  the other branches' results are kept and the run reports it as ``partial``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.types import Send
from pydantic import BaseModel, ConfigDict, Field, field_validator
from relaygraph.nodes.agent import AgentSpec, make_agent_node, node_attempt
from relaygraph.nodes.approval import BranchGates, branch_gated
from relaygraph.nodes.failures import Failure, recording_failures
from relaygraph.nodes.protocols import UpdateNode
from relaygraph.nodes.state import WorkflowState, merge_dicts


class Branch(BaseModel):
    """One unit of parallel work: a specialist, optionally on one partition of the rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    specialist: str
    partition: str | None = Field(default=None, pattern=r"^\d+/\d+$")


class ParallelPlan(BaseModel):
    """Which specialists run, on how many partitions each (from ``configurable``)."""

    model_config = ConfigDict(extra="forbid")

    specialists: list[str] = Field(min_length=1)
    partitions: int = Field(default=1, ge=1, le=64)

    @field_validator("specialists", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value

    def branches(self) -> list[Branch]:
        if self.partitions == 1:
            return [Branch(id=name, specialist=name) for name in self.specialists]
        return [Branch(id=f"{name}_p{k}", specialist=name, partition=f"{k}/{self.partitions}")
                for name in self.specialists for k in range(1, self.partitions + 1)]


def plan_from_config(config: RunnableConfig | None, available: Sequence[str]) -> ParallelPlan:
    """The run's plan: ``configurable.specialists`` / ``configurable.partitions``, else all once."""
    configurable = (config or {}).get("configurable") or {}
    partitions = configurable.get("partitions")  # 0 is an error, not "the default"
    plan = ParallelPlan(specialists=configurable.get("specialists") or list(available),
                        partitions=1 if partitions is None else partitions)
    unknown = [s for s in plan.specialists if s not in available]
    if unknown:
        raise ValueError(f"Unknown specialist(s) {', '.join(unknown)}; choose from: {', '.join(available)}.")
    return plan


class ParallelState(WorkflowState, total=False):
    """Shared state plus one slot per branch and the aggregator's summary."""

    branches: Annotated[dict[str, dict[str, Any]], merge_dicts]
    parallel: dict[str, Any]


class BranchInput(TypedDict, total=False):
    """What :func:`fan_out` sends to one branch (its private copy of the inputs)."""

    task: str
    data: str | None
    context: dict[str, Any]
    branch: dict[str, Any]


def fan_out(state: dict[str, Any], plan: ParallelPlan, node: str) -> list[Send]:
    """One ``Send`` per branch, each with its own context (dataset + its partition)."""
    base = {k: v for k, v in (state.get("context") or {}).items() if k in ("dataset", "source_dataset")}
    sends = []
    for branch in plan.branches():
        context = {**base, **({"partition": branch.partition} if branch.partition else {})}
        sends.append(Send(node, {"task": state.get("task"), "data": state.get("data"),
                                 "context": context, "branch": branch.model_dump()}))
    return sends


def tool_facts(steps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per tool the branch called successfully: its summary and headline numbers.

    Read from the steps' typed results (``summary``/``facts``), never from the observation
    text, which is cut for the model.
    """
    facts: dict[str, dict[str, Any]] = {}
    for step in steps:
        tool = step.get("tool")
        if not tool or tool == "final_answer" or step.get("error"):
            continue
        found = step.get("facts") or {}
        facts[tool] = {"summary": step.get("summary", "")} | {
            k: v for k, v in found.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
    return facts


def make_branch_node(specs: dict[str, AgentSpec]) -> UpdateNode:
    """The node every ``Send`` runs: the branch's specialist as its own agent, in its own slot.

    Failures take the one path of :mod:`relaygraph.nodes.failures`; on its last attempt a
    failed branch records the failure under its own id, so the other branches' results stand.
    """

    def branch_of(state: dict[str, Any]) -> tuple[Branch, AgentSpec]:
        branch = Branch.model_validate(state["branch"])
        # A per-branch name: steps, answers and findings of two same-type branches stay apart.
        return branch, specs[branch.specialist].model_copy(update={"name": branch.id})

    def run_branch(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        branch, spec = branch_of(state)
        started = time.time()
        update = make_agent_node(spec, node=branch.id)(state, config)
        finished = time.time()
        steps = update["steps"]
        final: dict[str, Any] = next((s for s in reversed(steps) if s.get("tool") == "final_answer"), {})
        shortfalls = [e | {"branch": branch.id} for e in update.get("errors") or []]  # a partial agent
        slot = {"specialist": branch.specialist, "partition": branch.partition, "started_at": started,
                "attempt": node_attempt(), "status": "partial" if shortfalls else "completed",
                **({"error": "; ".join(e["reason"] for e in shortfalls)} if shortfalls else {}),
                "finished_at": finished,
                "duration_s": round(finished - started, 4), "answer": update["answers"][branch.id],
                "confidence": final.get("confidence"), "tools": tool_facts(steps), "steps": len(steps),
                "outputs": {k: v for k, v in update["context"].items() if k != "findings"}}
        return {"steps": steps, "progress": update["progress"], "answers": update["answers"],
                "branches": {branch.id: slot}, **({"errors": shortfalls} if shortfalls else {})}

    def failed(state: dict[str, Any], outcome: Failure) -> dict[str, Any]:
        """A branch that gave up: its error in its slot and in ``errors``."""
        branch, _ = branch_of(state)
        failure = outcome.failure.model_copy(update={"branch": branch.id})
        slot = {"specialist": branch.specialist, "partition": branch.partition, "attempt": failure.attempt,
                "started_at": outcome.started_at, "finished_at": outcome.finished_at, "status": "failed",
                "duration_s": outcome.duration_s, "error": failure.reason}
        update = replace(outcome, failure=failure).update()
        return {**update, "branches": {branch.id: slot}}

    def who(state: dict[str, Any]) -> tuple[str, str]:
        branch, _ = branch_of(state)
        return branch.id, branch.id

    def names(state: dict[str, Any]) -> tuple[str, ...]:
        branch, _ = branch_of(state)
        return (branch.id, branch.specialist)

    def rejected_branch(state: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        """A human rejected this branch before it ran: its slot says so (the gate adds the
        ``rejected`` progress and errors entries)."""
        branch, _ = branch_of(state)
        why = f"rejected before it ran{': ' + record['comment'] if record.get('comment') else ''}"
        now = time.time()
        slot = {"specialist": branch.specialist, "partition": branch.partition, "attempt": 0, "status": "rejected",
                "started_at": now, "finished_at": now, "duration_s": 0.0, "error": why}
        return {"branches": {branch.id: slot}}

    node = recording_failures(run_branch, who=who, on_failure=failed)
    node.__name__ = "run_branch"
    return branch_gated(node, BranchGates(names=tuple(specs), of=names, on_reject=rejected_branch))


def summarize_branches(branches: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Fan-in: per-branch results, per-specialist reduction, success rate and timings."""
    ok = {b: s for b, s in branches.items() if s.get("status") == "completed"}
    refused = {b: s for b, s in branches.items() if s.get("status") == "rejected"}  # a human said no: not a failure
    bad = {b: s for b, s in branches.items() if s.get("status") not in ("completed", "rejected")}
    specialists: dict[str, dict[str, Any]] = {}
    for branch_id, slot in sorted(branches.items()):
        entry = specialists.setdefault(slot["specialist"], {"branches": [], "completed": 0, "partial": 0,
                                                            "failed": 0, "rejected": 0, "rows_covered": 0})
        entry["branches"].append(branch_id)
        status = slot.get("status")
        entry[status if status in ("completed", "partial", "rejected") else "failed"] += 1
        rows = [f.get("rows") for f in (slot.get("tools") or {}).values() if isinstance(f.get("rows"), int)]
        entry["rows_covered"] += max(rows, default=0)  # partitions are disjoint: rows add up
    starts = [s["started_at"] for s in branches.values() if "started_at" in s]
    ends = [s["finished_at"] for s in branches.values() if "finished_at" in s]
    busy = sum(s.get("duration_s", 0.0) for s in branches.values())
    wall = (max(ends) - min(starts)) if starts and ends else 0.0
    return {
        "branches": {b: {k: v for k, v in s.items() if k not in ("started_at", "finished_at")}
                     for b, s in sorted(branches.items())},
        "specialists": specialists,
        "total": len(branches),
        "completed": len(ok),
        "failed": {b: s.get("error", "unknown") for b, s in sorted(bad.items())},
        "rejected": {b: s.get("error", "rejected") for b, s in sorted(refused.items())},
        "success_rate": round(len(ok) / len(branches), 4) if branches else 0.0,
        "timings": {"wall_s": round(wall, 4), "busy_s": round(busy, 4),
                    "parallelism": round(busy / wall, 2) if wall else None,
                    "per_branch_s": {b: s.get("duration_s") for b, s in sorted(branches.items())}},
    }


def report_lines(summary: dict[str, Any]) -> str:
    """The aggregator's answer: one line per branch, then the totals."""
    lines = []
    for branch_id, slot in summary["branches"].items():
        where = f" [{slot['partition']}]" if slot.get("partition") else ""
        tools = "; ".join(f"{t}: {f['summary']}" for t, f in (slot.get("tools") or {}).items())
        if slot.get("status") == "completed":
            lines.append(f"✓ {branch_id}{where} ({slot['duration_s']:.2f}s): {tools or slot.get('answer', '')}")
        elif slot.get("status") == "partial":
            lines.append(f"! {branch_id}{where} partial ({slot['duration_s']:.2f}s): {slot.get('error')}"
                         f"{'; done: ' + tools if tools else ''}")
        elif slot.get("status") == "rejected":
            lines.append(f"■ {branch_id}{where} {slot.get('error')}")
        else:
            lines.append(f"✗ {branch_id}{where} failed: {slot.get('error')}")
    timings = summary["timings"]
    partial = sum(1 for s in summary["branches"].values() if s.get("status") == "partial")
    lines.append(f"{summary['completed']}/{summary['total']} branches succeeded "
                 f"({summary['success_rate']:.0%}" + (f", {partial} partial" if partial else "") + "); wall {timings['wall_s']:.2f}s, "
                 f"agent time {timings['busy_s']:.2f}s.")
    return "\n".join(lines)


def aggregate(state: dict[str, Any]) -> dict[str, Any]:
    """The fan-in node: summarise every branch slot (failed ones included)."""
    summary = summarize_branches(state.get("branches") or {})
    return {"parallel": summary, "answers": {"aggregate": report_lines(summary)}}
