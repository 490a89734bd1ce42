"""Spans leaving the process: real OTLP/HTTP export, env-only configuration, the span store,
``relaygraph run --trace`` and ``relaygraph traces show/export`` (Jaeger legacy JSON, OTLP JSON)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any, Literal

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otlp_receiver import OtlpReceiver
from pydantic import BaseModel, ConfigDict, Field, model_validator
from relaygraph.cli import runner
from relaygraph.cli.main import app
from relaygraph.observability import tracing
from typer.testing import CliRunner

HEX32, HEX16 = r"^[0-9a-f]{32}$", r"^[0-9a-f]{16}$"


def run_sequential(thread: str) -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from relaygraph.graphs.sequential import DEFAULT_TASK, build_graph

    graph = runner.compile_graph(build_graph(), InMemorySaver(), "sequential")
    runner.execute(graph, {"task": DEFAULT_TASK}, runner.run_config(thread, "sequential"))


def test_the_real_otlp_http_exporter_delivers_the_same_span_tree_with_the_service_name(
    tracing_off, monkeypatch
) -> None:
    memory = InMemorySpanExporter()
    with OtlpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "relaygraph-under-test")
        monkeypatch.setenv("RELAYGRAPH_TRACE_STORE", "false")
        assert tracing.configure(processors=[SimpleSpanProcessor(memory)], force=True)  # env: OTLP on
        run_sequential("otlp-thread")
        assert tracing.flush()
    local = {(f"{s.context.span_id:016x}", f"{s.parent.span_id:016x}" if s.parent else None, s.name)
             for s in memory.get_finished_spans()}
    received = {(s.span_id, s.parent_span_id, s.name) for s in receiver.spans}
    assert received == local and len(receiver.spans) == len(local) > 20
    assert {s.service_name for s in receiver.spans} == {"relaygraph-under-test"}
    root = next(s for s in receiver.spans if s.parent_span_id is None)
    assert root.name == "invoke_workflow sequential"
    assert root.attributes["relaygraph.thread_id"] == "otlp-thread"
    assert root.attributes["openinference.span.kind"] == "CHAIN"
    kinds = {s.attributes.get("gen_ai.operation.name") for s in receiver.spans}
    assert {"invoke_workflow", "invoke_agent", "chat", "execute_tool"} <= kinds


# --- Jaeger UI's legacy JSON, as a schema ----------------------------------------------------


class JaegerTag(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str
    type: Literal["string", "bool", "int64", "float64", "binary"]
    value: Any

    @model_validator(mode="after")
    def _typed(self) -> JaegerTag:
        expected = {"string": str, "bool": bool, "int64": int, "float64": float, "binary": str}[self.type]
        assert isinstance(self.value, expected), f"{self.key}: {self.value!r} is not {self.type}"
        return self


class JaegerRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refType: Literal["CHILD_OF", "FOLLOWS_FROM"]  # noqa: N815 - Jaeger's field names
    traceID: str = Field(pattern=HEX32)  # noqa: N815
    spanID: str = Field(pattern=HEX16)  # noqa: N815


class JaegerLog(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timestamp: int
    fields: list[JaegerTag]


class JaegerSpan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    traceID: str = Field(pattern=HEX32)  # noqa: N815
    spanID: str = Field(pattern=HEX16)  # noqa: N815
    operationName: str  # noqa: N815
    references: list[JaegerRef]
    startTime: int  # noqa: N815 - microseconds since the epoch
    duration: int = Field(ge=0)  # microseconds
    tags: list[JaegerTag]
    logs: list[JaegerLog]
    processID: str  # noqa: N815
    warnings: list[str] | None = None
    flags: int = 0


class JaegerProcess(BaseModel):
    model_config = ConfigDict(extra="forbid")
    serviceName: str  # noqa: N815
    tags: list[JaegerTag]


class JaegerTrace(BaseModel):
    model_config = ConfigDict(extra="forbid")
    traceID: str = Field(pattern=HEX32)  # noqa: N815
    spans: list[JaegerSpan]
    processes: dict[str, JaegerProcess]
    warnings: list[str] | None = None


class JaegerFile(BaseModel):
    data: list[JaegerTrace]


def test_run_trace_prints_the_tree_and_traces_export_round_trips_through_jaeger_and_otlp_json(
    tracing_off, isolated_env
) -> None:
    from relaygraph.observability.trace_store import load_spans

    cli = CliRunner()
    thread, url = f"cli-{uuid.uuid4().hex[:6]}", f"sqlite:///{isolated_env['db']}"
    started_us = time.time_ns() // 1000
    # a thread takes one run, so two traces on it come from a run that pauses and its resume
    ran = cli.invoke(app, ["run", "sequential", "--trace", "--thread-id", thread, "--checkpoint-db", url,
                           "--approve-before", "report"])
    assert ran.exit_code == 0, ran.output
    assert "invoke_workflow sequential" in ran.output and "execute_tool detect_outliers" in ran.output
    again = cli.invoke(app, ["resume", thread, "--approve", "--trace", "--checkpoint-db", url])
    assert again.exit_code == 0, again.output
    assert "execute_tool write_report" in again.output
    stored = load_spans(url, thread)
    assert len({s.trace_id for s in stored}) == 2  # two invocations, two traces, one thread

    shown = cli.invoke(app, ["traces", "show", thread, "--checkpoint-db", url])
    assert shown.exit_code == 0 and shown.output.count("invoke_workflow sequential") == 2
    assert "node report" in shown.output

    exported = cli.invoke(app, ["traces", "export", thread, "--format", "jaeger", "--checkpoint-db", url])
    assert exported.exit_code == 0, exported.output
    jaeger = JaegerFile.model_validate(json.loads(exported.output))
    assert len(jaeger.data) == 2
    assert sum(len(t.spans) for t in jaeger.data) == len(stored)
    by_id = {(s.trace_id, s.span_id): s for s in stored}
    for trace in jaeger.data:
        ids = {s.spanID for s in trace.spans}
        parents = {s.spanID: [r for r in s.references if r.refType == "CHILD_OF"] for s in trace.spans}
        assert [s for s in trace.spans if not parents[s.spanID]][0].operationName == "invoke_workflow sequential"
        for span in trace.spans:
            assert span.processID in trace.processes and span.traceID == trace.traceID
            original = by_id[(trace.traceID, span.spanID)]
            assert span.startTime == original.start_ns // 1000 and started_us - 1 <= span.startTime
            assert [r.spanID for r in parents[span.spanID]] == (
                [original.parent_span_id] if original.parent_span_id else [])
            assert all(r.spanID in ids for r in parents[span.spanID])
            assert [(r.traceID, r.spanID) for r in span.references if r.refType == "FOLLOWS_FROM"] == [
                (link["trace_id"], link["span_id"]) for link in original.links]  # the resume's root
        assert {p.serviceName for p in trace.processes.values()} == {"relaygraph"}

    otlp = cli.invoke(app, ["traces", "export", thread, "--format", "otlp-json", "--checkpoint-db", url])
    body = json.loads(otlp.output)
    resource = body["resourceSpans"][0]
    assert {"key": "service.name", "value": {"stringValue": "relaygraph"}} in resource["resource"]["attributes"]
    otlp_spans = [s for rs in body["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    assert len(otlp_spans) == len(stored)
    assert {(s["traceId"], s["spanId"], s.get("parentSpanId")) for s in otlp_spans} == {
        (s.trace_id, s.span_id, s.parent_span_id) for s in stored}


def test_traces_show_for_an_unknown_thread_says_which_threads_have_traces(tracing_off, isolated_env) -> None:
    url = f"sqlite:///{isolated_env['db']}"
    shown = CliRunner().invoke(app, ["traces", "show", "no-such-thread", "--checkpoint-db", url])
    assert shown.exit_code == 2
    assert "No spans stored for thread 'no-such-thread'" in shown.output
    assert "--trace" in shown.output


@pytest.mark.parametrize("command", ["show", "export"])
def test_reading_traces_where_no_database_exists_says_so_and_creates_none(tracing_off, tmp_path, monkeypatch,
                                                                          command) -> None:
    """Read-only: ``traces show`` once left an empty ``relaygraph.db`` (and its lock file) in the
    folder it was run from."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RELAYGRAPH_CHECKPOINT_DB")  # the default: relaygraph.db here
    shown = CliRunner().invoke(app, ["traces", command, "t1"])
    assert shown.exit_code == 2
    lines = [line for line in shown.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "No spans stored for thread 't1': there is no database at relaygraph.db" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["zipkin", "otlp,bogus"])
