"""A minimal in-process OTLP/HTTP trace receiver: what Jaeger's port 4318 does, for tests and benches.

    OTLPSpanExporter ──POST /v1/traces (protobuf)──► OtlpReceiver ──► decoded ReceivedSpan list

No Jaeger binary can run on these machines, so the real exporter is pointed at this instead;
it decodes the ``ExportTraceServiceRequest`` with ``opentelemetry-proto``, exactly as a
collector would, and keeps each span with its resource's ``service.name``.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


@dataclass
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    service_name: str | None
    attributes: dict[str, Any] = field(default_factory=dict)
    status_code: int = 0


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind) if kind else None


def decode(body: bytes) -> list[ReceivedSpan]:
    """The spans of one OTLP/protobuf export request."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(ReceivedSpan(
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex() or None,
                    name=span.name,
                    service_name=resource.get("service.name"),
                    attributes={kv.key: _value(kv.value) for kv in span.attributes},
                    status_code=span.status.code,
                ))
    return spans


class OtlpReceiver:
    """``with OtlpReceiver() as rx:`` → ``rx.endpoint`` (for OTEL_EXPORTER_OTLP_ENDPOINT), ``rx.spans``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                spans = decode(body)
                with receiver._lock:
                    receiver.requests += 1
                    receiver.spans.extend(spans)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()


def request_to_dict(body: bytes) -> dict[str, Any]:
    """A request as protobuf-JSON (debugging aid)."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return MessageToDict(request)


def main() -> None:
    """``python tests/otlp_receiver.py [--port 4318]``: a stand-in for Jaeger's OTLP port that
    prints one line per received span (name, ids, service) — handy to check an exporter setup."""
    import argparse
    import time

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4318)
    parser.add_argument("--quiet", action="store_true", help="print only a count per request")
    args = parser.parse_args()
    with OtlpReceiver(args.host, args.port) as receiver:
        print(f"listening on {receiver.endpoint}/v1/traces", flush=True)
        seen = 0
        try:
            while True:
                time.sleep(0.2)
                new, seen = receiver.spans[seen:], len(receiver.spans)
                if new and args.quiet:
                    print(f"received {len(new)} spans (total {seen})", flush=True)
                for span in [] if args.quiet else new:
                    print(f"{span.service_name} {span.trace_id[:8]} {span.span_id} <- {span.parent_span_id} "
                          f"{span.name}", flush=True)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
