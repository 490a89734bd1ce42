"""`langgraph dev` serves the graphs listed in langgraph.json, and runs them to the end."""

from __future__ import annotations

import json

import httpx
import pytest
from conftest import REPO, running_langgraph_dev
from relaygraph.cli.main import app
from relaygraph.config.checkpointing import open_checkpointer
from typer.testing import CliRunner


def listed_graphs() -> list[str]:
    return sorted(json.loads((REPO / "langgraph.json").read_text())["graphs"])


def test_the_cli_lists_exactly_the_graphs_of_langgraph_json() -> None:
    """One registry: ``relaygraph graphs`` reads langgraph.json, as ``langgraph dev`` does."""
    listed = CliRunner().invoke(app, ["graphs", "--json"])
    assert listed.exit_code == 0, listed.output
    assert sorted(g["name"] for g in json.loads(listed.stdout)) == listed_graphs()
    plain = CliRunner().invoke(app, ["graphs"]).stdout.splitlines()  # one unindented line per graph
    assert sorted(line.split()[0] for line in plain if line[:1].strip() and not line.startswith("Every")) == \
        listed_graphs()
    unknown = CliRunner().invoke(app, ["run", "no-such-graph"])
    assert unknown.exit_code == 2
    assert f"available: {', '.join(listed_graphs())}" in unknown.output


@pytest.mark.slow
def test_sequential_round_trip_through_runs_wait(langgraph_dev: str) -> None:
    with httpx.Client(base_url=langgraph_dev, timeout=120) as client:
        thread = client.post("/threads", json={}).raise_for_status().json()["thread_id"]
        state = client.post(f"/threads/{thread}/runs/wait", json={
            "assistant_id": "sequential",
            "input": {"task": "Profile, validate, clean, analyse and report."},
        }).raise_for_status().json()
    assert state["result"]["status"] == "completed", state
    assert "no LLM" in state["result"]["provider"]
    assert {s["agent"] for s in state["steps"]} == {"extract", "clean", "analyze", "report"}
    assert "48 duplicate rows" in state["answers"]["clean"]


@pytest.mark.slow
@pytest.mark.parametrize(("graph", "check"), [
    ("parallel", lambda r: r["success_rate"] == 1.0 and len(r["parallel"]["branches"]) == 4),
    ("handoff", lambda r: r["handoffs"]["route"].startswith("triage → quality")),
    ("hierarchical", lambda r: r["quality"]["overall"]["coverage"] == 1.0),
    ("consensus", lambda r: r["consensus"]["decision"] == "north" and r["consensus"]["mode"] == "majority"),
    ("planned", lambda r: r["plan"]["completed"] == ["validate", "clean", "aggregate", "trends", "outliers", "report"]
     and r["critique"][-1]["clean"]),
    ("auction", lambda r: r["market"]["settled"] == r["market"]["total"] == 4),
    ("negotiation", lambda r: r["negotiation"]["resolved"] and r["negotiation"]["strategy"] == "negotiation"),
])
def test_workflow_round_trip_through_runs_wait(langgraph_dev: str, graph: str, check) -> None:
    import importlib

    task = importlib.import_module(f"relaygraph.graphs.{graph}").DEFAULT_TASK
    with httpx.Client(base_url=langgraph_dev, timeout=120) as client:
        thread = client.post("/threads", json={}).raise_for_status().json()["thread_id"]
        state = client.post(f"/threads/{thread}/runs/wait", json={
            "assistant_id": graph, "input": {"task": task},
        }).raise_for_status().json()
    assert state["result"]["status"] == "completed", state.get("result")
    assert check(state["result"])


@pytest.mark.slow
def test_approval_round_trip_through_runs_wait(langgraph_dev: str) -> None:
    """configurable.approve_before pauses the run; Command(resume=...) continues it."""
    config = {"configurable": {"approve_before": ["aggregate"], "specialists": ["scorer"]}}
    with httpx.Client(base_url=langgraph_dev, timeout=120) as client:
        thread = client.post("/threads", json={}).raise_for_status().json()["thread_id"]
        paused = client.post(f"/threads/{thread}/runs/wait", json={
            "assistant_id": "parallel", "input": {"task": "Clean, then score."}, "config": config,
        }).raise_for_status().json()
        assert paused["__interrupt__"][0]["value"]["node"] == "aggregate"
        done = client.post(f"/threads/{thread}/runs/wait", json={
            "assistant_id": "parallel", "command": {"resume": {"approved": True, "comment": "ok"}},
            "config": config,
        }).raise_for_status().json()
    assert done["result"]["status"] == "completed"
    assert done["result"]["approvals"][0]["comment"] == "ok"