def test_an_unsupported_exporter_name_is_an_error_that_names_the_choices(tracing_off, monkeypatch, value) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", value)
    with pytest.raises(tracing.TelemetryError, match="use otlp, console or none"):
        tracing.configure(force=True)


def test_langgraph_dev_runs_are_traced_from_the_environment_with_correct_parents(tmp_path) -> None:
    """A real `langgraph dev` server, configured only by OTEL_* variables, exporting over OTLP."""
    import urllib.request

    from conftest import running_langgraph_dev

    with OtlpReceiver() as receiver:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": "relaygraph-dev",
               "OTEL_BSP_SCHEDULE_DELAY": "100"}
        with running_langgraph_dev(tmp_path, env) as url:

            def post(path: str, payload: dict[str, Any]) -> dict[str, Any]:
                request = urllib.request.Request(url + path, data=json.dumps(payload).encode(),
                                                 headers={"Content-Type": "application/json"})
                return json.load(urllib.request.urlopen(request, timeout=120))

            thread = post("/threads", {})["thread_id"]
            post(f"/threads/{thread}/runs/wait", {"assistant_id": "sequential", "input": {"task": "Profile the dataset."}})
            deadline = time.monotonic() + 30
            while not any(s.parent_span_id is None for s in receiver.spans) and time.monotonic() < deadline:
                time.sleep(0.2)
    spans = {s.span_id: s for s in receiver.spans}
    roots = [s for s in spans.values() if s.parent_span_id is None]
    assert [r.name for r in roots] == ["invoke_workflow sequential"]
    assert roots[0].attributes["relaygraph.thread_id"] == thread
    assert {s.service_name for s in spans.values()} == {"relaygraph-dev"}
    for agent in ("extract", "clean", "analyze", "report"):  # async server, sync nodes in its thread pool
        span = next(s for s in spans.values() if s.name == f"invoke_agent {agent}")
        node = spans[span.parent_span_id]
        assert node.name == f"node {agent}" and node.parent_span_id == roots[0].span_id
        # the server persists through relaygraph's saver, which reports what it stores
        assert node.attributes["langgraph.checkpoint.id"] and node.attributes["langgraph.checkpoint.parent_id"]


