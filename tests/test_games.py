"""Games (coordination/games.py): known games, and the invariants on random ones."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from relaygraph.coordination.games import (
    Game,
    cooperative_potential,
    dominates,
    equilibria,
    is_best_response,
    nash_bargaining,
    pareto_set,
    pure_equilibria,
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
    assert solve(BOS).choice == "equilibrium"


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
    bargain = nash_bargaining(game)
    assert bargain is None or bargain in front


def test_a_game_must_have_the_declared_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        Game(players=("a", "b"), strategies=(("x",), ("y", "z")), payoffs=np.zeros((2, 2, 2)))


@given(games())
@settings(max_examples=60, deadline=None)
def test_cooperative_potential_without_solving_equals_the_solved_one(game) -> None:
    from relaygraph.coordination.games import cooperative_potential

    assert cooperative_potential(game) == cooperative_potential(game, equilibria(game))


def test_a_game_whose_best_outcome_is_an_equilibrium_is_not_solved_for_its_potential(monkeypatch) -> None:
    import relaygraph.coordination.games as games_module

    def unsolved(game: Game) -> list:
        raise AssertionError("the equilibria solver ran")

    monkeypatch.setattr(games_module, "equilibria", unsolved)
    coordination = Game(players=("a", "b", "c"), strategies=(("x", "y"),) * 3,
                        payoffs=np.zeros((3, 2, 2, 2)))
    coordination.payoffs[(slice(None), 0, 0, 0)] = 1.0
    coordination.payoffs[(slice(None), 1, 1, 1)] = 0.5
    assert games_module.cooperative_potential(coordination) == 0.0
