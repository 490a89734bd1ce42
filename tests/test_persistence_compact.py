"""Schema v4: small values compressed with a preset dictionary, chain reads without an index."""

from __future__ import annotations

import zlib
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlalchemy import (
    CheckpointCorruptError,
    SQLAlchemySaver,
    StorageOptions,
    compression,
    migrations,
    schema,
)
from langgraph.checkpoint.sqlalchemy.urls import normalize_url


def cfg(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}


def put(saver: Any, config: dict, values: dict, new: dict, versions: dict | None = None) -> dict:
    cp = empty_checkpoint()
    cp["channel_values"] = values
    cp["channel_versions"] = versions or dict(new)
    return saver.put(config, cp, {"source": "loop", "step": 0, "parents": {}}, new)


def grow(saver: Any, thread: str, steps: int) -> tuple[list[dict], list[AIMessage]]:
    config, messages, version, configs = cfg(thread), [], None, []
    for i in range(steps):
        messages = messages + [AIMessage(f"reply {i}: " + "word " * 40, id=f"m{i}")]
        version = saver.get_next_version(version, None)
        config = put(saver, config, {"messages": messages}, {"messages": version})
        configs.append(config)
    return configs, messages


def chain_index(conn: sa.Connection) -> bool:
    return "ix_rg_checkpoint_blobs_chain" in {
        ix["name"] for ix in sa.inspect(conn).get_indexes(schema.blobs.name)}


def test_preset_dictionary_never_changes() -> None:
    # Rows written with it are read back with it: a new dictionary needs a new prefix.
    assert zlib.adler32(compression.PRESET_1) == compression.PRESET_1_ADLER == 0x51FA065D
    assert len(compression.PRESET_1) == 1263


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=compression.WIDE_FROM))
def test_small_deflate_roundtrips_any_bytes(data: bytes) -> None:
    assert compression.inflate_small(compression.deflate_small(data)) == data


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.binary(max_size=5000), st.text(max_size=3000),
                 st.lists(st.text(max_size=60), max_size=80)))
def test_stored_values_roundtrip_whatever_the_compression(value: Any) -> None:
    saver = SQLAlchemySaver(sa.create_engine("sqlite://"), auto_setup=False)
    type_, data = saver._dumps(value)  # noqa: SLF001
    assert saver._decode(type_, data) == value  # noqa: SLF001
    if type_.startswith(compression.PRESET_PREFIX):
        assert len(data) < 0.9 * len(saver.serde.dumps_typed(value)[1])


def test_cut_compressed_value_is_corruption(sqlite_url: str) -> None:
    with SQLAlchemySaver.from_conn_string(sqlite_url) as saver:
        stored = put(saver, cfg("cut"), {}, {})
        saver.put_writes(stored, [("messages", AIMessage("hello " * 60, id="a"))], "task")
        w = schema.writes
        with saver.engine.begin() as conn:
            type_, blob = conn.execute(sa.select(w.c.type, w.c.blob)).one()
            assert type_ == "zd1:msgpack" and len(blob) < 250
            conn.execute(w.update().values(blob=blob[:-9]))
        with pytest.raises(CheckpointCorruptError, match="truncated|incomplete|Error"):
            saver.get_tuple(cfg("cut"))


def test_chat_messages_are_stored_compressed_and_read_back(any_url: str) -> None:
    with SQLAlchemySaver.from_conn_string(any_url) as saver:
        configs, messages = grow(saver, "chat", 12)
        saver.put_writes(configs[-1], [("messages", messages[-1])], "task")
        with saver.engine.connect() as conn:
            b, w = schema.blobs, schema.writes
            deltas = conn.execute(sa.select(b.c.type, sa.func.length(b.c.blob))
                                  .where(b.c.thread_id == "chat", b.c.depth > 0)).all()
            write = conn.execute(sa.select(w.c.type, sa.func.length(w.c.blob))).one()
        raw = len(JsonPlusSerializer().dumps_typed([messages[-1]])[1])
        assert deltas and all(t == "zd1:msgpack" and n < 0.6 * raw for t, n in deltas)
        assert write[0] == "zd1:msgpack"
        tup = saver.get_tuple(configs[-1])
        assert tup.checkpoint["channel_values"]["messages"] == messages
        assert tup.pending_writes == [("task", "messages", messages[-1])]
        assert [t.checkpoint["channel_values"]["messages"] for t in saver.list(cfg("chat"))] == [
            messages[: i + 1] for i in reversed(range(12))]


