"""Ballots: what one voter says, and the checks that make a ballot trustworthy or not.

A ballot is a *choice* with a *confidence* (0–1) and the *evidence* it rests on: the tool
facts the voter says it relied on. Evidence is what lets a protocol tell an honest
disagreement from a fabrication — a cited fact either matches what the voter's tools really
returned (recorded in its ReAct steps) or it does not (:func:`evidence_problems`).

Choices are compared after :func:`normalize_choice` (case, surrounding and repeated
whitespace), so "North" and " north " are the same answer.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

Scalar = str | int | float | bool | None


def normalize_choice(choice: str) -> str:
    """The canonical form two choices are compared in."""
    return " ".join(str(choice).split()).casefold()


def canonical_json(value: Any) -> bytes:
    """One byte string per value (sorted keys, no spaces): what digests and signatures cover."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def digest(value: Any) -> str:
    """SHA-256 of the canonical JSON of ``value`` (a PBFT proposal digest)."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


class Evidence(BaseModel):
    """A fact a voter cites: ``facts`` it says ``tool`` returned."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tool: str = Field(min_length=1)
    facts: dict[str, Scalar] = Field(default_factory=dict)


class Ballot(BaseModel):
    """One voter's answer in one round."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    voter: str = Field(min_length=1)
    choice: str = Field(min_length=1)
    confidence: float = Field(ge=0.0, le=1.0)
    evidence: tuple[Evidence, ...] = ()
    round: int = Field(default=1, ge=1)
    rationale: str = ""

    @field_validator("choice")
    @classmethod
    def _normalize(cls, value: str) -> str:
        normalized = normalize_choice(value)
        if not normalized:
            raise ValueError("a ballot's choice must not be blank")
        return normalized


def _same(claimed: Scalar, observed: Any) -> bool:
    if isinstance(claimed, bool) or isinstance(observed, bool):
        return claimed == observed
    if isinstance(claimed, (int, float)) and isinstance(observed, (int, float)):
        return math.isclose(float(claimed), float(observed), rel_tol=1e-6, abs_tol=1e-9)
    return normalize_choice(str(claimed)) == normalize_choice(str(observed))


def evidence_problems(ballot: Ballot, observed: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Why ``ballot``'s evidence cannot be trusted, given what its voter's tools really returned.

    ``observed[tool]`` holds the facts of the voter's successful calls of ``tool``. A cited
    tool the voter never called, or a cited fact that differs from the observation, is a
    fabrication — the signature of a hallucinating or prompt-injected ("lying") agent.
    Facts the tool did not report at all are also fabrications: evidence must be checkable.
    """
    problems: list[str] = []
    for item in ballot.evidence:
        seen = observed.get(item.tool)
        if seen is None:
            problems.append(f"cites {item.tool} but never called it")
            continue
        for key, value in item.facts.items():
            if key not in seen:
                problems.append(f"cites {item.tool}.{key}={value!r}, which the tool did not report")
            elif not _same(value, seen[key]):
                problems.append(f"cites {item.tool}.{key}={value!r}; the tool returned {seen[key]!r}")
    return problems
