"""What a run may set through ``configurable``: one declared schema per graph.

Each graph module declares ``PARAMS``, a subclass of :class:`RunParams` naming its own keys with
their types and ranges. The CLI validates ``--param KEY=VALUE`` against it before any work, so
``partitions=0`` or an unknown specialist is one line and exit 2 instead of a run that quietly
used a default; the nodes read their keys through the same models (``from_config``), so Python
and ``langgraph dev`` callers get the same checks when the node runs.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from relaygraph.tools.declared import ROLES, Role, parse_roles
from relaygraph.tools.workspace import dataset_name_problem


class ParamError(ValueError):
    """A ``configurable`` key or value the graph does not accept; the message says what it takes."""


class RunParams(BaseModel):
    """Keys every graph accepts: the per-run settings overrides (see ``config.settings.OVERRIDABLE``)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, description="Model provider: offline, openai or local.")
    model_id: str | None = Field(default=None, description="Model name sent to the provider.")
    dataset: str | None = Field(default=None, description="Dataset file inside the data directory.")
    max_steps: int | None = Field(default=None, ge=1, le=100, description="ReAct steps per agent.")
    max_retries: int | None = Field(default=None, ge=1, le=10, description="Attempts per agent node.")
    temperature: float | None = Field(default=None, ge=0, description="Sampling temperature sent to the provider.")
    observation_chars: int | None = Field(default=None, ge=200,
                                          description="Characters of each tool result the model reads.")
    roles: dict[str, Role] | None = Field(
        default=None, description="Column roles that win over inferred ones: COLUMN:ROLE pairs, e.g. "
        "balance_change:additive,store:identifier (a {column: role} mapping from Python).")

    @field_validator("dataset")
    @classmethod
    def _inside_data_dir(cls, value: str | None) -> str | None:
        problem = dataset_name_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("roles", mode="before")
    @classmethod
    def _parse_roles(cls, value: Any) -> dict[str, Role] | None:
        return parse_roles(value) or None


def declared_roles(config: Mapping[str, Any] | None) -> dict[str, Role]:
    """The run's declared column roles (``configurable.roles``), checked; ``{}`` when none.

    Each node hands them to its :class:`~relaygraph.tools.Workspace`, so every tool honours them."""
    return parse_roles(((config or {}).get("configurable") or {}).get("roles"))


#: Set by the runner or dedicated options, never through --param.
RESERVED = frozenset({"thread_id", "checkpoint_id", "checkpoint_ns", "approve_before"})


def allowed(schema: type[BaseModel], field: str) -> str:
    """What ``field`` accepts, in words (its choices or its range)."""
    info = schema.model_fields[field]
    if field == "roles":
        return f"COLUMN:ROLE pairs separated by commas, ROLE one of {', '.join(ROLES)}"
    choices = _choices(info.annotation)
    if choices:
        return "one or more of " + ", ".join(map(str, choices)) if _is_list(info.annotation) else (
            "one of " + ", ".join(map(str, choices)))
    bounds = _bounds(info.metadata)
    kind = _type_name(info.annotation)
    low, high = bounds.get("minimum"), bounds.get("maximum")
    if low is not None and high is not None:
        return f"{kind} from {low} to {high}"
    limits = [f"{sign} {bounds[key]}" for key, sign in (("minimum", ">="), ("exclusive_minimum", ">"),
                                                         ("maximum", "<="), ("exclusive_maximum", "<"))
              if key in bounds]
    if limits:
        return f"{kind} {' and '.join(limits)}"
    if kind == "str" and info.description:  # "str" tells nothing: the expected format does
        return info.description.rstrip(".")
    return kind


def _shown(value: Any) -> str:
    """A --param value as the user typed it: JSON for objects and lists, not a Python repr."""
    return json.dumps(value) if isinstance(value, dict | list) else repr(value)


