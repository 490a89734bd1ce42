"""Checkpointer benchmark: relaygraph's SQLAlchemySaver against the official savers, like for like.

Every row compares savers at the *same* durability: the same LangGraph durability mode
(``sync``, ``async``, ``exit``) and, on SQLite, the same ``synchronous`` level (both FULL,
both NORMAL); PostgreSQL and MariaDB commit durably for both. Contenders run in interleaved
rounds (A, B, A, B, ...) on this shared machine; rows show the median ratio of the rounds
and their spread (min-max). Compare numbers only within a run. The goals of issue 15 are
printed with each row (met / not met).

    python bench/checkpointer.py                 # everything (PostgreSQL/MariaDB if reachable)
    python bench/checkpointer.py --quick         # smaller, for a smoke test
    python bench/checkpointer.py --only tiny,replay,growing,fanout,latency
    RELAYGRAPH_BENCH_PG=postgresql://user@host/db   RELAYGRAPH_BENCH_MYSQL=mysql://root@host/db

Sections: ``tiny`` (invokes/s of a 3-node graph, new thread per invoke), ``replay`` (the
saver calls of one such invoke replayed alone: the saver's own time, without LangGraph's),
``fastpath`` (the saver's DBAPI hot path against
the same statements through SQLAlchemy Core), ``growing`` (a chat that appends one ~240-byte message per step for 50 and 500 steps: time
per step, over the last 100 steps, and bytes stored), ``fanout`` (100 parallel branches,
wall time vs no saver) and ``latency`` (latest-checkpoint read on a 10,000- vs 10-checkpoint
thread).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import operator
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from langchain_core.messages import AIMessage  # noqa: E402
from langgraph.checkpoint.base import (  # noqa: E402
    BaseCheckpointSaver,
    copy_checkpoint,
    empty_checkpoint,
)
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.checkpoint.sqlalchemy import SQLAlchemySaver  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.graph.message import add_messages  # noqa: E402
from langgraph.types import Send  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

PG_URL = os.environ.get("RELAYGRAPH_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("RELAYGRAPH_BENCH_MYSQL", "mysql://root@127.0.0.1:3306/test")
MODES = ("sync", "async", "exit")
console = Console(width=160)

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
def sqlite_official(path: Path, synchronous: str) -> Iterator[BaseCheckpointSaver]:
    """SqliteSaver on a WAL database at ``synchronous`` (its own default is FULL)."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(str(path), check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    saver = SqliteSaver(conn)
    saver.setup()
    try:
        yield saver
    finally:
        conn.close()


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


def pg_bytes(schema: str) -> int:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute("VACUUM")
        return int(conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
            (schema,)).fetchone()[0])


@contextmanager
def postgres_official(schema: str) -> Iterator[BaseCheckpointSaver]:
    from langgraph.checkpoint.postgres import PostgresSaver

    with PostgresSaver.from_conn_string(pg_url(schema)) as saver:
        saver.setup()
        yield saver


