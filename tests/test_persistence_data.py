"""Data the saver cannot store or finds missing (issue 11 §3): large values in chunks,
missing rows as ``CheckpointCorruptError``, NUL and lone surrogates as a clear error."""

from __future__ import annotations

import logging
import os
import zlib
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.sqlalchemy import (
    AsyncSQLAlchemySaver,
    CheckpointCorruptError,
    MetadataTooLargeError,
    SQLAlchemySaver,
    StorageOptions,
    UnstorableTextError,
    migrations,
    schema,
)
from langgraph.checkpoint.sqlalchemy.base import check_text, plain_ascii
from langgraph.checkpoint.sqlalchemy.urls import normalize_url

MiB = 1 << 20


def cfg(thread: str, checkpoint_id: str | None = None, ns: str = "") -> dict[str, Any]:
    conf: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns}
    if checkpoint_id:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


def checkpoint_of(values: dict[str, Any], versions: dict[str, str]) -> Any:
    cp = empty_checkpoint()
    cp["channel_values"] = values
    cp["channel_versions"] = versions
    return cp


def put(saver: Any, config: dict, values: dict, new: dict, versions: dict | None = None,
        **metadata: Any) -> dict:
    cp = checkpoint_of(values, versions or dict(new))
    return saver.put(config, cp, {"source": "loop", "step": 0, "parents": {}, **metadata}, new)


async def aput(saver: Any, config: dict, values: dict, new: dict, **metadata: Any) -> dict:
    cp = checkpoint_of(values, dict(new))
    return await saver.aput(config, cp, {"source": "loop", "step": 0, "parents": {}, **metadata},
                            new)


def count(saver: SQLAlchemySaver, table: sa.Table, thread: str | None = None) -> int:
    stmt = sa.select(sa.func.count()).select_from(table)
    if thread is not None:
        stmt = stmt.where(table.c.thread_id == thread)
    with saver.engine.connect() as conn:
        return int(conn.execute(stmt).scalar() or 0)


def largest_row(saver: SQLAlchemySaver) -> int:
    """The largest payload any saver table holds in one row (what one statement carries)."""
    out = 0
    with saver.engine.connect() as conn:
        for column in (schema.blobs.c.blob, schema.writes.c.blob, schema.chunks.c.data,
                       schema.checkpoints.c.checkpoint):
            size = conn.execute(sa.select(sa.func.max(sa.func.length(column)))).scalar()
            out = max(out, int(size or 0))
    return out


# --- large values: chunks on every backend --------------------------------------------------


def test_a_10mb_incompressible_value_is_chunked_and_read_back(any_url: str) -> None:
    """MariaDB refused this with 'server has gone away' (max_allowed_packet, 16 MiB)."""
    big = os.urandom(10 * MiB + 123)
    with SQLAlchemySaver.from_conn_string(any_url) as saver:
        stored = put(saver, cfg("big"), {"blob": big, "small": "s"}, {"blob": "1", "small": "1"})
        saver.put_writes(stored, [("blob", big), ("note", "x")], "task-1")
        # 11 chunks for the value and 11 for the write; no row near a packet limit
        assert count(saver, schema.chunks, "big") == 22
        assert largest_row(saver) <= MiB
        tup = saver.get_tuple(cfg("big"))
        assert tup.checkpoint["channel_values"]["blob"] == big
        assert tup.pending_writes == [("task-1", "blob", big), ("task-1", "note", "x")]
        listed = list(saver.list(None))
        assert [t.checkpoint["channel_values"]["blob"] == big for t in listed] == [True]
        # a copy carries the chunks, deleting the thread removes them
        saver.copy_thread("big", "big-copy")
        assert saver.get_tuple(cfg("big-copy")).checkpoint["channel_values"]["blob"] == big
        saver.delete_thread("big")
        assert count(saver, schema.chunks, "big") == 0
        assert count(saver, schema.chunks, "big-copy") == 22


