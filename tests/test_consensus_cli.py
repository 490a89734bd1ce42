"""A consensus run killed mid-vote resumes without asking any voter that already voted again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter

import pytest
from conftest import REPO
from test_workflow_cli import RUNNER, child_env, cli, wait_for


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
def test_a_consensus_run_killed_mid_vote_resumes_without_re_asking_voters(isolated_env, tmp_path) -> None:
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

    resumed = cli(["resume", thread, "--json"], child_env(isolated_env, log))
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)["result"]
    block = result["consensus"]
    assert result["status"] == "completed" and block["decision"] == "north" and block["mode"] == "pbft"
    assert "voter_1" in block["suspects"]  # the injected liar is still caught after the resume
    starts = Counter(line.split(" ", 1)[1] for line in log.read_text().splitlines() if line.startswith("start "))
    assert starts["voter 1"] == starts["voter 2"] == starts["voter 4"] == 1, starts  # not asked twice
    assert starts["voter 3"] == 2  # the voter killed mid-ballot was asked again, once
