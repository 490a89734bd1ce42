"""Consensus cost: messages and wall time per decision, and the protocols' share of a run.

    python bench/consensus.py [--repeat R]

1. **Per decision, instant model** — the whole consensus graph (plan, N voter agents, decide,
   PBFT/Raft one phase per step)
   for n = 4, 7, 10, 13 in each mode, with a model double that answers at once (it submits
   its ballot, then finishes), so what is measured is relaygraph's own work: agents' plumbing,
   signatures, checkpoints, the protocol. Messages are counted from the result and compared
   with the protocol's theoretical count: n(n−1) signed ballot copies per round, plus for PBFT
   (n−1) pre-prepares + (n−1)² prepares + n(n−1) commits — O(n²).
2. **Protocol only** — PBFT alone on the simulator (no agents, no graph), fault-free and with a
   silent primary (one view change), to show the O(n²) growth without the graph around it.
3. **Overhead share** — an offline-agent run at n = 7 (real tools on the sample data) in
   ``pbft`` mode: time in the protocol (signing ballot copies, verifying them, running PBFT
   phase by phase in ``protocol``, each step also writing its messages to state) as a share of the run's wall time and of its CPU time (this process, all
   threads), measured in the same run after one warm-up run. Goal ≤ 5%. On a shared machine
   the CPU share is the steadier number: wall time includes waiting for other processes.

Prints tables; no assertions.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TMP = Path(tempfile.mkdtemp(prefix="rg-bench-consensus-"))
os.environ.update(RELAYGRAPH_DATA_DIR=str(TMP / "data"), RELAYGRAPH_OUTPUT_DIR=str(TMP / "out"),
                  RELAYGRAPH_CHECKPOINT_DB=f"sqlite:///{TMP / 'checkpoints.db'}",  # voters' track records
                  RELAYGRAPH_MODEL="offline")

from langgraph.checkpoint.memory import InMemorySaver
from relaygraph.coordination import pbft
from relaygraph.coordination.crypto import Ed25519Keyring
from relaygraph.coordination.network import Behaviour, Fault, Simulation
from relaygraph.providers import Provider, register_provider
from relaygraph.providers.offline import OfflineChatModel, read_transcript
from relaygraph.tools.sample import ensure_sample
from smolagents import Model
from smolagents.models import (
    ChatMessage,
    ChatMessageToolCall,
    ChatMessageToolCallFunction,
    MessageRole,
)

SIZES = (4, 7, 10, 13)
MODES = ("majority", "bft", "pbft", "raft")


class InstantModel(Model):
    """Answers at once: a ballot for North, then the final answer. A test double, not an LLM."""

    def __init__(self) -> None:
        super().__init__(model_id="instant")

    def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None, **kw):
        done = bool(read_transcript(messages).calls)
        name, args = ("final_answer", {"answer": "voted"}) if done else (
            "submit_ballot", {"choice": "North", "confidence": 0.9})
        call = ChatMessageToolCall(id=f"call_{uuid.uuid4().hex[:8]}", type="function",
                                   function=ChatMessageToolCallFunction(name=name, arguments=args))
        return ChatMessage(role=MessageRole.ASSISTANT, content=f"Thought: {name}", tool_calls=[call])


register_provider(Provider("instant", lambda s: InstantModel(), lambda s: OfflineChatModel(),
                           lambda s: "instant model double (not an LLM)"))


def theoretical(mode: str, n: int, rounds: int = 1) -> int:
    ballots = n * (n - 1) * rounds
    return ballots + (pbft.expected_messages(n) if mode == "pbft" else 0)


def graph_run(mode: str, n: int, model: str, **extra) -> tuple[float, dict]:
    from relaygraph.graphs import consensus

    graph = consensus.build_graph().compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": uuid.uuid4().hex[:8], "mode": mode, "voters": n, "model": model,
                               **extra}}
    started = time.perf_counter()
    out = graph.invoke({"task": "Which region earns most?"}, config)
    return time.perf_counter() - started, out["result"]["consensus"]


def per_decision(repeat: int) -> None:
    print("\n1. Per decision, instant model (whole graph; median of", repeat, "runs)\n")
    print(f"{'mode':<9} {'n':>3} {'messages':>9} {'theory':>8} {'ratio':>6} {'wall s':>8} {'decision':>9}")
    for mode in MODES:
        for n in SIZES:
            walls, block = [], {}
            for _ in range(repeat):
                wall, block = graph_run(mode, n, "instant")
                walls.append(wall)
            sent = block["messages_sent"]
            theory = theoretical(mode, n, block.get("rounds") or 1)
            ratio = f"{sent / theory:.2f}" if mode != "raft" else "  —"
            print(f"{mode:<9} {n:>3} {sent:>9} {theory if mode != 'raft' else '—':>8} {ratio:>6} "
                  f"{statistics.median(walls):>8.3f} {block['decision']!s:>9}")


def protocol_only(repeat: int) -> None:
    print("\n2. PBFT alone on the simulator (no agents), median of", repeat, "runs\n")
    print(f"{'n':>3} {'messages':>9} {'theory':>8} {'ms':>8} {'silent primary: msgs':>21} {'ms':>8}")
    for n in SIZES:
        row = []
        for faults in ({}, {"r0": Fault(behaviour=Behaviour.SILENT)}):
            times, sent = [], 0
            for seed in range(repeat):
                ids = [f"r{i}" for i in range(n)]
                ring = Ed25519Keyring(ids, seed)
                replicas = [pbft.PbftReplica(i, ids, ring, requests=["North"]) for i in ids]
                honest = [r for r in replicas if r.id not in faults]
                sim = Simulation(replicas, seed=seed, faults=faults)
                started = time.perf_counter()
                sim.run(until=1e6, stop=lambda h=honest: all(r.executed for r in h))
                times.append(time.perf_counter() - started)
                sent = sim.stats.sent
            row.append((sent, statistics.median(times) * 1000))
        print(f"{n:>3} {row[0][0]:>9} {pbft.expected_messages(n):>8} {row[0][1]:>8.1f} {row[1][0]:>21} {row[1][1]:>8.1f}")


def overhead_share(repeat: int) -> None:
    from relaygraph.graphs import consensus as graph_module
    from relaygraph.nodes import consensus as nodes

    ensure_sample(TMP / "data")
    spent = {"wall": 0.0, "cpu": 0.0}

    def timed(fn):
        @functools.wraps(fn)  # LangGraph reads the signature to pass ``config``
        def wrapper(*a, **k):
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*a, **k)
            finally:
                spent["wall"] += time.perf_counter() - wall
                spent["cpu"] += time.thread_time() - cpu
        return wrapper

    original_decide, original_protocol, original_deliveries = graph_module.decide, graph_module.protocol, \
        nodes.deliveries
    graph_module.decide, graph_module.protocol, nodes.deliveries = (
        timed(original_decide), timed(original_protocol), timed(original_deliveries))
    try:
        print(f"\n3. Protocol overhead at n = 7, offline agents, pbft, faults=lie (median of {repeat})\n")
        graph_run("pbft", 7, "offline", faults="lie")  # warm-up: imports, key derivation, sample file
        rows = []
        for _ in range(repeat):
            spent.update(wall=0.0, cpu=0.0)
            cpu = time.process_time()
            wall, block = graph_run("pbft", 7, "offline", faults="lie")
            rows.append((wall, time.process_time() - cpu, spent["wall"], spent["cpu"]))
        wall, cpu, p_wall, p_cpu = (statistics.median(r[i] for r in rows) for i in range(4))
        print(f"run (anchor): wall {wall:.3f} s, CPU {cpu:.3f} s; protocol: wall {p_wall * 1000:.1f} ms, "
              f"CPU {p_cpu * 1000:.1f} ms")
        print(f"protocol share: wall {p_wall / wall:.2%}, CPU {p_cpu / cpu:.2%} (goal ≤ 5%); decision "
              f"{block['decision']!r}, views {block['views']}, messages {block['messages_sent']}")
    finally:
        graph_module.decide, graph_module.protocol, nodes.deliveries = (
            original_decide, original_protocol, original_deliveries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    per_decision(args.repeat)
    protocol_only(args.repeat)
    overhead_share(args.repeat)


if __name__ == "__main__":
    main()
