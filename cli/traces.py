"""``relaygraph traces``: inspect the spans stored with a thread's runs.

    relaygraph traces show THREAD                           span tree with durations
    relaygraph traces export THREAD --format jaeger > t.json   open in Jaeger UI ("JSON File")
    relaygraph traces export THREAD --format otlp-json      replay into any OTLP collector
"""

from __future__ import annotations

import json
import sys
from enum import Enum

import typer
from relaygraph.cli.common import UsageError, guarded
from relaygraph.config.checkpointing import checkpoint_url, missing_sqlite_file
from relaygraph.observability.trace_export import export as export_spans
from relaygraph.observability.trace_export import span_tree
from relaygraph.observability.trace_store import StoredSpan, load_spans, thread_ids
from rich.console import Console

traces_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="Inspect the traces stored with each run (spans of runs, nodes, agents, LLM and tool calls).")
out = Console()


class Format(str, Enum):
    jaeger = "jaeger"
    otlp_json = "otlp-json"


def _spans(thread_id: str, checkpoint_db: str | None) -> list[StoredSpan]:
    url = checkpoint_url(checkpoint_db)
    missing = missing_sqlite_file(url)
    if missing is not None:  # reading must not create the database (nor its lock file)
        raise UsageError(f"No spans stored for thread {thread_id!r}: there is no database at {missing} "
                         "(nothing has run with it yet). Run with `relaygraph run GRAPH --trace`, or pass "
                         "--checkpoint-db / set RELAYGRAPH_CHECKPOINT_DB to the database your runs used.")
    spans = load_spans(url, thread_id)
    if not spans:
        known = thread_ids(url)
        hint = f" Threads with traces: {', '.join(known[-10:])}." if known else (
            " No run has been traced in this database yet: run with `relaygraph run GRAPH --trace` "
            "or set OTEL_TRACES_EXPORTER/OTEL_EXPORTER_OTLP_ENDPOINT.")
        raise UsageError(f"No spans stored for thread {thread_id!r} in {url}.{hint}")
    return spans


@traces_app.command("show")
@guarded
def show(
    thread_id: str = typer.Argument(..., metavar="THREAD"),
    checkpoint_db: str | None = typer.Option(None, "--checkpoint-db", help="Checkpoint database URL."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Print the span tree of every run on THREAD, with durations, tokens and errors."""
    spans = _spans(thread_id, checkpoint_db)
    out.print(span_tree(spans, f"thread {thread_id} — {len(spans)} spans"))


@traces_app.command("export")
@guarded
def export(
    thread_id: str = typer.Argument(..., metavar="THREAD"),
    fmt: Format = typer.Option(Format.jaeger, "--format", help="jaeger (Jaeger UI JSON file) or otlp-json."),
    checkpoint_db: str | None = typer.Option(None, "--checkpoint-db", help="Checkpoint database URL."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Write THREAD's spans as JSON to stdout (redirect to a file)."""
    spans = _spans(thread_id, checkpoint_db)
    sys.stdout.write(json.dumps(export_spans(spans, fmt.value), indent=2) + "\n")

