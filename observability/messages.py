"""Chat messages as the GenAI semantic conventions want them on ``gen_ai.*.messages``.

    [{"role": "user"|"assistant"|"system"|"tool",
      "parts": [{"type": "text", "content": ...},
                {"type": "tool_call", "id", "name", "arguments"},
                {"type": "tool_call_response", "id", "response"}],
      "finish_reason": ...}]        # output messages only

Why a module of its own: Phoenix (and other GenAI-convention readers) silently drop any other
shape, so both instrumentations (LangChain models, smolagents models) share one converter.
Long text is clipped part by part, so the attribute always stays valid JSON. Recorded only
with ``RELAYGRAPH_TRACE_CONTENT=true``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from relaygraph.observability.semconv import CONTENT_LIMIT

Part = dict[str, Any]
Message = dict[str, Any]

# smolagents' roles (MessageRole values) and LangChain's message types, to GenAI roles.
_ROLES = {"user": "user", "human": "user", "assistant": "assistant", "ai": "assistant", "system": "system",
          "tool": "tool", "tool-call": "assistant", "tool-response": "tool", "function": "tool"}


def _clip(text: str) -> str:
    return text if len(text) <= CONTENT_LIMIT else f"{text[:CONTENT_LIMIT]}… [truncated]"


def role_of(raw: Any) -> str:
    name = str(getattr(raw, "value", raw) or "user").lower()
    return _ROLES.get(name, name)


def text_parts(content: Any) -> list[Part]:
    """Text parts of a message's content: a string, or a list of ``{"type": "text", "text"}``
    blocks (OpenAI/smolagents/LangChain style). Other blocks (images) are named, not embedded."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": _clip(content)}] if content else []
    parts: list[Part] = []
    for block in content if isinstance(content, Iterable) else [content]:
        if isinstance(block, str):
            parts.append({"type": "text", "content": _clip(block)})
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append({"type": "text", "content": _clip(str(block.get("text") or block.get("content") or ""))})
        elif isinstance(block, dict):
            parts.append({"type": "text", "content": f"[{block.get('type', 'content')}]"})
    return parts


def tool_call_part(call_id: Any, name: Any, arguments: Any) -> Part:
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            arguments = _clip(arguments)
    return {"type": "tool_call", "id": None if call_id is None else str(call_id), "name": str(name),
            "arguments": arguments}


def smolagents_message(message: Any) -> Message:
    """A smolagents ``ChatMessage`` (or its dict form) in the GenAI shape."""
    if isinstance(message, dict):
        role, content, calls = message.get("role"), message.get("content"), message.get("tool_calls")
    else:
        role, content = getattr(message, "role", None), getattr(message, "content", None)
        calls = getattr(message, "tool_calls", None)
    parts = text_parts(content)
    for call in calls or ():
        function = _field(call, "function")
        parts.append(tool_call_part(_field(call, "id"), _field(function, "name"), _field(function, "arguments")))
    return {"role": role_of(role), "parts": parts}


def _field(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def langchain_message(message: Any) -> Message:
    """A LangChain ``BaseMessage`` in the GenAI shape (tool results keep their call id)."""
    kind = getattr(message, "type", "user")
    content = getattr(message, "content", message if isinstance(message, str) else None)
    if kind == "tool":
        response = content if isinstance(content, str) else json.dumps(content, default=str)
        return {"role": "tool", "parts": [{"type": "tool_call_response",
                                           "id": str(getattr(message, "tool_call_id", "") or ""),
                                           "response": _clip(response)}]}
    parts = text_parts(content)
    for call in getattr(message, "tool_calls", None) or ():
        parts.append(tool_call_part(call.get("id"), call.get("name"), call.get("args")))
    return {"role": role_of(kind), "parts": parts}


def output_message(message: Message, finish_reason: str | None) -> Message:
    """An output message carries why generation stopped (``stop``, ``tool_call``, ...)."""
    reason = finish_reason or ("tool_call" if any(p["type"] == "tool_call" for p in message["parts"]) else "stop")
    return {**message, "finish_reason": reason}


def dumps(messages: list[Message]) -> str:
    return json.dumps(messages, default=str, ensure_ascii=False)
