"""The contract-net graph (graphs/auction.py): agents bid, win, execute, get verified and settled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest
from conftest import REPO, cli_here
from test_workflow_cli import RUNNER, child_env, wait_for


def run(config: dict[str, Any], **configurable: Any) -> dict[str, Any]:
    from relaygraph.graphs.auction import graph

    config = {**config, "configurable": {**config["configurable"], **configurable}}
    return graph.invoke({"task": "Allocate the partitions."}, config)


# --- scripted market (the strict ``cast`` double): every bidder, winner and verifier call -------

#: The default announcement: task k runs METHODS[k] on partition k/4, open to the capable bidders.
METHODS = {"t1": "validate_dataset", "t2": "score_records", "t3": "profile_dataset", "t4": "segment_customers"}
CAPABLE = {"t1": ("ana", "ben", "dee"), "t2": ("ben", "cai", "dee"), "t3": ("ana", "ben", "cai"), "t4": ("ben", "dee")}


def call(tool: str, **args: Any) -> tuple[str, str, dict[str, Any]]:
    return ("call", tool, args)


def bid() -> list[Any]:
    """A bidder that estimates its cost, then bids exactly that."""
    return [lambda b: call("estimate_cost", task_id=b.context["task_id"]),
            lambda b: call("submit_bid", task_id=b.context["task_id"],
                           cost=float(next(c for c in b.calls.values() if c.tool == "estimate_cost").artifacts["cost"])),
            ("final", "bid")]


def work(method: str) -> list[Any]:
    """A winner that runs the contracted method on the partition it was given."""
    return [lambda b: call(method, dataset=b.context["dataset"], partition=b.context["partition"]), ("final", "done")]


def verify() -> list[Any]:
    return [lambda b: call("check_acceptance", task_id=b.context["task_id"]), ("final", "verified")]


def auction(cast: Any, task: str, partition: str, winner: str | None, bidders: tuple[str, ...] | None = None,
            execution: list[Any] | None = None, verified: bool | None = None) -> None:
    """Script one auction round of ``task``: every bidder bids, the (known) winner works (its
    ``execution``, by default the right method on its partition) and the verifier checks it
    (unless ``execution`` is empty: a winner whose agent fails gives nothing to verify; nor does
    one whose tool raised, ``verified=False``). ``winner=None``: the task is priced, not awarded."""
    for name in bidders if bidders is not None else CAPABLE[task]:
        cast.scripts.setdefault(f"analyst {name}@{partition}", []).extend(bid())
    if winner is not None:
        steps = work(METHODS[task]) if execution is None else execution
        if steps:
            cast.scripts.setdefault(f"{winner} executing its contract@{partition}", []).extend(steps)
        if bool(steps) if verified is None else verified:
            cast.scripts.setdefault("contract verifier", []).extend(verify())


#: Who wins each task of the default announcement when every bidder bids its estimate: the best
#: capability match (ana validation 2.0, cai scoring 1.5, dee segmentation 2.0), except t3, where
#: the loads ana and cai won on t1 and t2 leave ben (profiling 1.0, no load) the cheapest.
WINNERS = {"t1": "ana", "t2": "cai", "t3": "ben", "t4": "dee"}


def market(cast: Any, tasks: int = 4) -> None:
    """Script a whole run in announced order: every task bid on, won by its WINNERS entry, verified."""
    for k in range(1, tasks + 1):
        auction(cast, f"t{k}", f"{k}/{tasks}", WINNERS[f"t{k}"])


def history(thread: str | None = None) -> list[dict[str, Any]]:
    from relaygraph.config.settings import get_settings
    from relaygraph.nodes.market_store import auction_history

    return auction_history(get_settings().checkpoint_db, thread)


def test_agents_bid_from_the_data_and_the_cheapest_capable_one_wins_each_task_smoke_offline_policy(
        sample_path, invoke_config) -> None:
    """The offline provider end to end (the demo): its agents bid what estimate_cost says."""
    state = run(invoke_config)
    result, market = state["result"], state["result"]["market"]
    assert result["status"] == "completed" and market["settled"] == market["total"] == 4
    assert "offline" in result["provider"]
    for key, bids in state["bids"].items():
        task = next(t for t in state["tasks"] if t["id"] == key.split("#")[0])
        entry = market["tasks"][task["id"]]
        placed = {n: b["cost"] for n, b in bids.items() if b["status"] == "bid"}
        assert placed and all(b["cost"] == b["estimate"] for b in bids.values())  # bid = the tool's estimate
        assert entry["winner"] == min(placed, key=lambda n: (placed[n], n))
        assert entry["price"] == sorted(placed.values())[1]  # vickrey: the second-lowest bid
        assert entry["rounds"][0]["verification"]["checks"] == {"method_called": True, "partition": True,
                                                                "rows": True}
    # Later auctions see the load earlier awards added: a loaded bidder's estimate carries it.
    loaded = [b for bids in state["bids"].values() for b in bids.values() if b["load_rows"] > 0]
    assert loaded and all(b["estimate"] > 0 for b in loaded)
    rows = history(invoke_config["configurable"]["thread_id"])
    assert [(r["task_id"], r["settlement"]) for r in rows] == [(f"t{k}", "paid") for k in range(1, 5)]
    steps = {s["tool"] for s in state["steps"]}
    assert {"estimate_cost", "submit_bid", "check_acceptance"} <= steps


def test_a_breach_is_re_auctioned_to_the_others_and_costs_reputation(sample_path, cast, invoke_config) -> None:
    # ana wins t1 (validation 2.0), then runs its tool on the wrong partition.
    auction(cast, "t1", "1/4", "ana", execution=[call("validate_dataset", dataset=sample_path.name, partition="2/4"),
                                                 ("final", "done")])
    auction(cast, "t1", "1/4", "ben", bidders=("ben", "dee"))  # ben and dee tie; the name breaks it
    auction(cast, "t2", "2/4", "cai")
    auction(cast, "t3", "3/4", "ana")  # its load went with its breach
    auction(cast, "t4", "4/4", "dee")
    state = run(invoke_config)
    t1 = state["result"]["market"]["tasks"]["t1"]
    first, second = t1["rounds"]
    assert first["contract"]["winner"] == "ana" and first["settlement"]["breach"] == "wrong_result"
    assert first["verification"]["checks"] == {"method_called": True, "partition": False, "rows": True}
    assert "ana" not in state["bids"]["t1#2"]  # the breaker is not asked again
    assert second["settlement"]["status"] == "paid" and t1["winner"] == "ben"
    assert (first["settlement"]["reputation_before"], first["settlement"]["reputation_after"]) == (0.8, 0.4)
    assert t1["breaches"] == ["ana: wrong_result"]
    rounds = [(r["round"], r["winner"], r["breach"]) for r in history() if r["task_id"] == "t1"]
    assert rounds == [(1, "ana", "wrong_result"), (2, t1["winner"], None)]


def test_in_regret_order_every_open_task_is_priced_each_round_and_the_one_with_most_to_lose_goes_first(
        sample_path, cast, invoke_config) -> None:
    # Regrets (second-lowest bid - lowest) on the sample: t4 0.4572, t2 0.381, t1 0.2286, t3 0.1524; once cai has
    # won t2 its load ties ana and ben on t3 (regret 0), so t1 goes before it.
    still_open = ["t1", "t2", "t3", "t4"]
    for chosen, winner in (("t4", "dee"), ("t2", "cai"), ("t1", "ana"), ("t3", "ben")):
        for task in still_open:  # every open task is priced by all its bidders; only the chosen one is awarded
            auction(cast, task, f"{task[1]}/4", winner if task == chosen else None)
        still_open.remove(chosen)
    state = run(invoke_config, order="regret")
    market = state["result"]["market"]
    assert state["result"]["status"] == "completed" and market["settled"] == market["total"] == 4
    won: dict[str, int] = {}
    for pricing in range(1, 5):  # one award per pricing round, as in bench/market.py
        offered = {key.split("#")[0]: bids for key, bids in state["bids"].items() if key.endswith(f"@{pricing}")}
        assert len(offered) == 5 - pricing  # every still-open task was priced, by every eligible bidder
        assert all(b["load_rows"] == won.get(name, 0) for bids in offered.values() for name, b in bids.items())
        costs = {t: sorted(b["cost"] for b in bids.values() if b["status"] == "bid") for t, bids in offered.items()}
        regret = {t: c[1] - c[0] if len(c) > 1 else float("inf") for t, c in costs.items()}
        [chosen] = [t for t, entry in market["tasks"].items() if entry["rounds"][0]["pricing"] == pricing]
        assert regret[chosen] == max(regret.values())  # the task with the most to lose went first
        entry = market["tasks"][chosen]
        assert entry["rounds"][0]["auction"]["winning_bid"] == costs[chosen][0]  # to its cheapest bidder
        won[entry["winner"]] = won.get(entry["winner"], 0) + entry["rows"]
    assert {t: (e["rounds"][0]["pricing"], e["winner"], e["price"]) for t, e in market["tasks"].items()} == {
        "t4": (1, "dee", 2.286), "t2": (2, "cai", 1.905), "t1": (3, "ana", 1.143), "t3": (4, "ben", 0.9906)}


def test_a_bidder_that_fails_for_good_is_recorded_and_the_run_is_partial(sample_path, cast, invoke_config) -> None:
    from relaygraph.nodes.contracts import AuctionResult

    auction(cast, "t1", "1/2", "ana", bidders=("ana", "ben"))
    auction(cast, "t2", "2/2", "cai", bidders=("ben", "cai"))
    cast.failures["analyst dee"] = RuntimeError("model server down")
    state = run(invoke_config, tasks=2)
    result = AuctionResult.model_validate(state["result"])  # the declared result type, not a patched dict
    assert result.market.settled == result.market.total == 2  # the auctions went on without dee
    assert all(b["dee"]["status"] == "no_bid" for k, b in state["bids"].items() if "dee" in b)
    assert result.status == "partial" and {(e.agent, e.node) for e in result.errors} == {("dee", "bid_dee")}


def test_a_late_delivery_is_a_breach_re_auctioned_to_the_others(sample_path, cast, invoke_config) -> None:
    # ana wins t1 (validation 2.0) and does the right work, but slowly: past the contract's deadline.
    auction(cast, "t1", "1/1", "ana")
    auction(cast, "t1", "1/1", "ben", bidders=("ben", "dee"))  # ben and dee tie; the name breaks it
    cast.slow, cast.delay = {"ana executing its contract"}, 2.0
    state = run(invoke_config, tasks=1, deadline_s=3.0)
    t1 = state["result"]["market"]["tasks"]["t1"]
    first, second = t1["rounds"]
    assert first["contract"]["winner"] == "ana" and first["contract"]["deadline_s"] == 3.0
    assert first["execution"]["duration_s"] > 3.0 and first["execution"]["error"] is None
    assert first["verification"]["checks"] == {"method_called": True, "partition": True, "rows": True}  # right, late
    assert first["settlement"]["breach"] == "late" and "deadline 3s" in first["settlement"]["reason"]
    assert (first["settlement"]["reputation_before"], first["settlement"]["reputation_after"]) == (0.8, 0.4)
    assert set(state["bids"]["t1#2"]) == {"ben", "dee"}  # re-auctioned to the others only
    assert second["settlement"]["status"] == "paid" and t1["winner"] == "ben"
    assert state["result"]["status"] == "completed" and t1["breaches"] == ["ana: late"]
    assert [(r["round"], r["winner"], r["breach"]) for r in history() if r["task_id"] == "t1"] == [
        (1, "ana", "late"), (2, t1["winner"], None)]
    assert state["result"]["market"]["reputation"]["ana"] == 0.4


def test_a_failed_execution_is_a_breach_and_reputation_persists_across_runs(sample_path, cast,
                                                                            invoke_config) -> None:
    cast.failures["ana executing its contract"] = RuntimeError("model server down")
    auction(cast, "t1", "1/4", "ana", execution=[])  # its agent fails: nothing to verify
    auction(cast, "t1", "1/4", "ben", bidders=("ben", "dee"))
    auction(cast, "t2", "2/4", "cai")
    auction(cast, "t3", "3/4", "ana", execution=[])
    auction(cast, "t3", "3/4", "cai", bidders=("ben", "cai"))
    auction(cast, "t4", "4/4", "dee")
    # the next run: ana is not asked
    auction(cast, "t1", "1/4", "ben", bidders=("ben", "dee"))
    auction(cast, "t2", "2/4", "cai")
    auction(cast, "t3", "3/4", "cai", bidders=("ben", "cai"))
    auction(cast, "t4", "4/4", "dee")
    first = run(invoke_config)
    assert first["result"]["market"]["tasks"]["t1"]["rounds"][0]["settlement"]["breach"] == "failure"
    breaches = [b for t in first["result"]["market"]["tasks"].values() for b in t["breaches"]]
    assert breaches.count("ana: failure") == 2  # t1, then t3 (profiling): 0.8 → 0.4 → 0.2
    assert first["result"]["status"] == "completed"  # both tasks were re-auctioned and done by others
    # The next run loads the stored reputation: 0.2 is under the 0.3 minimum, so ana is not asked.
    second = run({"configurable": {"thread_id": "again"}})
    assert set(second["bids"]["t1#1"]) == {"ben", "dee"}


@pytest.mark.parametrize("budget", [1, 3])
def test_a_winner_whose_agent_fails_is_retried_at_the_runs_budget_then_settled_as_a_breach(
        sample_path, cast, invoke_config, budget) -> None:
    cast.failures["ana executing its contract"] = ConnectionError("model server down")
    auction(cast, "t1", "1/1", "ana", execution=[])
    auction(cast, "t1", "1/1", "ben", bidders=("ben", "dee"))  # re-auctioned: the tie goes to ben by name
    state = run(invoke_config, tasks=1, max_retries=budget)
    assert cast.calls["ana executing its contract"] == budget  # the run's max_retries, not one try
    first, second = state["result"]["market"]["tasks"]["t1"]["rounds"]
    assert first["execution"]["error"] == "model error: ConnectionError: model server down"
    assert first["settlement"]["breach"] == "failure" and second["settlement"]["status"] == "paid"
    failed = [p for p in state["progress"] if p["status"] == "failed"]
    assert [(p["node"], p["attempt"]) for p in failed] == [("execute_t1", budget)]  # in state, on its last attempt
    assert state["result"]["status"] == "completed" and state["result"]["errors"] == []  # a breach, re-auctioned


def test_a_verifier_that_fails_for_good_leaves_the_work_unverified_and_the_winner_unblamed(
        sample_path, cast, invoke_config) -> None:
    cast.failures["contract verifier"] = ConnectionError("verifier model down")
    auction(cast, "t1", "1/1", "ana", verified=False)  # ana works; the verifier never gets to check it
    state = run(invoke_config, tasks=1, max_retries=2)
    assert cast.calls["contract verifier"] == 2  # the run's budget, then recorded
    result = state["result"]
    (only,) = result["market"]["tasks"]["t1"]["rounds"]  # not re-auctioned: the same verifier would check it
    assert only["verification"] is None
    assert only["settlement"]["status"] == "unverified" and only["settlement"]["paid"] == 0.0
    assert only["settlement"]["breach"] is None
    # a broken verifier is no evidence about the winner: ana's reputation is where it started
    assert only["settlement"]["reputation_after"] == only["settlement"]["reputation_before"]
    assert result["market"]["reputation"]["ana"] == only["settlement"]["reputation_before"]
    task = result["market"]["tasks"]["t1"]
    assert task["outcome"] == "unverified" and "the verifier failed" in task["reason"]
    # the verifier's failure on its last attempt, then the task listed by the market's verify step, not by ana
    assert [(e["agent"], e["node"], e.get("attempt"), e.get("max_attempts")) for e in result["errors"]] == [
        ("verifier", "verify_t1", 2, 2), ("market", "verify_t1", 1, None)]
    assert result["errors"][0]["reason"] == "model error: ConnectionError: verifier model down"
    assert result["errors"][1]["reason"].startswith("task t1 (validate_dataset) unverified: not verified")
    assert result["status"] == "failed" and result["market"]["settled"] == 0  # nothing verified, nothing paid


@pytest.mark.parametrize("kind", ["sealed", "english"])
def test_sealed_and_english_auctions_price_as_documented(sample_path, cast, invoke_config, kind) -> None:
    market(cast)
    state = run(invoke_config, auction=kind, decrement=0.01)
    # sealed: the lowest bid; english (from the reserve down by 0.01): the first clock price at or
    # over the second-lowest bid (t1: 2.8575 - 171 x 0.01 = 1.1475 >= 1.143)
    prices = {"sealed": [0.9144, 1.524, 0.762, 1.8288], "english": [1.1475, 1.9125, 0.995, 2.675]}[kind]
    tasks = state["result"]["market"]["tasks"]
    assert {t: (e["winner"], e["price"]) for t, e in tasks.items()} == {
        t: (WINNERS[t], pytest.approx(price)) for t, price in zip(("t1", "t2", "t3", "t4"), prices, strict=True)}
    for key, bids in state["bids"].items():
        entry = state["result"]["market"]["tasks"][key.split("#")[0]]
        costs = sorted(b["cost"] for b in bids.values() if b["status"] == "bid")
        if kind == "sealed":
            assert entry["price"] == costs[0]
        else:
            assert costs[1] - 1e-9 <= entry["price"] < costs[1] + 0.01 + 1e-9
            assert entry["rounds"][0]["auction"]["rounds"][0]["price"] == entry["reserve"]


def test_no_eligible_agent_and_no_bid_under_reserve_are_outcomes(sample_path, cast, invoke_config) -> None:
    nobody = run(invoke_config, min_reputation=0.95)  # no agent is asked (nothing is scripted yet)
    assert nobody["result"]["status"] == "failed"
    assert {t["outcome"] for t in nobody["result"]["market"]["tasks"].values()} == {"no_eligible_agent"}
    for k in range(1, 5):  # every task is bid on, none awarded: each estimate is over the reserve
        auction(cast, f"t{k}", f"{k}/4", None)
    cheap = run({"configurable": {"thread_id": "cheap"}}, reserve_factor=0.1)
    assert {t["outcome"] for t in cheap["result"]["market"]["tasks"].values()} == {"no_bid_under_reserve"}
    assert cheap["result"]["status"] == "failed" and cheap["result"]["market"]["settled"] == 0
    assert "reserve" in cheap["result"]["answer"]


def saved_bids(thread: str) -> set[str]:
    """``task#round/bidder`` keys of bids already in the thread's checkpoints (pending writes too)."""
    from relaygraph.config.checkpointing import open_checkpointer

    found: set[str] = set()
    with open_checkpointer() as saver:
        for item in saver.list({"configurable": {"thread_id": thread}}):
            values = [v for _, channel, v in item.pending_writes or [] if channel == "bids"]
            values.append((item.checkpoint.get("channel_values") or {}).get("bids") or {})
            for value in values:
                found |= {f"{key}/{bidder}" for key, bids in (value or {}).items() for bidder in bids}
    return found


