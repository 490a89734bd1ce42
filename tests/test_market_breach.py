"""Breach injection (``--param breach=TASK:late|fail|wrong``) and the message when every capable
agent breached a task (issue 13)."""

from __future__ import annotations

import pytest
from test_auction_graph import auction, run


def test_breach_parameter_is_parsed_and_refused_up_front_when_malformed() -> None:
    from pydantic import ValidationError
    from relaygraph.nodes.market import MarketConfig

    assert MarketConfig.model_validate({"breach": "t1:late, t2:wrong"}).breach == {"t1": "late", "t2": "wrong"}
    with pytest.raises(ValidationError, match="write TASK:late|fail|wrong"):
        MarketConfig.model_validate({"breach": "t1:slow"})
    with pytest.raises(ValidationError, match="only t1–t2 are announced"):
        MarketConfig.model_validate({"breach": "t3:fail", "tasks": 2})


def test_an_injected_wrong_result_is_a_breach_re_auctioned_to_the_others(sample_path, cast, invoke_config) -> None:
    auction(cast, "t1", "1/1", "ana")
    auction(cast, "t1", "1/1", "ben", bidders=("ben", "dee"))  # ben and dee tie; the name breaks it
    state = run(invoke_config, tasks=1, breach="t1:wrong")
    t1 = state["result"]["market"]["tasks"]["t1"]
    first, second = t1["rounds"]
    assert first["settlement"]["breach"] == "wrong_result"
    assert "injected_wrong_result" in first["settlement"]["reason"]
    assert first["settlement"]["reason"].endswith("(injected by --param breach=t1:wrong)")
    assert second["settlement"]["status"] == "paid" and t1["winner"] == "ben"  # only the first winner breaches


def test_when_every_capable_agent_breached_the_message_says_so(sample_path, cast, invoke_config) -> None:
    auction(cast, "t1", "1/1", "ana")
    auction(cast, "t1", "1/1", "ben", bidders=("ben", "dee"))
    auction(cast, "t1", "1/1", "dee", bidders=("dee",))
    cast.slow, cast.delay = {f"{n} executing its contract" for n in ("ana", "ben", "dee")}, 0.2
    state = run(invoke_config, tasks=1, deadline_s=0.1)
    t1 = state["result"]["market"]["tasks"]["t1"]
    assert t1["breaches"] == ["ana: late", "ben: late", "dee: late"]
    assert t1["reason"].startswith("every capable agent breached this task (ana, ben, dee;")
    assert "no agent has the required capability" not in t1["reason"]
