"""Learning across runs: experiences in, ranked adaptations out (pure; the store is elsewhere).

An :class:`Experience` is one finished planned run: its task type, the methods of every plan
it accepted, what failed (task, method, agent, failure class, what the policy did), task
durations, the first plan's confidence and the outcome. :func:`mine` turns the experiences of
one task type — once there are at least :data:`MIN_EXPERIENCES` — into :class:`Adaptation`\\ s
ranked by impact:

* **method success probabilities** — a Beta update of the domain's prior with what happened:
  ``p = (prior·k + successes) / (k + uses)`` with prior strength :data:`PRIOR_STRENGTH` (= 5:
  the prior weighs as much as five runs, so few observations stay close to it — one failure in
  one run takes a 0.8 method to 0.667, not to 0; three in three take 0.9 to 0.5625). A method
  *failed* in a run only when a failure of one of its tasks was the method's own (see
  :func:`blames_method`): not a transient failure a retry got past (the environment), not a
  data-quality, dependency or resource failure (the data, the upstream step, the data's size —
  the replan fixes those around the same method), not a schema failure adapted by mapping a
  column (the data was renamed), and never an *injected* failure (``--param fail=``: a
  demonstration, recorded with ``injected: true`` but no evidence about the method; a run with
  ``learn_injected=true``, e.g. ``bench/learning.py``'s simulated environment, opts in).
  A run *uses* a method only when the method's tasks all finished in it (``finished_methods``)
  or a failure of its own hit it: a method replanned away without its fault (an injected
  failure, the data's) or never reached is not a use, so "succeeded in N of M runs that used
  it" counts exactly the runs where it finished (N) among those (M). A run that failed because
  of its **input** (:func:`caused_by_input`: no category or measure column, an unreadable or
  one-column file, a path outside the data directory) is left out of all mining — the file,
  not a method, failed (``experience show`` says how many). A refused input (the entry checks
  of the graph's first node) never becomes an experience: no node ran.
  The planner plans with these, so it prefers what worked. Impact: how far the probability
  moved × uses.
  Method statistics are **keyed by the data** they were learned on (:class:`DataKind`: whether
  it has a time column, and whether it is large, ``row_count`` ≥ :data:`LARGE_ROWS`) — the facts
  the methods' preconditions and outcomes depend on (``time_series_analysis`` needs a time
  column; a method that fails on data without one says nothing about data with one). A plan
  uses the statistics of runs on data like its own; for a method never used on such data, those
  of runs on data with the same time-column fact of any size, then those of runs recorded
  without facts, else the domain's prior — never those of runs on data that differs in
  ``has_time_column``. With no facts to key by (:func:`mine` without ``facts``), the
  task-type-wide statistics of every run. The other adaptations are task-type-wide (timeouts
  already scale with the data's rows).
* **retry settings** — when transient failures needed more than one retry on average, the
  backoff base doubles (the service needs longer to recover); when retries never helped (every
  transient failure ran out of retries) the backoff is kept but the run is told so.
* **timeouts** — per task, scaled by the data's size: ``max(MIN_TIMEOUT_S (15 s),
  TIMEOUT_FACTOR (5) × the 95th percentile of its successful durations, TIMEOUT_ROW_FACTOR ×
  rows × the slowest seconds-per-row seen)`` — the floor because runs of 0.1–0.8 s on a shared
  machine gave 2 s timeouts a slow moment under load could cut (rows:
  the run's ``row_count``; the per-row rate from the runs that recorded their rows), so a
  timeout learned on 3,000-row files gives a 200,000-row file 67× the per-row budget times a
  generous factor, not the small files' few seconds (:func:`timeout_for`). The executor
  enforces it: the task's agent is cut when it runs longer; on a large input
  (``row_count`` ≥ :data:`LARGE_ROWS`) a timeout that persisted after the retries is a
  *resource* failure (scale down to partitions), not a stop. Each run a timeout stopped
  doubles it, so a timeout that proved too short grows.
* **agent reputation** — per agent, a Beta(1, 1) mean of its task runs that succeeded; other
  coordination patterns use it for consensus weights and auction ties.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MIN_EXPERIENCES = 3
PRIOR_STRENGTH = 5.0
STORE_LIMIT = 1000
STORE_KEEP = 800
#: A learned timeout is never below this: a shared machine under load can make a 0.2 s task take
#: a few seconds, and a cut task is retried, then stops the run (issue 14, stranger finding D8).
MIN_TIMEOUT_S = 15.0
MAX_TIMEOUT_S = 3600.0
TIMEOUT_FACTOR = 5.0  # over the 95th percentile of the task's successful durations
TIMEOUT_ROW_FACTOR = 4.0  # seconds-per-row budget over the slowest rate seen (agents' model time is not per row)
LARGE_ROWS = 50_000  # at or above: a timeout that outlived its retries is the data's size (resource)
#: Failure classes that are about the data or its surroundings, never the method that met them.
NOT_THE_METHOD = frozenset({"data_quality", "dependency", "resource"})


class FailureRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    task: str
    method: str | None = None
    agent: str | None = None
    failure_class: str
    action: str  # retry | replan | stop
    timeout_s: float | None = None  # set when the task's (learned) timeout cut it
    injected: bool = False  # ``--param fail=``: a demonstration, not evidence about the method
    excluded: list[str] | None = None  # methods the policy ruled out (None: recorded before this was kept)
    error: str | None = None  # what the task said (None: recorded before this was kept)

    @model_validator(mode="before")
    @classmethod
    def _excluded_from_changes(cls, data: Any) -> Any:
        """A replanning entry keeps what its policy ruled out under ``changes.exclude_methods``."""
        if isinstance(data, Mapping) and "excluded" not in data and isinstance(data.get("changes"), Mapping):
            return {**data, "excluded": list(data["changes"].get("exclude_methods") or [])}
        return data


def blames_method(failure: FailureRecord, *, simulated: bool = False) -> bool:
    """Does ``failure`` count against the method whose task met it?

    Only a real failure (not injected, unless the run was a ``simulated`` one) that the method
    could not get past: the run stopped on it, or the replan ruled the method out. Failures of
    the data or its surroundings (:data:`NOT_THE_METHOD`) never do; a schema failure only when
    the policy had to drop the method (with a column mapping, the method worked on the mapped
    column)."""
    if not failure.method or (failure.injected and not simulated) or failure.failure_class in NOT_THE_METHOD:
        return False
    if failure.action == "stop":
        return True
    if failure.action != "replan":
        return False
    if failure.excluded is None:  # an older record: only what had no other explanation
        return failure.failure_class == "unknown"
    return failure.method in failure.excluded


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
    row_count: int | None = None  # rows of the data the run worked on (scales learned timeouts)
    facts: dict[str, Any] = Field(default_factory=dict)  # observed facts the first plan was made from
    simulated: bool = False  # ``learn_injected=true``: its injected failures count as evidence
    #: methods whose tasks all finished in the run (None: recorded before this was kept)
    finished_methods: list[str] | None = None
    #: why the run failed because of its input (the file, not a method): left out of mining
    input_failure: str | None = None


class Adaptation(BaseModel):
    """One thing learned, what it changes, and why."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["method_probability", "retry_backoff", "timeout", "reputation"]
    target: str
    value: float
    previous: float | None = None
    impact: float
    evidence: str
    #: the data the statistic was learned on (:meth:`DataKind.label`); None: every run of the task type
    data: str | None = None


