"""Parallel, handoff and hierarchical workflows: isolation, partial failure, rollback, loop
guard, parallel delegation, limits and the approval round trip."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from relaygraph.nodes.contracts import AgentFailure, HierarchicalResult
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


CLEAN, RAW = "sample_sales_clean.parquet", "sample_sales.csv"


def call(tool: str, **args: Any) -> tuple[str, str, dict[str, Any]]:
    return ("call", tool, args)


def echo(brief: Any) -> tuple[str, str]:
    """A final answer that repeats what the agent's own tool calls returned (from its brief)."""
    return ("final", "\n".join(f"{c.tool}: {c.summary}" for c in brief.calls.values()) or "nothing to do")


def cleaner() -> list[Any]:
    return [call("clean_dataset", dataset=RAW), echo]


# --- parallel ----------------------------------------------------------------------------------

SPECIALIST_ROLES = {"validator": "data validator", "profiler": "data profiler and enricher",
                    "segmenter": "customer segmenter", "scorer": "record scorer"}


def specialists(cast: Any, *names: str) -> None:
    """Scripts for the parallel graph's cleaner and the named specialists (one tool each)."""
    tools = {"validator": "validate_dataset", "profiler": "profile_dataset", "segmenter": "segment_customers",
             "scorer": "score_records"}
    cast.scripts["data cleaner"] = cleaner()
    for name in names:
        cast.scripts[SPECIALIST_ROLES[name]] = [
            lambda brief, tool=tools[name]: call(tool, dataset=brief.context["dataset"]), echo]


def test_two_branches_of_one_agent_type_on_different_partitions_give_their_own_correct_results(
    cast, isolated_env, invoke_config
) -> None:
    cast.scripts["data cleaner"] = cleaner()
    for k in (1, 2):
        cast.scripts[f"data validator@{k}/2"] = [  # the agent works on the file and slice it was given
            lambda b: call("validate_dataset", dataset=b.context["dataset"], partition=b.context["partition"]), echo]
    config = config_with(invoke_config, specialists=["validator"], partitions=2)
    state = compiled("relaygraph.graphs.parallel").invoke({"task": "Clean, then validate in parallel."}, config)
    thread = config["configurable"]["thread_id"]
    branches = state["result"]["parallel"]["branches"]
    assert sorted(branches) == ["validator_p1", "validator_p2"]
    for k in (1, 2):
        slot = branches[f"validator_p{k}"]
        assert slot["status"] == "completed" and slot["partition"] == f"{k}/2"
        (brief,) = cast.briefs[f"data validator@{k}/2"]  # one agent run per branch, told its slice
        assert brief.context["dataset"] == CLEAN and brief.context["partition"] == f"{k}/2"
        expected = direct_summary(isolated_env, thread, "validate_dataset", dataset=CLEAN, partition=f"{k}/2")
        assert slot["tools"]["validate_dataset"]["summary"] == expected
        assert state["answers"][f"validator_p{k}"] == f"validate_dataset: {expected}"
    assert branches["validator_p1"]["tools"] != branches["validator_p2"]["tools"]
    # Each branch had its own agent: its own steps, nothing of the other's.
    for k, other in ((1, 2), (2, 1)):
        steps = [s for s in state["steps"] if s["agent"] == f"validator_p{k}"]
        assert [s["tool"] for s in steps] == ["validate_dataset", "final_answer"]
        assert f"{other}/2" not in json.dumps(steps)
    rows = state["result"]["parallel"]["specialists"]["validator"]["rows_covered"]
    assert rows == int(direct_summary(isolated_env, thread, "validate_dataset", dataset=CLEAN).split()[0].replace(",", ""))


def test_all_four_specialists_run_as_their_own_agents_and_the_aggregator_reports_each(cast, invoke_config) -> None:
    specialists(cast, *SPECIALIST_ROLES)
    state = compiled("relaygraph.graphs.parallel").invoke({"task": "Clean, validate, profile, segment, score."},
                                                          invoke_config)
    result = state["result"]
    assert result["status"] == "completed" and result["success_rate"] == 1.0
    tools = {b: sorted(s["tools"]) for b, s in result["parallel"]["branches"].items()}
    assert tools == {"profiler": ["profile_dataset"], "scorer": ["score_records"],
                     "segmenter": ["segment_customers"], "validator": ["validate_dataset"]}
    assert set(result["parallel"]["timings"]["per_branch_s"]) == set(tools)
    assert "4/4 branches succeeded" in result["answer"]
    for role in SPECIALIST_ROLES.values():  # the cleaner's file reached every specialist
        assert [b.context["dataset"] for b in cast.briefs[role]] == [CLEAN]


