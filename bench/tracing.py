"""Tracing overhead: the same agent graphs with tracing off vs on. Goal: on/off ≤ 1.05×.

    python bench/tracing.py [--invokes N] [--rounds R]

"On" is the representative production path: BatchSpanProcessor → real OTLP/HTTP exporter
(to an in-process receiver that decodes every request) *and* the span store (SQLite, the
checkpoint database), plus the runner's checkpoint feed for node checkpoint ids. Off and on
alternate round by round (the machine is shared), each round ends with a flush so export
work is counted, and the medians are compared. Two graphs:

* ``sequential`` — the real workflow (its report tool renders a chart, so runs are ~1 s);
* ``light`` — three agent nodes whose tool is cheap, so spans are a large share of the work
  (the worst case for relative overhead).

Prints numbers only; no assertions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def light_graph():
    from langgraph.graph import START, StateGraph

    from nodes.agent import AgentSpec, make_agent_node
    from nodes.results import make_result_node
    from nodes.state import RunInput, WorkflowState

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


def timed_round(builder, name: str, task: str, invokes: int) -> float:
    from langgraph.checkpoint.memory import InMemorySaver

    from runtime import runner, telemetry

    graph = runner.compile_graph(builder, InMemorySaver(), name)
    started = time.perf_counter()
    for i in range(invokes):
        runner.execute(graph, {"task": task}, runner.run_config(f"{name}-{time.time_ns()}-{i}", name))
    telemetry.flush()
    return (time.perf_counter() - started) / invokes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invokes", type=int, default=3, help="invokes per round")
    parser.add_argument("--rounds", type=int, default=5, help="off/on rounds per graph")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="relaygraph-bench-tracing-"))
    os.environ.update(RELAYGRAPH_DATA_DIR=str(work / "data"), RELAYGRAPH_OUTPUT_DIR=str(work / "out"),
                      RELAYGRAPH_MODEL="offline", RELAYGRAPH_CHECKPOINT_DB=f"sqlite:///{work / 'cp.db'}")
    for var in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        os.environ.pop(var, None)

    from graphs.sequential import DEFAULT_TASK, build_graph
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from runtime import telemetry
    from runtime.otlp_receiver import OtlpReceiver

    graphs = {"sequential": (build_graph, DEFAULT_TASK), "light": (light_graph, "List the datasets.")}
    with OtlpReceiver() as receiver:
        for name, (factory, task) in graphs.items():
            telemetry.configure(enabled=False)
            timed_round(factory(), name, task, 1)  # warm-up: imports, sample data, caches
            off, on = [], []
            for _ in range(args.rounds):
                telemetry.configure(enabled=False)
                off.append(timed_round(factory(), name, task, args.invokes))
                # a fresh exporter per round: turning tracing off shuts the previous one down
                telemetry.configure(enabled=True, exporters=[OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces")])
                on.append(timed_round(factory(), name, task, args.invokes))
            telemetry.shutdown()
            off_ms, on_ms = statistics.median(off) * 1e3, statistics.median(on) * 1e3
            print(f"{name:<11} off {off_ms:8.1f} ms/invoke   on {on_ms:8.1f} ms/invoke   "
                  f"ratio {on_ms / off_ms:.3f}x   (median of {args.rounds} rounds x {args.invokes} invokes)")
    print(f"OTLP receiver: {len(receiver.spans)} spans in {receiver.requests} requests; "
          f"span store: {_count(work / 'cp.db')} rows")


def _count(db: Path) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return conn.execute("select count(*) from relaygraph_spans").fetchone()[0]


if __name__ == "__main__":
    main()
