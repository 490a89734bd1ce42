"""Parallel, handoff and hierarchical workflows: isolation, partial failure, rollback, loop
guard, parallel delegation, limits and the approval round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from relaygraph.tools import Workspace, build_tools, result_of


def compiled(module_name: str):
    import importlib

    return importlib.import_module(module_name).build_graph().compile(checkpointer=InMemorySaver())


def config_with(invoke_config: dict[str, Any], **configurable: Any) -> dict[str, Any]:
    max_concurrency = configurable.pop("max_concurrency", None)
    config = {"configurable": {**invoke_config["configurable"], **configurable}}
    if max_concurrency:
        config["max_concurrency"] = max_concurrency
    return config


def direct_summary(paths: dict[str, Path], thread: str, tool: str, **args: Any) -> str:
    """What the tool itself says, run directly (the independent check of a branch's result)."""
    workspace = Workspace(paths["data"], paths["out"], thread)
    return result_of(build_tools([tool], workspace)[0](**args)).summary


# --- parallel ----------------------------------------------------------------------------------


def test_two_branches_of_one_agent_type_on_different_partitions_give_their_own_correct_results(
    isolated_env, invoke_config
) -> None:
    config = config_with(invoke_config, specialists=["validator"], partitions=2)
    state = compiled("relaygraph.graphs.parallel").invoke({"task": "Clean, then validate in parallel."}, config)
    thread = config["configurable"]["thread_id"]
    branches = state["result"]["parallel"]["branches"]
    assert sorted(branches) == ["validator_p1", "validator_p2"]
    for k in (1, 2):
        slot = branches[f"validator_p{k}"]
        assert slot["status"] == "completed" and slot["partition"] == f"{k}/2"
        expected = direct_summary(isolated_env, thread, "validate_dataset",
                                  dataset="sample_sales_clean.parquet", partition=f"{k}/2")
        assert slot["tools"]["validate_dataset"]["summary"] == expected
    assert branches["validator_p1"]["tools"] != branches["validator_p2"]["tools"]
    # Each branch had its own agent: its own steps, its own answer, nothing of the other's.
    agents = {s["agent"] for s in state["steps"]}
    assert {"validator_p1", "validator_p2"} <= agents
    for k, other in ((1, 2), (2, 1)):
        steps = [s for s in state["steps"] if s["agent"] == f"validator_p{k}"]
        assert all(s["arguments"].get("partition") in (None, f"{k}/2") for s in steps)
        assert f"{other}/2" not in json.dumps(steps)
    rows = state["result"]["parallel"]["specialists"]["validator"]["rows_covered"]
    assert rows == int(direct_summary(isolated_env, thread, "validate_dataset",
                                      dataset="sample_sales_clean.parquet").split()[0].replace(",", ""))


def test_all_four_specialists_run_as_tool_using_agents_and_the_aggregator_reports_each(invoke_config) -> None:
    state = compiled("relaygraph.graphs.parallel").invoke({"task": "Clean, validate, profile, enrich, segment, score."},
                                               invoke_config)
    result = state["result"]
    assert result["status"] == "completed" and result["success_rate"] == 1.0
    tools = {b: sorted(s["tools"]) for b, s in result["parallel"]["branches"].items()}
    assert tools == {"profiler": ["enrich_dataset", "profile_dataset"], "scorer": ["score_records"],
                     "segmenter": ["segment_customers"], "validator": ["detect_outliers", "validate_dataset"]}
    assert set(result["parallel"]["timings"]["per_branch_s"]) == set(tools)
    assert "4/4 branches succeeded" in result["answer"]


def test_a_failing_branch_is_recorded_and_the_other_branches_results_are_kept(roles, invoke_config) -> None:
    roles.failures["record scorer"] = ConnectionError("scoring model unreachable")
    state = compiled("relaygraph.graphs.parallel").invoke({"task": "Clean, then validate, profile, segment, score."},
                                               invoke_config)
    result = state["result"]
    assert result["status"] == "partial"
    assert list(result["failed"]) == ["scorer"]
    assert "ConnectionError" in result["failed"]["scorer"] and "unreachable" in result["failed"]["scorer"]
    assert result["success_rate"] == 0.75
    assert [e["branch"] for e in result["errors"]] == ["scorer"]
    completed = {b for b, s in result["parallel"]["branches"].items() if s["status"] == "completed"}
    assert completed == {"validator", "profiler", "segmenter"}
    assert roles.calls["record scorer"] == 2  # the RetryPolicy's two attempts, then recorded


def test_max_concurrency_caps_how_many_branches_run_at_once(roles, invoke_config) -> None:
    roles.slow, roles.delay = {"data validator", "data profiler and enricher", "customer segmenter",
                               "record scorer"}, 0.15
    config = config_with(invoke_config, max_concurrency=2)
    state = compiled("relaygraph.graphs.parallel").invoke({"task": "Clean, then validate, profile, segment, score."}, config)
    assert state["result"]["success_rate"] == 1.0
    assert roles.peak == 2


def test_an_unknown_specialist_is_refused_with_the_choices(invoke_config) -> None:
    with pytest.raises(ValueError, match="Unknown specialist.*choose from: validator, profiler"):
        compiled("relaygraph.graphs.parallel").invoke({"task": "x"}, config_with(invoke_config, specialists=["astrologer"]))


# --- handoff -----------------------------------------------------------------------------------


def test_triage_routes_by_the_request_and_specialists_hand_off_through_tools(invoke_config) -> None:
    from relaygraph.graphs.handoff import DEFAULT_TASK

    state = compiled("relaygraph.graphs.handoff").invoke({"task": DEFAULT_TASK}, invoke_config)
    result = state["result"]
    assert result["status"] == "completed"
    assert result["handoffs"]["route"] == "triage → quality → analytics → customers → reporting"
    assert all(h["status"] == "accepted" for h in result["handoffs"]["history"])
    # After cleaning, the validated context carries the cleaned file to the next agents.
    assert [h["dataset"] for h in result["handoffs"]["history"]][1:] == ["sample_sales_clean.parquet"] * 3
    assert Path(result["artifacts"]["report"]).is_file()

    other = compiled("relaygraph.graphs.handoff").invoke({"task": "Write a report on the customers."},
                                              {"configurable": {"thread_id": "other"}})
    assert other["result"]["handoffs"]["route"].startswith("triage → reporting → customers")


def test_an_invalid_transfer_is_rolled_back_and_the_sender_tries_again(roles, invoke_config) -> None:
    roles.scripts["data quality specialist"] = [
        ("call", "validate_dataset", {"dataset": "sample_sales.csv"}),
        ("call", "handoff_analytics", {"dataset": "no_such_file.csv"}),
        ("final", "first turn, with a broken transfer"),
        ("call", "handoff_analytics", {"reason": "quality checked"}),
        ("final", "second turn"),
    ]
    state = compiled("relaygraph.graphs.handoff").invoke({"task": "Check data quality, then analyse sales."}, invoke_config)
    history = state["result"]["handoffs"]["history"]
    assert [(h["from"], h["to"], h["status"]) for h in history] == [
        ("triage", "quality", "accepted"), ("quality", "analytics", "rolled_back"),
        ("quality", "analytics", "accepted")]
    assert any("no_such_file.csv" in e for e in history[1]["errors"])
    # Rolled back: the broken turn's answer never reached the state; the retry's did.
    assert state["answers"]["quality"] == "second turn"
    assert state["context"]["findings"]["quality"] == "second turn"
    assert state["result"]["status"] == "completed"
    # The sender was told why its transfer was refused.
    assert roles.calls["data quality specialist"] == 5


def test_ping_pong_between_two_agents_ends_the_run_with_a_clear_reason(roles, invoke_config) -> None:
    roles.scripts["data quality specialist"] = [("call", "handoff_analytics", {"reason": "analyse it"}),
                                                ("final", "over to analytics")]
    roles.scripts["sales analyst"] = [("call", "handoff_quality", {"reason": "the data still looks wrong"}),
                                      ("final", "back to quality")]
    state = compiled("relaygraph.graphs.handoff").invoke({"task": "Check data quality."}, invoke_config)
    result = state["result"]
    assert result["status"] == "stopped"
    assert "ping-pong quality→analytics→quality" in result["reason"]
    assert result["handoffs"]["route"] == "triage → quality → analytics"
    assert result["handoffs"]["history"][-1]["status"] == "stopped"


def test_max_handoffs_ends_a_cycle_before_the_recursion_limit(roles, invoke_config) -> None:
    cycle = {"data quality specialist": "handoff_analytics", "sales analyst": "handoff_customers",
             "customer analyst": "handoff_quality"}
    for role, tool in cycle.items():
        roles.scripts[role] = [("call", tool, {"reason": "your turn"}), ("final", "passed on")] * 3
    state = compiled("relaygraph.graphs.handoff").invoke({"task": "Check data quality."},
                                              config_with(invoke_config, max_handoffs=4))
    result = state["result"]
    assert result["status"] == "stopped"
    assert "max_handoffs=4" in result["reason"]
    assert result["handoffs"]["route"] == "triage → quality → analytics → customers → quality"


# --- hierarchical ------------------------------------------------------------------------------


def test_supervisor_and_leads_delegate_in_parallel_with_quality_at_each_level(roles, isolated_env, sample_path,
                                                                             invoke_config) -> None:
    workers = {"data validator", "outlier analyst", "customer segmenter", "record scorer"}
    roles.slow, roles.delay = workers, 0.15
    state = compiled("relaygraph.graphs.hierarchical").invoke(
        {"task": "Assess data quality and study the customers."}, invoke_config)
    result = state["result"]
    assert result["delegation"]["teams"] == ["quality", "customers"]  # the structured decision
    assert roles.peak >= 3  # teams and their workers ran at the same time, not one by one
    assert result["status"] == "completed"
    quality = result["quality"]
    assert set(quality["teams"]) == {"quality", "customers"}
    assert set(quality["teams"]["customers"]["workers"]) == {"segments", "scores"}
    assert quality["overall"]["coverage"] == 1.0 and 0 < quality["overall"]["score"] <= 1
    thread = invoke_config["configurable"]["thread_id"]
    expected = direct_summary(isolated_env, thread, "segment_customers", dataset="sample_sales_clean.parquet")
    assert expected in result["teams"]["customers"]["answers"]["segments"]


def test_the_quality_team_audits_the_raw_data_and_the_others_get_it_cleaned(isolated_env, sample_path,
                                                                           invoke_config) -> None:
    state = compiled("relaygraph.graphs.hierarchical").invoke(
        {"task": "Assess data quality (validation) and analyse sales (breakdown)."}, invoke_config)
    teams = state["result"]["teams"]
    assert "48 duplicate rows" in teams["quality"]["answers"]["validation"]  # the raw file's defects
    thread = invoke_config["configurable"]["thread_id"]
    expected = direct_summary(isolated_env, thread, "aggregate", dataset="sample_sales_clean.parquet")
    assert expected in teams["sales"]["answers"]["breakdown"]
    # five regions plus the rows without one, not 25 spellings
    assert "6 groups (incl. (missing): 45 rows without region)" in teams["sales"]["answers"]["breakdown"]


def test_a_failed_worker_lowers_its_team_and_the_overall_quality(roles, invoke_config) -> None:
    roles.failures["record scorer"] = TimeoutError("scorer timed out")
    state = compiled("relaygraph.graphs.hierarchical").invoke({"task": "Study the customers."}, invoke_config)
    team = state["result"]["teams"]["customers"]
    assert team["status"] == "partial" and "TimeoutError" in team["failed"]["scores"]
    assert team["quality"]["coverage"] == 0.5
    assert state["result"]["quality"]["overall"]["score"] == team["quality"]["score"]


@pytest.mark.parametrize(("limits", "message"), [
    ({"max_fanout": 2}, "supervisor planned 3 parallel delegates .* max_fanout is 2"),
    ({"max_depth": 2}, "_lead at depth 2 cannot delegate .* max_depth is 2"),
])
def test_depth_and_fanout_limits_stop_the_run_with_a_clear_error(limits, message, invoke_config) -> None:
    from relaygraph.graphs.hierarchical import DEFAULT_TASK
    from relaygraph.nodes.hierarchy import DelegationLimitError

    with pytest.raises(DelegationLimitError, match=message):
        compiled("relaygraph.graphs.hierarchical").invoke({"task": DEFAULT_TASK}, config_with(invoke_config, **limits))


# --- approval ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("module", "node"), [
    ("relaygraph.graphs.sequential", "report"), ("relaygraph.graphs.parallel", "aggregate"),
    ("relaygraph.graphs.handoff", "analytics"), ("relaygraph.graphs.hierarchical", "segments"),
])
def test_approval_interrupts_before_the_named_node_and_resumes_both_ways(module, node, invoke_config) -> None:
    task = "Check data quality, analyse sales, segment the customers and write a report."
    for decision, status in (({"approved": True, "comment": "go"}, "completed"),
                             ({"approved": False, "comment": "not now"}, "rejected")):
        graph = compiled(module)
        config = config_with({"configurable": {"thread_id": f"{node}-{status}"}}, approve_before=[node])
        paused = graph.invoke({"task": task}, config)
        waiting = paused["__interrupt__"]
        assert waiting and waiting[0].value["node"] == node
        assert "result" not in paused
        done = graph.invoke(Command(resume=decision), config)
        assert done["result"]["status"] == status, done["result"]
        assert done["result"]["approvals"][0] | {"decided_at": None} == {
            "node": node, "approved": decision["approved"], "comment": decision["comment"], "decided_at": None}
        assert (node in (done.get("answers") or {})) == decision["approved"]  # the node ran, or not
    assert "not now" in done["result"]["answer"]


def test_a_gate_adds_its_record_and_gates_to_every_shape_of_node_output() -> None:
    """A dict update, a Command with a dict or a list update, and no update at all: the approval
    record goes in front of the node's own approvals and the new gates beside its own."""
    from relaygraph.nodes.approval import _with_writes

    record, mine = {"node": "n", "approved": True}, {"node": "earlier"}
    writes = {"approvals": [record], "gates": ["n"]}
    assert _with_writes({"x": 1, "approvals": [mine]}, writes) == {
        "x": 1, "approvals": [record, mine], "gates": ["n"]}
    assert _with_writes(Command(goto="f", update={"approvals": [mine]}), writes).update == {
        "approvals": [record, mine], "gates": ["n"]}
    assert _with_writes(Command(goto="f", update=[("x", 1)]), writes).update == [
        ("approvals", [record]), ("gates", ["n"]), ("x", 1)]
    assert _with_writes(None, writes) == writes
    assert _with_writes({"x": 1}, {"approvals": [], "gates": []}) == {"x": 1}
