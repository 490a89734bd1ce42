"""Hierarchical task network (HTN) planning: decompose a goal into agent work, best plan first.

A :class:`Domain` is data (pydantic, so it can be checked, stored and shown):

* a :class:`PrimitiveTask` is work one agent does with named tools; it has preconditions on
  the world state, effects on it, and duration and priority estimates;
* a :class:`CompoundTask` is decomposed by a :class:`Method` — preconditions, an ordered list of
  subtasks (as written, or by priority) and a success probability.

The world state is a flat dict of facts (``has_nulls``, ``has_duplicates``, ``is_clean``,
``has_time_column``, ``row_count`` …) that come from real observations
(:func:`relaygraph.coordination.world.facts_from_observations`).

Planning follows the stricter rule: a compound task with no applicable method fails that
decomposition (a compound task is never silently run as a primitive one); a plan's confidence
is the product of its chosen methods' success probabilities; the best plan wins (highest
confidence, then shortest estimated duration, then the order methods are declared in). Every
chosen method whose success probability is below ``risk_threshold`` gets a contingency: the
best alternative decomposition of the same compound task from the state it would start in.

Why gtpyhop, and how. ``gtpyhop`` (the HTN planning group's successor of Pyhop/SHOP) is the
decomposition engine: our primitive tasks are its actions, our methods its task methods, and
its ``iterative_dfs_backtracking`` strategy does the search. On its own it returns the *first*
plan found, which conflicts with "best plan wins". So the planner appends a sentinel action to
the to-do list that records each complete plan and then *fails*, which makes gtpyhop backtrack
into every other method choice — an exhaustive enumeration. A marker action at the head of each
method's subtasks multiplies the running confidence and fails when it drops below the best plan
found so far; since probabilities are ≤ 1 a branch can only lose confidence, so this
branch-and-bound prunes without ever missing a better plan (the property tests compare it with
brute force). Every action appends to a trace in the state, which both carries the decomposition
tree out and stops gtpyhop from dropping an effect-free task as "idempotent".

Three gtpyhop traits are handled here: it prints a banner on import (silenced); it keeps the
current domain and verbosity in module globals, and ``PlannerSession`` — which swaps them in and
out — prints a line on every call (``set_verbose_level``) and holds only a per-session lock, so
the planner calls gtpyhop's ``seek_plan_iterative_backtracking`` itself, with the globals set and
restored under the process-wide :data:`_GTPYHOP_LOCK`; and every ``Domain`` it creates is
appended to a global list (removed again, so planning does not leak).
"""

from __future__ import annotations

import contextlib
import io
import operator
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

with contextlib.redirect_stdout(io.StringIO()):  # gtpyhop prints a banner when imported
    import gtpyhop
    import gtpyhop.main as _gtpyhop_main

Fact = bool | int | float | str | None
WorldState = dict[str, Fact]
NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
RISK_THRESHOLD = 0.8
_GTPYHOP_LOCK = threading.Lock()

_OPS: dict[str, Callable[[Any, Any], Any]] = {"==": operator.eq, "!=": operator.ne, ">": operator.gt, ">=": operator.ge,
        "<": operator.lt, "<=": operator.le}


class Condition(BaseModel):
    """``fact op value`` on the world state; a missing fact only satisfies ``!=``/``== None``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fact: str
    op: Literal["==", "!=", ">", ">=", "<", "<="] = "=="
    value: Fact = True

    def holds(self, state: Mapping[str, Fact]) -> bool:
        actual = state.get(self.fact)
        if actual is None and self.op not in ("==", "!="):
            return False
        try:
            return bool(_OPS[self.op](actual, self.value))
        except TypeError:
            return False

    def __str__(self) -> str:
        return f"{self.fact} {self.op} {self.value!r}"


def unmet(conditions: Iterable[Condition], state: Mapping[str, Fact]) -> list[Condition]:
    """The conditions that do not hold in ``state`` (empty: all hold)."""
    return [c for c in conditions if not c.holds(state)]


class PrimitiveTask(BaseModel):
    """Work one agent does with named tools."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME)
    agent: str = Field(pattern=NAME)
    tools: tuple[str, ...]
    instructions: str = ""
    preconditions: tuple[Condition, ...] = ()
    effects: dict[str, Fact] = Field(default_factory=dict)
    duration_s: float = Field(default=1.0, ge=0)
    priority: int = 0


class CompoundTask(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME)
    description: str = ""
    priority: int = 0


