"""Normal-form games: equilibria, the Pareto set, Nash bargaining, and picking a solution.

Equilibria come from well-kept solvers, not hand-written ones: ``nashpy`` (support
enumeration, every equilibrium of a non-degenerate two-player game) and ``pygambit``
(``enumpoly_solve`` for three or more players; ``enumpure_solve`` for the pure ones). Every
equilibrium either returns is checked here to be a best response for every player before it is
reported, so a solver's numerical slip cannot reach a caller.

The rest is small and exact over the game's pure outcomes:

* **Pareto set** — outcomes no other outcome weakly improves for everyone and strictly for one.
* **Reference point** (:func:`reference_point`) — what the players get without an agreement:
  the payoffs of the *worst* equilibrium by joint total (selfish play alone does not say which
  equilibrium they land in, so an agreement is worth what it saves them from). Pure equilibria
  are enumerated exactly; the solver is run only when no pure equilibrium is already as bad as
  the worst outcome.
* **Nash bargaining** — the Pareto outcome maximising the product of gains over a disagreement
  point: :func:`solve` uses the reference point; without one given, each player's pure maximin.
* **Cooperative potential** — the joint gain of the best outcome that beats the reference point
  for *every* player, as a share of the spread of joint totals, in [0, 1]: 0 when no outcome
  beats it for all (then there is nothing to bargain over) and in every constant-sum game
  (zero-sum: an equilibrium's payoffs already add up to the constant); 1 in a prisoner's
  dilemma, and near 1 in a coordination game with distinct preferences, such as agreeing on
  one option (battle of the sexes, the negotiation graph's threshold game: failing to agree
  is an equilibrium too). It used to be measured against the *best* equilibrium, which made
  every coordination game 0 — any agreement is an equilibrium — so bargaining was unreachable
  from the negotiation graph.
* **Choice** (:func:`solve`) — with cooperative potential > 0.5 the Nash bargaining outcome;
  otherwise the equilibrium with the best score ``0.5·efficiency + 0.5·fairness``, where
  efficiency is the total payoff scaled to the game's range and fairness is
  ``1 - (max - min)/range`` of the players' payoffs. Ties go to the earlier equilibrium.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

TOLERANCE = 1e-7


class Game(BaseModel):
    """A finite game in normal form: ``payoffs[i][s1, s2, ...]`` is player i's payoff."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    players: tuple[str, ...] = Field(min_length=2)
    strategies: tuple[tuple[str, ...], ...]
    payoffs: Any  # np.ndarray of shape (n_players, *n_strategies)

    @model_validator(mode="after")
    def _shape(self) -> Game:
        array = np.asarray(self.payoffs, dtype=float)
        expected = (len(self.players), *(len(s) for s in self.strategies))
        if len(self.strategies) != len(self.players) or array.shape != expected:
            raise ValueError(f"payoffs must have shape {expected}, got {array.shape}")
        if any(len(s) < 1 for s in self.strategies):
            raise ValueError("every player needs at least one strategy")
        object.__setattr__(self, "payoffs", array)
        return self

    @classmethod
    def bimatrix(cls, a: Sequence[Sequence[float]], b: Sequence[Sequence[float]], *,
                 players: tuple[str, str] = ("row", "column"),
                 strategies: tuple[Sequence[str], Sequence[str]] | None = None) -> Game:
        rows, cols = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        names = strategies or ([f"r{i}" for i in range(rows.shape[0])], [f"c{j}" for j in range(rows.shape[1])])
        return cls(players=players, strategies=(tuple(names[0]), tuple(names[1])), payoffs=np.stack([rows, cols]))

    @property
    def n(self) -> int:
        return len(self.players)

    def outcomes(self) -> list[tuple[int, ...]]:
        return list(itertools.product(*(range(len(s)) for s in self.strategies)))

    def payoff(self, profile: tuple[int, ...]) -> np.ndarray:
        return self.payoffs[(slice(None), *profile)]

    def expected(self, mixed: Sequence[np.ndarray]) -> np.ndarray:
        """Each player's expected payoff under independent mixed strategies."""
        values = self.payoffs
        for sigma in reversed(mixed):
            values = values @ np.asarray(sigma, dtype=float)
        return values

    def deviation_values(self, mixed: Sequence[np.ndarray], player: int) -> np.ndarray:
        """Player's expected payoff of each pure strategy against the others' mixtures."""
        values = np.moveaxis(self.payoffs[player], player, 0)
        others = [np.asarray(m, dtype=float) for i, m in enumerate(mixed) if i != player]
        for sigma in reversed(others):
            values = values @ sigma
        return values


