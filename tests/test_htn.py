"""HTN planner: hand-computed decompositions, and properties against brute force."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relaygraph.coordination import htn
from relaygraph.coordination.htn import (
    CompoundTask,
    Condition,
    Domain,
    Method,
    PlanningError,
    PrimitiveTask,
    plan,
    simulate,
)
from relaygraph.coordination.world import DATA_DOMAIN, GOAL, facts_from_observations, merge_facts


def c(fact: str, op: str = "==", value: Any = True) -> Condition:
    return Condition(fact=fact, op=op, value=value)


def prim(name: str, pre=(), eff=None, duration: float = 1.0, priority: int = 0) -> PrimitiveTask:
    return PrimitiveTask(name=name, agent=f"{name}_agent", tools=("profile_dataset",), preconditions=pre,
                         effects=eff or {}, duration_s=duration, priority=priority)


# --- hand-computed cases ---------------------------------------------------------------------


def facts(**over: Any) -> dict[str, Any]:
    observed = {"row_count": 100, "is_clean": False, "has_time_column": True, "has_nulls": True,
                "has_duplicates": True}
    return {**merge_facts(observed, {}), **over}


def test_dirty_data_with_dates_gets_validate_clean_then_time_series():
    p = plan(DATA_DOMAIN, GOAL, facts())
    assert [t.name for t in p.tasks] == ["validate", "clean", "aggregate", "trends", "outliers", "report"]
    assert p.method_names() == ["prepare_analyse_report", "validate_and_clean", "time_series_analysis"]
    assert p.confidence == pytest.approx(0.95 * 0.9 * 0.9)
    assert p.duration_s == pytest.approx(2 + 3 + 2 + 2 + 2 + 3)
    assert [t.agent for t in p.tasks] == ["validator", "cleaner", "analyst", "analyst", "analyst", "reporter"]
    assert p.final_state["reported"] is True
    assert simulate(p, p.initial_state)[1] == []


def test_clean_data_without_dates_skips_preparation_and_trends():
    p = plan(DATA_DOMAIN, GOAL, facts(is_clean=True, has_time_column=False))
    assert [t.name for t in p.tasks] == ["aggregate", "outliers", "report"]
    assert p.method_names() == ["prepare_analyse_report", "already_clean", "cross_section_analysis"]
    assert p.confidence == pytest.approx(0.95 * 1.0 * 0.8)
    assert p.contingencies == []  # no method below the risk threshold (0.8)
    risky = plan(DATA_DOMAIN.with_probabilities({"cross_section_analysis": 0.7}), GOAL,
                 facts(is_clean=True, has_time_column=False))
    (cont,) = risky.contingencies  # the only other way to analyse needs a time column
    assert (cont.task, cont.instead_of, cont.method) == ("analyse", "cross_section_analysis", None)
    assert "has_time_column == True" in cont.reason


def test_scaled_down_run_uses_partitioned_analysis_with_contingency():
    p = plan(DATA_DOMAIN, GOAL, facts(partitions=4))
    assert p.method_names()[-1] == "partitioned_analysis"
    assert p.confidence == pytest.approx(0.95 * 0.9 * 0.85)
    assert p.contingencies == []  # 0.85 and 0.9 are above the risk threshold 0.8


def test_learned_probabilities_change_the_choice_and_add_contingencies():
    learned = DATA_DOMAIN.with_probabilities({"validate_and_clean": 0.5})
    p = plan(learned, GOAL, facts())
    assert p.method_names()[1] == "clean_only"
    assert p.confidence == pytest.approx(0.95 * 0.75 * 0.9)
    (cont,) = p.contingencies
    assert (cont.instead_of, cont.method, cont.tasks) == ("clean_only", "validate_and_clean", ["validate", "clean"])
    assert cont.confidence == pytest.approx(0.5)


def test_replanning_from_a_later_state_plans_only_the_rest():
    p = plan(DATA_DOMAIN, GOAL, facts(is_clean=True, analysed=True))
    assert [t.name for t in p.tasks] == ["report"]
    assert p.confidence == pytest.approx(0.95)


def test_compound_without_applicable_method_fails_the_plan():
    with pytest.raises(PlanningError, match=r"no applicable method for 'prepare'"):
        plan(DATA_DOMAIN.without_methods(["already_clean"]), GOAL, facts(is_clean=True))
    with pytest.raises(PlanningError, match=r"'row_count > 0'|row_count > 0"):
        plan(DATA_DOMAIN, GOAL, facts(row_count=0))


def test_ordering_by_priority_and_as_written():
    domain = Domain(name="o", primitives=(prim("a", priority=1), prim("b", priority=5), prim("x", priority=3)),
                    compounds=(CompoundTask(name="g"),),
                    methods=(Method(name="m", task="g", subtasks=("a", "b", "x"), ordering="priority",
                                    success_probability=1.0),))
    assert [t.name for t in plan(domain, "g", {}).tasks] == ["b", "x", "a"]
    written = domain.with_probabilities({}).model_copy(update={"methods": (
        Method(name="m", task="g", subtasks=("a", "b", "x"), success_probability=1.0),)})
    assert [t.name for t in plan(written, "g", {}).tasks] == ["a", "b", "x"]


def test_ties_go_to_the_shorter_plan_then_declaration_order():
    domain = Domain(name="t", primitives=(prim("slow", duration=5), prim("fast", duration=1), prim("also", duration=1)),
                    compounds=(CompoundTask(name="g"),),
                    methods=(Method(name="m_slow", task="g", subtasks=("slow",), success_probability=0.5),
                             Method(name="m_fast", task="g", subtasks=("fast",), success_probability=0.5),
                             Method(name="m_also", task="g", subtasks=("also",), success_probability=0.5)))
    assert plan(domain, "g", {}).method_names() == ["m_fast"]


def test_domain_is_checked():
    with pytest.raises(ValueError, match="recursive decomposition"):
        Domain(name="r", primitives=(prim("p"),), compounds=(CompoundTask(name="a"), CompoundTask(name="b")),
               methods=(Method(name="m1", task="a", subtasks=("b",), success_probability=1),
                        Method(name="m2", task="b", subtasks=("a",), success_probability=1)))
    with pytest.raises(ValueError, match="unknown subtasks"):
        Domain(name="u", primitives=(), compounds=(CompoundTask(name="a"),),
               methods=(Method(name="m", task="a", subtasks=("nope",), success_probability=1),))
    with pytest.raises(ValueError, match="unique"):
        Domain(name="d", primitives=(prim("a"),), compounds=(CompoundTask(name="a"),), methods=())


def test_mermaid_shows_the_decomposition():
    learned = DATA_DOMAIN.with_probabilities({"validate_and_clean": 0.5})
    text = plan(learned, GOAL, facts(has_time_column=False)).mermaid()
    assert text.startswith("flowchart TD")
    assert "method cross_section_analysis · p=0.80" in text
    assert "1. clean<br/>cleaner: clean_dataset" in text
    assert "2. aggregate<br/>analyst: aggregate" in text
    assert "if clean_only fails: validate_and_clean" in text


def test_facts_come_from_tool_observations():
    profile = {"dataset": "s.csv", "rows": 10, "roles": {"date": "order_date", "metric": "revenue"}}
    validation = {"rows": 10, "nulls": {"region": 2}, "duplicate_rows": 1, "out_of_range": {}, "type_issues": {}}
    got = facts_from_observations(profile, validation)
    assert got == {"dataset": "s.csv", "row_count": 10, "has_nulls": True, "has_duplicates": True,
                   "has_out_of_range": False, "is_clean": False, "has_time_column": True,
                   "date_column": "order_date", "metric_column": "revenue"}
    validation.update(nulls={}, duplicate_rows=0)
    assert facts_from_observations(profile, validation)["is_clean"] is True


# --- properties on small random domains --------------------------------------------------------

FACTS = ("f0", "f1", "f2")


@st.composite
def domains(draw: st.DrawFn) -> tuple[Domain, dict[str, bool]]:
    """Random acyclic domains: compound k only decomposes into primitives and compounds > k."""
    conditions = st.lists(st.builds(Condition, fact=st.sampled_from(FACTS), value=st.booleans()), max_size=2)
    n_prim = draw(st.integers(1, 4))
    primitives = tuple(
        PrimitiveTask(name=f"p{i}", agent="a", tools=("profile_dataset",), preconditions=tuple(draw(conditions)),
                      effects=draw(st.dictionaries(st.sampled_from(FACTS), st.booleans(), max_size=2)),
                      duration_s=draw(st.sampled_from([1.0, 2.0, 3.0])))
        for i in range(n_prim))
    n_comp = draw(st.integers(1, 3))
    compounds = tuple(CompoundTask(name=f"c{k}") for k in range(n_comp))
    methods = []
    for k in range(n_comp):
        children = [p.name for p in primitives] + [f"c{j}" for j in range(k + 1, n_comp)]
        for m in range(draw(st.integers(0 if k else 1, 3))):
            methods.append(Method(
                name=f"m{k}_{m}", task=f"c{k}", preconditions=tuple(draw(conditions)),
                subtasks=tuple(draw(st.lists(st.sampled_from(children), max_size=3))),
                success_probability=draw(st.sampled_from([0.3, 0.5, 0.6, 0.8, 0.9, 1.0]))))
    state = {f: draw(st.booleans()) for f in FACTS}
    return Domain(name="random", primitives=primitives, compounds=compounds, methods=tuple(methods)), state


def brute_force(domain: Domain, todo: list[str], state: dict[str, Any], conf: float = 1.0) -> list[tuple[float, dict]]:
    """Every decomposition, written independently of the planner: (confidence, final state)."""
    if not todo:
        return [(conf, state)]
    head, rest = todo[0], todo[1:]
    primitive = domain.primitive(head)
    if primitive is not None:
        if not all(state.get(p.fact) == p.value for p in primitive.preconditions):
            return []
        return brute_force(domain, rest, {**state, **primitive.effects}, conf)
    out = []
    for m in domain.methods_for(head):
        if all(state.get(p.fact) == p.value for p in m.preconditions):
            out += brute_force(domain, list(m.subtasks) + rest, state, conf * m.success_probability)
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(domains())
def test_best_plan_is_executable_and_no_better_plan_exists(case):
    domain, state = case
    every = brute_force(domain, ["c0"], state)
    try:
        found = plan(domain, "c0", state)
    except PlanningError:
        assert every == [], "the planner missed a plan brute force found"
        return
    assert every, "the planner found a plan brute force says does not exist"
    assert math.isclose(found.confidence, max(conf for conf, _ in every), rel_tol=1e-9)
    assert math.isclose(found.confidence, math.prod(m.success_probability for m in found.methods), rel_tol=1e-9)
    final, problems = simulate(found, state)
    assert problems == []  # every task's preconditions hold when it runs
    assert final == found.final_state
    assert any(math.isclose(conf, found.confidence) and end == final for conf, end in every)
    for cont in found.contingencies:
        assert cont.instead_of != cont.method


@settings(max_examples=60, deadline=None)
@given(domains())
def test_all_plans_match_brute_force(case):
    domain, state = case
    expected = sorted(round(conf, 9) for conf, _ in brute_force(domain, ["c0"], state))
    assert sorted(round(p.confidence, 9) for p in htn.all_plans(domain, "c0", state)) == expected
