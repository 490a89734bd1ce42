"""Allocation quality and protocol cost of sequential single-item auctions. Goal: ≤ 1.05× optimal.

    python bench/market.py [--trials N] [--tasks 10] [--agents 5] [--penalty 0.5] [--kind vickrey]

Each trial draws a cost matrix (seeded): agent j's cost for task i is ``base[i, j]`` plus
``penalty`` per task it has already won — the same congestion the auction graph's bidders
price in (``LOAD_COST`` × rows already won). Tasks are allocated one at a time by
:func:`relaygraph.coordination.auctions.sequential_auctions` — each round one single-item
auction (:func:`~relaygraph.coordination.auctions.run_auction`) on the bids for that one task —
in two orders, on the same instances:

* ``announced`` — the tasks in the order they were announced;
* ``regret`` — each round every agent prices every open task at its current load, and the task
  whose lowest bid is furthest below its second-lowest is auctioned next (it has the most to
  lose if its best bidder gets busy first).

Every agent bids its true current cost (truthful bidding is dominant in vickrey; in sealed it
is the cost floor). The optimum is exact: with increasing per-task congestion, the best
allocation is a minimum-cost assignment of tasks to (agent, k-th task) slots costing
``base + penalty·k``, solved by ``scipy.optimize.linear_sum_assignment``. The anchor for
protocol overhead is that solver's time on the same instance, measured in the same run;
messages are counted (a call for bids to each agent per task priced, a bid back from each, one
award per round).

Prints, per order, the mean / p95 / worst ratio of auction to optimal total cost and whether the
goal holds on every instance; per task the auction time, the solver's time and the messages.
No assertions.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from relaygraph.coordination.auctions import AuctionRules, Bid, sequential_auctions
from scipy.optimize import linear_sum_assignment

ORDERS = ("announced", "regret")
GOAL = 1.05


def optimal(base: np.ndarray, penalty: float) -> float:
    tasks = base.shape[0]
    slots = np.concatenate([base + penalty * k for k in range(tasks)], axis=1)  # column k·agents + j
    rows, cols = linear_sum_assignment(slots)
    return float(slots[rows, cols].sum())


def allocate(base: np.ndarray, penalty: float, kind: str, order: str) -> tuple[float, int]:
    """The allocation's real total cost (prices are transfers) and the messages it took."""
    tasks, agents = base.shape
    priced = [0]

    def price(task: str, wins: dict[str, int]) -> list[Bid]:
        priced[0] += 1
        return [Bid(bidder=f"a{j}", cost=float(base[int(task), j] + penalty * wins.get(f"a{j}", 0)))
                for j in range(agents)]

    awarded = sequential_auctions([str(i) for i in range(tasks)], price, AuctionRules(kind=kind, decrement=0.01),
                                  order=order)  # type: ignore[arg-type]
    total = sum(result.winning_bid or 0.0 for _, result in awarded)
    return total, 2 * agents * priced[0] + len(awarded)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--agents", type=int, default=5)
    parser.add_argument("--penalty", type=float, default=0.5)
    parser.add_argument("--kind", default="vickrey", choices=["sealed", "vickrey", "english"])
    args = parser.parse_args()
    rng = np.random.default_rng(13)
    ratios: dict[str, list[float]] = {o: [] for o in ORDERS}
    spent: dict[str, list[float]] = {o: [] for o in ORDERS}
    messages = dict.fromkeys(ORDERS, 0)
    solver_s = []
    for _ in range(args.trials):
        base = rng.uniform(1.0, 10.0, size=(args.tasks, args.agents))
        started = time.perf_counter()
        best = optimal(base, args.penalty)
        solver_s.append(time.perf_counter() - started)
        for order in ORDERS:
            started = time.perf_counter()
            got, sent = allocate(base, args.penalty, args.kind, order)
            spent[order].append(time.perf_counter() - started)
            messages[order] += sent
            ratios[order].append(got / best)
    per_task = lambda xs: statistics.median(xs) / args.tasks * 1e6  # µs per task
    print(f"{args.trials} trials, {args.tasks} tasks × {args.agents} agents, congestion {args.penalty:g}/task, "
          f"{args.kind} sequential single-item auctions; exact solver {per_task(solver_s):.0f} µs/task")
    for order in ORDERS:
        r = sorted(ratios[order])
        p95, mean, worst = r[int(0.95 * (len(r) - 1))], statistics.fmean(r), r[-1]
        print(f"{order:>9} order: auction / optimal total cost mean {mean:.4f}, p95 {p95:.4f}, worst {worst:.4f}, "
              f"optimal in {sum(x < 1 + 1e-9 for x in r) / len(r):.0%} of trials — goal ≤ {GOAL} "
              f"on the mean: {'met' if mean <= GOAL else 'NOT met'}, on every instance: "
              f"{'met' if worst <= GOAL else 'NOT met'}")
        print(f"{'':>16}overhead per task: auction {per_task(spent[order]):.0f} µs "
              f"({statistics.median(spent[order]) / statistics.median(solver_s):.1f}× the solver), "
              f"{messages[order] / (args.trials * args.tasks):.0f} messages")


if __name__ == "__main__":
    main()
