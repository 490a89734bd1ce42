"""The consensus graph with real agents, every model call scripted (the ``cast`` double): each
voter's tool calls and ballot are the test's, so a result proves the graph, not the offline
policy's keyword rules."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from relaygraph.graphs.consensus import build_graph
from relaygraph.tools.sample import SAMPLE_NAME

NORTH_FACTS = {"group_by": "region", "metric": "revenue", "groups.0.group": "North"}


def run(invoke_config: dict[str, Any], **options: Any) -> dict[str, Any]:
    graph = build_graph().compile(checkpointer=InMemorySaver())
    config = {"configurable": {**invoke_config["configurable"], **options}}
    return graph.invoke({"task": "Which region earns most?"}, config)


def aggregate_call() -> tuple[str, str, dict[str, Any]]:
    return ("call", "aggregate", {"dataset": SAMPLE_NAME, "group_by": "region", "metric": "revenue"})


def ballot_call(choice: str, facts: dict[str, Any] | None = None, confidence: float = 0.9):
    evidence = json.dumps([{"tool": "aggregate", "facts": facts}]) if facts is not None else None
    return ("call", "submit_ballot", {"choice": choice, "confidence": confidence, "evidence": evidence})


def ballot_north(confidence: float = 0.9) -> list[Any]:
    """An honest voter that checks the data and submits its ballot with the facts."""
    return [aggregate_call(), ballot_call("North", NORTH_FACTS, confidence), ("final", "voted")]


def answer_north() -> list[Any]:
    """An honest voter that checks the data and answers without calling submit_ballot: its ballot
    is read from its own tool observation."""
    return [aggregate_call(), ("final", "North has the highest total revenue.")]


def running(voters: int, faults: str) -> list[int]:
    """The voters whose agents run: every one but those given the ``crash`` fault (positionally)."""
    given = faults.split(",") if faults else []
    return [i for i in range(1, voters + 1) if i > len(given) or given[i - 1] != "crash"]


def vote_north(cast: Any, voters: int, faults: str = "", rounds: int = 1, skip: tuple[int, ...] = ()) -> None:
    """Script every running voter (but ``skip``) to submit North, once per round."""
    for i in running(voters, faults):
        if i not in skip:
            cast.scripts[f"voter {i}"] = ballot_north() * rounds


CASES = [  # mode, voters, faults (at most f), faulty voters the result must name
    ("majority", 4, "lie", {"voter_1"}),
    ("qualified", 4, "silent", {"voter_1"}),
    ("unanimous", 3, "", set()),
    ("weighted", 4, "equivocate", {"voter_1"}),
    ("bft", 4, "equivocate", {"voter_1"}),
    ("bft", 7, "lie,crash", {"voter_1", "voter_2"}),
    ("pbft", 4, "lie", {"voter_1"}),
    ("pbft", 7, "equivocate,silent", {"voter_1", "voter_2"}),
    ("pbft", 4, "delay", set()),
    ("raft", 5, "crash,silent", {"voter_1", "voter_2"}),
]

#: the decision's confidence per case: the share of all voters whose counted ballot backs it (the
#: honest ones here); weighted: the share of the weight cast (the equivocator's does not count)
CONFIDENCE = {("majority", "lie"): 3 / 4, ("qualified", "silent"): 3 / 4, ("unanimous", ""): 1.0,
              ("weighted", "equivocate"): 1.0, ("bft", "equivocate"): 3 / 4, ("bft", "lie,crash"): 5 / 7,
              ("pbft", "lie"): 3 / 4, ("pbft", "equivocate,silent"): 5 / 7,
              ("pbft", "delay"): 3 / 4,  # the late voter's messages reached no one before the commit
              ("raft", "crash,silent"): 3 / 5}


@pytest.mark.parametrize(("mode", "voters", "faults", "faulty"), CASES)
def test_each_mode_decides_right_with_up_to_f_faults_and_names_the_faulty(
        mode, voters, faults, faulty, cast, sample_path, invoke_config) -> None:
    # Voter 2 calls the ballot tool; the other running voters answer in words, so their ballots
    # are read from their own tool observations: both paths, in every mode.
    for i in running(voters, faults):
        cast.scripts[f"voter {i}"] = ballot_north() if i == 2 else answer_north()
    out = run(invoke_config, mode=mode, voters=voters, faults=faults)
    block = out["result"]["consensus"]
    assert block["decision"] == "north", block
    assert out["result"]["status"] == "completed"
    assert block["mode"] == mode and block["fallback"] is False
    assert block["confidence"] == round(CONFIDENCE[mode, faults], 3), block.get("confidence")
    assert faulty <= set(block["suspects"]), block["suspects"]
    honest = {f"voter_{i}" for i in range(1, voters + 1)} - set(faults and [
        f"voter_{i}" for i in range(1, len(faults.split(",")) + 1)])
    assert not honest & set(block["suspects"]), block["suspects"]  # nobody honest is accused
    assert block["messages_sent"] > 0 and block["ballots"]
    sources = {b["voter"]: b["source"] for b in block["ballots"] if b.get("source")}
    assert sources == {f"voter_{i}": "submit_ballot" if i == 2 else "tool observation"
                       for i in running(voters, faults)}
    if mode == "pbft":  # one view change per faulty primary in a row: voter_1 leads view 0, voter_2 view 1
        assert block["views"] == {"lie": 1, "equivocate,silent": 2, "delay": 1}[faults]
    if mode == "raft":  # an ordered log of ballots, then the decision; the crashed voter caught up
        assert block["log"][-1] == "decision:north" and block["log_safety_violations"] == []
        # Raft has terms, not views; two with this seed (the crash-only run of the phase test elects in term 1)
        assert block["terms"] == 2 and block["views"] is None
        assert block["caught_up"] == {"voter_1": True}


def test_an_agent_whose_evidence_does_not_match_its_tools_is_caught_without_any_injected_fault(
        cast, sample_path, invoke_config) -> None:
    """A hallucinating agent: it ran the tool, then claimed the tool said something else."""
    vote_north(cast, 2)
    cast.scripts["voter 3"] = [aggregate_call(), ballot_call("South", {**NORTH_FACTS, "groups.0.group": "South"}),
                                ("final", "voted")]
    out = run(invoke_config, mode="majority", voters=3)
    block = out["result"]["consensus"]
    assert block["decision"] == "north" and block["tally"]["cast"] == 2
    assert "the tool returned 'North'" in block["suspects"]["voter_3"][0]


def test_bft_voters_revise_after_seeing_the_tally_and_agree_in_a_later_round(cast, sample_path,
                                                                              invoke_config) -> None:
    # n=4, f=1: agreement needs 3. Round 1 splits 2–2; in round 2 voter 3 follows the evidence.
    vote_north(cast, 2, rounds=2)
    for voter in ("voter 3", "voter 4"):
        cast.scripts[voter] = [aggregate_call(), ballot_call("South", confidence=0.4), ("final", "voted")]
    cast.scripts["voter 3"] += [aggregate_call(), ballot_call("North", NORTH_FACTS), ("final", "revised")]
    cast.scripts["voter 4"] += [aggregate_call(), ballot_call("South", confidence=0.4), ("final", "kept")]
    out = run(invoke_config, mode="bft", voters=4)
    block = out["result"]["consensus"]
    assert (block["decision"], block["rounds"], block["fallback"]) == ("north", 2, False)
    assert [r["tally"] for r in out["rounds"]] == [{"north": 2, "south": 2}, {"north": 3, "south": 1}]
    assert "voter_3" not in block["suspects"]  # moving to a round-1 leader is a legitimate revision
    runs = Counter(p["node"] for p in out["progress"] if p["node"].startswith("voter_"))
    assert runs == {f"voter_{i}": 2 for i in range(1, 5)}  # every voter was asked once per round


def test_bft_without_agreement_after_five_rounds_falls_back_and_says_so(cast, sample_path, invoke_config) -> None:
    vote_north(cast, 2, rounds=5)  # confidence 0.9 each
    for voter in ("voter 3", "voter 4"):
        cast.scripts[voter] = [aggregate_call(), ballot_call("South", confidence=0.4), ("final", "no")] * 5
    out = run(invoke_config, mode="bft", voters=4)
    block = out["result"]["consensus"]
    assert block["rounds"] == 5 and block["fallback"] is True
    assert block["decision"] == "north"  # 2–2 tie broken by summed confidence: 1.8 against 0.8
    assert "plurality fallback" in block["reason"] and "tie" in block["reason"]


def test_bft_with_more_than_f_liars_runs_five_rounds_then_falls_back_with_lower_confidence(
        cast, sample_path, invoke_config) -> None:
    """n=4 tolerates f=1; two liars leave 2 counted ballots < n−f = 3 in every round."""
    from relaygraph.graphs.consensus import check_config

    check_config({"mode": "bft", "voters": 4, "faults": "lie,lie"})  # accepted up front (pbft would refuse)
    vote_north(cast, 4, rounds=5)  # the liars' honest ballots are replaced by fabricated ones
    out = run(invoke_config, mode="bft", voters=4, faults="lie,lie")
    block = out["result"]["consensus"]
    assert (block["rounds"], block["fallback"], block["decision"]) == (5, True, "north")
    assert block["confidence"] == 0.5 and "fallback" in out["result"]["answer"]
    assert "no round reached the 3 of 4 matching ballots" in block["reason"]
    assert {"voter_1", "voter_2"} <= set(block["suspects"]) and not {"voter_3", "voter_4"} & set(block["suspects"])


def test_impossible_fault_counts_are_refused_before_any_agent_runs(isolated_env, cast) -> None:
    """Nothing is scripted: an agent asked to vote would fail the test."""
    from relaygraph.cli.main import app
    from typer.testing import CliRunner

    cases = {("pbft", "4", "lie,lie"): "needs n ≥ 3f+1 = 7 replicas; got n=4",
             ("raft", "3", "lie"): "raft tolerates crashes, not lies",
             ("majority", "3", "voter_9=lie"): "faults name unknown voters",
             ("qualified", "3", "nap"): "unknown fault 'nap'",
             ("majority", "3", "voter_1=lie,voter_1=crash"): "voter_1 is given two faults (lie, crash)",
             ("bft", "4", "lie,voter_1=silent"): "voter_1 is given two faults (lie, silent)"}
    for (mode, voters, faults), message in cases.items():
        result = CliRunner().invoke(app, ["run", "consensus", "--param", f"mode={mode}", "--param",
                                          f"voters={voters}", "--param", f"faults={faults}"])
        assert result.exit_code == 2, result.output
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    result = CliRunner().invoke(app, ["run", "consensus", "--param", "threshold=0.4", "--param", "mode=qualified"])
    assert result.exit_code == 2 and "0.51–1.0" in result.stderr
    result = CliRunner().invoke(app, ["run", "consensus", "--param", "mode=majority", "--param", "threshold=0.8"])
    assert result.exit_code == 2 and "threshold: applies only to mode=qualified" in result.stderr


def test_spans_show_one_child_per_bft_round(spans, cast, sample_path, invoke_config) -> None:
    vote_north(cast, 2, rounds=2)
    for voter in ("voter 3", "voter 4"):  # round 1 splits 2–2; round 2 agrees
        cast.scripts[voter] = [aggregate_call(), ballot_call("South", confidence=0.4), ("final", "no"),
                               *ballot_north()]
    run(invoke_config, mode="bft", voters=4)
    finished = spans.get_finished_spans()
    index = {s.context.span_id: s for s in finished}
    rounds = [s for s in finished if s.name.startswith("consensus.round ")]
    assert all(index[s.parent.span_id].name == "node decide" for s in rounds)
    assert sorted(s.name for s in rounds) == ["consensus.round 1", "consensus.round 2"]
    assert len({s.parent.span_id for s in rounds}) == 2  # each round in its own decide step


@pytest.mark.parametrize(("voters", "faults"), [(4, "silent"), (4, "lie"), (7, "equivocate,delay")])
def test_each_pbft_step_holds_only_messages_of_the_phases_its_label_names(voters, faults, cast, sample_path,
                                                                          invoke_config) -> None:
    """A silent primary used to give a 'start' step holding view changes, and every later label
    one step off (the event opening a phase was filed with the phase before it)."""
    vote_north(cast, voters, faults)
    out = run(invoke_config, mode="pbft", voters=voters, faults=faults)
    phases = {p["step"]: p["phase"] for p in out["result"]["consensus"]["phases"]}
    in_state = [m for m in out["messages"] if m["protocol"] == "pbft"]
    assert in_state and {m["step"] for m in in_state} == set(phases)
    for m in in_state:
        view = m["body"].get("view")
        kind = m["kind"] if view is None else f"{m['kind']} (view {view})"
        assert m["phase"] == phases[m["step"]] and kind in phases[m["step"]].split(" + "), (m["step"], kind, phases)
    for step, phase in phases.items():  # each step opens with its label's first phase
        first = next(m for m in in_state if m["step"] == step)
        assert phase.startswith(f"{first['kind']} (view {first['body'].get('view')})"), (step, phase)
    assert out["result"]["consensus"]["decision"] == "north"


def test_bft_reason_gives_the_real_count_and_a_silent_ballot_says_withheld(cast, sample_path,
                                                                            invoke_config) -> None:
    vote_north(cast, 7, "silent")
    out = run(invoke_config, mode="bft", voters=7, faults="silent")
    block = out["result"]["consensus"]
    assert block["reason"] == "'north' backed by 6 of 7 (agreement needs 5) in round 1", block["reason"]
    silent = next(b for b in block["ballots"] if b["voter"] == "voter_1")
    assert (silent["status"], silent["withheld"]) == ("withheld", True)
    assert {b["status"] for b in block["ballots"] if b["voter"] != "voter_1"} == {"voted"}
    assert block["terms"] is None and block["confidence"] == round(6 / 7, 3)


def test_a_delayed_pbft_voter_is_called_delayed_not_silent(cast, sample_path, invoke_config) -> None:
    vote_north(cast, 7, "equivocate,delay")
    out = run(invoke_config, mode="pbft", voters=7, faults="equivocate,delay")
    block = out["result"]["consensus"]
    late = next(b for b in block["ballots"] if b["voter"] == "voter_2")
    assert late["late"] is True and block["decision"] == "north"
    assert [w.split(":")[0] for w in block["suspects"]["voter_2"]] == ["delayed"], block["suspects"]
    assert "none of which reached a peer before the replicas decided" in block["suspects"]["voter_2"][0]


@pytest.mark.parametrize(("mode", "voters", "faults", "expected"), [
    ("pbft", 4, "lie", ["pre-prepare (view 0)", "view-change (view 1)", "new-view (view 1)", "pre-prepare (view 1)",
                        "prepare (view 1)", "commit (view 1)"]),
    ("raft", 5, "crash", ["election (term 1)", "replication (term 1)", "decision (term 1)", "catch-up"]),
])
def test_each_protocol_phase_is_a_graph_step_with_its_own_span(mode, voters, faults, expected, spans, cast,
                                                               sample_path, invoke_config) -> None:
    vote_north(cast, voters, faults)
    out = run(invoke_config, mode=mode, voters=voters, faults=faults)
    assert [p["phase"] for p in out["result"]["consensus"]["phases"]] == expected
    finished = spans.get_finished_spans()
    index = {s.context.span_id: s for s in finished}
    steps = sorted((s for s in finished if s.name == "node protocol"), key=lambda s: s.start_time)
    phases = sorted((s for s in finished if s.name.startswith(f"{mode}.")), key=lambda s: s.start_time)
    assert [s.name for s in phases] == [f"{mode}.{p}" for p in expected]
    assert [index[s.parent.span_id] for s in phases] == steps  # one child per step, one step per phase
    in_state = [m for m in out["messages"] if m["protocol"] == mode]  # the protocol's messages live in state
    assert [s.attributes["relaygraph.consensus.messages"] for s in phases] == \
        [p["messages"] for p in out["result"]["consensus"]["phases"]]
    assert sum(p["messages"] for p in out["result"]["consensus"]["phases"]) == len(in_state) > 0
    assert {(m["src"], m["dst"], m["kind"]) for m in in_state} >= {("voter_1", "voter_2", expected[0].split()[0])} \
        if mode == "pbft" else all(m["body"]["term"] >= 1 for m in in_state)


def test_a_voter_whose_agent_keeps_failing_is_a_crash_not_a_failed_run(cast, sample_path, invoke_config) -> None:
    vote_north(cast, 4, skip=(2,))
    cast.failures["voter 2"] = RuntimeError("model server down")
    out = run(invoke_config, mode="bft", voters=4)
    block = out["result"]["consensus"]
    assert block["decision"] == "north" and block["rounds"] == 1  # 3 of 4 agree: n − f
    assert "its agent failed in round 1" in block["suspects"]["voter_2"][0]
    assert out["result"]["status"] == "partial" and out["result"]["errors"][0]["agent"] == "voter_2"
    assert cast.calls["voter 2"] == 2  # retried once (max_retries=2), then counted out


def test_the_ballot_tool_refuses_bad_input_so_the_agent_can_fix_it(cast, sample_path, invoke_config) -> None:
    vote_north(cast, 3, skip=(1,))
    cast.scripts["voter 1"] = [aggregate_call(), ballot_call("North", confidence=7),
                                ballot_call("North", NORTH_FACTS), ("final", "voted")]
    out = run(invoke_config, mode="majority", voters=3)
    steps = [s for s in out["steps"] if s["agent"] == "voter_1"]
    assert "confidence must lie between 0 and 1, got 7" in steps[1]["error"]  # the agent saw why
    assert steps[2]["tool"] == "submit_ballot" and "Ballot recorded: North" in steps[2]["observation"]
    assert steps[2]["facts"] == {"choice": "North"}  # a typed ToolResult, not a JSON string
    assert out["result"]["consensus"]["decision"] == "north"


def test_a_voters_facts_come_from_the_typed_result_only_never_from_its_observation_text() -> None:
    from relaygraph.nodes.consensus import tool_observations

    cut = '{"group_by": "region", "groups": [{"group": "North", "revenue": 1… [truncated 900 chars]'
    steps = [{"tool": "aggregate", "observation": cut, "facts": {}},
             {"tool": "detect_trends", "observation": "…", "facts": {"direction": "up", "series": [{"slope": 2}]}}]
    assert tool_observations(steps) == {"aggregate": {}, "detect_trends": {"direction": "up", "series.0.slope": 2}}


class Killed(BaseException):
    """Stands for the process dying in the middle of a protocol step (not an error a node handles)."""


def protocol_messages(state: dict[str, Any], mode: str) -> list[tuple[int, str, str, str, str]]:
    return [(m["step"], m["src"], m["dst"], m["kind"], m["signature"]) for m in state["messages"]
            if m["protocol"] == mode]


@pytest.mark.parametrize(("mode", "voters", "faults"), [("pbft", 4, "lie"), ("raft", 5, "crash")])
def test_killed_mid_protocol_resumes_from_the_checkpointed_phases(mode, voters, faults, cast, sample_path,
                                                                  invoke_config, monkeypatch) -> None:
    from relaygraph.coordination.network import PhasedRun

    vote_north(cast, voters, faults, rounds=2)  # one ballot for the whole run, one for the killed run
    options = {"mode": mode, "voters": voters, "faults": faults}
    replay, replayed = PhasedRun.replay, []
    monkeypatch.setattr(PhasedRun, "replay", lambda self, recorded: (replayed.append(len(recorded)),
                                                                     replay(self, recorded))[1])
    whole = run({"configurable": {"thread_id": "uninterrupted"}}, **options)
    assert replayed == []  # one process, one run: each step goes on from the live replicas
    asked = dict(cast.calls)
    cast.calls.clear()

    step, ran, killed = PhasedRun.step, [], []

    def dying_step(self: PhasedRun, **kw: Any):
        if len(self.steps) == 2 and not killed:  # phases 1 and 2 are checkpointed; die running phase 3
            killed.append(True)
            raise Killed()
        ran.append(len(self.steps) + 1)
        return step(self, **kw)

    monkeypatch.setattr(PhasedRun, "step", dying_step)
    graph = build_graph().compile(checkpointer=InMemorySaver())
    config = {"configurable": {**invoke_config["configurable"], **options}}
    with pytest.raises(Killed):
        graph.invoke({"task": "Which region earns most?"}, config)
    saved = graph.get_state(config)
    assert saved.next == ("protocol",) and [p["step"] for p in saved.values["protocol"]] == [1, 2]
    assert {m["step"] for m in saved.values["messages"] if m["protocol"] == mode} == {1, 2}

    resumed = graph.invoke(None, config)
    assert cast.calls == asked  # every voter was asked once in all: none again after the kill
    phases = len(whole["result"]["consensus"]["phases"])
    assert phases == {"pbft": 6, "raft": 4}[mode]  # as the phase test lists them
    assert ran == list(range(1, phases + 1))  # 1–2 replayed from state, not run again
    assert replayed == [2]  # the resumed step rebuilt the replicas from the two checkpointed phases
    assert resumed["result"]["consensus"]["decision"] == whole["result"]["consensus"]["decision"] == "north"
    assert resumed["result"]["consensus"]["phases"] == whole["result"]["consensus"]["phases"]
    assert protocol_messages(resumed, mode) == protocol_messages(whole, mode)


def test_a_protocol_step_refuses_to_continue_from_messages_it_cannot_reproduce(cast, sample_path,
                                                                               invoke_config) -> None:
    from relaygraph.coordination.network import ReplayDiverged
    from relaygraph.nodes.consensus import protocol

    vote_north(cast, 4)
    graph = build_graph(approve_before=None).compile(checkpointer=InMemorySaver(), interrupt_after=["protocol"])
    config = {"configurable": {**invoke_config["configurable"], "mode": "pbft", "voters": 4}}
    graph.invoke({"task": "Which region earns most?"}, config)
    state = dict(graph.get_state(config).values)
    assert protocol(state, config)["protocol"][0]["step"] == 2  # as checkpointed: it continues
    forged = [dict(m) for m in state["messages"]]
    first = next(m for m in forged if m["protocol"] == "pbft")
    first["body"] = {**first["body"], "value": "south"}  # a message state holds, altered
    with pytest.raises(ReplayDiverged, match="does not reproduce step 1"):
        protocol({**state, "messages": forged}, config)


def test_a_team_brings_its_own_voters_and_the_protocol_checks_them_like_built_in_ones(
        cast, sample_path, invoke_config) -> None:
    """``consensus_team(voters=[...])``: the team's agents vote under their own names, roles and
    tools (plus the question's tool), ``faults=lie`` names the first of them, and a lie is caught
    by the same evidence check — the result speaks of these voters, not voter_1..voter_N."""
    from relaygraph.graphs.patterns import consensus_team
    from relaygraph.nodes.agent import AgentSpec

    team = [AgentSpec(name="auditor", role="data auditor", instructions="You audit data.",
                      tools=("profile_dataset",)),
            AgentSpec(name="analyst", role="sales analyst", instructions="You analyse sales.", tools=("aggregate",)),
            AgentSpec(name="skeptic", role="skeptic", instructions="Doubt, then check.", tools=("aggregate",))]
    cast.scripts["data auditor"] = [("call", "profile_dataset", {"dataset": SAMPLE_NAME}), *ballot_north()]
    cast.scripts["sales analyst"] = ballot_north()
    cast.scripts["skeptic"] = answer_north()
    graph = consensus_team(team).compile(checkpointer=InMemorySaver())
    config = {"configurable": {**invoke_config["configurable"], "mode": "majority", "faults": "lie"}}
    out = graph.invoke({"task": "Which region earns most?"}, config)
    assert not cast.leftovers(), cast.leftovers()
    block = out["result"]["consensus"]
    assert block["decision"] == "north" and block["voters"] == 3 and out["result"]["status"] == "completed"
    assert {b["voter"] for b in block["ballots"]} == {"auditor", "analyst", "skeptic"}
    assert set(block["suspects"]) == {"auditor"}  # the first voter lied (faults=lie) and was caught
    assert set(block["reputation"]) == {"auditor", "analyst", "skeptic"}
    assert {s["tool"] for s in out["steps"] if s["agent"] == "auditor"} >= {"profile_dataset", "aggregate"}
    assert {p["node"] for p in out["progress"]} >= {"auditor", "analyst", "skeptic"}

    with pytest.raises(ValueError, match="this team's voters are auditor, analyst, skeptic"):
        graph.invoke({"task": "Again."}, {"configurable": {"thread_id": "other", "voters": 5}})
    with pytest.raises(ValueError, match="unique: analyst"):
        consensus_team([team[1], team[1]])


@pytest.mark.parametrize("mode", ["majority", "pbft"])
def test_the_console_marks_a_faulty_voter_flagged_not_only_its_completed_step(mode, cast, sample_path,
                                                                               invoke_config) -> None:
    """The liar's agent step completed (✓ voter_1), so the console must also say it was caught."""
    import io

    from rich.console import Console
    from relaygraph.cli.common import Progress

    for i in range(1, 5):
        cast.scripts[f"voter {i}"] = ballot_north()
    graph = build_graph().compile(checkpointer=InMemorySaver())
    config = {"configurable": {**invoke_config["configurable"], "mode": mode, "voters": 4, "faults": "lie"}}
    buffer = io.StringIO()
    progress = Progress(Console(file=buffer, width=200, color_system=None), quiet=False)
    for chunk in graph.stream({"task": "Which region earns most?"}, config, stream_mode="updates"):
        for node, update in chunk.items():
            if isinstance(update, dict):
                progress(node, update)
    lines = buffer.getvalue().splitlines()
    flagged = [ln for ln in lines if ln.startswith("⚑ voter_1 flagged as faulty: ")]
    assert flagged, "\n".join(lines)
    assert not [ln for ln in lines if ln.startswith("⚑ voter_") and not ln.startswith("⚑ voter_1 ")]
