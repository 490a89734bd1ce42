"""What every command shares: the consoles, the one-line error path, progress and outcome output.

Commands live in :mod:`relaygraph.cli.main` (run, resume), :mod:`relaygraph.cli.threads`
(history, fork), :mod:`relaygraph.cli.traces`, :mod:`relaygraph.cli.db` and
:mod:`relaygraph.cli.model`; they all import from here, and ``main`` imports them to build the
command table, so no command module needs ``main``.
"""

from __future__ import annotations

import functools
import json
import sys
import textwrap
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from langgraph.checkpoint.sqlalchemy import errors as db_errors
from pydantic import ValidationError
from relaygraph.cli.registry import UnknownGraph
from relaygraph.cli.runner import RunOutcome
from relaygraph.config.ids import InvalidThreadId, validate_thread_id
from relaygraph.config.settings import get_settings
from relaygraph.nodes.params import ParamError
from relaygraph.providers import ProviderError
from relaygraph.providers.local_llm import shutdown_shared_server
from relaygraph.tools import DataFileError, PathNotAllowed
from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape

out = Console()
err = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


#: Exit 2: the user's input or configuration is wrong (fixable without a code change).
USAGE_ERRORS: tuple[type[BaseException], ...] = (
    UsageError, UnknownGraph, InvalidThreadId, ValidationError, FileNotFoundError, ProviderError, ParamError,
    DataFileError, PathNotAllowed,
    db_errors.UnsupportedDatabaseURL, db_errors.DatabaseUnavailableError, db_errors.ThreadBusyError,
    db_errors.MissingDriverError,
    db_errors.SchemaVersionError,
)

#: Command parameters that name a thread: checked before the command body runs.
THREAD_PARAMETERS = ("thread_id", "new_thread")


#: Exit 75 (EX_TEMPFAIL): the checkpoint database stayed away; resume the run once it is back.
EXIT_TEMPFAIL = 75


def fail(exc: BaseException, debug: bool) -> None:
    """Report ``exc`` as one line on stderr (the traceback too with --debug) and exit 75, 2 or 1."""
    if debug:
        traceback.print_exception(exc)
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)  # "[local]" stays text
    if isinstance(exc, db_errors.ConnectionLostError):
        raise typer.Exit(EXIT_TEMPFAIL)
    raise typer.Exit(2 if isinstance(exc, USAGE_ERRORS) else 1)


def guarded(fn: F) -> F:
    """Run a command body, turning any exception into one clear line (unless --debug).

    Every thread id a command receives is validated first (:mod:`relaygraph.config.ids`), so
    a hostile id (``..``, a separator, a control character) exits 2 before any work.
    """

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
            fail(exc, kwargs.get("debug", False))

    return wrapper  # type: ignore[return-value]


class Progress:
    """Human progress lines, one per node update."""

    def __init__(self, console: Console, quiet: bool) -> None:
        self.console, self.quiet = console, quiet

    def __call__(self, node: str, update: dict[str, Any]) -> None:
        if self.quiet:
            return
        said: dict[str, str] = {}  # node -> its progress line's full detail, in this update
        for item in update.get("progress") or []:
            mark = {"completed": "[green]✓[/]", "partial": "[yellow]![/]",
                    "rejected": "[yellow]■[/]"}.get(item.get("status"), "[red]✗[/]")
            said[str(item.get("node"))] = " ".join(str(item.get("detail") or "").split())
            detail = textwrap.shorten(str(item.get("detail") or ""), width=110, placeholder=" …")
            self.console.print(f"{mark} [bold]{escape(str(item['node']))}[/] ({item['duration_s']:.2f}s) "
                               f"{escape(detail)}", highlight=False, soft_wrap=True)
        for error in update.get("errors") or []:
            if error.get("outcome") == "rejected":
                continue  # its progress line (■) already says it was rejected and why
            reason = " ".join(str(error.get("reason") or "").split())
            if reason and reason in said.get(str(error.get("node")), ""):
                continue  # its progress line (! or ✗) just said the same thing: one line, not two
            mark = "[yellow]![/]" if error.get("outcome") == "partial" else "[red]✗[/]"
            self.console.print(f"{mark} [bold]{escape(str(error.get('node')))}[/]: {escape(str(error.get('reason')))}",
                               highlight=False, soft_wrap=True)
        for line in plan_lines(update):
            self.console.print(line, highlight=False, soft_wrap=True)
        decision = update.get("decision")
        if isinstance(decision, dict):  # a voter whose agent completed (✓) but whose ballot was faulty
            for voter, whys in sorted((decision.get("suspects") or {}).items()):
                why = textwrap.shorten("; ".join(map(str, whys)), width=110, placeholder=" …")
                self.console.print(f"[red]⚑[/] [bold]{escape(str(voter))}[/] flagged as faulty: {escape(why)}",
                                   highlight=False, soft_wrap=True)
        if "result" in update:  # the result node ran; the mark is the run's outcome, not the node's
            status = str((update["result"] or {}).get("status") or "")
            mark = {"completed": "[green]✓[/]", "partial": "[yellow]![/]", "rejected": "[yellow]■[/]",
                    "stopped": "[yellow]■[/]"}.get(status, "[red]✗[/]")
            self.console.print(f"{mark} [bold]{escape(node)}[/] ({escape(status)})", highlight=False)