@contextmanager
def mysql_database() -> Iterator[str | None]:
    """A throwaway MariaDB database URL; None if unreachable or the official saver is absent."""
    try:
        import pymysql
        from langgraph.checkpoint.mysql.pymysql import PyMySQLSaver  # noqa: F401
        from sqlalchemy.engine import make_url

        base = make_url(MYSQL_URL)
        admin = pymysql.connect(host=base.host, port=base.port or 3306, user=base.username,
                                password=base.password or "", autocommit=True, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001 - report and skip the MariaDB rows
        console.print(f"[yellow]MariaDB or langgraph-checkpoint-mysql unavailable ({exc}); "
                      "skipping it[/]")
        yield None
        return
    name = f"rg_bench_{uuid.uuid4().hex[:8]}"
    admin.cursor().execute(f"CREATE DATABASE {name}")
    try:
        yield str(base.set(database=name).render_as_string(hide_password=False))
    finally:
        admin.cursor().execute(f"DROP DATABASE {name}")
        admin.close()


@contextmanager
def mysql_official(url: str) -> Iterator[BaseCheckpointSaver]:
    from langgraph.checkpoint.mysql.pymysql import PyMySQLSaver

    with PyMySQLSaver.from_conn_string(url.replace("mysql+pymysql://", "mysql://")) as saver:
        saver.setup()
        yield saver


# --- measurements -----------------------------------------------------------------------


@dataclass
class Row:
    """One like-for-like comparison: per-round ratios ours / anchor (higher is better)."""

    measure: str
    anchor: str
    anchor_value: float
    ours_value: float
    ratios: list[float]
    unit: str
    goal: float | None = None  # minimum ratio
    goal_text: str = ""

    def cells(self) -> list[str]:
        med = statistics.median(self.ratios)
        spread = f"{min(self.ratios):.2f}–{max(self.ratios):.2f}" if len(self.ratios) > 1 else ""
        if self.goal is None:
            verdict = ""
        else:
            verdict = "[green]met[/]" if med >= self.goal else "[red]not met[/]"
        return [self.measure, f"{self.anchor} {self.anchor_value:,.3g} {self.unit}",
                f"{self.ours_value:,.3g} {self.unit}", f"{med:.2f}×", spread,
                f"{self.goal_text} {verdict}".strip()]


def interleave(labels: list[str], run: Callable[[str], float], n_rounds: int) -> dict[str, list[float]]:
    """Run the contenders round by round (A, B, A, B, ...); every sample per contender."""
    samples: dict[str, list[float]] = {label: [] for label in labels}
    for _ in range(n_rounds):
        for label in labels:
            samples[label].append(run(label))
    return samples


def ratio_row(measure: str, anchor: str, samples: dict[str, list[float]], base: str, mine: str,
              unit: str, higher_is_better: bool = True, goal: float | None = None,
              goal_text: str = "") -> Row:
    """Per-round ratio (ours better => > 1), medians of each side for display."""
    a, b = samples[base], samples[mine]
    ratios = [(y / x if higher_is_better else x / y) for x, y in zip(a, b, strict=True)]
    return Row(measure, anchor, statistics.median(a), statistics.median(b), ratios, unit,
               goal, goal_text)


def invokes_per_s(graph: Any, seconds: float, durability: str) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        graph.invoke({"x": 0, "log": ""}, {"configurable": {"thread_id": uuid.uuid4().hex}},
                     durability=durability)
        count += 1
    return count / elapsed


class Recorder(InMemorySaver):
    """Records the saver calls LangGraph makes, to replay them against any saver."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def put(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        # As LangGraph hands them over: a fresh copy of the checkpoint and its values
        # dict, the values themselves shared (so list deltas see the same items).
        self.calls.append(("put", (config, copy_checkpoint(checkpoint), copy.deepcopy(metadata),
                                   dict(new_versions))))
        return super().put(config, checkpoint, metadata, new_versions)

    def put_writes(self, config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
        self.calls.append(("put_writes", (config, list(writes), task_id, task_path)))
        super().put_writes(config, writes, task_id, task_path)


def record_invoke(durability: str) -> list[tuple[str, tuple[Any, ...]]]:
    rec = Recorder()
    three_node_graph(rec).invoke({"x": 0, "log": ""}, {"configurable": {"thread_id": "r"}},
                                 durability=durability)
    return rec.calls


def replay_ms(saver: BaseCheckpointSaver, calls: list[tuple[str, tuple[Any, ...]]],
              repeats: int) -> float:
    """Median time of the recorded calls of one invoke on a new thread, then the read that
    flushes anything still waiting (so deferred work is counted)."""
    times = []
    for _ in range(repeats):
        thread = uuid.uuid4().hex
        start = time.perf_counter()
        for name, args in calls:
            conf = {"configurable": {**args[0]["configurable"], "thread_id": thread}}
            getattr(saver, name)(conf, *args[1:])
        if isinstance(saver, SQLAlchemySaver):
            saver._committer.flush()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def chat_run(saver: BaseCheckpointSaver | None, steps: int, durability: str) -> list[float]:
    """Run the growing chat on a new thread; the time each step's node started."""
    stamps: list[float] = []
    rng = random.Random(7)

    def speak(state: Chat) -> dict[str, Any]:
        stamps.append(time.perf_counter())
        return {"messages": [AIMessage(sentence(rng))], "turns": state["turns"] + 1}

    g = StateGraph(Chat)
    g.add_node("speak", speak)
    g.add_edge(START, "speak")
    g.add_conditional_edges("speak", lambda s: "speak" if s["turns"] < steps else END)
    graph = g.compile(checkpointer=saver)
    config = {"configurable": {"thread_id": uuid.uuid4().hex}, "recursion_limit": steps * 2 + 10}
    kw = {"durability": durability} if saver is not None else {}
    final = graph.invoke({"messages": [], "turns": 0}, config, **kw)
    stamps.append(time.perf_counter())
    assert len(final["messages"]) == steps
    if saver is not None:  # what was stored reads back
        tup = saver.get_tuple({"configurable": {"thread_id": config["configurable"]["thread_id"],
                                                "checkpoint_ns": ""}})
        assert [m.content for m in tup.checkpoint["channel_values"]["messages"]] == [
            m.content for m in final["messages"]]
    return stamps


def step_ms(stamps: list[float]) -> tuple[float, float]:
    """Median time per step over all steps and over the last 100 (ms).

    Medians, not means: this shared machine stalls a process for 100 ms and more now and
    then, which would decide a mean over a 50-step run.
    """
    gaps = [(b - a) * 1000 for a, b in itertools.pairwise(stamps)]
    return statistics.median(gaps), statistics.median(gaps[-100:])


def sqlite_bytes(path: Path) -> int:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    size = (pages - free) * conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    return size


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


# --- sections ---------------------------------------------------------------------------


@dataclass
class Bench:
    tmp: Path
    quick: bool
    stack: ExitStack
    pg: str | None
    mysql: str | None
    rows: list[Row]

    @property
    def rounds(self) -> int:
        return 3 if self.quick else 5

    def pairs(self) -> list[tuple[str, str, Callable[[], Any], Callable[[], Any]]]:
        """(database label, anchor name, anchor factory, ours factory), like for like."""
        out: list[tuple[str, str, Callable[[], Any], Callable[[], Any]]] = []
        for level in ("FULL", "NORMAL"):
            out.append((f"SQLite {level}", f"SqliteSaver {level}",
                        lambda level=level: sqlite_official(
                            self.tmp / f"off-{level}-{uuid.uuid4().hex[:6]}.db", level),
                        lambda level=level: ours(
                            f"sqlite:///{self.tmp}/ours-{level}-{uuid.uuid4().hex[:6]}.db",
                            sqlite_synchronous=level)))
        if self.pg:
            out.append(("PostgreSQL", "PostgresSaver", lambda: postgres_official(self.pg),
                        lambda: ours(pg_url(self.pg))))
        if self.mysql:
            out.append(("MariaDB", "PyMySQLSaver", lambda: mysql_official(self.mysql),
                        lambda: ours(self.mysql)))
        return out


def tiny_rows(b: Bench) -> None:
    """Invokes/s of the 3-node graph, per database and durability mode."""
    seconds = 0.5 if b.quick else 1.0
    for db, anchor, make_anchor, make_ours in b.pairs():
        with make_anchor() as official, make_ours() as mine:
            graphs = {"anchor": three_node_graph(official), "ours": three_node_graph(mine)}
            for mode in MODES:
                for g in graphs.values():
                    invokes_per_s(g, 0.2, mode)  # warm up
                samples = interleave(
                    list(graphs),
                    lambda label, graphs=graphs, mode=mode: invokes_per_s(graphs[label], seconds,
                                                                          mode),
                    b.rounds)
                goal = 1.2 if db == "PostgreSQL" else (1.0 if db.startswith("SQLite") else None)
                b.rows.append(ratio_row(f"tiny 3-node invoke, {db}, durability={mode}", anchor,
                                        samples, "anchor", "ours", "inv/s", goal=goal,
                                        goal_text=f">= {goal}×" if goal else ""))
                console.print(b.rows[-1].cells())


def replay_rows(b: Bench) -> None:
    """The saver's own time per invoke: LangGraph's calls of one invoke, replayed."""
    repeats = 20 if b.quick else 50
    for mode in MODES:
        calls = record_invoke(mode)
        with ExitStack() as stack:
            savers = {
                "SqliteSaver NORMAL": stack.enter_context(
                    sqlite_official(b.tmp / f"rp-off-{mode}.db", "NORMAL")),
                "ours NORMAL": stack.enter_context(
                    ours(f"sqlite:///{b.tmp}/rp-ours-{mode}.db", sqlite_synchronous="NORMAL")),
            }
            if b.pg:
                savers["PostgresSaver"] = stack.enter_context(postgres_official(b.pg))
                savers["ours PostgreSQL"] = stack.enter_context(ours(pg_url(b.pg)))
            for saver in savers.values():
                replay_ms(saver, calls, 20)
            samples = interleave(
                list(savers),
                # PostgreSQL commits take milliseconds here: fewer repeats keep the run short
                lambda label, savers=savers, calls=calls: replay_ms(
                    savers[label], calls, repeats if "Postgres" not in label else repeats // 5),
                b.rounds)
            b.rows.append(ratio_row(
                f"saver time per 3-node invoke (replayed calls), SQLite NORMAL, durability={mode}",
                "SqliteSaver NORMAL", samples, "SqliteSaver NORMAL", "ours NORMAL", "ms",
                higher_is_better=False, goal=1 / 1.5, goal_text="within 1.5× (>= 0.67×)"))
            console.print(b.rows[-1].cells())
            if b.pg:
                b.rows.append(ratio_row(
                    f"saver time per 3-node invoke (replayed calls), PostgreSQL, durability={mode}",
                    "PostgresSaver", samples, "PostgresSaver", "ours PostgreSQL", "ms",
                    higher_is_better=False))
                console.print(b.rows[-1].cells())


def growing_rows(b: Bench) -> None:
    """A growing message history: time per step (all, last 100) and bytes, per mode."""
    sizes = (50, 500) if not b.quick else (50, 150)
    levels = ("NORMAL",) if b.quick else ("FULL", "NORMAL")
    rounds = 1 if b.quick else 2
    for steps in sizes:
        for mode in MODES if steps == sizes[-1] or not b.quick else ("async",):
            for level in levels:
                per: dict[str, dict[str, list[float]]] = {"anchor": {"all": [], "last": [], "bytes": []},
                                                          "ours": {"all": [], "last": [], "bytes": []}}
                for _ in range(rounds):
                    for label in ("anchor", "ours"):
                        path = b.tmp / f"chat-{label}-{uuid.uuid4().hex[:6]}.db"
                        ctx = (sqlite_official(path, level) if label == "anchor"
                               else ours(f"sqlite:///{path}", sqlite_synchronous=level))
                        with ctx as saver:
                            stamps = chat_run(saver, steps, mode)
                        all_ms, last_ms = step_ms(stamps)
                        per[label]["all"].append(all_ms)
                        per[label]["last"].append(last_ms)
                        per[label]["bytes"].append(sqlite_bytes(path))
                for key, what, goal, text in (
                    ("all", "ms/step (median)", None, ""),
                    ("last", "ms/step, last 100 (median)", 3.0 if steps >= 500 else None,
                     ">= 3× steps/s" if steps >= 500 else ""),
                ):
                    b.rows.append(ratio_row(
                        f"growing chat {steps} steps, SQLite {level}, durability={mode}: {what}",
                        f"SqliteSaver {level}", {"a": per["anchor"][key], "o": per["ours"][key]},
                        "a", "o", "ms", higher_is_better=False, goal=goal, goal_text=text))
                    console.print(b.rows[-1].cells())
                mine, theirs = per["ours"]["bytes"][-1], per["anchor"]["bytes"][-1]
                goal = 50.0 if steps >= 500 else None
                b.rows.append(Row(f"growing chat {steps} steps, SQLite {level}, durability={mode}: bytes",
                                  f"SqliteSaver {level}", theirs, mine, [theirs / mine], "B",
                                  goal, "<= 0.02× (ratio >= 50)" if goal else ""))
                console.print(b.rows[-1].cells())
        if b.pg:
            with pg_schema() as schema_a, pg_schema() as schema_b:
                assert schema_a and schema_b
                per = {}
                with postgres_official(schema_a) as official, ours(pg_url(schema_b)) as mine:
                    for label, saver in (("anchor", official), ("ours", mine)):
                        per[label] = step_ms(chat_run(saver, steps, "async"))
                a_bytes, o_bytes = pg_bytes(schema_a), pg_bytes(schema_b)
                b.rows.append(Row(f"growing chat {steps} steps, PostgreSQL, async: ms/step, last 100",
                                  "PostgresSaver", per["anchor"][1], per["ours"][1],
                                  [per["anchor"][1] / per["ours"][1]], "ms"))
                console.print(b.rows[-1].cells())
                b.rows.append(Row(f"growing chat {steps} steps, PostgreSQL, async: bytes (tables)",
                                  "PostgresSaver", a_bytes, o_bytes, [a_bytes / o_bytes], "B"))
                console.print(b.rows[-1].cells())


def fanout_rows(b: Bench) -> None:
    """100-branch fan-out at NORMAL: wall time with each saver over none."""
    with ExitStack() as stack:
        savers: dict[str, Any] = {
            "none": None, "InMemorySaver": InMemorySaver(),
            "SqliteSaver NORMAL": stack.enter_context(sqlite_official(b.tmp / "fan-off.db", "NORMAL")),
            "ours NORMAL": stack.enter_context(ours(f"sqlite:///{b.tmp}/fan-ours.db")),
        }
        fans = {label: fanout_graph(s, 100) for label, s in savers.items()}

        def fan_time(label: str) -> float:
            start = time.perf_counter()
            out = fans[label].invoke({"results": []},
                                     {"configurable": {"thread_id": uuid.uuid4().hex}})
            assert len(out["results"]) == 100
            return time.perf_counter() - start

        for label in fans:
            fan_time(label)
        samples = interleave(list(fans), fan_time, 3 if b.quick else 9)
        none = samples["none"]
        for label in ("InMemorySaver", "SqliteSaver NORMAL", "ours NORMAL"):
            over = [x / n for x, n in zip(samples[label], none, strict=True)]
            mine = label == "ours NORMAL"
            b.rows.append(Row(f"100-branch fan-out, {label}: wall time vs no saver (ratio shows 1.8 / x)",
                              "no saver", statistics.median(none) * 1000,
                              statistics.median(samples[label]) * 1000,
                              [1.8 / o for o in over], "ms",
                              1.0 if mine else None, "<= 1.8× no saver" if mine else "(reference)"))
            console.print(b.rows[-1].cells(), f"x{statistics.median(over):.2f} of no saver")


def latency_rows(b: Bench) -> None:
    big = 1000 if b.quick else 10_000
    with ExitStack() as stack:
        savers = {"SqliteSaver": stack.enter_context(sqlite_official(b.tmp / "lat-off.db", "NORMAL")),
                  "ours": stack.enter_context(ours(f"sqlite:///{b.tmp}/lat-ours.db"))}
        for saver in savers.values():
            fill_thread(saver, "long", big)
            fill_thread(saver, "short", 10)
        for label, saver in savers.items():
            long_ms, short_ms = latest_read_ms(saver, "long", 300), latest_read_ms(saver, "short", 300)
            b.rows.append(Row(f"latest read, {big:,} vs 10 checkpoints, SQLite, {label} (ratio 1.5/x)",
                              "10 checkpoints", short_ms, long_ms, [1.5 / (long_ms / short_ms)], "ms",
                              1.0 if label == "ours" else None, "<= 1.5× slower" if label == "ours" else ""))
            console.print(b.rows[-1].cells())


def fastpath_rows(b: Bench) -> None:
    """Whether fastpath.py pays: one invoke's writes, prepared once by the saver, committed
    through the DBAPI hot path (``RawConnections.write``) or through SQLAlchemy Core
    (``Connection.execute`` in a transaction), one transaction per saver call as the saver
    commits them in ``sync`` mode."""
    from langgraph.checkpoint.sqlalchemy.engines import WRITE_OPTION

    recorded = record_invoke("sync")
    with ours(f"sqlite:///{b.tmp}/fp.db") as saver:
        assert isinstance(saver, SQLAlchemySaver)
        prepared = [saver._begin_put(*args)[0] if name == "put"  # noqa: SLF001
                    else saver._writes_calls(*args) for name, args in recorded]  # noqa: SLF001
        engine = saver.engine.execution_options(**{WRITE_OPTION: True})
        raw = saver._committer.raw  # noqa: SLF001

        def batches() -> list[Any]:
            thread = uuid.uuid4().hex  # a new thread per invoke, as in the other rows
            return [[(stmt, [{**row, "thread_id": thread} for row in rows]) for stmt, rows in calls]
                    for calls in prepared]

        def core(calls: Any) -> None:
            with engine.connect() as conn, conn.begin():
                for stmt, rows in calls:
                    conn.execute(stmt, rows)

        paths = {"SQLAlchemy Core": core, "fastpath": raw.write}

        def run(label: str) -> float:
            times = []
            for _ in range(30):
                work = batches()
                start = time.perf_counter()
                for calls in work:
                    paths[label](calls)
                times.append(time.perf_counter() - start)
            return statistics.median(times) * 1000

        for label in paths:
            run(label)
        samples = interleave(list(paths), run, b.rounds)
        b.rows.append(ratio_row("one 3-node invoke's writes, SQLite NORMAL, sync: DBAPI fastpath "
                                "vs the same statements through SQLAlchemy Core", "Core", samples,
                                "SQLAlchemy Core", "fastpath", "ms", higher_is_better=False,
                                goal=1.0, goal_text="keep fastpath.py only if > 1×"))
        console.print(b.rows[-1].cells())


SECTIONS = {"tiny": tiny_rows, "replay": replay_rows, "growing": growing_rows,
            "fanout": fanout_rows, "latency": latency_rows, "fastpath": fastpath_rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke test)")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-mysql", action="store_true")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections (default: {','.join(SECTIONS)})")
    args = parser.parse_args()
    with ExitStack() as stack:
        pg = None if args.no_postgres else stack.enter_context(pg_schema())
        mysql = None if args.no_mysql else stack.enter_context(mysql_database())
        bench = Bench(Path(tempfile.mkdtemp(prefix="rg-bench-")), args.quick, stack, pg, mysql, [])
        for name in args.only.split(","):
            SECTIONS[name](bench)
    table = Table(title="relaygraph SQLAlchemySaver vs the official savers, like for like "
                        "(ratio > 1: relaygraph better; median of interleaved rounds, spread min–max)")
    for col in ("measure", "anchor", "relaygraph", "ratio", "spread", "goal"):
        table.add_column(col)
    for row in bench.rows:
        table.add_row(*row.cells())
    console.print(table)


if __name__ == "__main__":
    main()
