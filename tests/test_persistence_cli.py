"""``relaygraph db stats`` / ``relaygraph db prune`` (runtime/cli_db.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.sqlalchemy import SQLAlchemySaver, schema
from langgraph.checkpoint.sqlalchemy.maintenance import parse_duration
from relaygraph.cli.db import db_app
from typer.testing import CliRunner

runner = CliRunner()


def populate(url: str, threads: dict[str, int]) -> None:
    with SQLAlchemySaver.from_conn_string(url) as saver:
        for thread, n in threads.items():
            config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
            for i in range(n):
                cp = empty_checkpoint()
                cp["channel_values"] = {"doc": f"{thread} {i} " * 200, "items": list(range(i + 1))}
                cp["channel_versions"] = {"doc": str(i), "items": str(i)}
                config = saver.put(config, cp, {"source": "loop", "step": i},
                                   {"doc": str(i), "items": str(i)})
                saver.put_writes(config, [("doc", i)], f"task-{i}")


def age_thread(url: str, thread: str, days: float) -> None:
    with SQLAlchemySaver.from_conn_string(url) as saver, saver.engine.begin() as conn:
        conn.execute(schema.checkpoints.update().where(schema.checkpoints.c.thread_id == thread)
                     .values(created_at=int((time.time() - days * 86400) * 1000)))


def stats(url: str) -> dict:
    result = runner.invoke(db_app, ["stats", "--checkpoint-db", url, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_stats_counts_threads_checkpoints_and_bytes(sqlite_url: str) -> None:
    populate(sqlite_url, {"a": 5, "b": 3})
    data = stats(sqlite_url)
    assert (data["threads"], data["checkpoints"], data["writes"]) == (2, 8, 8)
    assert data["bytes"] == data["checkpoint_bytes"] + data["blob_bytes"] + data["write_bytes"]
    assert data["blob_bytes"] > 0 and data["file_bytes"] > data["bytes"]
    human = runner.invoke(db_app, ["stats", "--checkpoint-db", sqlite_url])
    assert human.exit_code == 0 and "threads" in human.stdout and "checkpoints" in human.stdout


def test_stats_defaults_to_the_configured_database(isolated_env: dict[str, Path]) -> None:
    populate(f"sqlite:///{isolated_env['db']}", {"a": 2})
    result = runner.invoke(db_app, ["stats", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["checkpoints"] == 2


def test_prune_keep_latest_compacts_every_thread(sqlite_url: str) -> None:
    populate(sqlite_url, {"a": 5, "b": 3})
    before = stats(sqlite_url)
    result = runner.invoke(db_app, ["prune", "--keep-latest", "--checkpoint-db", sqlite_url])
    assert result.exit_code == 0, result.output
    assert "compacted 2 thread(s)" in result.stdout
    after = stats(sqlite_url)
    assert (after["threads"], after["checkpoints"]) == (2, 2)
    assert after["bytes"] < before["bytes"] / 2
    with SQLAlchemySaver.from_conn_string(sqlite_url) as saver:
        tup = saver.get_tuple({"configurable": {"thread_id": "a"}})
        assert tup.checkpoint["channel_values"]["items"] == [0, 1, 2, 3, 4]


def test_prune_older_than_deletes_idle_threads_and_dry_run_changes_nothing(sqlite_url: str) -> None:
    populate(sqlite_url, {"old": 3, "fresh": 2})
    age_thread(sqlite_url, "old", days=10)
    dry = runner.invoke(db_app, ["prune", "--older-than", "7d", "--dry-run", "--json",
                                 "--checkpoint-db", sqlite_url])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["threads_deleted"] == ["old"]
    assert stats(sqlite_url)["threads"] == 2
    result = runner.invoke(db_app, ["prune", "--older-than", "7d", "--checkpoint-db", sqlite_url])
    assert result.exit_code == 0 and "deleted 1 thread(s)" in result.stdout
    after = stats(sqlite_url)
    assert (after["threads"], after["checkpoints"]) == (1, 2)
    with SQLAlchemySaver.from_conn_string(sqlite_url) as saver, saver.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.blobs).where(
            schema.blobs.c.thread_id == "old")).scalar() == 0


def test_prune_both_options_compacts_only_idle_threads(sqlite_url: str) -> None:
    populate(sqlite_url, {"old": 4, "fresh": 3})
    age_thread(sqlite_url, "old", days=1)
    result = runner.invoke(db_app, ["prune", "--keep-latest", "--older-than", "12h", "--json",
                                    "--checkpoint-db", sqlite_url])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["threads_compacted"] == ["old"]
    assert stats(sqlite_url)["checkpoints"] == 1 + 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stats", "--checkpoint-db", "redis://x"], "expected sqlite:///PATH"),
        (["stats", "--checkpoint-db", "postgresql://postgres@127.0.0.1:1/x"], "127.0.0.1:1"),
        (["prune", "--keep-latest", "--checkpoint-db", "sqlite:////nonexistent/x.db"],
         "no checkpoint database at /nonexistent/x.db"),
        (["prune", "--checkpoint-db", "sqlite:///x.db"], "choose what to prune"),
        (["prune", "--older-than", "soon"], "invalid duration 'soon'"),
    ],
)
def test_errors_are_one_line_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(db_app, args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_parse_duration() -> None:
    assert parse_duration("30m").total_seconds() == 1800
    assert parse_duration("12h").total_seconds() == 43200
    assert parse_duration("7d").days == 7
    with pytest.raises(ValueError, match="e.g. 30m"):
        parse_duration("7")
