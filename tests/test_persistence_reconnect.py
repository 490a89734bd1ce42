"""A lost database connection is retried, within a bound, then reported in one line (issue 11 §2).

Each test runs on PostgreSQL and MariaDB (``outage`` fixture: the test's own database user,
whose connections are terminated with ``pg_terminate_backend`` / ``KILL``, or refused), with
the sync and the async saver. The sync saver is driven through its ``a*`` methods, which run
the sync ones in a worker thread, so one scenario serves both.
"""

from __future__ import annotations

import asyncio
import json
import operator
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypedDict

import pytest
from conftest import Outage
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.sqlalchemy import (
    AsyncSQLAlchemySaver,
    ConnectionLostError,
    RetryPolicy,
    SQLAlchemySaver,
)
from langgraph.graph import END, START, StateGraph

MODES = ["sync", "async"]


@asynccontextmanager
async def open_saver(mode: str, url: str, bound_s: float = 20.0) -> AsyncIterator[Any]:
    policy = RetryPolicy(reconnect_within_s=bound_s)
    if mode == "sync":
        with SQLAlchemySaver.from_conn_string(url, retry=policy) as saver:
            saver.setup()
            yield saver
    else:
        async with AsyncSQLAlchemySaver.from_conn_string(url, retry=policy) as saver:
            await saver.setup()
            yield saver


