"""One failure path inside the graph: invoke, the CLI and langgraph dev record the same failure,
after exactly the run's own number of attempts (``configurable.max_retries``)."""

from __future__ import annotations

import json

import httpx
import pytest
from relaygraph.nodes.contracts import AgentFailure, RunResult
from relaygraph.nodes.failures import agent_retry_policy, attempts_ceiling
from typer.testing import CliRunner

PROFILE = ("call", "profile_dataset", {"dataset": "sample_sales.csv"})


def sequential_graph():
    from langgraph.checkpoint.memory import InMemorySaver
    from relaygraph.graphs.sequential import build_graph

    return build_graph().compile(checkpointer=InMemorySaver())


@pytest.mark.parametrize("budget", [1, 3])
def test_plain_invoke_records_the_failure_after_the_runs_own_number_of_attempts(script, invoke_config, budget):
    script.play(PROFILE, ("final", "profiled"), *[ConnectionError("server down")] * budget, ("final", "unused"))
    invoke_config["configurable"]["max_retries"] = budget
    state = sequential_graph().invoke({"task": "go"}, invoke_config)
    result = RunResult.model_validate(state["result"])
    assert result.status == state["status"] == "failed"
    assert result.errors == [AgentFailure(agent="clean", node="clean", attempt=budget, max_attempts=budget,
                                          reason="model error: ConnectionError: server down")]
    assert script.actions == [("final", "unused")]  # exactly `budget` attempts of clean, no more
    assert set(state["answers"]) == {"extract"} and state["progress"][-1]["status"] == "failed"


def test_a_tool_that_keeps_failing_exhausts_the_agent_and_is_recorded_with_its_steps(script, invoke_config):
    bad = ("call", "validate_dataset", {"dataset": "missing.csv"})  # the cleaner's tool fails every time
    script.play(PROFILE, ("final", "profiled"), bad, bad, ("final", "asked for after max steps"))
    invoke_config["configurable"] |= {"max_retries": 1, "max_steps": 2}
    state = sequential_graph().invoke({"task": "go"}, invoke_config)
    (error,) = state["result"]["errors"]
    assert (error["node"], error["reason"]) == ("clean", "max_steps (2) exhausted without a final answer")
    first, second, summary = [s for s in state["steps"] if s["agent"] == "clean"]  # + the forced summary
    assert all("missing.csv" in s["error"] for s in (first, second)) and summary["error"] == "Reached max steps."
    assert state["result"]["agents"]["clean"]["errors"] == 3


def test_a_failed_branch_retries_at_the_runs_budget_and_the_others_stand(cast, invoke_config):
    from langgraph.checkpoint.memory import InMemorySaver
    from relaygraph.graphs.parallel import build_graph

    cast.scripts["data cleaner"] = [("call", "clean_dataset", {"dataset": "sample_sales.csv"}), ("final", "cleaned")]
    cast.scripts["data profiler and enricher"] = [("final", "profiled")]
    cast.failures["record scorer"] = TimeoutError("scorer timed out")
    invoke_config["configurable"] |= {"max_retries": 3, "specialists": "profiler,scorer"}
    state = build_graph().compile(checkpointer=InMemorySaver()).invoke({"task": "Clean, profile, score."},
                                                                       invoke_config)
    result = state["result"]
    assert cast.calls["record scorer"] == 3
    assert result["status"] == "partial" and list(result["failed"]) == ["scorer"]
    assert result["errors"][0] | {"reason": "-"} == {"agent": "scorer", "node": "scorer", "branch": "scorer",
                                                     "attempt": 3, "max_attempts": 3, "reason": "-"}
    assert result["parallel"]["branches"]["profiler"]["status"] == "completed"


def test_a_handoff_agent_that_fails_for_good_ends_the_run_with_the_failure_recorded(cast, invoke_config):
    from langgraph.checkpoint.memory import InMemorySaver
    from relaygraph.graphs.handoff import DEFAULT_TASK, build_graph

    cast.scripts["triage agent"] = [("call", "handoff_quality", {"reason": "check it first"}), ("final", "routed")]
    cast.failures["data quality specialist"] = ConnectionError("quality model unreachable")
    invoke_config["configurable"]["max_retries"] = 1
    state = build_graph().compile(checkpointer=InMemorySaver()).invoke({"task": DEFAULT_TASK}, invoke_config)
    result = state["result"]
    assert cast.calls["data quality specialist"] == 1
    assert [(e["node"], e["attempt"]) for e in result["errors"]] == [("quality", 1)]
    assert "ConnectionError: quality model unreachable" in result["errors"][0]["reason"]
    assert result["status"] == "partial" and "triage" in state["answers"]  # triage's hand-off stands
    assert result["handoffs"]["route"] == "triage → quality"


def test_the_graphs_retry_policy_allows_every_budget_a_run_may_ask_for() -> None:
    from pydantic import ValidationError
    from relaygraph.config.settings import get_settings

    assert agent_retry_policy().max_attempts == attempts_ceiling() == get_settings(max_retries=attempts_ceiling()).max_retries
    with pytest.raises(ValidationError):
        get_settings(max_retries=attempts_ceiling() + 1)


def test_cli_run_reports_the_graphs_failure_and_resume_retries_the_failed_agent(script) -> None:
    from relaygraph.cli.main import app

    cli = CliRunner()
    script.play(PROFILE, ("final", "profiled"), *[ConnectionError("server down")] * 2)
    failed = cli.invoke(app, ["run", "sequential", "--thread-id", "tf", "--json"])
    assert failed.exit_code == 1, failed.output
    state = json.loads(failed.stdout)
    assert state["result"]["status"] == "failed" and state["errors"][0]["node"] == "clean"
    script.play(("final", "cleaned"), ("final", "analysed"), ("final", "reported"))
    resumed = cli.invoke(app, ["resume", "tf", "--json"])
    assert resumed.exit_code == 0, resumed.output
    result = json.loads(resumed.stdout)["result"]
    assert result["status"] == "completed" and result["errors"] == []
    assert [a for a in result["agents"]] == ["extract", "clean", "analyze", "report"]
    assert not script.actions


@pytest.mark.slow
def test_langgraph_dev_records_an_agents_failure_in_the_threads_state(langgraph_dev: str) -> None:
    """A provider the server cannot build (openai without a key) fails the first agent, in state."""
    with httpx.Client(base_url=langgraph_dev, timeout=120) as client:
        thread = client.post("/threads", json={}).raise_for_status().json()["thread_id"]
        state = client.post(f"/threads/{thread}/runs/wait", json={
            "assistant_id": "sequential", "input": {"task": "go"},
            "config": {"configurable": {"model": "openai", "max_retries": 1}},
        }).raise_for_status().json()
        stored = client.get(f"/threads/{thread}/state").raise_for_status().json()["values"]
    assert state["result"]["status"] == "failed", state
    (error,) = state["result"]["errors"]
    assert error["node"] == "extract" and error["reason"].startswith("ProviderError: Provider 'openai' needs")
    assert stored["errors"] == state["errors"] and stored["status"] == "failed"
