"""relaygraph's chat handler for llama-cpp-python: chat template + tools + grammar.

Why not the stock ``chatml-function-calling`` handler: it only supports ``tool_choice="auto"``
(asserts otherwise → HTTP 500), drops ``role=tool`` messages, and does not constrain arguments,
so smolagents (which always sends ``tool_choice="required"``) cannot use it at all.

This handler:

1. renders the conversation with the model's own chat template (read from the GGUF), after
   describing the tools in the system message and writing earlier tool calls/results in the
   same ``<tool_call>{...}</tool_call>`` format the model is asked to produce;
2. for ``tool_choice`` ``required``/named, constrains generation with a grammar that has one
   branch per allowed tool (fixed name + arguments from that tool's JSON schema, enums
   included); for ``auto`` the grammar also allows a plain-text answer;
3. turns the generated call back into an OpenAI ``tool_calls`` message with
   ``finish_reason="tool_calls"`` (streamed or not);
4. keeps the prompt inside the context window by eliding the oldest middle turns instead of
   failing with "Requested tokens exceed context window";
5. (``avoid_repeated_calls``) never returns a call identical to one already made (or already
   failed) in the conversation while an alternative exists: a 135M model decoding greedily
   otherwise repeats its first call until the agent gives up. The alternative is, in order:
   ``final_answer`` when offered (smolagents' way to finish), another tool, or the same tool
   with an enum argument value not used before.
"""

from __future__ import annotations

import ast
import json
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from relaygraph.providers.local_llm.grammar import (
    DEFAULT_MAX_STRING_CHARS,
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    sanitize_schema,
    schema_grammar,
    tool_call_grammar,
    tool_name,
)
from relaygraph.providers.local_llm.normalize import RequestError, normalize_chat_request

if TYPE_CHECKING:  # pragma: no cover - typing only
    from llama_cpp import Llama

HANDLER_NAME = "relaygraph-tools"

CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

#: smolagents' terminating tool; a repeating agent is steered to it.
FINAL_ANSWER_TOOL = "final_answer"

#: Tokens kept free for the answer when the caller gives no ``max_tokens``.
DEFAULT_ANSWER_RESERVE = 512

# Sampling arguments forwarded verbatim to ``Llama.create_completion``.
_SAMPLING_KEYS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "typical_p",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "repeat_penalty",
    "tfs_z",
    "mirostat_mode",
    "mirostat_tau",
    "mirostat_eta",
    "logits_processor",
    "logit_bias",
)


def tools_system_block(tools: list[dict[str, Any]], mode: str) -> str:
    """The system-prompt section that teaches the model the tools and the call format."""
    lines = ["You can call these tools:", "<tools>"]
    for tool in tools:
        fn = tool["function"]
        params = sanitize_schema(fn.get("parameters") or {})
        props = {
            name: {k: v for k, v in spec.items() if k in ("type", "description", "enum")}
            for name, spec in (params.get("properties") or {}).items()
        }
        entry = {"name": fn["name"], "description": fn.get("description", ""), "arguments": props}
        lines.append(json.dumps(entry, ensure_ascii=False))
    lines.append("</tools>")
    lines.append(
        f'To call a tool, reply with {TOOL_CALL_OPEN}{{"name": <tool name>, "arguments": '
        f"<arguments as a JSON object>}}{TOOL_CALL_CLOSE}"
    )
    if mode in ("required", "named"):
        lines.append("You must reply with exactly one tool call.")
    else:
        lines.append("Call a tool when it helps; otherwise answer in plain text.")
    return "\n".join(lines)


def _format_call(name: str, arguments: Any) -> str:
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            pass
    payload = json.dumps(
        {"name": name, "arguments": arguments}, ensure_ascii=False, separators=(", ", ": ")
    )
    return f"{TOOL_CALL_OPEN}{payload}{TOOL_CALL_CLOSE}"