class Equilibrium(BaseModel):
    """A Nash equilibrium: one probability vector per player, and the expected payoffs."""

    model_config = ConfigDict(frozen=True)

    profile: tuple[tuple[float, ...], ...]
    payoffs: tuple[float, ...]
    pure: bool

    def label(self, game: Game) -> str:
        parts = []
        for names, probs in zip(game.strategies, self.profile, strict=True):
            parts.append("/".join(f"{n}:{p:.3g}" for n, p in zip(names, probs, strict=True) if p > TOLERANCE))
        return "(" + ", ".join(parts) + ")"


def is_best_response(game: Game, profile: Sequence[Sequence[float]], tol: float = 1e-6) -> bool:
    """No player can gain more than ``tol`` by switching to any pure strategy."""
    mixed = [np.asarray(p, dtype=float) for p in profile]
    current = game.expected(mixed)
    return all(game.deviation_values(mixed, i).max() <= current[i] + tol for i in range(game.n))


def _make(game: Game, profile: Sequence[Sequence[float]]) -> Equilibrium:
    clean = [np.where(np.abs(np.asarray(p, dtype=float)) < TOLERANCE, 0.0, np.asarray(p, dtype=float))
             for p in profile]
    clean = [p / p.sum() for p in clean]
    pure = all(np.isclose(p.max(), 1.0) for p in clean)
    return Equilibrium(profile=tuple(tuple(round(float(x), 12) for x in p) for p in clean),
                       payoffs=tuple(round(float(v), 12) for v in game.expected(clean)), pure=pure)


def equilibria(game: Game) -> list[Equilibrium]:
    """Every Nash equilibrium the solver finds (pure first), each verified as a best response."""
    # The solvers are imported here, not at the top: both pull in scipy.stats (seconds of
    # import time), which every CLI start would otherwise pay for a game it never solves.
    if game.n == 2:
        import nashpy

        with warnings.catch_warnings():  # degenerate games: nashpy warns and may miss some
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", UserWarning)
            found = list(nashpy.Game(game.payoffs[0], game.payoffs[1]).support_enumeration())
        raw = [[np.asarray(s) for s in pair] for pair in found]
    else:
        import pygambit

        g = pygambit.StrategicGame.from_arrays(*[game.payoffs[i] for i in range(game.n)])
        players = list(g.players)
        raw = [[np.array([float(p) for _, p in eq[player]]) for player in players]
               for eq in pygambit.nash.enumpoly_solve(g).equilibria]
    out: list[Equilibrium] = []
    for profile in raw:
        if not is_best_response(game, profile):
            continue
        eq = _make(game, profile)
        if not any(np.allclose(np.concatenate(eq.profile), np.concatenate(o.profile), atol=1e-6) for o in out):
            out.append(eq)
    return sorted(out, key=lambda e: (not e.pure,))


def _is_pure_equilibrium(game: Game, profile: tuple[int, ...]) -> bool:
    """No player gains by deviating alone from the pure ``profile``."""
    values = game.payoff(profile)
    return all(game.payoffs[(i, *profile[:i], slice(None), *profile[i + 1:])].max() <= values[i] + TOLERANCE
               for i in range(game.n))


def pure_equilibria(game: Game) -> list[tuple[int, ...]]:
    """Pure-strategy equilibria by checking every outcome (exact; used to cross-check solvers)."""
    return [profile for profile in game.outcomes() if _is_pure_equilibrium(game, profile)]


def dominates(u: np.ndarray, v: np.ndarray) -> bool:
    """``u`` Pareto-dominates ``v``: at least as good for all, strictly better for one."""
    return bool(np.all(u >= v - TOLERANCE) and np.any(u > v + TOLERANCE))