def test_a_failing_branch_is_recorded_and_the_other_branches_results_are_kept(cast, invoke_config) -> None:
    specialists(cast, "validator", "profiler", "segmenter")
    cast.failures["record scorer"] = ConnectionError("scoring model unreachable")
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
    assert cast.calls["record scorer"] == 2  # the RetryPolicy's two attempts, then recorded


def test_max_concurrency_caps_how_many_branches_run_at_once(cast, invoke_config) -> None:
    specialists(cast, *SPECIALIST_ROLES)
    cast.together(set(SPECIALIST_ROLES.values()), parties=2)  # two must overlap; more may not
    config = config_with(invoke_config, max_concurrency=2)
    state = compiled("relaygraph.graphs.parallel").invoke({"task": "Clean, then validate, profile, segment, score."}, config)
    assert state["result"]["success_rate"] == 1.0
    assert cast.peak == 2


def test_an_unknown_specialist_is_refused_with_the_choices(cast, invoke_config) -> None:
    cast.scripts["data cleaner"] = cleaner()
    with pytest.raises(ValueError, match="Unknown specialist.*choose from: validator, profiler"):
        compiled("relaygraph.graphs.parallel").invoke({"task": "x"}, config_with(invoke_config, specialists=["astrologer"]))


# --- handoff -----------------------------------------------------------------------------------


def test_specialists_hand_off_through_tools_and_the_cleaned_file_travels_with_the_transfer(cast, invoke_config) -> None:
    cast.scripts.update({
        "triage agent": [call("handoff_quality", reason="the data needs checking first"), ("final", "routed")],
        "data quality specialist": [call("validate_dataset", dataset=RAW), call("clean_dataset", dataset=RAW),
                                    call("handoff_analytics", reason="clean now"), echo],
        "sales analyst": [call("aggregate", dataset=CLEAN), call("handoff_customers", reason="customers next"), echo],
        "customer analyst": [call("segment_customers", dataset=CLEAN), call("handoff_reporting", reason="report it"),
                             echo],
        "report writer": [call("write_report", dataset=CLEAN), echo],
    })
    state = compiled("relaygraph.graphs.handoff").invoke({"task": "Check, analyse, segment, report."}, invoke_config)
    result = state["result"]
    assert result["status"] == "completed"
    assert result["handoffs"]["route"] == "triage → quality → analytics → customers → reporting"
    assert all(h["status"] == "accepted" for h in result["handoffs"]["history"])
    # No transfer named a dataset: after cleaning, the validated context carries the cleaned file.
    assert [h["dataset"] for h in result["handoffs"]["history"]] == [RAW, CLEAN, CLEAN, CLEAN]
    assert [b.context["dataset"] for b in cast.briefs["report writer"]] == [CLEAN]
    assert Path(result["artifacts"]["report"]).is_file()


def test_an_invalid_transfer_is_rolled_back_and_the_sender_tries_again(cast, invoke_config) -> None:
    cast.scripts["triage agent"] = [call("handoff_quality", reason="quality first"), ("final", "routed")]
    cast.scripts["data quality specialist"] = [
        call("validate_dataset", dataset=RAW),
        call("handoff_analytics", dataset="no_such_file.csv"),
        ("final", "first turn, with a broken transfer"),
        call("handoff_analytics", reason="quality checked"),
        ("final", "second turn"),
    ]
    cast.scripts["sales analyst"] = [("final", "analysed")]
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
    (retry,) = cast.briefs["data quality specialist"][1:]
    assert "no_such_file.csv" in json.dumps(retry.model_dump())
    assert cast.calls["data quality specialist"] == 5


