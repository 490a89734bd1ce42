"""The planned graph: HTN plans run by agents, failure classes and their policies, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import REPO, cli_here, num, table_rows
from relaygraph.coordination.replanning import classify, parse_injections

FULL = ["validate", "clean", "aggregate", "trends", "outliers", "report"]


def run(config: dict[str, Any], **options: Any) -> dict[str, Any]:
    from relaygraph.config.checkpointing import open_checkpointer
    from relaygraph.graphs.planned import build_graph

    config = {**config, "configurable": {**config["configurable"], "retry_backoff_s": 0, **options},
              "recursion_limit": 200}
    data = config["configurable"].pop("data_file", None)
    with open_checkpointer() as saver:
        graph = build_graph().compile(checkpointer=saver)
        state = graph.invoke({"task": "Plan a cleaned, analysed report.", "data": data}, config)
        assert graph.get_state(config).values["plan"] == state["plan"]  # the plan is checkpointed
    return state


def test_plan_runs_to_a_report_with_agents_and_reasoning_smoke_offline_policy(invoke_config, sample_path):
    """The offline provider end to end (the demo): plan, agents, report, critique."""
    state = run(invoke_config)
    result = state["result"]
    assert result["status"] == "completed"
    assert result["plan"]["tasks"] == FULL == result["plan"]["completed"]
    assert result["plan"]["methods"] == ["prepare_analyse_report", "validate_and_clean", "time_series_analysis"]
    assert result["plan"]["confidence"] == pytest.approx(0.95 * 0.9 * 0.9)
    assert result["replanning"] == []
    assert Path(result["artifacts"]["report"]).is_file()
    assert set(result["agents"]) == {"validator", "cleaner", "analyst", "reporter", "critic"}
    assert result["critique"] == [{"round": 1, "discrepancies": [], "clean": True, "revised": False}]
    assert all(a["reasoning"]["circular"]["severity"] == "none" for a in result["agents"].values())
    # world facts were observed from the data: the sample has known duplicates and a date column
    assert state["plans"][0]["initial_state"]["has_duplicates"] is True
    assert state["plans"][0]["initial_state"]["has_time_column"] is True
    assert state["plans"][0]["initial_state"]["row_count"] == 3048
    analysed = [s["tool"] for s in state["steps"] if s["agent"] == "analyst" and s["tool"] != "final_answer"]
    assert analysed == ["aggregate", "detect_trends", "detect_outliers"]


CASES = {
    # injection: (policy words, methods of the plan that finished, tasks completed in order)
    "aggregate:transient": ("retry 1 of 3", ["prepare_analyse_report", "validate_and_clean", "time_series_analysis"],
                            FULL),
    "aggregate:resource": ("scale down: 1 → 2 partitions", ["prepare_analyse_report", "already_clean",
                                                             "partitioned_analysis"],
                           ["validate", "clean", "aggregate", "outliers", "report"]),
    "aggregate:data_quality": ("add validation and cleaning tasks", ["prepare_analyse_report", "validate_and_clean",
                                                                     "time_series_analysis"],
                               ["validate", "clean", "validate", "clean", "aggregate", "trends", "outliers", "report"]),
    # trends already used order_date: mapping the role to it again would change nothing, so another method
    "trends:schema": ("adapt (another method): no column mapping can help: task 'trends' already used the "
                      "date column 'order_date'; replan without 'time_series_analysis'",
                      ["prepare_analyse_report", "already_clean", "cross_section_analysis"],
                      ["validate", "clean", "aggregate", "outliers", "report"]),
    "aggregate:dependency": ("re-run the producer 'clean'", ["prepare_analyse_report", "validate_and_clean",
                                                            "time_series_analysis"],  # validate of the source kept
                             ["validate", "clean", "clean", "aggregate", "trends", "outliers", "report"]),
    "trends:unknown": ("fallback: replan without method 'time_series_analysis'",
                       ["prepare_analyse_report", "already_clean", "cross_section_analysis"],
                       ["validate", "clean", "aggregate", "outliers", "report"]),  # aggregate kept, not redone
}


#: failures the replan plans around without a task of the first plan: (task, its artifact, its tool)
DROPS = {"aggregate:resource": ("trends", "trends_found", "detect_trends"),
         "trends:schema": ("trends", "trends_found", "detect_trends"),
         "trends:unknown": ("trends", "trends_found", "detect_trends")}


def failure_scripts(fail: str) -> dict[str, list[Any]]:
    """Who the run of ``fail`` asks to work, in order: the first plan's agents, less the work a
    replan drops and plus the work its policy runs again. Each injection fails its task before
    the agent starts, so the failed attempt asks nobody. The strict cast fails the test when the
    graph asks anyone else, or anyone more or less often."""
    scripts = whole_plan()
    if fail == "aggregate:resource":  # scaled down: aggregate and outliers once per partition, no trends
        del scripts["analyst"]
        scripts.update({f"analyst@{k}/2": [*agent("aggregate"), *agent("detect_outliers")] for k in (1, 2)})
        scripts[CRITIC] = list(CRITIC_CALLS)
    if fail == "aggregate:data_quality":  # validation and cleaning added: each runs again, on the cleaned data
        scripts["validator"] *= 2
        scripts["cleaner"] *= 2
    if fail == "aggregate:dependency":  # the producer re-run; the source's validation kept
        scripts["cleaner"] *= 2
    if fail in ("trends:schema", "trends:unknown"):  # replanned without trends; aggregate kept, not redone
        scripts = whole_plan(analyst=[*agent("aggregate"), *agent("detect_outliers")])
    return scripts


@pytest.mark.parametrize("fail", sorted(CASES))
def test_each_failure_class_leads_to_its_policy_and_a_correct_report(fail, cast, invoke_config, sample_path):
    cast.scripts.update(failure_scripts(fail))
    policy, methods, completed = CASES[fail]
    state = run(invoke_config, fail=fail)
    result = state["result"]
    (entry,) = result["replanning"]
    dropped = DROPS.get(fail)
    if dropped:  # planned around the failure without work the first plan had: partial, listed in errors
        assert result["status"] == "partial", result.get("reason")
        (error,) = result["errors"]
        task, artifact, tool = dropped
        assert (error["node"], error["failure_class"]) == (fail.split(":")[0], fail.split(":")[1])
        assert error["missing"] == [{"task": task, "tools": [tool], "artifacts": [artifact]}]
        assert f"replanned without {task}: the report has no {artifact} ({tool})" in error["reason"]
        assert result["reason"] == f"replanned around {entry['task']} ({entry['failure_class']}), without {task}"
    else:  # recovered: the same artifacts by a retry or another way, and the recovery is shown
        assert result["status"] == "completed", result.get("reason")
        assert result["errors"] == []
    assert entry["failure_class"] == fail.split(":")[1] and entry["injected"] is True
    assert policy in entry["policy"]
    kept = {"trends:schema": ["aggregate"], "trends:unknown": ["aggregate"], "aggregate:dependency": ["validate"]}
    assert entry.get("kept", []) == kept.get(fail, [])  # finished work whose artifacts still hold is not redone
    # a contingency is a prepared alternative: a risky method with none is not listed as one
    assert all(c["method"] and c["confidence"] > 0 for c in result["plan"]["contingencies"])
    assert result["plan"]["methods"] == methods
    assert result["plan"]["completed"] == completed
    if entry["action"] == "replan":
        assert entry["accepted"] is True and entry["new_confidence"] > 0.6
        assert entry["new_methods"] == methods
    report = Path(result["artifacts"]["report"]).read_text()
    frame = pd.read_parquet(Path(state["context"]["dataset"]) if Path(state["context"]["dataset"]).is_absolute()
                            else sample_path.parent.parent / "out" / invoke_config["configurable"]["thread_id"]
                            / state["context"]["dataset"])
    assert f"{len(frame):,}" in report  # the report is about the cleaned data the run ended with
    # the report has a section for each analysis the executed plan did, and only for those
    assert ("## Trend" in report) == ("trends" in completed)
    assert ("Not in this report: trend" in report) == ("trends" not in completed)
    assert "## Outliers" in report and " by " in report.split("## Outliers")[0]
    if fail == "aggregate:resource":
        partitions = [s["node"] for s in state["steps"] if s["agent"] == "analyst" and s["tool"] == "aggregate"]
        assert partitions == ["aggregate#2/1/2", "aggregate#2/2/2"]  # scaled down: one run per partition


def prepare(cast: Any, runs: int = 1) -> None:
    """The validator and the cleaner, scripted: each runs its one tool on the dataset it is given."""
    for role, tool in (("validator", "validate_dataset"), ("cleaner", "clean_dataset")):
        cast.scripts[role] = [lambda b, tool=tool: ("call", tool, {"dataset": b.context["dataset"]}),
                              ("final", "done")] * runs


def test_transient_failures_stop_after_three_retries(cast, invoke_config, sample_path):
    prepare(cast)  # then only the analyst runs, and every call of it fails
    cast.failures["analyst"] = TimeoutError("the model server timed out")  # a real model error, not injected
    state = run(invoke_config)
    result = state["result"]
    assert result["status"] == "failed"
    assert [e["action"] for e in result["replanning"]] == ["retry", "retry", "retry", "stop"]
    assert all(e["failure_class"] == "transient" and not e["injected"] for e in result["replanning"])
    assert "transient failure persisted after 3 retries" in result["reason"]
    # the one failure path of agent nodes: each execution gets the run's max_retries (2) attempts
    # from LangGraph's RetryPolicy, and only what fails on the last one is classified
    failed = [(p["node"], p["attempt"]) for p in state["progress"] if p["status"] == "failed"]
    assert failed == [(f"aggregate#{n}", 2) for n in range(1, 5)]
    assert cast.calls["analyst"] == 4 * 2  # the first run and three policy retries, two attempts each
    assert [e["node"] for e in result["errors"]] == ["aggregate"]  # recorded once, when the run stopped
    assert result["plan"]["completed"] == ["validate", "clean"]


def test_a_replan_below_0_6_stops_with_the_reason(cast, invoke_config, sample_path):
    prepare(cast)  # the injected failure stops aggregate before its agent runs
    result = run(invoke_config, fail="aggregate:resource",
                 method_probabilities=json.dumps({"partitioned_analysis": 0.5}))["result"]
    assert result["status"] == "failed"
    (entry,) = result["replanning"]
    assert entry["accepted"] is False and entry["new_confidence"] == pytest.approx(0.95 * 0.5)
    assert "new plan confidence 0.475 is not above 0.6" in result["reason"]
    assert "task 'aggregate' failed (resource: " in result["reason"]  # which task, and its class
    assert result["plan"]["completed"] == ["validate", "clean"]
    assert [(e["node"], e["failure_class"]) for e in result["errors"]] == [("aggregate", "resource")]


def test_no_plan_after_a_failed_task_names_the_failed_task_as_the_cause(invoke_config, sample_path):
    # clean data whose aggregate failed: aggregate is in both analysis methods, so its failure
    # rules them out — the reason says that, not the unmet preconditions of other methods
    from relaygraph.nodes.planning import plan_run

    state = {"pending": {"task": "aggregate", "error": "ValueError: no group", "failure_class": "unknown"},
             "excluded": ["cross_section_analysis", "time_series_analysis"],
             "world": {"is_clean": True, "has_time_column": True, "has_duplicates": False, "row_count": 299}}
    update = plan_run(state, invoke_config)
    reason = update["stop_reason"]
    assert ("the failed task 'aggregate' ruled out cross_section_analysis, time_series_analysis (each needs it)"
            in reason), reason
    assert "ValueError: no group" in reason and "is_clean" not in reason, reason
    assert "is_clean == False" in update["replans"][0]["planner_detail"]  # the detail is kept, not shown


def test_a_refused_replan_shows_the_failed_task_and_a_weak_first_plan_is_not_a_new_plan(cast, sample_path):
    from relaygraph.cli.main import app
    from typer.testing import CliRunner

    prepare(cast)  # the refused replan's run; the weak plan's run stops before any agent
    refused = CliRunner().invoke(app, ["run", "planned", "--model", "cast", "--param", "fail=aggregate:resource",
                                       "--param", 'method_probabilities={"partitioned_analysis": 0.5}',
                                       "--param", "retry_backoff_s=0"])
    assert "✗ aggregate: " in refused.output, refused.output  # the failed task, on the console
    weak = CliRunner().invoke(app, ["run", "planned", "--model", "cast", "--json",
                                    "--param", 'method_probabilities={"prepare_analyse_report": 0.5}'])
    result = json.loads(weak.output[weak.output.index("{"):])["result"]
    assert result["status"] == "failed"
    assert result["reason"].startswith("planning stopped: plan confidence ") and "new plan" not in result["reason"]


def test_data_without_a_date_column_is_planned_without_trends(cast, invoke_config, sample_path):
    # aggregate's injected failure comes before its agent runs; the retry runs it
    cast.scripts.update(whole_plan(analyst=[*agent("aggregate"), *agent("detect_outliers")]))
    frame = pd.read_csv(sample_path).drop(columns=["order_date"])
    frame.to_csv(sample_path.parent / "no_dates.csv", index=False)
    from relaygraph.graphs.planned import build_graph

    config = {**invoke_config, "recursion_limit": 100,
              "configurable": {**invoke_config["configurable"], "fail": "trends:schema,aggregate:transient",
                               "method_probabilities": json.dumps({"cross_section_analysis": 0.75})}}
    state = build_graph().compile().invoke({"task": "report", "data": "no_dates.csv"}, config)
    assert state["result"]["plan"]["methods"][-1] == "cross_section_analysis"
    assert "trends" not in state["result"]["plan"]["tasks"]
    assert state["result"]["status"] == "completed"
    # an injection whose task the plan never had is reported as not fired, not silently ignored
    trends, aggregate = state["result"]["injections"]
    assert trends == {"injection": "trends:schema", "task": "trends", "failure_class": "schema", "times": 1,
                      "fired": False, "fired_times": 0, "why_not": "task 'trends' was not in the executed plan"}
    assert aggregate["fired"] is True and aggregate["fired_times"] == 1
    # risky (0.75 < 0.8) with no other way to analyse data without dates: no contingency to show
    assert state["result"]["plan"]["contingencies"] == []
    (none,) = state["result"]["plan"]["without_contingency"]
    assert none["instead_of"] == "cross_section_analysis" and "has_time_column" in none["reason"]


RENAMED = {
    # renamed column, the date column the run expects: (the error says, the policy maps it to)
    ("when", "order_date"): "missing column 'order_date': the date column the plan expects",
    ("order_day", "order_date"): "missing column 'order_date': the date column the plan expects",
    ("when", None): "missing column: no column of renamed_clean.parquet is named as a date",
}


@pytest.mark.parametrize(("renamed", "expected"), sorted(RENAMED, key=str))
def test_a_renamed_date_column_is_a_schema_failure_adapted_by_column_mapping(renamed, expected, cast,
                                                                             invoke_config, sample_path):
    # trends fails on the schema before its agent runs; after the mapping the analyst runs it once,
    # on the date column the graph now tells it (a second, plain run for order_day: no mapping)
    runs = 2 if renamed == "order_day" else 1
    dated = [*agent("aggregate"), *agent(trends_on_the_given_date_column), *agent("detect_outliers")]
    for role, calls in {**whole_plan(analyst=dated), CRITIC: CRITIC_TREND_CALLS}.items():
        cast.scripts[role] = calls * runs
    frame = pd.read_csv(sample_path).rename(columns={"order_date": renamed})
    frame.to_csv(sample_path.parent / "renamed.csv", index=False)
    state = run(invoke_config, data_file="renamed.csv", **({"date_column": expected} if expected else {}))
    result = state["result"]
    assert result["status"] == "completed", result.get("reason")
    (entry,) = result["replanning"]  # one failure, real (not injected), classified schema
    assert entry["failure_class"] == "schema" and entry["injected"] is False and entry["task"] == "trends"
    assert entry["error"].startswith(RENAMED[renamed, expected]) and repr(renamed) in entry["error"]
    instead = ", instead of 'order_date'" if expected else ""
    assert entry["policy"] == (f"adapt (column mapping): map the date role to column {renamed!r} "
                               f"(observed{instead}), replan")
    assert entry["changes"]["context"] == {"date_column": renamed} and entry["accepted"] is True
    assert result["plan"]["methods"][-1] == "time_series_analysis" and "trends" in result["plan"]["completed"]
    (trend,) = [s for s in state["steps"] if s["tool"] == "detect_trends" and s["agent"] == "analyst"]
    assert trend["arguments"]["date_column"] == renamed and not trend["error"]
    if renamed == "order_day":  # with no name expected, a column named as a date is used as it is
        plain = run({"configurable": {"thread_id": f"{invoke_config['configurable']['thread_id']}-plain"}},
                    data_file="renamed.csv")["result"]
        assert plain["replanning"] == [] and "trends" in plain["plan"]["completed"]


def test_critique_finds_a_wrong_figure_and_the_reviser_drops_it(cast, invoke_config, sample_path):
    # the analyst's last answer (its note for the report) states figures no tool returned; the
    # reporter writes the findings as notes, the reviser writes the notes the critique kept
    def notes_from_findings(brief: Any) -> tuple[str, str, dict[str, Any]]:
        notes = "\n".join(f"- {finding}" for finding in brief.context["findings"].values())
        return ("call", "write_report", {"dataset": brief.context["dataset"], "notes": notes})

    cast.scripts.update(whole_plan())
    cast.scripts["validator"][-1] = ("final", "validate_dataset: 3,048 rows checked")
    cast.scripts["cleaner"][-1] = ("final", "clean_dataset: 2,995 rows written")
    cast.scripts["analyst"][-1] = ("final", "Revenue totals 9,999,999.99 across 77 regions.")
    cast.scripts["reporter"][0] = notes_from_findings
    # each round: the report's dataset recomputed, then its source profiled (its row count)
    source = [on_given("profile_dataset"), ("final", "profiled the source")]
    cast.scripts[CRITIC] = [*CRITIC_TREND_CALLS[:-1], *source] * 2
    cast.scripts["report reviser"] = agent(on_given("write_report", "notes"))
    state = run(invoke_config)
    result = state["result"]
    first, second = result["critique"]
    assert first["revised"] is True and first["notes_dropped"] == 1 and first["notes_kept"] == 2
    assert {d["figure"] for d in first["discrepancies"]} == {"9,999,999.99", "77"}
    assert second == {"round": 2, "discrepancies": [], "clean": True, "revised": False}
    report = Path(result["artifacts"]["report"]).read_text()
    assert "9,999,999.99" not in report
    assert "- validate\\_dataset: 3,048 rows" in report  # a kept note, Markdown-escaped like every note
    assert result["status"] == "completed"
    assert {"critic", "reviser"} <= set(result["agents"])


def test_an_altered_report_figure_is_found_by_the_critic_and_fixed_by_the_reviser(cast, invoke_config,
                                                                                   isolated_env, sample_path):
    """The report is altered between its writing and the critique (a breakdown cell gets another
    group's value, a number the tools *do* return elsewhere): the critic's per-figure check finds
    it with the recomputed value, the reviser's rewrite fixes it, the next round is clean."""
    # the critic recomputes the report's figures (trends too) in each of the two rounds
    cast.scripts.update({**whole_plan(), CRITIC: CRITIC_TREND_CALLS * 2, "report reviser": agent("write_report")})
    from langgraph.types import Command
    from relaygraph.config.checkpointing import open_checkpointer
    from relaygraph.graphs.planned import build_graph

    config = {**invoke_config, "configurable": {**invoke_config["configurable"], "retry_backoff_s": 0},
              "recursion_limit": 200}
    with open_checkpointer() as saver:
        graph = build_graph(approve_before=["critique"]).compile(checkpointer=saver)
        graph.invoke({"task": "Plan a cleaned, analysed report."}, config)  # paused before the critique
        written = Path(graph.get_state(config).values["context"]["report"])
        report = written if written.is_absolute() else (isolated_env["out"] / config["configurable"]["thread_id"]
                                                        / written.name)
        text = report.read_text()
        north, south = (next(line for line in text.splitlines() if line.startswith(f"| {g} |"))
                        for g in ("North", "South"))
        true, other = north.split(" | ")[2], south.split(" | ")[2]
        report.write_text(text.replace(north, north.replace(true, other)))
        while graph.get_state(config).next:  # approve each critique round
            state = graph.invoke(Command(resume={"approved": True}), config)
    result = state["result"]
    first, second = result["critique"]
    (found,) = first["discrepancies"]
    assert found["figure"] == other and found["what"] == "revenue (sum) of North"
    assert found["reason"] == f"recomputed: {true}" and f"{found['expected']:,.2f}" == true
    assert first["revised"] is True and first["clean"] is False
    assert second == {"round": 2, "discrepancies": [], "clean": True, "revised": False}
    assert north in report.read_text()  # the reviser's rewrite has the true figure back
    assert result["status"] == "completed"


def test_a_critic_that_gives_up_ends_the_critique_on_the_failure_path(cast, invoke_config, sample_path):
    """The critic is an agent node like any other: retried up to max_retries, then recorded in
    ``errors`` — the run ends ``partial`` with its report instead of crashing."""
    cast.scripts.update({role: calls for role, calls in whole_plan().items() if role != CRITIC})
    cast.failures[CRITIC] = TimeoutError("the model server timed out")
    state = run(invoke_config)
    result = state["result"]
    (only,) = result["critique"]
    assert only["clean"] is False and only["revised"] is False and "timed out" in only["failed"]
    assert [(e["agent"], e["node"], e["attempt"]) for e in result["errors"]] == [
        ("critic", "critic#1.1", 2), ("critic", "critic#1.2", 2)]  # on the report's dataset and its source
    assert result["status"] == "partial" and result["plan"]["completed"] == FULL
    assert Path(result["artifacts"]["report"]).is_file()


def test_spans_show_plan_replan_and_task_spans(cast, invoke_config, sample_path, spans):
    # trends fails (injected) before its agent runs; the replan keeps aggregate and drops trends
    cast.scripts.update(whole_plan(analyst=[*agent("aggregate"), *agent("detect_outliers")]))
    run(invoke_config, fail="trends:unknown")
    names = [s.name for s in spans.get_finished_spans()]
    assert names.count("plan") == 1 and names.count("replan") == 1
    assert {"task validate", "task clean", "task aggregate", "task trends", "task outliers", "task report",
            "observe", "critique"} <= set(names)
    replan = next(s for s in spans.get_finished_spans() if s.name == "replan")
    assert replan.attributes["relaygraph.plan.accepted"] is True
    assert list(replan.attributes["relaygraph.plan.methods"])[-1] == "cross_section_analysis"


def test_a_failed_task_span_is_an_error_and_the_replan_span_says_why(cast, invoke_config, sample_path, spans):
    from opentelemetry.trace import StatusCode

    cast.scripts.update(failure_scripts("aggregate:resource"))
    run(invoke_config, fail="aggregate:resource")
    finished = spans.get_finished_spans()
    failed, *rerun = [s for s in finished if s.name == "task aggregate"]
    assert failed.status.status_code == StatusCode.ERROR and "out of memory" in failed.status.description
    assert failed.attributes["relaygraph.failure.class"] == "resource"
    assert rerun and all(s.status.status_code != StatusCode.ERROR for s in rerun)  # the scaled-down run did its work
    assert all(s.status.status_code != StatusCode.ERROR for s in finished if s.name == "task validate")
    (replan,) = [s for s in finished if s.name == "replan"]
    attrs = replan.attributes
    assert (attrs["relaygraph.replan.task"], attrs["relaygraph.failure.class"]) == ("aggregate", "resource")
    assert attrs["relaygraph.replan.policy"] == "scale down: 1 → 2 partitions, replan"
    assert attrs["relaygraph.replan.old_confidence"] == pytest.approx(0.95 * 0.9 * 0.9)
    assert attrs["relaygraph.plan.confidence"] > 0.6 and attrs["relaygraph.plan.accepted"] is True


def test_classifier_and_injection_syntax():
    assert classify("model error: APITimeoutError: Request timed out.") == "transient"
    assert classify("MemoryError: Unable to allocate 3 GiB; out of memory") == "resource"
    assert classify("detect_trends: No date column found; pass date_column") == "schema"
    assert classify("No dataset 'x_clean.parquet' in /data or this run's outputs") == "dependency"
    assert classify("validation failed: 45 nulls in region") == "data_quality"
    assert classify("something odd") == "unknown"
    got = parse_injections("aggregate:transientx4, trends:schema")
    assert [(i.task, i.failure_class, i.times) for i in got] == [("aggregate", "transient", 4), ("trends", "schema", 1)]
    assert parse_injections("Trends:Schema, AGGREGATE:TransientX2") == [  # names are lower case: case is no error
        parse_injections("trends:schema")[0], parse_injections("aggregate:transientx2")[0]]
    with pytest.raises(ValueError, match="expected TASK:CLASS"):
        parse_injections("aggregate:cosmic")


def test_plan_show_prints_mermaid(cast, invoke_config, sample_path):
    # trends fails (injected) before its agent runs; the replan keeps aggregate and drops trends
    cast.scripts.update(whole_plan(analyst=[*agent("aggregate"), *agent("detect_outliers")]))
    from relaygraph.cli.main import app
    from typer.testing import CliRunner

    run(invoke_config, fail="trends:unknown")
    thread = invoke_config["configurable"]["thread_id"]
    shown = CliRunner().invoke(app, ["plan", "show", thread, "--all"])
    assert shown.exit_code == 0, shown.output
    assert shown.output.count("flowchart TD") == 2
    assert "method cross_section_analysis · p=0.80" in shown.output
    second = shown.output.split("## Plan 2 of 2")[1]
    assert second.startswith(" — kept from plan 1: aggregate")
    assert '1. aggregate · kept, done<br/>' in second and "2. outliers<br/>" in second  # kept: drawn as done
    assert "classDef kept" in second and "kept" not in shown.output.split("## Plan 2 of 2")[0]
    missing = CliRunner().invoke(app, ["plan", "show", "no-such-thread"])
    assert missing.exit_code == 2


@pytest.mark.slow
def test_sigkill_mid_plan_then_resume_continues_the_plan(isolated_env, tmp_path, monkeypatch):
    from relaygraph.config.checkpointing import open_checkpointer

    runner, log, thread = REPO / "tests" / "crash_runner.py", tmp_path / "agents.log", "crash-planned"
    env = {**os.environ, "RELAYGRAPH_MODEL": "crashy", "CRASH_LOG": str(log), "CRASH_BLOCK_ROLE": "analyst",
           "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

    def cursor() -> int | None:
        with open_checkpointer() as saver:
            found = saver.get_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": ""}})
        return (found.checkpoint["channel_values"].get("cursor") if found else None)

    proc = subprocess.Popen([sys.executable, str(runner), "run", "planned", "--thread-id", thread, "--json"],
                            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        import time

        deadline = time.monotonic() + 90
        while not (log.is_file() and "block analyst" in log.read_text() and cursor() == 2):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the analyst never started"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = cli_here(["resume", thread, "--json"], log, monkeypatch)  # no process of its own needed
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)["result"]
    assert result["status"] == "completed"
    assert result["plan"]["completed"] == FULL
    starts = Counter(line.split(" ", 1)[1] for line in log.read_text().splitlines() if line.startswith("start "))
    assert starts["validator"] == 1 and starts["cleaner"] == 1  # checkpointed tasks were not redone
    assert starts["analyst"] == 1 + 3  # the killed aggregate ran again, then trends and outliers


@pytest.mark.parametrize(("param", "says"), [
    ("fail=bogustask:schema", "unknown task 'bogustask'"),
    ("method_probabilities={not json", "not JSON"),
    ('method_probabilities={"partitioned_analysis": 1.5}', "not a probability in [0, 1]"),
    ('method_probabilities={"magic": 0.5}', "unknown method 'magic'"),
    ('method_probabilities=[0.5]', "expected a JSON object"),
])
def test_bad_planned_params_are_refused_before_any_work(param, says, cast, sample_path):
    from relaygraph.cli.main import app
    from relaygraph.config.checkpointing import open_checkpointer
    from typer.testing import CliRunner

    refused = CliRunner().invoke(app, ["run", "planned", "--model", "cast", "--param", param])  # no agent may run
    assert refused.exit_code == 2, refused.output
    assert says in refused.output and len(refused.output.strip().splitlines()) == 1, refused.output
    if "unknown" in says:  # what is allowed
        names = "validate, clean, aggregate, trends, outliers, report" if param.startswith("fail") else (
            "time_series_analysis, cross_section_analysis, partitioned_analysis")
        assert names in refused.output, refused.output
    assert "allowed: str." not in refused.output  # the expected format, not a Python type name
    assert "allowed: Inject failures" not in refused.output  # its own message says it; no description repeated
    if "magic" in param:  # the value as typed (JSON), not a Python dict
        assert 'method_probabilities={"magic": 0.5}' in refused.output, refused.output
    with open_checkpointer() as saver:  # no thread was started
        assert list(saver.list(None)) == []


def test_a_team_brings_its_own_agents_for_primitive_tasks_by_name_and_capability(cast, invoke_config, sample_path):
    """``planned_team(agents)``: an agent with a ``trends`` capability runs the trends task, one
    named after the domain's ``reporter`` writes the report — with their own roles and tools,
    given the task's tools — the others stay relaygraph's, and the plan names who ran what."""
    from langgraph.types import Command
    from relaygraph.config.checkpointing import open_checkpointer
    from relaygraph.coordination.registry import Capability
    from relaygraph.graphs.patterns import planned_team
    from relaygraph.nodes.agent import AgentSpec

    def on_dataset(tool: str) -> Any:
        return lambda brief: ("call", tool, {"dataset": brief.context["dataset"]})

    team = [AgentSpec(name="trend_bot", role="trend bot", instructions="You look for movement over time.",
                      tools=("profile_dataset",), capabilities=(Capability(name="trends"),)),
            AgentSpec(name="reporter", role="house writer", instructions="You write house-style reports.",
                      tools=("write_report",))]
    for role, tools in {"validator": ["validate_dataset"], "cleaner": ["clean_dataset"],
                        "analyst": ["aggregate", "detect_outliers"], "house writer": ["write_report"],
                        "trend bot": ["profile_dataset", "detect_trends"]}.items():
        calls = [[on_dataset(tool), ("final", f"{tool} done")] for tool in tools]
        if role == "trend bot":  # one agent run, its own tool first, then the task's
            calls = [[on_dataset("profile_dataset"), on_dataset("detect_trends"), ("final", "trends done")]]
        cast.scripts[role] = [action for run_ in calls for action in run_]
    config = {**invoke_config, "configurable": {**invoke_config["configurable"], "retry_backoff_s": 0,
                                                "approve_before": ["critique"]}, "recursion_limit": 200}
    with open_checkpointer() as saver:
        graph = planned_team(team).compile(checkpointer=saver)
        paused = graph.invoke({"task": "Plan a cleaned, analysed report."}, config)
        assert [i.value["node"] for i in paused["__interrupt__"]] == ["critique"]  # the critic is not the team's
        state = graph.invoke(Command(resume={"approved": False, "comment": "no critique"}), config)
    assert not cast.leftovers(), cast.leftovers()
    assert [(t["name"], t["agent"]) for t in state["plan"]["tasks"]] == [
        ("validate", "validator"), ("clean", "cleaner"), ("aggregate", "analyst"), ("trends", "trend_bot"),
        ("outliers", "analyst"), ("report", "reporter")]
    assert state["result"]["plan"]["completed"] == FULL
    by_agent = {s["agent"]: set() for s in state["steps"]}
    for s in state["steps"]:
        by_agent[s["agent"]].add(s["tool"])
    assert by_agent["trend_bot"] >= {"profile_dataset", "detect_trends"}
    assert "write_report" in by_agent["reporter"] and "detect_trends" not in by_agent["analyst"]
    assert Path(state["result"]["artifacts"]["report"]).is_file()
    assert cast.calls["trend bot"] == 3 and cast.calls["house writer"] == 2

    with pytest.raises(ValueError, match="'nobody' matches no task"):
        planned_team([AgentSpec(name="nobody", role="r", instructions="i", tools=())])
    with pytest.raises(ValueError, match="task 'trends' matches two agents"):
        planned_team([team[0], team[0].model_copy(update={"name": "trend_bot_2"})])


# --- arguments the graph decides: sections and partitions reach the tools whatever the model passes ---


def on_given(tool: str, *keys: str):
    """A scripted call of ``tool`` on the dataset the graph gave the agent (plus context ``keys``),
    passing nothing else: no sections, no partition, no partitions."""
    return lambda brief: ("call", tool, {"dataset": brief.context["dataset"],
                                         **{k: brief.context[k] for k in keys}})


def agent(*tools: Any) -> list[Any]:
    """One agent run: its calls, then a final answer."""
    return [t if callable(t) else on_given(t) for t in tools] + [("final", "done")]


CRITIC = "report critic"
#: the critic on the report's dataset (what the report's figures are checked against), then on its source
CRITIC_CALLS = [*agent("profile_dataset", on_given("aggregate", "metric", "group_by"), "detect_outliers"),
                ("final", "nothing to recompute on the source")]
#: the same for a report with a trend section: the critic recomputes the trend too
CRITIC_TREND_CALLS = [*agent("profile_dataset", on_given("aggregate", "metric", "group_by"), "detect_trends",
                             "detect_outliers"), ("final", "nothing to recompute on the source")]


def trends_on_the_given_date_column(brief: Any) -> tuple[str, str, dict[str, Any]]:
    """detect_trends on the dataset, and on the date column the graph names in the brief, if it names one."""
    given = {k: brief.context[k] for k in ("dataset", "date_column") if k in brief.context}
    return ("call", "detect_trends", given)


def whole_plan(analyst: list[Any] | None = None) -> dict[str, list[Any]]:
    """Scripts for a whole planned run whose critique finds nothing (the first plan's agents in
    order; ``analyst`` for a plan that analyses otherwise, without trends)."""
    return {"validator": agent("validate_dataset"), "cleaner": agent("clean_dataset"),
            "analyst": analyst if analyst is not None else
            [*agent("aggregate"), *agent("detect_trends"), *agent("detect_outliers")],
            "reporter": agent("write_report"), CRITIC: list(CRITIC_CALLS if analyst is not None else CRITIC_TREND_CALLS)}


def output_frame(state: dict[str, Any], config: dict[str, Any], sample_path: Path) -> pd.DataFrame:
    name = Path(state["context"]["dataset"])
    return pd.read_parquet(name if name.is_absolute()
                           else sample_path.parent.parent / "out" / config["configurable"]["thread_id"] / name)


def test_requested_sections_reach_the_report_though_the_reporter_leaves_them_out(cast, invoke_config,
                                                                                 sample_path):
    cast.scripts.update({
        "validator": agent("validate_dataset"), "cleaner": agent("clean_dataset"),
        "analyst": [*agent("aggregate"), *agent("detect_trends"), *agent("detect_outliers")],
        "reporter": agent("write_report"),  # no sections argument: the model forgot them
        CRITIC: list(CRITIC_CALLS),
    })
    state = run(invoke_config, sections="breakdown,outliers")
    result = state["result"]
    assert result["plan"]["completed"] == FULL  # the trend analysis ran ...
    (call,) = [s for s in state["steps"] if s["tool"] == "write_report"]
    assert "sections" not in (call.get("arguments") or {})
    report = Path(result["artifacts"]["report"]).read_text()
    assert "## Trend" not in report  # ... but the run asked for no trend section, and got none
    # it ran, so the report says it was not asked for, not that it was not done
    assert "Not in this report: trend (not requested: --param sections=breakdown,outliers)." in report
    # the report is of the cleaned scratch copy, and names the user's file as what was cleaned
    assert f"Your file: `{sample_path.name}`, cleaned (duplicates dropped, values normalised) into `" in report
    assert "## Outliers" in report and " by " in report.split("## Outliers")[0]
    assert result["critique"][-1]["clean"] is True, result["critique"]
    assert result["status"] == "completed", result.get("reason")


def test_a_bad_sections_param_is_refused_before_any_work() -> None:
    from relaygraph.graphs.planned import PlannedParams
    from relaygraph.nodes.params import ParamError, validate_params

    with pytest.raises(ParamError, match="unknown report section.*charts.*the sections are breakdown, trend, outliers"):
        validate_params(PlannedParams, {"sections": "breakdown,charts"})


def test_after_a_resource_replan_the_report_combines_the_partition_results(cast, invoke_config, sample_path):
    from relaygraph.tools.measures import breakdown

    cast.scripts.update({
        "validator": agent("validate_dataset"), "cleaner": agent("clean_dataset"),
        # aggregate's first run fails (injected: out of memory) before its agent starts; the replan
        # scales down to 2 partitions. The analysts pass no partition: the graph gives each its own.
        **{f"analyst@{k}/2": [*agent("aggregate"), *agent("detect_outliers")] for k in (1, 2)},
        "reporter": agent("write_report"),  # no partitions argument: the graph holds it to the plan's
        CRITIC: list(CRITIC_CALLS),
    })
    state = run(invoke_config, fail="aggregate:resource")
    result = state["result"]
    assert result["plan"]["methods"][-1] == "partitioned_analysis"
    assert result["world"]["partitions"] == 2
    frame = output_frame(state, invoke_config, sample_path)
    # the analysis really ran per partition: each aggregate saw its slice, and together all rows
    slices = [s["facts"] for s in state["steps"] if s["tool"] == "aggregate" and s["agent"] == "analyst"]
    assert [f["partition"] for f in slices] == ["1/2", "2/2"]
    assert [f["overall"]["rows"] for f in slices] == [len(frame) // 2, len(frame) - len(frame) // 2]
    report = Path(result["artifacts"]["report"]).read_text()
    assert "Computed from 2 partitions of the rows:" in report
    assert "means weighted by their value counts" in report and "medians" in report
    # the combined figures are the whole data's: every row of the table, the headline total
    (written,) = [s["facts"] for s in state["steps"] if s["tool"] == "write_report"]
    assert written["partitions"] == 2 and written["role"] == "additive"
    whole = breakdown(frame, written["group_by"], written["metric"])
    rows = table_rows(report, written["group_by"])
    assert [r[0] for r in rows[1:-1]] == [g["group"] for g in whole.groups]
    for row, group in zip(rows[1:-1], whole.groups, strict=True):
        assert num(row[1]) == group["rows"]
        assert num(row[2]) == pytest.approx(group["sum"], abs=0.005)
    assert num(rows[-1][2]) == pytest.approx(whole.total, abs=0.005)
    assert f"total {whole.total:,.2f}" in report
    # and the critic, recomputing in one pass over the whole data, finds nothing to correct
    assert result["critique"] == [{"round": 1, "discrepancies": [], "clean": True, "revised": False}]


def test_a_section_left_out_by_learning_says_so_and_how_to_get_it_back():
    """A plan without trends on data with a date column, because learned probabilities moved the
    planner off time_series_analysis: the report's reason names the learning and learn=false,
    not "not part of the analysis that was run"; the same on data without dates says that."""
    from relaygraph.coordination.htn import plan as make_plan
    from relaygraph.coordination.world import DATA_DOMAIN, GOAL
    from relaygraph.nodes.planning import left_out_reasons

    world = {"row_count": 3000, "is_clean": True, "has_time_column": True, "partitions": 1, "analysed": False,
             "validated": True, "has_nulls": False, "has_duplicates": False}
    learned = {"time_series_analysis": 0.76}
    chosen = make_plan(DATA_DOMAIN.with_probabilities(learned), GOAL, world)
    assert "trends" not in [t.name for t in chosen.tasks]  # the learning moved the plan
    done = [t.model_dump(mode="json") for t in chosen.tasks]
    state = {"done": done, "plans": [chosen.model_dump(mode="json")], "first_world": world, "world": world,
             "learned": learned}
    why = left_out_reasons(state, {})
    assert why["trend"].startswith("left out by what earlier runs taught the planner: time_series_analysis 0.9 -> 0.76")
    assert "--param learn=false" in why["trend"] and set(why) == {"trend"}
    no_dates = {**state, "first_world": {**world, "has_time_column": False}, "world": {**world, "has_time_column": False}}
    assert left_out_reasons(no_dates, {}) == {"trend": "the data has no date column"}
    asked = left_out_reasons({**state, "learned": {}}, {"configurable": {"sections": "outliers"}})
    assert asked == {"breakdown": "not requested: --param sections=outliers",
                     "trend": "not requested: --param sections=outliers"}
    # the run summary's words (finalize makes the run partial with them); the data's own fact does not
    from relaygraph.nodes.planning import left_out_by_learning
    assert left_out_by_learning(state, {}) == {"trend": "left out: trend (learned: time_series_analysis 0.9 -> 0.76; "
                                                        "--param learn=false to plan with priors)"}
    assert left_out_by_learning(no_dates, {}) == {}
    assert left_out_by_learning(state, {"configurable": {"sections": "breakdown,outliers"}}) == {}


def test_after_a_data_quality_replan_the_report_names_the_users_file_and_keeps_the_first_findings(
        cast, invoke_config, sample_path):
    cast.scripts.update(failure_scripts("aggregate:data_quality"))  # validate and clean run twice
    cast.scripts["validator"][1] = ("final", "validate_dataset: 3,048 rows: 48 duplicate rows, 5 invalid rows")
    cast.scripts["validator"][3] = ("final", "validate_dataset: 2,995 rows: 0 duplicate rows")
    result = run(invoke_config, fail="aggregate:data_quality")["result"]
    assert result["status"] == "completed", result.get("reason")
    report = Path(result["artifacts"]["report"]).read_text()
    assert f"Your file: `{sample_path.name}`, cleaned" in report  # not the run's own cleaned copy
    (brief,) = cast.briefs["reporter"]
    findings = brief.context["findings"]
    assert findings["validator"] == "validate_dataset: 3,048 rows: 48 duplicate rows, 5 invalid rows"
    # the second run's note says which run it is: the report shows notes without their keys
    assert findings["validator (validate#2)"] == "validate_dataset (validate#2): 2,995 rows: 0 duplicate rows"


def test_the_console_shows_each_failure_replan_and_critique_round_as_it_happens(cast, sample_path):
    from relaygraph.cli.main import app
    from typer.testing import CliRunner

    cast.scripts.update(failure_scripts("aggregate:resource"))
    shown = CliRunner().invoke(app, ["run", "planned", "--model", "cast", "--thread-id", "console-replan",
                                     "--param", "fail=aggregate:resource", "--param", "retry_backoff_s=0"])
    assert shown.exit_code == 0, shown.output
    lines = [" ".join(line.split()) for line in shown.output.splitlines()]
    failed = lines.index("✗ aggregate failed (resource, injected): MemoryError: dataset too large for one pass, "
                         "out of memory (injected)")
    assert lines[failed + 1] == "→ aggregate (resource): scale down: 1 → 2 partitions, replan"
    assert lines[failed + 2].startswith("→ new plan after aggregate (resource): confidence 0.")
    assert "accepted — prepare_analyse_report, already_clean, partitioned_analysis" in lines[failed + 2]
    assert failed < lines.index("✓ critique round 1: every figure reproduced")


def test_console_lines_for_a_retry_a_refused_plan_and_a_revised_critique_round():
    from relaygraph.cli.common import plan_lines

    from rich.text import Text

    def plain(update: dict[str, Any]) -> list[str]:
        return [Text.from_markup(line).plain for line in plan_lines(update)]

    assert plain({"replans": [{"task": "aggregate", "failure_class": "transient", "action": "retry",
                               "policy": "retry 1 of 3 after 0.5s backoff"}]}) == [
        "↻ aggregate (transient): retry 1 of 3 after 0.5s backoff"]
    assert plain({"replans": [{"task": "aggregate", "failure_class": "resource", "action": "replan", "accepted": False,
                               "new_confidence": 0.475, "why": "new plan confidence 0.475 is not above 0.6"}]}) == [
        "✗ no new plan after aggregate (resource): new plan confidence 0.475 is not above 0.6"]
    revised = {"round": 1, "discrepancies": [{"figure": "77"}, {"figure": "9.9"}], "revised": True, "notes_dropped": 1}
    assert plain({"critique": [revised]}) == ["! critique round 1: 2 discrepancies found (77, 9.9), report revised "
                                              "(1 notes dropped)"]


def test_a_date_column_param_not_in_the_file_is_refused_before_any_work_naming_the_date_columns(
        cast, sample_path, tmp_path):
    from relaygraph.cli.main import app
    from relaygraph.config.checkpointing import open_checkpointer
    from typer.testing import CliRunner

    refused = CliRunner().invoke(app, ["run", "planned", "--model", "cast", "--param", "date_column=nosuch"])
    assert refused.exit_code == 2, refused.output
    line = " ".join(refused.output.split())
    assert len(refused.output.strip().splitlines()) == 1, refused.output
    assert ("--param date_column='nosuch': sample_sales.csv has no such column; columns that look like dates: "
            "order_date (all columns:") in line, line
    semi = tmp_path / "when.csv"  # a ;-separated file whose date column is named otherwise: found by its values
    pd.read_csv(sample_path).rename(columns={"order_date": "when"}).to_csv(semi, index=False, sep=";")
    refused = CliRunner().invoke(app, ["run", "planned", "--model", "cast", "--data", str(semi),
                                       "--param", "date_column=order_date"])
    assert refused.exit_code == 2 and "columns that look like dates: when " in " ".join(refused.output.split())
    with open_checkpointer() as saver:  # no thread was started
        assert list(saver.list(None)) == []


def test_retries_exhausted_after_other_sections_finished_give_a_partial_report_without_the_failed_one(
        cast, invoke_config, sample_path):
    cast.scripts.update(whole_plan(analyst=[*agent("aggregate"), *agent("detect_outliers")]))
    result = run(invoke_config, fail="trends:transientx4")["result"]
    assert result["status"] == "partial", result.get("reason")
    assert [e["action"] for e in result["replanning"]] == ["retry", "retry", "retry", "replan"]
    last = result["replanning"][-1]
    assert last["policy"].startswith("retries exhausted: replan without 'trends'") and last["accepted"] is True
    assert last["kept"] == ["aggregate"]  # finished work is not thrown away, nor redone
    assert result["reason"] == "replanned around trends (transient), without trends"
    assert result["plan"]["completed"] == ["validate", "clean", "aggregate", "outliers", "report"]
    report = Path(result["artifacts"]["report"]).read_text()
    assert "## Trend" not in report and "Not in this report: trend" in report


def says_its_calls(brief: Any) -> tuple[str, str]:
    """A final answer quoting each call's own summary, as the offline policy's does."""
    return ("final", "\n".join(f"{c.tool}: {c.summary}" for c in brief.calls.values()))


def test_a_partitioned_run_labels_each_partitions_note_and_the_critic_checks_it_against_that_partition(
        cast, invoke_config, sample_path):
    def notes_from_findings(brief: Any) -> tuple[str, str, dict[str, Any]]:
        notes = "\n".join(f"- {finding}" for finding in brief.context["findings"].values())
        return ("call", "write_report", {"dataset": brief.context["dataset"], "notes": notes})

    cast.scripts.update(failure_scripts("aggregate:resource"))  # scaled down to 2 partitions
    for k in (1, 2):
        cast.scripts[f"analyst@{k}/2"] = [on_given("aggregate"), says_its_calls,
                                          on_given("detect_outliers"), says_its_calls]
    cast.scripts["reporter"][0] = notes_from_findings
    state = run(invoke_config, fail="aggregate:resource")
    result = state["result"]
    report = Path(result["artifacts"]["report"]).read_text()
    notes = report.split("## Agent notes")[1]
    # each partition's own figures, said to be that partition's: none reads as a whole-file figure
    outliers = [s for s in state["steps"] if s["tool"] == "detect_outliers" and s["agent"] == "analyst"]
    assert [s["facts"]["partition"] for s in outliers] == ["1/2", "2/2"]
    for step in outliers:
        count = sum(o["count"] for o in step["facts"]["outliers"].values())
        assert f"- detect\\_outliers (partition {step['facts']['partition']}): {count:,} outlier values" in notes
    assert "- detect\\_outliers:" not in notes
    # the critic recomputed each partition for its notes: nothing to correct
    assert result["critique"] == [{"round": 1, "discrepancies": [], "clean": True, "revised": False}]


def test_a_partition_note_is_checked_against_that_partition_not_the_whole_data():
    from relaygraph.coordination.critique import check_report

    report = "# Report\n\n## Agent notes\n\n- detect\\_outliers (partition 2/2): 2 outlier values (iqr)\n"
    whole = [{"outliers": {"amount": {"count": 7}}, "columns": 2}]  # the whole data's 7; some other 2
    (found,) = check_report(report, [], notes_known=whole, partition_known={"2/2": [{"count": 9}]})
    assert found.figure == "2" and "partition 2/2" in found.reason
    assert check_report(report, [], notes_known=whole, partition_known={"2/2": [{"count": 2}]}) == []
    # unlabelled, the same note is a whole-data claim
    bare = report.replace(" (partition 2/2)", "")
    assert check_report(bare, [], notes_known=[{"count": 2}]) == []


def test_a_replan_that_drops_the_only_requested_section_fails_the_run(cast, invoke_config, sample_path):
    cast.scripts.update(failure_scripts("trends:unknown"))  # replanned without trends, the one section asked
    # the report has no breakdown (not asked), so the critic recomputes the headline without a group-by
    cast.scripts[CRITIC] = [on_given("profile_dataset"), on_given("aggregate", "metric"), ("final", "done"),
                            ("final", "nothing to recompute on the source")]
    result = run(invoke_config, fail="trends:unknown", sections="trend")["result"]
    assert result["critique"][-1]["clean"] is True
    assert result["status"] == "failed"
    assert result["reason"] == ("none of the requested sections (--param sections=trend) can be delivered: trend: "
                                "left out: the run replanned around trends (unknown), see result.replanning")


def test_data_of_one_month_is_planned_without_trends_as_a_data_fact_not_a_failure(cast, invoke_config, sample_path):
    """Stranger14b N6: a file whose dated rows all fall in one month has no trend to find. That
    is the data's fact, known up front: planned without trends, completed, and the report says
    why; no trends task fails on it (the strict cast has no trend run scripted)."""
    cast.scripts.update(whole_plan(analyst=[*agent("aggregate"), *agent("detect_outliers")]))
    frame = pd.read_csv(sample_path)
    frame[frame["order_date"].astype(str).str.startswith("2024-01")].to_csv(sample_path.parent / "one_month.csv",
                                                                             index=False)
    state = run({**invoke_config, "configurable": {**invoke_config["configurable"], "data_file": "one_month.csv"}})
    result = state["result"]
    assert result["status"] == "completed", result.get("reason")
    assert result["replanning"] == [] and result["errors"] == []
    assert "trends" not in result["plan"]["tasks"]
    report = Path(result["artifacts"]["report"]).read_text()
    assert "Not in this report: trend (the data covers only one month of order_date; a trend needs at least two)" \
        in report


def test_a_file_whose_only_category_column_is_empty_is_refused_up_front_saying_so(cast, invoke_config, sample_path):
    """Stranger14b N6: region is the only category column and holds no value. Every analysis
    method starts with a breakdown by one, so no plan is made and no agent runs (the strict cast
    has no scripts); the reason names the empty column and what would help."""
    frame = pd.read_csv(sample_path)
    frame = frame[[c for c in frame.columns if c in ("order_date", "region", "revenue")]].assign(region=None)
    frame.to_csv(sample_path.parent / "no_regions.csv", index=False)
    from relaygraph.graphs.planned import build_graph

    result = build_graph().compile().invoke({"task": "report", "data": "no_regions.csv"}, invoke_config)["result"]
    assert result["status"] == "failed"
    assert result["reason"] == (
        "planning stopped: your file has no category column to break the figures down by (region: no value in "
        "any row); every analysis method starts with that breakdown, so none was run, though a total and a "
        "monthly trend alone could be computed. Fill in or add a column of categories (2 to 50 distinct values) "
        "and run again")
