"""The run brief: what an agent node hands a model *as data*, beside the prompt.

A language model reads the prompt; a rule-based stand-in (the offline policy, test doubles)
must not have to parse its own inputs back out of prose or of JSON embedded in a prompt — that
couples the prompt's wording and order to the policy. So the agent node gives any model that
asks for one (:class:`BriefedModel`) a :class:`RunBrief`: who the agent is, the run context, and
— filled in as the agent works — each tool call's summary and artifacts, keyed by call id.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field


class CallOutcome(BaseModel):
    """What one successful tool call produced, as the policy may use it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tool: str
    summary: str
    artifacts: dict[str, str] = Field(default_factory=dict)


class HandoffOption(BaseModel):
    """One peer an agent may hand the request to, as data: the tool that does it, what the
    peer does (its scope and tools), and whether it has already worked on this request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    peer: str
    scope: str
    visited: bool = False


class RunBrief(BaseModel):
    """One agent execution, as structured data; ``calls`` grows while the agent runs."""

    model_config = ConfigDict(extra="forbid")

    agent: str
    role: str
    instructions: str
    goal: str
    context: dict[str, Any] = Field(default_factory=dict)
    calls: dict[str, CallOutcome] = Field(default_factory=dict)
    #: The handoff tools this agent holds, by tool name (empty outside a handoff team).
    handoffs: dict[str, HandoffOption] = Field(default_factory=dict)


@runtime_checkable
class BriefedModel(Protocol):
    """A model that wants the run brief (the offline policy and the test doubles do)."""

    def receive_brief(self, brief: RunBrief) -> None: ...


def hand_brief(model: Any, brief: RunBrief) -> None:
    """Give ``brief`` to ``model`` if it asks for one; a real LLM reads only its prompt."""
    if isinstance(model, BriefedModel):
        model.receive_brief(brief)
