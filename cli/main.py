"""The ``relaygraph`` command line.

    relaygraph graphs                       list workflows
    relaygraph run GRAPH [options]          run one (checkpointed; --json, --trace, --approve-before)
    relaygraph resume THREAD                continue an interrupted/crashed run, or answer an approval
    relaygraph history / fork THREAD        time travel (runtime/cli_threads.py)
    relaygraph db / model / traces ...      saver upkeep, the local LLM server, stored traces
    relaygraph agents [--capability C]      the agent registry (cli/agents.py)

Errors are one line on stderr with a nonzero exit; ``--debug`` shows the traceback. This is
with cli/agents.py (the registry) the only module besides langgraph.json that imports ``graphs``.
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import textwrap
import traceback
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from relaygraph.cli import runner
from relaygraph.cli import threads as cli_threads
from relaygraph.config.ids import InvalidThreadId, validate_thread_id
from relaygraph.config.settings import get_settings
from relaygraph.nodes.params import ParamError, RunParams, validate_params
from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape

GRAPHS: dict[str, str] = {
    "sequential": "relaygraph.graphs.sequential",
    "parallel": "relaygraph.graphs.parallel",
    "handoff": "relaygraph.graphs.handoff",
    "hierarchical": "relaygraph.graphs.hierarchical",
    "planned": "relaygraph.graphs.planned",
    "consensus": "relaygraph.graphs.consensus",
    "auction": "relaygraph.graphs.auction",
}

app = typer.Typer(add_completion=False, rich_markup_mode=None, no_args_is_help=True,
                  help="Orchestrate teams of AI agents as durable, traced LangGraph workflows.")
out = Console()
err = Console(stderr=True)


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


def graph_module(name: str) -> Any:
    if name not in GRAPHS:
        raise UsageError(f"Unknown graph {name!r}; available: {', '.join(sorted(GRAPHS))}.")
    return importlib.import_module(GRAPHS[name])


def _fail(exc: BaseException, debug: bool) -> None:
    if debug:
        traceback.print_exception(exc)
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)  # "[local]" stays text
    from langgraph.checkpoint.sqlalchemy import errors as db_errors
    from relaygraph.providers import ProviderError

    # Exit 2: the user's input or configuration is wrong (fixable without a code change).
    usage = (UsageError, InvalidThreadId, ValidationError, FileNotFoundError, ProviderError,
             ParamError, db_errors.UnsupportedDatabaseURL,
             db_errors.DatabaseUnavailableError, db_errors.ThreadBusyError, db_errors.MissingDriverError, db_errors.SchemaVersionError)
    raise typer.Exit(2 if isinstance(exc, usage) else 1)


#: Command parameters that name a thread: checked before the command body runs.
THREAD_PARAMETERS = ("thread_id", "new_thread")


def guarded(fn):
    """Run a command body, turning any exception into one clear line (unless --debug).

    Every thread id a command receives is validated first (:mod:`relaygraph.config.ids`), so
    a hostile id (``..``, a separator, a control character) exits 2 before any work.
    """
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            for name in THREAD_PARAMETERS:
                if kwargs.get(name) is not None:
                    validate_thread_id(kwargs[name])
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            err.print("interrupted; the run's last checkpoint is kept — continue it with `relaygraph resume`.")
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 - the CLI boundary
            _fail(exc, kwargs.get("debug", False))

    return wrapper


@app.command("graphs")
def list_graphs() -> None:
    """List the available workflows.

    \b
    Example:
      relaygraph graphs
    """
    for name in sorted(GRAPHS):
        module = importlib.import_module(GRAPHS[name])
        out.print(f"[bold]{name:<14}[/] {getattr(module, 'DESCRIPTION', '')}")


def load_input(task: str | None, input_file: Path | None, data: Path | None, default_task: str) -> dict[str, Any]:
    """The run input from --input (JSON), --task and --data, validated at the boundary."""
    from relaygraph.nodes.state import RunInput

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
    """--data FILE must be a CSV/Parquet file (a symlink is judged by what it points to)."""
    if data is None:
        return
    if not data.resolve().is_file():
        raise FileNotFoundError(f"Data file not found: {data}")
    if data.suffix.lower() not in (".csv", ".parquet", ".pq") and data.resolve().suffix.lower() not in (
        ".csv", ".parquet", ".pq"
    ):
        raise UsageError(f"Data file must be CSV or Parquet: {data}")


def stage_data(data: Path | None, thread: str, model: str | None) -> dict[str, Any]:
    """--data FILE as the run's ``dataset``, without widening what the tools may read.

    A file inside the data directory (directly or through a symlink) is used where it is. Any
    other file is copied into this run's own workspace folder, which only this thread's tools
    read — its folder is never made readable as a whole.
    """
    if data is None:
        return {}
    from relaygraph.tools import Workspace

    settings = get_settings(model=model)
    target = data.resolve()
    workspace = Workspace(settings.data_dir, settings.output_dir, thread)
    if target.is_relative_to(workspace.data_dir):
        return {"dataset": str(target.relative_to(workspace.data_dir))}
    staged = workspace.run_dir / data.name
    if staged.resolve() != target:
        shutil.copyfile(target, staged)
    return {"dataset": data.name}



class Progress:
    """Human progress lines, one per node update."""

    def __init__(self, console: Console, quiet: bool) -> None:
        self.console, self.quiet = console, quiet

    def __call__(self, node: str, update: dict[str, Any]) -> None:
        if self.quiet:
            return
        for item in update.get("progress") or []:
            mark = "[green]✓[/]" if item.get("status") == "completed" else "[red]✗[/]"
            detail = textwrap.shorten(str(item.get("detail") or ""), width=110, placeholder=" …")
            self.console.print(f"{mark} [bold]{escape(str(item['node']))}[/] ({item['duration_s']:.2f}s) "
                               f"{escape(detail)}", highlight=False, soft_wrap=True)
        for error in update.get("errors") or []:
            self.console.print(f"[red]✗ {escape(str(error.get('node')))}[/]: {escape(str(error.get('reason')))}",
                               highlight=False, soft_wrap=True)
        if "result" in update:
            self.console.print(f"[green]✓[/] [bold]{node}[/]", highlight=False)


def print_outcome(outcome: runner.RunOutcome, as_json: bool) -> None:
    if as_json:
        payload = {"thread_id": outcome.thread_id, **outcome.values}
        if outcome.interrupts:
            payload["interrupts"] = outcome.interrupts
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
        return
    if outcome.waiting:
        thread = outcome.thread_id
        for interrupt in outcome.interrupts:
            value = interrupt["value"] if isinstance(interrupt["value"], dict) else {"question": interrupt["value"]}
            where = f" before node [bold]{escape(str(value['node']))}[/]" if value.get("node") else ""
            out.print(f"\n[yellow]Waiting for approval[/]{where} on thread [bold]{escape(thread)}[/].",
                      highlight=False)
            if value.get("question"):
                out.print(f"  {escape(str(value['question']))}", highlight=False)
            if value.get("task"):
                out.print(f"  Task: {escape(textwrap.shorten(str(value['task']), 200, placeholder=' …'))}",
                          highlight=False)
        out.print(f"Approve:  relaygraph resume {thread} --approve [--comment TEXT]\n"
                  f"Reject:   relaygraph resume {thread} --reject --comment TEXT", highlight=False, markup=False)
        return
    result = outcome.values.get("result") or {}
    out.print(f"\n[bold]Result[/] ({result.get('status', outcome.values.get('status', '?'))}) — "
              f"thread [bold]{outcome.thread_id}[/] — model: {result.get('provider', '?')}", highlight=False)
    report = (result.get("artifacts") or {}).get("report")
    if report and Path(report).is_file():
        out.print(Markdown(Path(report).read_text(encoding="utf-8")))
        out.print(f"\nReport: {report}", highlight=False)
    elif result.get("answer"):
        out.print(str(result["answer"]), highlight=False)


def finish_provider(settings_model: str | None) -> None:
    """Stop the local model server if this process started one."""
    if (settings_model or get_settings().provider) == "local":
        try:
            from relaygraph.providers.local_llm import shutdown_shared_server
        except ImportError:
            return
        shutdown_shared_server()


@app.command("run")
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
    from relaygraph.config.checkpointing import open_checkpointer
    from relaygraph.providers import check_provider, provider_label

    module = graph_module(graph_name)
    check_data_file(data)
    settings = get_settings(model=model)
    check_provider(settings)  # unknown or unconfigured provider: fail before any work
    graph_input = load_input(task, input_file, data, getattr(module, "DEFAULT_TASK", "Analyse the dataset."))
    thread = thread_id or runner.new_thread_id()
    schema = getattr(module, "PARAMS", RunParams)
    validate_params(schema, cli_threads.parse_params(params))  # before the data file is staged
    if thread_id is not None:  # a used thread is continued with resume, never silently re-fed
        from relaygraph.config.checkpointing import open_checkpointer as open_saver

        with open_saver(checkpoint_db) as saver:
            existing = runner.describe_thread(saver, thread_id)
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
    from relaygraph.config.checkpointing import open_checkpointer

    start_tracing(trace, checkpoint_db)
    try:
        with open_checkpointer(checkpoint_db) as saver:
            graph_name = runner.thread_graph_name(saver, thread_id)
            if graph_name is None:
                raise UsageError(f"No run found on thread {thread_id!r} in this checkpoint database.")
            module = graph_module(graph_name)
            graph = runner.compile_graph(module.build_graph(), saver, graph_name)
            config = cli_threads.restore_run_options(saver, runner.run_config(thread_id, graph_name, {"model": model}))
            if runner.thread_status(graph, config) == "finished":
                raise UsageError(f"Thread {thread_id!r} has already finished; nothing to resume.")
            graph_input = cli_threads.resume_input(graph, config, approve, reject, comment)
            outcome = runner.execute(graph, graph_input, config, Progress(err if as_json else out, as_json))
    finally:
        finish_provider(model)
        finish_tracing(trace, thread_id, err if as_json else out)
    print_outcome(outcome, as_json)


# --- tracing (runtime/telemetry.py) -------------------------------------------------------


def start_tracing(trace: bool, checkpoint_db: str | None) -> None:
    """Tracing as the OTEL_* environment says, or on with --trace; spans are stored in the
    run's checkpoint database either way."""
    from relaygraph.observability import telemetry

    telemetry.configure(enabled=True if trace else None, store_url=checkpoint_db or get_settings().checkpoint_db)


