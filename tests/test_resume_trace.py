"""``resume`` continues the run's trace (issue 10, §5): the resumed run's root span carries an
OpenTelemetry Link to the root span of the run it continues, stored with the spans and exported."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from conftest import REPO, cli_here
from relaygraph.cli.main import app
from relaygraph.config.checkpointing import open_checkpointer
from relaygraph.observability import tracing
from relaygraph.observability.trace_store import StoredSpan, load_spans
from typer.testing import CliRunner

cli = CliRunner()


def roots(spans: list[StoredSpan]) -> list[StoredSpan]:
    return sorted((s for s in spans if s.parent_span_id is None and s.name.startswith("invoke_workflow")),
                  key=lambda s: s.start_ns)


def test_resume_root_span_links_to_the_paused_runs_root(tracing_off, isolated_env) -> None:
    url = f"sqlite:///{isolated_env['db']}"
    paused = cli.invoke(app, ["run", "sequential", "--trace", "--thread-id", "tr", "--approve-before", "analyze"])
    assert paused.exit_code == 0, paused.output
    with open_checkpointer() as saver:  # the run's root is named in its checkpoints
        head = saver.get_tuple({"configurable": {"thread_id": "tr", "checkpoint_ns": ""}})
        first_ref = head.metadata[tracing.ROOT_KEY]
    resumed = cli.invoke(app, ["resume", "tr", "--approve", "--trace"])
    assert resumed.exit_code == 0, resumed.output
    assert "continues trace" in resumed.output  # the printed tree says so

    first, second = roots(load_spans(url, "tr"))
    assert f"{first.trace_id}-{first.span_id}" == first_ref
    assert first.links == []
    assert second.trace_id != first.trace_id
    assert second.links == [{"trace_id": first.trace_id, "span_id": first.span_id,
                             "attributes": {"relaygraph.link.type": "continues"}}]

    otlp = json.loads(cli.invoke(app, ["traces", "export", "tr", "--format", "otlp-json"]).stdout)
    by_id = {s["spanId"]: s for rs in otlp["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]}
    assert by_id[second.span_id]["links"] == [{
        "traceId": first.trace_id, "spanId": first.span_id,
        "attributes": [{"key": "relaygraph.link.type", "value": {"stringValue": "continues"}}]}]
    assert "links" not in by_id[first.span_id]


def test_each_resume_links_to_the_run_before_it(tracing_off, isolated_env) -> None:
    """Two gates: run → resume → resume; each root links to the root of the run before it."""
    url = f"sqlite:///{isolated_env['db']}"
    args = ["--approve-before", "clean", "--approve-before", "report"]
    assert cli.invoke(app, ["run", "sequential", "--trace", "--thread-id", "t2", *args]).exit_code == 0
    assert cli.invoke(app, ["resume", "t2", "--approve", "--trace"]).exit_code == 0
    assert cli.invoke(app, ["resume", "t2", "--approve", "--trace"]).exit_code == 0
    first, second, third = roots(load_spans(url, "t2"))
    assert [link["span_id"] for link in second.links] == [first.span_id]
    assert [link["span_id"] for link in third.links] == [second.span_id]
    assert [link["trace_id"] for link in third.links] == [second.trace_id]


def test_a_resume_after_a_kill_links_to_the_killed_runs_root_named_in_its_checkpoints(
    tracing_off, isolated_env, tmp_path, monkeypatch
) -> None:
    """The killed process never exported its root span; the link comes from the checkpoint."""
    url = f"sqlite:///{isolated_env['db']}"
    log = tmp_path / "agents.log"
    env = {**os.environ, "RELAYGRAPH_MODEL": "crashy", "CRASH_LOG": str(log), "CRASH_AFTER_PUT_WRITES": "1"}
    killed = subprocess.run([sys.executable, str(REPO / "tests" / "crash_runner.py"), "run", "sequential",
                             "--thread-id", "cut", "--trace", "--json"], env=env, capture_output=True, text=True,
                            timeout=300, cwd=REPO)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with open_checkpointer() as saver:
        head = saver.get_tuple({"configurable": {"thread_id": "cut", "checkpoint_ns": ""}})
        killed_ref = head.metadata[tracing.ROOT_KEY]
    done = cli_here(["resume", "cut", "--trace", "--json"], log, monkeypatch)
    assert done.exit_code == 0, done.output
    stored = load_spans(url, "cut")
    (resumed,) = roots(stored)  # only the resume's root was ever exported
    trace_id, span_id = killed_ref.split("-")
    assert resumed.links == [{"trace_id": trace_id, "span_id": span_id,
                              "attributes": {"relaygraph.link.type": "continues"}}]
    assert span_id not in {s.span_id for s in stored}
