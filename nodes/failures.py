"""One failure path for every agent node, inside the graph.

    attempt k of N ──► agent node ──► ok ─────────────────────────────► its update
                           │ AgentRunError, k < N ──► raise: LangGraph's RetryPolicy runs attempt k+1
                           └ AgentRunError at k = N, or any other error
                                   ──► the failure recorded in state (errors, steps, progress "failed")

Why the failure is recorded by the node and not by whoever called the graph: a plain
``graph.invoke`` and every ``langgraph dev`` run must see it too, and only the node knows both
what failed and that this was the last try.

Where the two numbers come from:

* ``k`` — LangGraph's runtime: ``get_runtime().execution_info.node_attempt`` (1-based; the
  retry loop in ``langgraph/pregel/_retry.py`` sets it before each attempt).
* ``N`` — the *run's* settings: ``configurable.max_retries`` (else ``RELAYGRAPH_MAX_RETRIES``).
  LangGraph fixes a node's ``RetryPolicy`` when the graph is built and does not expose it to
  the node, so a per-run budget cannot live there. The graphs therefore compile every agent
  node with :func:`agent_retry_policy` — LangGraph's retry loop (backoff, jitter, ``node_attempt``)
  with ``max_attempts`` at the *largest* budget a run may ask for (``Settings.max_retries``'s
  bound) — and this wrapper ends the retries at the run's own budget by recording the failure
  instead of raising. LangGraph keeps owning *how* to retry; the run decides *how often*.

A task that finished records its output in the run's ledger before it returns
(:mod:`relaygraph.tools.ledger`); the same task run again after a kill (resume) returns that
output instead of asking its agent again, since LangGraph may not have stored its writes yet.

Only :class:`~relaygraph.nodes.agent.AgentRunError` (model error, ``max_steps`` exhausted,
loop) is retried; any other error (a provider that cannot be built, a bug) is recorded at once,
because retrying cannot fix it. Interrupts and other LangGraph control flow pass through, and so
does ``ConnectionLostError`` (the checkpoint database stayed away past its retry bound): not the
agent's failure — the run stops and ``resume`` runs the node again once the database is back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from annotated_types import Le
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlalchemy import ConnectionLostError
from langgraph.errors import GraphBubbleUp
from langgraph.types import RetryPolicy
from relaygraph.config.settings import Settings, settings_from_config
from relaygraph.nodes.agent import AgentRunError, checkpointer_of, make_agent_node, node_attempt, task_scope
from relaygraph.nodes.contracts import AgentFailure, AgentSpec, NodeProgress
from relaygraph.nodes.protocols import Node
from relaygraph.tools.ledger import MemoryLedger, ledger_for, record_output, recorded_output
from smolagents import Tool


def attempts_ceiling() -> int:
    """The most attempts any run may ask for: the declared upper bound of ``Settings.max_retries``."""
    return next(m.le for m in Settings.model_fields["max_retries"].metadata
                if isinstance(m, Le) and isinstance(m.le, int))


def agent_retry_policy() -> RetryPolicy:
    """The RetryPolicy for every agent node (the run's own budget is applied by :func:`recording_failures`)."""
    return RetryPolicy(max_attempts=attempts_ceiling(), retry_on=AgentRunError)


@dataclass(frozen=True)
class Failure:
    """An agent node that gave up: what to record, and when it ran."""

    failure: AgentFailure
    steps: list[dict[str, Any]]
    started_at: float
    finished_at: float

    @property
    def duration_s(self) -> float:
        return round(self.finished_at - self.started_at, 4)

    def update(self) -> dict[str, Any]:
        """The state update that records it: ``errors``, the steps it took, a failed ``progress``."""
        progress = NodeProgress(node=self.failure.node, status="failed", duration_s=self.duration_s,
                                attempt=self.failure.attempt, detail=self.failure.reason[:300])
        return {"errors": [self.failure.model_dump(exclude_none=True)], "steps": self.steps,
                "progress": [progress.model_dump()]}


def recording_failures(
    run: Node, *, who: Callable[[Any], tuple[str, str]],
    on_failure: Callable[[Any, Failure], Any] | None = None,
) -> Node:
    """``run`` as a node that records its failure in state on its last attempt instead of raising.

    ``who(state)`` names the (agent, node) for failures that carry no record of their own;
    ``on_failure(state, failure)`` shapes what the node returns then (default: the update of
    :meth:`Failure.update`; a branch adds its slot, a handoff agent a ``Command`` to the finish).
    """

    def guarded(state: dict[str, Any], config: RunnableConfig) -> Any:
        budget = settings_from_config(config).max_retries  # a bad run config raises here, unrecorded
        attempt = node_attempt()
        started = time.time()
        scope = task_scope(config, who(state)[1])  # one record per agent run the task makes
        ledger, serde = ledger_for(checkpointer_of(config)) if scope else (None, None)
        if isinstance(ledger, MemoryLedger):  # only a durable record outlives the kill it is for
            ledger = None
        if scope and ledger and serde:
            done, output = recorded_output(ledger, serde, scope)
            if done:  # this task finished before a kill took its writes: not asked again
                return output
        try:
            output = run(state, config)
            if scope and ledger and serde and _succeeded(output):
                record_output(ledger, serde, scope, output)
            return output
        except GraphBubbleUp:
            raise  # interrupts and other control flow are LangGraph's, not failures
        except ConnectionLostError:
            raise  # the database stayed away: the run stops, and resume runs this node again
        except AgentRunError as exc:
            if attempt < budget:
                raise  # LangGraph's RetryPolicy runs the next attempt
            record = dict(exc.record)
        except Exception as exc:  # noqa: BLE001 - recorded in state, with its type and message
            agent, node = who(state)
            record = {"agent": agent, "node": node,
                      "reason": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"}
        steps = record.pop("steps", [])
        failure = AgentFailure.model_validate({"attempt": attempt, **record, "max_attempts": budget})
        outcome = Failure(failure, steps, started, time.time())
        return on_failure(state, outcome) if on_failure else outcome.update()

    guarded.__name__ = getattr(run, "__name__", "agent")
    return guarded


def _succeeded(output: Any) -> bool:
    """An output with no failure in it: only those are replayed, so ``retry`` still reruns the
    rest (a node may report a failed tool in its update without raising)."""
    update = getattr(output, "update", output)  # a Command carries its update
    if not isinstance(update, Mapping):
        return True
    progress = update.get("progress") or []
    return not update.get("errors") and not any(
        isinstance(p, Mapping) and p.get("status") == "failed" for p in progress)


def agent_node(
    spec: AgentSpec, *, node: str | None = None, context_keys: dict[str, str] | None = None,
    extra_tools: Callable[[dict[str, Any]], list[Tool]] | None = None,
    fixed_args: Mapping[str, Mapping[str, Any]] | None = None,
) -> Node:
    """The graph node for ``spec``: :func:`~relaygraph.nodes.agent.make_agent_node` on the one failure path."""
    name = node or spec.name
    run = make_agent_node(spec, node=name, context_keys=context_keys, extra_tools=extra_tools,
                          fixed_args=fixed_args)
    return recording_failures(run, who=lambda _state: (spec.name, name))


def failed_nodes(state: Mapping[str, Any]) -> set[str]:
    """Nodes whose latest outcome is a recorded failure (a later success clears it)."""
    latest: dict[str, str] = {}
    for entry in state.get("progress") or []:
        latest[entry["node"]] = entry.get("status", "")
    return {node for node, status in latest.items() if status == "failed"}


def unless_failed(node: str, then: str, finish: str = "finalize") -> Callable[[dict[str, Any]], str]:
    """A router for after ``node``: on to ``then``, or to ``finish`` when ``node`` failed for good."""

    def route(state: dict[str, Any]) -> str:
        return finish if node in failed_nodes(state) else then

    route.__name__ = f"after_{node}"
    return route