def killed_market(play: Any) -> None:
    """The child's script (crash_runner's CRASH_SCRIPT): the whole market, of which it plays the
    first bids before it is killed with dee blocked in its first bid."""
    market(play)


@pytest.mark.slow
def test_an_auction_killed_mid_bidding_resumes_without_re_collecting_recorded_bids(isolated_env, tmp_path,
                                                                                   monkeypatch, cast) -> None:
    """The run is a separate process killed with SIGKILL, scripted by crash_runner's CRASH_SCRIPT
    (the in-process ``cast`` cannot reach it); the resume runs here, on the strict ``cast``, scripted
    with only what is left: a bid asked again that was already recorded has nothing scripted."""
    log, thread = tmp_path / "agents.log", "crash-auction"
    proc = subprocess.Popen([sys.executable, str(RUNNER), "run", "auction", "--thread-id", thread, "--json"],
                            env=child_env(isolated_env, log, "analyst dee", "test_auction_graph:killed_market"),
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    before = {"t1#1/ana", "t1#1/ben"}
    try:
        wait_for(lambda: log.is_file() and "block analyst dee@1/4" in log.read_text(), "dee to start bidding", proc)
        wait_for(lambda: before <= saved_bids(thread), f"{sorted(before)} to be checkpointed", proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL and "t1#1/dee" not in saved_bids(thread)

    market(cast)  # the rest of the market: ana's and ben's t1 bids are checkpointed, not asked again
    del cast.scripts["analyst ana@1/4"], cast.scripts["analyst ben@1/4"]
    resumed = cli_here(["resume", thread, "--json"], log, monkeypatch, cast)  # no process of its own needed
    assert resumed.exit_code == 0, resumed.output
    result = json.loads(resumed.stdout)["result"]
    assert result["status"] == "completed" and result["market"]["settled"] == 4
    assert {t: e["winner"] for t, e in result["market"]["tasks"].items()} == WINNERS
    starts = Counter(line.split(" ", 1)[1] for line in log.read_text().splitlines() if line.startswith("start "))
    assert starts["analyst ana@1/4"] == starts["analyst ben@1/4"] == 1, starts  # bids kept, not asked again
    assert starts["analyst dee@1/4"] == 2  # the bidder killed mid-bid was asked again, once


def test_traces_show_announce_bid_award_execute(sample_path, spans, cast, invoke_config) -> None:
    market(cast, tasks=2)
    run(invoke_config, auction="english", tasks=2)
    finished = spans.get_finished_spans()
    names = {s.name for s in finished}
    assert {"node announce", "node bid", "node award", "node execute", "node verify", "node settle"} <= names
    awards = [s for s in finished if s.name == "auction.award"]
    assert [s.attributes["auction.task"] for s in awards] == ["t1", "t2"]
    assert all(s.attributes["auction.kind"] == "english" and s.events for s in awards)  # clock rounds as events


def test_trace_spans_name_each_bidder_and_carry_task_bid_and_winner(sample_path, spans, cast,
                                                                    invoke_config) -> None:
    market(cast, tasks=2)
    state = run(invoke_config, auction="sealed", tasks=2)
    finished = spans.get_finished_spans()
    [announced] = [s for s in finished if s.name == "auction.announce"]
    assert json.loads(announced.attributes["auction.tasks"]) == ["t1", "t2"]
    bid_spans = [s for s in finished if s.name.startswith("bid ")]
    recorded = {(task_id.split("#")[0], bidder): b for task_id, by in state["bids"].items() for bidder, b in by.items()}
    # One span per bid, named by its bidder, with the task and the amount it bid.
    assert sorted(s.name for s in bid_spans) == ["bid ana", "bid ben", "bid ben", "bid cai", "bid dee", "bid dee"]
    assert len(recorded) == 6
    for s in bid_spans:
        bidder, task_id = s.name.removeprefix("bid "), s.attributes["auction.task"]
        assert s.attributes["auction.bidder"] == bidder
        assert s.attributes["auction.bid.amount"] == pytest.approx(recorded[(task_id, bidder)]["cost"])
    contracts = {t: m["contract"] for t, m in state["market"].items()}
    awards = {s.attributes["auction.task"]: s for s in finished if s.name == "auction.award"}
    executions = {s.name: s for s in finished if s.name.startswith("execute t")}
    assert {t: c["winner"] for t, c in contracts.items()} == {"t1": "ana", "t2": "cai"}
    assert set(awards) == {"t1", "t2"} and set(executions) == {"execute t1", "execute t2"}
    for task_id, contract in contracts.items():
        assert awards[task_id].attributes["auction.winner"] == contract["winner"]
        assert executions[f"execute {task_id}"].attributes["auction.executor"] == contract["winner"]
        assert executions[f"execute {task_id}"].attributes["auction.price"] == pytest.approx(contract["price"])


def sensors(isolated_env: dict[str, Any], rows: int = 40) -> str:
    """A dataset no customer analysis fits: readings with a timestamp, no customer column."""
    data = isolated_env["data"]
    data.mkdir(parents=True, exist_ok=True)
    lines = ["reading_id,sensor,recorded_at,temperature_c"]
    lines += [f"{k},s{k % 3},2024-01-{1 + k % 28:02d},{20 + (k % 7) * 0.5}" for k in range(rows)]
    (data / "sensors.csv").write_text("\n".join(lines) + "\n")
    return "sensors.csv"


def test_a_task_the_data_cannot_support_is_reported_unsupported_not_auctioned(isolated_env, cast,
                                                                             invoke_config) -> None:
    from relaygraph.nodes.market_store import load_reputation

    name = sensors(isolated_env)
    for k in range(1, 4):  # t1-t3 as usual, on 10-row partitions k/4; nobody is asked about t4
        auction(cast, f"t{k}", f"{k}/4", WINNERS[f"t{k}"])
    config = {**invoke_config, "configurable": {**invoke_config["configurable"], "tasks": 4}}
    from relaygraph.graphs.auction import graph

    state = graph.invoke({"task": "Allocate the partitions.", "data": name}, config)
    result, market = state["result"], state["result"]["market"]
    assert [t["id"] for t in state["tasks"]] == ["t1", "t2", "t3"]  # t4 (segment_customers) not announced
    assert not any(k.startswith("t4") for k in state["bids"])
    [unsupported] = market["unsupported"]
    assert unsupported["method"] == "segment_customers" and unsupported["partition"] == "4/4"
    assert "customer column" in unsupported["missing"][0]
    assert market["settled"] == 3 and market["total"] == 4 and result["status"] == "partial"
    assert any("t4" in e["reason"] and "segment_customers" in e["reason"] and "customer column" in e["reason"]
               for e in result["errors"])
    assert "unsupported" in result["answer"]
    # nobody was punished for what the data cannot do: the three paid winners gained (0.8 → 0.82), dee never won
    stored = load_reputation(__import__("relaygraph.config.settings", fromlist=["x"]).get_settings().checkpoint_db,
                             ["ana", "ben", "cai", "dee"])
    assert stored == {"ana": 0.82, "ben": 0.82, "cai": 0.82}


def test_an_execution_whose_tool_raises_is_a_failure_breach_with_the_error(sample_path, cast, invoke_config) -> None:
    # ana wins t1 and calls its tool with a partition that does not exist: its tool raises.
    auction(cast, "t1", "1/1", "ana", execution=[call("validate_dataset", dataset=sample_path.name, partition="9/4"),
                                                 ("final", "done")], verified=False)
    auction(cast, "t1", "1/1", "ben", bidders=("ben", "dee"))  # re-auctioned: the tie goes to ben by name
    state = run(invoke_config, tasks=1, max_retries=1)  # one attempt: the breach, not the retry, is tested
    first = state["result"]["market"]["tasks"]["t1"]["rounds"][0]
    assert "validate_dataset" in first["execution"]["error"] and "9/4" in first["execution"]["error"]
    assert first["execution"]["cause"] == "agent"  # the tool works on the data with its defaults
    assert first["settlement"]["breach"] == "failure" and first["settlement"]["cause"] == "agent"
    assert first["settlement"]["reputation_after"] == 0.4


def test_a_failure_caused_by_the_data_is_a_breach_that_keeps_reputation(sample_path, monkeypatch, cast,
                                                                       invoke_config) -> None:
    from relaygraph.config.settings import get_settings
    from relaygraph.nodes.market_store import load_reputation
    from relaygraph.tools.data import ValidateDatasetTool

    def unreadable(self: Any, dataset: str, constraints: Any = None, partition: str | None = None) -> Any:
        raise ValueError("column 'amount' holds values no parser reads")

    monkeypatch.setattr(ValidateDatasetTool, "forward", unreadable)  # fails on this data for anyone
    # Each winner runs validate_dataset right, its tool raises (nothing to verify), and t1 goes back to the others:
    # ana, then ben (the tie with dee broken by name), then dee alone; then nobody is left.
    auction(cast, "t1", "1/1", "ana", verified=False)
    auction(cast, "t1", "1/1", "ben", bidders=("ben", "dee"), verified=False)
    auction(cast, "t1", "1/1", "dee", bidders=("dee",), verified=False)
    state = run(invoke_config, tasks=1, max_retries=1)  # one attempt each: the cause, not the retry, is tested
    t1 = state["result"]["market"]["tasks"]["t1"]
    assert [r["contract"]["winner"] for r in t1["rounds"]] == ["ana", "ben", "dee"]
    assert t1["outcome"] == "no_eligible_agent" and state["result"]["status"] == "failed"
    for r in t1["rounds"]:
        assert r["execution"]["cause"] == "data" and r["settlement"]["breach"] == "failure"
        assert r["settlement"]["reputation_after"] == r["settlement"]["reputation_before"]
        assert "caused by the data" in r["settlement"]["reason"]
    assert all(v == 0.8 for v in load_reputation(get_settings().checkpoint_db, ["ana", "ben", "dee"]).values())


def test_agents_locked_out_by_reputation_are_named_shown_and_can_be_reset(sample_path, cast, invoke_config) -> None:
    import json

    from relaygraph.cli.main import app
    from relaygraph.config.settings import get_settings
    from relaygraph.nodes.market_store import load_reputation, record_auction
    from typer.testing import CliRunner

    db = get_settings().checkpoint_db
    for name, value in {"ana": 0.2, "ben": 0.1, "dee": 0.25}.items():  # validation bidders after late breaches
        record_auction(db, thread_id="earlier", task_id=f"t-{name}", round=1, kind="sealed", outcome="awarded",
                       winner=name, price=1.0, bids={name: 1.0}, duration_s=0.1, settlement="breach",
                       breach="late", reputation_after=value, counted_breach=True)
    locked = run(invoke_config, tasks=1)  # no agent is asked (nothing is scripted yet)
    reason = locked["result"]["market"]["tasks"]["t1"]["reason"]
    assert "excluded by reputation below min_reputation 0.3: ana 0.2, ben 0.1, dee 0.25" in reason
    assert "--param min_reputation=" in reason and "relaygraph agents reset-reputation" in reason
    listed = json.loads(CliRunner().invoke(app, ["agents", "--json"]).stdout)
    ana = next(r for r in listed if r["graph"] == "auction" and r["name"] == "ana")
    assert ana["reputation"] == 0.2 and ana["breaches"] == 1
    cai = next(r for r in listed if r["graph"] == "auction" and r["name"] == "cai")
    assert cai["reputation"] is None  # no record: the default applies
    table = CliRunner().invoke(app, ["agents"]).stdout
    assert "reputation" in table and "0.2" in table
    one = CliRunner().invoke(app, ["agents", "reset-reputation", "ben"])
    assert one.exit_code == 0 and "ben" in one.stdout
    assert set(load_reputation(db, ["ana", "ben", "dee"])) == {"ana", "dee"}
    unknown = CliRunner().invoke(app, ["agents", "reset-reputation", "nobody"])
    assert unknown.exit_code == 2 and "nobody" in unknown.output
    every = CliRunner().invoke(app, ["agents", "reset-reputation"])
    assert every.exit_code == 0 and load_reputation(db, ["ana", "ben", "dee"]) == {}
    auction(cast, "t1", "1/1", "ana")  # back at the default 0.8, the best match wins again
    again = run({"configurable": {"thread_id": "after-reset"}}, tasks=1)
    assert again["result"]["status"] == "completed" and again["result"]["market"]["tasks"]["t1"]["winner"] == "ana"


@pytest.mark.parametrize(("param", "says"), [
    ("methods=", "methods"), ("methods=,", "methods"), ("reserve_factor=inf", "reserve_factor"),
    ("decrement=nan", "decrement"), ("deadline_s=inf", "deadline_s")])
def test_bad_market_params_are_refused_before_any_work(sample_path, cast, param, says) -> None:
    from relaygraph.cli.main import app
    from typer.testing import CliRunner

    refused = CliRunner().invoke(app, ["run", "auction", "--param", param])
    assert refused.exit_code == 2 and says in refused.stderr, refused.output
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.output
    assert "on thread" not in refused.stdout  # no run was started


def test_more_tasks_than_rows_is_refused_naming_the_row_count(isolated_env, cast, invoke_config) -> None:
    from relaygraph.cli.main import app
    from typer.testing import CliRunner

    data = isolated_env["data"]
    data.mkdir(parents=True, exist_ok=True)
    (data / "tiny.csv").write_text("id,amount\n1,5\n2,7\n3,9\n")
    refused = CliRunner().invoke(app, ["run", "auction", "--data", str(data / "tiny.csv"), "--param", "tasks=4"])
    assert refused.exit_code == 2 and "tasks=4" in refused.stderr and "3 rows" in refused.stderr, refused.output
    assert "on thread" not in refused.stdout
    with pytest.raises(ValueError, match="3 rows"):  # a Python caller is refused by the node the same way
        from relaygraph.graphs.auction import graph

        graph.invoke({"task": "Allocate.", "data": "tiny.csv"},
                     {"configurable": {**invoke_config["configurable"], "tasks": 4}})


def test_a_one_row_partition_says_row_not_rows(isolated_env, cast, invoke_config) -> None:
    # Both tasks validate one row: ana (validation 2.0) wins t1; on t2 its load (0.0017) leaves ben and dee tied
    # at 0.0015, ben by name.
    auction(cast, "t1", "1/2", "ana")
    auction(cast, "t2", "2/2", "ben", bidders=CAPABLE["t1"], execution=work("validate_dataset"))
    data = isolated_env["data"]
    data.mkdir(parents=True, exist_ok=True)
    (data / "pair.csv").write_text("id,amount\n1,5\n2,7\n")
    from relaygraph.graphs.auction import graph

    state = graph.invoke({"task": "Allocate.", "data": "pair.csv"},
                         {"configurable": {**invoke_config["configurable"], "tasks": 2, "methods": "validate_dataset"}})
    answer = state["result"]["answer"]
    assert "[1/2, 1 row] → ana" in answer and "[2/2, 1 row] → ben" in answer and "1 rows" not in answer
