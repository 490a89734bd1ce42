"""The stores beside the checkpoints survive a lost database connection (issue 11 §2).

Voter records (consensus), auctions with reputation and conflict resolutions (markets), the
experience store (planning) and the span store (tracing) write through
:class:`relaygraph.config.stores.SideTables`. Each test runs on PostgreSQL and MariaDB
(``outage`` fixture: the test's own database user, whose connections are terminated with
``pg_terminate_backend`` / ``KILL``, or refused) and proves, per store, that a write and a read
meet a terminated connection and go through, that a connection lost *at* COMMIT after the
commit went through (the client cannot tell) still leaves every write exactly once, that
connections terminated again and again for seconds lose nothing, and that a database away for
longer than the bound is one clear ``ConnectionLostError`` that leaves nothing half-written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Outage
from langgraph.checkpoint.sqlalchemy import ConnectionLostError, RetryPolicy, SQLAlchemySaver
from relaygraph.coordination.experience import Experience
from relaygraph.nodes import consensus_store, market_store
from relaygraph.nodes import experience as experience_store
from relaygraph.observability import trace_store

# --- one write/read/check per store -----------------------------------------------------------


def voters_write(target: Any, i: int) -> None:
    consensus_store.record_run(target, thread_id=f"t{i}", mode="majority", question="top_region", decision="north",
                               voters={"v1": {"choice": "north", "suspected": False, "agreed": 1, "counted": 1},
                                       "v2": {"choice": "south", "suspected": False, "agreed": 0, "counted": 1}})


def voters_check(target: Any, n: int) -> None:
    assert consensus_store.load_records(target, ["v1", "v2"]) == ({"v1": (n, n), "v2": (0, n)} if n else {})
    assert sorted(r["thread_id"] for r in consensus_store.history(target, "v1")) == sorted(f"t{i}" for i in range(n))


def auction_write(target: Any, i: int) -> None:
    """A settled contract: the round's row and the winner's reputation (every odd one a breach)."""
    market_store.record_auction(target, thread_id=f"t{i}", task_id="t1", round=1, kind="sealed", outcome="awarded",
                                winner="ana", price=1.0, bids={"ana": 1.0, "ben": 2.0}, duration_s=0.1,
                                settlement="breach" if i % 2 else "paid", breach="late" if i % 2 else None,
                                reputation_after=0.5 + i / 1000, counted_breach=bool(i % 2))


def auction_check(target: Any, n: int) -> None:
    rounds = market_store.auction_history(target)
    assert sorted(r["thread_id"] for r in rounds) == sorted(f"t{i}" for i in range(n))
    assert all(r["bids"] == {"ana": 1.0, "ben": 2.0} for r in rounds)
    stored = market_store.reputation_records(target).get("ana")
    if n == 0:
        assert stored is None
        return
    assert (stored["contracts"], stored["breaches"]) == (n, n // 2)  # each contract counted once
    assert stored["reputation"] == pytest.approx(0.5 + (n - 1) / 1000)
    assert market_store.load_reputation(target, ["ana", "ben"]) == {"ana": stored["reputation"]}


def resolution_write(target: Any, i: int) -> None:
    market_store.record_resolution(target, thread_id=f"t{i}", conflict_id="c1", topic="budget", bucket="b",
                                   strategy="negotiation", resolved=True, rounds=1, outcome={"value": i})


def resolution_check(target: Any, n: int) -> None:
    assert sorted(r["outcome"]["value"] for r in market_store.resolution_history(target)) == list(range(n))


def experience_write(target: Any, i: int) -> None:
    experience_store.record(target, Experience(thread_id=f"t{i}", task_type="data_report", methods=["clean_only"],
                                               outcome="completed", recorded_at=float(i + 1)))


def experience_check(target: Any, n: int) -> None:
    assert [e.thread_id for e in experience_store.load(target, "data_report")] == [f"t{i}" for i in range(n)]
    assert experience_store.stores(target) == ({"data_report": n} if n else {})


def _spans(i: int) -> list[Any]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    thread = {"relaygraph.thread_id": f"t{i}"}
    with (tracer.start_as_current_span(f"invoke_workflow t{i}", attributes=thread),
          tracer.start_as_current_span("node first", attributes=thread)):
        pass
    provider.shutdown()
    return list(memory.get_finished_spans())


def spans_write(url: str, i: int) -> None:
    """The exporter never raises (tracing must not break a run): it answers SUCCESS or FAILURE."""
    from opentelemetry.sdk.trace.export import SpanExportResult

    assert trace_store.SpanStoreExporter(url).export(_spans(i)) == SpanExportResult.SUCCESS


def spans_check(url: str, n: int) -> None:
    assert trace_store.thread_ids(url) == sorted(f"t{i}" for i in range(n))
    for i in range(n):
        assert sorted(s.name for s in trace_store.load_spans(url, f"t{i}")) == [f"invoke_workflow t{i}",
                                                                                  "node first"]


@dataclass(frozen=True)
class Store:
    name: str
    write: Callable[[Any, int], None]
    check: Callable[[Any, int], None]  # writes 0..n-1 are each there exactly once (reads included)
    engine: Callable[[Any], sa.Engine]
    on_saver: bool = True  # the run's saver is the target (else its URL: the span store's)


STORES = [
    Store("voter records", voters_write, voters_check, consensus_store.engine_for),
    Store("auctions and reputation", auction_write, auction_check, market_store.engine_for),
    Store("conflict resolutions", resolution_write, resolution_check, market_store.engine_for),
    Store("experience", experience_write, experience_check, experience_store.engine_for),
    Store("spans", spans_write, spans_check, trace_store.engine_for, on_saver=False),
]


@contextmanager
def opened(store: Store, outage: Outage, monkeypatch: pytest.MonkeyPatch, bound_s: float = 20.0) -> Iterator[Any]:
    """The store's target on the outage database: a sync saver with a ``bound_s`` retry bound
    (how the CLI and ``langgraph dev`` hand it over), or the URL with RELAYGRAPH_DB_RECONNECT_S."""
    monkeypatch.setenv("RELAYGRAPH_DB_RECONNECT_S", str(bound_s))
    if not store.on_saver:
        try:
            yield outage.url
        finally:
            trace_store.dispose_engines()
        return
    with SQLAlchemySaver.from_conn_string(outage.url, retry=RetryPolicy(reconnect_within_s=bound_s)) as saver:
        saver.setup()
        yield saver


def lost_error(backend: str) -> Exception:
    """What the driver raises when the server's reply never comes: the connection is gone."""
    if backend == "postgres":
        import psycopg

        return psycopg.OperationalError("server closed the connection unexpectedly")
    import pymysql

    return pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")


