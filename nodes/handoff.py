"""Handoffs between agents: explicit tools, validated transfers, rollback and a loop guard.

    agent node ──► ToolCallingAgent(domain tools + handoff_<peer> tools)
        │  the first successful handoff_<peer> call's result carries a typed HandoffPayload (facts)
        ▼
    TransferContext.model_validate(payload, context={allowed peers, workspace})
        ├─ invalid ──► Command(goto=sender): roll back (the turn's context/answers are dropped,
        │              the rejection is recorded, the sender is told why and tries again)
        ├─ loop guard (max handoffs, A→B→A ping-pong) ──► Command(goto=finish) with the reason
        └─ valid ───► Command(goto=peer, update=the sender's work + the validated context)

A smolagents tool cannot return a LangGraph ``Command``: the agent loop owns its return value.
So the handoff tool does what a tool can do honestly — it states the transfer as a typed
result — and the *node*, which owns the graph's control flow, validates it and turns it
into ``Command(goto=...)``. An agent hands off at most once per turn (the tool refuses a second
transfer), and handing back to an agent that has already worked on the request needs a reason.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from relaygraph.config.settings import settings_from_config
from relaygraph.nodes.agent import AgentSpec, make_agent_node, thread_id
from relaygraph.nodes.failures import Failure, recording_failures
from relaygraph.nodes.params import declared_roles
from relaygraph.nodes.protocols import Node
from relaygraph.nodes.state import WorkflowState, merge_dicts
from relaygraph.nodes.team_params import DEFAULT_MAX_HANDOFFS
from relaygraph.providers.brief import HandoffOption
from relaygraph.tools import ToolResult, TypedTool, Workspace
from smolagents import Tool

HANDOFF_PREFIX = "handoff_"
MAX_ROLLBACKS = 2  # invalid transfers in a row from one agent before the run stops


class HandoffPayload(BaseModel):
    """What a handoff tool emits: the transfer as the agent stated it (not yet trusted)."""

    model_config = ConfigDict(extra="forbid")

    target: str
    reason: str | None = None
    dataset: str | None = None


class TransferContext(BaseModel):
    """The context that crosses a handoff, validated before the receiver sees it.

    Validation context: ``peers`` (who the sender may hand to) and ``workspace`` (where the
    dataset must exist). A transfer naming a stranger, a missing file, or carrying no result
    from the sender is refused and rolled back.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    sender: str
    target: str
    reason: str = Field(min_length=1, max_length=1000)
    dataset: str = Field(min_length=1)
    findings: dict[str, str]
    hop: int = Field(ge=1)

    @field_validator("target")
    @classmethod
    def _known_peer(cls, value: str, info: ValidationInfo) -> str:
        peers = (info.context or {}).get("peers", ())
        if value not in peers:
            raise ValueError(f"{value!r} is not an agent this sender can hand off to ({', '.join(peers)})")
        return value

    @field_validator("dataset")
    @classmethod
    def _dataset_exists(cls, value: str, info: ValidationInfo) -> str:
        workspace: Workspace | None = (info.context or {}).get("workspace")
        if workspace is not None:
            try:
                workspace.resolve_input(value)
            except (FileNotFoundError, ValueError) as exc:
                raise ValueError(str(exc).splitlines()[0]) from None
        return value

    @model_validator(mode="after")
    def _sender_did_its_part(self) -> TransferContext:
        if not (self.findings.get(self.sender) or "").strip():
            raise ValueError(f"{self.sender} hands off without a result of its own")
        return self


@dataclass
class Turn:
    """One agent execution's handoff bookkeeping, shared by its handoff tools."""

    handed_to: str | None = None


