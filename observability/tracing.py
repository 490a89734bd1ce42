"""Tracing setup: one TracerProvider per process, from the settings, configured when first needed.

    configure() ─► TracerProvider(Resource: service.name/.version, telemetry.sdk.*, OTEL_RESOURCE_ATTRIBUTES)
                    ├─► BatchSpanProcessor ─► OTLP / console   (OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_*)
                    └─► BatchSpanProcessor ─► span store       (the checkpoint database; trace_store.py)
                          ▲ flushed at each checkpoint commit  (checkpoint_committed(), from the saver's listener)

Importing relaygraph configures nothing. The instrumentation (``instrument_langchain``,
``instrument_smolagents``) calls :func:`ensure_configured` when a run starts, which reads the
settings once per process and turns tracing on only when they ask for it (an exporter or an
OTLP endpoint) — so ``langgraph dev`` and a plain ``graph.invoke`` are traced from the
environment with no code, and the CLI's ``--trace`` calls :func:`configure` itself.

Every OTEL_* variable relaygraph reads is a field of the one settings model
(:class:`relaygraph.config.settings.Settings`); the OTLP exporters read their own
endpoint/header/timeout variables, as the OpenTelemetry spec defines them.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from langgraph.checkpoint.sqlalchemy import RetryPolicy
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import (
    Link,
    Span,
    SpanContext,
    Status,
    StatusCode,
    TraceFlags,
    format_span_id,
    format_trace_id,
)
from relaygraph.config.settings import ModelPrice, Settings, get_settings
from relaygraph.observability.semconv import CONTENT_LIMIT, OI_KIND, OP, THREAD_ID, TRACER_NAME
from relaygraph.observability.trace_store import (
    SpanStoreExporter,
    StoredSpan,
    store_stand_in,
    stored_span_bounds,
)
from relaygraph.observability.usage import DEFAULT_PRICES, price_table

# --- a run's root span, named before it starts (so resume can link to it) ---------------------
#
# A run's root span context is decided by the runner before the run and kept in the run's
# config metadata, which LangGraph copies into every checkpoint the run writes. A later run on
# the thread (resume, a failed run's retry, a fork) finds it in the thread's latest checkpoint and
# starts its own root span with an OpenTelemetry Link to it — so the continuation is tied to the
# original trace even when the original process was killed and never exported its root span.

#: Config/checkpoint metadata: this run's root span, ``"<trace id hex>-<span id hex>"``.
ROOT_KEY = "relaygraph_trace_root"
#: Config metadata: the root span of the run this run continues (linked from this run's root).
LINK_KEY = "relaygraph_trace_link"
#: Attribute on that link: what the earlier run is to this one.
LINK_TYPE = "relaygraph.link.type"

_preset_root: ContextVar[tuple[int, int] | None] = ContextVar("relaygraph_preset_root", default=None)


class _RootIds(RandomIdGenerator):
    """Random ids, except for a root span started under :func:`preset_root`."""

    def generate_trace_id(self) -> int:
        preset = _preset_root.get()
        return preset[0] if preset else super().generate_trace_id()

    def generate_span_id(self) -> int:
        preset = _preset_root.get()
        if preset:
            _preset_root.set(None)  # the root's own id only; its children get random ones
            return preset[1]
        return super().generate_span_id()


def new_root_ref() -> str:
    """A fresh root span reference for the next run (``trace-span`` hex)."""
    ids = RandomIdGenerator()
    return f"{format_trace_id(ids.generate_trace_id())}-{format_span_id(ids.generate_span_id())}"


def parse_ref(value: Any) -> tuple[int, int] | None:
    """``"trace-span"`` hex → ids; None for anything else (metadata from elsewhere)."""
    if not isinstance(value, str):
        return None
    trace_hex, _, span_hex = value.partition("-")
    try:
        trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    except ValueError:
        return None
    return (trace_id, span_id) if len(trace_hex) == 32 and len(span_hex) == 16 and trace_id and span_id else None


@contextmanager
def preset_root(ref: Any) -> Iterator[None]:
    """Start the root span opened inside this block with the ids of ``ref`` (if it parses)."""
    token = _preset_root.set(parse_ref(ref))
    try:
        yield
    finally:
        _preset_root.reset(token)


def link_to(ref: Any, link_type: str) -> list[Link]:
    """An OpenTelemetry Link to the root span ``ref`` names (none when it does not parse)."""
    ids = parse_ref(ref)
    if ids is None:
        return []
    context = SpanContext(ids[0], ids[1], is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return [Link(context, {LINK_TYPE: link_type})]


class TelemetryError(RuntimeError):
    """Tracing cannot be configured as asked; the message says how to fix it."""


def exporter_names(settings: Settings) -> list[str]:
    """OTEL_TRACES_EXPORTER as a list; an OTLP endpoint alone implies ``otlp`` (the spec default)."""
    if settings.otel_traces_exporter:
        return [n.strip().lower() for n in settings.otel_traces_exporter.split(",") if n.strip()]
    endpoint = settings.otel_exporter_otlp_endpoint or settings.otel_exporter_otlp_traces_endpoint
    return ["otlp"] if endpoint else []


def tracing_requested(settings: Settings) -> bool:
    """Do the settings ask for tracing? (It is off unless something asks.)"""
    return not settings.otel_sdk_disabled and any(n != "none" for n in exporter_names(settings))


def span_exporters(settings: Settings) -> list[SpanExporter]:
    """The exporters OTEL_TRACES_EXPORTER names (``otlp``, ``console``, ``none``)."""
    exporters: list[SpanExporter] = []
    for name in exporter_names(settings):
        if name == "none":
            continue
        if name == "console":
            exporters.append(ConsoleSpanExporter())
        elif name == "otlp":
            exporters.append(_otlp_exporter(settings))
        else:
            raise TelemetryError(f"Unsupported OTEL_TRACES_EXPORTER {name!r}: use otlp, console or none.")
    return exporters


def _otlp_exporter(settings: Settings) -> SpanExporter:
    protocol = (settings.otel_exporter_otlp_traces_protocol or settings.otel_exporter_otlp_protocol)
    protocol = protocol.strip().lower()
    if protocol == "http/protobuf":
        return OTLPSpanExporter()  # reads the endpoint/headers variables itself
    if protocol != "grpc":
        raise TelemetryError(f"Unsupported OTEL_EXPORTER_OTLP_PROTOCOL {protocol!r}: use http/protobuf or grpc.")
    try:
        # Optional dependency (grpcio is large): imported only when asked for.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter as GrpcExporter,
        )
    except ImportError:
        raise TelemetryError(
            "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs `pip install "
            "opentelemetry-exporter-otlp-proto-grpc`; or use http/protobuf (Jaeger: port 4318)."
        ) from None
    return GrpcExporter()


def resource(settings: Settings) -> Resource:
    """``service.name``/``service.version`` merged over the SDK's defaults (``telemetry.sdk.*``)
    and OTEL_RESOURCE_ATTRIBUTES (``Resource.create`` does the merging)."""
    try:
        service_version = version("relaygraph")
    except PackageNotFoundError:  # running from a checkout that was never installed
        service_version = "unknown"
    return Resource.create({"service.name": settings.otel_service_name, "service.version": service_version})


# --- the process's tracing state ------------------------------------------------------------


@dataclass
class _State:
    provider: TracerProvider | None = None
    tracer: trace.Tracer | None = None
    key: tuple[Any, ...] | None = None
    trace_content: bool = False
    prices: dict[str, ModelPrice] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    store_url: str | None = None
    store_processor: BatchSpanProcessor | None = None  # the span store's (flushed at checkpoint commits)
    generation: int = 0  # bumped whenever the provider changes (instrumentation drops stale runs)
    env_read: bool = False


_state = _State()
_lock = threading.RLock()


def enabled() -> bool:
    """Is tracing on? (Instrumentation costs nothing measurable when it is off.)"""
    return _state.tracer is not None


def tracer() -> trace.Tracer:
    """The relaygraph tracer (a no-op tracer while tracing is off)."""
    return _state.tracer or trace.NoOpTracer()


def trace_content() -> bool:
    """Record prompts, messages, tool arguments and results? (RELAYGRAPH_TRACE_CONTENT)"""
    return _state.trace_content


def prices() -> dict[str, ModelPrice]:
    """The price table span rollups use (the settings' at configure time)."""
    return _state.prices


def generation() -> int:
    return _state.generation


def store_url() -> str | None:
    """Where spans are persisted (None when not stored)."""
    return _state.store_url


def configure(
    *,
    enabled: bool | None = None,
    store_url: str | None = None,
    processors: Sequence[SpanProcessor] = (),
    exporters: Sequence[SpanExporter] | None = None,
    trace_content: bool | None = None,
    force: bool = False,
    settings: Settings | None = None,
) -> bool:
    """Set tracing up once per process; calling it again with the same arguments does nothing.

    ``enabled``: None follows the settings (OTEL_TRACES_EXPORTER / OTEL_EXPORTER_OTLP_ENDPOINT),
    True turns tracing on even without an exporter (spans still go to the span store and to
    ``processors``), False turns it off. ``store_url``: the checkpoint database to persist spans
    in (default: settings.checkpoint_db; RELAYGRAPH_TRACE_STORE=false disables). ``exporters``
    replaces the settings' exporters (each behind a BatchSpanProcessor); ``processors`` are
    added as given (tests pass a SimpleSpanProcessor over an in-memory exporter). Returns whether
    tracing is on.
    """
    with _lock:
        _state.env_read = True
        settings = settings or get_settings()
        on = tracing_requested(settings) if enabled is None else enabled
        on = on and not settings.otel_sdk_disabled
        content = settings.trace_content if trace_content is None else trace_content
        url = (store_url or settings.checkpoint_db) if settings.trace_store else None
        key = (on, url, tuple(map(id, processors)), None if exporters is None else tuple(map(id, exporters)),
               content, settings.model_dump_json())
        if key == _state.key and not force:
            return _state.tracer is not None
        chosen = (span_exporters(settings) if exporters is None else list(exporters)) if on else []  # may raise
        _shutdown_provider()
        _state.key, _state.trace_content, _state.store_url = key, content, url if on else None
        _state.prices = price_table(settings)
        if not on:
            return False
        provider = TracerProvider(resource=resource(settings), id_generator=_RootIds())
        for exporter in chosen:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        if url:
            retry = RetryPolicy(reconnect_within_s=settings.db_reconnect_s)
            _state.store_processor = BatchSpanProcessor(SpanStoreExporter(url, retry=retry))
            provider.add_span_processor(_state.store_processor)
        for processor in processors:
            provider.add_span_processor(processor)
        _state.provider = provider
        _state.tracer = provider.get_tracer(TRACER_NAME)
        if not isinstance(trace.get_tracer_provider(), TracerProvider):
            trace.set_tracer_provider(provider)  # first one wins: other instrumentation shares it
        return True


def configure_from_env() -> bool:
    """Turn tracing on when the settings ask for it; otherwise leave it as it is."""
    settings = get_settings()
    if not tracing_requested(settings) or enabled():
        _state.env_read = True
        return enabled()
    return configure(settings=settings)


def ensure_configured() -> None:
    """Configure from the settings the first time a run needs tracing (once per process).

    Why lazily: importing a graph must not configure tracing; a run is where the
    environment (``langgraph dev``'s ``env`` block, a notebook's variables) is final.
    """
    if not _state.env_read:
        with _lock:
            if not _state.env_read:
                configure_from_env()


def flush(timeout_millis: int = 10_000) -> bool:
    """Export everything finished so far (before printing a trace or exiting)."""
    provider = _state.provider
    return provider.force_flush(timeout_millis) if provider else True


_flusher: ThreadPoolExecutor | None = None


def checkpoint_committed() -> None:
    """A checkpoint or a task's writes were just committed: store the spans that ended so far.

    Why: the span store's batch processor exports every 5 s, so a process killed (SIGKILL, OOM)
    lost the spans of nodes whose checkpoints were saved. Flushing at each commit makes stored
    spans exactly as durable as the checkpoints: one span-store transaction per commit (nothing
    when no span ended since the last), never one per span. The OTLP exporters keep their own
    batching. Called from the saver's listener (:func:`instrument_langchain.checkpoint_listener`)
    on the writing thread after its commit; on an event loop (the async saver under
    ``langgraph dev``) the write is handed to a helper thread instead of blocking the loop.
    Free while tracing or the span store is off.
    """
    processor = _state.store_processor
    if processor is None:
        return
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        processor.force_flush()  # the writing thread, right after its commit
        return
    global _flusher
    with _lock:
        if _flusher is None:
            _flusher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relaygraph-span-store")
    _flusher.submit(processor.force_flush)


#: Attribute on a stand-in root span: how the run it stands for ended.
RUN_OUTCOME = "relaygraph.run.outcome"
#: Attribute on a span written after the fact from the checkpoints, not recorded as it ran.
RECONSTRUCTED = "relaygraph.span.reconstructed"


def store_killed_root(ref: Any, *, thread_id: str, graph: str, first_ns: int, last_ns: int) -> StoredSpan | None:
    """Store a stand-in for the root span ``ref`` names when the span store lacks it.

    Why: a run's root span is exported when the run ends; a killed process never ends it, so the
    killed run's stored node spans had no parent and the next run's link dangled. The stand-in
    has the root's own ids (named in the run's checkpoints), spans from the run's first to its
    last checkpoint (or its last stored span, if later), status ERROR and
    ``relaygraph.run.outcome=killed``. Spans still open at the kill (the node, agent or LLM call
    in flight) were never ended, so they are absent; their finished children show as roots of
    their own. Written to the span store only (exporters got the run's spans as they ended).
    Returns the stand-in, or None when tracing or the store is off or the root is stored.
    """
    ids, url = parse_ref(ref), _state.store_url
    if ids is None or url is None or _state.tracer is None:
        return None
    trace_id, span_id = format_trace_id(ids[0]), format_span_id(ids[1])
    bounds = stored_span_bounds(url, trace_id, span_id)
    if bounds is None:  # the root itself is stored: the run ended (or was exported) normally
        return None
    first_ns, last_ns = min([first_ns, *bounds[:1]]), max([last_ns, *bounds[1:]])
    own = dict(resource(get_settings()).attributes)
    attributes = {OP: "invoke_workflow", "gen_ai.workflow.name": graph,
                  "langgraph.graph": graph, OI_KIND: "CHAIN", THREAD_ID: thread_id,
                  "gen_ai.conversation.id": thread_id, "session.id": thread_id,
                  RUN_OUTCOME: "killed", RECONSTRUCTED: True}
    stand_in = StoredSpan(
        trace_id=trace_id, span_id=span_id, thread_id=thread_id, name=f"invoke_workflow {graph}",
        kind="INTERNAL", start_ns=first_ns, end_ns=last_ns, status_code=StatusCode.ERROR.value,
        status_message="run ended without finishing its trace (process killed?): root span reconstructed "
                       "on resume from the run's checkpoints; spans open at the end are missing",
        attributes=attributes, service_name=str(own.get("service.name", "relaygraph")), scope=TRACER_NAME,
        resource=own)
    return stand_in if store_stand_in(url, stand_in) else None


def shutdown() -> None:
    """Flush and turn tracing off (tests; the SDK also shuts down at exit). It stays off: the
    next run does not re-read the environment."""
    with _lock:
        _shutdown_provider()
        _state.key = None
        _state.env_read = True


def _shutdown_provider() -> None:
    provider, _state.provider, _state.tracer = _state.provider, None, None
    _state.store_processor = None
    _state.generation += 1
    if provider is not None:
        provider.shutdown()


# --- helpers every instrumentation uses -------------------------------------------------------


def clip(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= CONTENT_LIMIT else f"{text[:CONTENT_LIMIT]}… [truncated]"


def record_content(span: Span, key: str, value: Any) -> None:
    """Record prompts/arguments/results only when RELAYGRAPH_TRACE_CONTENT is on."""
    if _state.trace_content and value is not None:
        span.set_attribute(key, clip(value))


def record_failure(span: Span, message: str, failure_class: str) -> None:
    """A task that failed without raising (a classified failure the graph recovers from): the
    span is ERROR with the error, and says its class (``relaygraph.failure.class``)."""
    span.set_status(Status(StatusCode.ERROR, message[:500]))
    span.set_attribute("relaygraph.failure.class", failure_class)
    span.set_attribute("relaygraph.failure.error", message[:500])


def record_error(span: Span, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:500]))
    span.set_attribute("error.type", type(exc).__qualname__)
