"""``relaygraph db ...``: inspect and prune the checkpoint database.

    relaygraph db stats [--checkpoint-db URL] [--json]
    relaygraph db prune (--keep-latest | --older-than 7d | both) [--dry-run] [--json]

Errors are one line on stderr and exit code 2 (no traceback).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone

import sqlalchemy as sa
import typer
from langgraph.checkpoint.sqlalchemy import PersistenceError, SQLAlchemySaver
from langgraph.checkpoint.sqlalchemy.maintenance import collect_stats, parse_duration
from langgraph.checkpoint.sqlalchemy.maintenance import prune as run_prune
from relaygraph.config.checkpointing import checkpoint_url, missing_sqlite_file
from rich.console import Console
from rich.table import Table

db_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Inspect and prune the checkpoint database (threads, checkpoints, bytes).",
)

out = Console()
err = Console(stderr=True)

_DB_OPTION = typer.Option(
    None,
    "--checkpoint-db",
    help="Checkpoint database URL (default: RELAYGRAPH_CHECKPOINT_DB or sqlite:///relaygraph.db).",
)


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@contextmanager
def _saver(url: str | None) -> Iterator[SQLAlchemySaver]:
    """The saver for ``url``, refusing to create a SQLite file that isn't there."""
    target = checkpoint_url(url)
    missing = missing_sqlite_file(target)
    if missing is not None:
        raise FileNotFoundError(
            f"no checkpoint database at {missing} (nothing checkpointed yet?); "
            "pass --checkpoint-db or set RELAYGRAPH_CHECKPOINT_DB"
        )
    with SQLAlchemySaver.from_conn_string(target) as saver:
        yield saver


@contextmanager
def _errors() -> Iterator[None]:
    """Every expected failure becomes one line and exit code 2."""
    try:
        yield
    except typer.Exit:
        raise
    except (PersistenceError, ValueError, FileNotFoundError, NotImplementedError) as exc:
        _fail(str(exc).strip().splitlines()[0])
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        _fail(f"checkpoint database error: {reason}")


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return str(size)


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@db_app.command("stats")
def stats(
    checkpoint_db: str | None = _DB_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the numbers as JSON."),
) -> None:
    """How many threads and checkpoints the database holds, and how many bytes."""
    with _errors(), _saver(checkpoint_db) as saver:
        result = collect_stats(saver)
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
        return
    table = Table(title=f"checkpoints in {result.url}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    for label, value in (
        ("threads", f"{result.threads:,}"),
        ("checkpoints", f"{result.checkpoints:,}"),
        ("pending writes", f"{result.writes:,}"),
        ("channel blobs", f"{result.blobs:,}"),
        ("stored bytes", _size(result.bytes)),
        ("  checkpoints", _size(result.checkpoint_bytes)),
        ("  blobs", _size(result.blob_bytes)),
        ("  writes", _size(result.write_bytes)),
        ("file size", _size(result.file_bytes)),
        ("oldest checkpoint", _when(result.oldest)),
        ("newest checkpoint", _when(result.newest)),
        ("schema version", str(result.schema_version)),
    ):
        table.add_row(label, value)
    out.print(table)


@db_app.command("prune")
def prune(
    keep_latest: bool = typer.Option(
        False, "--keep-latest", help="Keep only each thread's latest checkpoint (per namespace)."
    ),
    older_than: str | None = typer.Option(
        None,
        "--older-than",
        metavar="DURATION",
        help="Only threads idle longer than this (30m, 12h, 7d, 2w); alone, deletes them.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be pruned."),
    checkpoint_db: str | None = _DB_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Remove old state: delete idle threads, or compact threads to their latest checkpoint.

    --older-than alone deletes threads idle that long; --keep-latest alone compacts every
    thread; both compact only the idle threads (they stay resumable).
    """
    with _errors():
        if not keep_latest and older_than is None:
            raise ValueError("choose what to prune: --keep-latest and/or --older-than DURATION")
        age = parse_duration(older_than) if older_than is not None else None
        with _saver(checkpoint_db) as saver:
            result = run_prune(saver, keep_latest=keep_latest, older_than=age,
                               dry_run=dry_run)
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
        return
    if result.threads_deleted:
        action = "would delete" if dry_run else "deleted"
        out.print(f"{action} {len(result.threads_deleted)} thread(s)")
    if result.threads_compacted:
        action = "would compact" if dry_run else "compacted"
        out.print(f"{action} {len(result.threads_compacted)} thread(s) to their latest checkpoint")
    if not result.threads_deleted and not result.threads_compacted:
        out.print("nothing to prune")
    if not dry_run:
        out.print(
            f"checkpoints {result.checkpoints_before:,} -> {result.checkpoints_after:,}, "
            f"stored bytes {_size(result.bytes_before)} -> {_size(result.bytes_after)}"
        )