def test_ping_pong_between_two_agents_ends_the_run_with_a_clear_reason(cast, invoke_config) -> None:
    cast.scripts["triage agent"] = [call("handoff_quality", reason="quality first"), ("final", "routed")]
    cast.scripts["data quality specialist"] = [call("handoff_analytics", reason="analyse it"),
                                               ("final", "over to analytics")]
    cast.scripts["sales analyst"] = [call("handoff_quality", reason="the data still looks wrong"),
                                     ("final", "back to quality")]
    state = compiled("relaygraph.graphs.handoff").invoke({"task": "Check data quality."}, invoke_config)
    result = state["result"]
    assert result["status"] == "stopped"
    assert "ping-pong quality→analytics→quality" in result["reason"]
    assert result["handoffs"]["route"] == "triage → quality → analytics"
    assert result["handoffs"]["history"][-1]["status"] == "stopped"


def test_max_handoffs_ends_a_cycle_before_the_recursion_limit(cast, invoke_config) -> None:
    cast.scripts["triage agent"] = [call("handoff_quality", reason="quality first"), ("final", "routed")]
    cycle = {"data quality specialist": "handoff_analytics", "sales analyst": "handoff_customers",
             "customer analyst": "handoff_quality"}
    for role, tool in cycle.items():
        cast.scripts[role] = [call(tool, reason="your turn"), ("final", "passed on")]
    cast.scripts["data quality specialist"] *= 2  # quality's second turn hands off past the limit
    state = compiled("relaygraph.graphs.handoff").invoke({"task": "Check data quality."},
                                                         config_with(invoke_config, max_handoffs=4))
    result = state["result"]
    assert result["status"] == "stopped"
    assert "max_handoffs=4" in result["reason"]
    assert result["handoffs"]["route"] == "triage → quality → analytics → customers → quality"


# --- hierarchical ------------------------------------------------------------------------------

WORKER_TOOLS = {"data validator": "validate_dataset", "outlier analyst": "detect_outliers",
                "sales analyst": "aggregate", "trend analyst": "detect_trends",
                "customer segmenter": "segment_customers", "record scorer": "score_records"}


def delegate(cast: Any, teams: dict[str, list[str]]) -> None:
    """The supervisor's and each lead's decision, and a script for the preparer."""
    cast.decisions["Delegation"] = [{"teams": list(teams), "rationale": "scripted"}]
    for team, workers in teams.items():
        cast.decisions[f"{team.title()}Plan"] = [{"workers": workers, "rationale": "scripted"}]
    cast.scripts["data preparer"] = cleaner()


def work(cast: Any, *roles: str) -> None:
    """Each worker runs its tool on the file the graph gave it (its brief's context), then reports."""
    for role in roles:
        cast.scripts[role] = [lambda brief, tool=WORKER_TOOLS[role]: call(tool, dataset=brief.context["dataset"]),
                              echo]


def test_supervisor_and_leads_delegate_in_parallel_with_quality_at_each_level(cast, isolated_env, invoke_config) -> None:
    delegate(cast, {"quality": ["validation", "outliers"], "customers": ["segments", "scores"]})
    work(cast, "data validator", "outlier analyst", "customer segmenter", "record scorer")
    cast.together({"data validator", "outlier analyst", "customer segmenter", "record scorer"}, parties=4)
    state = compiled("relaygraph.graphs.hierarchical").invoke(
        {"task": "Assess data quality and study the customers."}, invoke_config)
    result = state["result"]
    assert result["delegation"]["teams"] == ["quality", "customers"]  # the structured decision
    assert cast.peak == 4  # both teams' workers were in flight at once, not one by one
    assert result["status"] == "completed"
    quality = result["quality"]
    assert set(quality["teams"]) == {"quality", "customers"}
    assert set(quality["teams"]["customers"]["workers"]) == {"segments", "scores"}
    assert quality["overall"]["coverage"] == 1.0 and 0 < quality["overall"]["score"] <= 1
    thread = invoke_config["configurable"]["thread_id"]
    expected = direct_summary(isolated_env, thread, "segment_customers", dataset=CLEAN)
    assert result["teams"]["customers"]["answers"]["segments"] == f"segment_customers: {expected}"


