"""The sequential workflow end to end: real tools, real numbers, checkpointed state."""

from __future__ import annotations

from pathlib import Path

from relaygraph.cli import runner
from relaygraph.config.checkpointing import open_checkpointer
from relaygraph.nodes.state import AgentStep
from relaygraph.tools.sample import DEFECTS, generate


def expected_clean_rows() -> int:
    frame = generate().drop_duplicates()
    return int((frame["quantity"] >= 0).sum())


def test_offline_smoke_python_invoke_runs_all_four_agents_and_returns_the_result_contract(invoke_config) -> None:
    """Smoke test of the offline provider (the README's first command): its rule-based policy
    drives the whole graph. The graph's own behaviour is tested with scripted agents below."""
    from relaygraph.graphs.sequential import graph

    state = graph.invoke({"task": "Profile, validate, clean, analyse and report."}, invoke_config)
    result = state["result"]
    assert result["status"] == "completed"
    assert "no LLM" in result["provider"]
    assert list(result["agents"]) == ["extract", "clean", "analyze", "report"]
    for step in state["steps"]:
        AgentStep.model_validate(step)
    tools_used = [s["tool"] for s in state["steps"]]
    for tool in ("profile_dataset", "validate_dataset", "clean_dataset", "aggregate",
                 "detect_trends", "detect_outliers", "write_report"):
        assert tool in tools_used
    assert [p["node"] for p in state["progress"]] == ["extract", "clean", "analyze", "report"]


def test_the_cleaned_file_reaches_the_later_agents_and_the_report_holds_its_numbers(cast, invoke_config) -> None:
    from relaygraph.graphs.sequential import graph

    def on_given(tool: str):  # the agent works on the file the graph gave it
        return lambda brief: ("call", tool, {"dataset": brief.context["dataset"]})

    def echo(brief):
        return ("final", "\n".join(f"{c.tool}: {c.summary}" for c in brief.calls.values()))

    cast.scripts.update({
        "data extractor": [on_given("profile_dataset"), echo],
        "data cleaner": [on_given("validate_dataset"), on_given("clean_dataset"), echo],
        "data analyst": [on_given("aggregate"), echo],
        "report writer": [on_given("write_report"), echo],
    })
    state = graph.invoke({"task": "Validate, clean, analyse and report."}, invoke_config)
    given = {role: [b.context["dataset"] for b in briefs] for role, briefs in cast.briefs.items()}
    assert given == {"data extractor": ["sample_sales.csv"], "data cleaner": ["sample_sales.csv"],
                     "data analyst": ["sample_sales_clean.parquet"], "report writer": ["sample_sales_clean.parquet"]}
    assert state["context"]["dataset"] == "sample_sales_clean.parquet"
    assert f"{DEFECTS['duplicate_rows']} duplicate rows" in state["answers"]["clean"]
    report = Path(state["result"]["artifacts"]["report"]).read_text()
    assert f"{expected_clean_rows():,} rows" in report
    assert state["result"]["answer"] == state["answers"]["report"]  # answer_from="report"
    assert list(state["result"]["agents"]) == ["extract", "clean", "analyze", "report"]


def test_runs_are_checkpointed_and_failures_are_recorded_in_state(script) -> None:
    from relaygraph.graphs.sequential import build_graph

    script.play(("call", "profile_dataset", {"dataset": "sample_sales.csv"}), ("final", "profiled"),
                *[ConnectionError("model server down")] * 2)  # RELAYGRAPH_MAX_RETRIES: 2 attempts
    config = runner.run_config("t-fail", "sequential")
    with open_checkpointer() as saver:
        graph = runner.compile_graph(build_graph(), saver, "sequential")
        outcome = runner.execute(graph, {"task": "go"}, config)
        state = graph.get_state(config)
        assert outcome.values == state.values
        assert state.values["status"] == state.values["result"]["status"] == "failed"
        (error,) = state.values["errors"]
        assert (error["node"], error["attempt"], error["max_attempts"]) == ("clean", 2, 2)
        assert error["reason"].startswith("model error: ConnectionError: model server down")
        assert state.values["result"]["errors"] == [error]
        assert state.values["answers"] == {"extract": "profiled"}  # analyze and report never ran
        assert [(p["node"], p["status"]) for p in state.values["progress"]] == [
            ("extract", "completed"), ("clean", "failed")]
        assert state.next == ()  # the graph finished: the failure took it to finalize
        retry = runner.retry_point(graph, config)
        assert retry is not None and graph.get_state(retry).next == ("clean",)
        assert runner.thread_graph_name(saver, "t-fail") == "sequential"
        history = list(graph.get_state_history(config))
        assert [h.metadata["step"] for h in history] == [3, 2, 1, 0, -1]  # input, start, extract, clean, finalize
    assert not script.actions


def test_resume_after_a_failure_continues_without_rerunning_finished_agents(script) -> None:
    from relaygraph.graphs.sequential import build_graph

    script.play(("final", "profiled"), *[ConnectionError("down")] * 2)
    config = runner.run_config("t-resume", "sequential")
    with open_checkpointer() as saver:
        graph = runner.compile_graph(build_graph(), saver, "sequential")
        assert runner.execute(graph, {"task": "go"}, config).values["result"]["status"] == "failed"
        script.play(("final", "cleaned"), ("final", "analysed"), ("final", "reported"))
        outcome = runner.execute(graph, None, runner.retry_point(graph, config))
    assert outcome.values["answers"] == {"extract": "profiled", "clean": "cleaned",
                                         "analyze": "analysed", "report": "reported"}
    assert outcome.values["result"]["status"] == "completed"
    assert outcome.values["result"]["errors"] == []
    assert not script.actions