@contextmanager
def lost_after_commit(outage: Outage, engine: sa.Engine) -> Iterator[list[int]]:
    """The next COMMIT on ``engine`` goes through, then its connection is terminated and the
    client gets "connection lost" instead of the reply: it cannot tell that it committed.
    Yields ``[commits left to break]`` (0 once it happened)."""
    dialect = engine.dialect
    original = dialect.do_commit
    left = [1]

    def do_commit(dbapi_connection: Any) -> None:
        original(dbapi_connection)
        if left[0] > 0:
            left[0] -= 1
            outage.kill()
            raise lost_error(outage.backend)

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    try:
        yield left
    finally:
        del dialect.do_commit


IDS = [s.name for s in STORES]


@pytest.mark.parametrize("store", STORES, ids=IDS)
def test_a_terminated_connection_is_replaced_and_the_write_and_read_retried(
    outage: Outage, monkeypatch: pytest.MonkeyPatch, store: Store
) -> None:
    """Once: each write and each read meets a connection terminated right after the pool's
    pre-ping passed it; both go through and every write is there once."""
    with opened(store, outage, monkeypatch) as target:
        store.write(target, 0)
        engine = store.engine(target)
        for i in (1, 2):
            before = outage.kills
            outage.kill()
            outage.kill_on_checkout(engine)
            store.write(target, i)
            assert outage.kills > before  # the write really met a killed connection
            before = outage.kills
            outage.kill_on_checkout(engine)
            store.check(target, i + 1)
            assert outage.kills > before  # and so did the read


