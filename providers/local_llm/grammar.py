"""JSON-schema → GBNF grammars that make a tiny model's output parse and validate.

Why our own converter rather than ``llama_cpp.llama_grammar.json_schema_to_gbnf``: the stock one
lets raw control characters (newlines) into strings, which ``json.loads`` rejects; leaves string
and digit lengths unbounded, so a looping 135M model never closes its JSON before ``max_tokens``;
and it fails on the non-standard shapes smolagents emits (``"type": "any"``, ``"nullable"``,
``"image"``). This module covers the JSON-schema subset that tool parameters and structured-output
schemas use in practice, and always produces compact JSON (``{"a": 1, "b": "x"}``) so there is no
whitespace for the model to wander in.

Supported: ``type`` (single or list), ``enum``, ``const``, ``nullable``, ``anyOf``/``oneOf``,
``allOf`` (merged), ``$ref`` into ``$defs``/``definitions``, objects (``properties``,
``required``; no extra keys are generated, and ``{"properties": {}}`` means exactly ``{}``), arrays (``items``, ``minItems``, ``maxItems``),
strings (``minLength``, ``maxLength``, ``format`` date/time/date-time), integers with a small
``minimum``..``maximum`` range (enumerated, so calls stay in range), numbers, booleans, null and
free-form values (``{}``). Anything else degrades to "any JSON value" rather than failing.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

#: Tool-call wrapper the chat handler teaches the model and then constrains it to.
TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"

#: Default cap on characters in one unconstrained JSON string. Bounds every constrained output,
#: so generation always terminates with closed JSON instead of running into ``max_tokens``.
DEFAULT_MAX_STRING_CHARS = 1200

#: Integer ranges at most this wide are enumerated in the grammar (keeps calls in range).
MAX_ENUMERATED_INT_RANGE = 256

_SMOLAGENTS_STRING_TYPES = {"image", "audio"}  # smolagents passes these around as strings/paths

_BASE_RULES: dict[str, str] = {
    "char": r'[^"\\\x00-\x1F\x7F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})',
    "string": r'"\"" char{0,%d} "\""',
    "integral": r'"0" | [1-9] [0-9]{0,15}',
    "integer": r'"-"? integral',
    "number": r'"-"? integral ("." [0-9]{1,15})? ([eE] [-+]? [0-9]{1,3})?',
    "boolean": r'"true" | "false"',
    "null": r'"null"',
    "value": r"object | array | string | number | boolean | null",
    "object": r'"{" ( string ": " value ( ", " string ": " value ){0,63} )? "}"',
    "array": r'"[" ( value ( ", " value ){0,63} )? "]"',
    "date": r'[0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] )',
    "time": r'( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,6} )? '
    r'( "Z" | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )?',
}
_BASE_DEPS: dict[str, tuple[str, ...]] = {
    "string": ("char",),
    "integer": ("integral",),
    "number": ("integral",),
    "value": ("object", "array", "string", "number", "boolean", "null"),
    "object": ("string", "value"),
    "array": ("value",),
}


class GrammarError(ValueError):
    """A schema (or tool list) that cannot be turned into a grammar."""


def gbnf_literal(text: str) -> str:
    """Quote ``text`` as a GBNF string literal (escapes quotes, backslashes, control chars)."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def json_literal(value: Any) -> str:
    """The GBNF literal matching exactly the compact JSON text of ``value``."""
    return gbnf_literal(json.dumps(value, ensure_ascii=False, separators=(", ", ": ")))