def pareto_set(game: Game) -> list[tuple[int, ...]]:
    """Pure outcomes that no other pure outcome Pareto-dominates."""
    outcomes = game.outcomes()
    values = {o: game.payoff(o) for o in outcomes}
    return [o for o in outcomes if not any(dominates(values[p], values[o]) for p in outcomes if p != o)]


def disagreement_point(game: Game) -> np.ndarray:
    """Each player's pure maximin: the payoff it can guarantee whatever the others do."""
    return np.array([np.moveaxis(game.payoffs[i], i, 0).reshape(len(game.strategies[i]), -1).min(axis=1).max()
                     for i in range(game.n)])


def nash_bargaining(game: Game, disagreement: np.ndarray | None = None) -> tuple[int, ...] | None:
    """The Pareto outcome maximising ∏(uᵢ − dᵢ) over outcomes that give everyone a gain;
    None when no outcome improves on the disagreement point for every player."""
    d = disagreement_point(game) if disagreement is None else np.asarray(disagreement, dtype=float)
    best, best_value = None, 0.0
    for outcome in pareto_set(game):
        gains = game.payoff(outcome) - d
        if np.all(gains > TOLERANCE):
            value = float(np.prod(gains))
            if value > best_value + TOLERANCE:
                best, best_value = outcome, value
    return best


def bargaining_ties(game: Game, disagreement: np.ndarray) -> list[tuple[int, ...]]:
    """Every Pareto outcome whose product of gains equals the best one's: more than one is a tie,
    which :func:`nash_bargaining` breaks by the tie rule — the first in outcome order (each
    player's lowest-indexed strategy first)."""
    products = {o: float(np.prod(game.payoff(o) - disagreement)) for o in pareto_set(game)
                if np.all(game.payoff(o) - disagreement > TOLERANCE)}
    best = max(products.values(), default=0.0)
    return [o for o, v in products.items() if best - v <= TOLERANCE]


def outcome_text(game: Game, outcome: Sequence[int]) -> str:
    """An outcome as the options read: ``(0.5, 0.5, 0.5)``, not a tuple of quoted strings."""
    return "(" + ", ".join(str(game.strategies[i][s]) for i, s in enumerate(outcome)) + ")"


def payoff_range(game: Game) -> float:
    return float(game.payoffs.max() - game.payoffs.min()) or 1.0


def _worst_equilibria(game: Game, found: Sequence[Equilibrium] | None) -> list[np.ndarray]:
    """Payoff vectors of the equilibria with the lowest joint total: the pure ones (exact
    enumeration) when one is as bad as any outcome or, after solving, when one ties the lowest;
    otherwise the solver's. Deterministic whether or not ``found`` is given."""
    totals = {o: float(game.payoff(o).sum()) for o in game.outcomes()}
    pure = [game.payoff(o) for o in pure_equilibria(game)]
    worst_total = min(totals.values())
    if pure and min(float(p.sum()) for p in pure) <= worst_total + TOLERANCE:  # nothing can be worse: no solver
        return [p for p in pure if float(p.sum()) <= worst_total + TOLERANCE]
    found = equilibria(game) if found is None else found
    candidates = pure + [np.asarray(e.payoffs, dtype=float) for e in found if not e.pure]
    if not candidates:
        return []
    low = min(float(c.sum()) for c in candidates)
    worst = [c for c in candidates if float(c.sum()) <= low + TOLERANCE]
    worst_pure = [c for c in pure if float(c.sum()) <= low + TOLERANCE]
    return worst_pure or worst


def _gain_over(game: Game, point: np.ndarray) -> float:
    """The best joint gain over ``point`` among outcomes that beat it for every player (0: none)."""
    gains = [float((game.payoff(o) - point).sum()) for o in game.outcomes()
             if np.all(game.payoff(o) - point > TOLERANCE)]
    return max(gains, default=0.0)


def reference_point(game: Game, found: Sequence[Equilibrium] | None = None) -> np.ndarray:
    """What the players get without an agreement: the worst equilibrium by joint total (of
    equally bad ones, the one an agreement improves on most). Falls back to the pure maximin
    when the solver finds no equilibrium (degenerate games)."""
    worst = _worst_equilibria(game, found)
    if not worst:
        return disagreement_point(game)
    return max(worst, key=lambda p: _gain_over(game, p))


