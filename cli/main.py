"""The ``relaygraph`` command line.

    relaygraph graphs                       list workflows
    relaygraph run GRAPH [options]          run one (checkpointed; --json, --trace, --approve-before)
    relaygraph resume THREAD                continue an interrupted/crashed run, or answer an approval
    relaygraph threads / history / fork     threads, time travel (cli/threads.py)
    relaygraph db / model / traces ...      saver upkeep, the local LLM server, stored traces
    relaygraph agents / plan / experience   the agent registry, HTN plans, what runs learned

Errors are one line on stderr with a nonzero exit; ``--debug`` shows the traceback
(:mod:`relaygraph.cli.common`). The graphs are the ones ``langgraph.json`` lists
(:mod:`relaygraph.cli.registry`, the only importer of ``relaygraph.graphs``).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import typer
from langgraph.checkpoint.sqlalchemy import thread_lease
from pydantic import ValidationError
from relaygraph.cli import catalog, registry, runner
from relaygraph.cli import threads as cli_threads
from relaygraph.cli.agents import agents_app
from relaygraph.cli.common import (
    Progress,
    UsageError,
    err,
    finish_provider,
    guarded,
    out,
    print_outcome,
)
from relaygraph.cli.db import db_app
from relaygraph.cli.experience import experience_app
from relaygraph.cli.model import model_app
from relaygraph.cli.plan import plan_app
from relaygraph.cli.registry import graph_module
from relaygraph.cli.traces import traces_app
from relaygraph.config.checkpointing import open_checkpointer
from relaygraph.config.settings import get_settings, settings_from_config
from relaygraph.nodes.params import ParamError, RunParams, validate_params
from relaygraph.nodes.state import RunInput
from relaygraph.observability import tracing
from relaygraph.observability.trace_export import latest_trace, span_tree
from relaygraph.observability.trace_store import load_spans
from relaygraph.providers import check_provider, provider_label
from relaygraph.tools import PathNotAllowed, Workspace
from relaygraph.tools import check_data_file as tools_check_data_file
from relaygraph.tools.declared import DeclaredRoleError
from relaygraph.tools.frames import date_like_columns, read_frame
from relaygraph.tools.roles import declare, infer_roles
from relaygraph.tools.sample import SAMPLE_NAME, ensure_sample
from relaygraph.tools.workspace import ELSEWHERE_HINT, dataset_name_problem
from rich.console import Console
from rich.markup import escape

app = typer.Typer(add_completion=False, rich_markup_mode=None, no_args_is_help=True,
                  help="Orchestrate teams of AI agents as durable, traced LangGraph workflows.")


@app.command("graphs")
@guarded
def list_graphs(
    as_json: bool = typer.Option(False, "--json", help="Print each graph's description, --param keys "
                                 "(type, default, choices or range) and approvable nodes as JSON."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """List the workflows: what each does, its --param keys and the nodes --approve-before takes.

    \b
    Examples:
      relaygraph graphs
      relaygraph graphs --json
    """
    graphs = catalog.catalog()
    if as_json:
        sys.stdout.write(json.dumps(graphs, indent=2, default=str) + "\n")
        return
    for info in graphs:
        out.print(f"[bold]{info['name']:<14}[/] {escape(info['description'])}", soft_wrap=True)  # one line each
        out.print(f"  approve before: {', '.join(info['approvable_nodes'])}", soft_wrap=True, markup=False,
                  highlight=False)
        for line in catalog.own_param_lines(info):
            out.print(f"  --param {line}", soft_wrap=True, markup=False, highlight=False)
    out.print(f"\nEvery graph also takes --param {catalog.common_param_line()}.", soft_wrap=True,
              markup=False, highlight=False)


def load_input(task: str | None, input_file: Path | None, data: Path | None, default_task: str) -> dict[str, Any]:
    """The run input from --input (JSON), --task and --data, validated at the boundary."""
    payload: dict[str, Any] = {}
    if input_file is not None:
        if not input_file.is_file():
            raise FileNotFoundError(f"Input file not found: {input_file}")
        try:
            payload = json.loads(input_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UsageError(f"Malformed input file {input_file}: {exc.msg} at line {exc.lineno}.") from None
        if not isinstance(payload, dict):
            raise UsageError(f"Malformed input file {input_file}: expected a JSON object.")
    if task:
        payload["task"] = task
    payload.setdefault("task", default_task)
    if data is not None:
        payload["data"] = data.name
    try:
        return RunInput.model_validate(payload).model_dump(exclude_none=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UsageError(f"Invalid input: {'.'.join(map(str, first['loc']))}: {first['msg']}.") from None


def check_data_file(data: Path | None) -> None:
    """--data FILE must be a CSV/Parquet file with a header and rows, CSV as UTF-8 text (a symlink
    is judged by what it points to); anything else is one line and exit 2 before any work."""
    if data is None:
        return
    if not data.resolve().is_file():
        raise FileNotFoundError(f"Data file not found: {data}")
    if data.suffix.lower() not in (".csv", ".parquet", ".pq") and data.resolve().suffix.lower() not in (
        ".csv", ".parquet", ".pq"
    ):
        raise UsageError(f"Data file must be CSV or Parquet: {data}")
    tools_check_data_file(data)  # empty, header only, binary, not UTF-8: named, exit 2


def check_named_dataset(name: str | None, model: str | None) -> None:
    """A dataset named by --input's ``data`` or ``--param dataset``: the sandbox rule first — a name
    that leaves the data directory (absolute, ``..``, a symlink out) is one line and exit 2, and
    nothing outside is opened; then it is checked like --data when it is a file in the data
    directory (other names are resolved by the tools, which list the available ones)."""
    if not name:
        return
    settings = get_settings(model=model)
    workspace = Workspace(settings.data_dir, settings.output_dir)
    refused = UsageError(f"Refused dataset {name!r}: it is outside the data directory {workspace.data_dir}; "
                         f"give a file name inside it, or {ELSEWHERE_HINT}.")
    if dataset_name_problem(name):
        raise refused
    try:
        candidates = workspace.confine(name)
    except PathNotAllowed:
        raise refused from None
    candidate = next((c for c in candidates[-2:] if c.is_file()), None)  # data dir, then outputs (never a run folder)
    if candidate is not None:
        tools_check_data_file(candidate)


def _run_file(data: Path | None, name: str | None, model: str | None) -> Path | None:
    """The file a run will read: ``--data``, else the named dataset in the data directory, else
    the sample; None for a name the tools resolve themselves."""
    settings = get_settings(model=model)
    name = name or settings.dataset
    if data is not None:
        return data.resolve()
    if name:
        path = settings.data_dir / name
        return path if path.is_file() else None
    ensure_sample(settings.data_dir)
    return settings.data_dir / SAMPLE_NAME


def check_date_column(column: str | None, data: Path | None, name: str | None, model: str | None) -> None:
    """``--param date_column`` names a column of the file the run reads, else exit 2 before any
    work, naming the columns that look like dates (a typo is not a renamed column to adapt to:
    the adaptation is for files whose date column was renamed without the user naming it)."""
    if not column:
        return
    path = _run_file(data, name, model)
    if path is None:
        return
    columns, dated = date_like_columns(path)
    if column in columns:
        return
    looks = f"columns that look like dates: {', '.join(dated)}" if dated else "no column looks like dates"
    raise ParamError(f"--param date_column={column!r}: {path.name} has no such column; {looks} "
                     f"(all columns: {', '.join(columns)}).")


def check_declared_roles(roles: dict[str, str] | None, data: Path | None, name: str | None,
                         model: str | None) -> None:
    """``--param roles`` against the file the run will read (``--data``, else the named dataset,
    else the sample): every declared column exists and its role fits it (a measure holds numbers,
    a level has a date column to order it) — else exit 2 before any work."""
    if not roles:
        return
    settings = get_settings(model=model)
    name = name or settings.dataset
    if data is not None:
        path = data.resolve()
    elif name:
        path = settings.data_dir / name
        if not path.is_file():
            return  # not a plain data-directory file: the first tool resolves it (or refuses it)
    else:
        ensure_sample(settings.data_dir)
        path = settings.data_dir / SAMPLE_NAME
    try:
        infer_roles(declare(read_frame(path), roles, path.name))
    except DeclaredRoleError as exc:
        raise ParamError(f"--param roles: {exc}") from None


def stage_data(data: Path | None, thread: str, model: str | None) -> dict[str, Any]:
    """--data FILE as the run's ``dataset``, without widening what the tools may read.

    A file inside the data directory (directly or through a symlink) is used where it is. Any
    other file is copied into this run's own workspace folder, which only this thread's tools
    read — its folder is never made readable as a whole.
    """
    if data is None:
        return {}
    settings = get_settings(model=model)
    target = data.resolve()
    workspace = Workspace(settings.data_dir, settings.output_dir, thread)
    if target.is_relative_to(workspace.data_dir):
        return {"dataset": str(target.relative_to(workspace.data_dir))}
    staged = workspace.run_dir / data.name
    if staged.resolve() != target:
        shutil.copyfile(target, staged)
    return {"dataset": data.name}



@app.command("run", cls=catalog.RunCommand)
@guarded
def run(
    graph_name: str = typer.Argument(..., metavar="GRAPH", help="Workflow to run (see `relaygraph graphs`)."),
    task: str | None = typer.Option(None, "--task", help="What the agents should do."),
    input_file: Path | None = typer.Option(None, "--input", help="JSON file with the run input."),
    data: Path | None = typer.Option(None, "--data", help="CSV/Parquet file to analyse."),
    thread_id: str | None = typer.Option(None, "--thread-id", help="Thread to run on (default: new)."),
    model: str | None = typer.Option(None, "--model", help="Provider: offline, openai or local."),
    checkpoint_db: str | None = typer.Option(None, "--checkpoint-db", help="Checkpoint database URL."),
    as_json: bool = typer.Option(False, "--json", help="Print the final state as JSON."),
    trace: bool = typer.Option(False, "--trace", help="Trace the run (spans stored with it) and print the span tree."),
    approve_before: list[str] | None = typer.Option(None, "--approve-before", metavar="NODE",
                                                     help="Pause for approval before NODE (repeatable)."),
    max_concurrency: int | None = typer.Option(None, "--max-concurrency", help="Nodes/branches run at once."),
    params: list[str] | None = typer.Option(None, "--param", metavar="KEY=VALUE",
                                            help="Graph option for configurable, e.g. partitions=4 (repeatable)."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Run a workflow; its state is checkpointed on a thread so it can be resumed.

    \b
    Examples:
      relaygraph run sequential
      relaygraph run parallel --param specialists=validator,scorer --param partitions=4
      relaygraph run sequential --data my.csv --approve-before report --thread-id q3
    """
    module = graph_module(graph_name)
    check_data_file(data)
    settings = get_settings(model=model)
    check_provider(settings)  # unknown or unconfigured provider: fail before any work
    graph_input = load_input(task, input_file, data, getattr(module, "DEFAULT_TASK", "Analyse the dataset."))
    thread = thread_id or runner.new_thread_id()
    schema = getattr(module, "PARAMS", RunParams)
    raw_params = cli_threads.parse_params(params)
    if data is None:  # the sandbox rule before anything else reads the name
        check_named_dataset(graph_input.get("data") or raw_params.get("dataset"), model)
    checked_params = validate_params(schema, raw_params)  # before the data file is staged
    check_declared_roles(checked_params.get("roles"), data, graph_input.get("data") or checked_params.get("dataset"),
                         model)
    check_date_column(checked_params.get("date_column"), data,
                      graph_input.get("data") or checked_params.get("dataset"), model)
    if thread_id is not None:  # a used thread is continued with resume, never silently re-fed
        with open_checkpointer(checkpoint_db) as saver:
            existing = runner.describe_thread(saver, thread_id)
            if existing is not None:
                with thread_lease(saver.engine, thread_id):  # busy elsewhere: say that, not "unfinished"
                    pass
        if existing is not None:
            raise UsageError(runner.refuse_reuse(existing))
    overrides = {"model": model, **stage_data(data, thread, model)}
    if "dataset" in overrides:
        graph_input["data"] = overrides["dataset"]
    config = runner.run_config(thread, graph_name, overrides)
    config = cli_threads.with_run_options(config, module.graph, approve_before, max_concurrency, params, schema)
    check_config = getattr(module, "check_config", None)  # a graph's own options: refuse bad ones up front
    if check_config is not None:
        try:
            check_config(config["configurable"])
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if not as_json:
        out.print(f"[bold]{graph_name}[/] on thread [bold]{thread}[/] — model: "
                  f"{provider_label(settings)}", highlight=False)
    start_tracing(trace, checkpoint_db)
    try:
        with open_checkpointer(checkpoint_db) as saver:
            graph = runner.compile_graph(module.build_graph(), saver, graph_name)
            outcome = runner.execute(graph, graph_input, config, Progress(err if as_json else out, as_json))
    finally:
        finish_provider(model)
        finish_tracing(trace, thread, err if as_json else out)
    print_outcome(outcome, as_json)
    if (outcome.values.get("result") or {}).get("status") == "failed":
        raise typer.Exit(1)


