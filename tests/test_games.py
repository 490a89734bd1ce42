"""Games (coordination/games.py): known games, and the invariants on random ones."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from relaygraph.coordination.games import (
    Game,
    cooperative_potential,
    disagreement_point,
    dominates,
    equilibria,
    is_best_response,
    nash_bargaining,
    pareto_set,
    pure_equilibria,
    reference_point,
    solve,
)

PD = Game.bimatrix([[3, 0], [5, 1]], [[3, 5], [0, 1]], strategies=(["C", "D"], ["C", "D"]))
BOS = Game.bimatrix([[2, 0], [0, 1]], [[1, 0], [0, 2]], strategies=(["opera", "football"], ["opera", "football"]))
PENNIES = Game.bimatrix([[1, -1], [-1, 1]], [[-1, 1], [1, -1]])


def test_prisoners_dilemma_defect_is_the_only_equilibrium_and_cooperation_is_pareto_but_not_one() -> None:
    found = equilibria(PD)
    assert [e.profile for e in found] == [((0.0, 1.0), (0.0, 1.0))] and found[0].pure
    assert (0, 0) in pareto_set(PD) and (1, 1) not in pareto_set(PD)
    assert not is_best_response(PD, [[1, 0], [1, 0]])
    assert cooperative_potential(PD) == 1.0
    chosen = solve(PD)
    assert chosen.choice == "nash_bargaining" and chosen.payoffs == (3.0, 3.0)


def test_battle_of_the_sexes_has_two_pure_and_one_mixed_equilibrium() -> None:
    found = equilibria(BOS)
    pure = sorted(e.profile for e in found if e.pure)
    assert pure == [((0.0, 1.0), (0.0, 1.0)), ((1.0, 0.0), (1.0, 0.0))]
    (mixed,) = [e for e in found if not e.pure]
    assert mixed.profile[0] == pytest.approx((2 / 3, 1 / 3)) and mixed.profile[1] == pytest.approx((1 / 3, 2 / 3))
    # Failing to coordinate (the mixed equilibrium, 2/3 each) is what an agreement saves them
    # from: either agreement beats it for both, so the textbook bargaining problem is bargained.
    assert reference_point(BOS) == pytest.approx((2 / 3, 2 / 3))
    assert cooperative_potential(BOS) == pytest.approx((3 - 4 / 3) / 3, abs=1e-6)
    chosen = solve(BOS)
    assert chosen.choice == "nash_bargaining" and chosen.payoffs in ((2.0, 1.0), (1.0, 2.0))


def test_matching_pennies_only_mixes_half_half() -> None:
    (only,) = equilibria(PENNIES)
    assert not only.pure and only.profile == ((0.5, 0.5), (0.5, 0.5)) and only.payoffs == (0.0, 0.0)
    assert pure_equilibria(PENNIES) == []


def test_three_players_go_through_gambit_and_agree_with_exhaustive_pure_search() -> None:
    # A 3-player coordination game: everybody wants to match the others.
    payoffs = np.zeros((3, 2, 2, 2))
    payoffs[:, 0, 0, 0], payoffs[:, 1, 1, 1] = 2, 1
    game = Game(players=("a", "b", "c"), strategies=(("x", "y"),) * 3, payoffs=payoffs)
    found = equilibria(game)
    assert {tuple(int(np.argmax(p)) for p in e.profile) for e in found if e.pure} == set(pure_equilibria(game))
    assert all(is_best_response(game, e.profile) for e in found)
    assert nash_bargaining(game) == (0, 0, 0)


payoff = st.integers(-5, 5)


@st.composite
def games(draw, max_players: int = 3) -> Game:
    n = draw(st.integers(2, max_players))
    shape = tuple(draw(st.lists(st.integers(2, 3 if n == 2 else 2), min_size=n, max_size=n)))
    values = draw(st.lists(payoff, min_size=n * int(np.prod(shape)), max_size=n * int(np.prod(shape))))
    return Game(players=tuple(f"p{i}" for i in range(n)),
                strategies=tuple(tuple(f"s{k}" for k in range(m)) for m in shape),
                payoffs=np.array(values, dtype=float).reshape((n, *shape)))


@given(games())
@settings(max_examples=60, deadline=None)
def test_every_reported_equilibrium_is_a_best_response_and_the_pareto_set_is_undominated(game) -> None:
    for eq in equilibria(game):
        assert is_best_response(game, eq.profile)
        assert all(abs(sum(p) - 1) < 1e-9 and min(p) >= 0 for p in eq.profile)
    front = pareto_set(game)
    assert front  # a finite set always has an undominated element
    for outcome in front:
        assert not any(dominates(game.payoff(other), game.payoff(outcome)) for other in game.outcomes())
    for outcome in set(game.outcomes()) - set(front):
        assert any(dominates(game.payoff(o), game.payoff(outcome)) for o in front)
    assert 0 <= cooperative_potential(game) <= 1
    # The bargain, checked against a brute force over every outcome: None exactly when no outcome
    # gains for everyone over the maximin point; else a Pareto outcome with the largest product.
    d = disagreement_point(game)
    products = [float(np.prod(game.payoff(o) - d)) for o in game.outcomes()
                if np.all(game.payoff(o) - d > 1e-7)]
    bargain = nash_bargaining(game)
    if not products:
        assert bargain is None
    else:
        assert bargain in front
        assert float(np.prod(game.payoff(bargain) - d)) == pytest.approx(max(products), abs=1e-6)


def test_nash_bargaining_maximises_the_product_of_gains_not_their_sum() -> None:
    # Worked by hand. Outcomes (row, column) -> payoffs: (0,0) (6,1), (0,1) (3,3), (1,0) (4,2), (1,1) (0,0).
    game = Game.bimatrix([[6, 3], [4, 0]], [[1, 3], [2, 0]])
    # From (0, 0): products 6, 9, 8 -> (3, 3), although (6, 1) has the larger sum.
    assert nash_bargaining(game, np.zeros(2)) == (0, 1)
    # From the maximin point (3, 1) only (4, 2) gains for both: product 1 * 1.
    assert disagreement_point(game).tolist() == [3.0, 1.0]
    assert nash_bargaining(game) == (1, 0)
    # Prisoner's dilemma, maximin (1, 1): only mutual cooperation (3, 3) gains for both.
    assert nash_bargaining(PD) == (0, 0)


def test_a_game_must_have_the_declared_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        Game(players=("a", "b"), strategies=(("x",), ("y", "z")), payoffs=np.zeros((2, 2, 2)))


@given(games())
@settings(max_examples=60, deadline=None)
def test_cooperative_potential_without_solving_equals_the_solved_one(game) -> None:
    from relaygraph.coordination.games import cooperative_potential

    assert cooperative_potential(game) == cooperative_potential(game, equilibria(game))


def agreement_game(utilities: list[list[float]]) -> Game:
    """The negotiation graph's game: all pick the same option → each its utility; else 0."""
    n, m = len(utilities), len(utilities[0])
    payoffs = np.zeros((n, *([m] * n)))
    for i, row in enumerate(utilities):
        for k, u in enumerate(row):
            payoffs[(i, *([k] * n))] = u
    return Game(players=tuple(f"a{i}" for i in range(n)), strategies=(tuple(f"o{k}" for k in range(m)),) * n,
                payoffs=payoffs)