def sanitize_schema(schema: Any) -> dict[str, Any]:
    """Turn the dialects clients really send into plain JSON schema.

    smolagents' ``get_tool_json_schema`` emits ``"type": "any"``/``"image"``/``"audio"`` and
    marks optional inputs with ``"nullable": true`` (OpenAPI style); pydantic/LangChain emit
    standard schema. The result is a fresh dict; the input is not modified.
    """
    if not isinstance(schema, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {k: sanitize_schema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = sanitize_schema(value)
        elif key in ("anyOf", "oneOf", "allOf", "prefixItems") and isinstance(value, list):
            out[key] = [sanitize_schema(v) for v in value]
        else:
            out[key] = value
    types = out.get("type")
    if isinstance(types, str):
        types = [types]
    if isinstance(types, list):
        mapped: list[str] = []
        for t in types:
            if t == "any":
                mapped = []  # any value: no type constraint at all
                break
            mapped.append("string" if t in _SMOLAGENTS_STRING_TYPES else t)
        if mapped:
            out["type"] = mapped[0] if len(mapped) == 1 else mapped
        else:
            out.pop("type", None)
    if out.pop("nullable", False) and "type" in out:
        t = out["type"]
        t_list = t if isinstance(t, list) else [t]
        if "null" not in t_list:
            out["type"] = [*t_list, "null"]
    return out


class GrammarBuilder:
    """Accumulates named GBNF rules; ``visit`` returns the rule name matching a schema."""

    def __init__(self, *, max_string_chars: int = DEFAULT_MAX_STRING_CHARS) -> None:
        self.max_string_chars = max_string_chars
        self.rules: dict[str, str] = {}
        self._defs: dict[str, Any] = {}
        self._ref_rules: dict[str, str] = {}

    # -- rule table -------------------------------------------------------------------------
    def add_rule(self, name: str, body: str) -> str:
        """Add a rule under a unique, valid GBNF name and return that name."""
        name = re.sub(r"[^a-zA-Z0-9-]+", "-", name).strip("-").lower() or "r"
        candidate, i = name, 1
        while candidate in self.rules or candidate in _BASE_RULES:
            i += 1
            candidate = f"{name}-{i}"
        self.rules[candidate] = body
        return candidate

    def base(self, name: str) -> str:
        """Reference one of the built-in primitive rules (and pull in its dependencies)."""
        if name not in self.rules:
            body = _BASE_RULES[name]
            if name == "string":
                body = body % self.max_string_chars
            self.rules[name] = body
            for dep in _BASE_DEPS.get(name, ()):
                self.base(dep)
        return name

    def format(self, root: str) -> str:
        """The complete grammar text with ``root`` as the start rule."""
        lines = [f"root ::= {root}"]
        lines += [f"{name} ::= {body}" for name, body in self.rules.items() if name != "root"]
        return "\n".join(lines) + "\n"

    # -- schema visitor ---------------------------------------------------------------------
    def set_definitions(self, schema: dict[str, Any]) -> None:
        for key in ("$defs", "definitions"):
            for name, sub in (schema.get(key) or {}).items():
                self._defs[f"#/{key}/{name}"] = sub

    def visit(self, schema: Any, name: str) -> str:
        """Return a GBNF expression (usually a rule name) matching ``schema``."""
        schema = sanitize_schema(schema) if isinstance(schema, dict) else {}
        if "$ref" in schema:
            return self._visit_ref(schema["$ref"], name)
        if "const" in schema:
            return self.add_rule(name, json_literal(schema["const"]))
        if "enum" in schema:
            values = list(schema["enum"])
            if not values:
                raise GrammarError(f"{name}: empty enum")
            return self.add_rule(name, " | ".join(json_literal(v) for v in values))
        for key in ("anyOf", "oneOf"):
            if key in schema:
                alts = [self.visit(s, f"{name}-{i}") for i, s in enumerate(schema[key])]
                return self.add_rule(name, " | ".join(alts))
        if "allOf" in schema:
            return self.visit(_merge_all_of(schema, self._defs), name)
        types = schema.get("type")
        if isinstance(types, list):
            alts = [self.visit({**schema, "type": t}, f"{name}-{t}") for t in types]
            return self.add_rule(name, " | ".join(alts))
        if types is None:
            if "properties" in schema or schema.get("additionalProperties") is False:
                types = "object"
            elif "items" in schema:
                types = "array"
            else:
                return self.base("value")
        if types == "object":
            return self._visit_object(schema, name)
        if types == "array":
            return self._visit_array(schema, name)
        if types == "string":
            return self._visit_string(schema, name)
        if types == "integer":
            return self._visit_integer(schema, name)
        if types in ("number", "boolean", "null"):
            return self.base(types)
        return self.base("value")

    def _visit_ref(self, ref: str, name: str) -> str:
        if ref in self._ref_rules:
            return self._ref_rules[ref]
        target = self._defs.get(ref)
        if target is None:
            raise GrammarError(f"unresolvable $ref {ref!r} (only local $defs are supported)")
        # Reserve the rule name first so recursive schemas terminate.
        rule = self.add_rule("ref-" + ref.rsplit("/", 1)[-1], "__pending__")
        self._ref_rules[ref] = rule
        self.rules[rule] = self.visit(target, f"{rule}-body")
        return rule

    def _visit_object(self, schema: dict[str, Any], name: str) -> str:
        if "properties" not in schema and schema.get("additionalProperties", True) is not False:
            return self.base("object")  # a free-form dict
        props: dict[str, Any] = schema.get("properties") or {}
        if not props:
            # Declared with no properties (a tool without arguments): exactly {}. Extra keys
            # would be rejected by smolagents ("Argument x is not in the tool's input schema").
            return self.add_rule(name, '"{}"')
        required = [k for k in props if k in set(schema.get("required") or [])]
        optional = [k for k in props if k not in required]
        kv = {
            key: self.add_rule(
                f"{name}-{key}-kv", f'{json_literal(key)} ": " {self.visit(sub, f"{name}-{key}")}'
            )
            for key, sub in props.items()
        }
        body = '"{" '
        if required:
            body += ' ", " '.join(kv[k] for k in required)
            for key in optional:  # declared order, each may be left out
                body += f' ( ", " {kv[key]} )?'
        elif optional:
            # No required keys: any subsequence of the optional ones, in declared order.
            alts = []
            for i, key in enumerate(optional):
                rest = "".join(f' ( ", " {kv[k]} )?' for k in optional[i + 1 :])
                alts.append(f"{kv[key]}{rest}")
            body += "( " + " | ".join(alts) + " )?"
        body += ' "}"'
        return self.add_rule(name, body)

    def _visit_array(self, schema: dict[str, Any], name: str) -> str:
        items = schema.get("items")
        item = self.visit(items if isinstance(items, dict) else {}, f"{name}-item")
        lo = int(schema.get("minItems", 0))
        hi = schema.get("maxItems")
        hi = 64 if hi is None else int(hi)  # bounded, so the model cannot list forever
        if hi < lo:
            raise GrammarError(f"{name}: maxItems < minItems")
        if hi == 0:
            return self.add_rule(name, '"[]"')
        rest_lo, rest_hi = max(lo - 1, 0), hi - 1
        inner = f'{item} ( ", " {item} ){{{rest_lo},{rest_hi}}}'
        body = f'"[" {inner} "]"' if lo > 0 else f'"[" ( {inner} )? "]"'
        return self.add_rule(name, body)

    def _visit_string(self, schema: dict[str, Any], name: str) -> str:
        fmt = schema.get("format")
        if fmt in ("date", "time"):
            return self.add_rule(name, f'"\\"" {self.base(fmt)} "\\""')
        if fmt == "date-time":
            return self.add_rule(name, f'"\\"" {self.base("date")} "T" {self.base("time")} "\\""')
        if "minLength" in schema or "maxLength" in schema:
            lo = int(schema.get("minLength", 0))
            hi = int(schema.get("maxLength", max(lo, self.max_string_chars)))
            return self.add_rule(name, f'"\\"" {self.base("char")}{{{lo},{hi}}} "\\""')
        return self.base("string")

    def _visit_integer(self, schema: dict[str, Any], name: str) -> str:
        lo, hi = _int_bounds(schema)
        if lo is not None and hi is not None:
            if hi < lo:
                raise GrammarError(f"{name}: empty integer range")
            if hi - lo <= MAX_ENUMERATED_INT_RANGE:
                return self.add_rule(name, " | ".join(f'"{v}"' for v in range(lo, hi + 1)))
        if lo is not None and lo >= 0:
            return self.add_rule(name, self.base("integral"))  # at least no minus sign
        return self.base("integer")


def _int_bounds(schema: dict[str, Any]) -> tuple[int | None, int | None]:
    lo = schema.get("minimum")
    hi = schema.get("maximum")
    if isinstance(schema.get("exclusiveMinimum"), (int, float)):
        lo = math.floor(schema["exclusiveMinimum"]) + 1
    if isinstance(schema.get("exclusiveMaximum"), (int, float)):
        hi = math.ceil(schema["exclusiveMaximum"]) - 1
    return (
        math.ceil(lo) if isinstance(lo, (int, float)) else None,
        math.floor(hi) if isinstance(hi, (int, float)) else None,
    )


def _merge_all_of(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    props = dict(merged.get("properties") or {})
    required = list(merged.get("required") or [])
    for part in schema["allOf"]:
        part = defs.get(part["$ref"], {}) if isinstance(part, dict) and "$ref" in part else part
        if not isinstance(part, dict):
            continue
        props.update(part.get("properties") or {})
        required += [r for r in part.get("required") or [] if r not in required]
        for key, value in part.items():
            if key not in ("properties", "required"):
                merged.setdefault(key, value)
    if props:
        merged["properties"] = props
        merged.setdefault("type", "object")
    if required:
        merged["required"] = required
    return merged


# -- public entry points --------------------------------------------------------------------


def schema_grammar(
    schema: dict[str, Any], *, max_string_chars: int = DEFAULT_MAX_STRING_CHARS
) -> str:
    """Grammar whose every sentence is compact JSON valid against ``schema``."""
    builder = GrammarBuilder(max_string_chars=max_string_chars)
    builder.set_definitions(schema)
    return builder.format(builder.visit(schema, "value-root"))


def tool_name(tool: dict[str, Any]) -> str:
    """The function name of an OpenAI ``tools`` entry (or a bare function dict)."""
    fn = tool.get("function", tool)
    return str(fn["name"])


def tool_call_grammar(
    tools: Sequence[dict[str, Any]],
    *,
    allow_text: bool = False,
    text_schema: dict[str, Any] | None = None,
    max_string_chars: int = DEFAULT_MAX_STRING_CHARS,
) -> str:
    """Grammar for one tool call ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``.

    One branch per tool, each fixing the name and constraining ``arguments`` by that tool's
    parameter schema — so the model cannot invent a tool, misspell a name, omit a required
    argument, or leave an enum. ``allow_text`` (``tool_choice="auto"``) adds a second branch:
    a plain-text answer that does not start with ``<`` (or JSON for ``text_schema``).
    """
    if not tools:
        raise GrammarError("tool_call_grammar needs at least one tool")
    builder = GrammarBuilder(max_string_chars=max_string_chars)
    branches = []
    for i, tool in enumerate(tools):
        fn = tool.get("function", tool)
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        builder.set_definitions(params)
        name = tool_name(tool)
        args = builder.visit(params, f"args-{i}-{name}")
        head = gbnf_literal(f'{{"name": {json.dumps(name, ensure_ascii=False)}, "arguments": ')
        branches.append(builder.add_rule(f"call-{i}-{name}", f'{head} {args} "}}"'))
    call = builder.add_rule("call", " | ".join(branches))
    block = builder.add_rule(
        "tool-call-block", f"{gbnf_literal(TOOL_CALL_OPEN)} {call} {gbnf_literal(TOOL_CALL_CLOSE)}"
    )
    if not allow_text:
        return builder.format(block)
    if text_schema is not None:
        builder.set_definitions(text_schema)
        text = builder.visit(text_schema, "text-json")
    else:
        # First character anything but "<" (so "<tool_call>" can only come from the call
        # branch), then free text; EOS is allowed anywhere after that.
        text = builder.add_rule("text", r"[^<\x00-\x08] [^\x00]*")
    return builder.format(f"{block} | {text}")


def names(tools: Iterable[dict[str, Any]]) -> list[str]:
    """Function names of ``tools`` in order."""
    return [tool_name(t) for t in tools]
