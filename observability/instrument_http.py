"""HTTP: a W3C ``traceparent`` on every call to an OpenAI-compatible server.

The header carries the current span (the LLM call's), so a server that traces too (vLLM,
llama.cpp's server behind a proxy, a gateway) continues the same trace.
"""

from __future__ import annotations

from typing import Any

from openai import DefaultAsyncHttpxClient, DefaultHttpxClient
from opentelemetry import propagate
from relaygraph.observability.tracing import enabled


def inject_trace_headers(request: Any) -> None:
    """httpx request hook: add ``traceparent``/``tracestate`` of the current span."""
    if enabled():
        propagate.inject(request.headers)


async def _ainject_trace_headers(request: Any) -> None:
    inject_trace_headers(request)


def http_client() -> DefaultHttpxClient:
    """The OpenAI SDK's own httpx client (its timeouts and limits), propagating the trace."""
    return DefaultHttpxClient(event_hooks={"request": [inject_trace_headers]})


def async_http_client() -> DefaultAsyncHttpxClient:
    return DefaultAsyncHttpxClient(event_hooks={"request": [_ainject_trace_headers]})
