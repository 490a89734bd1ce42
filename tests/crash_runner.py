"""The relaygraph CLI with an observable model, for crash-and-resume tests.

    CRASH_LOG=FILE [CRASH_BLOCK_ROLE=ROLE] [CRASH_SCRIPT=MODULE:FUNCTION]
        [CRASH_AFTER_PUT_WRITES=K|CRASH_AFTER_PUT=K] python tests/crash_runner.py run GRAPH ...

The ``crashy`` provider adds two things a test needs from outside the process: a log line per
agent run (``start``/``final`` with the agent's role and partition), and, when
``CRASH_BLOCK_ROLE`` names a role, that agent blocking forever in its first call, before it
takes an action — so the test can SIGKILL the process in the middle of a graph, after other
nodes have checkpointed; with ``CRASH_AFTER_PUT_WRITES=K`` the process kills itself right after
the K-th saved write, with ``CRASH_AFTER_PUT=K`` right after the K-th saved checkpoint.

Its agents are the offline policy, or, with ``CRASH_SCRIPT=MODULE:FUNCTION``, a scripted cast:
the child imports the test module and calls ``FUNCTION(play)`` to script a fresh
:class:`conftest.RolePlay`, played as the in-process ``cast`` fixture plays it (nothing falls
back to the policy). The child's script may be left half played: the process is killed.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from typing import Any

from relaygraph.providers.brief import RunBrief
from relaygraph.providers.offline import (
    OFFLINE_LABEL,
    OfflineChatModel,
    OfflinePolicyModel,
    read_transcript,
)


def identify(messages: list[Any], brief: RunBrief | None) -> tuple[str, str, bool]:
    """(role, role[@partition], first call of this agent run) from the run brief and messages."""
    role = brief.role if brief else "?"
    partition = brief.context.get("partition") if brief else None
    return role, f"{role}@{partition}" if partition else role, not read_transcript(messages).calls


class Logged:
    """Logs each agent run's start and final answer to ``log``; blocks ``block_role``'s agent."""

    log: str
    block_role: str | None
    brief: RunBrief | None

    def note(self, line: str) -> None:
        with open(self.log, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None, **kw):
        role, key, first = identify(messages, self.brief)
        if first:
            self.note(f"start {key}")
        if role == self.block_role:
            self.note(f"block {key}")
            time.sleep(3600)  # the test kills the process here
        message = super().generate(messages, stop_sequences, response_format,  # type: ignore[misc]
                                   tools_to_call_from, **kw)
        if message.tool_calls and message.tool_calls[0].function.name == "final_answer":
            self.note(f"final {key}")
        return message


class LoggingPolicy(Logged, OfflinePolicyModel):
    def __init__(self, log: str, block_role: str | None) -> None:
        super().__init__()
        self.log, self.block_role = log, block_role


def crashy(log: str, block_role: str | None = None, play: Any = None) -> Any:
    """The ``crashy`` provider, logging each agent run to ``log``: the offline policy, or the
    scripted cast ``play`` (a :class:`conftest.RolePlay`) when one is given."""
    from relaygraph.providers import Provider

    if play is None:
        return Provider("crashy", lambda s: LoggingPolicy(log, block_role), lambda s: OfflineChatModel(),
                        lambda s: OFFLINE_LABEL)
    from conftest import RoleChatModel, RoleModel, cast_provider

    class LoggingCast(Logged, RoleModel):
        def __init__(self) -> None:
            super().__init__(play)
            self.log, self.block_role = log, block_role

    return Provider("crashy", lambda s: LoggingCast(), lambda s: RoleChatModel(play=play),
                    cast_provider(play).label)


def scripted(spec: str | None) -> Any:
    """The :class:`conftest.RolePlay` that ``MODULE:FUNCTION`` scripts, or None without one."""
    if not spec:
        return None
    from conftest import RolePlay

    module, _, function = spec.partition(":")
    play = RolePlay()
    getattr(importlib.import_module(module), function)(play)
    return play


def main() -> None:
    from crash_graph import killed_after_put_writes
    from relaygraph.cli.main import main as cli_main
    from relaygraph.providers import register_provider

    register_provider(crashy(os.environ["CRASH_LOG"], os.environ.get("CRASH_BLOCK_ROLE") or None,
                             scripted(os.environ.get("CRASH_SCRIPT"))))
    sys.argv = ["relaygraph", *sys.argv[1:]]
    # CRASH_AFTER_PUT_WRITES=K: die right after the K-th saved write, before the next checkpoint;
    # CRASH_AFTER_PUT=K: die right after the K-th saved checkpoint
    with (killed_after_put_writes(int(os.environ.get("CRASH_AFTER_PUT_WRITES") or 0)),
          killed_after_put_writes(int(os.environ.get("CRASH_AFTER_PUT") or 0), "put")):
        cli_main()


if __name__ == "__main__":
    main()