@app.command("resume")
@guarded
def resume(
    thread_id: str = typer.Argument(..., metavar="THREAD"),
    model: str | None = typer.Option(None, "--model", help="Provider: offline, openai or local."),
    checkpoint_db: str | None = typer.Option(None, "--checkpoint-db", help="Checkpoint database URL."),
    as_json: bool = typer.Option(False, "--json", help="Print the final state as JSON."),
    trace: bool = typer.Option(False, "--trace", help="Trace the run (spans stored with it) and print the span tree."),
    approve: bool = typer.Option(False, "--approve", help="Approve the node the run is waiting before."),
    reject: bool = typer.Option(False, "--reject", help="Reject it: the run ends with status 'rejected'."),
    comment: str | None = typer.Option(None, "--comment", help="Comment recorded with the decision."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Continue an interrupted or crashed run from its last checkpoint (or answer its approval).

    \b
    Examples:
      relaygraph resume q3
      relaygraph resume q3 --approve --comment "looks good"
      relaygraph resume q3 --reject --comment "not now"
    """
    start_tracing(trace, checkpoint_db)
    try:
        with open_checkpointer(checkpoint_db) as saver:
            graph_name = runner.thread_graph_name(saver, thread_id)
            if graph_name is None:
                raise UsageError(f"No run found on thread {thread_id!r} in this checkpoint database: it was never "
                                 "started here, or stopped before its first checkpoint. Start it again with "
                                 f"`relaygraph run GRAPH --thread-id {thread_id}` (or check --checkpoint-db).")
            module = graph_module(graph_name)
            graph = runner.compile_graph(module.build_graph(), saver, graph_name)
            config = cli_threads.restore_run_options(saver, runner.run_config(thread_id, graph_name, {"model": model}))
            if runner.thread_status(graph, config) == "finished":
                # a failed run is resumed from just before the node that failed (a fork)
                config = runner.retry_point(graph, config) or config
                if config.get("configurable", {}).get("checkpoint_id") is None:
                    raise UsageError(f"Thread {thread_id!r} has already finished; nothing to resume.")
            graph_input = cli_threads.resume_input(graph, config, approve, reject, comment)
            settings = settings_from_config(config)  # the model it resumes with: --model, else the run's own
            check_provider(settings)
            if not as_json:  # the same header as run: which graph, which thread, what answers (LLM or not)
                how = "approved" if approve else "rejected" if reject else "resumed"
                out.print(f"[bold]{graph_name}[/] on thread [bold]{thread_id}[/] ({how}) — model: "
                          f"{provider_label(settings)}", highlight=False)
            outcome = runner.execute(graph, graph_input, config, Progress(err if as_json else out, as_json))
    finally:
        finish_provider(model)
        finish_tracing(trace, thread_id, err if as_json else out)
    print_outcome(outcome, as_json)


# --- tracing (observability/tracing.py) ---------------------------------------------------


def start_tracing(trace: bool, checkpoint_db: str | None) -> None:
    """Tracing as the OTEL_* environment says, or on with --trace; spans are stored in the
    run's checkpoint database either way."""
    tracing.configure(enabled=True if trace else None, store_url=checkpoint_db or get_settings().checkpoint_db)


def finish_tracing(trace: bool, thread_id: str, console: Console) -> None:
    """Export what the run produced; with --trace, print this run's span tree."""
    tracing.flush()
    url = tracing.store_url()
    if not trace or url is None:
        return
    spans = latest_trace(load_spans(url, thread_id))
    console.print(span_tree(spans, f"trace of thread {thread_id} — {len(spans)} spans "
                                   f"(again: relaygraph traces show {thread_id})"))


app.add_typer(db_app, name="db")
app.add_typer(model_app, name="model")
app.add_typer(traces_app, name="traces")
app.add_typer(plan_app, name="plan")
app.add_typer(agents_app, name="agents")
app.add_typer(experience_app, name="experience")
cli_threads.register(app)  # history, fork


def main() -> None:
    app()


if __name__ == "__main__":
    main()
