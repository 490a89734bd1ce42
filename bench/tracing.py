"""Tracing overhead: the same agent graphs with tracing off vs on. Goal: on/off ≤ 1.05×.

    python bench/tracing.py [--invokes N] [--rounds R]

"On" is the representative production path: BatchSpanProcessor → real OTLP/HTTP exporter
(to a receiver in another process that decodes every request, as Jaeger would) *and* the
span store (SQLite, the checkpoint database), plus the runner's checkpoint feed for node
checkpoint ids. Off and on
alternate round by round (the machine is shared), each round ends with a flush so export
work is counted, and the medians are compared. Two graphs:

* ``sequential`` — the real workflow (its report tool renders a chart, so runs are ~1 s);
* ``light`` — three agent nodes whose tool is cheap, so spans are a large share of the work
  (the worst case for relative overhead).

Prints wall and CPU time per invoke and their on/off ratios; no assertions.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def light_graph():
    from langgraph.graph import START, StateGraph
    from relaygraph.nodes.agent import AgentSpec, make_agent_node
    from relaygraph.nodes.results import make_result_node
    from relaygraph.nodes.state import RunInput, WorkflowState

    builder = StateGraph(WorkflowState, input_schema=RunInput)
    previous = START
    for name in ("scout", "checker", "summariser"):
        spec = AgentSpec(name=name, role=name, instructions="List the datasets.", tools=("list_datasets",))
        builder.add_node(name, make_agent_node(spec))
        builder.add_edge(previous, name)
        previous = name
    builder.add_node("finalize", make_result_node())
    builder.add_edge(previous, "finalize")
    return builder


def timed_round(builder, name: str, task: str, invokes: int, saver: str = "memory") -> tuple[float, float]:
    """(wall, CPU) seconds per invoke; CPU time counts every thread of this process — the
    exporter's too — and is what other load on a shared machine disturbs least.

    ``saver``: ``memory`` (InMemorySaver: tracing's cost alone) or ``sqlite`` (relaygraph's
    saver on the checkpoint database, as the CLI runs: checkpoint commits included, and the
    span-store writes tracing makes at those commits)."""
    from contextlib import nullcontext

    from langgraph.checkpoint.memory import InMemorySaver
    from relaygraph.cli import runner
    from relaygraph.config.checkpointing import open_checkpointer
    from relaygraph.observability import tracing

    with (open_checkpointer() if saver == "sqlite" else nullcontext(InMemorySaver())) as checkpointer:
        graph = runner.compile_graph(builder, checkpointer, name)
        gc.collect()  # a full collection left over from the previous round would land in this one
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(invokes):
            runner.execute(graph, {"task": task}, runner.run_config(f"{name}-{time.time_ns()}-{i}", name))
        tracing.flush()
    return (time.perf_counter() - started) / invokes, (time.process_time() - cpu) / invokes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invokes", type=int, default=3, help="invokes per round")
    parser.add_argument("--rounds", type=int, default=5, help="off/on rounds per graph")
    parser.add_argument("--saver", choices=("memory", "sqlite"), default="memory",
                        help="memory: InMemorySaver; sqlite: relaygraph's saver on the checkpoint DB (as the CLI)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="relaygraph-bench-tracing-"))
    os.environ.update(RELAYGRAPH_DATA_DIR=str(work / "data"), RELAYGRAPH_OUTPUT_DIR=str(work / "out"),
                      RELAYGRAPH_MODEL="offline", RELAYGRAPH_CHECKPOINT_DB=f"sqlite:///{work / 'cp.db'}")
    for var in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        os.environ.pop(var, None)

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from relaygraph.graphs.sequential import DEFAULT_TASK, build_graph
    from relaygraph.observability import tracing

    graphs = {"sequential": (build_graph, DEFAULT_TASK), "light": (light_graph, "List the datasets.")}
    port = _free_port()
    receiver = subprocess.Popen([sys.executable, str(Path(__file__).resolve().parent.parent / "tests" / "otlp_receiver.py"), "--port", str(port), "--quiet"],
                                cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE, text=True)
    assert receiver.stdout is not None
    receiver.stdout.readline()  # "listening on ..."
    endpoint = f"http://127.0.0.1:{port}/v1/traces"
    try:
        for name, (factory, task) in graphs.items():
            tracing.configure(enabled=False)
            timed_round(factory(), name, task, 1, args.saver)  # warm-up: imports, sample data, caches
            tracing.configure(enabled=True, exporters=[OTLPSpanExporter(endpoint=endpoint)])
            timed_round(factory(), name, task, 1, args.saver)  # warm-up: exporter, span store table, engine
            off, on = [], []
            for _ in range(args.rounds):
                tracing.configure(enabled=False)
                off.append(timed_round(factory(), name, task, args.invokes, args.saver))
                # a fresh exporter per round: turning tracing off shuts the previous one down
                tracing.configure(enabled=True, exporters=[OTLPSpanExporter(endpoint=endpoint)])
                on.append(timed_round(factory(), name, task, args.invokes, args.saver))
            tracing.shutdown()
            for label, k in (("wall", 0), ("cpu", 1)):
                off_ms = statistics.median(r[k] for r in off) * 1e3
                on_ms = statistics.median(r[k] for r in on) * 1e3
                print(f"{name:<11} {label:<4} off {off_ms:8.1f} ms/invoke   on {on_ms:8.1f} ms/invoke   "
                      f"ratio {on_ms / off_ms:.3f}x   (median of {args.rounds} rounds x {args.invokes} invokes, {args.saver} saver)")
    finally:
        receiver.send_signal(signal.SIGINT)
    received = sum(int(line.split()[1]) for line in receiver.communicate()[0].splitlines() if line.startswith("received"))
    print(f"OTLP receiver (separate process): {received} spans; span store: {_count(work / 'cp.db')} rows")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _count(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return conn.execute("select count(*) from relaygraph_spans").fetchone()[0]


if __name__ == "__main__":
    main()