@pytest.mark.parametrize("store", STORES, ids=IDS)
def test_a_write_whose_commit_went_through_before_the_connection_was_lost_counts_once(
    outage: Outage, monkeypatch: pytest.MonkeyPatch, store: Store
) -> None:
    """The ambiguous case: the COMMIT reached the database, the reply did not. The retried
    transaction runs again on a fresh connection; the write is there exactly once (a contract
    counted once in the winner's reputation, no duplicate span)."""
    with opened(store, outage, monkeypatch) as target:
        store.write(target, 0)
        with lost_after_commit(outage, store.engine(target)) as left:
            store.write(target, 1)
        assert left == [0]  # the commit really was cut off
        store.check(target, 2)


@pytest.mark.parametrize("store", STORES, ids=IDS)
def test_connections_terminated_again_and_again_for_seconds_lose_nothing(
    outage: Outage, monkeypatch: pytest.MonkeyPatch, store: Store
) -> None:
    """Repeatedly: a background thread terminates the user's connections every 50 ms for 1.5 s
    while the store is written and read back (and every other write's first connection is
    terminated after its pre-ping, so some statements surely meet one); every write is there,
    none twice."""
    with opened(store, outage, monkeypatch) as target:
        i, engine = 0, store.engine(target)
        with outage.killing(seconds=1.5, every_s=0.05, at_least=3) as killer:
            while killer.is_alive() or i < 3:
                if i % 2 == 0:
                    outage.kill_on_checkout(engine)
                store.write(target, i)
                i += 1
                store.check(target, i)
        store.check(target, i)
    assert i >= 3 and outage.kills >= 3, (i, outage.kills)


@pytest.mark.parametrize("store", [s for s in STORES if s.on_saver], ids=[s.name for s in STORES if s.on_saver])
def test_a_database_away_past_the_bound_is_one_clear_error_and_nothing_half_written(
    outage: Outage, monkeypatch: pytest.MonkeyPatch, store: Store
) -> None:
    """Longer than the bound: the write and the read give up with ``ConnectionLostError`` (one
    line: what was lost, during what, check the database, resume); once the database is back the
    failed write left nothing and the store works again."""
    with opened(store, outage, monkeypatch, bound_s=1.0) as target:
        store.write(target, 0)
        with outage.down():
            with pytest.raises(ConnectionLostError) as lost:
                store.write(target, 1)
            with pytest.raises(ConnectionLostError):
                store.check(target, 1)
        message = str(lost.value)
        assert "\n" not in message and "could not reconnect" in message and "write" in message, message
        assert "Check that the database is up" in message and "resume" in message, message
        store.check(target, 1)
        store.write(target, 1)
        store.check(target, 2)