class HandoffTool(TypedTool):
    """``handoff_<peer>``: state a transfer of the request to one peer agent."""

    inputs = {
        "reason": {"type": "string", "nullable": True,
                   "description": "Why the peer should take over (required to hand back to an agent "
                   "that already worked on this request)."},
        "dataset": {"type": "string", "nullable": True,
                    "description": "The dataset file the peer should work on (default: the current one)."},
    }
    output_type = "string"

    def __init__(self, peer: str, scope: str, turn: Turn, visited: set[str]) -> None:
        self.name = f"{HANDOFF_PREFIX}{peer}"
        self.description = f"Hand the request over to the {peer} agent ({scope}). Call once, when your part is done."
        self.peer, self.turn, self.visited = peer, turn, visited
        super().__init__()

    def forward(self, reason: str | None = None, dataset: str | None = None) -> ToolResult:
        if self.turn.handed_to:
            raise ValueError(f"You already handed off to {self.turn.handed_to} in this turn; "
                             "give your final answer now.")
        if self.peer in self.visited and not (reason or "").strip():
            raise ValueError(f"{self.peer} has already worked on this request; hand it back only "
                             "with a reason, or choose another agent.")
        self.turn.handed_to = self.peer
        payload = HandoffPayload(target=self.peer, reason=reason, dataset=dataset)
        return ToolResult(summary=f"Handing off to {self.peer}.", facts={"handoff": payload.model_dump()})


def handoff_tools(peers: dict[str, str], visited: set[str]) -> list[Tool]:
    """Fresh handoff tools for one agent execution (one shared :class:`Turn`)."""
    turn = Turn()
    return [HandoffTool(peer, scope, turn, visited) for peer, scope in peers.items()]


def handoff_options(peers: dict[str, str], visited: set[str]) -> dict[str, HandoffOption]:
    """The same handoff tools as data, for the run brief of a rule-based model."""
    return {f"{HANDOFF_PREFIX}{peer}": HandoffOption(peer=peer, scope=scope, visited=peer in visited)
            for peer, scope in peers.items()}


class HandoffState(WorkflowState, total=False):
    """Shared state plus the handoff history and the loop guard's verdict."""

    handoffs: Annotated[list[dict[str, Any]], operator.add]
    active: str
    stop_reason: str | None
    handoff_feedback: Annotated[dict[str, str | None], merge_dicts]


class LoopGuard(BaseModel):
    """Ends a run of handoffs with a reason, long before LangGraph's recursion limit would."""

    model_config = ConfigDict(frozen=True)

    max_handoffs: int = Field(default=DEFAULT_MAX_HANDOFFS, ge=1, le=100)

    @classmethod
    def from_config(cls, config: RunnableConfig | None) -> LoopGuard:
        configured = ((config or {}).get("configurable") or {}).get("max_handoffs")
        return cls() if configured is None else cls(max_handoffs=configured)

    def verdict(self, history: Sequence[dict[str, Any]], sender: str, target: str) -> str | None:
        """Why this handoff must not happen, or None (``history``: accepted hops so far)."""
        if len(history) + 1 > self.max_handoffs:
            return (f"loop guard: handoff {sender}→{target} would exceed max_handoffs={self.max_handoffs} "
                    f"(route so far: {route(history)})")
        if history and history[-1]["from"] == target and history[-1]["to"] == sender:
            return (f"loop guard: ping-pong {target}→{sender}→{target} detected; "
                    f"{sender} handed the request straight back (route so far: {route(history)})")
        return None


def route(history: Sequence[dict[str, Any]]) -> str:
    if not history:
        return "-"
    return " → ".join([history[0]["from"], *(h["to"] for h in history)])


