"""The handoff graph offline, read as a user reads it: triage picks the specialist the task asks
for, every handoff the offline policy proposes is accepted, and the answer is about the task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from langgraph.checkpoint.memory import InMemorySaver


def weather(data_dir: Path) -> str:
    """A non-sales file: daily readings per station (no customers, no amounts)."""
    rng = np.random.default_rng(7)
    days = pd.date_range("2024-01-01", periods=300, freq="D")
    data_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"date": days, "station": rng.choice(["Oslo", "Bergen", "Tromso"], len(days)),
                  "temperature_c": rng.normal(5, 8, len(days)).round(1),
                  "rainfall_mm": rng.gamma(1, 3, len(days)).round(1)}).to_csv(data_dir / "weather.csv", index=False)
    return "weather.csv"


def run(task: str, data: str | None, thread: str) -> dict[str, Any]:
    from relaygraph.graphs.handoff import build_graph

    graph = build_graph().compile(checkpointer=InMemorySaver())
    state = graph.invoke({"task": task, **({"data": data} if data else {})},
                         {"configurable": {"thread_id": thread}})
    return state


def refused(state: dict[str, Any]) -> list[str]:
    """Every handoff that did not go through: tool-level refusals and rolled-back transfers."""
    # smolagents keeps no tool name on a step whose tool raised: the error text names it
    tool_refusals = [f"{s['agent']}: {s['error']}" for s in state["steps"]
                     if s.get("error") and ("'handoff_" in s["error"] or str(s.get("tool")).startswith("handoff_"))]
    history = state["result"]["handoffs"]["history"]
    return tool_refusals + [f"{h['from']}→{h['to']}: {h['status']}" for h in history if h["status"] != "accepted"]


@pytest.mark.parametrize(("task", "on_weather", "specialist"), [
    ("What is the monthly temperature trend?", True, "analytics"),
    ("Find outliers in the readings.", True, "analytics"),
    ("Show rainfall by station.", True, "analytics"),
    ("Validate and clean the file.", True, "quality"),
    ("Which customers are our champions? Segment them.", False, "customers"),
    ("Write a report.", False, "reporting"),
])
def test_triage_hands_the_task_to_the_specialist_it_asks_for(isolated_env, task, on_weather, specialist) -> None:
    data = weather(isolated_env["data"]) if on_weather else None
    state = run(task, data, "route")
    handoffs = state["result"]["handoffs"]
    assert handoffs["history"][0]["to"] == specialist, handoffs
    assert handoffs["route"] == f"triage → {specialist}"  # one part asked for: no detours
    assert specialist in handoffs["history"][0]["reason"]
    assert refused(state) == []


@pytest.mark.parametrize("on_weather", [False, True])
def test_an_offline_run_proposes_no_handoff_that_is_refused(isolated_env, on_weather) -> None:
    from relaygraph.graphs.handoff import DEFAULT_TASK

    data = weather(isolated_env["data"]) if on_weather else None
    state = run(DEFAULT_TASK, data, "all-parts")
    assert refused(state) == []
    assert state["result"]["handoffs"]["route"] == "triage → quality → analytics → customers → reporting"


def test_the_answer_covers_each_part_the_task_asked_for_in_route_order() -> None:
    from relaygraph.graphs.handoff import DEFAULT_TASK

    answer = run(DEFAULT_TASK, None, "answer")["result"]["answer"]
    parts = [answer.index(f"{agent}: ") for agent in ("quality", "analytics", "customers", "reporting")]
    assert parts == sorted(parts)
    for tool in ("validate_dataset", "aggregate", "detect_trends", "segment_customers", "write_report"):
        assert f"{tool}: " in answer
    assert "triage:" not in answer and "failed" not in answer


def test_the_answer_is_about_the_column_the_task_names(isolated_env) -> None:
    state = run("What is the monthly temperature trend?", weather(isolated_env["data"]), "column")
    answer = state["result"]["answer"]
    trend = next(line for line in answer.splitlines() if line.startswith("detect_trends:"))
    assert "temperature_c" in trend and "rainfall" not in trend
    by_station = run("Show rainfall by station.", "weather.csv", "group")["result"]["answer"]
    assert by_station.splitlines()[0].startswith("aggregate: rainfall_mm") and "by station" in by_station