def test_schema_v3_database_is_upgraded_and_its_chains_stay_readable(any_url: str) -> None:
    engine = sa.create_engine(normalize_url(any_url))
    try:
        with engine.begin() as conn:
            assert migrations.migrate(conn, target=3) == 3
            assert chain_index(conn)
        engine.dispose()  # the savers' connections get their session settings
        old = SQLAlchemySaver(engine, auto_setup=False,
                              storage=StorageOptions(compress_min_bytes=2048))
        configs, messages = grow(old, "v3", 6)  # as version 3 wrote them
        old.close()
        saver = SQLAlchemySaver(engine)  # setup() upgrades to version 4
        try:
            tup = saver.get_tuple(configs[-1])
            assert tup.checkpoint["channel_values"]["messages"] == messages
            with engine.connect() as conn:
                assert conn.execute(sa.select(schema.migrations.c.v)).scalars().all() == [1, 2, 3, 4]
                assert not chain_index(conn)
            # the chain goes on as a delta in the new encoding, on top of the old rows
            read = tup.checkpoint["channel_values"]["messages"]
            version = saver.get_next_version(tup.checkpoint["channel_versions"]["messages"], None)
            nxt = put(saver, configs[-1], {"messages": [*read, AIMessage("new " * 50, id="n")]},
                      {"messages": version})
            got = saver.get_tuple(nxt).checkpoint["channel_values"]["messages"]
            assert got[:-1] == messages and got[-1].content == "new " * 50
            types = [r.type for r in _blob_types(saver)]
            assert types[-1] == "zd1:msgpack" and set(types[:-1]) == {"msgpack"}
        finally:
            saver.close()
    finally:
        engine.dispose()


def _blob_types(saver: SQLAlchemySaver) -> list[Any]:
    b = schema.blobs
    with saver.engine.connect() as conn:
        return conn.execute(sa.select(b.c.type, b.c.depth).order_by(b.c.version)).all()


def test_chain_whose_versions_do_not_sort_is_read_without_the_range(sqlite_url: str) -> None:
    """Versions from elsewhere (here "9" then "10": "10" < "9" as text) fall outside the
    primary key's range from root to end; the read finds the chain unbounded."""
    serde = JsonPlusSerializer()
    history = [AIMessage(f"m {i}", id=str(i)) for i in range(3)]
    with SQLAlchemySaver.from_conn_string(sqlite_url) as saver:
        saver.setup()
        cp = empty_checkpoint()
        cp["channel_versions"] = {"messages": "10"}
        cp["rg_blobs"] = ["messages"]  # type: ignore[typeddict-unknown-key]
        cp["rg_inline"] = {}  # type: ignore[typeddict-unknown-key]
        type_, record = serde.dumps_typed(cp)

        def blob(version: str, value: Any, **chain: Any) -> dict[str, Any]:
            t, b = serde.dumps_typed(value)
            return {"thread_id": "odd", "checkpoint_ns": "", "channel": "messages",
                    "version": version, "type": t, "blob": b, "root_version": version,
                    "base_version": None, "depth": 0, "item_count": None, **chain}

        with saver.engine.begin() as conn:
            conn.execute(schema.blobs.insert(), [
                blob("9", history[:2], item_count=2),
                blob("10", history[2:], root_version="9", base_version="9", depth=1,
                     item_count=3),
            ])
            conn.execute(schema.checkpoints.insert().values(
                thread_id="odd", checkpoint_ns="", checkpoint_id=cp["id"],
                parent_checkpoint_id=None, run_id=None, created_at=0, type=type_,
                checkpoint=record, metadata={"source": "loop", "step": 1}))
        assert saver.get_tuple(cfg("odd")).checkpoint["channel_values"]["messages"] == history


def test_record_keeps_the_id_in_its_column_only(any_url: str) -> None:
    with SQLAlchemySaver.from_conn_string(any_url) as saver:
        stored = put(saver, cfg("rec"), {"n": 1}, {"n": "1"})
        c = schema.checkpoints.c
        with saver.engine.connect() as conn:
            type_, record, meta = conn.execute(
                sa.select(c.type, c.checkpoint, sa.cast(c.metadata, sa.Text))).one()
        decoded = saver.serde.loads_typed((type_, record))
        assert "id" not in decoded and "rg_inline" not in decoded
        assert ", " not in meta or any_url.startswith("postgresql")  # JSONB prints its own
        tup = saver.get_tuple(cfg("rec"))
        assert tup.checkpoint["id"] == stored["configurable"]["checkpoint_id"]
        assert tup.checkpoint["channel_values"] == {"n": 1}
