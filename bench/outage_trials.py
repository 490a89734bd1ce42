"""Outage trials: a CLI run whose database connection is lost at every save (issue 11 §2).

    python bench/outage_trials.py [--backends postgres,mysql] [--graph sequential] [--bound 1]

For each backend a clean run first counts the run's saves (each ``put`` and ``put_writes``);
then, for every save k, a run on a fresh database user meets a fault just before save k:

* ``once``   - every connection of the run is terminated (``pg_terminate_backend`` / ``KILL``);
* ``repeat`` - a background thread terminates them every 50 ms for 2 s;
* ``away``   - the database refuses the run's user and drops its connections for longer than
  the bound (``RELAYGRAPH_DB_RECONNECT_S``), then lets it back in.

``once`` and ``repeat`` pass when the run exits 0 with ``result.status == "completed"``;
``away`` when the run exits 75 with one ``error:`` line naming ``relaygraph resume THREAD``
(or, when not even its first checkpoint was saved, saying to run it again) and that resume
(or run) then exits 0 with a completed result. Runs are in-process (the CLI's own
``typer`` app), with the offline model and the sample data. Prints one line per trial that
failed and a summary table; exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import Outage, outage_database  # noqa: E402
from langgraph.checkpoint.sqlalchemy import SQLAlchemySaver  # noqa: E402
from relaygraph.cli.runner import describe_thread  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

MODES = ("once", "repeat", "away")


def cli(*args: str) -> Any:
    from relaygraph.cli.main import app

    return CliRunner().invoke(app, list(args))


class Saves:
    """Counts the saver's saves; calls ``fault()`` just before save number ``at``."""

    def __init__(self) -> None:
        self.count = 0
        self.at = 0
        self.fault: Callable[[], None] = lambda: None
        self._put, self._writes = SQLAlchemySaver.put, SQLAlchemySaver.put_writes
        saves = self

        def put(self: SQLAlchemySaver, *args: Any, **kwargs: Any) -> Any:
            saves._tick()
            return saves._put(self, *args, **kwargs)

        def put_writes(self: SQLAlchemySaver, *args: Any, **kwargs: Any) -> None:
            saves._tick()
            saves._writes(self, *args, **kwargs)

        SQLAlchemySaver.put, SQLAlchemySaver.put_writes = put, put_writes  # type: ignore[method-assign]

    def _tick(self) -> None:
        self.count += 1
        if self.count == self.at:
            self.fault()

    def arm(self, at: int, fault: Callable[[], None]) -> None:
        self.count, self.at, self.fault = 0, at, fault


def what(result: Any) -> str:
    """The run's error line, or its exception, for a failure report."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    if errors:
        return errors[-1]
    try:
        state = json.loads(result.stdout)
        return f"result {state['result']['status']}: {state['result'].get('errors') or state.get('errors')}"
    except (ValueError, KeyError, TypeError):
        pass
    return repr(result.exception) if result.exception else result.stderr.strip()[-300:]


def completed(result: Any) -> bool:
    try:
        return result.exit_code == 0 and json.loads(result.stdout)["result"]["status"] == "completed"
    except (ValueError, KeyError, TypeError):
        return False


def trial(backend: str, mode: str, at: int, saves: Saves, graph: str, bound: str) -> str | None:
    """None when the run behaved as promised, else what went wrong."""
    with outage_database(backend) as outage:
        thread = f"{mode}-{at}"
        killer: list[threading.Thread] = []

        def fault() -> None:
            if mode == "once":
                outage.kill()
            elif mode == "repeat":
                ctx = outage.killing(seconds=2.0, every_s=0.05)
                killer.append(ctx.__enter__())
                threading.Timer(2.5, ctx.__exit__, (None, None, None)).start()
            else:
                outage.logins(False)
                outage.kill()

        # Only the outage outlasts the bound; the kills must be ridden out within it.
        os.environ["RELAYGRAPH_DB_RECONNECT_S"] = bound if mode == "away" else "20"
        saves.arm(at, fault)
        try:
            run = cli("run", graph, "--thread-id", thread, "--checkpoint-db", outage.url, "--json")
        finally:
            saves.arm(0, lambda: None)
            outage.logins(True)
            for thread_ in killer:
                thread_.join(10)
        if mode != "away":
            return None if completed(run) else f"exit {run.exit_code}: {what(run)}"
        errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
        if run.exit_code != 75 or len(errors) != 1:
            return f"run exit {run.exit_code} (want 75): {what(run)}"
        if "run it again (nothing of this run was saved)" in errors[0]:
            resumed = cli("run", graph, "--thread-id", thread, "--checkpoint-db", outage.url, "--json")
            if resumed.exit_code == 2 and "has an unfinished run" in resumed.stderr:
                # its first save had committed after all (the acknowledgement was lost)
                resumed = cli("resume", thread, "--checkpoint-db", outage.url, "--json")
        elif f"relaygraph resume {thread}" in errors[0]:
            resumed = cli("resume", thread, "--checkpoint-db", outage.url, "--json")
            if resumed.exit_code == 2 and "already finished" in resumed.stderr:
                # the last saves had gone through after all (a terminated backend may still
                # commit what reached it), as the line allows: the stored result must say so
                with SQLAlchemySaver.from_conn_string(outage.url) as saver:
                    info = describe_thread(saver, thread)
                return None if info is not None and info.status == "completed" else f"finished as {info}"
        else:
            return f"the error names no way on: {errors[0]}"
        return None if completed(resumed) else f"resume exit {resumed.exit_code}: {what(resumed)}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="postgres,mysql")
    parser.add_argument("--graph", default="sequential")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--only", type=int, default=0, help="run only the trial before this save")
    parser.add_argument("--bound", default="1", help="RELAYGRAPH_DB_RECONNECT_S of the away trials")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="outage-trials-"))
    os.environ.update({"RELAYGRAPH_DATA_DIR": str(work / "data"), "RELAYGRAPH_OUTPUT_DIR": str(work / "out"),
                       "RELAYGRAPH_MODEL": "offline"})
    saves = Saves()
    rows, failed = [], 0
    for backend in args.backends.split(","):
        with outage_database(backend) as clean:
            saves.arm(0, lambda: None)
            if not completed(cli("run", args.graph, "--thread-id", "clean", "--checkpoint-db", clean.url, "--json")):
                raise SystemExit(f"{backend}: the clean run failed")
            total = saves.count
        for mode in args.modes.split(","):
            started, bad = time.monotonic(), 0
            for at in ([args.only] if args.only else range(1, total + 1)):
                problem = trial(backend, mode, at, saves, args.graph, args.bound)
                if problem is not None:
                    bad += 1
                    print(f"FAIL {backend} {mode} before save {at}: {problem}", flush=True)
            rows.append((backend, mode, total, total - bad, time.monotonic() - started))
            failed += bad
    print(f"\n{'backend':9} {'mode':7} {'trials':>6} {'passed':>6} {'time':>7}")
    for backend, mode, total, passed, took in rows:
        print(f"{backend:9} {mode:7} {total:6d} {passed:6d} {took:6.0f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