class DataKind(BaseModel):
    """What kind of data a run worked on, as far as the methods' outcomes depend on it: the key
    of the mined method statistics (see the module docstring)."""

    model_config = ConfigDict(frozen=True)

    has_time_column: bool
    large: bool | None = None  # row_count >= LARGE_ROWS; None: rows unknown

    @classmethod
    def of(cls, facts: Mapping[str, Any] | None) -> DataKind | None:
        """The kind of data ``facts`` (a world state) describe; None when ``has_time_column`` is unknown."""
        time_column = (facts or {}).get("has_time_column")
        if not isinstance(time_column, bool):
            return None
        rows = (facts or {}).get("row_count")
        if isinstance(rows, bool) or not isinstance(rows, int | float) or rows <= 0:
            return cls(has_time_column=time_column)
        return cls(has_time_column=time_column, large=rows >= LARGE_ROWS)

    def facts(self) -> dict[str, Any]:
        """A world state of this kind (for mining what a plan on such data would use)."""
        rows = None if self.large is None else (LARGE_ROWS if self.large else 1)
        return {"has_time_column": self.has_time_column, **({"row_count": rows} if rows else {})}

    def label(self) -> str:
        size = "rows unknown" if self.large is None else f"rows {'>=' if self.large else '<'} {LARGE_ROWS:,}"
        return f"has_time_column={str(self.has_time_column).lower()}, {size}"


