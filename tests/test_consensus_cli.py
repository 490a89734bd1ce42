"""A consensus run killed mid-vote resumes without asking any voter that already voted again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter

import pytest
from conftest import REPO, cli_here
from test_workflow_cli import RUNNER, child_env, wait_for


def saved_ballots(thread: str) -> set[str]:
    """Ballot keys ("r1/voter_2") already in the thread's checkpoints (pending writes included)."""
    from relaygraph.config.checkpointing import open_checkpointer

    found: set[str] = set()
    with open_checkpointer() as saver:
        for item in saver.list({"configurable": {"thread_id": thread}}):
            for _, channel, value in item.pending_writes or []:
                if channel == "ballots" and isinstance(value, dict):
                    found |= set(value)
            found |= set((item.checkpoint.get("channel_values") or {}).get("ballots") or {})
    return found


@pytest.mark.slow
def test_a_consensus_run_killed_mid_vote_resumes_without_re_asking_voters(isolated_env, tmp_path, monkeypatch) -> None:
    log, thread = tmp_path / "agents.log", "crash-consensus"
    args = ["run", "consensus", "--thread-id", thread, "--json", "--param", "mode=pbft", "--param", "voters=4",
            "--param", "faults=lie"]
    proc = subprocess.Popen([sys.executable, str(RUNNER), *args], env=child_env(isolated_env, log, "voter 3"),
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    done_before = {"r1/voter_1", "r1/voter_2", "r1/voter_4"}
    try:
        wait_for(lambda: log.is_file() and "block voter 3" in log.read_text(), "voter 3 to start", proc)
        wait_for(lambda: done_before <= saved_ballots(thread), f"{sorted(done_before)} to be checkpointed", proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert "r1/voter_3" not in saved_ballots(thread)

    resumed = cli_here(["resume", thread, "--json"], log, monkeypatch)  # no process of its own needed
    assert resumed.exit_code == 0, resumed.output
    result = json.loads(resumed.stdout)["result"]
    block = result["consensus"]
    assert result["status"] == "completed" and block["decision"] == "north" and block["mode"] == "pbft"
    assert "voter_1" in block["suspects"]  # the injected liar is still caught after the resume
    starts = Counter(line.split(" ", 1)[1] for line in log.read_text().splitlines() if line.startswith("start "))
    assert starts["voter 1"] == starts["voter 2"] == starts["voter 4"] == 1, starts  # not asked twice
    assert starts["voter 3"] == 2  # the voter killed mid-ballot was asked again, once


KILL_IN_PHASE_3 = """
import os, signal, sys
sys.path.insert(0, os.path.join(os.getcwd(), "tests"))
from relaygraph.coordination.network import PhasedRun
step = PhasedRun.step
def dying_step(self, **kw):
    if len(self.steps) == 2:  # phases 1 and 2 are checkpointed: die in phase 3, no cleanup
        os.kill(os.getpid(), signal.SIGKILL)
    return step(self, **kw)
PhasedRun.step = dying_step
import crash_runner
crash_runner.main()
"""


def protocol_steps(thread: str) -> list[dict]:
    from relaygraph.config.checkpointing import open_checkpointer

    with open_checkpointer() as saver:
        state = saver.get_tuple({"configurable": {"thread_id": thread}})
        return list((state.checkpoint.get("channel_values") or {}).get("protocol") or []) if state else []


@pytest.mark.slow
def test_a_consensus_run_sigkilled_mid_protocol_resumes_from_its_checkpointed_phases(isolated_env, tmp_path,
                                                                                     monkeypatch) -> None:
    log, options = tmp_path / "agents.log", ["--param", "mode=pbft", "--param", "voters=4", "--param", "faults=lie"]
    killed = subprocess.run([sys.executable, "-c", KILL_IN_PHASE_3, "run", "consensus", "--thread-id", "killed",
                             "--json", *options], env=child_env(isolated_env, log), cwd=REPO, capture_output=True,
                            text=True, timeout=120, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert [p["phase"] for p in protocol_steps("killed")] == ["pre-prepare (view 0)", "view-change (view 1)"]
    voted = Counter(line.split(" ", 1)[1] for line in log.read_text().splitlines() if line.startswith("start "))
    assert voted == {f"voter {i}": 1 for i in range(1, 5)}

    resumed = cli_here(["resume", "killed", "--json"], log, monkeypatch)  # no process of its own needed
    assert resumed.exit_code == 0, resumed.output
    whole = cli_here(["run", "consensus", "--thread-id", "whole", "--json", *options], tmp_path / "w", monkeypatch)
    block, reference = (json.loads(r.stdout)["result"]["consensus"] for r in (resumed, whole))
    assert block["decision"] == reference["decision"] == "north" and "voter_1" in block["suspects"]
    assert block["phases"] == reference["phases"] and len(block["phases"]) == 6
    voted = Counter(line.split(" ", 1)[1] for line in log.read_text().splitlines() if line.startswith("start "))
    assert voted == {f"voter {i}": 1 for i in range(1, 5)}  # the resume asked no voter again


def test_a_preset_question_the_data_cannot_answer_is_refused_up_front(isolated_env, tmp_path, monkeypatch) -> None:
    """Trees have no region or revenue: voters would compute mean height by park and 'agree'."""
    trees = tmp_path / "trees.csv"
    trees.write_text("park,species,height_m\nold town,oak,12.5\nriverside,elm,9.0\nold town,ash,14.1\n")
    log = tmp_path / "agents.log"
    refused = cli_here(["run", "consensus", "--data", str(trees), "--param", "question=top_region",
                        "--param", "mode=bft"], log, monkeypatch)
    assert refused.exit_code == 2, refused.output
    assert "region, revenue" in refused.output and "trees.csv" in refused.output
    assert not log.exists() or "start " not in log.read_text()  # no voter ran
