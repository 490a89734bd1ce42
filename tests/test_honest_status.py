"""Honest statuses (#10 §2), on every graph langgraph.json serves: a tool that fails — broken on
purpose, or given data it legitimately cannot work on — leaves its agent, branch and run
``failed`` or ``partial``, listed in ``result.errors``, with a lower confidence, and the CLI shows
no ✓ for the failed part (nor "4/4 branches succeeded").

These run every served graph end to end through the CLI on the offline provider, on purpose:
the policy calls the tools each graph gives its agents, so a broken tool is reached in every
graph without a per-graph script (the per-graph tests script their agents with ``cast``).
Their names say so (``_offline_policy``)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import REPO
from typer.testing import CliRunner

GRAPHS = sorted(json.loads((REPO / "langgraph.json").read_text())["graphs"])

#: Per graph: the tool to break (a built-in name, or "module:Class" for a graph's own tool) and
#: the ``--param``s that make the run use it.
BROKEN: dict[str, tuple[str, list[str]]] = {
    "sequential": ("detect_trends", []),
    "parallel": ("score_records", []),
    "handoff": ("segment_customers", []),
    "hierarchical": ("detect_trends", []),
    "consensus": ("aggregate", []),
    "auction": ("validate_dataset", []),
    "negotiation": ("relaygraph.nodes.negotiation:ProposeThresholdTool", []),
    # planned plans around a failed analysis (a documented recovery, see result.replanning): its
    # report is the artifact nothing replaces
    "planned": ("write_report", []),
}


def test_the_matrix_covers_every_served_graph() -> None:
    assert sorted(BROKEN) == GRAPHS


def break_tool(monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    """Make one tool raise on every call, keeping its signature (smolagents checks it)."""
    import importlib

    from relaygraph.tools import TOOLS

    if ":" in target:
        module, name = target.split(":")
        cls = getattr(importlib.import_module(module), name)
    else:
        cls = TOOLS[target]
    original = cls.forward

    @functools.wraps(original)
    def broken(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise OSError(f"{cls.name}: the disk is full (injected)")

    monkeypatch.setattr(cls, "forward", broken)


def run_cli(*args: str) -> tuple[str, dict[str, Any]]:
    """The run twice on the CLI: as a person reads it, and as JSON (the same thread id twice
    would be refused, so each gets its own)."""
    from relaygraph.cli.main import app

    cli = CliRunner()
    text = cli.invoke(app, ["run", *args])
    as_json = cli.invoke(app, ["run", *args, "--json"])
    assert as_json.exit_code in (0, 1), as_json.output
    payload = as_json.stdout[as_json.stdout.index("{"):]
    return text.output, json.loads(payload)


def assert_honest(graph: str, output: str, state: dict[str, Any]) -> None:
    result = state["result"]
    assert result["status"] in ("failed", "partial"), (result["status"], result["answer"][:500])
    assert result["errors"], "a failed part must be listed in result.errors"
    broken_agents = {e["agent"] for e in result["errors"]}
    # confidence reflects the failed steps: every agent that failed or fell short says so
    for agent in broken_agents:
        summary = result["agents"].get(agent) or {}
        if summary.get("confidence") is not None:
            assert summary["confidence"] < 0.7, (agent, summary)
    assert f"Result ({result['status']})" in output
    lines = output.splitlines()
    for error in result["errors"]:
        node = error["node"]
        assert not [ln for ln in lines if ln.startswith(f"✓ {node} ")], (node, output)
    assert not [ln for ln in lines if ln.startswith("✓ finalize") or ln.startswith("✓ result")], output
    if graph == "parallel":
        assert "4/4 branches succeeded" not in output and "4/4 branches succeeded" not in result["answer"]


@pytest.mark.parametrize("graph", GRAPHS)
def test_a_tool_that_fails_makes_the_run_failed_or_partial_never_completed_offline_policy(
        graph: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tool, params = BROKEN[graph]
    break_tool(monkeypatch, tool)
    output, state = run_cli(graph, *[a for p in params for a in ("--param", p)])
    assert_honest(graph, output, state)
    reasons = [e["reason"] for e in state["result"]["errors"]]
    if graph == "auction":  # every bidder failed the task: the market records it, naming the tool
        assert any(f"({tool}) no_eligible_agent" in r for r in reasons), reasons
    else:
        assert any("the disk is full (injected)" in r for r in reasons), reasons


def readings(data_dir: Path) -> Path:
    """Sensor readings: no customers, no amounts — segmentation cannot legitimately run on them."""
    rng = np.random.default_rng(3)
    days = pd.date_range("2024-01-01", periods=240, freq="D")
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "readings.csv"
    pd.DataFrame({"date": days, "sensor": rng.choice(["s1", "s2", "s3"], len(days)),
                  "temperature_c": rng.normal(20, 4, len(days)).round(2)}).to_csv(path, index=False)
    return path


def undated(data_dir: Path) -> Path:
    """Readings with no time column: trend detection cannot legitimately run on them."""
    path = readings(data_dir)
    pd.read_csv(path).drop(columns=["date"]).to_csv(path.with_name("undated.csv"), index=False)
    return path.with_name("undated.csv")


#: graph -> (the data, the task, what its errors must name, the statuses that are honest)
CANNOT_RUN: dict[str, tuple[Any, str | None, str, tuple[str, ...]]] = {
    "parallel": (readings, "Clean, then validate, profile, segment the customers and score.",
                 "segment_customers", ("partial",)),
    "handoff": (readings, "Segment the customers.", "segment_customers", ("partial",)),
    "sequential": (undated, None, "detect_trends", ("partial",)),
    "hierarchical": (readings, None, "segment_customers", ("partial",)),
    "auction": (readings, None, "segment_customers", ("partial", "failed")),
    "consensus": (readings, None, "needs column(s) region, revenue", ("refused",)),  # exit 2 up front
    "negotiation": (readings, None, "Unknown column 'quantity'", ("refused",)),  # exit 2 up front
}


def test_the_cannot_run_matrix_covers_every_served_graph_but_planned() -> None:
    # planned plans around what the data lacks (no dates: no trends task), by design — see README
    assert sorted(CANNOT_RUN) == [g for g in GRAPHS if g != "planned"]


@pytest.mark.parametrize("graph", sorted(CANNOT_RUN))
def test_data_a_tool_cannot_run_on_makes_the_run_partial_or_failed_offline_policy(isolated_env, graph: str) -> None:
    make, task, tool, honest = CANNOT_RUN[graph]
    if honest == ("refused",):  # the CLI refuses it before any work: exit 2, what is missing named
        from relaygraph.cli.main import app

        refused = CliRunner().invoke(app, ["run", graph, "--data", str(make(isolated_env["data"]))])
        assert refused.exit_code == 2 and tool in refused.output, refused.output
        return
    output, state = run_cli(graph, "--data", str(make(isolated_env["data"])), *(["--task", task] if task else []))
    assert_honest(graph, output, state)
    assert state["result"]["status"] in honest
    reasons = " ".join(e["reason"] for e in state["result"]["errors"])
    assert tool in reasons, reasons
