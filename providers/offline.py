"""The ``offline`` provider: a deterministic, rule-based policy standing in for an LLM.

It is *not* a language model and never pretends to be one: every result produced with it is
labelled :data:`OFFLINE_LABEL`. It exists so demos and tests run fast and reproducibly on a
machine with no model at all, while exercising exactly the same code paths as a real model —
it is a real smolagents ``Model`` and a real LangChain chat model with ``bind_tools``.

The rules, in order:

1. **Which tools.** A tool is relevant when a word of the agent's instructions (then of the
   team's goal) shares a stem with a word of the tool's name (``"validate the data"`` →
   ``validate_dataset``). Relevant tools are used in the order the instructions mention them;
   if they mention none, every tool is used in order.
2. **Which arguments.** A column the team's goal names fills a measure parameter (``metric``,
   ``column``), and one it names after "by"/"per" fills ``group_by`` — the user's words first.
   Otherwise each parameter is filled from the ``artifacts`` of earlier successful calls (the
   newest wins), else from the run context, else from the schema's ``enum``/``default``.
   Optional parameters with no known value are left out so the tool infers them.
3. **Reacting to errors.** A failed call is retried once with only its required arguments
   (the usual cause is a wrong optional value); a second failure moves on.
4. **Handing off** (only an agent whose brief lists handoff tools). When its own tools are done,
   the agent hands the request to the peer whose scope the team's goal mentions first, among
   peers that have not worked on it yet — once per turn, with the goal's matching words as
   the reason. No peer mentioned: a specialist finishes; an agent with no tools of its own
   (a triage agent) hands to its first unvisited peer, saying the request named none.
5. **Finishing.** When every relevant tool has been tried, it calls ``final_answer`` with the
   tools' own summaries — so the answer contains only numbers the tools computed.

Instructions, goal, context, and each call's summary and artifacts come from the agent node as
data — a :class:`~relaygraph.providers.brief.RunBrief` — never parsed back out of the prompt, so
the prompt can be worded and ordered for a language model. Only what the model itself said and
was told (its calls and their errors) is read from smolagents' memory messages.
"""

from __future__ import annotations

import ast
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from relaygraph.observability.usage import OFFLINE_POLICY_MODEL
from relaygraph.providers.brief import CallOutcome, HandoffOption, RunBrief
from smolagents import Model
from smolagents.models import (
    ChatMessage,
    ChatMessageToolCall,
    ChatMessageToolCallFunction,
    MessageRole,
)

OFFLINE_LABEL = "offline (deterministic rule-based policy; no LLM was used)"
OFFLINE_MODEL_ID = OFFLINE_POLICY_MODEL  # usage counts its calls as offline-policy calls, not LLM calls

GENERIC_STEMS = {"datas", "data", "file", "the", "and", "from", "with", "for"}
#: Words of a peer's scope that say nothing about its domain (rule 4).
SCOPE_NOISE = GENERIC_STEMS | {"tools", "agent", "hand", "reque", "its", "their", "all", "each", "every", "any"}
WORD_RE = re.compile(r"[a-z][a-z0-9]+")
FAILED_CALL_RE = re.compile(r"Error executing tool '([^']+)' with arguments (\{.*?\}): ", re.S)


def _stem(word: str) -> str:
    return word.lower()[:5]


def _stems(text: str) -> list[str]:
    return [_stem(w) for w in WORD_RE.findall(text.lower())]


def _text(content: Any) -> str:
    """Message content as plain text (smolagents uses lists of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def rank_tools(task: str, tools: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rule 1: the tools the task asks for, in the order it asks for them."""
    words = _stems(task)
    positions: list[tuple[int, int, dict[str, Any]]] = []
    for order, tool in enumerate(tools):
        name_stems = {_stem(w) for w in tool["name"].split("_")} - GENERIC_STEMS
        hits = [i for i, w in enumerate(words) if w in name_stems]
        if hits:
            positions.append((hits[0], order, tool))
    if not positions:
        return list(tools)
    return [tool for _, _, tool in sorted(positions, key=lambda p: (p[0], p[1]))]


def _as_schema_type(value: Any, kind: Any) -> Any:
    """Artifacts are strings; a ``number``/``integer`` parameter gets the number they spell."""
    if isinstance(value, str) and kind in ("number", "integer"):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if kind == "integer" and number.is_integer() else number
    return value


