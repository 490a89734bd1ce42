"""One run per thread at a time: a second runner on a busy thread is refused, and a killed
holder's lease is released by the database / the kernel, not by a timeout (issue 11 §4)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from conftest import REPO, cli_here
from langgraph.checkpoint.sqlalchemy import SQLAlchemySaver, ThreadBusyError, thread_lease


def engine_for(url: str) -> sa.Engine:
    """A separate engine (own connections, as a second process would have)."""
    return SQLAlchemySaver.from_conn_string(url).__enter__().engine


def test_a_second_holder_is_refused_until_the_first_lets_go(any_url: str) -> None:
    first, second = engine_for(any_url), engine_for(any_url)
    with thread_lease(first, "t1"):
        with pytest.raises(ThreadBusyError, match="another process"):
            with thread_lease(second, "t1"):
                pass
        with thread_lease(second, "other-thread"):  # leases are per thread
            pass
    with thread_lease(second, "t1"):  # released on exit
        pass
    first.dispose()
    second.dispose()


def hold_until_killed(url: str, ready) -> None:
    with thread_lease(engine_for(url), "held"):
        ready.set()
        time.sleep(600)


def test_a_killed_holder_releases_its_lease_at_once(any_url: str) -> None:
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    holder = ctx.Process(target=hold_until_killed, args=(any_url, ready))
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(ThreadBusyError):
            with thread_lease(engine_for(any_url), "held"):
                pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(30)
    engine = engine_for(any_url)
    with thread_lease(engine, "held", wait_s=10):  # the server/kernel let go of it
        pass
    engine.dispose()


@pytest.mark.slow
def test_cli_refuses_a_second_run_on_a_busy_thread(isolated_env, tmp_path, monkeypatch) -> None:
    log = tmp_path / "agents.log"
    env = {**os.environ, "RELAYGRAPH_MODEL": "crashy", "CRASH_LOG": str(log), "CRASH_BLOCK_ROLE": "data cleaner"}
    runner = [sys.executable, str(REPO / "tests" / "crash_runner.py")]
    first = subprocess.Popen([*runner, "run", "sequential", "--thread-id", "busy"], env=env, cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (log.is_file() and "block data cleaner" in log.read_text()):
            assert first.poll() is None and time.monotonic() < deadline, "the first run never reached the cleaner"
            time.sleep(0.2)
        for args in (["resume", "busy"], ["run", "sequential", "--thread-id", "busy"]):  # from this process
            second = cli_here(args, log, monkeypatch)
            assert second.exit_code == 2, second.output
            assert "being run by another process" in second.stderr
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    done = cli_here(["resume", "busy"], log, monkeypatch)
    assert done.exit_code == 0, done.output  # the killed run's lease is gone: resume proceeds


def test_a_lease_dropped_with_its_connection_is_noticed_and_taken_again(outage) -> None:
    """Issue 11 §2: the server releases a session lease when its connection is terminated. The
    holder's ``verify()`` notices and takes it back; if another process took the thread in the
    meantime it raises ``LeaseLostError`` instead of letting two runs fork the thread; a release
    on a dead connection is no error."""
    from langgraph.checkpoint.sqlalchemy import LeaseLostError

    first, second = engine_for(outage.url), engine_for(outage.url)
    with thread_lease(first, "t") as lease:
        lease.verify()  # held: nothing to do
        assert outage.kill() >= 1
        lease.verify()
        assert lease.retaken == 1
        with pytest.raises(ThreadBusyError):  # really held again
            with thread_lease(second, "t"):
                pass
        outage.kill()  # the holder's connection is gone when its block ends: not an error
    with thread_lease(second, "t"):  # and nothing is left held
        pass
    with thread_lease(first, "t") as lease:
        outage.kill()
        with thread_lease(second, "t"):  # another process takes the thread meanwhile
            with pytest.raises(LeaseLostError, match="another process has taken the thread"):
                lease.verify()
    first.dispose()
    second.dispose()