def finish_tracing(trace: bool, thread_id: str, console: Console) -> None:
    """Export what the run produced; with --trace, print this run's span tree."""
    from relaygraph.observability import telemetry

    telemetry.flush()
    url = telemetry.store_url()
    if not trace or url is None:
        return
    from relaygraph.observability.trace_export import latest_trace, span_tree
    from relaygraph.observability.trace_store import load_spans

    spans = latest_trace(load_spans(url, thread_id))
    console.print(span_tree(spans, f"trace of thread {thread_id} — {len(spans)} spans "
                                   f"(again: relaygraph traces show {thread_id})"))


def _register_subapps() -> None:
    """Sub-command groups owned by other modules (persistence, local model, ...)."""
    for module_name, attr, name in (("relaygraph.cli.db", "db_app", "db"), ("relaygraph.cli.model", "model_app", "model"),
                                     ("relaygraph.cli.traces", "traces_app", "traces"),
                                     ("relaygraph.cli.plan", "plan_app", "plan"),
                                     ("relaygraph.cli.agents", "agents_app", "agents"),
                                     ("relaygraph.cli.experience", "experience_app", "experience")):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        app.add_typer(getattr(module, attr), name=name)


_register_subapps()
cli_threads.register(app)  # history, fork


def main() -> None:
    app()


if __name__ == "__main__":
    main()