def test_the_quality_team_audits_the_raw_data_and_the_others_get_it_cleaned(cast, isolated_env, invoke_config) -> None:
    delegate(cast, {"quality": ["validation"], "sales": ["breakdown"]})
    work(cast, "data validator", "sales analyst")
    state = compiled("relaygraph.graphs.hierarchical").invoke(
        {"task": "Assess data quality (validation) and analyse sales (breakdown)."}, invoke_config)
    assert [b.context["dataset"] for b in cast.briefs["data validator"]] == [RAW]
    assert [b.context["dataset"] for b in cast.briefs["sales analyst"]] == [CLEAN]
    teams = state["result"]["teams"]
    assert "48 duplicate rows" in teams["quality"]["answers"]["validation"]  # the raw file's defects
    thread = invoke_config["configurable"]["thread_id"]
    expected = direct_summary(isolated_env, thread, "aggregate", dataset=CLEAN)
    assert teams["sales"]["answers"]["breakdown"] == f"aggregate: {expected}"
    # five regions plus the rows without one, not 25 spellings
    assert "6 groups (incl. (missing): 45 rows without region)" in expected


def test_a_failed_worker_lowers_its_team_and_the_overall_quality(cast, invoke_config) -> None:
    delegate(cast, {"customers": ["segments", "scores"]})
    work(cast, "customer segmenter")
    cast.failures["record scorer"] = TimeoutError("scorer timed out")
    state = compiled("relaygraph.graphs.hierarchical").invoke({"task": "Study the customers."}, invoke_config)
    team = state["result"]["teams"]["customers"]
    assert team["status"] == "partial" and "TimeoutError" in team["failed"]["scores"]
    assert team["quality"]["coverage"] == 0.5
    assert state["result"]["quality"]["overall"]["score"] == team["quality"]["score"]


def test_a_partial_team_is_not_counted_as_delivered(cast, invoke_config) -> None:
    # the summary's count follows the run status: a partial team is said to be partial
    delegate(cast, {"quality": ["validation"], "customers": ["segments", "scores"]})
    work(cast, "data validator", "customer segmenter")
    cast.failures["record scorer"] = TimeoutError("scorer timed out")
    state = compiled("relaygraph.graphs.hierarchical").invoke(
        {"task": "Assess data quality and study the customers."}, invoke_config)
    result = state["result"]
    assert result["status"] == "partial" and result["teams"]["customers"]["status"] == "partial"
    overall = result["quality"]["overall"]
    assert (overall["delivered"], overall["partial"], overall["planned"]) == (1, 1, 2)
    assert "1/2 teams delivered (1 partial)." in result["answer"]
    assert "2/2 teams delivered" not in result["answer"]


def test_fanout_beyond_the_limit_stops_the_supervisor_with_a_clear_error_in_the_result(cast, invoke_config) -> None:
    cast.decisions["Delegation"] = [{"teams": ["quality", "sales", "customers"], "rationale": "all"}]
    state = compiled("relaygraph.graphs.hierarchical").invoke({"task": "everything"},
                                                              config_with(invoke_config, max_fanout=2))
    result = HierarchicalResult.model_validate(state["result"])
    assert result.status == "failed" and [(e.node, e.attempt) for e in result.errors] == [("supervisor", 1)]
    assert re.search("supervisor planned 3 parallel delegates .* max_fanout is 2", result.errors[0].reason)


def test_depth_beyond_the_limit_stops_a_lead_with_a_clear_error_in_the_result(cast, invoke_config) -> None:
    delegate(cast, {"quality": ["validation"]})
    state = compiled("relaygraph.graphs.hierarchical").invoke({"task": "quality"},
                                                              config_with(invoke_config, max_depth=2))
    result = HierarchicalResult.model_validate(state["result"])
    assert result.status == "failed" and [(e.node, e.attempt) for e in result.errors] == [("quality_lead", 1)]
    assert re.search("quality_lead at depth 2 cannot delegate .* max_depth is 2", result.errors[0].reason)


