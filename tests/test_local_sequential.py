"""Issue 6 integration test: the sequential graph driven end to end by the local model.

Asserted: the run ends with an honest status (a refused call is the model's weak choice, not
plumbing); every tool call the agents made parses and validates against the
JSON schema that was actually sent to the server (run-specific enums included); no agent takes
more than its max_steps; the result is non-empty. Answer quality is not asserted — a 135M
model's choices are weak. Skips with the install command where the ``local`` extra is
missing, fails instead under ``CI`` (which installs it). Slow on 2 cores (minutes).
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest
from conftest import require_local
from relaygraph.providers.local_llm import shutdown_shared_server
from relaygraph.providers.local_llm.grammar import sanitize_schema

pytestmark = [pytest.mark.local_llm, pytest.mark.slow]

# smolagents errors that would mean a call did not parse or did not fit its schema.
INVALID_CALL_MARKERS = (
    "could not parse",
    "AgentParsingError",
    "is not in the tool's input schema",
    "but should be",
    "required argument",
    "Unknown tool",
)


def validator(schema: dict[str, Any]) -> Any:
    """A callable returning the list of validation errors of an instance (empty = valid)."""
    schema = sanitize_schema(schema)  # smolagents' "nullable" dialect → standard JSON schema
    try:
        import jsonschema_rs

        checker = jsonschema_rs.validator_for(schema)
        return lambda value: [str(e) for e in checker.iter_errors(value)]
    except ImportError:
        import jsonschema

        checker = jsonschema.validators.validator_for(schema)(schema)
        return lambda value: [e.message for e in checker.iter_errors(value)]


def test_sequential_graph_runs_with_the_local_model(monkeypatch: pytest.MonkeyPatch) -> None:
    require_local()
    import smolagents.models
    from relaygraph.config.settings import get_settings
    from relaygraph.graphs.sequential import AGENTS, graph

    sent: dict[str, list[dict[str, Any]]] = {}
    original = smolagents.models.get_tool_json_schema

    def recording(tool: Any) -> dict[str, Any]:
        schema = original(tool)
        sent.setdefault(schema["function"]["name"], []).append(schema["function"]["parameters"])
        return schema

    # OpenAIServerModel builds each request's tool list through this function.
    monkeypatch.setattr(smolagents.models, "get_tool_json_schema", recording)
    config = {"configurable": {"model": "local", "thread_id": f"local-{uuid.uuid4().hex[:8]}"}}
    try:
        state = graph.invoke(
            {"task": "Profile, validate and clean the sales dataset, analyse it and write a report."},
            config,
        )
    finally:
        shutdown_shared_server()

    result = state["result"]
    # The run ends, and says honestly how: a 135M model's calls are valid but its choices weak
    # (a constraint the validator refuses, say), so an agent whose every tool call was refused
    # is failed - and listed - rather than the run being "completed".
    assert result["status"] in ("completed", "partial", "failed"), result
    if result["status"] != "completed":
        assert result["errors"], result
        plumbing = [e for e in result["errors"] if any(w in e["reason"] for w in ("JSON", "parse", "grammar"))]
        assert not plumbing, plumbing  # no call failed for its form: the grammar holds
    assert str(result["answer"]).strip()
    assert "local" in result["provider"]

    steps = state["steps"]
    calls = [s for s in steps if s.get("tool")]
    assert calls, "the agents made no tool calls"
    for step in calls:
        assert step["tool"] in sent, f"{step['tool']} was never offered to the model"
        problems = [validator(schema)(step["arguments"]) for schema in sent[step["tool"]]]
        assert any(not p for p in problems), (
            f"{step['agent']} step {step['step']}: {step['tool']}({step['arguments']}) "
            f"matches none of the schemas sent: {problems}"
        )
    for step in steps:
        error = step.get("error") or ""
        assert not any(m in error for m in INVALID_CALL_MARKERS), (step["agent"], error)

    default_max = get_settings().max_steps
    limits = {spec.name: spec.max_steps or default_max for spec in AGENTS}
    per_attempt = Counter((s["agent"], s.get("attempt", 1)) for s in steps)
    for (agent, attempt), count in per_attempt.items():
        assert count <= limits[agent], f"{agent} (attempt {attempt}) took {count} steps"
    ran = {s["agent"] for s in steps}
    order = [spec.name for spec in AGENTS]
    assert ran == set(order[:len(ran)]), ran  # the pipeline in order, up to where it stopped
    if result["status"] == "completed":
        assert ran == set(limits)