def json_system_block(schema: dict[str, Any] | None) -> str:
    """Tell the model the JSON shape it is being constrained to (small models need to see it)."""
    if not schema:
        return "Reply with a single JSON object and nothing else."
    return (
        "Reply with a single JSON object and nothing else. It must match this JSON schema:\n"
        + json.dumps(sanitize_schema(schema), ensure_ascii=False)
    )


_SMOLAGENTS_CALLS_PREFIX = "Calling tools:\n"


def smolagents_calls(content: str) -> list[tuple[str, Any]] | None:
    """Calls in smolagents' memory text ``Calling tools:\n[{...python repr...}]``, else None.

    smolagents replays earlier tool calls to the model as this plain text (role ``tool-call``),
    not as OpenAI ``tool_calls``; recognising it lets the prompt show them in the same
    ``<tool_call>`` form the model is asked to produce, and lets repeats be detected.
    """
    if not content.startswith(_SMOLAGENTS_CALLS_PREFIX):
        return None
    try:
        calls = ast.literal_eval(content[len(_SMOLAGENTS_CALLS_PREFIX) :].strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(calls, list):
        return None
    out = []
    for call in calls:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or "name" not in fn:
            return None
        out.append((str(fn["name"]), fn.get("arguments", {})))
    return out


_FAILED_CALL_MARK = "Error executing tool '"
_FAILED_CALL_ARGS = "' with arguments "


def smolagents_failed_calls(content: str) -> list[tuple[str, Any]]:
    """Calls named in smolagents' tool-error observations.

    When a tool raises, smolagents does not replay the call itself, only the text
    ``Error executing tool 'NAME' with arguments {...repr...}: TypeError: ...``. A call that
    failed will fail again, so it counts as made.
    """
    found: list[tuple[str, Any]] = []
    pos = 0
    while (start := content.find(_FAILED_CALL_MARK, pos)) >= 0:
        name_start = start + len(_FAILED_CALL_MARK)
        name_end = content.find(_FAILED_CALL_ARGS, name_start)
        pos = name_start
        if name_end < 0:
            break
        args_start = name_end + len(_FAILED_CALL_ARGS)
        if not content.startswith("{", args_start):
            continue
        # The repr is followed by ": <exception>"; try each closing brace until one parses.
        end = args_start
        for _ in range(64):
            end = content.find("}", end + 1)
            if end < 0:
                break
            try:
                args = ast.literal_eval(content[args_start : end + 1])
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                continue
            found.append((content[name_start:name_end], args))
            pos = end
            break
    return found


def call_key(name: str, arguments: Any) -> str:
    """Canonical identity of a call, for spotting exact repeats."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            pass
    return name + json.dumps(arguments, sort_keys=True, ensure_ascii=False, default=str)


def previous_calls(messages: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """``(name, arguments)`` of every tool call already in the conversation (all formats)."""
    calls: list[tuple[str, Any]] = []
    for msg in messages:
        if msg.get("role") in ("user", "tool"):
            calls += smolagents_failed_calls(msg.get("content") or "")
            continue
        if msg.get("role") != "assistant":
            continue
        for call in msg.get("tool_calls") or []:
            fn = call.get("function") or {}
            args = fn.get("arguments", "{}")
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except json.JSONDecodeError:
                    pass
            calls.append((str(fn.get("name", "")), args))
        content = msg.get("content") or ""
        calls += smolagents_calls(content) or []
        parsed = parse_tool_call(content)
        if parsed is not None:
            calls.append(parsed)
    return calls


def vary_arguments(tool: dict[str, Any], earlier: list[Any]) -> dict[str, Any] | None:
    """``tool`` with parameters that admit only calls differing from every ``earlier`` one.

    One alternative per enum-typed argument, with the values used before removed from it (and
    the argument made required); the union guarantees a new call. None when no enum argument
    has an unused value left, i.e. the repeat cannot be avoided within this tool.
    """
    fn = tool["function"]
    params = sanitize_schema(fn.get("parameters") or {})
    props: dict[str, Any] = params.get("properties") or {}
    required = list(params.get("required") or [])
    earlier_dicts = [a for a in earlier if isinstance(a, dict)]
    variants = []
    for key, spec in props.items():
        values = spec.get("enum") if isinstance(spec, dict) else None
        if not values:
            continue
        used = {json.dumps(a[key], sort_keys=True) for a in earlier_dicts if key in a}
        remaining = [v for v in values if json.dumps(v, sort_keys=True) not in used]
        if not remaining:
            continue
        variants.append(
            {
                **params,
                "properties": {**props, key: {**spec, "enum": remaining}},
                "required": required + ([key] if key not in required else []),
            }
        )
    if not variants:
        return None
    return {"type": "function", "function": {**fn, "parameters": {"anyOf": variants}}}


def to_template_messages(
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    mode: str,
    json_schema: dict[str, Any] | None = None,
) -> list[dict[str, str]]:
    """Plain ``{role, content}`` messages any chat template can render.

    Assistant tool calls become ``<tool_call>`` text, tool results become user turns wrapped in
    ``<tool_response>``, and the tools block (or, for ``response_format`` JSON, the schema) is
    appended to the first system message. ``json_schema`` of ``{}`` means "any JSON object".
    """
    names_by_id: dict[str, str] = {}
    out: list[dict[str, str]] = []
    for msg in messages:
        role = msg.get("role", "user")
        content = msg.get("content") or ""
        if role == "assistant":
            calls = msg.get("tool_calls") or []
            if msg.get("function_call"):
                calls = [{"id": "", "function": msg["function_call"]}]
            replayed = smolagents_calls(content)
            if replayed is not None:
                content = ""
                calls = [{"id": "", "function": {"name": n, "arguments": a}} for n, a in replayed]
            parts = [content] if content else []
            for call in calls:
                fn = call.get("function") or {}
                names_by_id[str(call.get("id", ""))] = fn.get("name", "")
                parts.append(_format_call(fn.get("name", ""), fn.get("arguments", "{}")))
            out.append({"role": "assistant", "content": "\n".join(parts)})
        elif role in ("tool", "function"):
            name = msg.get("name") or names_by_id.get(str(msg.get("tool_call_id", "")), "")
            head = f'<tool_response name="{name}">' if name else "<tool_response>"
            out.append({"role": "user", "content": f"{head}\n{content}\n</tool_response>"})
        elif role == "system":
            out.append({"role": "system", "content": content})
        else:
            out.append({"role": "user", "content": content})
    blocks = []
    if tools:
        blocks.append(tools_system_block(tools, mode))
    if json_schema is not None:
        blocks.append(json_system_block(json_schema))
    if blocks:
        block = "\n\n".join(blocks)
        for msg in out:
            if msg["role"] == "system":
                msg["content"] = f"{msg['content']}\n\n{block}" if msg["content"] else block
                break
        else:
            out.insert(0, {"role": "system", "content": block})
    return out


class RelaygraphChatHandler:
    """A ``LlamaChatCompletionHandler`` (see ``llama_cpp.llama_chat_format``)."""

    def __init__(
        self,
        *,
        max_string_chars: int = DEFAULT_MAX_STRING_CHARS,
        avoid_repeated_calls: bool = True,
    ) -> None:
        self.max_string_chars = max_string_chars
        self.avoid_repeated_calls = avoid_repeated_calls
        self._renderers: dict[int, Any] = {}

    # -- prompt -----------------------------------------------------------------------------
    def _renderer(self, llama: Llama) -> tuple[Any, str, str]:
        cached = self._renderers.get(id(llama))
        if cached is not None:
            return cached
        from jinja2.ext import loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        template = llama.metadata.get("tokenizer.chat_template") or CHATML_TEMPLATE
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
        )
        env.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False)
        bos = _token_text(llama, llama.token_bos())
        eos = _token_text(llama, llama.token_eos())
        cached = (env.from_string(template), bos, eos)
        self._renderers[id(llama)] = cached
        return cached

    def render(self, llama: Llama, messages: list[dict[str, str]]) -> str:
        template, bos, eos = self._renderer(llama)

        def raise_exception(message: str) -> None:
            raise RequestError(f"chat template rejected the conversation: {message}")

        return template.render(
            messages=messages,
            add_generation_prompt=True,
            bos_token=bos,
            eos_token=eos,
            raise_exception=raise_exception,
        )

    def fit_prompt(
        self, llama: Llama, messages: list[dict[str, str]], reserve: int
    ) -> tuple[list[int], int]:
        """Tokenised prompt that leaves ``reserve`` tokens free, and how many turns were elided.

        Keeps the system message(s), the first user message (the task) and the most recent
        turns; drops the oldest turns in between, then truncates overlong contents.
        """
        budget = max(llama.n_ctx() - reserve, 64)
        msgs = [dict(m) for m in messages]
        head = 0
        while head < len(msgs) and msgs[head]["role"] == "system":
            head += 1
        if head < len(msgs) and msgs[head]["role"] == "user":
            head += 1  # the task
        head_msgs, rest = msgs[:head], msgs[head:]
        dropped = 0
        for _ in range(len(msgs) + 32):
            note = {
                "role": "user",
                "content": f"[{dropped} earlier message(s) omitted to fit the context window]",
            }
            current = head_msgs + ([note] if dropped else []) + rest
            tokens = self._tokenize(llama, current)
            if len(tokens) <= budget:
                return tokens, dropped
            if len(rest) > 1:  # drop the oldest turn after the task, keep the latest
                rest.pop(0)
                dropped += 1
                continue
            # Nothing left to drop: shorten the longest message, keeping its start and end.
            longest = max(head_msgs + rest, key=lambda m: len(m["content"]))
            text = longest["content"]
            excess_chars = (len(tokens) - budget) * 4 + 64
            if len(text) <= excess_chars + 200:
                break
            keep = (len(text) - excess_chars) // 2
            longest["content"] = text[:keep] + "\n[... truncated ...]\n" + text[-keep:]
        raise RequestError(
            f"the conversation does not fit the {llama.n_ctx()}-token context window even "
            "after eliding earlier turns; shorten the prompt or lower max_tokens",
            param="messages",
        )

    def _tokenize(self, llama: Llama, msgs: list[dict[str, str]]) -> list[int]:
        prompt = self.render(llama, msgs)
        _, bos, _ = self._renderer(llama)
        add_bos = bool(llama.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true")
        if bos and prompt.startswith(bos):
            add_bos = False
        return llama.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=True)

    # -- the handler protocol ---------------------------------------------------------------
    def __call__(
        self,
        *,
        llama: Llama,
        messages: list[dict[str, Any]],
        functions: list[dict[str, Any]] | None = None,
        function_call: Any = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: Any = None,
        stream: bool = False,
        stop: str | list[str] | None = None,
        response_format: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        model: str | None = None,
        grammar: Any = None,
        logprobs: bool | None = None,
        top_logprobs: int | None = None,
        **kwargs: Any,
    ) -> dict[str, Any] | Iterator[dict[str, Any]]:
        from llama_cpp import LlamaGrammar

        if functions and not tools:  # legacy API → tools
            tools = [{"type": "function", "function": f} for f in functions]
        if function_call is not None and tool_choice is None:
            tool_choice = (
                function_call
                if isinstance(function_call, str)
                else {"type": "function", "function": {"name": function_call.get("name")}}
            )
        body = normalize_chat_request(
            {
                "messages": list(messages),
                "tools": tools,
                "tool_choice": tool_choice,
                "response_format": response_format,
            }
        )
        messages, tools = body["messages"], body.get("tools")
        tool_choice, response_format = body.get("tool_choice"), body.get("response_format")

        mode = "text"
        allowed = tools or []
        if tools and tool_choice != "none":
            if isinstance(tool_choice, dict):
                mode = "named"
                allowed = [t for t in tools if tool_name(t) == tool_choice["function"]["name"]]
            elif tool_choice == "required":
                mode = "required"
            else:
                mode = "auto"
        text_schema = None
        if response_format and response_format.get("type") == "json_object":
            text_schema = response_format.get("schema") or {"type": "object"}

        shown_tools = allowed if mode != "text" else None
        template_msgs = to_template_messages(messages, shown_tools, mode, text_schema)
        reserve = max_tokens if max_tokens and max_tokens > 0 else DEFAULT_ANSWER_RESERVE
        reserve = min(reserve, llama.n_ctx() // 2)
        prompt_tokens, _ = self.fit_prompt(llama, template_msgs, reserve)

        sampling = {k: kwargs[k] for k in _SAMPLING_KEYS if kwargs.get(k) is not None}
        eos_text = self._renderer(llama)[2]
        if mode == "text":
            if text_schema is not None:
                grammar = LlamaGrammar.from_string(
                    schema_grammar(text_schema, max_string_chars=self.max_string_chars),
                    verbose=False,
                )
            stops = _as_list(stop) + ([eos_text] if eos_text else [])
        else:
            # The grammar ends the call itself; a client stop string (smolagents sends
            # "Observation:") occurring inside an argument would cut the JSON in half.
            stops = [eos_text] if eos_text else []

        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        model_name = model or _model_name(llama)
        create_kwargs = dict(
            prompt=prompt_tokens,
            max_tokens=max_tokens if max_tokens and max_tokens > 0 else -1,
            stop=stops or None,
            grammar=grammar,
            **sampling,
        )
        if stream and mode == "text":
            chunks = llama.create_completion(stream=True, **create_kwargs)
            return _stream_text(chunks, completion_id, model_name)

        if mode == "text":
            completion = llama.create_completion(stream=False, **create_kwargs)
        else:
            completion = self._generate_call(
                llama, create_kwargs, allowed, mode, text_schema, previous_calls(messages)
            )
        response = _to_chat_response(completion, completion_id, model_name, mode)
        return _stream_response(response) if stream else response

    def _generate_call(
        self,
        llama: Llama,
        create_kwargs: dict[str, Any],
        allowed: list[dict[str, Any]],
        mode: str,
        text_schema: dict[str, Any] | None,
        seen: set[str],
    ) -> dict[str, Any]:
        """Grammar-constrained generation of one call (or, for ``auto``, text).

        With ``avoid_repeated_calls``, a call identical to one already made is discarded and
        the turn regenerated: restricted to ``final_answer`` if offered, else without that
        tool, else with unused enum values (see module docs). A client that names the tool
        (``tool_choice`` by name) always gets exactly what it asked for.
        """
        from llama_cpp import LlamaGrammar

        tools = list(allowed)
        earlier: dict[str, list[Any]] = {}
        for name, args in seen:
            earlier.setdefault(name, []).append(args)
        seen_keys = {call_key(name, args) for name, args in seen}
        varied = False
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        while True:
            gbnf = tool_call_grammar(
                tools,
                allow_text=(mode == "auto"),
                text_schema=text_schema,
                max_string_chars=self.max_string_chars,
            )
            grammar = LlamaGrammar.from_string(gbnf, verbose=False)
            completion = llama.create_completion(
                stream=False, **{**create_kwargs, "grammar": grammar}
            )
            got = completion.get("usage") or {}
            usage["prompt_tokens"] = got.get("prompt_tokens", 0)
            usage["completion_tokens"] += got.get("completion_tokens", 0)
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            completion["usage"] = usage
            parsed = parse_tool_call(completion["choices"][0]["text"])
            if (
                parsed is None
                or mode == "named"
                or not self.avoid_repeated_calls
                or call_key(*parsed) not in seen_keys
            ):
                return completion
            names = [tool_name(t) for t in tools]
            if FINAL_ANSWER_TOOL in names and parsed[0] != FINAL_ANSWER_TOOL:
                # An agent that repeats itself has run out of new moves: finish instead.
                tools = [t for t in tools if tool_name(t) == FINAL_ANSWER_TOOL]
                continue
            if len(tools) > 1:  # otherwise: another tool
                tools = [t for t in tools if tool_name(t) != parsed[0]]
                continue
            other = None if varied else vary_arguments(tools[0], earlier.get(parsed[0], []))
            if other is None:
                return completion  # nothing new is possible: let the client see the repeat
            tools, varied = [other], True


# -- helpers --------------------------------------------------------------------------------


def _token_text(llama: Llama, token: int) -> str:
    if token < 0:
        return ""
    try:
        return llama._model.token_get_text(token)  # the call llama_cpp itself uses
    except (AttributeError, TypeError):  # pragma: no cover - other llama_cpp versions
        return llama.detokenize([token], special=True).decode("utf-8", errors="ignore")


def _model_name(llama: Llama) -> str:
    return str(llama.metadata.get("general.name") or llama.model_path)


def _as_list(stop: str | list[str] | None) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else [s for s in stop if s]


def parse_tool_call(text: str) -> tuple[str, dict[str, Any]] | None:
    """``(name, arguments)`` from a complete ``<tool_call>{...}</tool_call>``, else None."""
    text = text.strip()
    if not (text.startswith(TOOL_CALL_OPEN) and text.endswith(TOOL_CALL_CLOSE)):
        return None
    try:
        payload = json.loads(text[len(TOOL_CALL_OPEN) : -len(TOOL_CALL_CLOSE)])
    except json.JSONDecodeError:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("arguments"), dict):
        return None
    return str(payload.get("name", "")), payload["arguments"]


def _to_chat_response(
    completion: dict[str, Any], completion_id: str, model_name: str, mode: str
) -> dict[str, Any]:
    choice = completion["choices"][0]
    text: str = choice["text"]
    finish = choice.get("finish_reason") or "stop"
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if mode != "text":
        parsed = parse_tool_call(text)
        if parsed is not None:
            name, arguments = parsed
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{uuid.uuid4().hex[:24]}",
                        "type": "function",
                        "function": {
                            "name": name,
                            "arguments": json.dumps(arguments, ensure_ascii=False),
                        },
                    }
                ],
            }
            finish = "tool_calls"
        # else: truncated by max_tokens (finish "length") or the auto branch chose text.
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_name,
        "choices": [
            # Token logprobs are not offered for chat here; the text-completion format
            # llama.cpp produces does not fit the chat response schema.
            {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        ],
        "usage": completion.get("usage")
        or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def _chunk(completion_id: str, model_name: str, delta: dict[str, Any], finish: str | None) -> dict:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model_name,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def _stream_response(response: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A finished response as stream chunks (tool calls arrive whole, in one delta)."""
    cid, model_name = response["id"], response["model"]
    choice = response["choices"][0]
    message = choice["message"]
    yield _chunk(cid, model_name, {"role": "assistant", "content": ""}, None)
    if message.get("tool_calls"):
        calls = [dict(call, index=i) for i, call in enumerate(message["tool_calls"])]
        yield _chunk(cid, model_name, {"tool_calls": calls}, None)
    elif message.get("content"):
        yield _chunk(cid, model_name, {"content": message["content"]}, None)
    last = _chunk(cid, model_name, {}, choice["finish_reason"])
    last["usage"] = response.get("usage")
    yield last


def _stream_text(
    chunks: Iterator[dict[str, Any]], completion_id: str, model_name: str
) -> Iterator[dict[str, Any]]:
    yield _chunk(completion_id, model_name, {"role": "assistant", "content": ""}, None)
    finish = "stop"
    for chunk in chunks:
        choice = chunk["choices"][0]
        if choice.get("text"):
            yield _chunk(completion_id, model_name, {"content": choice["text"]}, None)
        if choice.get("finish_reason"):
            finish = choice["finish_reason"]
    yield _chunk(completion_id, model_name, {}, finish)
