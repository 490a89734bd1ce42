"""Reverse auctions (coordination/auctions.py) against their invariants, on random costs."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from relaygraph.coordination.auctions import (
    AcceptanceCriterion,
    AuctionRules,
    Bid,
    Contract,
    Verification,
    eligible_bidders,
    estimate_cost,
    next_by_regret,
    rank,
    regret,
    run_auction,
    sequential_auctions,
    settle,
    update_reputation,
)

costs = st.floats(min_value=0.0, max_value=1000.0, allow_nan=False, allow_infinity=False)
reputations = st.floats(min_value=0.0, max_value=1.0)


@st.composite
def bid_lists(draw, min_size: int = 1, max_size: int = 8) -> list[Bid]:
    n = draw(st.integers(min_size, max_size))
    values = draw(st.lists(st.sampled_from([1.0, 2.0, 5.0]) | costs, min_size=n, max_size=n))  # ties likely
    reps = draw(st.lists(st.sampled_from([0.5, 0.8]) | reputations, min_size=n, max_size=n))
    return [Bid(bidder=f"a{i}", cost=c, reputation=r) for i, (c, r) in enumerate(zip(values, reps))]


reserves = st.none() | st.floats(min_value=0.5, max_value=1200.0)
kinds = st.sampled_from(["sealed", "vickrey", "english"])


@given(bid_lists(), reserves, kinds)
def test_the_winner_has_the_lowest_eligible_bid_under_the_reserve_by_the_tie_rule(bids, reserve, kind) -> None:
    rules = AuctionRules(kind=kind, reserve=reserve, decrement=max(1.0, (reserve or 1000) / 500))
    result = run_auction(bids, rules)
    limit = math.inf if reserve is None else reserve
    under = [b for b in bids if b.cost <= limit]
    if not bids:
        assert result.outcome == "no_bid" and result.winner is None and result.price is None
        return
    if not under:
        assert result.outcome == "no_bid_under_reserve" and result.winner is None and result.price is None
        return
    assert result.outcome == "awarded"
    lowest = min(b.cost for b in under)
    tied = [b for b in under if b.cost == lowest]
    expected = max(tied, key=lambda b: (b.reputation, [-ord(c) for c in b.bidder]))
    assert result.winner == expected.bidder == rank(under)[0].bidder
    assert result.winning_bid == lowest
    assert lowest <= result.price <= limit  # individually rational, never above the reserve


@given(bid_lists(), reserves)
def test_sealed_first_price_pays_the_winning_bid(bids, reserve) -> None:
    result = run_auction(bids, AuctionRules(kind="sealed", reserve=reserve))
    if result.outcome == "awarded":
        assert result.price == result.winning_bid


@given(bid_lists(min_size=2), reserves)
def test_vickrey_pays_exactly_the_second_lowest_bid_capped_at_the_reserve(bids, reserve) -> None:
    result = run_auction(bids, AuctionRules(kind="vickrey", reserve=reserve))
    assume(result.outcome == "awarded")
    second = sorted(b.cost for b in bids)[1]
    assert result.price == (second if reserve is None else min(second, reserve))


@given(st.lists(costs, min_size=2, max_size=6), st.data(), reserves)
@settings(max_examples=300)
def test_truthful_bidding_in_vickrey_is_never_beaten_by_a_deviation(true_costs, data, reserve) -> None:
    me = data.draw(st.integers(0, len(true_costs) - 1))
    deviation = data.draw(costs)
    rules = AuctionRules(kind="vickrey", reserve=reserve)
    others = [Bid(bidder=f"a{i}", cost=c) for i, c in enumerate(true_costs) if i != me]
    truthful = run_auction([*others, Bid(bidder=f"a{me}", cost=true_costs[me])], rules)
    lying = run_auction([*others, Bid(bidder=f"a{me}", cost=deviation)], rules)
    mine = true_costs[me]
    assert truthful.utility(f"a{me}", mine) >= lying.utility(f"a{me}", mine) - 1e-9


@given(st.lists(costs, min_size=2, max_size=6), st.floats(0.01, 50.0), st.floats(0.0, 500.0))
def test_english_ends_within_one_decrement_of_the_second_lowest_cost(values, decrement, headroom) -> None:
    second = sorted(values)[1]
    reserve = max(values) + headroom + 0.01  # everyone starts in
    result = run_auction([Bid(bidder=f"a{i}", cost=c) for i, c in enumerate(values)],
                         AuctionRules(kind="english", reserve=reserve, decrement=decrement))
    assert result.outcome == "awarded"
    assert second - 1e-9 <= result.price < second + decrement + 1e-9
    prices = [r.price for r in result.rounds]
    assert prices == sorted(prices, reverse=True) and prices[0] == reserve
    assert all(len(r.active) >= 2 for r in result.rounds[:-1])  # the clock only falls while ≥ 2 stay


@given(st.lists(costs, min_size=1, max_size=6), kinds)
def test_ineligible_bids_never_win_and_no_eligible_agent_is_its_own_outcome(values, kind) -> None:
    bids = [Bid(bidder=f"a{i}", cost=c) for i, c in enumerate(values)]
    eligible = {f"a{i}" for i in range(0, len(values), 2)}
    result = run_auction(bids, AuctionRules(kind=kind, reserve=2000), eligible=eligible)
    assert result.winner in eligible
    assert set(result.rejected) == {b.bidder for b in bids} - eligible
    nobody = run_auction(bids, AuctionRules(kind=kind), eligible=[])
    assert nobody.outcome == "no_eligible_agent" and nobody.winner is None


def test_ties_go_to_reputation_then_name_and_the_reserve_is_a_hard_cap() -> None:
    bids = [Bid(bidder="b", cost=3, reputation=0.9), Bid(bidder="a", cost=3, reputation=0.9),
            Bid(bidder="c", cost=3, reputation=0.95), Bid(bidder="d", cost=2.5, reputation=0.1)]
    assert run_auction(bids, AuctionRules(kind="sealed")).winner == "d"
    assert run_auction(bids[:3], AuctionRules(kind="sealed")).winner == "c"  # reputation
    assert run_auction(bids[:2], AuctionRules(kind="sealed")).winner == "a"  # then name
    single = run_auction(bids[:1], AuctionRules(kind="vickrey", reserve=10))
    assert single.price == 10 and "reserve" in single.reason
    over = run_auction(bids, AuctionRules(kind="vickrey", reserve=2))
    assert over.outcome == "no_bid_under_reserve" and "reserve 2" in over.reason
    silent = run_auction([], AuctionRules(kind="english", reserve=5), eligible=["x", "y"])
    assert silent.outcome == "no_bid" and "none of the 2 eligible agents (x, y) bid" in silent.reason
    assert "reserve" not in silent.reason


def test_english_with_ties_and_a_fine_decrement() -> None:
    tied = run_auction([Bid(bidder="b", cost=4, reputation=0.9), Bid(bidder="a", cost=4, reputation=0.9)],
                       AuctionRules(kind="english", reserve=10, decrement=1))
    assert tied.winner == "a" and tied.price == 4
    fine = run_auction([Bid(bidder="a", cost=0), Bid(bidder="b", cost=1)],
                       AuctionRules(kind="english", reserve=1e6, decrement=1e-3))
    assert fine.winner == "a" and 1 <= fine.price < 1.001 and fine.rounds[-1].round > 10**9 - 2000


@given(reputations, st.booleans())
def test_reputation_rises_on_success_and_halves_on_breach(reputation, success) -> None:
    after = update_reputation(reputation, success)
    assert 0 <= after <= 1
    if success:
        assert after >= reputation - 1e-6
    else:
        assert after == pytest.approx(reputation / 2, abs=1e-6)


def test_settlement_names_the_breach_and_pays_only_on_success() -> None:
    contract = Contract(task_id="t1", winner="a", price=5, kind="vickrey", deadline_s=10,
                        acceptance=(AcceptanceCriterion(name="rows", description="rows match", expected=100),))
    ok = Verification(checks={"rows": True})
    assert settle(contract, 0.8, error=None, duration_s=1, verification=ok).status == "paid"
    late = settle(contract, 0.8, error=None, duration_s=11, verification=ok)
    assert (late.breach, late.paid, late.reputation_after) == ("late", 0.0, 0.4)
    wrong = settle(contract, 0.8, error=None, duration_s=1, verification=Verification(checks={"rows": False}))
    assert wrong.breach == "wrong_result" and "rows" in wrong.reason
    failed = settle(contract, 0.8, error="boom", duration_s=99, verification=None)
    assert failed.breach == "failure"
    assert eligible_bidders(["a", "b", "c"], {"a": 0.2, "b": 0.9}, exclude=["c"]) == ["b"]


def test_cost_estimates_grow_with_rows_and_load_and_shrink_with_capability() -> None:
    base = estimate_cost(1000, "aggregate")
    assert estimate_cost(2000, "aggregate") > base
    assert estimate_cost(1000, "aggregate", load_rows=500) > base
    assert estimate_cost(1000, "aggregate", match=1.25) < base
    with pytest.raises(ValueError, match="unknown method"):
        estimate_cost(10, "astrology")


# --- sequencing --------------------------------------------------------------------------------


@st.composite
def congested_markets(draw) -> tuple[list[list[float]], float]:
    """A cost matrix (tasks × bidders) and the congestion each task already won adds."""
    tasks, bidders = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    base = [draw(st.lists(st.sampled_from([1.0, 2.0]) | st.floats(0.0, 10.0), min_size=bidders, max_size=bidders))
            for _ in range(tasks)]
    return base, draw(st.sampled_from([0.0, 0.5]) | st.floats(0.0, 3.0))


def pricing(base: list[list[float]], penalty: float):
    return lambda task, wins: [Bid(bidder=f"a{j}", cost=c + penalty * wins.get(f"a{j}", 0))
                               for j, c in enumerate(base[int(task)])]


@given(congested_markets(), st.sampled_from(["announced", "regret"]))
def test_sequential_auctions_award_each_task_once_to_its_cheapest_bidder_in_the_documented_order(market,
                                                                                                 order) -> None:
    base, penalty = market
    price, tasks = pricing(base, penalty), [str(i) for i in range(len(base))]
    awarded = sequential_auctions(tasks, price, AuctionRules(kind="vickrey"), order=order)
    assert sorted(t for t, _ in awarded) == tasks  # every task auctioned exactly once
    wins: dict[str, int] = {}
    open_tasks = list(tasks)
    for task, result in awarded:
        bids = price(task, wins)
        assert result.winner == rank(bids)[0].bidder  # the lowest bid at the loads of that round
        if order == "announced":
            assert task == open_tasks[0]
        else:  # the task with the most to lose went first
            assert regret(bids) >= max(regret(price(t, wins)) for t in open_tasks)
            assert task == next_by_regret({t: price(t, wins) for t in open_tasks})
        wins[result.winner] = wins.get(result.winner, 0) + 1
        open_tasks.remove(task)


@given(congested_markets())
def test_without_congestion_either_order_gives_every_task_to_its_cheapest_bidder(market) -> None:
    base, _ = market
    for order in ("announced", "regret"):
        awarded = dict(sequential_auctions([str(i) for i in range(len(base))], pricing(base, 0.0),
                                           AuctionRules(kind="sealed"), order=order))
        assert all(awarded[str(i)].winning_bid == min(row) for i, row in enumerate(base))


def test_regret_order_auctions_first_the_task_that_would_lose_most() -> None:
    # Both tasks are cheapest with x; only t2 is expensive elsewhere. Congestion 5 per task won.
    base, rules = [[1.0, 2.0], [1.0, 10.0]], AuctionRules(kind="sealed")
    announced = sequential_auctions(["0", "1"], pricing(base, 5.0), rules, order="announced")
    assert [(t, r.winner, r.winning_bid) for t, r in announced] == [("0", "a0", 1.0), ("1", "a0", 6.0)]  # 7
    by_regret = sequential_auctions(["0", "1"], pricing(base, 5.0), rules, order="regret")
    assert [(t, r.winner, r.winning_bid) for t, r in by_regret] == [("1", "a0", 1.0), ("0", "a1", 2.0)]  # 3, optimal
    assert regret([Bid(bidder="solo", cost=3.0)]) == math.inf and next_by_regret({"a": [], "b": []}) is None


@settings(max_examples=150, deadline=None)
@given(cents=st.lists(st.integers(1, 60), min_size=2, max_size=5, unique=True),
       reserve_cents=st.integers(60, 100), step_cents=st.sampled_from([1, 5, 10, 25]))
def test_english_clock_prices_are_exact_decimal_steps(cents: list[int], reserve_cents: int, step_cents: int) -> None:
    """Costs, reserve and decrement in cents: every clock price is reserve − k·decrement to the cent
    (it used to print 0.27499999999999997), and a bidder whose cost equals a clock price is still in
    at that price (it used to drop out at 0.09999999999999998)."""
    from decimal import Decimal

    bids = [Bid(bidder=f"b{i}", cost=c / 100) for i, c in enumerate(cents)]
    result = run_auction(bids, AuctionRules(kind="english", reserve=reserve_cents / 100, decrement=step_cents / 100))
    for clock in result.rounds:
        assert Decimal(repr(clock.price)) == Decimal(reserve_cents - clock.round * step_cents) / 100, clock
        in_at_price = {b.bidder for b, c in zip(bids, cents, strict=True) if c <= reserve_cents - clock.round * step_cents}
        assert set(clock.active) == in_at_price
    assert result.price is not None
    assert Decimal(repr(result.price)) * 100 % 1 == 0  # a whole number of cents
