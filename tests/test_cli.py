"""The relaygraph CLI: human and JSON output, and one clear line for every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from relaygraph.cli.main import app
from typer.testing import CliRunner

cli = CliRunner()


def test_graphs_lists_each_workflow_with_a_description() -> None:
    result = cli.invoke(app, ["graphs"])
    assert result.exit_code == 0
    assert "sequential" in result.stdout and "extract → clean → analyze → report" in result.stdout


def test_run_json_prints_the_final_state_with_result_and_steps(isolated_env) -> None:
    result = cli.invoke(app, ["run", "sequential", "--json", "--thread-id", "cli-json"])
    assert result.exit_code == 0, result.output
    state = json.loads(result.stdout)  # stdout is the JSON document alone
    assert state["thread_id"] == "cli-json"
    assert state["result"]["status"] == "completed"
    assert {"agent", "step", "thought", "tool", "arguments", "observation", "confidence"} <= set(state["steps"][0])
    assert Path(state["result"]["artifacts"]["report"]).is_file()


def test_run_shows_progress_and_the_report_for_humans() -> None:
    result = cli.invoke(app, ["run", "sequential", "--thread-id", "human"])
    assert result.exit_code == 0, result.output
    for node in ("extract", "clean", "analyze", "report"):
        assert f"✓ {node}" in result.stdout
    assert "Data report" in result.stdout and "no LLM was used" in result.stdout


def test_run_on_a_user_csv_uses_only_that_file(tmp_path) -> None:
    data = tmp_path / "mine" / "orders.csv"
    data.parent.mkdir()
    pd.DataFrame({"shop": ["a", "b", "a", "a"], "day": ["2025-01-01", "2025-01-02", "2025-02-01", "2025-03-01"],
                  "amount": [1.0, 2.0, 3.0, 4.0]}).to_csv(data, index=False)
    result = cli.invoke(app, ["run", "sequential", "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    state = json.loads(result.stdout)
    assert state["steps"][0]["arguments"]["dataset"] == "orders.csv"
    assert "4 rows" in state["answers"]["extract"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nope"], "Unknown graph 'nope'; available: "),
        (["run", "sequential", "--data", "/no/such.csv"], "Data file not found: /no/such.csv"),
        (["run", "sequential", "--model", "gpt-x"], "Unknown model provider 'gpt-x'"),
        (["run", "sequential", "--input", "BAD"], "Malformed input file"),
        (["run", "sequential", "--input", "MISSING"], "Input file not found"),
        (["run", "sequential", "--input", "EMPTY_TASK"], "Invalid input: task"),
        (["resume", "no-such-thread"], "No run found on thread 'no-such-thread'"),
        (["run", "sequential", "--checkpoint-db", "oracle://x/y"], "oracle"),
        (["run", "sequential", "--checkpoint-db", "postgresql://nobody@127.0.0.1:1/none"], "127.0.0.1:1"),
    ],
)
def test_bad_input_is_one_clear_line_with_exit_code_2(tmp_path, args, message) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "empty.json").write_text('{"task": ""}')
    subst = {"BAD": str(tmp_path / "bad.json"), "MISSING": str(tmp_path / "missing.json"),
             "EMPTY_TASK": str(tmp_path / "empty.json")}
    result = cli.invoke(app, [subst.get(a, a) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


def test_openai_provider_without_a_key_says_what_to_set(monkeypatch) -> None:
    result = cli.invoke(app, ["run", "sequential", "--model", "openai"])
    assert result.exit_code == 2
    assert "needs OPENAI_API_KEY" in result.stderr


def test_debug_shows_the_traceback() -> None:
    result = cli.invoke(app, ["run", "nope", "--debug"])
    assert result.exit_code == 2
    assert "Traceback" in result.stderr


def test_local_provider_that_cannot_run_here_says_what_to_install(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("RELAYGRAPH_LOCAL_MODEL_PATH", str(tmp_path / "missing.gguf"))
    result = cli.invoke(app, ["run", "sequential", "--model", "local"])
    assert result.exit_code == 2
    assert "Provider 'local' is unavailable" in result.stderr


def test_resume_prints_the_same_header_as_run(isolated_env) -> None:
    flat = lambda text: " ".join(text.split())  # rich wraps the header at the terminal width
    paused = cli.invoke(app, ["run", "sequential", "--thread-id", "hdr", "--approve-before", "report"])
    assert paused.exit_code == 0, paused.output
    assert flat(paused.stdout).startswith("sequential on thread hdr — model: offline (deterministic rule-based "
                                          "policy; no LLM was used) ✓ extract")
    resumed = cli.invoke(app, ["resume", "hdr", "--approve"])
    assert resumed.exit_code == 0, resumed.output
    # graph, thread, and the provider labelled as not an LLM, before any progress line
    assert flat(resumed.stdout).startswith("sequential on thread hdr (approved) — model: offline (deterministic "
                                           "rule-based policy; no LLM was used) ✓ "), resumed.stdout