def test_spans_past_the_bound_are_dropped_with_a_warning_and_reads_say_so(
    outage: Outage, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Tracing never stops a run: a span batch the database refused past the bound is reported as
    a failed export with a warning naming the lost connection; ``relaygraph traces`` reads raise
    ``ConnectionLostError`` (exit 75 at the CLI). Back again, later batches are stored."""
    from opentelemetry.sdk.trace.export import SpanExportResult

    store = next(s for s in STORES if s.name == "spans")
    with opened(store, outage, monkeypatch, bound_s=1.0) as url:
        spans_write(url, 0)
        with outage.down():
            with caplog.at_level(logging.WARNING):
                assert trace_store.SpanStoreExporter(url).export(_spans(1)) == SpanExportResult.FAILURE
            with pytest.raises(ConnectionLostError):
                trace_store.load_spans(url, "t0")
        assert "could not store 2 spans" in caplog.text and "could not reconnect" in caplog.text
        spans_check(url, 1)
        spans_write(url, 1)
        spans_check(url, 2)


def test_a_reputation_reset_whose_commit_reply_was_lost_still_names_what_it_removed(
    outage: Outage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retry of a committed reset finds nothing left to remove; it still reports the agents
    the reset removed (what ``relaygraph agents reset-reputation`` prints)."""
    store = STORES[1]
    with opened(store, outage, monkeypatch) as saver:
        auction_write(saver, 0)
        with lost_after_commit(outage, market_store.engine_for(saver)) as left:
            assert market_store.reset_reputation(saver) == ["ana"]
        assert left == [0]
        assert market_store.reputation_records(saver) == {}


def test_an_async_saver_lends_its_retry_policy_to_the_stores(outage: Outage) -> None:
    """Under ``langgraph dev`` the run's saver is async: the stores reach its database through a
    sync engine of their own, retried with the async saver's ``RetryPolicy`` (not the default)."""
    import asyncio

    from langgraph.checkpoint.sqlalchemy import AsyncSQLAlchemySaver
    from relaygraph.config.stores import retry_policy

    async def scenario() -> None:
        policy = RetryPolicy(reconnect_within_s=1.0)
        async with AsyncSQLAlchemySaver.from_conn_string(outage.url, retry=policy) as saver:
            await saver.setup()
            assert retry_policy(saver) is policy
            voters_write(saver, 0)
            outage.kill()
            outage.kill_on_checkout(consensus_store.engine_for(saver))
            voters_write(saver, 1)
            voters_check(saver, 2)
            with outage.down(), pytest.raises(ConnectionLostError):
                voters_write(saver, 2)
            voters_check(saver, 2)

    asyncio.run(scenario())


# --- a CLI run whose store write meets an outage ----------------------------------------------


def test_cli_run_stopped_by_an_outage_in_a_store_write_exits_75_and_resume_records_it_once(
    outage: Outage, monkeypatch: pytest.MonkeyPatch, cast: Any, sample_path: Any
) -> None:
    """The database goes away, for longer than the bound, just as a consensus run records its
    voters' track records: exit 75 and one line naming ``relaygraph resume``; resume finishes the
    run and the records are there once."""
    from relaygraph.cli.main import app
    from test_consensus_graph import vote_north
    from typer.testing import CliRunner

    vote_north(cast, 3)  # each voter votes once: the resume asks none of them again

    monkeypatch.setenv("RELAYGRAPH_DB_RECONNECT_S", "1")
    original = consensus_store.record_run
    calls = [0]

    def away_then_record(*args: Any, **kwargs: Any) -> None:
        calls[0] += 1
        if calls[0] == 1:
            outage.logins(False)
            outage.kill()
        original(*args, **kwargs)

    monkeypatch.setattr(consensus_store, "record_run", away_then_record)
    run = ["run", "consensus", "--thread-id", "vote", "--checkpoint-db", outage.url, "--json",
           "--param", "mode=majority", "--param", "voters=3"]
    try:
        stopped = CliRunner().invoke(app, run)
    finally:
        outage.logins(True)
    assert stopped.exit_code == 75, stopped.output  # EX_TEMPFAIL: resume once the database is back
    [line] = [x for x in stopped.stderr.splitlines() if x.startswith("error:")]
    assert "a voter-record write" in line and "could not reconnect" in line, line
    assert "`relaygraph resume vote`" in line, line
    resumed = CliRunner().invoke(app, ["resume", "vote", "--checkpoint-db", outage.url, "--json"])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["result"]["status"] == "completed"
    assert calls[0] == 2
    history = consensus_store.history(outage.url)
    assert sorted(r["voter"] for r in history) == ["voter_1", "voter_2", "voter_3"]
    assert {r["thread_id"] for r in history} == {"vote"}
