"""A thread is finished when its run reached its end — not when LangGraph's ``next`` is empty.

LangGraph leaves out of ``next`` the tasks that already saved their writes, so a run killed
after a step's writes and before the next checkpoint looks finished by ``next`` alone. These
tests kill runs at every such point and resume them (issue 11 §1).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
from collections import Counter

import pytest
from conftest import REPO, cli_here
from langgraph.checkpoint.sqlalchemy import SQLAlchemySaver
from relaygraph.cli.runner import continue_run, thread_status

sys.path.insert(0, str(REPO / "tests"))
from crash_graph import EXPECTED, build, run  # noqa: E402


def run_child(url: str, thread: str, kill_after: int, durability: str) -> int | None:
    """The graph in a forked child (a real process death, without a new interpreter per kill);
    returns the child's exit code: ``-SIGKILL`` when it killed itself."""
    child = multiprocessing.get_context("fork").Process(target=run, args=(url, thread, kill_after, durability))
    child.start()
    child.join(120)
    return child.exitcode


@pytest.mark.slow
@pytest.mark.parametrize("durability", ["sync", "async"])
def test_a_run_killed_after_any_saved_write_resumes_to_the_right_result(sqlite_url: str, durability: str) -> None:
    writes = run(sqlite_url, "clean", 0, durability)
    assert writes == 7  # the input, plan, a, b, c, join, result: each saves its writes
    empty_next_seen = 0
    for k in range(1, writes + 1):
        thread = f"kill-{k}"
        assert run_child(sqlite_url, thread, k, durability) == -signal.SIGKILL, k
        with SQLAlchemySaver.from_conn_string(sqlite_url) as saver:
            graph = build().compile(checkpointer=saver)
            config = {"configurable": {"thread_id": thread}}
            snapshot = graph.get_state(config)
            status = thread_status(graph, config)
            if status == "new":
                # async durability: the saver commits a task's writes with the next
                # checkpoint, so a kill right after put_writes returned may leave nothing of
                # the run (README, "Durability"); it starts again from its input.
                assert durability == "async", k
                graph.invoke({"task": "t"}, config, durability=durability)
            elif not snapshot.next and not snapshot.values.get("result"):
                empty_next_seen += 1  # the window the old "next is empty" rule got wrong
                assert status == "unfinished", k
            if status == "unfinished":
                continue_run(graph, config)
            assert thread_status(graph, config) == "finished", k
            assert graph.get_state(config).values["result"] == EXPECTED, k
    if durability == "sync":
        assert empty_next_seen >= 1  # the test really exercised the bug's window
    # Under async durability relaygraph's saver commits a task's writes together with the
    # next checkpoint, so that window (writes saved, next checkpoint not) never persists.


def test_thread_status_says_new_finished_and_refuses_to_continue_either(sqlite_url: str) -> None:
    with SQLAlchemySaver.from_conn_string(sqlite_url) as saver:
        saver.setup()
        graph = build().compile(checkpointer=saver)
        config = {"configurable": {"thread_id": "t"}}
        assert thread_status(graph, config) == "new"
        with pytest.raises(ValueError, match="new"):
            continue_run(graph, config)
        graph.invoke({"task": "t"}, config)
        assert thread_status(graph, config) == "finished"
        with pytest.raises(ValueError, match="finished"):
            continue_run(graph, config)


@pytest.mark.slow
def test_cli_resumes_a_run_killed_between_writes_and_the_next_checkpoint(isolated_env, tmp_path, monkeypatch) -> None:
    """The user-facing bug: ``relaygraph resume`` said 'already finished' for such a thread."""
    log = tmp_path / "agents.log"
    env = {**os.environ, "RELAYGRAPH_MODEL": "crashy", "CRASH_LOG": str(log), "CRASH_AFTER_PUT_WRITES": "1"}
    runner = [sys.executable, str(REPO / "tests" / "crash_runner.py")]
    killed = subprocess.run([*runner, "run", "sequential", "--thread-id", "cut", "--json"], env=env,
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    done = cli_here(["resume", "cut", "--json"], log, monkeypatch)  # the resume needs no process of its own
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)["result"]
    assert result["status"] == "completed", result
    starts = Counter(line.split(" ", 1)[1] for line in log.read_text().splitlines() if line.startswith("start "))
    assert starts["data extractor"] == 1, starts  # its saved writes were applied, not redone
