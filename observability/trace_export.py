"""Stored spans out: a span tree for the terminal, Jaeger UI's JSON, OTLP JSON.

    [StoredSpan] ─┬─► span_tree()   rich Tree: names, durations, tokens, status
                  ├─► to_jaeger()   {"data": [{traceID, spans, processes}]}  (Jaeger UI "JSON File")
                  └─► to_otlp_json() {"resourceSpans": [...]}               (OTLP/JSON, collectors)

Jaeger UI opens its legacy JSON format without any backend (Search → "JSON File"), which is
how traces are inspected where no Jaeger can run; OTLP JSON replays into any collector.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, Literal

from relaygraph.observability.trace_store import StoredSpan
from rich.text import Text
from rich.tree import Tree

ExportFormat = Literal["jaeger", "otlp-json"]

_SHOWN = (  # attributes worth a glance in the tree, in order
    ("langgraph.step", "step"), ("relaygraph.node.attempt", "attempt"),
    ("relaygraph.step.tool", "tool"), ("relaygraph.step.confidence", "confidence"),
    ("relaygraph.tool.status", "status"), ("gen_ai.usage.input_tokens", "in"),
    ("gen_ai.usage.output_tokens", "out"), ("relaygraph.usage.cost_usd", "$"),
    ("relaygraph.usage.llm_calls", "llm calls"),
    ("relaygraph.usage.offline_policy_calls", "offline-policy calls"), ("langgraph.checkpoint.id", "checkpoint"),
    ("relaygraph.failure.class", "class"), ("relaygraph.replan.task", "after"),
    ("relaygraph.replan.policy", "policy"), ("relaygraph.replan.old_confidence", "confidence was"),
    ("relaygraph.plan.confidence", "confidence"), ("relaygraph.plan.accepted", "accepted"),
)

#: Counts not worth a glance at zero (a node that called no model; an offline run's "llm calls=0").
_HIDDEN_WHEN_ZERO = {"relaygraph.usage.llm_calls", "relaygraph.usage.offline_policy_calls"}


def children_of(spans: list[StoredSpan]) -> tuple[list[StoredSpan], dict[str, list[StoredSpan]]]:
    """Roots (no parent among these spans) and each span's children, both by start time."""
    ids = {s.span_id for s in spans}
    children: dict[str, list[StoredSpan]] = defaultdict(list)
    roots = []
    for span in sorted(spans, key=lambda s: (s.start_ns, s.end_ns)):
        if span.parent_span_id and span.parent_span_id in ids:
            children[span.parent_span_id].append(span)
        else:
            roots.append(span)
    return roots, children


def _label(span: StoredSpan) -> Text:
    text = Text()
    text.append(span.name, style="bold red" if span.status_code == 2 else "bold")
    text.append(f"  {_duration(span.duration_ms)}", style="cyan")
    details = [f"{label}={_short(span.attributes[key])}" for key, label in _SHOWN
               if key in span.attributes and not (key in _HIDDEN_WHEN_ZERO and span.attributes[key] == 0)]
    if span.status_code == 2:
        details.append("error: " + " ".join((span.status_message or "").split())[:160])
    details += [f"{link.get('attributes', {}).get('relaygraph.link.type', 'linked to')} trace {link['trace_id']}"
                for link in span.links]
    if details:
        text.append("  " + " ".join(details), style="dim")
    return text


def _duration(ms: float) -> str:
    return f"{ms / 1000:.2f}s" if ms >= 1000 else f"{ms:.1f}ms"


def _short(value: Any) -> str:
    text = str(value)
    return "…" + text[-8:] if len(text) == 36 and text.count("-") == 4 else text  # checkpoint ids (uuid6: the tail differs)


def span_tree(spans: list[StoredSpan], title: str = "trace") -> Tree:
    """The spans as a tree (one branch per trace root), with durations and key attributes."""
    tree = Tree(Text(title, style="bold"))
    roots, children = children_of(spans)

    def add(branch: Tree, span: StoredSpan) -> None:
        node = branch.add(_label(span))
        for child in children.get(span.span_id, ()):
            add(node, child)

    for root in roots:
        add(tree, root)
    return tree


# --- Jaeger UI legacy JSON ----------------------------------------------------------------


