"""The agent node: fresh agents, ReAct step records, failures that RetryPolicy can act on."""

from __future__ import annotations

import json

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import RetryPolicy
from relaygraph.nodes.agent import AgentRunError, AgentSpec, make_agent_node
from relaygraph.nodes.state import AgentStep, WorkflowState
from relaygraph.tools.sample import DEFECTS

SPEC = AgentSpec(name="cleaner", role="data cleaner", instructions="Validate the dataset.",
                 tools=("validate_dataset", "aggregate"), max_steps=4)


def one_node_graph(spec: AgentSpec = SPEC, attempts: int = 1):
    builder = StateGraph(WorkflowState)
    builder.add_node(spec.name, make_agent_node(spec),
                     retry_policy=RetryPolicy(max_attempts=attempts, retry_on=AgentRunError,
                                              initial_interval=0.01, jitter=False))
    builder.add_edge(START, spec.name)
    builder.add_edge(spec.name, END)
    return builder.compile(checkpointer=InMemorySaver())


def test_steps_record_thought_tool_arguments_observation_and_confidence(script, invoke_config) -> None:
    script.play(("call", "validate_dataset", {"dataset": "sample_sales.csv"}), ("final", "48 duplicates"))
    state = one_node_graph().invoke({"task": "check"}, invoke_config)
    steps = [AgentStep.model_validate(s) for s in state["steps"]]
    assert [(s.step, s.tool) for s in steps] == [(1, "validate_dataset"), (2, "final_answer")]
    assert steps[0].thought == "Thought: scripted validate_dataset"
    assert steps[0].arguments == {"dataset": "sample_sales.csv"}
    assert steps[0].facts["duplicate_rows"] == 48 and "48 duplicate rows" in steps[0].summary
    assert steps[0].observation.startswith(steps[0].summary + "\nfacts: ")  # the text the model read
    assert steps[0].error is None and 0 < steps[0].confidence <= 1
    assert steps[1].observation == "48 duplicates"
    assert state["answers"] == {"cleaner": "48 duplicates"}
    assert state["context"]["dataset"] == "sample_sales.csv"
    assert state["progress"][0]["status"] == "completed"


def test_tool_exceptions_become_observations_the_agent_reacts_to(script, invoke_config) -> None:
    script.play(("call", "aggregate", {"dataset": "sample_sales.csv", "group_by": "nope"}),
                ("call", "aggregate", {"dataset": "sample_sales.csv", "group_by": "region"}),
                ("final", "done"))
    state = one_node_graph().invoke({"task": "check"}, invoke_config)
    failed, recovered, final = state["steps"]
    assert "Unknown column 'nope'" in failed["error"]
    assert recovered["error"] is None
    # The model saw the error before choosing its next call.
    assert "Unknown column 'nope'" in json.dumps([str(m) for m in script.seen[1]])
    assert failed["confidence"] < recovered["confidence"]
    assert final["confidence"] < 1.0  # an errored step lowers the agent's confidence


def test_the_same_call_three_times_ends_the_agent_with_a_loop_reason(script, invoke_config) -> None:
    call = ("call", "validate_dataset", {"dataset": "sample_sales.csv"})
    script.play(call, call, call, ("final", "never reached"))
    with pytest.raises(AgentRunError, match="loop detected: validate_dataset called 3 times") as info:
        one_node_graph().invoke({"task": "check"}, invoke_config)
    assert len(info.value.record["steps"]) == 3


def test_exhausting_max_steps_is_a_recorded_failure(script, invoke_config) -> None:
    spec = SPEC.model_copy(update={"max_steps": 2})
    script.play(("call", "validate_dataset", {"dataset": "sample_sales.csv"}),
                ("call", "aggregate", {"dataset": "sample_sales.csv"}),
                ("final", "summary asked for after max steps"))
    with pytest.raises(AgentRunError, match=r"max_steps \(2\) exhausted") as info:
        one_node_graph(spec).invoke({"task": "check"}, invoke_config)
    assert info.value.record["node"] == "cleaner"


def test_model_errors_are_retried_by_the_node_retry_policy(script, invoke_config) -> None:
    script.play(ConnectionError("server down"), ("final", "fine on the second attempt"))
    state = one_node_graph(attempts=2).invoke({"task": "check"}, invoke_config)
    assert state["answers"]["cleaner"] == "fine on the second attempt"
    assert state["steps"][-1]["attempt"] == 2
    assert state["progress"][0]["attempt"] == 2


def test_model_errors_fail_the_node_once_retries_are_exhausted(script, invoke_config) -> None:
    script.play(ConnectionError("server down"), ConnectionError("still down"))
    with pytest.raises(AgentRunError, match="model error: .*still down"):
        one_node_graph(attempts=2).invoke({"task": "check"}, invoke_config)


def test_each_execution_gets_a_fresh_agent_without_memory_of_earlier_runs(script) -> None:
    graph = one_node_graph()
    script.play(("final", "first"))
    graph.invoke({"task": "first task"}, {"configurable": {"thread_id": "a"}})
    script.play(("final", "second"))
    graph.invoke({"task": "second task"}, {"configurable": {"thread_id": "a"}})
    second_call = json.dumps([str(m) for m in script.seen[1]])
    assert "second task" in second_call and "first task" not in second_call


def test_agent_spec_rejects_unknown_tools() -> None:
    with pytest.raises(ValueError, match="unknown tool"):
        AgentSpec(name="x", role="r", instructions="i", tools=("no_such_tool",))


def test_context_reducer_keeps_every_branchs_own_findings() -> None:
    from relaygraph.nodes.state import merge_dicts

    left = {"dataset": "a.csv", "findings": {"validator": "ok"}}
    merged = merge_dicts(left, {"findings": {"scorer": "fine"}, "dataset": "b.parquet"})
    assert merged == {"dataset": "b.parquet", "findings": {"validator": "ok", "scorer": "fine"}}
    assert left["findings"] == {"validator": "ok"}  # inputs are not mutated


def test_the_step_keeps_the_whole_typed_result_when_the_models_text_is_cut(script, invoke_config, monkeypatch) -> None:
    monkeypatch.setenv("RELAYGRAPH_OBSERVATION_CHARS", "200")
    script.play(("call", "clean_dataset", {"dataset": "sample_sales.csv"}), ("final", "cleaned"))
    spec = SPEC.model_copy(update={"tools": ("clean_dataset",)})
    state = one_node_graph(spec).invoke({"task": "clean"}, invoke_config)
    step = AgentStep.model_validate(state["steps"][0])
    assert "[truncated" in step.observation and "remaining_nulls" not in step.observation
    assert step.facts["remaining_nulls"]["customer_id"] == DEFECTS["null_customer_id"]
    assert step.artifacts["dataset"] == "sample_sales_clean.parquet" == state["context"]["dataset"]
    assert step.confidence > 0.7  # a typed result is full evidence
