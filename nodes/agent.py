"""Agent nodes: a LangGraph node that runs one smolagents ``ToolCallingAgent``.

    state ──► prompt (+ RunBrief for models that take one) ──► fresh RecordingAgent ──► ReAct loop
                                                   │ step callback (+ typed ToolResults by call id)
                                                   ▼
    state ◄── steps, answer, context artifacts ◄── StepRecorder

Why a *fresh* agent (and model and tools) per execution: smolagents agents keep memory, so a
shared instance would leak one run's — or one parallel branch's — steps into another.

Confidence (0–1) is derived from evidence, not asked of the model:

* a step's *evidence* is 1.0 for a tool call that returned a typed
  :class:`~relaygraph.tools.ToolResult`, 0.7 for a plain-text observation, 0.5 for a step with
  no tool call, 0.2 for a step that errored;
* it is scaled by the remaining step budget, ``1 - 0.3 * step / max_steps``, because an agent
  that needs most of its budget is less sure of its path;
* the final-answer step carries the agent's confidence: the mean evidence of its tool steps,
  scaled the same way.

An agent whose every tool call ended failed (it has tools, called them, and none worked)
produced nothing it exists for: that is a failure too. One with some tools failed and others
done is ``partial`` — its answer kept, its progress ``partial`` and an ``errors`` entry with
``outcome: "partial"`` naming each failed tool — never ``completed``.

Failures — the model erroring, ``max_steps`` exhausted, a loop, or no tool working — raise
:class:`AgentRunError`, so a ``RetryPolicy`` on the node applies; the error carries a structured
record, which :mod:`relaygraph.nodes.failures` writes into state on the node's last attempt. Loops are found by the meta-reasoning loop guard
(:func:`relaygraph.coordination.metareasoning.loop_guard`), checked after every step: the same
tool with the same arguments three times, or at most 2 distinct actions in 4 of the last 5 calls.
"""

from __future__ import annotations

import contextvars
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Generator, Mapping
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from langchain_core.runnables import RunnableConfig
from langgraph.constants import CONFIG_KEY_CHECKPOINTER  # public: langgraph-api reads it too
from langgraph.runtime import get_runtime
from relaygraph.config.settings import Settings, settings_from_config
from relaygraph.coordination import metareasoning
from relaygraph.nodes.contracts import AgentFailure, AgentSpec, AgentStep, NodeProgress
from relaygraph.nodes.params import declared_roles
from relaygraph.nodes.protocols import UpdateNode
from relaygraph.observability.instrument_smolagents import AgentTrace
from relaygraph.providers import agent_model
from relaygraph.providers.brief import CallOutcome, RunBrief, hand_brief
from relaygraph.tools import ToolResult, Workspace, build_tools, result_of
from relaygraph.tools.declared import check_columns
from relaygraph.tools.frames import csv_options
from relaygraph.tools.ledger import CallScope, guard_side_effects, ledger_for
from relaygraph.tools.result import truncate
from relaygraph.tools.sample import SAMPLE_NAME, ensure_sample
from smolagents import Tool, ToolCallingAgent
from smolagents.memory import ActionStep, ToolCall
from smolagents.models import ChatMessage
from smolagents.monitoring import LogLevel
from smolagents.utils import AgentError

LOOP_REPEATS = metareasoning.REPEAT_LIMIT


class AgentRunError(RuntimeError):
    """An agent could not finish; ``record`` says which, where and why (JSON-ready)."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        super().__init__(f"agent {record['agent']!r} (node {record['node']!r}) failed: {record['reason']}")

    def __reduce__(self) -> tuple[type[AgentRunError], tuple[dict[str, Any]]]:  # picklable, so thread pools and checkpoints can carry it
        return (type(self), (self.record,))


class RecordingAgent(ToolCallingAgent):
    """A ToolCallingAgent that keeps each tool call's typed result, by call id.

    smolagents puts only the observation *text* into its memory step; the typed
    :class:`~relaygraph.tools.ToolResult` travels on the tool's return value (an
    ``Observation``), which this captures as the calls complete — for the step record
    (:class:`StepRecorder`) and for the run brief a rule-based model reads.
    """

    def __init__(self, *args: Any, brief: RunBrief, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.brief = brief
        self.tool_results: dict[str, ToolResult] = {}

    def process_tool_calls(self, chat_message: ChatMessage, memory_step: ActionStep) -> Generator[Any]:
        if self.interrupt_switch:  # its deadline passed while the model thought: no tool runs after it
            raise AgentError("Agent interrupted: its time ran out before these tool calls.", self.logger)
        for event in super().process_tool_calls(chat_message, memory_step):
            result = result_of(getattr(event, "output", None))
            if result is not None:
                self.tool_results[event.id] = result
                self.brief.calls[event.id] = CallOutcome(tool=event.tool_call.name, summary=result.summary,
                                                         artifacts=result.artifacts)
            yield event


class AgentTimeout(Exception):
    """The agent's run passed its ``timeout_s`` (see :func:`run_within`)."""