def _jaeger_tag(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    if isinstance(value, float):
        return {"key": key, "type": "float64", "value": value}
    if isinstance(value, (list, tuple)):
        return {"key": key, "type": "string", "value": json.dumps(list(value))}
    return {"key": key, "type": "string", "value": str(value)}


_OTEL_TO_JAEGER_KIND = {"INTERNAL": "internal", "CLIENT": "client", "SERVER": "server",
                        "PRODUCER": "producer", "CONSUMER": "consumer"}


def to_jaeger(spans: list[StoredSpan]) -> dict[str, Any]:
    """Jaeger's legacy JSON (what its UI's "JSON File" upload reads): one entry per trace,
    microsecond times, CHILD_OF references, one process per service."""
    by_trace: dict[str, list[StoredSpan]] = defaultdict(list)
    for span in spans:
        by_trace[span.trace_id].append(span)
    data = []
    for trace_id, members in by_trace.items():
        processes: dict[str, dict[str, Any]] = {}
        process_of: dict[str, str] = {}
        for span in members:  # one process per resource (service.version, telemetry.sdk.* as tags)
            if _resource_key(span) not in process_of:
                pid = f"p{len(process_of) + 1}"
                process_of[_resource_key(span)] = pid
                processes[pid] = {"serviceName": span.service_name,
                                  "tags": [_jaeger_tag(k, v) for k, v in _resource(span).items()
                                           if k != "service.name"]}
        out = []
        for span in sorted(members, key=lambda s: s.start_ns):
            tags = [_jaeger_tag(k, v) for k, v in span.attributes.items()]
            tags.append({"key": "span.kind", "type": "string", "value": _OTEL_TO_JAEGER_KIND.get(span.kind, "internal")})
            tags.append({"key": "otel.scope.name", "type": "string", "value": span.scope})
            if span.status_code == 2:
                tags += [{"key": "error", "type": "bool", "value": True},
                         {"key": "otel.status_code", "type": "string", "value": "ERROR"},
                         {"key": "otel.status_description", "type": "string", "value": span.status_message or ""}]
            elif span.status_code == 1:
                tags.append({"key": "otel.status_code", "type": "string", "value": "OK"})
            out.append({
                "traceID": trace_id,
                "spanID": span.span_id,
                "operationName": span.name,
                "references": ([{"refType": "CHILD_OF", "traceID": trace_id, "spanID": span.parent_span_id}]
                               if span.parent_span_id else []) + [
                    {"refType": "FOLLOWS_FROM", "traceID": link["trace_id"], "spanID": link["span_id"]}
                    for link in span.links],
                "startTime": span.start_ns // 1000,
                "duration": max((span.end_ns - span.start_ns) // 1000, 0),
                "tags": tags,
                "logs": [{"timestamp": e.get("time_ns", span.start_ns) // 1000,
                          "fields": [_jaeger_tag("event", e.get("name", "")),
                                     *(_jaeger_tag(k, v) for k, v in (e.get("attributes") or {}).items())]}
                         for e in span.events],
                "processID": process_of[_resource_key(span)],
                "warnings": None,
                "flags": 1,
            })
        data.append({"traceID": trace_id, "spans": out, "processes": processes, "warnings": None})
    return {"data": data, "total": 0, "limit": 0, "offset": 0, "errors": None}


# --- OTLP JSON ----------------------------------------------------------------------------


def _otlp_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # int64 is a string in OTLP/JSON
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [_otlp_value(v) for v in value]}}
    return {"stringValue": str(value)}


def _otlp_attributes(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _otlp_value(v)} for k, v in attributes.items()]


_OTLP_KIND = {"INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}


def to_otlp_json(spans: list[StoredSpan]) -> dict[str, Any]:
    """An OTLP/JSON ``ExportTraceServiceRequest`` (hex ids, nanosecond strings), as collectors
    accept on ``/v1/traces`` with ``Content-Type: application/json``."""
    by_resource: dict[str, dict[str, list[StoredSpan]]] = defaultdict(lambda: defaultdict(list))
    for span in spans:
        by_resource[_resource_key(span)][span.scope].append(span)
    resource_spans = []
    for resource, scopes in by_resource.items():
        scope_spans = []
        for scope, members in scopes.items():
            scope_spans.append({"scope": {"name": scope}, "spans": [{
                "traceId": s.trace_id,
                "spanId": s.span_id,
                **({"parentSpanId": s.parent_span_id} if s.parent_span_id else {}),
                "name": s.name,
                "kind": _OTLP_KIND.get(s.kind, 1),
                "startTimeUnixNano": str(s.start_ns),
                "endTimeUnixNano": str(s.end_ns),
                "attributes": _otlp_attributes(s.attributes),
                "events": [{"timeUnixNano": str(e.get("time_ns", s.start_ns)), "name": e.get("name", ""),
                            "attributes": _otlp_attributes(e.get("attributes") or {})} for e in s.events],
                "status": {"code": s.status_code, **({"message": s.status_message} if s.status_message else {})},
                **({"links": [{"traceId": link["trace_id"], "spanId": link["span_id"],
                               "attributes": _otlp_attributes(link.get("attributes") or {})} for link in s.links]}
                   if s.links else {}),
            } for s in sorted(members, key=lambda s: s.start_ns)]})
        resource_spans.append({"resource": {"attributes": _otlp_attributes(json.loads(resource))},
                               "scopeSpans": scope_spans})
    return {"resourceSpans": resource_spans}


def _resource(span: StoredSpan) -> dict[str, Any]:
    return {"service.name": span.service_name, **span.resource}


def _resource_key(span: StoredSpan) -> str:
    return json.dumps(_resource(span), sort_keys=True, default=str)


def export(spans: list[StoredSpan], fmt: ExportFormat) -> dict[str, Any]:
    return to_jaeger(spans) if fmt == "jaeger" else to_otlp_json(spans)


def latest_trace(spans: list[StoredSpan]) -> list[StoredSpan]:
    """The spans of the most recent trace (one run) among a thread's spans."""
    roots, _ = children_of(spans)
    if not roots:
        return []
    newest = max(roots, key=lambda s: s.start_ns).trace_id
    return [s for s in spans if s.trace_id == newest]