#: What a task says when the user's *file* is what failed it (no category or measure column,
#: unreadable, one column, no rows, a path outside the data directory): not the method's fault.
INPUT_PROBLEM = re.compile(
    r"No category column found|no numeric measure column|no rows to|has no rows|outside the data directory"
    r"|\b(1|one|a single) column\b"
    r"|Data file .{0,200}(empty|not UTF-8|UTF-16|binary|cannot be parsed|no header|no data rows|no columns"
    r"|not a readable)|Could not (read|parse) .{0,200} as (CSV|Parquet)|Need at least two periods", re.IGNORECASE)


def caused_by_input(failure: FailureRecord) -> bool:
    """Did the run's input (the file) cause ``failure``? Never an injected one (a demonstration)."""
    return bool(failure.error) and not failure.injected and bool(INPUT_PROBLEM.search(failure.error or ""))


def input_failure(failures: Iterable[FailureRecord]) -> str | None:
    """The first failure the input caused, as ``task: error`` (None: the input was fine)."""
    found = next((f for f in failures if caused_by_input(f)), None)
    return f"{found.task}: {found.error}" if found else None


def method_outcomes(experience: Experience) -> dict[str, bool]:
    """Per method the run *used*: did it succeed? A method failed when a failure of its own
    (:func:`blames_method`) hit it; it succeeded when all its tasks finished in the run
    (``finished_methods``). A method replanned away without its own fault (an injected
    failure, the data's), or never reached, is not a use: it is left out. A run that failed
    because of its input (``input_failure``) uses no method. Records from before
    ``finished_methods`` was kept: a method not blamed succeeded only in a run that completed
    and never dropped it (a stop on its task, a replan that ruled it out or, in the oldest
    records, any replan of its task)."""
    if experience.input_failure:
        return {}
    blamed = {f.method for f in experience.failures if blames_method(f, simulated=experience.simulated)}
    out: dict[str, bool] = {}
    for method in dict.fromkeys(experience.methods):
        if method in blamed:
            out[method] = False
        elif experience.finished_methods is not None:
            if method in experience.finished_methods:
                out[method] = True
        elif experience.outcome == "completed" and not any(_dropped(f, method) for f in experience.failures):
            out[method] = True
    return out


def _dropped(failure: FailureRecord, method: str) -> bool:
    if failure.method != method:
        return False
    if failure.action == "stop":
        return True
    return failure.action == "replan" and (failure.excluded is None or method in failure.excluded)


def evidence_runs(experiences: Iterable[Experience]) -> list[Experience]:
    """The runs mining learns from: not those that failed because of their input."""
    return [e for e in experiences if not e.input_failure]


def left_out(experiences: Iterable[Experience]) -> dict[str, int]:
    """Runs mining leaves out, by why (for ``relaygraph experience show``)."""
    n = sum(1 for e in experiences if e.input_failure)
    return {"input failures (the file, not a method)": n} if n else {}


def evidence(experience: Experience) -> list[FailureRecord]:
    """The run's failures that are evidence (injected ones only in a simulated run)."""
    return [f for f in experience.failures if experience.simulated or not f.injected]


def _tally(experiences: Iterable[Experience]) -> tuple[dict[str, int], dict[str, int]]:
    """Per method: runs that used it, runs in which it succeeded."""
    uses: dict[str, int] = defaultdict(int)
    wins: dict[str, int] = defaultdict(int)
    for e in experiences:
        for method, ok in method_outcomes(e).items():
            uses[method] += 1
            wins[method] += int(ok)
    return uses, wins