def run_within(agent: RecordingAgent, task: str, timeout_s: float | None) -> Any:
    """``agent.run(task)``, cut at ``timeout_s`` seconds: then :class:`AgentTimeout` is raised.

    The run goes on a worker thread (with this context, so runtime and tracing still apply)
    and is waited for at most ``timeout_s``; past it the agent is interrupted — it starts no
    further step and runs no further tool call — and the caller is free at the deadline. A
    tool call or model call already in flight cannot be stopped from outside its thread: it
    finishes in the background and its result is discarded.
    """
    if timeout_s is None:
        return agent.run(task, return_full_result=True)
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["run"] = agent.run(task, return_full_result=True)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            outcome["error"] = exc

    worker = threading.Thread(target=contextvars.copy_context().run, args=(work,), daemon=True,
                              name=f"agent-{agent.name}")
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        agent.interrupt()
        raise AgentTimeout(f"timed out after {timeout_s:g}s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["run"]


def evidence(step: ActionStep, result: ToolResult | None) -> float:
    if step.error is not None:
        return 0.2
    if not step.tool_calls:
        return 0.5
    return 1.0 if result is not None else 0.7


class StepRecorder:
    """smolagents step callback: turns each ActionStep into an :class:`AgentStep` record."""

    def __init__(self, spec: AgentSpec, node: str, max_steps: int, settings: Settings, attempt: int):
        self.spec, self.node, self.max_steps, self.attempt = spec, node, max_steps, attempt
        self.limit = settings.observation_chars
        self.steps: list[AgentStep] = []
        self.tool_evidence: list[float] = []
        self.calls: list[dict[str, Any]] = []  # every call (a step may make several), for the loop guard
        self.loop_reason: str | None = None
        self.artifacts: dict[str, str] = {}

    def budget(self, step_number: int) -> float:
        return 1 - 0.3 * min(step_number, self.max_steps) / self.max_steps

    def agent_confidence(self, step_number: int) -> float:
        if not self.tool_evidence:
            return 0.5 * self.budget(step_number)
        return sum(self.tool_evidence) / len(self.tool_evidence) * self.budget(step_number)

    def __call__(self, step: Any, agent: Any = None) -> None:
        if not isinstance(step, ActionStep):
            return
        calls = step.tool_calls or []
        call = calls[0] if calls else None
        is_final = bool(call and call.name == "final_answer")
        result = _typed_result(agent, call) if step.error is None else None
        if (call and not is_final) or (step.error is not None and failed_tool(step) is not None):
            # a refused or failed call lowers the agent's confidence like any other tool step
            self.tool_evidence.append(evidence(step, result))
        if step.error is None:  # every successful call's artifacts, in order: the newest wins
            for c in calls:
                if (typed := _typed_result(agent, c)) is not None:
                    self.artifacts.update(typed.artifacts)
        usage = step.token_usage
        thought = step.model_output if isinstance(step.model_output, str) else ""
        observation = step.observations or ("" if step.action_output is None else str(step.action_output))
        self.steps.append(
            AgentStep(
                agent=self.spec.name,
                node=self.node,
                step=step.step_number,
                thought=truncate(thought.strip(), 500),
                tool=call.name if call else None,
                arguments=_jsonable_args(call.arguments) if call else {},
                observation=observation if result else truncate(observation, self.limit),  # already cut
                summary=result.summary if result else "",
                facts=result.facts if result else {},
                artifacts=result.artifacts if result else {},
                error=str(step.error) if step.error else None,
                confidence=round(
                    self.agent_confidence(step.step_number) if is_final
                    else evidence(step, result) * self.budget(step.step_number), 3),
                duration_s=round(step.timing.duration or 0.0, 4),
                input_tokens=usage.input_tokens if usage else None,
                output_tokens=usage.output_tokens if usage else None,
                attempt=self.attempt,
            )
        )
        record = self.steps[-1]
        for c in calls:
            self.calls.append({"step": step.step_number, "tool": c.name, "arguments": _jsonable_args(c.arguments),
                               "thought": record.thought, "error": record.error, "confidence": record.confidence})
        if calls and not is_final and agent is not None and self.loop_reason is None:
            self.loop_reason = metareasoning.loop_guard(self.calls)
            if self.loop_reason:
                agent.interrupt()


FAILED_TOOL_RE = re.compile(r"Error (?:executing|when executing) tool '([^']+)'|tool '([^']+)'")


def failed_tool(step: Any) -> str | None:
    """The tool an errored step called (smolagents keeps no tool call on a step whose tool
    raised: only its error text names it)."""
    calls = getattr(step, "tool_calls", None) or []
    if calls:
        return str(calls[0].name)
    match = FAILED_TOOL_RE.search(str(getattr(step, "error", "") or ""))
    return next((g for g in match.groups() if g), None) if match else None


def tool_outcomes(spec: AgentSpec, steps: list[AgentStep]) -> tuple[list[str], list[str]]:
    """(tools of ``spec`` that succeeded, "tool: why" for each whose last call failed)."""
    last: dict[str, str | None] = {}
    for step in steps:
        tool = step.tool or failed_tool(step)
        if tool in spec.tools:
            last[tool] = step.error
    succeeded = [t for t, error in last.items() if error is None]
    failed = [f"{t}: {_tool_error(str(e))}" for t, e in last.items() if e is not None]
    return succeeded, failed


def _tool_error(error: str) -> str:
    """The tool's own message, without smolagents' wrapping (call arguments, "try again")."""
    error = re.sub(r"^Error (?:executing|when executing) tool '[^']+' with arguments \{.*?\}: ", "", error.strip(),
                   flags=re.DOTALL)
    error = re.sub(r"\s*Please try again or use another tool\.?$", "", error)
    return " ".join(error.split())[:300]


def _typed_result(agent: Any, call: ToolCall | None) -> ToolResult | None:
    results = getattr(agent, "tool_results", None) or {}
    return results.get(call.id) if call is not None else None


def _jsonable_args(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return json.loads(json.dumps(arguments, default=str))
    return {"input": str(arguments)}


def resolve_dataset(state: Mapping[str, Any], settings: Settings, workspace: Workspace) -> str:
    """The dataset this run works on: context, then input, then settings, then the sample."""
    for candidate in ((state.get("context") or {}).get("dataset"), state.get("data"), settings.dataset):
        if candidate:
            workspace.resolve_input(candidate)  # fails early, with the available names
            return str(candidate)
    ensure_sample(workspace.data_dir)
    return SAMPLE_NAME


def allowed_values(workspace: Workspace, dataset: str) -> dict[str, list[str]]:
    """Values the run knows, offered to tools as enums (see ``DataTool.constrain``)."""
    path = workspace.resolve_input(dataset)
    if path.suffix.lower() == ".csv":
        columns = [str(c) for c in pd.read_csv(path, nrows=0, **csv_options(path)).columns]
    else:
        columns = list(pq.read_schema(path).names)
    check_columns(workspace.roles, columns, dataset)  # a declared role for no column: fail now, say which
    return {"dataset": [dataset], "columns": columns}


def visible_context(context: dict[str, Any]) -> dict[str, Any]:
    """The context an agent is shown (``_``-prefixed keys are the graph's own bookkeeping)."""
    return {k: v for k, v in context.items() if not k.startswith("_")}


def goal(state: dict[str, Any]) -> str:
    return state.get("task") or "analyse the dataset"


def render_task(spec: AgentSpec, state: dict[str, Any], context: dict[str, Any]) -> str:
    """The agent's prompt, written for a language model: who it is, the goal, its job, the facts.

    Rule-based models get the same information as data (:func:`brief_for`), so nothing here is
    worded or ordered for them.
    """
    return (
        f"You are the {spec.role} in a team. The team's overall goal: {goal(state)}\n\n"
        f"Your part: {spec.instructions}\n\n"
        f"Run context (JSON): {json.dumps(visible_context(context), default=str)}"
    )


def brief_for(spec: AgentSpec, state: dict[str, Any], context: dict[str, Any]) -> RunBrief:
    """The run as structured data, for models that take a brief (see :mod:`relaygraph.providers.brief`)."""
    return RunBrief(agent=spec.name, role=spec.role, instructions=spec.instructions, goal=goal(state),
                    context=json.loads(json.dumps(visible_context(context), default=str)))


def thread_id(config: RunnableConfig | None) -> str:
    configurable = (config or {}).get("configurable", {}) or {}
    return str(configurable.get("thread_id") or "adhoc")


def checkpointer_of(config: RunnableConfig | None) -> Any:
    return ((config or {}).get("configurable") or {}).get(CONFIG_KEY_CHECKPOINTER)


def call_scope(config: RunnableConfig | None) -> CallScope:
    """This task execution's ledger scope; a re-run of the same task gets the same one."""
    try:
        info = get_runtime().execution_info
    except RuntimeError:  # called outside a graph: no task to re-run
        info = None
    if info is None:
        return CallScope(thread_id(config), "", uuid.uuid4().hex)
    return CallScope(info.thread_id or thread_id(config), info.checkpoint_ns, info.task_id)


def task_scope(config: RunnableConfig | None, part: str = "") -> CallScope | None:
    """This task's ledger scope, or None outside a graph (no task that could run again).

    ``part`` tells apart several agent runs inside one task (the critique node runs its critic
    once per dataset): without it the second run would be handed the first one's output.
    """
    try:
        info = get_runtime().execution_info
    except RuntimeError:
        return None
    if info is None or not info.task_id:
        return None
    task = f"{info.task_id}\0{part}" if part else info.task_id
    return CallScope(info.thread_id or thread_id(config), info.checkpoint_ns, task)


def fix_arguments(tools: list[Tool], fixed: Mapping[str, Mapping[str, Any]]) -> list[Tool]:
    """``tools`` with the arguments in ``fixed`` (tool name -> argument -> value) forced on every call.

    Why: a run parameter the graph already knows (the report sections the executed plan backs,
    the partition of one slice of work) must not depend on a model copying it from the prompt
    into its call — a model that leaves it out, or writes another value, would silently widen or
    change the work. The model is still told the values (they are in the run context); this makes
    them hold. Unknown argument names are refused here, so a typo cannot be silently ignored.
    """
    for tool in tools:
        args = dict(fixed.get(tool.name) or {})
        if not args:
            continue
        unknown = sorted(set(args) - set(tool.inputs))
        if unknown:
            raise ValueError(f"fixed argument(s) {', '.join(unknown)} are not inputs of tool {tool.name!r} "
                             f"(its inputs: {', '.join(tool.inputs)})")
        original = tool.forward

        def forward(*pos: Any, _original: Callable[..., Any] = original, _args: dict[str, Any] = args,
                    **kwargs: Any) -> Any:
            return _original(*pos, **{**kwargs, **_args})

        tool.forward = forward  # the instance's own: tools are fresh per run
    return tools


def node_attempt() -> int:
    try:
        info = get_runtime().execution_info
    except RuntimeError:  # called outside a graph (unit tests)
        return 1
    return info.node_attempt if info else 1


def make_agent_node(
    spec: AgentSpec, *, node: str | None = None, context_keys: dict[str, str] | None = None,
    extra_tools: Callable[[dict[str, Any]], list[Tool]] | None = None,
    brief_fields: Callable[[dict[str, Any]], dict[str, Any]] | None = None, timeout_s: float | None = None,
    fixed_args: Mapping[str, Mapping[str, Any]] | None = None,
) -> UpdateNode:
    """A LangGraph node running ``spec`` as a fresh ToolCallingAgent on each execution.

    ``fixed_args`` (tool name -> argument -> value) are arguments the graph decides, not the
    model: each call of that tool gets them whatever the model passed or left out (see
    :func:`fix_arguments`) — a report's sections, the partition a slice of work runs on.

    ``timeout_s`` cuts a run that takes longer (:func:`run_within`): it fails with a
    ``TimeoutError`` reason, like a model that timed out.

    ``extra_tools(context)`` adds run-specific tools that are not data tools (e.g. the handoff
    tools of :mod:`relaygraph.nodes.handoff`); it is called per execution, so they are fresh too.
    ``brief_fields(context)`` adds fields to the run brief a rule-based model reads (e.g. the
    handoff options those tools offer, as data).

    ``context_keys`` renames context entries for this agent (e.g. give a branch its own
    ``partition``), so one spec can serve several branches.
    """
    node_name = node or spec.name

    def run_agent(state: dict[str, Any], config: RunnableConfig) -> dict[str, Any]:
        settings = settings_from_config(config)
        workspace = Workspace(settings.data_dir, settings.output_dir, thread_id(config), roles=declared_roles(config))
        context = dict(state.get("context") or {})
        for target, source in (context_keys or {}).items():
            context[target] = state.get(source, context.get(source))
        started = time.perf_counter()
        attempt = node_attempt()
        dataset = resolve_dataset({**state, "context": context}, settings, workspace)
        context["dataset"] = dataset
        max_steps = spec.max_steps or settings.max_steps
        recorder = StepRecorder(spec, node_name, max_steps, settings, attempt)
        # Tracing: invoke_agent span with a react_step span per step, LLM and tool call spans.
        agent_trace = AgentTrace(spec.name, node=node_name, thread_id=thread_id(config),
                                 provider=settings.provider, model=None, attempt=attempt)
        tools = build_tools(list(spec.tools), workspace, allowed_values(workspace, dataset),
                            settings.observation_chars) + (extra_tools(context) if extra_tools else [])
        # side-effecting tools run once per task, even when the task runs again after a crash
        scope = call_scope(config)
        tools = guard_side_effects(tools, *ledger_for(checkpointer_of(config)), scope)
        tools = fix_arguments(tools, fixed_args or {})  # outermost: the ledger records the real arguments
        model = agent_model(settings)
        brief = brief_for(spec, state, context)
        if brief_fields is not None:
            brief = brief.model_copy(update=brief_fields(context))
        hand_brief(model, brief)
        agent = RecordingAgent(
            tools=tools,
            model=model,
            brief=brief,
            max_steps=max_steps,
            name=spec.name,
            instructions=spec.instructions,
            verbosity_level=LogLevel.OFF,
            step_callbacks=[recorder, agent_trace.step_callback(lambda: recorder.steps)],
        )

        def fail(reason: str, **more: Any) -> AgentRunError:
            return AgentRunError({
                "agent": spec.name, "node": node_name, "reason": reason, "attempt": attempt,
                "steps": [s.model_dump() for s in recorder.steps], **more,
            })

        with agent_trace:
            agent_trace.instrument(agent)
            task = render_task(spec, state, context)
            agent_trace.record_task(task)
            try:
                run = run_within(agent, task, timeout_s)
                if scope.fatal is not None:
                    raise scope.fatal  # the database stayed away: stop the run, don't retry the node
            except AgentTimeout as exc:
                raise fail(f"TimeoutError: {spec.name} {exc} (its timeout), {len(recorder.steps)} steps done; "
                           "no step starts after it", timeout_s=timeout_s) from exc
            except AgentError as exc:
                if scope.fatal is not None:
                    raise scope.fatal from exc
                cause = exc.__cause__ or exc  # smolagents wraps the provider's own exception
                raise fail(recorder.loop_reason or f"model error: {type(cause).__name__}: "
                           f"{' '.join(str(cause).split())[:300]}") from exc
            if recorder.loop_reason:
                raise fail(recorder.loop_reason)
            if run.state != "success":
                raise fail(f"max_steps ({max_steps}) exhausted without a final answer")
            agent_trace.record_result(str(run.output), len(recorder.steps),
                                      recorder.steps[-1].confidence if recorder.steps else None)

        succeeded, unmet = tool_outcomes(spec, recorder.steps)
        if unmet and not succeeded:  # its tools all failed: the agent produced nothing it exists for
            raise fail(f"no result: every tool it called failed ({'; '.join(unmet)})")

        answer = str(run.output)
        artifacts: dict[str, Any] = {"dataset": dataset, **recorder.artifacts}
        findings = {spec.name: truncate(re.sub(r"\s*\n\s*", "; ", answer.strip()), 600)}
        duration = round(time.perf_counter() - started, 4)
        update: dict[str, Any] = {
            "steps": [s.model_dump() for s in recorder.steps],
            "answers": {spec.name: answer},
            "context": {**artifacts, "findings": findings},
            "progress": [NodeProgress(node=node_name, status="partial" if unmet else "completed",
                                      duration_s=duration, attempt=attempt,
                                      detail=f"partial: {'; '.join(unmet)}" if unmet else _first_line(answer),
                                      ).model_dump()],
        }
        if unmet:  # some of its work is missing: listed with the run's errors, never "completed"
            update["errors"] = [AgentFailure(agent=spec.name, node=node_name, attempt=attempt, outcome="partial",
                                             reason=f"partial: {'; '.join(unmet)}").model_dump(exclude_none=True)]
        return update

    run_agent.__name__ = f"agent_{node_name}"
    return run_agent


def _first_line(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().split("\n")[0])[:300]