def test_prune_and_delete_for_runs_remove_chunks_with_their_owners(any_url: str) -> None:
    small_chunks = StorageOptions(chunk_bytes=4096)
    with SQLAlchemySaver.from_conn_string(any_url, storage=small_chunks) as saver:
        first = put(saver, cfg("p"), {"doc": os.urandom(10_000)}, {"doc": "1"}, run_id="r1")
        saver.put_writes(first, [("doc", os.urandom(9_000))], "t1")
        second = put(saver, first, {"doc": os.urandom(20_000)}, {"doc": "2"}, run_id="r2")
        saver.put_writes(second, [("doc", os.urandom(5_000))], "t2")
        assert count(saver, schema.chunks, "p") == 3 + 3 + 5 + 2
        saver.prune(["p"], strategy="keep_latest")  # drops version 1 and its write
        assert count(saver, schema.chunks, "p") == 5 + 2
        assert [t.config for t in saver.list(cfg("p"))] == [second]
        saver.delete_for_runs(["r2"])
        assert count(saver, schema.chunks, "p") == 0
        assert count(saver, schema.blobs, "p") == 0


def test_a_compressed_value_is_chunked_after_compression(sqlite_url: str) -> None:
    import random

    rng = random.Random(5)
    words = ["agent", "report", "table", "column", "value", "check", "model", "data"]
    text = [" ".join(rng.choice(words) for _ in range(40)) for _ in range(3000)]  # ~800 KB
    with SQLAlchemySaver.from_conn_string(
            sqlite_url, storage=StorageOptions(chunk_bytes=64 * 1024)) as saver:
        stored = put(saver, cfg("z"), {"text": text}, {"text": "1"})
        saver.put_writes(stored, [("text", text)], "task")
        with saver.engine.connect() as conn:
            types = set(conn.execute(sa.select(schema.blobs.c.type)).scalars()) | set(
                conn.execute(sa.select(schema.writes.c.type)).scalars())
        assert types == {"chunks:zlib:msgpack"}
        assert 0 < count(saver, schema.chunks) < 2 * (800_000 // (64 * 1024))
        tup = saver.get_tuple(cfg("z"))
        assert tup.checkpoint["channel_values"]["text"] == text
        assert tup.pending_writes == [("task", "text", text)]


def test_db_stats_count_chunks_and_db_prune_removes_them(sqlite_url: str) -> None:
    """``relaygraph db stats``/``db prune`` (maintenance.py) see and remove chunked values."""
    from datetime import timedelta

    from langgraph.checkpoint.sqlalchemy import maintenance

    with SQLAlchemySaver.from_conn_string(sqlite_url) as saver:
        stored = put(saver, cfg("old"), {"doc": os.urandom(3 * MiB)}, {"doc": "1"})
        saver.put_writes(stored, [("out", os.urandom(2 * MiB))], "task")
        stats = maintenance.collect_stats(saver)
        assert stats.schema_version == 4
        assert stats.blob_bytes > 3 * MiB and stats.write_bytes > 2 * MiB
        with saver.engine.begin() as conn:  # make the thread idle for a day
            conn.execute(schema.checkpoints.update().values(created_at=0))
        result = maintenance.prune(saver, older_than=timedelta(hours=1))
        assert result.threads_deleted == ["old"] and result.bytes_after < 1000
        assert count(saver, schema.chunks) == 0


def test_a_special_write_replaced_by_a_smaller_one_reads_back(sqlite_url: str) -> None:
    """Special writes (errors, interrupts) are replaced in place; stale chunks of the
    longer old value must not leak into the new one."""
    from langgraph.checkpoint.serde.types import ERROR

    with SQLAlchemySaver.from_conn_string(
            sqlite_url, storage=StorageOptions(chunk_bytes=4096)) as saver:
        stored = put(saver, cfg("s"), {"n": 1}, {"n": "1"})
        saver.put_writes(stored, [(ERROR, os.urandom(20_000))], "task")
        replacement = os.urandom(9_000)
        saver.put_writes(stored, [(ERROR, replacement)], "task")
        assert saver.get_tuple(cfg("s")).pending_writes == [("task", ERROR, replacement)]
        saver.put_writes(stored, [(ERROR, "short")], "task")
        assert saver.get_tuple(cfg("s")).pending_writes == [("task", ERROR, "short")]


def test_large_incompressible_values_are_not_compressed_whole(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """zlib is tried on samples first: compressing 100 MB of random bytes only to throw
    the result away cost half a second and a second copy of the value."""
    from langgraph.checkpoint.sqlalchemy import base

    fed: list[int] = []
    real = zlib.compress

    def counting(data: Any, level: int = -1) -> bytes:
        fed.append(len(data))
        return real(data, level)

    monkeypatch.setattr(base.zlib, "compress", counting)
    saver = SQLAlchemySaver(sa.create_engine("sqlite://"))
    data = os.urandom(3 * MiB)
    type_, stored = saver._dumps(data)
    assert type_ == "bytes" and stored is data and sum(fed) <= 128 * 1024
    text = b"agent report " * 300_000
    type_, stored = saver._dumps(text)
    assert type_ == "zlib:bytes" and zlib.decompress(stored) == text


def test_postgres_batches_stay_far_below_the_message_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path sends a put as one statement on PostgreSQL; with chunks of a large
    value it falls back to one row per statement past ``_MAX_BYTES`` (1 GB is the
    protocol's limit)."""
    from langgraph.checkpoint.sqlalchemy.fastpath import PostgresBatch, StatementCache
    from sqlalchemy.dialects.postgresql import psycopg

    batch = PostgresBatch(StatementCache(psycopg.dialect()))
    st = schema.statements_for("postgresql")
    rows = [{"thread_id": "t", "checkpoint_ns": "", "kind": "b", "version": "1", "name": "v",
             "idx": 0, "seq": i, "data": memoryview(b"x" * 1000)} for i in range(3)]
    assert batch.statement([(st.insert_chunk, rows)]) is not None
    monkeypatch.setattr(PostgresBatch, "_MAX_BYTES", 2500)
    assert batch.statement([(st.insert_chunk, rows)]) is None


def test_metadata_too_large_for_one_row_is_a_clear_error(any_url: str) -> None:
    """Metadata is kept whole (it is filtered on): over 1 MiB it is refused on every
    backend before any SQL, instead of MariaDB dropping the connection."""
    with SQLAlchemySaver.from_conn_string(any_url) as saver:
        with pytest.raises(MetadataTooLargeError, match=r"'meta'.*at most 1,048,576"):
            put(saver, cfg("meta"), {"n": 1}, {"n": "1"}, note="n" * (2 * MiB))
        assert isinstance(MetadataTooLargeError("x"), ValueError)
        assert list(saver.list(None)) == []
        put(saver, cfg("meta"), {"n": 1}, {"n": "1"}, note="n" * 100_000)  # well below: kept
        assert len(saver.get_tuple(cfg("meta")).metadata["note"]) == 100_000


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(0, 6000), seed=st.integers(0, 2**32 - 1), as_write=st.booleans())
def test_chunked_values_round_trip_at_every_size(tmp_path_factory: Any, size: int, seed: int,
                                                 as_write: bool) -> None:
    """Invariant: any payload reads back byte for byte, in ceil(len / chunk) chunks once
    it is larger than one chunk (sizes around the boundaries included)."""
    import random

    url = f"sqlite:///{tmp_path_factory.mktemp('chunks') / 'c.db'}"
    data = random.Random(seed).randbytes(size)
    with SQLAlchemySaver.from_conn_string(
            url, storage=StorageOptions(chunk_bytes=1024, compress_min_bytes=None,
                                        inline_max_bytes=0)) as saver:
        if as_write:
            stored = put(saver, cfg("h"), {"n": 1}, {"n": "1"})
            saver.put_writes(stored, [("v", data)], "t")
            assert saver.get_tuple(cfg("h")).pending_writes == [("t", "v", data)]
        else:
            put(saver, cfg("h"), {"v": data}, {"v": "1"})
            assert saver.get_tuple(cfg("h")).checkpoint["channel_values"]["v"] == data
        serialized = len(saver.serde.dumps_typed(data)[1])
        expected = 0 if serialized <= 1024 else -(-serialized // 1024)
        assert count(saver, schema.chunks) == expected


def test_schema_v2_database_is_upgraded_to_chunks(any_url: str) -> None:
    engine = sa.create_engine(normalize_url(any_url))
    try:
        with engine.begin() as conn:
            assert migrations.migrate(conn, target=2) == 2
            assert not sa.inspect(conn).has_table(schema.chunks.name)
        old = SQLAlchemySaver(engine, auto_setup=False)
        stored = put(old, cfg("v2"), {"doc": {"k": "v" * 2000}}, {"doc": "1"})
        old.close()
        saver = SQLAlchemySaver(engine)  # setup() upgrades to version 4
        try:
            tup = saver.get_tuple(cfg("v2"))
            assert tup.config == stored and tup.checkpoint["channel_values"]["doc"]["k"] == "v" * 2000
            with engine.connect() as conn:
                assert conn.execute(sa.select(schema.migrations.c.v)).scalars().all() == [1, 2, 3, 4]
                assert sa.inspect(conn).has_table(schema.chunks.name)
            big = os.urandom(2 * MiB)
            nxt = put(saver, stored, {"doc": big}, {"doc": "2"})
            assert saver.get_tuple(nxt).checkpoint["channel_values"]["doc"] == big
        finally:
            saver.close()
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_100mb_values_round_trip(any_url: str, mode: str) -> None:
    """The issue's size, on every backend, both savers: a channel value and a write."""
    big = os.urandom(100 * 1000 * 1000)
    if mode == "sync":
        with SQLAlchemySaver.from_conn_string(any_url) as saver:
            stored = put(saver, cfg("huge"), {"v": big}, {"v": "1"})
            saver.put_writes(stored, [("w", big)], "task")
            tup = saver.get_tuple(cfg("huge"))
            assert tup.checkpoint["channel_values"]["v"] == big
            assert tup.pending_writes[0][2] == big
            del tup
            assert largest_row(saver) <= MiB
            saver.delete_thread("huge")
            assert count(saver, schema.chunks) == 0
        return
    async with AsyncSQLAlchemySaver.from_conn_string(any_url) as asaver:
        stored = await aput(asaver, cfg("huge"), {"v": big}, {"v": "1"})
        await asaver.aput_writes(stored, [("w", big)], "task")
        tup = await asaver.aget_tuple(cfg("huge"))
        assert tup.checkpoint["channel_values"]["v"] == big
        assert tup.pending_writes[0][2] == big
        del tup
        await asaver.aprune(["huge"], strategy="delete")
        async with asaver.engine.connect() as conn:
            left = await conn.execute(sa.select(sa.func.count()).select_from(schema.chunks))
            assert left.scalar() == 0


# --- missing or unreadable rows: CheckpointCorruptError -------------------------------------


def _delete(saver: SQLAlchemySaver, stmt: sa.Delete) -> None:
    with saver.engine.begin() as conn:
        assert conn.execute(stmt).rowcount >= 1


def test_a_deleted_blob_row_is_corruption_not_a_dropped_channel(any_url: str) -> None:
    with SQLAlchemySaver.from_conn_string(any_url) as saver:
        stored = put(saver, cfg("gone"), {"doc": {"k": "v" * 2000}, "n": 1}, {"doc": "1", "n": "1"})
        _delete(saver, schema.blobs.delete().where(schema.blobs.c.thread_id == "gone"))
        with pytest.raises(CheckpointCorruptError) as info:
            saver.get_tuple(cfg("gone"))
        err = info.value
        assert (err.thread_id, err.checkpoint_id, err.channel) == (
            "gone", stored["configurable"]["checkpoint_id"], "doc")
        assert "missing" in str(err) and "\n" not in str(err)


def test_a_missing_chunk_is_corruption(any_url: str) -> None:
    with SQLAlchemySaver.from_conn_string(
            any_url, storage=StorageOptions(chunk_bytes=4096)) as saver:
        stored = put(saver, cfg("c"), {"doc": os.urandom(10_000)}, {"doc": "1"})
        saver.put_writes(stored, [("out", os.urandom(10_000))], "task")
        _delete(saver, schema.chunks.delete().where(schema.chunks.c.kind == "b",
                                                    schema.chunks.c.seq == 1))
        with pytest.raises(CheckpointCorruptError, match=r"chunk 2 of 3 .* is missing") as info:
            saver.get_tuple(cfg("c"))
        assert info.value.channel == "doc"
        assert info.value.checkpoint_id == stored["configurable"]["checkpoint_id"]
        # restore the value's chunks by writing it again elsewhere; break the write's
        _delete(saver, schema.chunks.delete().where(schema.chunks.c.kind == "w",
                                                    schema.chunks.c.seq == 2))
        with pytest.raises(CheckpointCorruptError):
            saver.get_tuple(cfg("c"))


def test_a_tampered_chunk_fails_its_checksum(sqlite_url: str) -> None:
    with SQLAlchemySaver.from_conn_string(
            sqlite_url, storage=StorageOptions(chunk_bytes=4096)) as saver:
        put(saver, cfg("t"), {"doc": os.urandom(10_000)}, {"doc": "1"})
        with saver.engine.begin() as conn:
            conn.execute(schema.chunks.update().where(schema.chunks.c.seq == 0)
                         .values(data=b"\0" * 4096))
        with pytest.raises(CheckpointCorruptError, match="checksum"):
            saver.get_tuple(cfg("t"))


def test_list_skips_and_reports_a_corrupt_checkpoint(any_url: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """One corrupt row must not break list() across all threads: it is skipped, logged
    and kept in ``corrupt_skipped``; get_tuple on it raises."""
    with SQLAlchemySaver.from_conn_string(any_url) as saver:
        good = put(saver, cfg("good"), {"doc": {"k": "g" * 2000}}, {"doc": "1"})
        bad = put(saver, cfg("bad"), {"doc": {"k": "b" * 2000}}, {"doc": "1"})
        chat = put(saver, cfg("chat"), {"m": ["x" * 600]}, {"m": "1"})
        put(saver, chat, {"m": ["x" * 600, "y"]}, {"m": "2"})  # a delta on version 1
        _delete(saver, schema.blobs.delete().where(schema.blobs.c.thread_id == "bad"))
        _delete(saver, schema.blobs.delete().where(schema.blobs.c.thread_id == "chat",
                                                   schema.blobs.c.version == "1"))
        with caplog.at_level(logging.WARNING):
            listed = list(saver.list(None))
        assert [t.config for t in listed] == [good]
        assert saver.corrupt_skipped_count == 3
        assert {(e.thread_id, e.channel) for e in saver.corrupt_skipped} == {
            ("bad", "doc"), ("chat", "m")}
        assert any(bad["configurable"]["checkpoint_id"] in r.getMessage() for r in caplog.records)
        with pytest.raises(CheckpointCorruptError, match="delta base version"):
            saver.get_tuple(cfg("chat"))


async def test_async_list_skips_a_corrupt_checkpoint_too(sqlite_url: str) -> None:
    async with AsyncSQLAlchemySaver.from_conn_string(sqlite_url) as saver:
        good = await aput(saver, cfg("good"), {"doc": {"k": "g" * 2000}}, {"doc": "1"})
        await aput(saver, cfg("bad"), {"doc": {"k": "b" * 2000}}, {"doc": "1"})
        async with saver.engine.begin() as conn:
            await conn.execute(schema.blobs.delete().where(schema.blobs.c.thread_id == "bad"))
        assert [t.config async for t in saver.alist(None)] == [good]
        assert [e.thread_id for e in saver.corrupt_skipped] == ["bad"]
        with pytest.raises(CheckpointCorruptError):
            await saver.aget_tuple(cfg("bad"))


# --- NUL and lone surrogates: a clear error, never stripped, never a driver error ----------

BAD_TEXT = {"nul": "a\x00b", "surrogate": "a\ud800b"}


def _attempts(bad: str) -> dict[str, tuple[dict, dict, dict]]:
    """(config, metadata, config extras) of a put that carries ``bad`` in one field."""
    return {
        "thread_id": (cfg(bad), {}, {}),
        "checkpoint_ns": (cfg("t", ns=bad), {}, {}),
        "metadata key": (cfg("t"), {bad: 1}, {}),
        "metadata['note']": (cfg("t"), {"note": bad}, {}),
        "metadata['nested']": (cfg("t"), {"nested": {"deep": [bad]}}, {}),
        "metadata['user']": (cfg("t"), {}, {"user": bad}),  # LangGraph copies it in
        "metadata['obj']": (cfg("t"), {"obj": _Shown(bad)}, {}),  # stored as str(obj)
    }


class _Shown:
    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


@pytest.mark.parametrize("kind", sorted(BAD_TEXT))
def test_nul_and_lone_surrogates_are_a_clear_error_on_every_backend(any_url: str,
                                                                    kind: str) -> None:
    bad = BAD_TEXT[kind]
    problem = "NUL character" if kind == "nul" else "lone surrogate"
    with SQLAlchemySaver.from_conn_string(any_url) as saver:
        for field, (config, metadata, extra) in _attempts(bad).items():
            config = {**config, "configurable": {**config["configurable"], **extra}}
            with pytest.raises(UnstorableTextError) as info:
                put(saver, config, {"n": 1}, {"n": "1"}, **metadata)
            message = str(info.value)
            assert isinstance(info.value, ValueError)
            assert message.startswith(field) and problem in message and "\n" not in message
        assert list(saver.list(None)) == []  # nothing was stored, not even a stripped copy
        stored = put(saver, cfg("ok"), {"n": 1}, {"n": "1"})
        for call in (
            lambda: saver.get_tuple(cfg(bad)),
            lambda: list(saver.list(cfg(bad))),
            lambda: list(saver.list(None, filter={"note": bad})),
            lambda: saver.put_writes(stored, [("ch", 1)], bad),
            lambda: saver.put_writes({"configurable": {**stored["configurable"],
                                                       "thread_id": bad}}, [("ch", 1)], "t"),
            lambda: saver.delete_thread(bad),
            lambda: saver.copy_thread("ok", bad),
            lambda: saver.prune([bad]),
            lambda: saver.delete_for_runs([bad]),
        ):
            with pytest.raises(UnstorableTextError):
                call()


async def test_async_saver_refuses_nul_the_same_way(any_url: str) -> None:
    async with AsyncSQLAlchemySaver.from_conn_string(any_url) as saver:
        with pytest.raises(UnstorableTextError, match="^thread_id"):
            await aput(saver, cfg("a\x00"), {"n": 1}, {"n": "1"})
        with pytest.raises(UnstorableTextError, match=r"^metadata\['k'\]"):
            await aput(saver, cfg("t"), {"n": 1}, {"n": "1"}, k="v\ud800")
        with pytest.raises(UnstorableTextError):
            await saver.aget_tuple(cfg("a\x00"))
        assert [t async for t in saver.alist(None)] == []


def test_text_that_can_be_stored_round_trips_exactly(any_url: str) -> None:
    """Control characters other than NUL, emoji (astral plane) and escapes survive."""
    odd = "tab\tline\nbell\x07 emoji \U0001f600 quote\" back\\slash \\u0000 é"
    with SQLAlchemySaver.from_conn_string(any_url) as saver:
        stored = put(saver, cfg(odd, ns=odd), {"v": odd}, {"v": "1"}, note=odd, **{odd: 1})
        tup = saver.get_tuple(stored)
        assert tup.config["configurable"]["thread_id"] == odd
        assert tup.config["configurable"]["checkpoint_ns"] == odd
        assert tup.metadata["note"] == odd and tup.metadata[odd] == 1
        assert tup.checkpoint["channel_values"]["v"] == odd


@given(st.text())
def test_check_text_refuses_exactly_nul_and_lone_surrogates(text: str) -> None:
    """Invariant: accepted iff the text has no NUL and encodes as UTF-8 (what every
    backend stores unchanged)."""
    try:
        text.encode("utf-8")
        storable = "\x00" not in text
    except UnicodeEncodeError:
        storable = False
    if storable:
        check_text("thread_id", text)
    else:
        with pytest.raises(UnstorableTextError):
            check_text("thread_id", text)


@given(st.lists(st.text(), max_size=4))
def test_the_one_scan_check_never_lets_refused_text_through(texts: list[str]) -> None:
    """``plain_ascii`` (the hot paths' check of all keys at once) may send storable text to
    the one-by-one checks, but never accepts text ``check_text`` refuses."""
    if plain_ascii(*texts):
        for text in texts:
            check_text("thread_id", text)


def test_put_writes_refuses_nul_in_a_channel_name_or_task_path(sqlite_url: str) -> None:
    with SQLAlchemySaver.from_conn_string(sqlite_url) as saver:
        stored = put(saver, cfg("t"), {"n": 1}, {"n": "1"})
        with pytest.raises(UnstorableTextError, match="^channel name"):
            saver.put_writes(stored, [("ok", 1), ("c\x00h", 2)], "task")
        with pytest.raises(UnstorableTextError, match="^task_path"):
            saver.put_writes(stored, [("ok", 1)], "task", task_path="p\x00")
        assert saver.get_tuple(stored).pending_writes == []  # nothing half-stored


# --- metadata in one pass (base.stored_metadata) -------------------------------------

_md_keys = st.sampled_from(
    ["source", "step", "run_id", "thread_id", "checkpoint_ns", "__pregel_x", "user", "writes",
     "parents", "note", "tags"]
)
_md_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
    st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]),
            max_size=8),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(),
                                                          max_size=2),
)


