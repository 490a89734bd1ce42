"""Learning across runs: experiences in, ranked adaptations out (pure; the store is elsewhere).

An :class:`Experience` is one finished planned run: its task type, the methods of every plan
it accepted, what failed (task, method, agent, failure class, what the policy did), task
durations, the first plan's confidence and the outcome. :func:`mine` turns the experiences of
one task type — once there are at least :data:`MIN_EXPERIENCES` — into :class:`Adaptation`\\ s
ranked by impact:

* **method success probabilities** — a Beta update of the domain's prior with what happened:
  ``p = (prior·k + successes) / (k + uses)`` with prior strength :data:`PRIOR_STRENGTH`. A
  method *failed* in a run when a failure in one of its tasks led to a replan or a stop (a
  transient failure that a retry got past is the environment, not the method). The planner
  plans with these, so it prefers what worked. Impact: how far the probability moved × uses.
* **retry settings** — when transient failures needed more than one retry on average, the
  backoff base doubles (the service needs longer to recover); when retries never helped (every
  transient failure ran out of retries) the backoff is kept but the run is told so.
* **timeouts** — per task, twice the slowest successful duration seen (at least
  :data:`MIN_TIMEOUT_S`, so a busy machine does not cut work that is merely slow). The
  executor enforces it: the task's agent is cut when it runs longer, and the failure is a
  ``transient`` timeout (retried with the — possibly learned — backoff, then the run stops).
  Each run a timeout stopped doubles it, so a timeout that proved too short grows.
* **agent reputation** — per agent, a Beta(1, 1) mean of its task runs that succeeded; other
  coordination patterns use it for consensus weights and auction ties.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MIN_EXPERIENCES = 3
PRIOR_STRENGTH = 2.0
STORE_LIMIT = 1000
STORE_KEEP = 800
MIN_TIMEOUT_S = 2.0
MAX_TIMEOUT_S = 3600.0


class FailureRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    task: str
    method: str | None = None
    agent: str | None = None
    failure_class: str
    action: str  # retry | replan | stop
    timeout_s: float | None = None  # set when the task's (learned) timeout cut it


class Experience(BaseModel):
    model_config = ConfigDict(extra="forbid")

    thread_id: str
    task_type: str
    methods: list[str]  # every method of every accepted plan, in order (duplicates kept)
    outcome: str  # completed | failed | ...
    failures: list[FailureRecord] = Field(default_factory=list)
    durations: dict[str, float] = Field(default_factory=dict)  # task name -> seconds (last run)
    task_agents: dict[str, str] = Field(default_factory=dict)  # task name -> agent
    tasks_completed: list[str] = Field(default_factory=list)
    confidence: float | None = None
    recorded_at: float = 0.0


class Adaptation(BaseModel):
    """One thing learned, what it changes, and why."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["method_probability", "retry_backoff", "timeout", "reputation"]
    target: str
    value: float
    previous: float | None = None
    impact: float
    evidence: str


def method_outcomes(experience: Experience) -> dict[str, bool]:
    """Per method used in the run: did it succeed (no replan or stop caused by its tasks)?"""
    failed = {f.method for f in experience.failures if f.method and f.action in ("replan", "stop")}
    return {m: m not in failed for m in dict.fromkeys(experience.methods)}


def method_probabilities(experiences: Sequence[Experience], prior: Mapping[str, float]) -> list[Adaptation]:
    uses: dict[str, int] = defaultdict(int)
    wins: dict[str, int] = defaultdict(int)
    for e in experiences:
        for method, ok in method_outcomes(e).items():
            uses[method] += 1
            wins[method] += int(ok)
    out = []
    for method, n in uses.items():
        if method not in prior:
            continue
        p = (prior[method] * PRIOR_STRENGTH + wins[method]) / (PRIOR_STRENGTH + n)
        p = round(min(1.0, max(0.01, p)), 4)
        out.append(Adaptation(kind="method_probability", target=method, value=p, previous=prior[method],
                              impact=round(abs(p - prior[method]) * n, 4),
                              evidence=f"succeeded in {wins[method]} of {n} runs that used it"))
    return out


def retry_backoff(experiences: Sequence[Experience], current: float) -> list[Adaptation]:
    retried = [f for e in experiences for f in e.failures if f.failure_class == "transient"]
    if not retried:
        return []
    runs = [e for e in experiences if any(f.failure_class == "transient" for f in e.failures)]
    retries_per_run = [sum(1 for f in e.failures if f.failure_class == "transient" and f.action == "retry")
                       for e in runs]
    exhausted = sum(1 for e in runs if any(f.failure_class == "transient" and f.action == "stop" for f in e.failures))
    mean = sum(retries_per_run) / len(runs)
    if mean > 1:
        value = round(current * 2, 4)
        return [Adaptation(kind="retry_backoff", target="transient", value=value, previous=current,
                           impact=round(mean * len(runs) / len(experiences), 4),
                           evidence=f"{len(runs)} runs met transient failures, {mean:.1f} retries each on average, "
                                    f"{exhausted} ran out of retries")]
    return []


