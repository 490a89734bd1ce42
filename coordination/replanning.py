"""Failure classes and their policies: what the plan executor does when a task fails.

:func:`classify` reads a failure's text (the agent's error, or the tool errors it saw) and puts
it in one class; :func:`decide` turns the class into a :class:`Decision`:

=============  =================================================================================
class          policy
=============  =================================================================================
transient      timeouts, rate limits, dropped connections: retry the same task up to
               :data:`MAX_RETRIES` times with exponential backoff; never replan
resource       too large / out of memory: scale down (double ``partitions``, at most
               :data:`MAX_PARTITIONS`) and replan — the domain has a partitioned method
data_quality   nulls, duplicates, unparseable values: mark the data unclean and unvalidated and
               replan, which puts validation and cleaning tasks back into the plan
schema         missing or renamed column: adapt — map the role to the column observation found
               (e.g. ``date_column``: the plan expected ``order_date``, the data has ``when``)
               and replan; with nothing (else) to map, replan with another method
dependency     a missing upstream artifact: re-run its producer (undo the producer's effects,
               go back to the producer's input) and replan
unknown        anything else: the fallback method — the plan's prepared contingency for the
               failed method, else the best plan without it
=============  =================================================================================

A replanned plan is accepted only if its confidence is above :data:`MIN_CONFIDENCE`
(:func:`accept`); otherwise the run stops with the reason. Everything here is pure: the
executor (:mod:`relaygraph.nodes.planning`) does the observing, planning and running.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from relaygraph.coordination.htn import Fact, Plan, PlannedTask

FailureClass = Literal["transient", "resource", "data_quality", "schema", "dependency", "unknown"]
FAILURE_CLASSES: tuple[FailureClass, ...] = ("transient", "resource", "data_quality", "schema", "dependency",
                                             "unknown")
MAX_RETRIES = 3
MAX_PARTITIONS = 16
MIN_CONFIDENCE = 0.6
BACKOFF_S = 0.5
LARGE_ROWS = 50_000  # at or above: a timeout that outlived its retries is the data's size (resource)

#: First match wins: schema before dependency ("column … not found" is not a missing file).
PATTERNS: tuple[tuple[FailureClass, re.Pattern[str]], ...] = (
    ("transient", re.compile(r"time(d)?\s?out|rate.?limit|\b429\b|\b503\b|temporar|connection (reset|refused|error|aborted)"
                             r"|APIConnectionError|RateLimitError|try again", re.IGNORECASE)),
    ("resource", re.compile(r"out of memory|MemoryError|too large|exceeds? .*(memory|limit)|resource exhausted"
                            r"|\bOOM\b|cannot allocate", re.IGNORECASE)),
    ("schema", re.compile(r"unknown column|no date column|missing column|KeyError|is not numeric|renamed"
                          r"|column .{0,40} not found|schema", re.IGNORECASE)),
    ("dependency", re.compile(r"no dataset|no such file|FileNotFoundError|missing (upstream|artifact|input)"
                              r"|does not exist|not produced", re.IGNORECASE)),
    ("data_quality", re.compile(r"\bnulls?\b|NaN|duplicate|out.of.range|validation failed|data quality"
                                r"|could not convert|invalid value|unparseable", re.IGNORECASE)),
)

#: What an injected failure of each class says (``--param fail=TASK:CLASS``): the same words a
#: real one would, so injection goes through :func:`classify` like any other failure.
INJECTED_MESSAGES: dict[FailureClass, str] = {
    "transient": "TimeoutError: the model server timed out (injected)",
    "resource": "MemoryError: dataset too large for one pass, out of memory (injected)",
    "data_quality": "data quality: duplicate rows and nulls found where the task needs clean data (injected)",
    "schema": "ValueError: No date column found; the column was renamed (injected)",
    "dependency": "FileNotFoundError: missing upstream artifact, the cleaned dataset is not produced (injected)",
    "unknown": "RuntimeError: something unexpected happened (injected)",
}


class Failure(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str
    task_id: str
    failure_class: FailureClass
    error: str
    injected: bool = False
    timeout_s: float | None = None  # the task's agent was cut at this timeout


def classify(error: str) -> FailureClass:
    for cls, pattern in PATTERNS:
        if pattern.search(error):
            return cls
    return "unknown"


class Injection(BaseModel):
    """``TASK:CLASS`` or ``TASK:CLASSxN``: fail TASK's next N runs with CLASS."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str
    failure_class: FailureClass
    times: int = Field(default=1, ge=1, le=10)


def parse_injections(value: str | Sequence[str] | None) -> list[Injection]:
    """``"aggregate:transient,trends:schemax2"`` → injections; ValueError with the fix if bad."""
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for raw in (i.strip() for i in items if i.strip()):
        # task and class names are lower case: ``Trends:Schema`` means trends:schema
        match = re.fullmatch(r"([a-z_]\w*):([a-z_]+?)(?:x(\d+))?", raw.lower())
        if not match or match.group(2) not in FAILURE_CLASSES:
            raise ValueError(f"fail={raw!r}: expected TASK:CLASS or TASK:CLASSxN (N runs) with CLASS one of {', '.join(FAILURE_CLASSES)}")
        out.append(Injection(task=match.group(1), failure_class=match.group(2),  # type: ignore[arg-type]
                             times=int(match.group(3) or 1)))
    return out


