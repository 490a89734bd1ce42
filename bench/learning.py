"""Learning pays: the same 20 planned runs with and without the experience store.

    python bench/learning.py [--runs 20] [--rate 0.3] [--seed 7]

The environment: in a seeded 30% of runs the ``trends`` task — which only the
``time_series_analysis`` method uses — times out on every try (``fail=trends:transientx4``), so
that run fails after three retries (``learn_injected=true``: these injected failures stand for a real
environment, so they count as evidence; a plain injected failure teaches nothing). Both arms see exactly the same sequence of bad runs. With
learning the planner reads the experience store before each plan; without it, every run plans
from the domain's priors (``learn=false``). Prints each arm's success rate — runs that delivered a
report, i.e. did not fail; a run whose trend section the learning left out is ``partial`` (it says
so) and counted apart — and the methods it ended up using; no assertions (the test suite checks
the mechanism, this measures the effect).
The offline provider runs the agents: no LLM is involved.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections import Counter
from pathlib import Path


def arm(learn: bool, bad_runs: list[bool], root: Path) -> tuple[int, int, Counter[str], float]:
    from relaygraph.graphs.planned import build_graph

    os.environ["RELAYGRAPH_CHECKPOINT_DB"] = f"sqlite:///{root / ('learn.db' if learn else 'plain.db')}"
    graph = build_graph().compile()
    ok, by_learning, methods, started = 0, 0, Counter(), time.perf_counter()
    for i, bad in enumerate(bad_runs):
        configurable = {"thread_id": f"{'learn' if learn else 'plain'}-{i}", "retry_backoff_s": 0,
                        "learn": learn, "learn_injected": True, **({"fail": "trends:transientx4"} if bad else {})}
        result = graph.invoke({"task": "report"}, {"configurable": configurable, "recursion_limit": 200})["result"]
        ok += result["status"] != "failed"
        by_learning += result["status"] == "partial" and "(learned:" in (result.get("reason") or "")
        methods[result["plan"]["methods"][-1]] += 1
    return ok, by_learning, methods, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rate", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    bad_runs = [rng.random() < args.rate for _ in range(args.runs)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ.update(RELAYGRAPH_DATA_DIR=str(root / "data"), RELAYGRAPH_OUTPUT_DIR=str(root / "out"),
                          RELAYGRAPH_MODEL="offline")
        print(f"{args.runs} runs, trends times out in {sum(bad_runs)} of them (seed {args.seed}, rate {args.rate})")
        for learn in (False, True):
            ok, by_learning, methods, seconds = arm(learn, bad_runs, root)
            print(f"  {'with learning   ' if learn else 'without learning'}: {ok}/{args.runs} delivered a report "
                  f"({ok / args.runs:.0%}; {by_learning} partial: trend left out by learning); analysis methods "
                  f"used {dict(methods)}; {seconds:.1f}s")


if __name__ == "__main__":
    main()