def test_traces_show_and_export_work_in_a_fresh_process_with_an_otlp_endpoint_set(tmp_path) -> None:
    """With OTEL_EXPORTER_OTLP_ENDPOINT set, as the README suggests, a fresh `relaygraph traces
    show|export` process failed on an import cycle between tracing setup and the span store
    ("cannot import name 'SpanStoreExporter' from partially initialized module"). Import order
    is a per-process concern, hence a subprocess."""
    import os
    import subprocess
    import sys

    from opentelemetry.sdk.trace import TracerProvider
    from relaygraph.observability.trace_store import SpanStoreExporter

    url = f"sqlite:///{tmp_path / 'traces.db'}"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SpanStoreExporter(url)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("invoke_workflow demo", attributes={"relaygraph.thread_id": "th-1"}):
        with tracer.start_as_current_span("node first", attributes={"relaygraph.thread_id": "th-1"}):
            pass
    provider.shutdown()
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "RELAYGRAPH_CHECKPOINT_DB": url}
    runs = {}
    # The two ways a user starts relaygraph, one each: the installed console script, and python -m.
    console_script = str(Path(sys.executable).with_name("relaygraph"))
    for entry, command in (([console_script], ["show", "th-1"]),
                           ([sys.executable, "-m", "relaygraph"], ["export", "th-1", "--format", "jaeger"])):
        runs[command[0]] = proc = subprocess.run([*entry, "traces", *command],
                                                 env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    assert "invoke_workflow demo" in runs["show"].stdout and "node first" in runs["show"].stdout
    jaeger = JaegerFile.model_validate(json.loads(runs["export"].stdout))
    assert sorted(s.operationName for s in jaeger.data[0].spans) == ["invoke_workflow demo", "node first"]