def thread(name: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": name, "checkpoint_ns": ""}}


async def put(saver: Any, config: dict[str, Any], i: int) -> dict[str, Any]:
    """Store checkpoint ``i`` (a blob-sized value and a small one) after ``config``."""
    cp = empty_checkpoint()
    cp["channel_values"] = {"doc": f"document {i} " * 400, "n": i}
    cp["channel_versions"] = {"doc": str(i), "n": str(i)}
    return await saver.aput(config, cp, {"step": i}, {"doc": str(i), "n": str(i)})


async def latest(saver: Any, name: str) -> Any:
    found = await saver.aget_tuple(thread(name))
    assert found is not None
    return found


@pytest.mark.parametrize("mode", MODES)
def test_a_terminated_connection_is_replaced_and_the_operation_retried(outage: Outage, mode: str) -> None:
    """Once: every operation meets a connection terminated since its last use (PostgreSQL's kept
    connections, which no pre-ping checks) or right after the pool's pre-ping passed it."""

    async def scenario() -> None:
        async with open_saver(mode, outage.url) as saver:
            config = await put(saver, thread("t"), 0)
            steps: list[tuple[str, Any]] = [
                ("put", lambda: put(saver, config, 1)),
                ("put_writes", lambda: saver.aput_writes(config, [("doc", "w0"), ("n", 7)], "task-1")),
                ("get_tuple", lambda: latest(saver, "t")),
                ("list", lambda: collect(saver.alist(thread("t")))),
                ("copy_thread", lambda: saver.acopy_thread("t", "copy")),
            ]
            for name, step in steps:
                before = outage.kills
                outage.kill()
                outage.kill_on_checkout(saver.engine)
                await step()
                assert outage.kills > before, name  # each step really met a killed connection
            found = await latest(saver, "t")
            assert found.checkpoint["channel_values"]["n"] == 1
            assert found.checkpoint["channel_values"]["doc"] == "document 1 " * 400
            listed = await collect(saver.alist(thread("t")))
            assert [t.metadata["step"] for t in listed] == [1, 0]
            first = listed[1]
            assert [(c, v) for _, c, v in first.pending_writes] == [("doc", "w0"), ("n", 7)]
            assert (await latest(saver, "copy")).checkpoint["id"] == found.checkpoint["id"]

    asyncio.run(scenario())


async def collect(items: Any) -> list[Any]:
    return [item async for item in items]


@pytest.mark.parametrize("mode", MODES)
def test_connections_terminated_again_and_again_for_seconds_lose_nothing(outage: Outage, mode: str) -> None:
    """Repeatedly: a background thread terminates the user's connections every 50 ms for 2 s
    while checkpoints are written and read back; every one is there, none twice."""

    async def scenario() -> int:
        async with open_saver(mode, outage.url) as saver:
            config, i = thread("busy"), 0
            with outage.killing(seconds=2.0, every_s=0.05, at_least=5) as killer:
                while killer.is_alive() or i < 5:
                    config = await put(saver, config, i)
                    await saver.aput_writes(config, [("n", i)], f"task-{i}")
                    assert (await latest(saver, "busy")).checkpoint["channel_values"]["n"] == i
                    i += 1
            listed = await collect(saver.alist(thread("busy")))
            assert [t.metadata["step"] for t in listed] == list(range(i - 1, -1, -1))
            assert all([w[2] for w in t.pending_writes] == [t.metadata["step"]] for t in listed)
            return i

    written = asyncio.run(scenario())
    assert written >= 5 and outage.kills >= 5, (written, outage.kills)


@pytest.mark.parametrize("mode", MODES)
def test_a_database_away_past_the_bound_is_one_clear_error_and_nothing_is_lost(outage: Outage, mode: str) -> None:
    """Longer than the bound: the call gives up after about ``reconnect_within_s`` with
    ``ConnectionLostError`` (one line, what to do); once the database is back the same saver
    works again and holds everything committed before, nothing of the failed write."""

    async def scenario() -> None:
        async with open_saver(mode, outage.url, bound_s=1.0) as saver:
            config = await put(saver, thread("t"), 0)
            with outage.down():
                started = time.monotonic()
                with pytest.raises(ConnectionLostError) as lost:
                    await put(saver, config, 1)
                waited = time.monotonic() - started
                with pytest.raises(ConnectionLostError):
                    await saver.aget_tuple(thread("t"))
            assert 0.3 <= waited <= 6, waited
            message = str(lost.value)
            assert "\n" not in message and "could not reconnect" in message and "resume" in message
            assert "Check that the database is up" in message
            found = await latest(saver, "t")
            assert found.checkpoint["channel_values"]["n"] == 0  # the failed put left nothing
            await put(saver, found.config, 1)
            assert (await latest(saver, "t")).checkpoint["channel_values"]["n"] == 1

    asyncio.run(scenario())


# --- a graph run --------------------------------------------------------------------------------


class State(TypedDict, total=False):
    parts: Annotated[list[str], operator.add]
    result: dict[str, Any]


STEPS = ["a", "b", "c", "d", "e"]


def build(on_step: Any = None) -> StateGraph:
    builder = StateGraph(State)
    previous = START
    for name in STEPS:
        def node(state: State, name: str = name) -> dict[str, Any]:
            if on_step is not None:
                on_step(name)
            time.sleep(0.05)
            return {"parts": [name]}

        builder.add_node(name, node)
        builder.add_edge(previous, name)
        previous = name
    builder.add_node("result", lambda s: {"result": {"status": "completed", "parts": s["parts"]}})
    builder.add_edge(previous, "result")
    builder.add_edge("result", END)
    return builder


async def invoke(graph: Any, graph_input: Any, config: dict[str, Any]) -> dict[str, Any]:
    return await graph.ainvoke(graph_input, config, durability="sync")


@pytest.mark.parametrize("mode", MODES)
def test_a_graph_run_survives_connections_terminated_mid_run(outage: Outage, mode: str) -> None:
    async def scenario() -> dict[str, Any]:
        async with open_saver(mode, outage.url) as saver:
            graph = build(on_step=lambda name: outage.kill()).compile(checkpointer=saver)
            with outage.killing(seconds=1.0, every_s=0.05):
                return await invoke(graph, {"parts": []}, {"configurable": {"thread_id": "run"}})

    final = asyncio.run(scenario())
    assert final["result"] == {"status": "completed", "parts": STEPS}


@pytest.mark.parametrize("mode", MODES)
def test_a_graph_run_stopped_by_an_outage_is_resumed_to_the_right_result(outage: Outage, mode: str) -> None:
    """Past the bound, mid-run: the run stops with ``ConnectionLostError``; once the database
    is back, ``invoke(None)`` continues from the last checkpoint to the same result."""

    def take_database_away(name: str) -> None:
        if name == "c":
            outage.logins(False)
            outage.kill()

    async def scenario() -> dict[str, Any]:
        config = {"configurable": {"thread_id": "cut"}}
        async with open_saver(mode, outage.url, bound_s=1.0) as saver:
            graph = build(on_step=take_database_away).compile(checkpointer=saver)
            try:
                with pytest.raises(ConnectionLostError):
                    await invoke(graph, {"parts": []}, config)
            finally:
                outage.logins(True)
            state = await graph.aget_state(config)
            assert state.values["parts"] == ["a", "b"] and state.next == ("c",)
            return await invoke(build().compile(checkpointer=saver), None, config)

    final = asyncio.run(scenario())
    assert final["result"] == {"status": "completed", "parts": STEPS}


# --- the CLI ------------------------------------------------------------------------------------


def cli_run(*args: str) -> Any:
    from relaygraph.cli.main import app
    from typer.testing import CliRunner

    return CliRunner().invoke(app, list(args))


ORIGINAL_PUT = SQLAlchemySaver.put


def hook_puts(monkeypatch: pytest.MonkeyPatch, before: Any = None, after: Any = None) -> list[int]:
    """Call ``before(n, checkpoint)`` / ``after(n, checkpoint)`` around the saver's n-th put."""
    original = ORIGINAL_PUT
    count = [0]

    def put(self: SQLAlchemySaver, config: Any, checkpoint: Any, *args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        if before is not None:
            before(count[0], checkpoint)
        stored = original(self, config, checkpoint, *args, **kwargs)
        if after is not None:
            after(count[0], checkpoint)
        return stored

    monkeypatch.setattr(SQLAlchemySaver, "put", put)
    return count


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_cli_run_whose_connections_are_terminated_before_every_checkpoint_completes(
    outage: Outage, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Every checkpoint write meets a terminated connection, and so does the run's lease
    (taken again, with a warning); the run completes and exits 0."""
    puts = hook_puts(monkeypatch, before=lambda n, cp: outage.kill())
    result = cli_run("run", "sequential", "--thread-id", "kills", "--checkpoint-db", outage.url, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["result"]["status"] == "completed"
    assert puts[0] >= 5 and outage.kills >= puts[0]
    assert "the run lease was released with its database connection; taking it again" in caplog.text


def test_cli_never_reports_failure_for_a_run_that_finished(outage: Outage, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database goes away right after the final checkpoint, for longer than the bound: reading
    the final state back and releasing the lease fail, but the run finished - exit 0, its result."""
    monkeypatch.setenv("RELAYGRAPH_DB_RECONNECT_S", "1")

    def away_after_result(n: int, checkpoint: Any) -> None:
        if "result" in checkpoint["channel_values"]:
            outage.logins(False)
            outage.kill()

    hook_puts(monkeypatch, after=away_after_result)
    try:
        result = cli_run("run", "sequential", "--thread-id", "done", "--checkpoint-db", outage.url, "--json")
    finally:
        outage.logins(True)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["result"]["status"] == "completed"
    assert outage.kills >= 1 and not error_lines(result.stderr)


@pytest.mark.parametrize("away_at", [1, 3, -1])
def test_cli_run_stopped_by_an_outage_says_so_in_one_line_and_resume_finishes_it(
    outage: Outage, monkeypatch: pytest.MonkeyPatch, away_at: int
) -> None:
    """Away for longer than the bound at the run's 3rd checkpoint: exit 75, one line naming
    ``relaygraph resume cut``, and resume finishes it. At the 1st (its input), nothing of the
    run exists to resume: the line says to run it again, and that run finishes. At the last
    (-1: the result's writes are saved, the final checkpoint is not), resume saves it."""
    monkeypatch.setenv("RELAYGRAPH_DB_RECONNECT_S", "1")

    def away(n: int, checkpoint: Any) -> None:
        if n == away_at or (away_at == -1 and "result" in checkpoint["channel_values"]):
            outage.logins(False)
            outage.kill()

    hook_puts(monkeypatch, before=away)
    try:
        stopped = cli_run("run", "sequential", "--thread-id", "cut", "--checkpoint-db", outage.url, "--json")
    finally:
        outage.logins(True)
    assert stopped.exit_code == 75, stopped.output  # EX_TEMPFAIL: try again later
    [line] = error_lines(stopped.stderr)
    assert "could not reconnect" in line, line
    monkeypatch.setattr(SQLAlchemySaver, "put", ORIGINAL_PUT)  # the database behaves again
    if away_at == 1:
        assert "run it again (nothing of this run was saved)" in line, line
        resumed = cli_run("run", "sequential", "--thread-id", "cut", "--checkpoint-db", outage.url, "--json")
    else:
        assert "`relaygraph resume cut`" in line, line
        resumed = cli_run("resume", "cut", "--checkpoint-db", outage.url, "--json")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["result"]["status"] == "completed"


def test_what_counts_as_a_lost_connection() -> None:
    """A statement on a connection that died earlier in its transaction raises SQLAlchemy's
    PendingRollbackError; it is a lost connection when the error it was handling is one."""
    import sqlalchemy as sa
    from langgraph.checkpoint.sqlalchemy.retry import is_connection_lost, is_transient

    lost = sa.exc.OperationalError("SELECT 1", {}, Exception("gone"), connection_invalidated=True)
    try:
        try:
            raise lost
        finally:
            raise sa.exc.PendingRollbackError("Can't reconnect until invalid transaction is rolled back")
    except sa.exc.PendingRollbackError as exc:
        assert is_connection_lost(exc) and is_transient(exc)
    assert not is_connection_lost(sa.exc.PendingRollbackError("no cause"))
    assert not is_connection_lost(sa.exc.IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not is_connection_lost(ValueError(2013))


def test_the_bound_is_per_outage_not_per_operation() -> None:
    """Operations that meet one outage one after another share its bound: the second gives up
    after its one immediate retry instead of waiting a bound of its own (a stranger's run,
    bound 3 s, waited 10 s across a ledger write, a ledger read and checkpoint calls). A
    success ends the outage, so the next one gets the whole bound again."""
    import sqlalchemy as sa
    from langgraph.checkpoint.sqlalchemy.retry import retrying

    policy = RetryPolicy(reconnect_within_s=0.3, first_delay_s=0.01, max_delay_s=0.05)
    url = f"postgresql://outage-{time.monotonic_ns()}/db"
    calls: list[str] = []

    def down(what: str) -> Any:
        def op() -> Any:
            calls.append(what)
            raise sa.exc.OperationalError("SELECT 1", {}, Exception("gone"), connection_invalidated=True)
        return op

    with pytest.raises(ConnectionLostError):
        retrying(policy, "first", down("first"), url)
    assert calls.count("first") > 3  # retried with backoff across the whole bound
    time.sleep(0.1)  # the outage goes on: its bound is now spent whatever the jitter left over
    with pytest.raises(ConnectionLostError) as second:
        retrying(policy, "second", down("second"), url)
    assert calls.count("second") == 2  # the at-once retry, then the outage's bound is spent
    assert "second" in str(second.value)
    assert retrying(policy, "back", lambda: "ok", url) == "ok"  # the database is back
    with pytest.raises(ConnectionLostError):
        retrying(policy, "third", down("third"), url)
    assert calls.count("third") > 3  # a new outage, a whole bound again
