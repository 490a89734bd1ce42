"""The saver's two extension points: checkpoint listeners and named migration sets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.sqlalchemy import (
    AsyncSQLAlchemySaver,
    MigrationSet,
    SchemaVersionError,
    SQLAlchemySaver,
    create_tables,
    schema,
)
from langgraph.checkpoint.sqlalchemy import migrations
from langgraph.checkpoint.sqlalchemy.engines import make_engine


def _put(saver: Any, thread: str) -> dict[str, Any]:
    cp = empty_checkpoint()
    cp["channel_values"] = {"x": 1}
    cp["channel_versions"] = {"x": "1"}
    config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    return saver.put(config, cp, {"source": "loop", "step": 0, "parents": {}}, {"x": "1"})


# --- listeners ---------------------------------------------------------------------------


def test_listeners_hear_each_stored_checkpoint_and_task_write(sqlite_url: str) -> None:
    heard: list[dict[str, Any]] = []
    later: list[dict[str, Any]] = []
    with SQLAlchemySaver.from_conn_string(sqlite_url, listeners=[heard.append]) as saver:
        stored = _put(saver, "t1")
        assert heard == [{"config": stored,
                          "parent_config": {"configurable": {"thread_id": "t1", "checkpoint_ns": ""}}}]
        saver.add_listener(later.append)
        saver.put_writes(stored, [("x", 2)], task_id="task-1")
        assert heard[-1] == later[-1] == {"config": stored, "tasks": [{"id": "task-1"}]}
        saver.remove_listener(heard.append)
        _put(saver, "t2")
        assert len(heard) == 2 and len(later) == 2


def test_a_failing_listener_never_fails_the_save(sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    def broken(payload: dict[str, Any]) -> None:
        raise RuntimeError("observer bug")

    with SQLAlchemySaver.from_conn_string(sqlite_url, listeners=[broken]) as saver:
        stored = _put(saver, "t1")
        saved = saver.get_tuple(stored)
        assert saved is not None and saved.config["configurable"]["checkpoint_id"] == stored["configurable"]["checkpoint_id"]
    assert "checkpoint listener" in caplog.text and "observer bug" in caplog.text


def test_async_saver_announces_to_its_listeners(sqlite_url: str) -> None:
    heard: list[dict[str, Any]] = []

    async def run() -> None:
        async with AsyncSQLAlchemySaver.from_conn_string(sqlite_url) as saver:
            saver.add_listener(heard.append)
            cp = empty_checkpoint()
            config = {"configurable": {"thread_id": "a", "checkpoint_ns": ""}}
            stored = await saver.aput(config, cp, {"source": "loop", "step": 0, "parents": {}}, {})
            await saver.aput_writes(stored, [("x", 1)], task_id="t")

    asyncio.run(run())
    assert [sorted(p) for p in heard] == [["config", "parent_config"], ["config", "tasks"]]


# --- migration sets ------------------------------------------------------------------------


def _table(name: str, *columns: str) -> sa.Table:
    return sa.Table(name, sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                    *(sa.Column(c, sa.String(50)) for c in columns))


def _add_column(table: str, column: str) -> Any:
    def step(conn: sa.Connection) -> None:
        conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column} VARCHAR(50)"))
    return step


def _versions(engine: sa.Engine, migration_set: MigrationSet) -> list[int]:
    with engine.connect() as conn:
        return conn.execute(sa.select(migration_set.version_table.c.v)
                            .order_by(migration_set.version_table.c.v)).scalars().all()


def test_a_named_set_creates_and_upgrades_its_tables_beside_the_checkpoints(any_url: str) -> None:
    v1 = MigrationSet("test_notes", [create_tables(_table("test_notes", "body"))])
    v2 = MigrationSet("test_notes", [*v1.steps, _add_column("test_notes", "author")])
    with SQLAlchemySaver.from_conn_string(any_url) as saver:
        saver.setup()
        saver.migrate(v1)
        saver.migrate(v1)  # idempotent
        assert _versions(saver.engine, v1) == [1]
        saver.migrate(v2)
        assert _versions(saver.engine, v2) == [1, 2]
        columns = {c["name"] for c in sa.inspect(saver.engine).get_columns("test_notes")}
        assert columns == {"id", "body", "author"}
        # the checkpoint set kept its own version table, untouched
        own = list(range(1, migrations.SCHEMA_VERSION + 1))
        assert _versions(saver.engine, MigrationSet("rg_checkpoint", [])) == own
        with saver.engine.connect() as conn:
            assert conn.execute(sa.select(schema.migrations.c.v)).scalars().all() == own
        with pytest.raises(SchemaVersionError, match="test_notes tables .* schema version 2.*upgrade"):
            saver.migrate(v1)  # older code on a newer database


def test_async_saver_and_a_bare_engine_apply_sets_too(sqlite_url: str) -> None:
    notes = MigrationSet("test_async_notes", [create_tables(_table("test_async_notes", "body"))])
    other = MigrationSet("test_other", [create_tables(_table("test_other"))])

    async def run() -> None:
        async with AsyncSQLAlchemySaver.from_conn_string(sqlite_url) as saver:
            await saver.migrate(notes)

    asyncio.run(run())
    engine = make_engine(sqlite_url)
    try:
        assert other.apply(engine) == 1
        assert _versions(engine, notes) == [1] and _versions(engine, other) == [1]
        assert {"test_async_notes", "test_other"} <= set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize("name", ["", "Spans", "1spans", "a-b", "x" * 50])
def test_set_names_must_be_usable_as_table_names(name: str) -> None:
    with pytest.raises(ValueError, match="migration set name"):
        MigrationSet(name, [])


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=4))
def test_each_step_runs_exactly_once_in_order_however_the_set_grew(sizes: list[int]) -> None:
    """Invariant: applying ever longer prefixes of one step list (or a shorter one: refused)
    runs every step once, in order, and the stored version is the longest prefix applied."""
    ran: list[int] = []

    def step(i: int) -> Any:
        return lambda conn: ran.append(i)

    steps = [step(i) for i in range(max(sizes))]
    engine = make_engine("sqlite://")
    highest = 0
    try:
        for size in sizes:
            migration_set = MigrationSet("test_prop", steps[:size])
            if size < highest:
                with pytest.raises(SchemaVersionError):
                    migration_set.apply(engine)
                continue
            assert migration_set.apply(engine) == size
            highest = size
        assert ran == list(range(highest))
        with engine.connect() as conn:
            assert MigrationSet("test_prop", steps).current_version(conn) == highest
    finally:
        engine.dispose()