def validate_params(schema: type[RunParams], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` checked against ``schema``: the ones given, normalised; else :class:`ParamError`
    naming the first bad key, why, and what it accepts."""
    unknown = sorted(set(values) - set(schema.model_fields))
    if unknown:
        key = unknown[0]
        reason = "is set by its own option" if key in RESERVED else "is not a parameter of this graph"
        raise ParamError(f"--param {key} {reason}; parameters: {', '.join(sorted(schema.model_fields))}.")
    try:
        checked = schema.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = str(first["loc"][0]) if first["loc"] else "?"
        message = first["msg"].removeprefix("Value error, ").rstrip(".")
        # a validator that names the value itself (fail='x': ...) is not prefixed with it twice
        message = message.removeprefix(f"{key}={_shown(values.get(key))}: ")
        if key == "roles":  # its message already lists the roles (or the expected form)
            raise ParamError(f"--param roles: {message}.") from None
        hint = allowed(schema, key)
        described = (schema.model_fields[key].description or "").rstrip(".") if key in schema.model_fields else ""
        # a free-form key's "allowed" is its description, which its validator's message already says better
        tail = "" if hint == described else f"; allowed: {hint}"
        raise ParamError(f"--param {key}={_shown(values.get(key))}: {message}{tail}.") from None
    return checked.model_dump(include=set(values), mode="json")


def describe(schema: type[RunParams]) -> dict[str, str]:
    """``{key: what it accepts}`` for help texts and ``relaygraph graphs --json``."""
    return {name: allowed(schema, name) for name in schema.model_fields}


def field_info(schema: type[RunParams], field: str) -> dict[str, Any]:
    """One key as ``relaygraph graphs --json`` lists it: its type, default, choices or range,
    what it accepts in words, its description, and whether every graph takes it (``common``)."""
    info = schema.model_fields[field]
    default = info.get_default(call_default_factory=True)
    described: dict[str, Any] = {
        "type": _type_name(info.annotation),
        "default": default if isinstance(default, str | int | float | bool | list | dict | None) else str(default),
        "accepts": allowed(schema, field),
        "description": info.description or "",
        "common": field in RunParams.model_fields,
    }
    choices = _choices(info.annotation)
    if choices:
        described["choices"] = list(choices)
    described.update(_bounds(info.metadata))
    return described


def _bounds(metadata: list[Any]) -> dict[str, Any]:
    """Numeric limits declared with ``Field(ge=, gt=, le=, lt=)`` (JSON-schema names)."""
    names = {"ge": "minimum", "gt": "exclusive_minimum", "le": "maximum", "lt": "exclusive_maximum"}
    found: dict[str, Any] = {}
    for item in metadata:
        for attr, key in names.items():
            value = getattr(item, attr, None)
            if value is not None and type(item).__name__.lower() in (attr, "interval"):
                found[key] = value
    return found


def _choices(annotation: Any) -> tuple[Any, ...]:
    for arg in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(arg) is typing.Literal:
            return typing.get_args(arg)
        nested = [a for a in typing.get_args(arg) if typing.get_origin(a) is typing.Literal]
        if nested:
            return typing.get_args(nested[0])
    return ()


def _is_list(annotation: Any) -> bool:
    return any(typing.get_origin(a) is list for a in (annotation, *typing.get_args(annotation)))


def _type_name(annotation: Any) -> str:
    """``int``, ``str`` (a Literal's value type), ``list of str``, ``str/dict`` — None left out."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    args = [a for a in typing.get_args(annotation) if a is not type(None)] if union else [annotation]
    names: list[str] = []
    for arg in args:
        origin = typing.get_origin(arg)
        if origin is typing.Literal:
            name = type(typing.get_args(arg)[0]).__name__
        elif origin is list:
            inner = typing.get_args(arg)
            name = f"list of {_type_name(inner[0])}" if inner else "list"
        else:
            name = getattr(origin or arg, "__name__", str(arg))
        if name not in names:
            names.append(name)
    return "/".join(names)
