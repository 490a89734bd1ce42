"""The workflows from the command line: crash in the middle and resume, approval, history, fork."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, cli_here

RUNNER = REPO / "tests" / "crash_runner.py"


def cli(args: list[str], env: dict[str, str], **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RUNNER), *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=120, **kw)


def child_env(isolated_env: dict[str, Path], log: Path, block: str | None = None,
              script: str | None = None) -> dict[str, str]:
    """The environment of a ``crash_runner.py`` child: ``block`` is CRASH_BLOCK_ROLE, ``script``
    (``MODULE:FUNCTION``, a test module's function that scripts a RolePlay) CRASH_SCRIPT."""
    env = {**os.environ, "RELAYGRAPH_MODEL": "crashy", "CRASH_LOG": str(log),
           "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for name, value in (("CRASH_BLOCK_ROLE", block), ("CRASH_SCRIPT", script)):
        env.pop(name, None)
        if value:
            env[name] = value
    return env


def saved_branches(thread: str) -> set[str]:
    """Branch/worker results already saved for the thread (pending writes, any namespace)."""
    from relaygraph.config.checkpointing import open_checkpointer

    found: set[str] = set()
    with open_checkpointer() as saver:
        for item in saver.list({"configurable": {"thread_id": thread}}):
            for _, channel, value in item.pending_writes or []:
                if channel == "branches" and isinstance(value, dict):
                    found |= set(value)
    return found


def latest_next(thread: str) -> tuple[str, ...]:
    from relaygraph.config.checkpointing import open_checkpointer

    with open_checkpointer() as saver:
        found = saver.get_tuple({"configurable": {"thread_id": thread, "checkpoint_ns": ""}})
        return tuple(found.checkpoint["channel_versions"]) if found else ()


def wait_for(condition, what: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {what}: {proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


CRASHES = {
    # graph: (role that blocks, branches saved before the kill, agent runs that must not repeat)
    "parallel": ("record scorer", {"validator", "profiler", "segmenter"},
                 ["data cleaner", "data validator", "data profiler and enricher", "customer segmenter"]),
    "handoff": ("customer analyst", set(), ["triage agent", "data quality specialist", "sales analyst"]),
    "hierarchical": ("record scorer", {"validation", "outliers", "breakdown", "trends", "segments"},
                     ["data validator", "outlier analyst", "sales analyst", "trend analyst", "customer segmenter"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("graph", sorted(CRASHES))
def test_a_run_killed_in_the_middle_resumes_without_rerunning_finished_agents(graph, isolated_env, tmp_path,
                                                                            monkeypatch) -> None:
    block, saved, finished_roles = CRASHES[graph]
    log, thread = tmp_path / "agents.log", f"crash-{graph}"
    proc = subprocess.Popen([sys.executable, str(RUNNER), "run", graph, "--thread-id", thread, "--json"],
                            env=child_env(isolated_env, log, block), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(lambda: log.is_file() and f"block {block}" in log.read_text(), f"{block} to start", proc)
        wait_for(lambda: saved <= saved_branches(thread), f"{sorted(saved)} to be checkpointed", proc)
        if graph == "handoff":  # sequential turns: the blocked agent's node is the next one
            wait_for(lambda: "branch:to:customers" in latest_next(thread), "the handoff checkpoint", proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    done = cli_here(["resume", thread, "--json"], log, monkeypatch)
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)["result"]
    assert result["status"] == "completed", result
    starts = Counter(line.split(" ", 1)[1] for line in log.read_text().splitlines() if line.startswith("start "))
    for role in finished_roles:
        assert starts[role] == 1, (role, starts)  # checkpointed work was not redone
    assert starts[block] == 2  # the agent that was killed ran again, once


def test_approve_reject_history_and_fork_from_the_cli(isolated_env) -> None:
    from relaygraph.cli.main import app
    from typer.testing import CliRunner

    def run(args: list[str]) -> Any:
        return CliRunner().invoke(app, args)

    paused = run(["run", "parallel", "--thread-id", "t1", "--approve-before", "aggregate",
                  "--param", "specialists=validator,scorer", "--max-concurrency", "2", "--json"])
    assert paused.exit_code == 0, paused.output
    assert json.loads(paused.stdout)["interrupts"][0]["value"]["node"] == "aggregate"

    refused = run(["resume", "t1"])
    assert refused.exit_code == 2
    assert "waiting for approval before aggregate; resume with --approve or --reject" in refused.stderr

    approved = run(["resume", "t1", "--approve", "--comment", "fine", "--json"])
    result = json.loads(approved.stdout)["result"]
    assert result["status"] == "completed" and result["approvals"][0]["comment"] == "fine"
    assert sorted(result["parallel"]["branches"]) == ["scorer", "validator"]  # --param kept on resume

    history = json.loads(run(["history", "t1", "--json"]).stdout)["checkpoints"]
    assert [row["step"] for row in history] == list(range(-1, len(history) - 1))
    gate = next(row for row in history if row["waiting"])
    assert gate["node"] == "specialist×2" and gate["next"] == "aggregate"

    forked = run(["fork", "t1", "--checkpoint", gate["checkpoint_id"], "--thread-id", "t2", "--json"])
    assert json.loads(forked.stdout)["interrupts"][0]["value"]["node"] == "aggregate"  # asks again
    rejected = run(["resume", "t2", "--reject", "--comment", "not this one", "--json"])
    fork_result = json.loads(rejected.stdout)["result"]
    assert fork_result["status"] == "rejected" and "not this one" in fork_result["answer"]
    # The original thread is untouched by its fork.
    assert json.loads(run(["history", "t1", "--json"]).stdout)["checkpoints"] == history

    missing = run(["fork", "t1", "--checkpoint", "nope"])
    assert missing.exit_code == 2 and "relaygraph history t1" in missing.stderr
    unknown_node = run(["run", "parallel", "--approve-before", "nowhere"])
    assert unknown_node.exit_code == 2 and "no node nowhere in this graph" in unknown_node.stderr


def test_a_parallel_branch_is_gated_by_its_agent_name_from_the_cli(isolated_env) -> None:
    """``--approve-before validator`` is accepted (and listed by ``graphs --json``), pauses before
    that branch only, and ``resume --reject`` records it as rejected while the others finish."""
    from relaygraph.cli.main import app
    from typer.testing import CliRunner

    def run(args: list[str]) -> Any:
        return CliRunner().invoke(app, args)

    graphs = {g["name"]: g for g in json.loads(run(["graphs", "--json"]).stdout)}
    assert {"validator", "profiler", "segmenter", "scorer"} <= set(graphs["parallel"]["approvable_nodes"])

    paused = run(["run", "parallel", "--thread-id", "b1", "--approve-before", "validator",
                  "--param", "specialists=validator,scorer", "--json"])
    assert paused.exit_code == 0, paused.output
    assert [i["value"]["node"] for i in json.loads(paused.stdout)["interrupts"]] == ["validator"]
    refused = run(["resume", "b1"])
    assert refused.exit_code == 2 and "waiting for approval before validator" in refused.stderr

    rejected = run(["resume", "b1", "--reject", "--comment", "skip it", "--json"])
    result = json.loads(rejected.stdout[rejected.stdout.index("{"):])["result"]
    assert result["status"] == "partial", result
    assert {b: s["status"] for b, s in result["parallel"]["branches"].items()} == {
        "validator": "rejected", "scorer": "completed"}
    assert [(e["node"], e["reason"]) for e in result["errors"]] == [("validator", "rejected before it ran: skip it")]

    approved_run = run(["run", "parallel", "--thread-id", "b2", "--approve-before", "scorer",
                        "--param", "specialists=validator,scorer", "--json"])
    assert [i["value"]["node"] for i in json.loads(approved_run.stdout)["interrupts"]] == ["scorer"]
    approved = run(["resume", "b2", "--approve", "--json"])
    result = json.loads(approved.stdout)["result"]
    assert result["status"] == "completed" and result["success_rate"] == 1.0

    partitioned = run(["run", "parallel", "--thread-id", "b3", "--approve-before", "validator",
                       "--param", "specialists=validator,scorer", "--param", "partitions=2", "--json"])
    assert sorted(i["value"]["node"] for i in json.loads(partitioned.stdout)["interrupts"]) == [
        "validator_p1", "validator_p2"]  # each partition of the agent asks on its own
    answered = json.loads(run(["resume", "b3", "--approve", "--json"]).stdout)["result"]  # one answer for all
    assert answered["status"] == "completed" and answered["parallel"]["total"] == 4


@pytest.mark.parametrize(("graph", "gate", "params", "status"), [
    ("sequential", "report", [], "rejected"),  # a node: the run ends there
    ("parallel", "validator", ["--param", "specialists=validator,scorer"], "partial"),  # one branch: the rest stand
])
def test_a_rejection_is_a_rejected_progress_line_and_a_listed_error_from_the_cli(
        isolated_env, graph, gate, params, status) -> None:
    """What a human rejected shows as a ■ progress line, a ``rejected`` progress entry and a
    ``result.errors`` entry with ``outcome: rejected`` — never a ✓, a ✗ or nothing."""
    from relaygraph.cli.main import app
    from relaygraph.config.checkpointing import open_checkpointer
    from typer.testing import CliRunner

    paused = CliRunner().invoke(app, ["run", graph, "--thread-id", "rj", "--approve-before", gate, *params])
    assert paused.exit_code == 0 and "Waiting for approval" in paused.stdout, paused.output
    answered = CliRunner().invoke(app, ["resume", "rj", "--reject", "--comment", "not now"])
    assert answered.exit_code == 0, answered.output
    lines = answered.stdout.splitlines()
    assert any(line.startswith(f"■ {gate} (0.00s) rejected before it ran: not now") for line in lines), lines
    assert not any(line.startswith(f"✓ {gate}") or line.startswith(f"✗ {gate}") for line in lines), "\n".join(lines)
    assert f"Result ({status})" in answered.stdout

    module = __import__(f"relaygraph.graphs.{graph}", fromlist=["build_graph"])
    with open_checkpointer() as saver:
        values = module.build_graph().compile(checkpointer=saver).get_state(
            {"configurable": {"thread_id": "rj"}}).values
    assert [p["status"] for p in values["progress"] if p["node"] == gate] == ["rejected"]
    assert [(e["node"], e["outcome"], e["reason"]) for e in values["result"]["errors"]
            if e.get("outcome")] == [(gate, "rejected", "rejected before it ran: not now")]
    assert values["result"]["status"] == status