def fill_arguments(
    params: dict[str, Any],
    required: Iterable[str],
    known: dict[str, Any],
    *,
    only_required: bool = False,
) -> tuple[dict[str, Any] | None, str]:
    """Rule 2: arguments from known values; (None, reason) when a required one is unknown."""
    required = set(required)
    args: dict[str, Any] = {}
    for name, spec in params.items():
        is_required = name in required and not spec.get("nullable")
        if only_required and not is_required:
            continue
        enum = spec.get("enum")
        value = _as_schema_type(known.get(name), spec.get("type"))
        if value is not None and (not enum or value in enum):
            args[name] = value
        elif is_required and enum:
            args[name] = enum[0]
        elif is_required and "default" in spec:
            args[name] = spec["default"]
        elif is_required:
            return None, f"no known value for required argument {name!r}"
    return args, ""


MEASURE_PARAMS = ("metric", "column")
GROUP_PARAMS = ("group_by",)
GROUP_WORDS = {"by", "per", "across", "each"}
ID_RE = re.compile(r"(^|_)(id|key|code|no|uuid)$|[a-z]Id$")  # identifiers are never measures


def named_columns(goal: str, columns: Sequence[str]) -> list[tuple[int, str]]:
    """(word position, column) for each column the goal names, in the goal's order.

    A column is named when every word of its name (3+ letters, split at ``_``/spaces) shares
    a stem with a word of the goal: "temperature" names ``temperature_c``."""
    words = [_stem(w) for w in WORD_RE.findall(goal.lower())]
    found = []
    for column in columns:
        parts = [_stem(w) for w in re.findall(r"[a-z][a-z0-9]*", column.lower()) if len(w) >= 3]
        parts = [p for p in parts if p not in GENERIC_STEMS]
        if parts and all(p in words for p in parts):
            found.append((min(words.index(p) for p in parts), column))
    return sorted(found)


def goal_arguments(goal: str, params: dict[str, Any]) -> dict[str, str]:
    """Rule 2's first part: the columns the goal names, for measure and group-by parameters."""
    words = WORD_RE.findall(goal.lower())
    chosen: dict[str, str] = {}
    for name, spec in params.items():
        if name not in (*MEASURE_PARAMS, *GROUP_PARAMS) or not spec.get("enum"):
            continue
        named = named_columns(goal, [str(v) for v in spec["enum"]])
        grouped = [c for pos, c in named if pos > 0 and words[pos - 1] in GROUP_WORDS]
        if name in GROUP_PARAMS and grouped:
            chosen[name] = grouped[0]
        elif name in MEASURE_PARAMS and (measures := [c for _, c in named
                                                      if c not in grouped and not ID_RE.search(c)]):
            chosen[name] = measures[0]
    return chosen


@dataclass
class Call:
    tool: str
    arguments: dict[str, Any]
    observation: str = ""
    error: bool = False
    id: str = ""


@dataclass
class Transcript:
    """What the policy can know: the brief (task, context, call outcomes) and the calls made."""

    task: str = ""
    brief: RunBrief | None = None
    calls: list[Call] = field(default_factory=list)

    @property
    def context(self) -> dict[str, Any]:
        return dict(self.brief.context) if self.brief else {}

    def focus(self) -> str:
        """The text tools are ranked by: the instructions, then the goal (the task without a brief)."""
        return f"{self.brief.instructions}\n{self.brief.goal}" if self.brief else self.task

    def outcome(self, call: Call) -> CallOutcome | None:
        return self.brief.calls.get(call.id) if self.brief and not call.error else None

    def known_values(self) -> dict[str, Any]:
        values = self.context
        for call in self.calls:
            if outcome := self.outcome(call):
                values.update(outcome.artifacts)
        findings = values.get("findings")
        if isinstance(findings, (list, dict)) and "notes" not in values:
            items = findings.values() if isinstance(findings, dict) else findings
            values["notes"] = "\n".join(f"- {f}" for f in items)
        return values

    def summaries(self) -> list[str]:
        lines = []
        for call in self.calls:
            if call.error:
                lines.append(f"{call.tool} failed: {call.observation.strip().splitlines()[-1][:200]}")
                continue
            outcome = self.outcome(call)
            summary = outcome.summary if outcome else (call.observation.strip().splitlines() or [""])[0][:300]
            lines.append(f"{call.tool}: {summary}")
        return lines