def _levels(experiences: Sequence[Experience], kind: DataKind) -> list[tuple[str, str, list[Experience]]]:
    """The experiences a plan on data of ``kind`` learns from, most alike first: (the data's
    label, how the evidence says it, the runs). Runs on data that differs in the time column
    are in none of them."""
    kinds = [(e, DataKind.of(e.facts)) for e in experiences]
    same_time = DataKind(has_time_column=kind.has_time_column)
    return [
        (kind.label(), f"on data like this ({kind.label()})", [e for e, k in kinds if k == kind]),
        (f"{same_time.label().split(',')[0]}, any size", f"on data with has_time_column="
         f"{str(kind.has_time_column).lower()} of any size (none on data like this)",
         [e for e, k in kinds if k is not None and k.has_time_column == kind.has_time_column]),
        ("recorded without data facts", "in runs recorded without data facts (none on data like this)",
         [e for e, k in kinds if k is None]),
    ]


def method_probabilities(experiences: Sequence[Experience], prior: Mapping[str, float],
                         facts: Mapping[str, Any] | None = None) -> list[Adaptation]:
    """Beta-updated success probabilities: keyed to the data ``facts`` describe (the statistics
    of runs on data like it, see the module docstring), else task-type-wide."""
    kind = DataKind.of(facts)
    levels = [(None, "", list(experiences))] if kind is None else _levels(experiences, kind)
    tallies = [(data, said, *_tally(runs)) for data, said, runs in levels]
    out = []
    for method in sorted(prior):
        found = next(((data, said, uses[method], wins[method]) for data, said, uses, wins in tallies
                      if uses.get(method)), None)
        if found is None:
            continue
        data, said, n, won = found
        p = (prior[method] * PRIOR_STRENGTH + won) / (PRIOR_STRENGTH + n)
        p = round(min(1.0, max(0.01, p)), 4)
        out.append(Adaptation(kind="method_probability", target=method, value=p, previous=prior[method],
                              impact=round(abs(p - prior[method]) * n, 4), data=data,
                              evidence=f"succeeded in {won} of {n} runs that used it" + (f" {said}" if said else "")))
    return out


def data_kinds(experiences: Iterable[Experience]) -> list[DataKind]:
    """The kinds of data the experiences were recorded on (for ``relaygraph experience show``)."""
    found = {k for k in (DataKind.of(e.facts) for e in experiences) if k is not None}
    return sorted(found, key=lambda k: (not k.has_time_column, k.large is None, bool(k.large)))


def retry_backoff(experiences: Sequence[Experience], current: float) -> list[Adaptation]:
    retried = [f for e in experiences for f in evidence(e) if f.failure_class == "transient"]
    if not retried:
        return []
    runs = [e for e in experiences if any(f.failure_class == "transient" for f in evidence(e))]
    retries_per_run = [sum(1 for f in evidence(e) if f.failure_class == "transient" and f.action == "retry")
                       for e in runs]
    exhausted = sum(1 for e in runs if any(f.failure_class == "transient" and f.action == "stop"
                                           for f in evidence(e)))
    mean = sum(retries_per_run) / len(runs)
    if mean > 1:
        value = round(current * 2, 4)
        return [Adaptation(kind="retry_backoff", target="transient", value=value, previous=current,
                           impact=round(mean * len(runs) / len(experiences), 4),
                           evidence=f"{len(runs)} runs met transient failures, {mean:.1f} retries each on average, "
                                    f"{exhausted} ran out of retries")]
    return []


