"""Voters' reputation across consensus runs: a track record in the checkpoint database.

Every voter's calls are scripted (the strict ``cast`` double): each submits North with the same
confidence, so the weights differ by reputation alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langgraph.checkpoint.memory import InMemorySaver
from relaygraph.coordination.voting import Reputation, run_record
from relaygraph.graphs.consensus import build_graph
from relaygraph.nodes import consensus_store
from relaygraph.nodes.contracts import ConsensusResult
from test_consensus_graph import vote_north


def run(thread: str, **options: Any) -> dict[str, Any]:
    graph = build_graph().compile(checkpointer=InMemorySaver())
    return graph.invoke({"task": "Which region earns most?"}, {"configurable": {"thread_id": thread, **options}})


def test_a_voter_that_lied_weighs_less_in_the_next_run(cast, sample_path, isolated_env) -> None:
    vote_north(cast, 4, rounds=3)  # three runs; in the first two, voter_1's ballot is replaced by a lie
    first = run("lie-1", mode="weighted", voters=4, faults="lie")["result"]["consensus"]
    assert "voter_1" in first["suspects"]
    assert first["reputation"]["voter_1"] == {"before": 0.5, "after": 1 / 3, "agreed": 0, "counted": 1}
    assert first["reputation"]["voter_2"] == {"before": 0.5, "after": 2 / 3, "agreed": 1, "counted": 1}

    second = run("lie-2", mode="weighted", voters=4, faults="lie")["result"]["consensus"]
    assert second["reputation"]["voter_1"]["before"] == 1 / 3
    assert second["reputation"]["voter_1"]["after"] == 0.25  # (0+1)/(2+2)

    honest = run("honest-3", mode="weighted", voters=4)["result"]["consensus"]  # voter_1 no longer lies
    weights = honest["weights"]  # confidence × reputation: the scripted voters are equally sure
    assert weights["voter_1"] < weights["voter_2"] == weights["voter_3"] == weights["voter_4"]
    assert weights["voter_1"] / weights["voter_2"] == pytest.approx((1 / 4) / (3 / 4))
    assert honest["tally"]["support"]["north"] == pytest.approx(sum(weights.values()))
    assert honest["reputation"]["voter_1"]["after"] == 2 / 5  # it agreed this time: (1+1)/(3+2)


def test_the_track_record_is_per_database_and_a_fresh_one_is_neutral(cast, sample_path, isolated_env,
                                                                     monkeypatch, tmp_path: Path) -> None:
    vote_north(cast, 3, rounds=3)
    run("db-a-1", mode="majority", voters=3, faults="lie")
    on_a = run("db-a-2", mode="majority", voters=3)["result"]["consensus"]["reputation"]
    assert (on_a["voter_1"]["before"], on_a["voter_2"]["before"]) == (1 / 3, 2 / 3)  # (0+1)/(1+2), (1+1)/(1+2)

    monkeypatch.setenv("RELAYGRAPH_CHECKPOINT_DB", f"sqlite:///{tmp_path / 'other.db'}")
    on_b = run("db-b-1", mode="weighted", voters=3)["result"]["consensus"]
    assert {v: r["before"] for v, r in on_b["reputation"].items()} == {f"voter_{i}": 0.5 for i in (1, 2, 3)}
    assert len(set(on_b["weights"].values())) == 1  # neutral: every voter weighs the same
    assert [r["thread_id"] for r in consensus_store.history(f"sqlite:///{tmp_path / 'other.db'}", "voter_1")] == \
        ["db-b-1"]


def test_a_run_is_recorded_once_per_thread(cast, sample_path, isolated_env, monkeypatch) -> None:
    vote_north(cast, 3)  # the voters run once: the re-run is finalize's alone
    db = f"sqlite:///{isolated_env['db']}"
    writes = []
    record_run = consensus_store.record_run
    monkeypatch.setattr(consensus_store, "record_run", lambda *a, **k: (writes.append(k), record_run(*a, **k)))
    graph = build_graph().compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "once", "mode": "majority", "voters": 3, "faults": "lie"}}
    graph.invoke({"task": "Which region earns most?"}, config)
    state = graph.get_state(config)
    graph.update_state(config, state.values, as_node="decide")  # finalize runs again (a re-run after a crash)
    graph.invoke(None, config)
    assert len(writes) == 2  # finalize ran twice
    assert consensus_store.load_records(db, ["voter_1", "voter_2"]) == {"voter_1": (0, 1), "voter_2": (1, 1)}


def test_the_result_is_the_declared_consensus_result(cast, sample_path, isolated_env) -> None:
    vote_north(cast, 4)
    result = run("typed", mode="pbft", voters=4, faults="lie")["result"]
    typed = ConsensusResult.model_validate(result)  # extra keys are refused: nothing patched in
    assert typed.consensus is not None and typed.consensus.decision == "north"
    assert set(typed.consensus.reputation) == {f"voter_{i}" for i in range(1, 5)}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["x", "y", None]), st.sampled_from(["x", "y", None]), st.booleans()),
                min_size=1, max_size=20))
def test_run_records_move_the_score_the_right_way(runs) -> None:
    """Reference: a flagged run or a ballot off the decision never raises the score; agreeing
    unflagged with a decision never lowers it; an undecided, unflagged run leaves it."""
    rep = Reputation()
    for choice, decision, flagged in runs:
        added = run_record(["v"], {"v": choice}, decision, {"v"} if flagged else set())
        after = rep.plus(added)
        if flagged:
            assert added == {"v": (0, 1)} and after.score("v") < rep.score("v")
        elif decision is None:
            assert added == {"v": (0, 0)} and after.score("v") == rep.score("v")
        elif choice == decision:
            assert added == {"v": (1, 1)} and after.score("v") > rep.score("v")
        else:
            assert added == {"v": (0, 1)} and after.score("v") < rep.score("v")
        rep = after
    agreed = sum(1 for c, d, f in runs if not f and d is not None and c == d)
    counted = sum(1 for c, d, f in runs if f or d is not None)
    assert rep.record.get("v", (0, 0)) == (agreed, counted)


def test_the_track_record_store_on_every_backend(any_url) -> None:
    """Summed per voter, replaced per thread, versioned by its migration set."""
    import sqlalchemy as sa

    def row(choice, suspected, agreed, counted):
        return {"choice": choice, "suspected": suspected, "agreed": agreed, "counted": counted}

    assert consensus_store.load_records(any_url, ["voter_1"]) == {}  # fresh database: no history
    consensus_store.record_run(any_url, thread_id="t1", mode="pbft", question="top_region", decision="north",
                               voters={"voter_1": row("south", True, 0, 1), "voter_2": row("north", False, 1, 1)})
    consensus_store.record_run(any_url, thread_id="t2", mode="majority", question="top_region", decision="north",
                               voters={"voter_1": row("north", False, 1, 1), "voter_2": row("north", False, 1, 1)})
    consensus_store.record_run(any_url, thread_id="t2", mode="majority", question="top_region", decision="north",
                               voters={"voter_1": row("north", False, 1, 1), "voter_2": row(None, True, 0, 1)})
    assert consensus_store.load_records(any_url, ["voter_1", "voter_2", "voter_9"]) == {
        "voter_1": (1, 2), "voter_2": (1, 2)}  # t2 counted once, as last recorded
    engine = consensus_store.engine_for(any_url)
    with engine.connect() as conn:
        assert consensus_store.CONSENSUS_MIGRATIONS.current_version(conn) == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(consensus_store.voter_records)).scalar_one() == 4