class Method(BaseModel):
    """One way to decompose a compound task."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME)
    task: str
    preconditions: tuple[Condition, ...] = ()
    subtasks: tuple[str, ...]
    ordering: Literal["sequential", "priority"] = "sequential"
    success_probability: float = Field(gt=0, le=1)


class Domain(BaseModel):
    """Tasks and methods; checked on construction (known names, acyclic decomposition)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    primitives: tuple[PrimitiveTask, ...]
    compounds: tuple[CompoundTask, ...]
    methods: tuple[Method, ...]

    @model_validator(mode="after")
    def _check(self) -> Domain:
        names = [t.name for t in self.primitives] + [t.name for t in self.compounds]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"task names must be unique across primitive and compound tasks: {duplicates}")
        method_names = [m.name for m in self.methods]
        if len(set(method_names)) != len(method_names):
            raise ValueError("method names must be unique")
        compounds = {t.name for t in self.compounds}
        for m in self.methods:
            if m.task not in compounds:
                raise ValueError(f"method {m.name!r} decomposes {m.task!r}, which is not a compound task")
            missing = [s for s in m.subtasks if s not in names]
            if missing:
                raise ValueError(f"method {m.name!r} names unknown subtasks {missing}")
        self._check_acyclic(compounds)
        return self

    def _check_acyclic(self, compounds: set[str]) -> None:
        """Finite decompositions only: otherwise "the best plan" is not defined."""
        children = {c: {s for m in self.methods if m.task == c for s in m.subtasks if s in compounds}
                    for c in compounds}
        done: set[str] = set()

        def visit(node: str, path: tuple[str, ...]) -> None:
            if node in path:
                raise ValueError(f"recursive decomposition: {' -> '.join((*path, node))}")
            if node in done:
                return
            for child in sorted(children[node]):
                visit(child, (*path, node))
            done.add(node)

        for c in sorted(compounds):
            visit(c, ())

    def primitive(self, name: str) -> PrimitiveTask | None:
        return next((t for t in self.primitives if t.name == name), None)

    def compound(self, name: str) -> CompoundTask | None:
        return next((t for t in self.compounds if t.name == name), None)

    def methods_for(self, task: str) -> list[Method]:
        return [m for m in self.methods if m.task == task]

    def priority(self, task: str) -> int:
        found = self.primitive(task) or self.compound(task)
        return found.priority if found else 0

    def with_probabilities(self, probabilities: Mapping[str, float]) -> Domain:
        """The same domain with some methods' success probabilities replaced (learning)."""
        methods = tuple(m.model_copy(update={"success_probability": probabilities[m.name]})
                        if m.name in probabilities else m for m in self.methods)
        return self.model_copy(update={"methods": methods})

    def without_methods(self, names: Iterable[str]) -> Domain:
        drop = set(names)
        return self.model_copy(update={"methods": tuple(m for m in self.methods if m.name not in drop)})


# --- the plan ---------------------------------------------------------------------------------


class PlannedTask(BaseModel):
    """A primitive task in a plan, where it came from in the decomposition."""

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    agent: str
    tools: tuple[str, ...]
    instructions: str = ""
    preconditions: tuple[Condition, ...] = ()
    effects: dict[str, Fact] = Field(default_factory=dict)
    duration_s: float = 0.0
    priority: int = 0
    parent: str | None = None  # node id of the method that introduced it
    method: str | None = None


class MethodChoice(BaseModel):
    """A compound task and the method chosen for it (a node of the decomposition tree)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    task: str
    method: str
    success_probability: float
    parent: str | None = None
    state_before: WorldState = Field(default_factory=dict)


class Contingency(BaseModel):
    """What to do instead if a risky method fails: the best other method for its task."""

    model_config = ConfigDict(extra="forbid")

    task: str
    instead_of: str
    method: str | None
    tasks: list[str] = Field(default_factory=list)
    confidence: float = 0.0
    reason: str = ""


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    goal: str
    tasks: list[PlannedTask]
    methods: list[MethodChoice]
    confidence: float = Field(ge=0, le=1)
    duration_s: float
    initial_state: WorldState
    final_state: WorldState
    plans_found: int = 1  # complete plans reached by the search (after pruning)
    contingencies: list[Contingency] = Field(default_factory=list)

    def method_names(self) -> list[str]:
        return [m.method for m in self.methods]

    def mermaid(self) -> str:
        """The decomposition tree, top-down: compound tasks (with their method) and primitives."""
        lines = ["flowchart TD", f'  goal(["{self.goal} · confidence {self.confidence:.2f}"])']

        def node_id(raw: str) -> str:
            return "n" + "".join(ch if ch.isalnum() else "_" for ch in raw)

        for m in self.methods:
            lines.append(f'  {node_id(m.id)}["{m.task}<br/>method {m.method} · p={m.success_probability:.2f}"]')
            lines.append(f"  {node_id(m.parent) if m.parent else 'goal'} --> {node_id(m.id)}")
        for i, t in enumerate(self.tasks, 1):
            lines.append(f'  {node_id(t.id)}("{i}. {t.name}<br/>{t.agent}: {", ".join(t.tools)}")')
            lines.append(f"  {node_id(t.parent) if t.parent else 'goal'} --> {node_id(t.id)}")
        for a, b in zip(self.tasks, self.tasks[1:], strict=False):
            lines.append(f"  {node_id(a.id)} -.-> {node_id(b.id)}")
        for c in self.contingencies:
            label = f"if {c.instead_of} fails: {c.method or 'no alternative'}"
            lines.append(f'  {node_id("c_" + c.instead_of)}{{{{"{label}"}}}}')
            owner = next((m for m in self.methods if m.method == c.instead_of), None)
            if owner:
                lines.append(f"  {node_id(owner.id)} -.- {node_id('c_' + c.instead_of)}")
        return "\n".join(lines)


class PlanningError(ValueError):
    """No plan: ``reasons`` name the compound tasks without an applicable method and why."""

    def __init__(self, goal: str, reasons: list[str]) -> None:
        self.goal, self.reasons = goal, reasons
        super().__init__(f"no plan for {goal!r}: " + ("; ".join(reasons) or "no decomposition succeeded"))


# --- the search (gtpyhop) ---------------------------------------------------------------------


class _Search:
    """One planning call's bookkeeping, reached by the gtpyhop actions and methods."""

    def __init__(self, domain: Domain, prune: bool) -> None:
        self.domain, self.prune = domain, prune
        self.best = 0.0
        self.found: list[dict[str, Any]] = []
        self.rejected: dict[str, dict[str, list[str]]] = {}  # task -> method -> unmet conditions

    def reject(self, task: str, method: str, conditions: list[Condition]) -> None:
        self.rejected.setdefault(task, {})[method] = [str(c) for c in conditions]


