"""Meta-reasoning over an agent's ReAct trace: is it looping, progressing, choosing well, surer?

Pure functions over step records (dicts with ``tool``, ``arguments``, ``thought``, ``error``,
``confidence`` — the shape of :class:`relaygraph.nodes.state.AgentStep`), so the same analysis
runs on a live agent (the loop guard in :mod:`relaygraph.nodes.agent`) and on a finished run's
steps (``result.agents[name].reasoning``).

* **Circular reasoning** over the last :data:`WINDOW` steps: when at most 2 distinct actions
  (tool + arguments) make up at least 4 of them, severity is ``high``; when two consecutive
  thoughts are more than 0.8 similar (difflib ratio) and the later step did not move on — the
  same tool again, an error, or no tool — severity is ``medium``. (Templated thoughts over
  *different*, successful tool calls, as the offline policy writes them, are not circular.)
  The same tool with the same arguments :data:`REPEAT_LIMIT` times anywhere in the trace is
  also ``high``: it is the loop rule agents had before this analyser, kept as one of its cases.
* **Progress toward the goal**: the share of the expected tools called successfully (or, with
  no expectation given, of distinct successful calls among all steps), 1.0 once a final answer
  follows successful work.
* **Action choice**: the share of tool steps that neither errored nor repeated an earlier call.
* **Confidence trend**: 0.5 + half the change from the first half's mean confidence to the
  second half's (scaled so a change of ±0.5 reaches 0 or 1); fewer than 2 steps → 0.5.

Hand-written because it is small and specific to our step records; difflib (stdlib) measures
thought similarity.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from difflib import SequenceMatcher
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

WINDOW = 5
REPEAT_LIMIT = 3
SIMILAR = 0.8

Severity = Literal["none", "medium", "high"]


class Circularity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    severity: Severity = "none"
    reason: str = ""


class TraceAnalysis(BaseModel):
    """What the analyser concluded about one agent's trace (shown in ``result.agents``)."""

    model_config = ConfigDict(extra="forbid")

    circular: Circularity = Field(default_factory=Circularity)
    progress: float = Field(ge=0, le=1)
    action_choice: float = Field(ge=0, le=1)
    confidence_trend: float = Field(ge=0, le=1)
    steps: int = 0
    notes: list[str] = Field(default_factory=list)


def action_key(step: Mapping[str, Any]) -> str | None:
    tool = step.get("tool")
    if not tool:
        return None
    return f"{tool}:{json.dumps(step.get('arguments') or {}, sort_keys=True, default=str)}"


def similarity(a: str, b: str) -> float:
    return SequenceMatcher(None, a, b).ratio() if a and b else 0.0


def repeated_call(steps: Sequence[Mapping[str, Any]], limit: int = REPEAT_LIMIT) -> str | None:
    """The rule agents always had: the same (non-final) call ``limit`` times → its tool name."""
    counts = Counter(k for s in steps if s.get("tool") != "final_answer" and (k := action_key(s)))
    for key, n in counts.items():
        if n >= limit:
            return key.split(":", 1)[0]
    return None


def circularity(steps: Sequence[Mapping[str, Any]], *, latest_only: bool = False) -> Circularity:
    """The worst circularity of any window of :data:`WINDOW` steps (or only the latest one)."""
    tool = repeated_call(steps)
    if tool:
        return Circularity(severity="high",
                           reason=f"loop detected: {tool} called {REPEAT_LIMIT} times with the same arguments")
    ends = [len(steps)] if latest_only else range(1, len(steps) + 1)
    found = Circularity()
    for end in ends:
        window = _window(list(steps[max(0, end - WINDOW):end]))
        if window.severity == "high":
            return window
        if found.severity == "none":
            found = window
    return found


def _window(window: list[Mapping[str, Any]]) -> Circularity:
    actions = [action_key(s) or "<no tool>" for s in window]
    if len(window) >= 4:
        common = Counter(actions).most_common(2)
        top_two = sum(n for _, n in common)
        if top_two >= 4:
            distinct = sorted({a.split(":", 1)[0] for a, _ in common})
            return Circularity(severity="high", reason=(
                f"circular reasoning: {top_two} of {len(window)} consecutive steps repeat at most 2 "
                f"actions ({', '.join(distinct)})"))
    if len(window) >= 2:
        before, after = window[-2], window[-1]
        ratio = similarity(before.get("thought") or "", after.get("thought") or "")
        stalled = not after.get("tool") or after.get("error") or after.get("tool") == before.get("tool")
        if ratio > SIMILAR and stalled and after.get("tool") != "final_answer":
            return Circularity(severity="medium", reason=(
                f"thoughts of steps {before.get('step')} and {after.get('step')} are {ratio:.0%} "
                "similar and the agent did not move on"))
    return Circularity()


def _is_success(step: Mapping[str, Any]) -> bool:
    return bool(step.get("tool")) and step.get("tool") != "final_answer" and not step.get("error")


def progress(steps: Sequence[Mapping[str, Any]], expected_tools: Sequence[str] | None = None) -> float:
    done = {s["tool"] for s in steps if _is_success(s)}
    finished = any(s.get("tool") == "final_answer" for s in steps)
    if expected_tools:
        share = len(done & set(expected_tools)) / len(set(expected_tools))
        return round(1.0 if finished and share > 0 else share, 4) if done else 0.0
    if not steps:
        return 0.0
    if finished and done:
        return 1.0
    useful = len({action_key(s) for s in steps if _is_success(s)})
    return round(useful / len(steps), 4)


def action_choice(steps: Sequence[Mapping[str, Any]]) -> float:
    tool_steps = [s for s in steps if s.get("tool") and s.get("tool") != "final_answer"]
    if not tool_steps:
        return 0.5
    seen: set[str | None] = set()
    good = 0
    for s in tool_steps:
        key = action_key(s)
        good += int(not s.get("error") and key not in seen)
        seen.add(key)
    return round(good / len(tool_steps), 4)


def confidence_trend(steps: Sequence[Mapping[str, Any]]) -> float:
    values = [float(s["confidence"]) for s in steps if s.get("confidence") is not None]
    if len(values) < 2:
        return 0.5
    half = len(values) // 2
    first, second = values[:half], values[half:]
    change = sum(second) / len(second) - sum(first) / len(first)
    return round(min(1.0, max(0.0, 0.5 + change)), 4)


def analyze_trace(steps: Sequence[Mapping[str, Any]], expected_tools: Sequence[str] | None = None) -> TraceAnalysis:
    """Every measure at once, with notes that say why in words."""
    circular = circularity(steps)
    result = TraceAnalysis(circular=circular, progress=progress(steps, expected_tools),
                           action_choice=action_choice(steps), confidence_trend=confidence_trend(steps),
                           steps=len(steps))
    if circular.severity != "none":
        result.notes.append(circular.reason)
    errors = sum(1 for s in steps if s.get("error"))
    if errors:
        result.notes.append(f"{errors} step(s) errored")
    if steps and not any(s.get("tool") == "final_answer" for s in steps):
        result.notes.append("no final answer")
    return result


def loop_guard(steps: Sequence[Mapping[str, Any]]) -> str | None:
    """Why a live agent should be stopped now (a high-severity loop), else None."""
    circular = circularity(steps, latest_only=True)
    return circular.reason if circular.severity == "high" else None
