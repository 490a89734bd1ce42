"""Direct tests of the SQLAlchemy savers: storage layout, deltas, errors, retention."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.serde.types import ERROR, INTERRUPT
from langgraph.checkpoint.sqlalchemy import (
    AsyncSQLAlchemySaver,
    CheckpointCorruptError,
    DatabaseUnavailableError,
    SchemaVersionError,
    SQLAlchemySaver,
    StorageOptions,
    UnsupportedDatabaseURL,
    schema,
)
from langgraph.checkpoint.sqlalchemy.engines import make_engine
from langgraph.checkpoint.sqlalchemy.urls import normalize_url


def cfg(thread: str, checkpoint_id: str | None = None, ns: str = "") -> dict[str, Any]:
    conf: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns}
    if checkpoint_id:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


def put(saver: Any, config: dict, values: dict, new: dict, versions: dict | None = None,
        **metadata: Any) -> dict:
    cp = empty_checkpoint()
    cp["channel_values"] = values
    cp["channel_versions"] = versions or dict(new)
    return saver.put(config, cp, {"source": "loop", "step": 0, "parents": {}, **metadata}, new)


def blob_rows(saver: SQLAlchemySaver, thread: str) -> list[Any]:
    b = schema.blobs
    with saver.engine.connect() as conn:
        return conn.execute(
            sa.select(b.c.channel, b.c.version, b.c.base_version, b.c.depth, b.c.item_count,
                      sa.func.length(b.c.blob).label("size"))
            .where(b.c.thread_id == thread).order_by(b.c.version)
        ).all()


def grow_history(saver: SQLAlchemySaver, thread: str, steps: int, start: dict | None = None,
                 messages: list | None = None) -> tuple[list[dict], list[list]]:
    """``steps`` checkpoints, each appending one message; returns configs and values."""
    config = start or cfg(thread)
    messages = list(messages or [])
    version = None
    configs, values = [], []
    for i in range(steps):
        messages = messages + [AIMessage(f"reply {i}: " + "word " * 40, id=f"m{i}")]
        version = saver.get_next_version(version, None)
        config = put(saver, config, {"messages": messages, "turn": i},
                     {"messages": version, "turn": version})
        configs.append(config)
        values.append(messages)
    return configs, values


# --- contract details beyond the conformance suite ---------------------------------------


def test_values_writes_and_ordering_roundtrip(any_url: str) -> None:
    with SQLAlchemySaver.from_conn_string(any_url) as saver:
        values = {"text": "x" * 1000, "short": "hi", "n": 3, "flag": True, "none": None,
                  "nested": {"a": [1, 2, {"b": b"bytes"}]}, "msgs": [HumanMessage("hello")]}
        stored = put(saver, cfg("t1"), values, {k: "1" for k in values})
        # regular writes: stored in (task_path, task_id, idx) order, replays ignored
        saver.put_writes(stored, [("a", 1), ("b", 2)], "task-b", "~b")
        saver.put_writes(stored, [("a", 3)], "task-a", "~a")
        saver.put_writes(stored, [("a", 99), ("b", 98)], "task-b", "~b")  # replay: ignored
        # special channels are upserted: the last write wins
        saver.put_writes(stored, [(ERROR, "first")], "task-c", "~c")
        saver.put_writes(stored, [(ERROR, "second"), (INTERRUPT, {"why": "human"})], "task-c", "~c")
        tup = saver.get_tuple(cfg("t1"))
        assert tup is not None
        assert tup.checkpoint["channel_values"] == values
        assert tup.pending_writes == [
            ("task-a", "a", 3), ("task-b", "a", 1), ("task-b", "b", 2),
            ("task-c", INTERRUPT, {"why": "human"}), ("task-c", ERROR, "second"),
        ]


def test_metadata_filters_keep_json_types(any_url: str) -> None:
    with SQLAlchemySaver.from_conn_string(any_url) as saver:
        config = cfg("meta")
        for i, md in enumerate([{"score": 1}, {"score": "1"}, {"score": True},
                                {"score": 1, "tags": {"a": 1}}, {"owner": "ünï"}]):
            config = put(saver, config, {}, {}, step=i, **md)

        def steps(**flt: Any) -> list[int]:
            return sorted(t.metadata["step"] for t in saver.list(cfg("meta"), filter=flt))

        assert steps(score=1) == [0, 3]
        assert steps(score="1") == [1]
        assert steps(score=True) == [2]
        assert steps(tags={"a": 1}) == [3]
        assert steps(owner="ünï") == [4]
        assert steps(score=1, tags={"a": 1}) == [3]
        assert [t.metadata["step"] for t in saver.list(None, filter={"owner": "ünï"})] == [4]
        with pytest.raises(ValueError, match="filter key"):
            list(saver.list(None, filter={'bad"key': 1}))


def test_large_values_are_compressed_and_small_ones_inline(any_url: str) -> None:
    rng = random.Random(3)
    words = "agent reviewed the report data table column value check model".split()
    doc = {"text": " ".join(rng.choice(words) for _ in range(1500))}  # ~9 KB, compressible
    small = {"k": [1, 2, 3], "note": "short"}
    with SQLAlchemySaver.from_conn_string(any_url) as saver:
        stored = put(saver, cfg("z"), {"doc": doc, "small": small}, {"doc": "1", "small": "1"})
        saver.put_writes(stored, [("doc", doc)], "task")
        with saver.engine.connect() as conn:
            rows = conn.execute(sa.select(schema.blobs.c.channel, schema.blobs.c.type,
                                          sa.func.length(schema.blobs.c.blob))
                                .where(schema.blobs.c.thread_id == "z")).all()
        # the small dict lives in the checkpoint row: no blob row, no lookup
        assert [(r[0], r[1]) for r in rows] == [("doc", "zlib:msgpack")] and rows[0][2] < 6000
        tup = saver.get_tuple(cfg("z"))
        assert tup.checkpoint["channel_values"] == {"doc": doc, "small": small}
        assert tup.pending_writes == [("task", "doc", doc)]
        # an unchanged small value is carried into the next checkpoint row
        nxt = put(saver, stored, {"doc": doc, "small": small}, {},
                  versions={"doc": "1", "small": "1"})
        assert saver.get_tuple(nxt).checkpoint["channel_values"]["small"] == small


def test_a_database_of_schema_version_1_is_upgraded_and_stays_readable(any_url: str) -> None:
    """Version 1 wrote every non-scalar value as a blob row ("empty" rows included) and
    kept a run_id index; version 2 reads those rows as they are."""
    from langgraph.checkpoint.sqlalchemy import migrations

    serde = JsonPlusSerializer()
    engine = sa.create_engine(normalize_url(any_url))
    with engine.begin() as conn:
        assert migrations.migrate(conn, target=1) == 1
        assert "ix_rg_checkpoints_run_id" in {
            ix["name"] for ix in sa.inspect(conn).get_indexes("rg_checkpoints")}
        history = [AIMessage(f"old {i}", id=f"o{i}") for i in range(3)]
        cp = empty_checkpoint()
        cp["channel_values"] = {"turn": 2}  # v1: only scalars inside the record
        cp["channel_versions"] = {"turn": "2", "doc": "1", "messages": "2", "gone": "2"}
        type_, record = serde.dumps_typed(cp)

        def blob(channel: str, version: str, value: Any, **chain: Any) -> dict[str, Any]:
            t, b = serde.dumps_typed(value) if value is not None else ("empty", None)
            return {"thread_id": "old", "checkpoint_ns": "", "channel": channel,
                    "version": version, "type": t, "blob": b, "root_version": version,
                    "base_version": None, "depth": 0, "item_count": None, **chain}

        conn.execute(schema.blobs.insert(), [
            blob("doc", "1", {"a": 1}),
            blob("messages", "1", history[:2], item_count=2),
            blob("messages", "2", history[2:], root_version="1", base_version="1", depth=1,
                 item_count=3),
            blob("gone", "2", None),
        ])
        conn.execute(schema.checkpoints.insert().values(
            thread_id="old", checkpoint_ns="", checkpoint_id=cp["id"], parent_checkpoint_id=None,
            run_id="run-1", created_at=0, type=type_, checkpoint=record,
            metadata={"source": "loop", "step": 2, "run_id": "run-1"}))
    saver = SQLAlchemySaver(engine)
    try:
        tup = saver.get_tuple(cfg("old"))  # setup() upgrades first
        assert tup.checkpoint["channel_values"] == {"turn": 2, "doc": {"a": 1},
                                                    "messages": history}
        assert tup.metadata["step"] == 2
        with engine.connect() as conn:
            assert conn.execute(sa.select(schema.migrations.c.v)).scalars().all() == [1, 2, 3, 4]
            assert "ix_rg_checkpoints_run_id" not in {
                ix["name"] for ix in sa.inspect(conn).get_indexes("rg_checkpoints")}
        # the thread goes on in the new layout, on top of the old rows
        nxt = put(saver, tup.config, {"turn": 3, "doc": {"a": 1}, "messages": history},
                  {"turn": "3"}, versions={"turn": "3", "doc": "1", "messages": "2"})
        assert saver.get_tuple(nxt).checkpoint["channel_values"]["messages"] == history
        assert [t.metadata["step"] for t in saver.list(cfg("old"))] == [0, 2]
        saver.delete_for_runs(["run-1"])
        assert [t.config for t in saver.list(cfg("old"))] == [nxt]
    finally:
        saver.close()
        engine.dispose()


def test_get_next_version_is_sortable_and_accepts_ints() -> None:
    saver = SQLAlchemySaver(sa.create_engine("sqlite://"))
    v1 = saver.get_next_version(None, None)
    v2 = saver.get_next_version(v1, None)
    assert v1 < v2 and v2.startswith("0" * 11 + "2.") and len(v2) == 21
    assert saver.get_next_version(7, None).startswith("0" * 11 + "8.")
    official = "00000000000000000000000000000041.0.5"  # the official savers' format
    assert saver.get_next_version(official, None).startswith("0" * 10 + "42.")


def test_long_identifiers_fail_with_the_limit(sqlite_url: str) -> None:
    with SQLAlchemySaver.from_conn_string(sqlite_url) as saver:
        with pytest.raises(ValueError, match="thread_id is 300 characters long; .* allow 255"):
            put(saver, cfg("x" * 300), {}, {})


# --- append-only deltas ------------------------------------------------------------------


def test_growing_list_is_stored_as_deltas_and_every_checkpoint_reads_back(any_url: str) -> None:
    with SQLAlchemySaver.from_conn_string(any_url, storage=StorageOptions(
            delta_snapshot_every=8, compress_min_bytes=None)) as saver:
        configs, values = grow_history(saver, "chat", 40)
        rows = [r for r in blob_rows(saver, "chat") if r.channel == "messages"]
        deltas = [r for r in rows if r.base_version is not None]
        assert len(rows) == 39 and len(deltas) == 36  # the 1-message version is inline
        # Full copies at 2, 10 and 21 messages: a copy is due once a chain is 8 long and its
        # deltas outweigh the copy it started from (2, then 10 messages); the last chain is not due.
        assert [r.depth for r in rows] == [*range(8), *range(11), *range(20)]
        # a delta holds one message, not the whole history
        full = max(r.size for r in rows if r.base_version is None)
        assert max(r.size for r in deltas) < full
        for config, expected in zip(configs, values):
            tup = saver.get_tuple(config)
            assert tup.checkpoint["channel_values"]["messages"] == expected
        listed = [t.checkpoint["channel_values"]["messages"] for t in saver.list(cfg("chat"))]
        assert listed == values[::-1]


def test_snapshots_keep_storage_linear() -> None:
    """Full copies are rewritten only once deltas outweigh them: total size stays ~linear."""
    with SQLAlchemySaver.from_conn_string("sqlite://", storage=StorageOptions(
            delta_snapshot_every=4, compress_min_bytes=None)) as saver:
        grow_history(saver, "chat", 300)
        rows = [r for r in blob_rows(saver, "chat") if r.channel == "messages"]
        one = max(r.size for r in rows if r.base_version is not None)
        total = sum(r.size for r in rows)
        assert total < 300 * one * 5, (total, one)  # quadratic would be ~150x one per step
        assert sum(1 for r in rows if r.base_version is None) <= 12


def test_changed_item_or_fork_is_stored_in_full(sqlite_url: str) -> None:
    with SQLAlchemySaver.from_conn_string(sqlite_url) as saver:
        configs, values = grow_history(saver, "chat", 5)
        before = [m.model_copy() for m in values[2]]
        # an earlier message replaced, as add_messages does for a message with a known
        # id: a new object where the stored list had another, so no delta
        edited = [values[-1][0].model_copy(update={"content": "edited"}), *values[-1][1:]]
        v = saver.get_next_version("00000000000000000000000000000005.5", None)
        c6 = put(saver, configs[-1], {"messages": edited + [AIMessage("six", id="m6")]},
                 {"messages": v})
        # a fork from the second checkpoint with a different tail
        fork = values[1][:1] + [AIMessage("other", id="x")]
        v2 = saver.get_next_version(v, None)
        c7 = put(saver, configs[1], {"messages": fork}, {"messages": v2})
        assert saver.get_tuple(c6).checkpoint["channel_values"]["messages"][0].content == "edited"
        assert saver.get_tuple(c7).checkpoint["channel_values"]["messages"] == fork
        assert saver.get_tuple(configs[2]).checkpoint["channel_values"]["messages"] == before
        by_version = {r.version: r for r in blob_rows(saver, "chat")}
        assert by_version[v].base_version is None  # full copies, not deltas
        assert by_version[v2].base_version is None


def test_a_new_process_continues_from_a_full_copy(sqlite_url: str) -> None:
    with SQLAlchemySaver.from_conn_string(sqlite_url) as saver:
        configs, values = grow_history(saver, "chat", 5)
    with SQLAlchemySaver.from_conn_string(sqlite_url) as saver:  # cold delta cache
        more, more_values = grow_history(saver, "chat", 3, start=configs[-1], messages=values[-1])
        assert saver.get_tuple(more[-1]).checkpoint["channel_values"]["messages"] == more_values[-1]
        assert saver.get_tuple(configs[2]).checkpoint["channel_values"]["messages"] == values[2]


def test_prune_delete_for_runs_and_copy_keep_delta_chains_readable(any_url: str) -> None:
    with SQLAlchemySaver.from_conn_string(
            any_url, storage=StorageOptions(delta_snapshot_every=64)) as saver:
        configs, values = grow_history(saver, "chat", 20)
        saver.copy_thread("chat", "copy")
        assert saver.get_tuple(cfg("copy")).checkpoint["channel_values"]["messages"] == values[-1]
        saver.prune(["chat"], strategy="keep_latest")
        assert [t.checkpoint["id"] for t in saver.list(cfg("chat"))] == [
            configs[-1]["configurable"]["checkpoint_id"]
        ]
        tup = saver.get_tuple(cfg("chat"))
        assert tup.checkpoint["channel_values"]["messages"] == values[-1]
        assert tup.parent_config is None  # its parent was pruned
        # the chain the latest delta needs survives; superseded "turn" blobs do not
        kept = blob_rows(saver, "chat")
        assert {r.channel for r in kept} == {"messages"}
        # the copy is independent of the pruned source
        assert saver.get_tuple(configs[5] | {"configurable": {
            **configs[5]["configurable"], "thread_id": "copy"}}
        ).checkpoint["channel_values"]["messages"] == values[5]
        # a run's checkpoints go, with blobs nothing else needs
        run_cfg = put(saver, cfg("runs"), {"doc": "y" * 2000}, {"doc": "1"}, run_id="r1")
        put(saver, run_cfg, {"doc": "z" * 2000}, {"doc": "2"}, run_id="r2")
        saver.delete_for_runs(["r2"])
        assert [r.version for r in blob_rows(saver, "runs")] == ["1"]
        assert saver.get_tuple(cfg("runs")).checkpoint["channel_values"]["doc"] == "y" * 2000


# --- errors --------------------------------------------------------------------------------


def test_corrupted_blob_names_thread_checkpoint_and_channel(sqlite_url: str) -> None:
    with SQLAlchemySaver.from_conn_string(
            sqlite_url, storage=StorageOptions(inline_max_bytes=0)) as saver:
        stored = put(saver, cfg("broken"), {"doc": {"k": "v" * 500}}, {"doc": "1"})
        with saver.engine.begin() as conn:
            conn.execute(schema.blobs.update().where(schema.blobs.c.channel == "doc")
                         .values(blob=b"\xc1\xc1 not msgpack"))
        with pytest.raises(CheckpointCorruptError) as info:
            saver.get_tuple(cfg("broken"))
        message = str(info.value)
        assert "'broken'" in message and "'doc'" in message
        assert stored["configurable"]["checkpoint_id"] in message
        assert info.value.channel == "doc" and info.value.thread_id == "broken"


def test_missing_delta_base_is_reported_as_corruption(sqlite_url: str) -> None:
    with SQLAlchemySaver.from_conn_string(sqlite_url) as saver:
        configs, _ = grow_history(saver, "chat", 3)
        with saver.engine.begin() as conn:
            conn.execute(schema.blobs.delete().where(
                schema.blobs.c.channel == "messages", schema.blobs.c.base_version.is_(None)))
        with pytest.raises(CheckpointCorruptError, match="delta base version .* is missing"):
            saver.get_tuple(configs[-1])


def test_newer_schema_is_refused_with_upgrade_advice(sqlite_url: str) -> None:
    with SQLAlchemySaver.from_conn_string(sqlite_url) as saver:
        saver.setup()
        with saver.engine.begin() as conn:
            conn.execute(schema.migrations.insert().values(v=99))
    with SQLAlchemySaver.from_conn_string(sqlite_url) as saver:
        with pytest.raises(SchemaVersionError, match="schema version 99.*upgrade relaygraph"):
            saver.get_tuple(cfg("any"))


def test_setup_is_idempotent_and_versioned(any_url: str) -> None:
    for _ in range(2):
        with SQLAlchemySaver.from_conn_string(any_url) as saver:
            saver.setup()
            with saver.engine.connect() as conn:
                assert conn.execute(sa.select(schema.migrations.c.v)).scalars().all() == [1, 2, 3, 4]


@pytest.mark.parametrize("url", ["redis://localhost/0", "relaygraph.db", "oracle://u@h/db"])
def test_unknown_scheme_names_what_is_expected(url: str) -> None:
    with pytest.raises(UnsupportedDatabaseURL, match="expected sqlite:///PATH.*postgresql://.*mysql://"):
        with SQLAlchemySaver.from_conn_string(url):
            pass


def test_url_normalisation_picks_drivers(tmp_path) -> None:
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql://u@h/db", async_=True).drivername == "postgresql+psycopg"
    assert normalize_url("mysql://u@h/db").drivername == "mysql+pymysql"
    assert normalize_url("mariadb://u@h/db", async_=True).drivername in (
        "mariadb+asyncmy", "mariadb+aiomysql")
    assert normalize_url("mysql://u@h/db").query["charset"] == "utf8mb4"
    target = tmp_path / "new" / "dir" / "x.db"
    assert normalize_url(f"sqlite:///{target}", async_=True).drivername == "sqlite+aiosqlite"
    assert not target.parent.exists()  # parsing a URL touches no file system


@pytest.mark.parametrize("async_", [False, True])
def test_sqlite_url_in_a_missing_folder_is_an_error_not_a_mkdir(tmp_path, async_) -> None:
    target = tmp_path / "typo" / "dir" / "x.db"
    with pytest.raises(DatabaseUnavailableError, match=f"folder {target.parent} does not exist; create it"):
        if async_:
            make_engine(f"sqlite:///{target}", async_=True)
        else:
            with SQLAlchemySaver.from_conn_string(f"sqlite:///{target}"):
                pass
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize("url", ["postgresql://postgres@127.0.0.1:1/test",
                                 "mysql://root@127.0.0.1:1/test"])
def test_unreachable_database_is_one_clear_error(url: str) -> None:
    with pytest.raises(DatabaseUnavailableError) as info:
        with SQLAlchemySaver.from_conn_string(url, connect_args={"connect_timeout": 2}):
            pass
    message = str(info.value)
    assert "127.0.0.1:1" in message and "Expected a running database" in message
    assert "\n" not in message


async def test_unreachable_database_async() -> None:
    with pytest.raises(DatabaseUnavailableError, match="127.0.0.1:1"):
        async with AsyncSQLAlchemySaver.from_conn_string("postgresql://postgres@127.0.0.1:1/x"):
            pass


def test_password_is_not_shown(tmp_path) -> None:
    with pytest.raises(DatabaseUnavailableError) as info:
        with SQLAlchemySaver.from_conn_string("postgresql://u:s3cret@127.0.0.1:1/x"):
            pass
    assert "s3cret" not in str(info.value)


# --- concurrency ---------------------------------------------------------------------------


def _writer(url: str, thread: str, n: int, errors: list) -> None:
    try:
        with SQLAlchemySaver.from_conn_string(url) as saver:
            config = cfg(thread)
            for i in range(n):
                config = put(saver, config, {"i": i, "doc": f"{thread}-{i}" * 50}, {"doc": str(i)})
                saver.put_writes(config, [("doc", i)], f"task-{i}")
    except Exception as exc:  # noqa: BLE001 - collected for the assertion
        errors.append(exc)


def test_sqlite_concurrent_writer_threads_and_processes_never_hit_locked(sqlite_url: str) -> None:
    import multiprocessing

    with SQLAlchemySaver.from_conn_string(sqlite_url) as saver:
        saver.setup()
    errors: list = []
    threads = [threading.Thread(target=_writer, args=(sqlite_url, f"thr{i}", 40, errors))
               for i in range(4)]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(sqlite_url, f"proc{i}", 40, [])) for i in range(3)]
    for p in procs:
        p.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        p.join(120)
    assert not errors, errors
    assert [p.exitcode for p in procs] == [0, 0, 0]
    with SQLAlchemySaver.from_conn_string(sqlite_url) as saver:
        for name in [f"thr{i}" for i in range(4)] + [f"proc{i}" for i in range(3)]:
            assert len(list(saver.list(cfg(name)))) == 40
            assert saver.get_tuple(cfg(name)).pending_writes == [("task-39", "doc", 39)]


@pytest.mark.postgres
def test_postgres_concurrent_threads_share_one_saver(pg_url: str) -> None:
    errors: list = []
    with SQLAlchemySaver.from_conn_string(pg_url) as saver:

        def work(name: str) -> None:
            try:
                config = cfg(name)
                for i in range(25):
                    config = put(saver, config, {"doc": f"{name}-{i}" * 50}, {"doc": str(i)})
                    saver.put_writes(config, [("doc", i), ("x", i)], f"task-{i}")
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        for i in range(8):
            tup = saver.get_tuple(cfg(f"t{i}"))
            assert tup.checkpoint["channel_values"]["doc"] == f"t{i}-24" * 50
            assert len(tup.pending_writes) == 2
            assert len(list(saver.list(cfg(f"t{i}")))) == 25


async def test_async_saver_sync_methods_from_another_thread(sqlite_url: str) -> None:
    async with AsyncSQLAlchemySaver.from_conn_string(sqlite_url) as saver:
        cp = empty_checkpoint()
        cp["channel_values"], cp["channel_versions"] = {"v": [1, 2]}, {"v": "1"}
        await saver.aput(cfg("a"), cp, {"source": "input", "step": -1}, {"v": "1"})
        tup = await asyncio.to_thread(saver.get_tuple, cfg("a"))
        assert tup.checkpoint["channel_values"] == {"v": [1, 2]}
        with pytest.raises(asyncio.InvalidStateError, match="another thread"):
            saver.get_tuple(cfg("a"))


# --- durability: writes under LangGraph's "async" mode -------------------------------------


def as_run(config: dict, durability: str | None) -> dict:
    """``config`` as a LangGraph run in ``durability`` mode passes it to ``put_writes``."""
    conf = {**config["configurable"], "__pregel_runtime": object()}
    if durability is not None:
        conf["__pregel_durability"] = durability
    return {"configurable": conf}


def test_async_durability_writes_ride_in_the_next_transaction(any_url: str) -> None:
    late = StorageOptions(writes_flush_delay=3600)  # only the events below flush
    with SQLAlchemySaver.from_conn_string(any_url, storage=late) as saver, \
            SQLAlchemySaver.from_conn_string(any_url) as other:

        def seen(config: dict) -> list:
            return other.get_tuple(config).pending_writes

        c1 = put(saver, cfg("d"), {}, {})
        saver.put_writes(as_run(c1, "async"), [("a", 1)], "t1")
        saver.put_writes(as_run(c1, None), [("a", 2)], "t2")  # LangGraph's default: async
        assert seen(c1) == []  # not committed yet
        c2 = put(saver, c1, {}, {})  # they ride in this put's transaction
        assert seen(c1) == [("t1", "a", 1), ("t2", "a", 2)]
        saver.put_writes(as_run(c2, "async"), [("a", 3)], "t3")
        assert saver.get_tuple(c2).pending_writes == [("t3", "a", 3)]  # a read flushes
        assert seen(c2) == [("t3", "a", 3)]
        # an error (any special channel) does not wait, and takes waiting writes along
        saver.put_writes(as_run(c2, "async"), [("b", 4)], "t4")
        saver.put_writes(as_run(c2, "async"), [(ERROR, "boom")], "t5")
        assert [w[0] for w in seen(c2)] == ["t3", "t4", "t5"]
        # sync and exit durability, and direct calls, commit before returning
        for task, durability in (("t6", "sync"), ("t7", "exit")):
            saver.put_writes(as_run(c2, durability), [("c", 5)], task)
            assert task in [w[0] for w in seen(c2)]
        saver.put_writes(c2, [("c", 6)], "t8")
        assert "t8" in [w[0] for w in seen(c2)]
        # close commits what still waits
        saver.put_writes(as_run(c2, "async"), [("d", 7)], "t9")
        assert "t9" not in [w[0] for w in seen(c2)]
        saver.close()
        assert "t9" in [w[0] for w in seen(c2)]


def test_async_durability_writes_are_flushed_after_the_delay(sqlite_url: str) -> None:
    with SQLAlchemySaver.from_conn_string(
            sqlite_url, storage=StorageOptions(writes_flush_delay=0.05)) as saver, \
            SQLAlchemySaver.from_conn_string(sqlite_url) as other:
        c1 = put(saver, cfg("d"), {}, {})
        saver.put_writes(as_run(c1, "async"), [("a", 1)], "t1")
        deadline = time.monotonic() + 10
        while not other.get_tuple(c1).pending_writes:
            assert time.monotonic() < deadline, "the deferred write was never flushed"
            time.sleep(0.02)


async def test_async_saver_defers_writes_the_same_way(sqlite_url: str) -> None:
    late = StorageOptions(writes_flush_delay=3600)
    async with AsyncSQLAlchemySaver.from_conn_string(sqlite_url, storage=late) as saver:
        cp = empty_checkpoint()
        c1 = await saver.aput(cfg("d"), cp, {"source": "loop", "step": 0}, {})
        await saver.aput_writes(as_run(c1, "async"), [("a", 1)], "t1")
        with SQLAlchemySaver.from_conn_string(sqlite_url) as other:
            assert other.get_tuple(c1).pending_writes == []
            assert (await saver.aget_tuple(c1)).pending_writes == [("t1", "a", 1)]
            assert other.get_tuple(c1).pending_writes == [("t1", "a", 1)]
            await saver.aput_writes(as_run(c1, "async"), [("b", 2)], "t2")
    with SQLAlchemySaver.from_conn_string(sqlite_url) as other:  # the exit flushed t2
        assert [w[0] for w in other.get_tuple(c1).pending_writes] == ["t1", "t2"]