@given(
    metadata=st.dictionaries(_md_keys, _md_values, max_size=6),
    config_md=st.dictionaries(_md_keys, _md_values, max_size=4),
    layers=st.lists(st.dictionaries(_md_keys, _md_values, max_size=4), min_size=1, max_size=3),
)
@settings(max_examples=200, deadline=None)
def test_stored_metadata_is_langgraphs_metadata_with_the_same_order(
    metadata: dict[str, Any], config_md: dict[str, Any], layers: list[dict[str, Any]]
) -> None:
    """The single pass the saver uses is LangGraph's ``get_serializable_checkpoint_metadata``:
    same keys, values and order, with ``configurable`` a ChainMap as LangGraph passes it."""
    from collections import ChainMap

    from langgraph.checkpoint.base import get_serializable_checkpoint_metadata
    from langgraph.checkpoint.sqlalchemy.base import stored_metadata

    config: Any = {"metadata": config_md, "configurable": ChainMap(*layers)}
    expected = get_serializable_checkpoint_metadata(config, dict(metadata))
    got = stored_metadata(config, metadata)
    assert list(got.items()) == list(expected.items())


@pytest.mark.parametrize("where", ["metadata", "config metadata", "configurable"])
def test_stored_metadata_refuses_a_nul_langgraph_would_strip(where: str) -> None:
    from collections import ChainMap

    from langgraph.checkpoint.sqlalchemy.base import stored_metadata

    bad = {"note": "a\x00b"}
    metadata = bad if where == "metadata" else {"step": 1}
    config: Any = {
        "metadata": bad if where == "config metadata" else {},
        "configurable": ChainMap({"thread_id": "t"}, bad if where == "configurable" else {}),
    }
    with pytest.raises(UnstorableTextError):
        stored_metadata(config, metadata)
    # a private or excluded key is not stored, so its NUL is no error
    config = {"metadata": {},
              "configurable": ChainMap({"__pregel_x": "a\x00b", "checkpoint_id": "x\x00"})}
    assert stored_metadata(config, {"step": 1}) == {"step": 1}