def test_a_game_where_failing_to_agree_is_an_equilibrium_is_not_solved_for_its_potential(monkeypatch) -> None:
    import relaygraph.coordination.games as games_module

    def unsolved(game: Game) -> list:
        raise AssertionError("the equilibria solver ran")

    monkeypatch.setattr(games_module, "equilibria", unsolved)
    # Three agents, three options: all choosing differently is an equilibrium paying nobody,
    # as bad as any outcome, so it is the reference without solving; agreeing on o1 gains most.
    game = agreement_game([[1.0, 0.8, 0.2], [0.6, 1.0, 0.5], [0.1, 0.7, 1.0]])
    assert games_module.reference_point(game).tolist() == [0.0, 0.0, 0.0]
    assert games_module.cooperative_potential(game) == 1.0


def test_the_threshold_game_reaches_nash_bargaining_not_just_an_equilibrium() -> None:
    # Under the old measure (vs the best equilibrium) every agreement game scored 0: any
    # agreement is an equilibrium, so bargaining was unreachable.
    game = agreement_game([[1.0, 0.8, 0.2], [0.6, 1.0, 0.5], [0.1, 0.7, 1.0]])
    chosen = solve(game)
    assert chosen.cooperative_potential > 0.5 and chosen.choice == "nash_bargaining"
    assert chosen.bargaining == (1, 1, 1) and chosen.payoffs == (0.8, 1.0, 0.7)  # max product 0.56


utility = st.floats(0.01, 1.0, allow_nan=False)


@given(st.integers(3, 3).flatmap(lambda n: st.lists(st.lists(utility, min_size=3, max_size=3), min_size=n,
                                                    max_size=n)))
@settings(max_examples=40, deadline=None)
def test_agreeing_when_everyone_gains_from_it_has_full_cooperative_potential(utilities) -> None:
    assert cooperative_potential(agreement_game(utilities)) == 1.0


@given(games())
@settings(max_examples=60, deadline=None)
def test_no_outcome_beating_the_reference_for_all_means_no_cooperative_potential(game) -> None:
    reference = reference_point(game)
    beats_for_all = any(np.all(game.payoff(o) - reference > 1e-7) for o in game.outcomes())
    potential = cooperative_potential(game)
    if not beats_for_all:
        assert potential == 0.0 and nash_bargaining(game, reference) is None
    if potential > 0:  # something to bargain over, from the same point
        assert nash_bargaining(game, reference) is not None


@st.composite
def constant_sum_games(draw) -> Game:
    n = draw(st.integers(2, 3))
    shape = (3, 3) if n == 2 else (2, 2, 2)
    size = int(np.prod(shape))
    parts = [np.array(draw(st.lists(payoff, min_size=size, max_size=size)), dtype=float).reshape(shape)
             for _ in range(n - 1)]
    constant = draw(st.integers(-3, 3))
    return Game(players=tuple(f"p{i}" for i in range(n)), strategies=tuple(tuple(f"s{k}" for k in range(m))
                                                                           for m in shape),
                payoffs=np.stack([*parts, constant - sum(parts)]))


@given(constant_sum_games())
@settings(max_examples=60, deadline=None)
def test_zero_sum_games_have_no_cooperative_potential(game) -> None:
    assert cooperative_potential(game) == 0.0  # what one gains another loses: nothing to gain together