def read_transcript(messages: Sequence[Any], brief: RunBrief | None = None) -> Transcript:
    """The transcript: the brief, plus the calls rebuilt from smolagents' memory messages."""
    transcript = Transcript(brief=brief)
    pending: list[Call] = []
    for message in messages:
        role = str(getattr(message, "role", None) or message.get("role"))
        role = role.split(".")[-1].lower().replace("_", "-")
        text = _text(getattr(message, "content", None) if not isinstance(message, dict) else message.get("content"))
        if role == "user" and text.startswith("New task:") and not transcript.task:
            transcript.task = text.removeprefix("New task:").strip()
        elif role == "tool-call" and text.startswith("Calling tools:"):
            try:
                raw_calls = ast.literal_eval(text.removeprefix("Calling tools:").strip())
            except (ValueError, SyntaxError):
                raw_calls = []
            pending = [
                Call(c["function"]["name"], dict(c["function"].get("arguments") or {}), id=str(c.get("id") or ""))
                for c in raw_calls
                if isinstance(c, dict) and "function" in c
            ]
            transcript.calls.extend(pending)
        elif role == "tool-response" and pending:
            is_error = "\nError:\n" in f"\n{text}" or text.startswith("Call id:")
            body = text.removeprefix("Observation:").strip()
            for call in pending:  # the policy issues one call per step
                call.observation += body
                call.error = call.error or is_error
            pending = []
        elif role == "tool-response" and (failed := FAILED_CALL_RE.search(text)):
            # smolagents records no tool call for a step whose tool raised: only this error text.
            try:
                arguments = ast.literal_eval(failed.group(2))
            except (ValueError, SyntaxError):
                arguments = {}
            arguments = arguments if isinstance(arguments, dict) else {}
            reason = text[failed.end():].strip().splitlines()[0] if text[failed.end():].strip() else text
            transcript.calls.append(Call(failed.group(1), arguments, observation=reason, error=True))
    return transcript


@dataclass
class Decision:
    tool: str
    arguments: dict[str, Any]
    thought: str


def choose_handoff(goal: str, options: dict[str, HandoffOption], *, must: bool) -> tuple[str, str] | None:
    """Rule 4: (handoff tool, reason) — the unvisited peer whose scope ``goal`` mentions first.

    ``must``: the agent did no work of its own, so it hands off even when no peer is mentioned.
    """
    words = WORD_RE.findall(goal.lower())
    open_options = [(name, option) for name, option in options.items() if not option.visited]
    ranked = []
    for order, (name, option) in enumerate(open_options):
        scope = {_stem(w) for w in WORD_RE.findall(f"{option.peer} {option.scope}".lower())} - SCOPE_NOISE
        hits = [i for i, w in enumerate(words) if _stem(w) in scope]
        if hits:
            ranked.append((hits[0], order, name, option, sorted({words[i] for i in hits}, key=words.index)))
    if ranked:
        _, _, name, option, matched = min(ranked, key=lambda r: (r[0], r[1]))
        return name, f"the request asks for what {option.peer} does ({', '.join(matched)})"
    if must and open_options:
        name, option = open_options[0]
        return name, f"the request names no specialist's domain; {option.peer} takes it first"
    return None


def decide(transcript: Transcript, tools: Sequence[dict[str, Any]]) -> Decision:
    """Rules 1-5 applied to a transcript: the next call, the handoff, or the final answer."""
    handoffs = transcript.brief.handoffs if transcript.brief else {}
    usable = [t for t in tools if t["name"] != "final_answer" and t["name"] not in handoffs]
    known = transcript.known_values()
    skipped: list[str] = []
    for tool in rank_tools(transcript.focus(), usable):
        attempts = [c for c in transcript.calls if c.tool == tool["name"]]
        if attempts and not attempts[-1].error:
            continue
        if len(attempts) >= 2:
            continue
        params = tool.get("parameters", {}).get("properties", {})
        required = tool.get("parameters", {}).get("required", [])
        goal = transcript.brief.goal if transcript.brief else ""
        args, reason = fill_arguments(params, required, {**known, **goal_arguments(goal, params)},
                                      only_required=bool(attempts))
        if args is None:
            skipped.append(f"{tool['name']} ({reason})")
            continue
        why = "retrying with only its required arguments after an error" if attempts else (
            "the task asks for it" if len(usable) > 1 else "it is the only tool")
        return Decision(tool["name"], args, f"Thought: call {tool['name']} — {why}.")
    offered = {t["name"] for t in tools} & set(handoffs)
    if offered and transcript.brief and not any(c.tool in handoffs for c in transcript.calls):
        choice = choose_handoff(transcript.brief.goal, {n: o for n, o in handoffs.items() if n in offered},
                                must=not usable)
        if choice:
            name, reason = choice
            return Decision(name, {"reason": reason}, f"Thought: hand off — {reason}.")
    lines = transcript.summaries() + [f"skipped {s}" for s in skipped]
    answer = "\n".join(lines) if lines else "No tool applied to this task."
    return Decision("final_answer", {"answer": answer}, "Thought: every relevant tool has been tried; report.")