class Decision(BaseModel):
    """What to do about one failure."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["retry", "replan", "stop"]
    failure_class: FailureClass
    policy: str
    backoff_s: float = 0.0
    facts: dict[str, Fact] = Field(default_factory=dict)  # world-state changes before replanning
    exclude_methods: list[str] = Field(default_factory=list)
    context: dict[str, Any] = Field(default_factory=dict)  # run-context changes (column map, dataset)
    rerun: str | None = None
    reason: str = ""


def producer_of(failed: PlannedTask, done: Sequence[PlannedTask]) -> PlannedTask | None:
    """The latest completed task whose effects the failed task's preconditions rely on."""
    needed = {c.fact for c in failed.preconditions}
    return next((t for t in reversed(done) if needed & set(t.effects)), None)


def decide(failure: Failure, task: PlannedTask, plan: Plan, world: Mapping[str, Fact],
           done: Sequence[PlannedTask], retries: int, *, backoff_s: float = BACKOFF_S,
           expected_date_column: str | None = None, rows: int | None = None) -> Decision:
    """The policy for ``failure`` (``retries``: transient retries of this task so far;
    ``expected_date_column``: the date column the run's tasks were told to use, if any;
    ``rows``: the size of the data, which turns a timeout that outlived its retries on a large
    input — :data:`LARGE_ROWS` or more — into a resource failure: scaled down, not stopped)."""
    cls = failure.failure_class
    large = bool(rows and rows >= LARGE_ROWS)
    if cls == "transient" and retries >= MAX_RETRIES and failure.timeout_s is not None and large:
        partitions = int(world.get("partitions") or 1)
        if partitions < MAX_PARTITIONS:
            scaled = min(MAX_PARTITIONS, max(2, partitions * 2))
            return Decision(action="replan", failure_class="resource", facts={"partitions": scaled},
                            policy=f"timeout at {failure.timeout_s:g}s persisted after {MAX_RETRIES} retries on "
                                   f"{rows:,} rows: too large for one pass (resource): scale down: {partitions} → "
                                   f"{scaled} partitions, replan")
    if cls == "transient":
        if retries < MAX_RETRIES:
            return Decision(action="retry", failure_class=cls, backoff_s=backoff_s * 2 ** retries,
                            policy=f"retry {retries + 1} of {MAX_RETRIES} after {backoff_s * 2 ** retries:g}s backoff")
        return Decision(action="stop", failure_class=cls, policy="retries exhausted",
                        reason=f"{task.name}: transient failure persisted after {MAX_RETRIES} retries: {failure.error}")
    if cls == "resource":
        partitions = int(world.get("partitions") or 1)
        if partitions >= MAX_PARTITIONS:
            return Decision(action="stop", failure_class=cls, policy="cannot scale down further",
                            reason=f"{task.name}: out of resources at {partitions} partitions: {failure.error}")
        scaled = min(MAX_PARTITIONS, max(2, partitions * 2))
        return Decision(action="replan", failure_class=cls, facts={"partitions": scaled},
                        policy=f"scale down: {partitions} → {scaled} partitions, replan")
    if cls == "data_quality":
        return Decision(action="replan", failure_class=cls, facts={"is_clean": False, "validated": False},
                        policy="add validation and cleaning tasks, replan")
    if cls == "schema":
        date_column = world.get("date_column")
        if date_column and date_column != expected_date_column:
            instead = f", instead of {expected_date_column!r}" if expected_date_column else ""
            return Decision(action="replan", failure_class=cls, context={"date_column": date_column},
                            policy=f"adapt (column mapping): map the date role to column {date_column!r} "
                                   f"(observed{instead}), replan")
        why = (f"no column mapping can help: task {task.name!r} already used the date column {date_column!r}"
               if date_column else "no observed column to map the date role to")
        return Decision(action="replan", failure_class=cls, facts={"has_time_column": False},
                        exclude_methods=[task.method] if task.method else [],
                        policy=f"adapt (another method): {why}; replan without {task.method!r}")
    if cls == "dependency":
        producer = producer_of(task, done)
        if producer is not None:
            undone: dict[str, Fact] = {k: (not v if isinstance(v, bool) else None) for k, v in producer.effects.items()}
            return Decision(action="replan", failure_class=cls, facts=undone, rerun=producer.name,
                            context={"dataset": "<source>"},
                            policy=f"re-run the producer {producer.name!r} from its input, replan")
        cls = "unknown"  # nothing upstream to re-run: fall back like any unknown failure
        needed = ", ".join(sorted({c.fact for c in task.preconditions})) or "nothing"
        why_not = (f"dependency policy (re-run the producer) not applicable: no completed task produces what "
                   f"{task.name!r} needs ({needed}), so nothing upstream can be re-run; ")
    else:
        why_not = ""
    contingency = next((c for c in plan.contingencies if c.instead_of == task.method), None)
    fallback = why_not + (f"fallback: contingency {contingency.method!r} instead of {task.method!r}"
                          if contingency and contingency.method else f"fallback: replan without method {task.method!r}")
    return Decision(action="replan", failure_class=cls, exclude_methods=[task.method] if task.method else [],
                    policy=fallback)


def accept(plan: Plan | None, reason_if_none: str = "", *, replan: bool = True) -> tuple[bool, str]:
    """A plan (``replan``: a replanned one, "new plan") is accepted only above :data:`MIN_CONFIDENCE`."""
    if plan is None:
        return False, reason_if_none or "no plan"
    if plan.confidence > MIN_CONFIDENCE:
        return True, f"confidence {plan.confidence:.3f} > {MIN_CONFIDENCE}"
    which = "new plan" if replan else "plan"
    return False, (f"{which} confidence {plan.confidence:.3f} is not above {MIN_CONFIDENCE} "
                   f"(methods {', '.join(plan.method_names())})")