@pytest.mark.parametrize("budget", [1, 3])
def test_a_supervisor_whose_model_keeps_failing_is_retried_at_the_runs_budget_then_recorded(
        cast, invoke_config, budget) -> None:
    # plain invoke: the failure is in state, not raised; exactly `budget` decisions are asked for
    # (the cast fails the test on a decision left unasked, or one asked for beyond the script)
    cast.decisions["Delegation"] = [ConnectionError("router model down")] * budget
    state = compiled("relaygraph.graphs.hierarchical").invoke({"task": "everything"},
                                                              config_with(invoke_config, max_retries=budget))
    result = HierarchicalResult.model_validate(state["result"])
    assert result.status == state["status"] == "failed"
    assert result.errors == [AgentFailure(agent="supervisor", node="supervisor", attempt=budget, max_attempts=budget,
                                          reason="model error: ConnectionError: router model down")]
    assert state["progress"][-1]["node"] == "supervisor" and state["progress"][-1]["status"] == "failed"
    assert not state.get("teams")  # nothing was delegated, not even the preparer ran


@pytest.mark.parametrize(("teams", "status"), [(["quality"], "failed"), (["quality", "customers"], "partial")])
def test_a_lead_whose_model_fails_for_good_fails_its_team_and_the_run_says_so(
        cast, invoke_config, teams, status) -> None:
    cast.decisions["Delegation"] = [{"teams": teams, "rationale": "scripted"}]
    cast.decisions["QualityPlan"] = [TimeoutError("lead model timed out")] * 2  # max_retries 2: both attempts
    cast.scripts["data preparer"] = cleaner()
    if "customers" in teams:
        cast.decisions["CustomersPlan"] = [{"workers": ["segments"], "rationale": "scripted"}]
        work(cast, "customer segmenter")
    state = compiled("relaygraph.graphs.hierarchical").invoke({"task": "go"}, config_with(invoke_config, max_retries=2))
    result = HierarchicalResult.model_validate(state["result"])
    assert result.status == status
    assert result.errors == [AgentFailure(agent="quality_lead", node="quality_lead", attempt=2, max_attempts=2,
                                          reason="model error: TimeoutError: lead model timed out")]
    assert state["teams"]["quality"]["status"] == "failed" and not cast.calls.get("data validator")
    if "customers" in teams:
        assert state["teams"]["customers"]["status"] == "completed"


# --- approval ----------------------------------------------------------------------------------


def approval_cast(cast: Any, module: str, approved: bool) -> None:
    """Each agent of the run answers at once (the gate is what is tested); the gated agent's
    script is there only if it will run."""
    done = [("final", "done")]
    gated = {"sequential": "report writer", "handoff": "sales analyst", "hierarchical": "customer segmenter"}
    graph = module.rsplit(".", 1)[1]
    roles = {"sequential": ["data extractor", "data cleaner", "data analyst", "report writer"],
             "parallel": ["data cleaner", *SPECIALIST_ROLES.values()],
             "handoff": ["sales analyst"], "hierarchical": ["data preparer", "customer segmenter"]}[graph]
    cast.scripts.update({role: list(done) for role in roles if approved or role != gated.get(graph)})
    if graph == "handoff":
        cast.scripts["triage agent"] = [call("handoff_analytics", reason="sales"), ("final", "routed")]
    if graph == "hierarchical":
        cast.decisions["Delegation"] = [{"teams": ["customers"], "rationale": "scripted"}]
        cast.decisions["CustomersPlan"] = [{"workers": ["segments"], "rationale": "scripted"}]


