"""Conflict analysis and proposals on data where positions are out of reach or equivalent (issue 13)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygraph.nodes.negotiation import (
    K_GRID,
    ProposalBox,
    ProposeThresholdTool,
    Stance,
    flagged_share,
    threshold_for,
)


def heavy_tailed(rows: int = 600, extreme: int = 20) -> pd.DataFrame:
    """Quantities 1–10 with ``extreme`` rows of 80–200: no IQR fence up to k = 6 spares them."""
    body = [1 + i % 10 for i in range(rows - extreme)]
    tail = [80 + (i * 7) % 121 for i in range(extreme)]
    return pd.DataFrame({"quantity": body + tail})


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=4, max_size=60),
       target=st.floats(0.001, 0.5))
def test_a_threshold_meets_the_tolerance_or_says_no_k_on_the_grid_does(values: list[float], target: float) -> None:
    series = pd.Series(values)
    k, met = threshold_for(series, target)
    if met:
        assert flagged_share(series, k) <= target
        assert all(flagged_share(series, smaller) > target for smaller in K_GRID if smaller < k)
    else:
        assert all(flagged_share(series, g) > target for g in K_GRID)
        assert k == K_GRID[-1]  # the k that flags the fewest (shares only fall as k grows)
        assert flagged_share(series, k) == min(flagged_share(series, g) for g in K_GRID)


def test_a_proposal_out_of_reach_of_its_tolerance_says_so(workspace: Any) -> None:
    workspace.data_dir.mkdir(parents=True, exist_ok=True)
    heavy_tailed().to_csv(workspace.data_dir / "heavy.csv", index=False)
    box = ProposalBox()
    result = ProposeThresholdTool(workspace, "heavy.csv", "quantity", Stance(target=0.01, flexibility=0.5),
                                  box).forward("quantity")
    assert result.summary == ("no k on the grid (0.5–6) flags 1% or less of 600 quantity values; k = 6 is the "
                              "closest (3.33% flagged, tolerated: 1%).")
    assert box.proposal is not None and box.proposal["meets_tolerance"] is False
    lenient = ProposeThresholdTool(workspace, "heavy.csv", "quantity", Stance(target=0.06, flexibility=0.2),
                                   ProposalBox()).forward("quantity")
    assert lenient.summary == "k = 0.5 flags 3.33% of 600 quantity values (tolerated: 6%)."


# --- stakes: what the positions do to the agents, not how far apart the numbers are ----------

from relaygraph.coordination.conflicts import Conflict, Proposal, StrategySelector, analyse  # noqa: E402

OPTIONS = ("0.5", "3", "6")
utilities = st.lists(st.floats(0, 1, allow_nan=False), min_size=len(OPTIONS), max_size=len(OPTIONS))


def conflict_of(tables: list[list[float]]) -> Conflict:
    return Conflict(topic="k", scale=6.0, proposals=tuple(
        Proposal(agent=f"a{i}", value=float(OPTIONS[i % len(OPTIONS)]), cost=float(i),
                 utilities=dict(zip(OPTIONS, table, strict=True))) for i, table in enumerate(tables)))


@settings(max_examples=80, deadline=None)
@given(tables=st.lists(utilities, min_size=2, max_size=4))
def test_stakes_are_zero_exactly_when_every_agent_is_indifferent(tables: list[list[float]]) -> None:
    analysis = analyse(conflict_of(tables), cooperative_potential=0.75)
    nobody_cares = all(max(t) - min(t) <= 1e-9 for t in tables)
    assert (analysis.stakes == 0) == nobody_cares
    if nobody_cares:
        assert analysis.cooperative_potential == 0  # nothing to gain together either


@settings(max_examples=60, deadline=None)
@given(tables=st.lists(utilities, min_size=2, max_size=4), shift=st.floats(-5, 5, allow_nan=False),
       who=st.integers(0, 3))
def test_stakes_do_not_change_when_an_agent_s_utilities_shift_by_a_constant(tables: list[list[float]],
                                                                           shift: float, who: int) -> None:
    shifted = [list(t) for t in tables]
    shifted[who % len(tables)] = [u + shift for u in shifted[who % len(tables)]]
    before, after = analyse(conflict_of(tables)), analyse(conflict_of(shifted))
    assert after.stakes == before.stakes


def test_a_conflict_where_nothing_is_at_stake_is_no_real_conflict_and_is_not_sent_to_the_game() -> None:
    """The stranger's data: every k flags the same 20 rows, so each agent rates every option alike."""
    same = conflict_of([[0.766667] * 3, [0.966667] * 3, [0.733333] * 3])
    analysis = analyse(same, cooperative_potential=0.75)
    assert (analysis.stakes, analysis.cooperative_potential, analysis.indifferent) == (0, 0, True)
    strategy, why = StrategySelector().choose(analysis)
    assert strategy == "majority"
    assert "no real conflict" in why and "any option is equally good" in why and "ties: the smaller value" in why