def timeouts(experiences: Sequence[Experience]) -> list[Adaptation]:
    """Per task: 2 × its slowest successful run (at least :data:`MIN_TIMEOUT_S`), doubled for
    each run its timeout stopped — so a timeout that proved too short for what the task now
    needs grows instead of failing every later run (a cut task leaves no successful duration)."""
    slowest: dict[str, float] = {}
    stopped: dict[str, int] = defaultdict(int)
    for e in experiences:
        for task, seconds in e.durations.items():
            slowest[task] = max(slowest.get(task, 0.0), seconds)
        for task in {f.task for f in e.failures if f.timeout_s is not None and f.action == "stop"}:
            stopped[task] += 1
    out = []
    for task, s in sorted(slowest.items()):
        value = min(MAX_TIMEOUT_S, max(MIN_TIMEOUT_S, 2 * s) * 2 ** stopped[task])
        grown = f"; its timeout stopped {stopped[task]} runs: doubled {stopped[task]}x" if stopped[task] else ""
        out.append(Adaptation(kind="timeout", target=task, value=round(value, 3), impact=float(stopped[task]),
                              evidence=f"slowest successful run {s:.2f}s{grown}"))
    return out


def reputations(experiences: Sequence[Experience]) -> dict[str, float]:
    """Per agent: (successful task runs + 1) / (task runs + 2)."""
    ok: dict[str, int] = defaultdict(int)
    bad: dict[str, int] = defaultdict(int)
    for e in experiences:
        for task in e.tasks_completed:
            ok[e.task_agents.get(task, task)] += 1
        for f in e.failures:
            bad[f.agent or e.task_agents.get(f.task, f.task)] += 1
    return {a: round((ok[a] + 1) / (ok[a] + bad[a] + 2), 4) for a in sorted(set(ok) | set(bad))}


def mine(experiences: Iterable[Experience], prior: Mapping[str, float], *, task_type: str,
         backoff_s: float = 0.5) -> list[Adaptation]:
    """Adaptations for ``task_type``, most impact first; none below :data:`MIN_EXPERIENCES`."""
    relevant = [e for e in experiences if e.task_type == task_type]
    if len(relevant) < MIN_EXPERIENCES:
        return []
    found = method_probabilities(relevant, prior) + retry_backoff(relevant, backoff_s)
    reps = reputations(relevant)
    found += [Adaptation(kind="reputation", target=agent, value=r, impact=round(abs(r - 0.5) / 10, 4),
                         evidence="successful task runs (+1) over all task runs (+2)")
              for agent, r in reps.items()]
    found += timeouts(relevant)
    return sorted(found, key=lambda a: (-a.impact, a.kind, a.target))


def learned_probabilities(adaptations: Iterable[Adaptation]) -> dict[str, float]:
    return {a.target: a.value for a in adaptations if a.kind == "method_probability"}


def learned_timeouts(adaptations: Iterable[Adaptation]) -> dict[str, float]:
    """Seconds per task name after which the executor cuts the task's agent (a timeout failure)."""
    return {a.target: a.value for a in adaptations if a.kind == "timeout"}


def learned_backoff(adaptations: Iterable[Adaptation]) -> float | None:
    return next((a.value for a in adaptations if a.kind == "retry_backoff"), None)


def experience_from_run(thread_id: str, task_type: str, state: Mapping[str, Any], outcome: str,
                        recorded_at: float) -> Experience:
    """The experience of a finished run of the planned graph, from its final state."""
    plans = state.get("plans") or []
    tasks = {t["name"]: t["agent"] for p in plans for t in p.get("tasks", [])}
    durations: dict[str, float] = {}
    for p in state.get("progress") or []:
        name = str(p.get("node", "")).split("#", 1)[0]
        if p.get("status") == "completed":
            durations[name] = durations.get(name, 0.0) + float(p.get("duration_s") or 0.0)
    return Experience(
        thread_id=thread_id, task_type=task_type,
        methods=[m["method"] for p in plans for m in p.get("methods", [])],
        outcome=outcome,
        failures=[FailureRecord.model_validate(r) for r in state.get("replans") or []],
        durations=durations, task_agents=tasks,
        tasks_completed=[t["name"] for t in state.get("done") or []],
        confidence=plans[0]["confidence"] if plans else None,
        recorded_at=recorded_at,
    )