def p95(values: Sequence[float]) -> float:
    """The 95th percentile (nearest rank): with fewer than 20 values, the largest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def timeouts(experiences: Sequence[Experience], rows: int | None = None) -> list[Adaptation]:
    """Per task, the timeout for data of ``rows`` rows (:func:`timeout_for`), doubled for each
    run its timeout stopped — so a timeout that proved too short for what the task now needs
    grows instead of failing every later run (a cut task leaves no successful duration). The
    evidence says how it was derived: percentile × factor, the floor, the per-row budget."""
    seen: dict[str, list[float]] = defaultdict(list)
    rate: dict[str, float] = {}  # the slowest seconds per row seen, per task
    stopped: dict[str, int] = defaultdict(int)
    for e in evidence_runs(experiences):
        for task, seconds in e.durations.items():
            seen[task].append(seconds)
            if e.row_count:
                rate[task] = max(rate.get(task, 0.0), seconds / e.row_count)
        for task in {f.task for f in evidence(e) if f.timeout_s is not None and f.action == "stop"}:
            stopped[task] += 1
    out = []
    for task, durations in sorted(seen.items()):
        s = p95(durations)
        value = timeout_for(s, rate.get(task), rows, stopped[task])
        parts = [f"p95 of {len(durations)} successful runs {s:.2f}s × {TIMEOUT_FACTOR:g} = {TIMEOUT_FACTOR * s:.2f}s",
                 f"floor {MIN_TIMEOUT_S:g}s"]
        if rate.get(task) and rows:
            parts.append(f"{rate[task] * 1000:.3g}s per 1,000 rows × {TIMEOUT_ROW_FACTOR:g} for {rows:,} rows = "
                         f"{TIMEOUT_ROW_FACTOR * rows * rate[task]:.2f}s")
        base = timeout_for(s, rate.get(task), rows)
        which = "the floor" if base == MIN_TIMEOUT_S else ("the cap" if base == MAX_TIMEOUT_S else "the largest")
        grown = f"; its timeout stopped {stopped[task]} runs: doubled {stopped[task]}x" if stopped[task] else ""
        out.append(Adaptation(kind="timeout", target=task, value=round(value, 3), impact=float(stopped[task]),
                              evidence=f"{'; '.join(parts)} -> {base:g}s ({which}){grown}"))
    return out


def timeout_for(p95_s: float, rate_s_per_row: float | None, rows: int | None, stopped: int = 0) -> float:
    """``max(MIN_TIMEOUT_S, TIMEOUT_FACTOR × p95_s, TIMEOUT_ROW_FACTOR × rows × rate) ×
    2^stopped``, at most :data:`MAX_TIMEOUT_S`: well above what the task usually takes, never
    below a floor a loaded machine's slow moment stays under, and growing with the data — a
    timeout learned on small files does not cut a large one."""
    scaled = TIMEOUT_ROW_FACTOR * rows * rate_s_per_row if rows and rate_s_per_row else 0.0
    return min(MAX_TIMEOUT_S, max(MIN_TIMEOUT_S, TIMEOUT_FACTOR * p95_s, scaled) * 2 ** stopped)


def reputations(experiences: Sequence[Experience]) -> dict[str, float]:
    """Per agent: (successful task runs + 1) / (task runs + 2)."""
    ok: dict[str, int] = defaultdict(int)
    bad: dict[str, int] = defaultdict(int)
    for e in evidence_runs(experiences):
        for task in e.tasks_completed:
            ok[e.task_agents.get(task, task)] += 1
        for f in evidence(e):
            bad[f.agent or e.task_agents.get(f.task, f.task)] += 1
    return {a: round((ok[a] + 1) / (ok[a] + bad[a] + 2), 4) for a in sorted(set(ok) | set(bad))}


def mine(experiences: Iterable[Experience], prior: Mapping[str, float], *, task_type: str,
         backoff_s: float = 0.5, rows: int | None = None, facts: Mapping[str, Any] | None = None) -> list[Adaptation]:
    """Adaptations for ``task_type``, most impact first; none below :data:`MIN_EXPERIENCES`
    runs that are evidence (:func:`evidence_runs`: not input failures) (``rows``: the size of the data the next run works on, which scales its timeouts; ``facts``:
    its world state, which keys the method probabilities — without it, task-type-wide ones)."""
    relevant = evidence_runs(e for e in experiences if e.task_type == task_type)
    if len(relevant) < MIN_EXPERIENCES:
        return []
    found = method_probabilities(relevant, prior, facts) + retry_backoff(relevant, backoff_s)
    reps = reputations(relevant)
    found += [Adaptation(kind="reputation", target=agent, value=r, impact=round(abs(r - 0.5) / 10, 4),
                         evidence="successful task runs (+1) over all task runs (+2)")
              for agent, r in reps.items()]
    found += timeouts(relevant, rows)
    return sorted(found, key=lambda a: (-a.impact, a.kind, a.target))


def learned_probabilities(adaptations: Iterable[Adaptation]) -> dict[str, float]:
    return {a.target: a.value for a in adaptations if a.kind == "method_probability"}


def learned_timeouts(adaptations: Iterable[Adaptation]) -> dict[str, float]:
    """Seconds per task name after which the executor cuts the task's agent (a timeout failure)."""
    return {a.target: a.value for a in adaptations if a.kind == "timeout"}