def accepted(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [h for h in state.get("handoffs") or [] if h.get("status") == "accepted"]


def first_transfer(steps: Sequence[dict[str, Any]]) -> tuple[HandoffPayload | None, str | None]:
    """The turn's handoff: (payload, None), (None, why it is unreadable) or (None, None)."""
    for step in steps:
        if not str(step.get("tool") or "").startswith(HANDOFF_PREFIX) or step.get("error"):
            continue
        try:
            return HandoffPayload.model_validate(step["facts"]["handoff"]), None
        except (KeyError, TypeError, ValidationError) as exc:
            return None, f"unreadable handoff payload: {exc}"
    return None, None


def _now() -> str:
    return datetime.now(UTC).isoformat()


def make_handoff_node(
    spec: AgentSpec, peers: dict[str, str], *, finish: str = "finalize"
) -> Node:
    """An agent node that ends its turn with a validated handoff, a rollback or the finish."""

    def run_turn(state: dict[str, Any], config: RunnableConfig) -> Command:
        history = accepted(state)
        visited = {h["from"] for h in history} | {h["to"] for h in history}
        context = dict(state.get("context") or {})
        feedback = (state.get("handoff_feedback") or {}).get(spec.name)
        if feedback:  # the sender's previous transfer was refused: tell it why
            context["rejected_handoff"] = feedback
        node = make_agent_node(spec, extra_tools=lambda _ctx: handoff_tools(peers, visited),
                               brief_fields=lambda _ctx: {"handoffs": handoff_options(peers, visited)})
        update = node({**state, "context": context}, config)
        update["context"].pop("rejected_handoff", None)
        base = {**update, "active": spec.name, "handoff_feedback": {spec.name: None}}
        payload, unreadable = first_transfer(update["steps"])
        if payload is None and unreadable is None:  # no handoff: this agent finishes the request
            return Command(goto=finish, update=base)

        hop = len(history) + 1
        findings = {**(state.get("context") or {}).get("findings", {}), **update["context"].get("findings", {})}
        settings = settings_from_config(config)
        workspace = Workspace(settings.data_dir, settings.output_dir, thread_id(config), roles=declared_roles(config))
        record: dict[str, Any] = {"hop": hop, "from": spec.name, "to": payload.target if payload else None,
                                  "at": _now()}
        try:
            if unreadable:
                raise ValueError(unreadable)
            assert payload is not None  # first_transfer gives a payload or the reason it has none
            transfer = TransferContext.model_validate(
                {"sender": spec.name, "target": payload.target, "hop": hop, "findings": findings,
                 "reason": payload.reason or f"{spec.name} finished its part",
                 "dataset": payload.dataset or update["context"].get("dataset")},
                context={"peers": list(peers), "workspace": workspace},
            )
        except (ValidationError, ValueError) as exc:
            return rollback(spec.name, state, update, record, exc, finish)

        record |= {"reason": transfer.reason, "dataset": transfer.dataset}
        stop = LoopGuard.from_config(config).verdict(history, spec.name, transfer.target)
        if stop:
            return Command(goto=finish, update={**base, "stop_reason": stop,
                                                "handoffs": [record | {"status": "stopped", "detail": stop}]})
        base["context"] = {**update["context"], "dataset": transfer.dataset,
                           "handoff": {"from": spec.name, "reason": transfer.reason}}
        return Command(goto=transfer.target, update={**base, "handoffs": [record | {"status": "accepted"}]})

    def gave_up(_state: dict[str, Any], outcome: Failure) -> Command:
        """On its last attempt a failed agent ends the run: the failure recorded, then the finish."""
        return Command(goto=finish, update=outcome.update())

    node = recording_failures(run_turn, who=lambda _state: (spec.name, spec.name), on_failure=gave_up)
    node.__name__ = f"handoff_agent_{spec.name}"
    return node


def rollback(
    sender: str, state: dict[str, Any], update: dict[str, Any], record: dict[str, Any],
    exc: Exception, finish: str,
) -> Command:
    """Refuse a transfer: keep the state as it was before the sender's turn, record why."""
    if isinstance(exc, ValidationError):
        problems = [f"{'.'.join(map(str, e['loc'])) or 'transfer'}: {e['msg']}" for e in exc.errors()]
    else:
        problems = [str(exc)]
    streak = 0
    for entry in reversed(state.get("handoffs") or []):
        if entry.get("from") != sender or entry.get("status") != "rolled_back":
            break
        streak += 1
    entry = record | {"status": "rolled_back", "errors": problems}
    kept = {"steps": update["steps"], "handoffs": [entry]}  # the audit trail, not the turn's results
    if streak + 1 >= MAX_ROLLBACKS:
        reason = f"invalid handoff from {sender} {streak + 1} times in a row: {'; '.join(problems)}"
        return Command(goto=finish, update={**kept, "stop_reason": reason})
    feedback = f"Your handoff was refused ({'; '.join(problems)}); fix it and hand off again."
    return Command(goto=sender, update={**kept, "handoff_feedback": {sender: feedback}})


def handoff_summary(state: dict[str, Any]) -> dict[str, Any]:
    """For the result: the route taken, every transfer (accepted or not) and why the run ended."""
    history = state.get("handoffs") or []
    return {"route": route(accepted(state)), "history": history,
            "rolled_back": [h for h in history if h.get("status") == "rolled_back"],
            "stop_reason": state.get("stop_reason"), "final_agent": state.get("active")}