def _order(domain: Domain, method: Method) -> list[str]:
    if method.ordering == "priority":  # stable: equal priorities keep the written order
        return sorted(method.subtasks, key=lambda s: -domain.priority(s))
    return list(method.subtasks)


def _gtpyhop_domain(search: _Search) -> gtpyhop.Domain:
    domain = search.domain
    gdomain = gtpyhop.Domain(f"relaygraph_{domain.name}")
    _gtpyhop_main._domains.remove(gdomain)  # gtpyhop keeps every domain ever made; we don't need it

    def todo(name: str, parent: str, index: int) -> tuple[str, str]:
        return (name, f"{parent}/{index}")

    def make_action(task: PrimitiveTask) -> Callable[..., Any]:
        def action(state: gtpyhop.State, node: str) -> gtpyhop.State | bool:
            missing = unmet(task.preconditions, state.facts)
            if missing:
                search.reject(task.name, "preconditions", missing)
                return False
            state.facts.update(task.effects)
            state.trace.append(("task", node, task.name))
            return state

        action.__name__ = task.name
        return action

    def marker(state: gtpyhop.State, node: str, task: str, method: str,
               probability: float) -> gtpyhop.State | bool:
        confidence = state.confidence * probability
        if search.prune and confidence < search.best - 1e-12:
            return False  # this branch can only get worse than a plan already found
        state.trace.append(("method", node, task, method, probability, dict(state.facts)))
        state.confidence = confidence
        return state

    def collect(state: gtpyhop.State) -> bool:
        search.found.append({"trace": list(state.trace), "confidence": state.confidence,
                             "facts": dict(state.facts)})
        search.best = max(search.best, state.confidence)
        return False  # fail on purpose: gtpyhop backtracks into the remaining alternatives

    marker.__name__, collect.__name__ = "__method__", "__collect__"

    def make_method(method: Method) -> Callable[..., Any]:
        def refine(state: gtpyhop.State, node: str) -> list[tuple[Any, ...]] | bool:
            missing = unmet(method.preconditions, state.facts)
            if missing:
                search.reject(method.task, method.name, missing)
                return False
            head = [("__method__", node, method.task, method.name, method.success_probability)]
            return head + [todo(s, node, i) for i, s in enumerate(_order(domain, method))]

        refine.__name__ = method.name
        return refine

    actions = [make_action(t) for t in domain.primitives] + [marker, collect]
    gdomain._action_dict.update({a.__name__: a for a in actions})
    for compound in domain.compounds:
        gdomain._task_method_dict[compound.name] = [make_method(m) for m in domain.methods_for(compound.name)]
    return gdomain


