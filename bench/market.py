"""Allocation quality and protocol cost of sequential single-item auctions. Goal: ≤ 1.05× optimal.

    python bench/market.py [--trials N] [--tasks 10] [--agents 5] [--penalty 0.5] [--kind vickrey]

Each trial draws a cost matrix (seeded): agent j's cost for task i is ``base[i, j]`` plus
``penalty`` per task it has already won — the same congestion the auction graph's bidders
price in (``LOAD_COST`` × rows already won). Tasks are auctioned one after another with
:func:`relaygraph.coordination.auctions.run_auction`; every agent bids its true current cost
(truthful bidding is dominant in vickrey; in sealed it is the cost floor).

The optimum is exact: with increasing per-task congestion, the best allocation is a minimum-cost
assignment of tasks to (agent, k-th task) slots costing ``base + penalty·k``, solved by
``scipy.optimize.linear_sum_assignment``. The anchor for protocol overhead is that solver's
time on the same instance, measured in the same run; messages per task are counted (one call
for bids to each agent, one bid back from each, one award).

Prints the mean / p95 / worst ratio of auction to optimal total cost, and per task the auction
time, the solver's time and the messages; no assertions.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from relaygraph.coordination.auctions import AuctionRules, Bid, run_auction
from scipy.optimize import linear_sum_assignment


def optimal(base: np.ndarray, penalty: float) -> float:
    tasks, agents = base.shape
    slots = np.concatenate([base + penalty * k for k in range(tasks)], axis=1)  # column k·agents + j
    rows, cols = linear_sum_assignment(slots)
    return float(slots[rows, cols].sum())


def sequential_auctions(base: np.ndarray, penalty: float, kind: str) -> tuple[float, int]:
    tasks, agents = base.shape
    load = np.zeros(agents, dtype=int)
    total, messages = 0.0, 0
    for i in range(tasks):
        costs = base[i] + penalty * load
        bids = [Bid(bidder=f"a{j}", cost=float(costs[j])) for j in range(agents)]
        result = run_auction(bids, AuctionRules(kind=kind, decrement=0.01))
        j = int(result.winner[1:])
        total += float(costs[j])  # the allocation's real cost (the price is a transfer)
        load[j] += 1
        messages += 2 * agents + 1
    return total, messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--agents", type=int, default=5)
    parser.add_argument("--penalty", type=float, default=0.5)
    parser.add_argument("--kind", default="vickrey", choices=["sealed", "vickrey", "english"])
    args = parser.parse_args()
    rng = np.random.default_rng(13)
    ratios, auction_s, solver_s, messages = [], [], [], 0
    for _ in range(args.trials):
        base = rng.uniform(1.0, 10.0, size=(args.tasks, args.agents))
        started = time.perf_counter()
        best = optimal(base, args.penalty)
        solver_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        got, sent = sequential_auctions(base, args.penalty, args.kind)
        auction_s.append(time.perf_counter() - started)
        messages += sent
        ratios.append(got / best)
    ratios.sort()
    p95 = ratios[int(0.95 * (len(ratios) - 1))]
    per_task = lambda xs: statistics.median(xs) / args.tasks * 1e6  # noqa: E731 - µs per task
    mean = statistics.fmean(ratios)
    print(f"{args.trials} trials, {args.tasks} tasks × {args.agents} agents, congestion {args.penalty:g}/task, "
          f"{args.kind} sequential single-item auctions")
    print(f"auction / optimal total cost: mean {mean:.4f}, p95 {p95:.4f}, worst {ratios[-1]:.4f}, "
          f"optimal in {sum(r < 1 + 1e-9 for r in ratios) / len(ratios):.0%} of trials "
          f"— goal ≤ 1.05 (mean): {'met' if mean <= 1.05 else 'NOT met'}")
    print(f"protocol overhead per task: auction {per_task(auction_s):.0f} µs, exact solver {per_task(solver_s):.0f} µs "
          f"(ratio {statistics.median(auction_s) / statistics.median(solver_s):.1f}×), "
          f"{messages / (args.trials * args.tasks):.0f} messages")


if __name__ == "__main__":
    main()
