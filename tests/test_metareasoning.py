"""Meta-reasoning over agent traces: hand cases, properties, the live guard and result.agents."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from relaygraph.coordination.metareasoning import (
    analyze_trace,
    circularity,
    confidence_trend,
    loop_guard,
    progress,
)


def step(n: int, tool: str | None, args: dict | None = None, thought: str = "", error: str | None = None,
         confidence: float = 0.9) -> dict:
    return {"step": n, "tool": tool, "arguments": args or {}, "thought": thought or f"thinking {n} {tool}",
            "error": error, "confidence": confidence}


def test_two_actions_in_four_of_five_steps_is_high():
    trace = [step(1, "a", {"x": 1}), step(2, "b"), step(3, "a", {"x": 1}), step(4, "c"), step(5, "b")]
    got = circularity(trace)
    assert got.severity == "high"
    assert "4 of 5 consecutive steps repeat at most 2 actions (a, b)" in got.reason
    assert circularity(trace[:4]).severity == "none"  # a, b, a, c: the top two make only 3


def test_the_same_call_three_times_is_high_with_the_old_message():
    trace = [step(1, "v", {"d": "s"}), step(2, "p"), step(3, "q"), step(4, "v", {"d": "s"}), step(5, "r"),
             step(6, "v", {"d": "s"})]
    assert circularity(trace).reason == "loop detected: v called 3 times with the same arguments"


def test_similar_thoughts_without_moving_on_is_medium():
    same = "I should look at the revenue column again to be sure."
    trace = [step(1, "a", thought=same), step(2, "a", {"y": 2}, thought=same + "!")]
    assert circularity(trace).severity == "medium"
    moving = [step(1, "a", thought=same), step(2, "b", thought=same + "!")]
    assert circularity(moving).severity == "none"  # templated thoughts, different successful tools


def test_progress_action_choice_and_trend_by_hand():
    trace = [step(1, "aggregate", confidence=0.9), step(2, "detect_trends", error="boom", confidence=0.2),
             step(3, "detect_trends", {"period": "week"}, confidence=0.8)]
    assert progress(trace, ["aggregate", "detect_trends", "detect_outliers"]) == pytest.approx(2 / 3, abs=1e-4)
    analysis = analyze_trace(trace + [step(4, "final_answer", confidence=0.85)],
                             ["aggregate", "detect_trends", "detect_outliers"])
    assert analysis.progress == 1.0
    assert analysis.action_choice == pytest.approx(2 / 3, abs=1e-4)
    assert analysis.confidence_trend == pytest.approx(0.5 + ((0.8 + 0.85) / 2 - (0.9 + 0.2) / 2), abs=1e-4)
    assert "1 step(s) errored" in analysis.notes
    assert confidence_trend([step(1, "a")]) == 0.5
    assert confidence_trend([]) == 0.5


steps_strategy = st.lists(
    st.builds(lambda n, t, a, e, c: step(n, t, {"a": a}, thought=f"t{n}{t}{a}", error=e, confidence=c),
              st.integers(1, 20), st.sampled_from(["a", "b", "c", "final_answer", None]),
              st.integers(0, 2), st.sampled_from([None, "err"]), st.floats(0, 1)),
    max_size=12)


@settings(max_examples=200, deadline=None)
@given(steps_strategy)
def test_measures_stay_in_range_and_repeats_are_always_caught(trace):
    analysis = analyze_trace(trace)
    for value in (analysis.progress, analysis.action_choice, analysis.confidence_trend):
        assert 0.0 <= value <= 1.0
    if len(trace) < 2:
        assert analysis.confidence_trend == 0.5
    keys = [(s["tool"], s["arguments"]["a"]) for s in trace if s["tool"] not in (None, "final_answer")]
    if any(keys.count(k) >= 3 for k in keys):
        assert analysis.circular.severity == "high"


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=12, unique=True))
def test_distinct_successful_actions_are_never_circular(tools):
    trace = [step(i, "tool", {"name": t}, thought=f"{i}: {t * 3} {i * 7919}") for i, t in enumerate(tools)]
    assert circularity(trace).severity == "none"
    assert loop_guard(trace) is None


# --- the live guard and result.agents (a real agent node with the scripted model) -----------


def test_live_guard_stops_a_ping_pong_agent(script, invoke_config, sample_path):
    from relaygraph.nodes.agent import AgentRunError, AgentSpec, make_agent_node

    spec = AgentSpec(name="pinger", role="tester", instructions="Validate.",
                     tools=("validate_dataset", "profile_dataset"), max_steps=10)
    ds = sample_path.name
    # A, B, A, B: no call three times (the old rule would let it run on), but 2 actions in 4 steps.
    script.play(("call", "validate_dataset", {"dataset": ds}), ("call", "profile_dataset", {"dataset": ds}),
                ("call", "validate_dataset", {"dataset": ds}), ("call", "profile_dataset", {"dataset": ds}),
                ("call", "validate_dataset", {"dataset": ds, "partition": "1/2"}), ("final", "never reached"))
    with pytest.raises(AgentRunError, match=r"circular reasoning: 4 of 4 consecutive steps repeat at most 2 "
                                            r"actions \(profile_dataset, validate_dataset\)") as info:
        make_agent_node(spec)({"task": "t"}, invoke_config)
    assert len(info.value.record["steps"]) == 4  # stopped right after the fourth call, not at max_steps


def test_result_agents_carry_the_analysis(script, invoke_config, sample_path):
    from relaygraph.graphs.sequential import build_graph

    ds = sample_path.name
    script.play(("call", "profile_dataset", {"dataset": ds}), ("final", "profiled"),
                ("call", "validate_dataset", {"dataset": ds}), ("call", "clean_dataset", {"dataset": ds}),
                ("final", "cleaned"),
                ("call", "aggregate", {"dataset": "sales_orders_clean.parquet"}), ("final", "analysed"),
                ("call", "write_report", {"dataset": "sales_orders_clean.parquet"}), ("final", "reported"))
    result = build_graph().compile().invoke({"task": "report"}, invoke_config)["result"]
    clean = result["agents"]["clean"]["reasoning"]
    assert clean["circular"] == {"severity": "none", "reason": ""}
    assert clean["progress"] == 1.0 and clean["action_choice"] == 1.0 and clean["attempts"] == 1
    assert set(result["agents"]) == {"extract", "clean", "analyze", "report"}
