"""``resume`` continues the run's trace (issue 10, §5): the resumed run's root span carries an
OpenTelemetry Link to the root span of the run it continues, stored with the spans and exported."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import REPO, cli_here
from relaygraph.cli.main import app
from relaygraph.config import stores
from relaygraph.config.checkpointing import open_checkpointer
from relaygraph.observability import trace_store, tracing
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
    """The killed process never exported its root span; the link comes from the checkpoint, and
    resume stores a stand-in for it."""
    url = f"sqlite:///{isolated_env['db']}"
    log = tmp_path / "agents.log"
    killed_ref = killed_run("cut", log, CRASH_AFTER_PUT_WRITES="1")
    done = cli_here(["resume", "cut", "--trace", "--json"], log, monkeypatch)
    assert done.exit_code == 0, done.output
    stored = load_spans(url, "cut")
    stand_in, resumed = roots(stored)  # the killed root, reconstructed on resume, and the resume's
    trace_id, span_id = killed_ref.split("-")
    assert (stand_in.trace_id, stand_in.span_id) == (trace_id, span_id)
    assert stand_in.attributes[tracing.RUN_OUTCOME] == "killed"
    assert resumed.links == [{"trace_id": trace_id, "span_id": span_id,
                              "attributes": {"relaygraph.link.type": "continues"}}]
    nodes = [s.name for s in stored if s.name.startswith("node ")]
    assert len(nodes) == len(set(nodes))  # no node stored twice (killed run and resume)


def killed_run(thread: str, log: Path, **crash: str) -> str:
    """Run ``sequential`` traced in a child that SIGKILLs itself as ``crash`` says; returns the
    killed run's root span reference, read from its checkpoints."""
    env = {**os.environ, "RELAYGRAPH_MODEL": "crashy", "CRASH_LOG": str(log), **crash}
    killed = subprocess.run([sys.executable, str(REPO / "tests" / "crash_runner.py"), "run", "sequential",
                             "--thread-id", thread, "--trace", "--json"], env=env, capture_output=True, text=True,
                            timeout=300, cwd=REPO, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    with open_checkpointer() as saver:
        head = saver.get_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": ""}})
        return str(head.metadata[tracing.ROOT_KEY])


def test_a_killed_runs_finished_nodes_are_stored_and_hang_under_a_stand_in_root_the_resume_links_to(
    tracing_off, isolated_env, tmp_path, monkeypatch
) -> None:
    """SIGKILL right after the first node's checkpoint (the 3rd: input, start, extract): extract's
    spans were stored at that commit, not left in the 5 s export batch; resume stores a stand-in
    for the killed root (its ids from the checkpoint) that they hang under and the resume links to."""
    url = f"sqlite:///{isolated_env['db']}"
    log = tmp_path / "agents.log"
    killed_ref = killed_run("k1", log, CRASH_AFTER_PUT="3")
    trace_id, span_id = killed_ref.split("-")
    assert log.read_text().splitlines() == ["start data extractor", "final data extractor"]
    before = load_spans(url, "k1")  # stored by the killed process itself, before it died
    (extract,) = [s for s in before if s.name == "node extract"]
    assert (extract.trace_id, extract.parent_span_id) == (trace_id, span_id)
    assert {"invoke_agent extract", "execute_tool profile_dataset"} <= {s.name for s in before}
    assert roots(before) == []  # the killed root was never ended, so never exported

    done = cli_here(["resume", "k1", "--trace", "--json"], log, monkeypatch)
    assert done.exit_code == 0, done.output
    stored = load_spans(url, "k1")
    stand_in, resumed = roots(stored)
    assert (stand_in.trace_id, stand_in.span_id) == (trace_id, span_id)
    assert stand_in.status_code == 2 and "reconstructed" in (stand_in.status_message or "")
    assert stand_in.attributes[tracing.RUN_OUTCOME] == "killed"
    assert stand_in.attributes[tracing.RECONSTRUCTED] is True
    assert stand_in.thread_id == "k1" and stand_in.name == "invoke_workflow sequential"
    assert stand_in.start_ns <= extract.start_ns and extract.end_ns <= stand_in.end_ns < resumed.start_ns
    assert resumed.links == [{"trace_id": trace_id, "span_id": span_id,
                              "attributes": {"relaygraph.link.type": "continues"}}]
    # Nothing duplicated: each node ran (and was stored) once, in the run that ran it.
    nodes = sorted((s.name, s.trace_id) for s in stored if s.name.startswith("node "))
    assert nodes == sorted([("node extract", trace_id)] + [
        (f"node {n}", resumed.trace_id) for n in ("clean", "analyze", "report", "finalize")])
    assert [s for s in stored if s.span_id == extract.span_id] == [extract]

    shown = cli.invoke(app, ["traces", "show", "k1"])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "root span reconstructed" in text and f"continues trace {trace_id}" in text
    # extract's node is drawn under the stand-in root (the tree's first branch), not as a root
    assert text.index("node extract") < text.index(f"continues trace {trace_id}")


def test_under_the_async_saver_a_nodes_spans_are_stored_at_its_step_checkpoint_off_the_event_loop(
    tracing_off, isolated_env
) -> None:
    """`langgraph dev`'s path: the async saver calls tracing's listener on the event loop, which
    hands the span-store write to a helper thread; by the time the next node runs, the first
    node's span is stored (no 5 s batch wait, no provider flush). Sync durability: the step's
    checkpoint is committed before the next step starts."""
    import asyncio

    from langgraph.graph import END, START
    from relaygraph.config.checkpointing import open_async_checkpointer
    from relaygraph.observability import instrument_langchain
    from typing_extensions import TypedDict

    url = f"sqlite:///{isolated_env['db']}"
    tracing.configure(enabled=True, store_url=url, exporters=[])
    seen: list[list[str]] = []

    class State(TypedDict, total=False):
        n: int

    def second(state: State) -> State:
        assert tracing._flusher is not None  # the first step's commit handed a flush to it
        tracing._flusher.submit(lambda: None).result()  # one worker, in order: that flush is done
        seen.append([s.name for s in load_spans(url, "async-1")])
        return {"n": 2}

    builder = instrument_langchain.TracedStateGraph(State)  # relaygraph traces its own graphs only
    builder.add_node("first", lambda state: {"n": 1})
    builder.add_node("second", second)
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    builder.add_edge("second", END)

    async def main() -> None:
        async with open_async_checkpointer(listeners=[instrument_langchain.checkpoint_listener]) as saver:
            graph = builder.compile(checkpointer=saver)
            await graph.ainvoke({"n": 0}, {"configurable": {"thread_id": "async-1"}}, durability="sync")

    asyncio.run(main())
    assert seen == [["node first"]]


def test_a_span_batch_stored_at_a_commit_is_one_insert_that_leaves_stored_spans_alone(
    any_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The span store writes at every checkpoint commit, so a batch is one INSERT statement that
    skips spans stored already: no read of the stored keys first, no settings read per batch
    (the light bench graph's tracing overhead went from 1.07x to 1.3x CPU with them). A batch
    sent again (a write retried after its COMMIT went through) still stores nothing twice."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("invoke_workflow t", attributes={"relaygraph.thread_id": "t"}):
        for name in "abcd":
            with tracer.start_as_current_span(f"node {name}"):
                pass
    *nodes, root = memory.get_finished_spans()

    exporter = trace_store.SpanStoreExporter(any_url)
    engine = trace_store.engine_for(any_url)  # migrated: what is left is the writes
    statements: list[str] = []

    def executed(conn: object, cursor: object, statement: str, *rest: object) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", executed)
    settings_reads: list[int] = []
    read_settings = stores.get_settings
    monkeypatch.setattr(stores, "get_settings", lambda **kw: settings_reads.append(1) or read_settings(**kw))
    try:
        for batch in (nodes[:3], nodes[2:] + [root], [root]):  # the second and third overlap
            before = len(statements)
            assert exporter.export(batch) == SpanExportResult.SUCCESS
            on_spans = [s for s in statements[before:] if "relaygraph_spans" in s]
            assert len(on_spans) == 1 and on_spans[0].lstrip().upper().startswith("INSERT"), on_spans
        assert settings_reads == []
        stored = load_spans(any_url, "t")
        assert sorted(s.name for s in stored) == sorted(["invoke_workflow t"] + [f"node {n}" for n in "abcd"])
    finally:
        sa.event.remove(engine, "before_cursor_execute", executed)
        trace_store.dispose_engines()
