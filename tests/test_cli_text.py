"""The CLI a person reads (issue 10 §5): help that shows flags as flags with an example per
command, errors that keep their brackets, progress cut at words, a readable approval prompt."""

from __future__ import annotations

import pytest
from relaygraph.cli.main import Progress, app, print_outcome
from relaygraph.cli.runner import RunOutcome
from rich.console import Console
from typer.testing import CliRunner

cli = CliRunner()


@pytest.mark.parametrize("command", ["run", "resume", "history", "fork", "threads", "graphs"])
def test_help_shows_flags_as_flags_and_gives_an_example(command: str) -> None:
    result = cli.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "Example" in result.output and f"relaygraph {command}" in result.output


def test_an_error_message_keeps_its_square_brackets(isolated_env, monkeypatch) -> None:
    """rich used to swallow ``[local]`` in the install hint as markup."""
    result = cli.invoke(app, ["run", "sequential", "--input", "/nonexistent/[local].json"])
    assert result.exit_code == 2
    assert "[local].json" in result.output


def test_progress_lines_end_at_a_word_and_keep_markup_as_text() -> None:
    console = Console(record=True, width=400)
    detail = ("The cleaned file keeps 2,995 of 3,048 rows [dropped: 48 duplicate rows, 5 negative "
              "quantities] and normalises 150 region spellings so every breakdown adds up")
    Progress(console, quiet=False)("clean", {"progress": [
        {"node": "clean", "status": "completed", "duration_s": 1.5, "detail": detail}]})
    line = console.export_text().strip()
    assert line.endswith("…") and "[dropped: 48" in line
    shown = line.split("(1.50s) ", 1)[1].removesuffix(" …")
    assert detail.startswith(shown) and detail[len(shown)] == " "  # cut between words


def test_the_approval_prompt_reads_as_sentences_not_a_dict(capsys) -> None:
    outcome = RunOutcome(thread_id="q3", values={}, interrupts=[{"id": "i1", "value": {
        "type": "approval", "node": "report", "question": "Approve running node 'report'?",
        "task": "Write the report.", "resume_with": {"approved": "true | false"}}}])
    print_outcome(outcome, as_json=False)
    text = capsys.readouterr().out
    assert "Waiting for approval before node report on thread q3." in text
    assert "Approve running node 'report'?" in text and "Task: Write the report." in text
    assert "relaygraph resume q3 --approve" in text and "relaygraph resume q3 --reject" in text
    assert "{'type'" not in text and "resume_with" not in text


def test_a_partial_step_is_one_console_line_not_its_progress_and_its_error_saying_the_same() -> None:
    """An agent's partial outcome is both a progress entry and an errors entry with the same
    reason (nodes/agent.py); the console says it once. A different error still gets its own line."""
    console = Console(record=True, width=400)
    why = "partial: aggregate: ValueError: No category column found; pass group_by with a column name."
    Progress(console, quiet=False)("analyze", {
        "progress": [{"node": "analyze", "status": "partial", "duration_s": 0.5, "detail": why}],
        "errors": [{"node": "analyze", "agent": "analyst", "outcome": "partial", "reason": why},
                   {"node": "analyze", "agent": "analyst", "outcome": "partial", "reason": "something else"}]})
    lines = console.export_text().strip().splitlines()
    assert sum("No category column found" in ln for ln in lines) == 1, lines
    assert lines[0].startswith("! analyze (0.50s) partial: aggregate") and lines[1] == "! analyze: something else"