@pytest.mark.parametrize(("module", "node"), [
    ("relaygraph.graphs.sequential", "report"), ("relaygraph.graphs.parallel", "aggregate"),
    ("relaygraph.graphs.handoff", "analytics"), ("relaygraph.graphs.hierarchical", "segments"),
])
def test_approval_interrupts_before_the_named_node_and_resumes_both_ways(cast, module, node, invoke_config) -> None:
    task = "Check data quality, analyse sales, segment the customers and write a report."
    for decision, status in (({"approved": True, "comment": "go"}, "completed"),
                             ({"approved": False, "comment": "not now"}, "rejected")):
        approval_cast(cast, module, decision["approved"])
        graph = compiled(module)
        config = config_with({"configurable": {"thread_id": f"{node}-{status}"}}, approve_before=[node])
        paused = graph.invoke({"task": task}, config)
        waiting = paused["__interrupt__"]
        assert [w.value["node"] for w in waiting] == [node]
        assert "result" not in paused
        done = graph.invoke(Command(resume=decision), config)
        assert done["result"]["status"] == status, done["result"]
        assert done["result"]["approvals"][0] | {"decided_at": None} == {
            "node": node, "approved": decision["approved"], "comment": decision["comment"], "decided_at": None}
        assert (node in (done.get("answers") or {})) == decision["approved"]  # the node ran, or not
        outcomes = [p["status"] for p in done["progress"] if p["node"] == node]
        rejections = [e for e in done["result"]["errors"] if e.get("outcome") == "rejected"]
        if decision["approved"]:
            assert "rejected" not in outcomes and not rejections
        else:  # what never ran is in progress and result.errors as rejected, not missing or failed
            assert outcomes == ["rejected"], done["progress"]
            assert [(e["node"], e["reason"]) for e in rejections] == [(node, "rejected before it ran: not now")]
        assert not cast.leftovers(), cast.leftovers()
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


@pytest.mark.parametrize("approved", [True, False])
def test_one_parallel_branch_is_gated_by_its_agent_name(cast, approved) -> None:
    """``approve_before=["validator"]`` pauses before that branch only (the others run); approving
    runs it, rejecting records it as rejected while the others finish and the run is partial."""
    specialists(cast, "profiler", "segmenter", "scorer", *(["validator"] if approved else []))
    graph = compiled("relaygraph.graphs.parallel")
    config = {"configurable": {"thread_id": f"branch-gate-{approved}", "approve_before": ["validator"]}}
    paused = graph.invoke({"task": "Clean, then validate, profile, segment, score."}, config)
    assert [w.value["node"] for w in paused["__interrupt__"]] == ["validator"]
    assert set(paused["branches"]) == {"profiler", "segmenter", "scorer"}  # the other branches ran
    assert "result" not in paused
    done = graph.invoke(Command(resume={"approved": approved, "comment": "no validation today"}), config)
    result = done["result"]
    assert not cast.leftovers(), cast.leftovers()
    statuses = {b: s["status"] for b, s in result["parallel"]["branches"].items()}
    if approved:
        assert result["status"] == "completed" and set(statuses.values()) == {"completed"}
        assert result["approvals"][0]["approved"] is True and "branch" not in result["approvals"][0]
    else:
        assert result["status"] == "partial"
        assert statuses == {"validator": "rejected", "profiler": "completed", "segmenter": "completed",
                            "scorer": "completed"}
        (error,) = result["errors"]
        assert error["node"] == "validator" and "rejected before it ran: no validation today" in error["reason"]
        assert error["outcome"] == "rejected" and error["branch"] == "validator"
        assert result["failed"] == {} and result["rejected"] == {"validator": "rejected before it ran: no validation today"}
        assert result["parallel"]["specialists"]["validator"] | {"branches": None} == {
            "branches": None, "completed": 0, "partial": 0, "failed": 0, "rejected": 1, "rows_covered": 0}
        assert [(p["node"], p["status"]) for p in done["progress"] if p["node"] == "validator"] == [
            ("validator", "rejected")]
        assert result["approvals"][0] | {"decided_at": None} == {
            "node": "validator", "branch": "validator", "approved": False, "comment": "no validation today",
            "decided_at": None}
        assert "3/4 branches succeeded" in result["answer"] and "■ validator rejected before it ran" in result["answer"]
    assert cast.calls.get("data validator", 0) == (2 if approved else 0)  # its call and its answer, or never asked


def test_an_unknown_branch_name_is_refused_and_the_graph_lists_its_branches() -> None:
    from relaygraph.graphs.parallel import build_graph
    from relaygraph.nodes.approval import approvable_names

    assert {"validator", "profiler", "segmenter", "scorer", "specialist"} <= approvable_names(build_graph())
    build_graph(approve_before=["validator"])  # a branch name is a gate
    with pytest.raises(ValueError, match="unknown node.*nowhere.*nodes and branches are: .*validator"):
        build_graph(approve_before=["nowhere"])