def _short(text: Any, width: int = 110) -> str:
    return escape(textwrap.shorten(" ".join(str(text or "").split()), width=width, placeholder=" …"))


def plan_lines(update: dict[str, Any]) -> list[str]:
    """What a planned run does about failures, as it happens (the user sees it, not only
    ``result.replanning``): a task's failure and its class, the policy applied (retry, replan,
    stop), the new plan and whether it was accepted, and each critique round."""
    lines: list[str] = []
    for note in update.get("plan_notes") or []:  # a section the learned plan leaves out, as the plan is made
        lines.append(f"[yellow]![/] plan: {escape(str(note))}")
    pending = update.get("pending")
    if isinstance(pending, dict) and pending.get("action") == "replan":  # recover's policy, before the replan
        lines.append(f"[cyan]→[/] [bold]{escape(str(pending.get('task')))}[/] "
                     f"({escape(str(pending.get('failure_class')))}): {_short(pending.get('policy'))}")
    elif isinstance(pending, dict) and pending.get("failure_class") and "action" not in pending:
        failed_here = any(p.get("status") not in ("completed", "partial", "rejected")
                          for p in update.get("progress") or [])
        injected = ", injected" if pending.get("injected") else ""
        lines.append(f"[red]✗[/] [bold]{escape(str(pending.get('task')))}[/] failed "
                     f"({escape(str(pending['failure_class']))}{injected})"
                     + ("" if failed_here else f": {_short(pending.get('error'))}"))
    for entry in update.get("replans") or []:
        task, cls = escape(str(entry.get("task"))), escape(str(entry.get("failure_class")))
        if "accepted" in entry:  # the plan node's record: the new plan
            confidence = entry.get("new_confidence")
            if entry["accepted"]:
                methods = ", ".join(map(str, entry.get("new_methods") or []))
                kept = f"; kept {', '.join(map(str, entry['kept']))}" if entry.get("kept") else ""
                lines.append(f"[cyan]→[/] new plan after [bold]{task}[/] ({cls}): confidence {confidence:.3f}, "
                             f"accepted — {escape(methods)}{escape(kept)}")
            else:
                lines.append(f"[red]✗[/] no new plan after [bold]{task}[/] ({cls}): {_short(entry.get('why'), 200)}")
        elif entry.get("action") == "retry":
            lines.append(f"[yellow]↻[/] [bold]{task}[/] ({cls}): {_short(entry.get('policy'))}")
        elif entry.get("action") == "stop":
            lines.append(f"[red]■[/] [bold]{task}[/] ({cls}): {_short(entry.get('policy'))}, run stops")
    rounds = update.get("critique")
    if isinstance(rounds, list) and rounds and isinstance(rounds[-1], dict):
        last = rounds[-1]
        found = len(last.get("discrepancies") or [])
        if last.get("failed"):
            lines.append(f"[red]✗[/] critique round {last.get('round')}: gave up ({_short(last['failed'])})")
        elif not found:
            lines.append(f"[green]✓[/] critique round {last.get('round')}: every figure reproduced")
        else:
            fixed = (f", report revised ({last.get('notes_dropped', 0)} notes dropped)" if last.get("revised")
                     else ", not revised (last round)")
            figures = ", ".join(str(d.get("figure")) for d in last["discrepancies"][:5])
            lines.append(f"[yellow]![/] critique round {last.get('round')}: {found} discrepancies found "
                         f"({_short(figures, 60)}){fixed}")
    return lines


def print_outcome(outcome: RunOutcome, as_json: bool) -> None:
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
        shutdown_shared_server()