def _build_plan(domain: Domain, goal: str, initial: WorldState, found: dict[str, Any]) -> Plan:
    tasks: list[PlannedTask] = []
    methods: list[MethodChoice] = []
    method_nodes: dict[str, str] = {}  # node id -> method name

    def parent_of(node: str) -> str | None:
        parent = node.rsplit("/", 1)[0] if "/" in node else None
        return parent if parent in method_nodes else None

    for entry in found["trace"]:
        if entry[0] == "method":
            _, node, task, method, probability, before = entry
            method_nodes[node] = method
            methods.append(MethodChoice(id=node, task=task, method=method, success_probability=probability,
                                        parent=parent_of(node), state_before=before))
        else:
            _, node, name = entry
            spec = domain.primitive(name)
            assert spec is not None
            parent = parent_of(node)
            tasks.append(PlannedTask(id=node, name=name, agent=spec.agent, tools=spec.tools,
                                     instructions=spec.instructions, preconditions=spec.preconditions,
                                     effects=dict(spec.effects), duration_s=spec.duration_s,
                                     priority=spec.priority, parent=parent,
                                     method=method_nodes.get(parent) if parent else None))
    return Plan(goal=goal, tasks=tasks, methods=methods, confidence=round(found["confidence"], 12),
                duration_s=round(sum(t.duration_s for t in tasks), 6), initial_state=dict(initial),
                final_state=found["facts"])


def _search(domain: Domain, goal: str, state: Mapping[str, Fact], prune: bool) -> tuple[list[Plan], _Search]:
    if domain.primitive(goal) is None and domain.compound(goal) is None:
        raise PlanningError(goal, [f"{goal!r} is not a task of domain {domain.name!r}"])
    search = _Search(domain, prune)
    initial = gtpyhop.State("world", facts=dict(state), trace=[], confidence=1.0)
    with _GTPYHOP_LOCK:
        saved = (_gtpyhop_main.current_domain, _gtpyhop_main.verbose)
        try:
            gtpyhop.set_current_domain(_gtpyhop_domain(search))
            _gtpyhop_main.verbose = 0  # set_verbose_level() would print a line on each call
            _gtpyhop_main.seek_plan_iterative_backtracking(initial, [(goal, "g"), ("__collect__",)], [], 0)
        finally:
            _gtpyhop_main.current_domain, _gtpyhop_main.verbose = saved
    plans = [_build_plan(domain, goal, dict(state), f) for f in search.found]
    return plans, search


def _best(plans: list[Plan]) -> Plan:
    order = sorted(range(len(plans)), key=lambda i: (-plans[i].confidence, plans[i].duration_s, i))
    return plans[order[0]]


def plan(domain: Domain, goal: str, state: Mapping[str, Fact], *,
         risk_threshold: float = RISK_THRESHOLD) -> Plan:
    """The best plan for ``goal`` from ``state``, with contingencies for its risky methods.

    Raises :class:`PlanningError` (naming the compound tasks whose methods did not apply, and
    the conditions that failed) when no decomposition succeeds.
    """
    plans, search = _search(domain, goal, state, prune=True)
    if not plans:
        reasons = []
        for task, by_method in search.rejected.items():
            if domain.primitive(task):
                reasons.append(f"task {task!r} not executable ({', '.join(by_method['preconditions'])})")
            else:
                reasons.append(f"no applicable method for {task!r} ("
                               + "; ".join(f"{m}: {', '.join(c)}" for m, c in by_method.items()) + ")")
        undecomposable = [c.name for c in domain.compounds if not domain.methods_for(c.name)]
        reasons += [f"compound task {name!r} has no methods" for name in undecomposable]
        raise PlanningError(goal, reasons)
    best = _best(plans)
    best.plans_found = len(plans)
    best.contingencies = [contingency(domain, choice) for choice in best.methods
                          if choice.success_probability < risk_threshold]
    return best


def all_plans(domain: Domain, goal: str, state: Mapping[str, Fact]) -> list[Plan]:
    """Every complete plan (no pruning), in search order — for inspection and tests."""
    return _search(domain, goal, state, prune=False)[0]


def contingency(domain: Domain, choice: MethodChoice) -> Contingency:
    """The best other method for ``choice.task`` from the state it started in."""
    try:
        alternative = plan(domain.without_methods([choice.method]), choice.task, choice.state_before,
                           risk_threshold=0.0)
    except PlanningError as exc:
        return Contingency(task=choice.task, instead_of=choice.method, method=None, reason=str(exc))
    head = alternative.methods[0]
    return Contingency(task=choice.task, instead_of=choice.method, method=head.method,
                       tasks=[t.name for t in alternative.tasks], confidence=alternative.confidence,
                       reason=f"{choice.method} has success probability {choice.success_probability:.2f}")


def simulate(plan_: Plan, state: Mapping[str, Fact]) -> tuple[WorldState, list[str]]:
    """Run a plan in the model: the final state and each task whose preconditions did not hold."""
    facts = dict(state)
    problems = []
    for task in plan_.tasks:
        missing = unmet(task.preconditions, facts)
        if missing:
            problems.append(f"{task.id} {task.name}: {', '.join(map(str, missing))}")
        facts.update(task.effects)
    return facts, problems