# --- the game names a tie as a tie, and labels the reference payoffs for what they are ---------

import numpy as np  # noqa: E402

from relaygraph.coordination.games import Game, solve  # noqa: E402


def agreement_game(a: tuple[float, float], b: tuple[float, float]) -> Game:
    """Both choose 0.5, 6 or walk away: agreeing on a k pays each its utility, anything else nothing
    (walking away together is the worst equilibrium, the disagreement point 0, 0)."""
    payoffs = np.zeros((2, 3, 3))
    payoffs[:, 0, 0], payoffs[:, 1, 1] = a, b
    options = ("0.5", "6", "walk away")
    return Game(players=("strict", "lenient"), strategies=(options, options), payoffs=payoffs)


def test_equally_good_bargaining_outcomes_are_reported_as_a_tie_with_the_rule_named() -> None:
    solution = solve(agreement_game((0.8, 0.7), (0.8, 0.7)))
    assert solution.choice == "nash_bargaining" and solution.bargaining == (0, 0)
    assert "tie — the Nash bargaining outcomes (0.5, 0.5), (6, 6)" in solution.reason
    assert "broken by the tie rule (the first in outcome order" in solution.reason
    assert "over the worst equilibrium's payoffs (the disagreement point: 0, 0)" in solution.reason
    assert "'0.5'" not in solution.reason and "'6'" not in solution.reason  # options read as the data shows them, not as quoted strings


def test_a_unique_bargaining_outcome_is_not_called_a_tie() -> None:
    solution = solve(agreement_game((0.8, 0.7), (0.6, 0.5)))
    assert solution.bargaining == (0, 0)
    assert "tie" not in solution.reason
    assert "the Nash bargaining outcome (0.5, 0.5) gives every player a gain over the worst equilibrium's payoffs" \
        in solution.reason


# --- arbitration and majority say what they decided as the options read -----------------------

from relaygraph.coordination.conflicts import majority  # noqa: E402
from relaygraph.nodes.negotiation import ReviewProposalsTool  # noqa: E402


def test_arbitration_reports_options_tied_at_the_least_regret_as_a_tie_with_the_rule() -> None:
    same = conflict_of([[0.766667] * 3, [0.966667] * 3, [0.733333] * 3])
    result = ReviewProposalsTool(same).forward()
    assert result.artifacts["value"] == "0.5"
    assert result.artifacts["rationale"].startswith("tie: k = 0.5, 3, 6 leave no agent more than 0.00 utility short")
    assert "broken by the tie rule (the smaller k): k = 0.5" in result.artifacts["rationale"]
    distinct = conflict_of([[1.0, 0.9, 0.2], [0.8, 1.0, 0.5]])
    assert ReviewProposalsTool(distinct).forward().artifacts["rationale"] == (
        "k = 3 leaves no agent more than 0.10 utility short of its own proposal (minimax regret).")


def test_majority_prints_the_winning_number_as_a_number() -> None:
    six = Conflict(topic="k", scale=6.0, proposals=tuple(
        Proposal(agent=a, value=v) for a, v in (("strict", 6.0), ("balanced", 6.0), ("lenient", 0.5))))
    resolution = majority(six)
    assert resolution.value == 6.0
    assert resolution.reason.startswith("6 decided with 2 of 3")
    assert "'6.0'" not in resolution.reason


# --- the negotiation trace: rounds timed over their turns, turns named by agent -----------------


def test_a_negotiation_round_span_covers_its_turns_and_each_turn_names_its_agent(sample_path, spans, cast,
                                                                                  invoke_config) -> None:
    from conftest import script_negotiation
    from test_negotiation_graph import AGENTS, NEGOTIATED_ROUNDS, run

    script_negotiation(cast, NEGOTIATED_ROUNDS)
    run(invoke_config, strategy="negotiation")
    finished = spans.get_finished_spans()
    rounds = {s.attributes["negotiation.round"]: s for s in finished if s.name == "negotiation.round"}
    turns = [s for s in finished if s.name.startswith("turn ")]
    assert sorted((s.attributes["negotiation.round"], s.name) for s in turns) == sorted(
        (n, f"turn {a}") for n in range(1, NEGOTIATED_ROUNDS + 1) for a in AGENTS)
    for turn in turns:  # each turn ran inside its round's span, not before an empty 0 ms leaf
        round_span = rounds[turn.attributes["negotiation.round"]]
        assert round_span.start_time <= turn.start_time and turn.end_time <= round_span.end_time
        assert turn.parent is not None and turn.parent.span_id in {
            s.context.span_id for s in finished if s.name == "node concede"}