def tool_schemas(tools: Sequence[Any]) -> list[dict[str, Any]]:
    """OpenAI-style function schemas from smolagents tools or LangChain tool dicts."""
    from smolagents.models import get_tool_json_schema

    out = []
    for tool in tools:
        schema = tool if isinstance(tool, dict) else get_tool_json_schema(tool)
        out.append(schema.get("function", schema))
    return out


class OfflinePolicyModel(Model):
    """A smolagents ``Model`` driven by :func:`decide` instead of an LLM."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(model_id=OFFLINE_MODEL_ID, **kwargs)
        self.brief: RunBrief | None = None

    def receive_brief(self, brief: RunBrief) -> None:
        """The agent node's structured view of this run (see :mod:`relaygraph.providers.brief`)."""
        self.brief = brief

    def generate(
        self,
        messages: list[ChatMessage | dict],
        stop_sequences: list[str] | None = None,
        response_format: dict[str, str] | None = None,
        tools_to_call_from: list[Any] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        transcript = read_transcript(messages, self.brief)
        if not tools_to_call_from:  # e.g. smolagents asking for a final answer after max_steps
            text = "\n".join(transcript.summaries()) or "No observations were made."
            return ChatMessage(role=MessageRole.ASSISTANT, content=text)
        decision = decide(transcript, tool_schemas(tools_to_call_from))
        call = ChatMessageToolCall(
            id=f"call_{uuid.uuid4().hex[:12]}",
            type="function",
            function=ChatMessageToolCallFunction(name=decision.tool, arguments=decision.arguments),
        )
        return ChatMessage(role=MessageRole.ASSISTANT, content=decision.thought, tool_calls=[call])


# --- LangChain side: routing decisions and structured output --------------------------------


def choose_value(spec: dict[str, Any], name: str, text: str) -> Any:
    """A value for one JSON-schema property, by rule: enum mentioned in text, default."""
    kind = spec.get("type")
    enum = spec.get("enum")
    if kind == "array":
        items = spec.get("items", {})
        if "const" in items:  # pydantic writes a one-value Literal as const, not a one-item enum
            return [items["const"]]
        if items.get("enum"):
            mentioned = [v for v in items["enum"] if _mentions(text, str(v))]
            return mentioned or list(items["enum"])
        return []
    if "const" in spec:
        return spec["const"]
    if enum:
        mentioned = sorted((_first_mention(text, str(v)), i, v) for i, v in enumerate(enum))
        return mentioned[0][2] if mentioned[0][0] < len(text) else enum[0]
    if "default" in spec:
        return spec["default"]
    if kind in ("integer", "number"):
        return spec.get("minimum", 1)
    if kind == "boolean":
        return False
    if kind == "object":
        return {}
    return f"offline policy: chosen by keyword rules from the request ({name})"


def _first_mention(text: str, value: str) -> int:
    found = [text.lower().find(w) for w in {value.lower(), value.lower().replace("_", " ")}]
    found = [i for i in found if i >= 0]
    return min(found) if found else len(text)


def _mentions(text: str, value: str) -> bool:
    return _first_mention(text, value) < len(text)


def resolve_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Inline ``$ref``s from ``$defs`` (pydantic emits them for enums)."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(defs[node["$ref"].split("/")[-1]])
            return {k: walk(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


class OfflineChatModel(BaseChatModel):
    """A LangChain chat model with ``bind_tools`` whose choices follow the same rules."""

    model_name: str = OFFLINE_MODEL_ID

    @property
    def _llm_type(self) -> str:
        return "relaygraph-offline"

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any):  # type: ignore[override]
        schemas = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=schemas, tool_choice=tool_choice, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        request = "\n".join(
            _text(m.content) for m in messages if isinstance(m, (HumanMessage, SystemMessage, ToolMessage))
        )
        tools = [t.get("function", t) for t in kwargs.get("tools") or []]
        if not tools:
            last = next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)
            text = _text(last.content) if last else ""
            message = AIMessage(content=f"[{OFFLINE_LABEL}] {text.strip()[:500]}")
            return ChatResult(generations=[ChatGeneration(message=message)])
        choice = kwargs.get("tool_choice")
        named = choice.get("function", {}).get("name") if isinstance(choice, dict) else choice
        picked = next((t for t in tools if t["name"] == named), None) or rank_tools(request, tools)[0]
        params = resolve_refs(picked.get("parameters", {}))
        args = {
            name: choose_value(spec, name, request)
            for name, spec in params.get("properties", {}).items()
        }
        call = {"name": picked["name"], "args": args, "id": f"call_{uuid.uuid4().hex[:12]}", "type": "tool_call"}
        message = AIMessage(content="", tool_calls=[call])
        return ChatResult(generations=[ChatGeneration(message=message)])