def learned_backoff(adaptations: Iterable[Adaptation]) -> float | None:
    return next((a.value for a in adaptations if a.kind == "retry_backoff"), None)


def finished(plans: Sequence[Mapping[str, Any]], done: Sequence[Mapping[str, Any]],
             replans: Sequence[Mapping[str, Any]]) -> list[str]:
    """The methods whose tasks all finished in the run: in some accepted plan, each primitive
    task under the method (its descendants in the decomposition) ran to its end under that
    plan's method for it (``done``: name and method), or was kept from an earlier plan (a
    replan's ``kept``). A method without tasks (``already_clean``) finished when its plan's
    tasks all did."""
    ran = {(t.get("name"), t.get("method")) for t in done}
    kept = [set()] + [set(r.get("kept") or []) for r in replans if r.get("action") == "replan" and r.get("accepted")]
    out: list[str] = []
    for i, plan in enumerate(plans):
        keep = kept[i] if i < len(kept) else set()
        nodes = {m["id"]: m for m in plan.get("methods", [])}
        tasks = plan.get("tasks", [])
        ok = {t["id"]: (t["name"], t.get("method")) in ran or t["name"] in keep for t in tasks}

        def under(parent: Any, node: str) -> bool:
            while parent:
                if parent == node:
                    return True
                parent = (nodes.get(parent) or {}).get("parent")
            return False

        for m in plan.get("methods", []):
            mine = [t for t in tasks if under(t.get("parent"), m["id"])] or tasks
            if mine and all(ok[t["id"]] for t in mine):
                out.append(m["method"])
    return list(dict.fromkeys(out))


def experience_from_run(thread_id: str, task_type: str, state: Mapping[str, Any], outcome: str,
                        recorded_at: float, *, simulated: bool = False) -> Experience:
    """The experience of a finished run of the planned graph, from its final state
    (``simulated``: the run asked its injected failures to count, ``learn_injected``)."""
    plans = state.get("plans") or []
    tasks = {t["name"]: t["agent"] for p in plans for t in p.get("tasks", [])}
    durations: dict[str, float] = {}
    for p in state.get("progress") or []:
        name = str(p.get("node", "")).split("#", 1)[0]
        if p.get("status") == "completed":
            durations[name] = durations.get(name, 0.0) + float(p.get("duration_s") or 0.0)
    first_world = {**(state.get("world") or {}), **(state.get("first_world") or {})}
    rows = first_world.get("row_count")
    failures = [FailureRecord.model_validate(r) for r in state.get("replans") or []]
    return Experience(
        thread_id=thread_id, task_type=task_type,
        methods=[m["method"] for p in plans for m in p.get("methods", [])],
        outcome=outcome,
        failures=failures,
        durations=durations, task_agents=tasks,
        tasks_completed=[t["name"] for t in state.get("done") or []],
        confidence=plans[0]["confidence"] if plans else None,
        recorded_at=recorded_at,
        row_count=int(rows) if isinstance(rows, int | float) and rows > 0 else None,
        facts={k: v for k, v in first_world.items() if k in ("has_time_column", "row_count", "is_clean")},
        simulated=simulated,
        finished_methods=finished(plans, state.get("done") or [], state.get("replans") or []),
        input_failure=input_failure(failures),
    )
