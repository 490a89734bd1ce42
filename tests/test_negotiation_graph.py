"""The conflict resolver graph (graphs/negotiation.py): every strategy reaches its outcome."""

from __future__ import annotations

from typing import Any

import pytest


def run(config: dict[str, Any], **configurable: Any) -> dict[str, Any]:
    from relaygraph.graphs.negotiation import graph

    return graph.invoke({"task": "Agree on one outlier threshold."},
                        {**config, "configurable": {**config["configurable"], **configurable}})


@pytest.mark.parametrize("strategy", ["negotiation", "arbitration", "majority", "compromise", "auction", "game"])
def test_every_strategy_reaches_its_outcome_from_data_grounded_proposals(sample_path, invoke_config,
                                                                         strategy) -> None:
    state = run(invoke_config, strategy=strategy)
    result, block = state["result"], state["result"]["negotiation"]
    assert result["status"] == "completed" and block["resolved"] and block["strategy"] == strategy
    proposals = {p["agent"]: p["value"] for p in block["conflict"]["proposals"]}
    assert proposals["strict"] > proposals["balanced"] > proposals["lenient"]  # tolerating less flags less
    assert min(proposals.values()) <= block["value"] <= max(proposals.values())
    assert {"propose_threshold"} <= {s["tool"] for s in state["steps"]}
    assert f"Strategy: {strategy}" in result["answer"] and "Resolved: k = " in result["answer"]
    if strategy == "negotiation":
        assert 1 <= len(block["rounds"]) - 1 <= 5 and block["rounds"][-1]["similarity"] >= 0.8
    if strategy == "arbitration":
        assert {"review_proposals", "arbitrate"} <= {s["tool"] for s in state["steps"]}
        assert "minimax regret" in block["outcome"]["detail"]["rationale"]
    if strategy == "auction":
        assert block["value"] == proposals["strict"]  # flags the fewest rows: cheapest to carry out
    if strategy == "compromise":
        assert block["value"] == pytest.approx(sum(proposals.values()) / 3, abs=1e-5)
    if strategy == "game":
        assert block["outcome"]["detail"]["equilibria"]


def test_the_resolver_chooses_by_rule_then_learns_from_persisted_history(sample_path, invoke_config) -> None:
    from relaygraph.config.settings import get_settings
    from relaygraph.nodes.market_store import record_resolution, resolution_history

    first = run(invoke_config)["result"]["negotiation"]
    assert first["strategy"] == "auction" and first["why"].startswith("rule:")  # costs known → auction
    url = get_settings().checkpoint_db
    bucket = resolution_history(url)[0]["bucket"]
    for k in range(3):  # earlier conflicts like this one: auctions failed, compromises held
        record_resolution(url, thread_id=f"old{k}", conflict_id="c1", topic="t", bucket=bucket, strategy="auction",
                          resolved=False, rounds=0, outcome={})
        record_resolution(url, thread_id=f"old{k}", conflict_id="c2", topic="t", bucket=bucket,
                          strategy="compromise", resolved=True, rounds=0, outcome={})
    learned = run({"configurable": {"thread_id": "later"}})["result"]["negotiation"]
    assert learned["strategy"] == "compromise" and learned["why"].startswith("learned:")
    assert len(resolution_history(url)) == 8


def test_a_bad_strategy_is_refused_before_any_work(sample_path) -> None:
    from relaygraph.cli.main import app
    from typer.testing import CliRunner

    refused = CliRunner().invoke(app, ["run", "negotiation", "--param", "strategy=coinflip"])
    assert refused.exit_code == 2 and "strategy" in refused.stderr


def test_traces_show_the_strategy_and_each_negotiation_round(sample_path, spans, invoke_config) -> None:
    state = run(invoke_config, strategy="negotiation")
    finished = spans.get_finished_spans()
    names = [s.name for s in finished]
    assert {"node propose", "node analyse", "node resolve", "conflict.resolve"} <= set(names)
    rounds = [s for s in finished if s.name == "negotiation.round"]
    assert [s.attributes["negotiation.round"] for s in rounds] == [
        r["number"] for r in state["result"]["negotiation"]["rounds"]]