@pytest.mark.slow
def test_a_thread_survives_a_restart_of_langgraph_dev(tmp_path) -> None:
    """langgraph.json points `langgraph dev` at relaygraph's saver, so threads outlive the server."""
    with running_langgraph_dev(tmp_path) as url, httpx.Client(base_url=url, timeout=120) as client:
        thread = client.post("/threads", json={}).raise_for_status().json()["thread_id"]
        first = client.post(f"/threads/{thread}/runs/wait", json={
            "assistant_id": "sequential", "input": {"task": "Validate, clean, analyse and report."},
        }).raise_for_status().json()
        assert first["result"]["status"] == "completed"

    with open_checkpointer(f"sqlite:///{tmp_path / 'dev.db'}") as saver:  # relaygraph's saver has it
        stored = list(saver.list({"configurable": {"thread_id": thread}}))
    assert [c.metadata["step"] for c in stored] == [5, 4, 3, 2, 1, 0, -1]  # input, start, 4 agents, finalize
    assert stored[0].checkpoint["channel_values"]["result"] == first["result"]

    with running_langgraph_dev(tmp_path) as url, httpx.Client(base_url=url, timeout=120) as client:
        state = client.get(f"/threads/{thread}/state").raise_for_status().json()
        assert state["values"]["result"] == first["result"]
        history = client.post(f"/threads/{thread}/history", json={"limit": 100}).raise_for_status().json()
        assert len(history) == len(stored)  # every checkpoint, read back from the database
        # a new input on the finished thread is refused (as the CLI does), not merged into it
        again = client.post(f"/threads/{thread}/runs/wait", json={
            "assistant_id": "sequential", "input": {"task": "Once more on the same thread."},
        })
        assert "ThreadFinishedError" in again.text and "already ran to its end" in again.text, again.text
        after = client.get(f"/threads/{thread}/state").raise_for_status().json()
        assert after["values"]["result"] == first["result"]  # nothing re-ran


@pytest.mark.slow
@pytest.mark.parametrize("approved", [True, False])
def test_one_parallel_branch_is_gated_by_its_agent_name_through_langgraph_dev(langgraph_dev: str,
                                                                              approved: bool) -> None:
    """Under ``langgraph dev`` (the async path: ``ainvoke``, the async saver) ``approve_before``
    naming one specialist pauses that branch only; the answer runs it or records it as rejected."""
    config = {"configurable": {"approve_before": ["validator"], "specialists": ["validator", "scorer"]}}
    with httpx.Client(base_url=langgraph_dev, timeout=120) as client:
        thread = client.post("/threads", json={}).raise_for_status().json()["thread_id"]
        paused = client.post(f"/threads/{thread}/runs/wait", json={
            "assistant_id": "parallel", "input": {"task": "Clean, then validate and score."}, "config": config,
        }).raise_for_status().json()
        assert [i["value"]["node"] for i in paused["__interrupt__"]] == ["validator"], paused.get("__interrupt__")
        assert "result" not in paused
        # runs/wait answers with the values before the paused step; the thread's state holds the
        # writes of the branch that ran in it
        waiting = client.get(f"/threads/{thread}/state").raise_for_status().json()
        assert set(waiting["values"]["branches"]) == {"scorer"} and waiting["next"] == ["specialist"]
        assert [i["value"]["node"] for t in waiting["tasks"] for i in t["interrupts"]] == ["validator"]
        done = client.post(f"/threads/{thread}/runs/wait", json={
            "assistant_id": "parallel", "command": {"resume": {"approved": approved, "comment": "dev says so"}},
            "config": config,
        }).raise_for_status().json()
    result = done["result"]
    statuses = {b: s["status"] for b, s in result["parallel"]["branches"].items()}
    progress = {p["node"]: p["status"] for p in done["progress"] if p["node"] in ("validator", "scorer")}
    if approved:
        assert result["status"] == "completed" and statuses == {"validator": "completed", "scorer": "completed"}
        assert progress == {"validator": "completed", "scorer": "completed"}
        assert result["approvals"][0]["approved"] is True
    else:
        assert result["status"] == "partial", result
        assert statuses == {"validator": "rejected", "scorer": "completed"}
        assert progress == {"validator": "rejected", "scorer": "completed"}
        assert [(e["node"], e["outcome"], e["reason"]) for e in result["errors"]] == [
            ("validator", "rejected", "rejected before it ran: dev says so")]
        assert result["approvals"][0]["branch"] == "validator" and result["approvals"][0]["approved"] is False
        assert result["failed"] == {} and list(result["rejected"]) == ["validator"]
        assert not any(s["agent"] == "validator" for s in done["steps"])  # never ran
