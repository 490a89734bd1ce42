"""Rewrite the chat requests real clients send into the shape llama-cpp-python's server accepts.

The stock server validates requests against narrow TypedDicts, so what langchain-openai and
smolagents actually send is rejected before any handler runs (HTTP 422) or crashes it (500):

* ``content: null`` on assistant tool-call messages (LangChain's second turn);
* list-of-parts content ``[{"type": "text", "text": ...}]`` (smolagents, OpenAI SDK users);
* smolagents' internal roles ``tool-call``/``tool-response`` and OpenAI's ``developer`` role;
* ``response_format: {"type": "json_schema", ...}`` (LangChain ``with_structured_output``);
* ``max_completion_tokens`` (what langchain-openai sends instead of ``max_tokens``; the stock
  server silently ignores it and generates until the context is full).

:func:`normalize_chat_request` is a pure function (also applied by the chat handler, so
in-process callers get the same treatment); :class:`NormalizeRequestsMiddleware` applies it to
the raw HTTP body in front of the FastAPI app and turns contradictions (a named ``tool_choice``
that is not among ``tools``) into OpenAI-style 400 errors instead of 500s.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_ROLE_ALIASES = {
    "tool-call": "assistant",  # smolagents MessageRole.TOOL_CALL
    "tool-response": "user",  # smolagents MessageRole.TOOL_RESPONSE
    "developer": "system",  # OpenAI o-series system role
    "human": "user",
    "ai": "assistant",
}


class RequestError(ValueError):
    """A request that cannot be served as sent; reported to the client as HTTP 400."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param

    def to_openai(self) -> dict[str, Any]:
        return {
            "error": {
                "message": str(self),
                "type": "invalid_request_error",
                "param": self.param,
                "code": None,
            }
        }


def content_to_text(content: Any) -> str:
    """Flatten any OpenAI message content (None, str, list of parts, dict) into plain text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                kind = part.get("type", "text")
                if kind in ("text", "input_text", "output_text") or "text" in part:
                    texts.append(str(part.get("text", "")))
                elif kind in ("image_url", "input_image", "image"):
                    texts.append("[image omitted: this local model reads text only]")
                elif kind == "refusal":
                    texts.append(str(part.get("refusal", "")))
        return "\n".join(t for t in texts if t)
    return str(content)


def _normalize_tool_calls(calls: Any) -> list[dict[str, Any]]:
    out = []
    for call in calls or []:
        if not isinstance(call, dict):
            continue
        fn = dict(call.get("function") or {})
        args = fn.get("arguments", "{}")
        if not isinstance(args, str):
            args = json.dumps(args, ensure_ascii=False)
        out.append(
            {
                "id": str(call.get("id") or f"call_{uuid.uuid4().hex[:24]}"),
                "type": "function",
                "function": {"name": str(fn.get("name", "")), "arguments": args},
            }
        )
    return out


def normalize_message(message: dict[str, Any]) -> dict[str, Any]:
    """One message in the shape the server's validators accept (idempotent)."""
    msg = dict(message)
    role = str(msg.get("role") or "user")
    role = _ROLE_ALIASES.get(role, role)
    msg["role"] = role
    msg["content"] = content_to_text(msg.get("content"))
    if role == "assistant":
        calls = _normalize_tool_calls(msg.get("tool_calls"))
        if calls:
            msg["tool_calls"] = calls
        else:
            msg.pop("tool_calls", None)
        if msg.get("function_call") is None:
            msg.pop("function_call", None)
    elif role == "tool":
        msg["tool_call_id"] = str(msg.get("tool_call_id") or "")
    elif role == "function":
        msg["name"] = str(msg.get("name") or "")
    return msg


def _normalize_tools(tools: Any) -> list[dict[str, Any]] | None:
    if not tools:
        return None
    out = []
    for tool in tools:
        fn = dict(tool.get("function") or tool) if isinstance(tool, dict) else {}
        if "name" not in fn:
            raise RequestError("every tool needs a function name", param="tools")
        params = fn.get("parameters")
        fn["parameters"] = (
            params
            if isinstance(params, dict)
            else {
                "type": "object",
                "properties": {},
            }
        )
        out.append({"type": "function", "function": fn})
    return out


def _normalize_tool_choice(choice: Any, tools: list[dict[str, Any]] | None) -> Any:
    if choice is None:
        return None
    if isinstance(choice, str):
        choice = {"any": "required"}.get(choice, choice)
        if choice not in ("none", "auto", "required"):
            if tools and any(t["function"]["name"] == choice for t in tools):
                choice = {"type": "function", "function": {"name": choice}}
            else:
                raise RequestError(f"unsupported tool_choice {choice!r}", param="tool_choice")
        return choice
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        if not name:
            raise RequestError("named tool_choice without a function name", param="tool_choice")
        known = [t["function"]["name"] for t in tools or []]
        if name not in known:
            raise RequestError(
                f"tool_choice names {name!r}, which is not among the request's tools {known}",
                param="tool_choice",
            )
        return {"type": "function", "function": {"name": name}}
    raise RequestError(f"unsupported tool_choice {choice!r}", param="tool_choice")


def _normalize_response_format(fmt: Any) -> Any:
    if not isinstance(fmt, dict):
        return fmt
    kind = fmt.get("type")
    if kind == "json_schema":
        spec = fmt.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        out: dict[str, Any] = {"type": "json_object"}
        if isinstance(schema, dict):
            out["schema"] = schema
        return out
    if kind in ("json_object", "text"):
        return fmt
    raise RequestError(f"unsupported response_format type {kind!r}", param="response_format")


def normalize_chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of a ``/v1/chat/completions`` body that the server's validators accept.

    Idempotent; raises :class:`RequestError` for contradictions the client must fix.
    """
    out = dict(body)
    messages = out.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list", param="messages")
    out["messages"] = [normalize_message(m) for m in messages if isinstance(m, dict)]
    tools = _normalize_tools(out.get("tools"))
    if tools is None:
        out.pop("tools", None)
    else:
        out["tools"] = tools
    if "tool_choice" in out:
        choice = _normalize_tool_choice(out.get("tool_choice"), tools)
        if choice is None or tools is None:
            out.pop("tool_choice", None)
        else:
            out["tool_choice"] = choice
    if "response_format" in out:
        fmt = _normalize_response_format(out.get("response_format"))
        if fmt is None:
            out.pop("response_format")
        else:
            out["response_format"] = fmt
    mct = out.pop("max_completion_tokens", None)
    if out.get("max_tokens") is None and mct is not None:
        out["max_tokens"] = mct
    if out.get("stop") == []:
        out["stop"] = None
    return out


class NormalizeRequestsMiddleware:
    """ASGI middleware: normalise JSON bodies of ``POST .../chat/completions`` before routing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope.get("type") != "http"
            or scope.get("method") != "POST"
            or not str(scope.get("path", "")).rstrip("/").endswith("/chat/completions")
        ):
            await self.app(scope, receive, send)
            return

        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        raw = b"".join(chunks)
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise RequestError("the request body must be a JSON object")
            raw = json.dumps(normalize_chat_request(body)).encode("utf-8")
        except json.JSONDecodeError as exc:
            await _send_json(send, 400, RequestError(f"invalid JSON body: {exc}").to_openai())
            return
        except RequestError as exc:
            await _send_json(send, 400, exc.to_openai())
            return

        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(raw)).encode()))
        scope = dict(scope, headers=headers)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()  # after the body: wait for disconnect like the server does

        await self.app(scope, replay, send)


async def _send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
