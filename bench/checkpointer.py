"""Checkpointer benchmark: relaygraph's SQLAlchemySaver against the official savers.

Same process, same graphs, same durability (LangGraph's default, "async") for every
saver; throughput and fan-out runs are interleaved in rounds and the median is kept,
because this machine is shared and its load drifts. Compare numbers only within a run.

    python bench/checkpointer.py            # full run (PostgreSQL if reachable)
    python bench/checkpointer.py --quick    # smaller, for a smoke test
    RELAYGRAPH_BENCH_PG=postgresql://user@host/db  to choose the PostgreSQL database

Measures: invokes/s of a 3-node graph (new thread per invoke); latest-checkpoint read
latency on a 10,000- vs a 10-checkpoint thread; bytes stored after 500 steps of a
growing message list; wall time of a 100-branch fan-out with vs without a saver.
"""

from __future__ import annotations

import argparse
import operator
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated, Any, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain_core.messages import AIMessage  # noqa: E402
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.checkpoint.sqlalchemy import SQLAlchemySaver  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.graph.message import add_messages  # noqa: E402
from langgraph.types import Send  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

PG_URL = os.environ.get("RELAYGRAPH_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
console = Console(width=150)

# --- graphs -----------------------------------------------------------------------------


class Small(TypedDict):
    x: int
    log: str


def three_node_graph(saver: BaseCheckpointSaver | None) -> Any:
    g = StateGraph(Small)
    g.add_node("a", lambda s: {"x": s["x"] + 1, "log": "a"})
    g.add_node("b", lambda s: {"x": s["x"] + 1, "log": "b"})
    g.add_node("c", lambda s: {"x": s["x"] + 1, "log": "c"})
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.add_edge("b", "c")
    g.add_edge("c", END)
    return g.compile(checkpointer=saver)


class Chat(TypedDict):
    messages: Annotated[list, add_messages]
    turns: int


WORDS = (
    "agent plan review data column value table report check result model thread state "
    "graph node edge retry error summary metric count window filter group sample merge "
    "score order record field source target branch final answer note draft memory tool"
).split()


def sentence(rng: random.Random, size: int = 240) -> str:
    out: list[str] = []
    while sum(len(w) + 1 for w in out) < size:
        out.append(rng.choice(WORDS))
    return " ".join(out)[:size]


def chat_graph(saver: BaseCheckpointSaver | None, steps: int) -> Any:
    rng = random.Random(7)

    def speak(state: Chat) -> dict[str, Any]:
        return {"messages": [AIMessage(sentence(rng))], "turns": state["turns"] + 1}

    g = StateGraph(Chat)
    g.add_node("speak", speak)
    g.add_edge(START, "speak")
    g.add_conditional_edges("speak", lambda s: "speak" if s["turns"] < steps else END)
    return g.compile(checkpointer=saver)


class Fan(TypedDict):
    results: Annotated[list, operator.add]


def fanout_graph(saver: BaseCheckpointSaver | None, branches: int) -> Any:
    g = StateGraph(Fan)
    g.add_node("start", lambda s: {})
    g.add_node("branch", lambda i: {"results": [i * i]})
    g.add_node("join", lambda s: {})
    g.add_edge(START, "start")
    g.add_conditional_edges("start", lambda s: [Send("branch", i) for i in range(branches)])
    g.add_edge("branch", "join")
    g.add_edge("join", END)
    return g.compile(checkpointer=saver)


# --- savers -----------------------------------------------------------------------------


@contextmanager
def sqlite_saver(path: Path) -> Iterator[BaseCheckpointSaver]:
    from langgraph.checkpoint.sqlite import SqliteSaver

    with SqliteSaver.from_conn_string(str(path)) as saver:
        saver.setup()
        yield saver


@contextmanager
def ours(url: str, **kw: Any) -> Iterator[BaseCheckpointSaver]:
    with SQLAlchemySaver.from_conn_string(url, **kw) as saver:
        saver.setup()
        yield saver


@contextmanager
def pg_schema() -> Iterator[str | None]:
    """A throwaway schema so neither saver touches existing tables; None if no PG."""
    try:
        import psycopg

        conn = psycopg.connect(PG_URL.replace("postgresql+psycopg", "postgresql"),
                               autocommit=True, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001 - report and skip the PG rows
        console.print(f"[yellow]PostgreSQL not reachable ({exc}); skipping it[/]")
        yield None
        return
    schema = f"rg_bench_{uuid.uuid4().hex[:8]}"
    conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()


def pg_url(schema: str) -> str:
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


@contextmanager
def postgres_saver(schema: str) -> Iterator[BaseCheckpointSaver]:
    from langgraph.checkpoint.postgres import PostgresSaver

    with PostgresSaver.from_conn_string(pg_url(schema)) as saver:
        saver.setup()
        yield saver


# --- measurements -----------------------------------------------------------------------


def invokes_per_s(graph: Any, seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        graph.invoke({"x": 0, "log": ""}, {"configurable": {"thread_id": uuid.uuid4().hex}})
        count += 1
    return count / elapsed


def rounds(
    labels: list[str], run: Callable[[str], float], n_rounds: int
) -> dict[str, float]:
    """Interleave the contenders round by round; median per contender."""
    samples: dict[str, list[float]] = {label: [] for label in labels}
    for _ in range(n_rounds):
        for label in labels:
            samples[label].append(run(label))
    return {label: statistics.median(v) for label, v in samples.items()}


def fill_thread(saver: BaseCheckpointSaver, thread_id: str, n: int) -> None:
    """n checkpoints of a typical small state (counter, 300-char note, 3 messages)."""
    config: dict[str, Any] = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    messages = [AIMessage(f"message {i} " + "x" * 200, id=str(i)) for i in range(3)]
    version = first = saver.get_next_version(None, None)
    for i in range(n):
        version = saver.get_next_version(version, None)
        cp = empty_checkpoint()
        cp["channel_values"] = {"step": i, "note": f"{i:06d}" + "n" * 300, "messages": messages}
        cp["channel_versions"] = {"step": version, "note": version, "messages": first}
        new = {"step": version, "note": version}
        if i == 0:
            new["messages"] = first
        config = saver.put(config, cp, {"source": "loop", "step": i, "parents": {}}, new)


def latest_read_ms(saver: BaseCheckpointSaver, thread_id: str, reads: int) -> float:
    config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    times = []
    for _ in range(reads):
        start = time.perf_counter()
        assert saver.get_tuple(config) is not None
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def sqlite_bytes(path: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute(
        "PRAGMA page_size"
    ).fetchone()[0]
    conn.close()
    return size


# --- main -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke test)")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--only", default="throughput,latency,bytes,fanout",
                        help="comma-separated sections to run (default: all four)")
    args = parser.parse_args()
    only = set(args.only.split(","))
    quick = args.quick
    tmp = Path(tempfile.mkdtemp(prefix="rg-bench-"))
    table = Table(title="relaygraph SQLAlchemySaver vs official savers (this machine, this run)")
    for col in ("measure", "baseline", "relaygraph", "ratio", "goal"):
        table.add_column(col)

    with ExitStack() as stack:
        schema = None if args.no_postgres else stack.enter_context(pg_schema())
        # InMemorySaver: LangGraph's checkpointing cost with no I/O at all, the ceiling
        # any database saver can approach.
        savers: dict[str, BaseCheckpointSaver | None] = {"none": None,
                                                         "InMemorySaver": InMemorySaver()}
        savers["SqliteSaver"] = stack.enter_context(sqlite_saver(tmp / "official.db"))
        savers["ours-sqlite"] = stack.enter_context(ours(f"sqlite:///{tmp}/ours.db"))
        savers["ours-sqlite-full"] = stack.enter_context(
            ours(f"sqlite:///{tmp}/ours-full.db", sqlite_synchronous="FULL")
        )
        if schema:
            savers["PostgresSaver"] = stack.enter_context(postgres_saver(schema))
            savers["ours-pg"] = stack.enter_context(ours(pg_url(schema)))

        # 1. throughput ---------------------------------------------------------------
        if "throughput" in only:
            throughput(savers, table, quick, bool(schema))
        if "latency" in only:
            latency_rows(savers, table, quick, bool(schema))
        if "bytes" in only:
            bytes_rows(tmp, table, quick)
        if "fanout" in only:
            fanout_rows(savers, table, quick, bool(schema))

    console.print(table)


def throughput(savers: dict[str, Any], table: Table, quick: bool, pg: bool) -> None:
    graphs = {label: three_node_graph(s) for label, s in savers.items()}
    for g in graphs.values():  # warm up (imports, statement caches, pools)
        invokes_per_s(g, 0.2)
    ips = rounds(list(graphs), lambda label: invokes_per_s(graphs[label], 0.6 if quick else 1.5),
                 2 if quick else 5)
    console.print("invokes/s:", {k: round(v, 1) for k, v in ips.items()})
    # SqliteSaver runs WAL at SQLite's default synchronous=FULL (fsync per commit); ours
    # defaults to NORMAL (WAL fsync at checkpoints: a power loss may drop the last
    # commits, never corrupts). Both rows are printed; only FULL/FULL is like for like.
    table.add_row("invokes/s, 3-node, SQLite: ours default NORMAL vs official FULL",
                  f"{ips['SqliteSaver']:.0f}",
                  f"{ips['ours-sqlite']:.0f}", f"{ips['ours-sqlite'] / ips['SqliteSaver']:.2f}x",
                  "(not like for like)")
    table.add_row("invokes/s, 3-node, SQLite: both synchronous=FULL", f"{ips['SqliteSaver']:.0f}",
                  f"{ips['ours-sqlite-full']:.0f}",
                  f"{ips['ours-sqlite-full'] / ips['SqliteSaver']:.2f}x", ">= 1.5x (like for like)")
    if pg:
        table.add_row("invokes/s, 3-node graph, PostgreSQL", f"{ips['PostgresSaver']:.0f}",
                      f"{ips['ours-pg']:.0f}", f"{ips['ours-pg'] / ips['PostgresSaver']:.2f}x",
                      ">= 1.2x")
    table.add_row("invokes/s without any saver", f"{ips['none']:.0f}", "", "", "(ceiling)")
    table.add_row("invokes/s with InMemorySaver (no I/O)", f"{ips['InMemorySaver']:.0f}", "",
                  f"{ips['InMemorySaver'] / ips['SqliteSaver']:.2f}x SqliteSaver",
                  "(ceiling with a saver)")


def latency_rows(savers: dict[str, Any], table: Table, quick: bool, pg: bool) -> None:
    # 2. latest-checkpoint read latency ----------------------------------------------
    big = 1000 if quick else 10_000
    for label in ["SqliteSaver", "ours-sqlite"] + (["PostgresSaver", "ours-pg"] if pg else []):
        saver = savers[label]
        assert saver is not None
        fill_thread(saver, "long", big)
        fill_thread(saver, "short", 10)
    latency = {}
    for label in ["SqliteSaver", "ours-sqlite"] + (["PostgresSaver", "ours-pg"] if pg else []):
        saver = savers[label]
        latency[label] = (latest_read_ms(saver, "long", 300), latest_read_ms(saver, "short", 300))
    console.print("latest read ms (long, short):",
                  {k: (round(a, 3), round(b, 3)) for k, (a, b) in latency.items()})
    for base, mine, db in (("SqliteSaver", "ours-sqlite", "SQLite"),
                           ("PostgresSaver", "ours-pg", "PostgreSQL")):
        if mine not in latency:
            continue
        (bl, bs), (ml, ms) = latency[base], latency[mine]
        table.add_row(f"latest read, {big:,} vs 10 checkpoints, {db} (ms)",
                      f"{bl:.3f} / {bs:.3f} = {bl / bs:.2f}x",
                      f"{ml:.3f} / {ms:.3f}", f"{ml / ms:.2f}x", "<= 1.5x")



def bytes_rows(tmp: Path, table: Table, quick: bool) -> None:
    # 3. bytes after 500 steps of a growing message list ------------------------------
    steps = 100 if quick else 500
    sizes = {}
    for label, ctx in (("SqliteSaver", sqlite_saver(tmp / "chat-official.db")),
                       ("ours-sqlite", ours(f"sqlite:///{tmp}/chat-ours.db"))):
        with ctx as saver:
            graph = chat_graph(saver, steps)
            start = time.perf_counter()
            final = graph.invoke({"messages": [], "turns": 0},
                                 {"configurable": {"thread_id": "chat"},
                                  "recursion_limit": steps * 2 + 10})
            elapsed = time.perf_counter() - start
            assert len(final["messages"]) == steps
            replay = saver.get_tuple({"configurable": {"thread_id": "chat", "checkpoint_ns": ""}})
            assert [m.content for m in replay.checkpoint["channel_values"]["messages"]] == [
                m.content for m in final["messages"]
            ]
        path = tmp / ("chat-official.db" if label == "SqliteSaver" else "chat-ours.db")
        sizes[label] = (sqlite_bytes(path), elapsed)
    console.print("chat bytes, seconds:", sizes)
    table.add_row(f"bytes after {steps} steps of ~240-byte messages (SQLite)",
                  f"{sizes['SqliteSaver'][0] / 1e6:.1f} MB",
                  f"{sizes['ours-sqlite'][0] / 1e6:.2f} MB",
                  f"{sizes['ours-sqlite'][0] / sizes['SqliteSaver'][0]:.4f}x", "<= 0.02x")
    table.add_row(f"time for those {steps} steps (s)", f"{sizes['SqliteSaver'][1]:.2f}",
                  f"{sizes['ours-sqlite'][1]:.2f}",
                  f"{sizes['ours-sqlite'][1] / sizes['SqliteSaver'][1]:.2f}x", "")



def fanout_rows(savers: dict[str, Any], table: Table, quick: bool, pg: bool) -> None:
    # 4. 100-branch fan-out -------------------------------------------------------------
    fan_labels = ["none", "InMemorySaver", "SqliteSaver", "ours-sqlite"] + (
        ["PostgresSaver", "ours-pg"] if pg else [])
    fans = {label: fanout_graph(savers[label], 100) for label in fan_labels}

    def fan_time(label: str) -> float:
        start = time.perf_counter()
        out = fans[label].invoke({"results": []}, {"configurable": {"thread_id": uuid.uuid4().hex}})
        assert len(out["results"]) == 100
        return time.perf_counter() - start

    for label in fan_labels:
        fan_time(label)
    fan = rounds(fan_labels, fan_time, 3 if quick else 9)
    console.print("fan-out seconds:", {k: round(v, 4) for k, v in fan.items()})
    table.add_row("100-branch fan-out, SQLite, wall vs no saver",
                  f"{fan['SqliteSaver'] / fan['none']:.2f}x",
                  f"{fan['ours-sqlite'] / fan['none']:.2f}x",
                  f"{fan['ours-sqlite'] / fan['SqliteSaver']:.2f}x of baseline", "<= 1.5x")
    if pg:
        table.add_row("100-branch fan-out, PostgreSQL, wall vs no saver",
                      f"{fan['PostgresSaver'] / fan['none']:.2f}x",
                      f"{fan['ours-pg'] / fan['none']:.2f}x",
                      f"{fan['ours-pg'] / fan['PostgresSaver']:.2f}x of baseline", "")
    table.add_row("100-branch fan-out without saver (ms)", f"{fan['none'] * 1000:.1f}", "", "", "")
    table.add_row("100-branch fan-out, InMemorySaver (no I/O), wall vs no saver",
                  f"{fan['InMemorySaver'] / fan['none']:.2f}x", "", "", "(ceiling with a saver)")


if __name__ == "__main__":
    main()