def cooperative_potential(game: Game, found: Sequence[Equilibrium] | None = None) -> float:
    """(joint gain over the reference point of the best outcome that beats it for everyone) /
    (best joint total − worst joint total), in [0, 1]; 0 when every outcome has the same total
    (constant-sum games: nothing to gain together) or no outcome beats the reference for all.

    Without ``found``, the solver runs only when needed: when a pure equilibrium is already as
    bad as the worst outcome (a coordination game where failing to agree is one), the reference
    point is known without solving the game."""
    totals = [float(game.payoff(o).sum()) for o in game.outcomes()]
    best_total, worst_total = max(totals), min(totals)
    if best_total - worst_total <= TOLERANCE:
        return 0.0
    gain = _gain_over(game, reference_point(game, found))
    return round(float(min(1.0, max(0.0, gain / (best_total - worst_total)))), 6)


def score(game: Game, payoffs: Sequence[float]) -> float:
    """The documented efficiency + fairness score of a payoff vector."""
    spread, low = payoff_range(game), float(game.payoffs.min())
    values = np.asarray(payoffs, dtype=float)
    efficiency = float((values - low).sum() / (game.n * spread))
    fairness = 1 - float(values.max() - values.min()) / spread
    return round(float(0.5 * efficiency + 0.5 * fairness), 6)


class GameSolution(BaseModel):
    """What :func:`solve` reports: the analysis and the pick, with why."""

    equilibria: list[Equilibrium]
    pareto: list[tuple[int, ...]]
    bargaining: tuple[int, ...] | None
    cooperative_potential: float
    choice: str  # "nash_bargaining" | "equilibrium"
    profile: tuple[tuple[float, ...], ...]
    payoffs: tuple[float, ...]
    reason: str


def solve(game: Game) -> GameSolution:
    """Analyse the game and pick a solution by the rule in the module docstring."""
    found = equilibria(game)
    pareto = pareto_set(game)
    reference = reference_point(game, found)
    potential = cooperative_potential(game, found)
    bargain = nash_bargaining(game, reference)
    if potential > 0.5 and bargain is not None:
        profile = tuple(tuple(1.0 if k == s else 0.0 for k in range(len(game.strategies[i])))
                        for i, s in enumerate(bargain))
        values = tuple(float(v) for v in game.payoff(bargain))
        tied = bargaining_ties(game, reference)
        over = (f"over the worst equilibrium's payoffs (the disagreement point: "
                f"{', '.join(f'{v:.3g}' for v in reference)})")
        if len(tied) > 1:
            why = (f"cooperative potential {potential:.2f} > 0.5: tie — the Nash bargaining outcomes "
                   f"{', '.join(outcome_text(game, o) for o in tied)} give every player a gain {over} with the "
                   f"same product of gains; broken by the tie rule (the first in outcome order: each player's "
                   f"first-listed option): {outcome_text(game, bargain)}")
        else:
            why = (f"cooperative potential {potential:.2f} > 0.5: the Nash bargaining outcome "
                   f"{outcome_text(game, bargain)} gives every player a gain {over} with the largest product "
                   "of gains")
        return GameSolution(equilibria=found, pareto=pareto, bargaining=bargain, cooperative_potential=potential,
                            choice="nash_bargaining", profile=profile, payoffs=values, reason=why)
    if not found:
        raise ValueError("the solver found no equilibrium (degenerate game); give the players distinct payoffs")
    scored = [(score(game, e.payoffs), -k, e) for k, e in enumerate(found)]
    best_score, _, best = max(scored, key=lambda t: (t[0], t[1]))
    why = (f"cooperative potential {potential:.2f} ≤ 0.5 or no outcome gains for all: the equilibrium "
           f"{best.label(game)} scores best on efficiency + fairness ({best_score:.3f})")
    return GameSolution(equilibria=found, pareto=pareto, bargaining=bargain, cooperative_potential=potential,
                        choice="equilibrium", profile=best.profile, payoffs=best.payoffs, reason=why)
