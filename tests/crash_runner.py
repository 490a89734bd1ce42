"""The relaygraph CLI with an observable offline model, for crash-and-resume tests.

    CRASH_LOG=FILE [CRASH_BLOCK_ROLE=ROLE] [CRASH_AFTER_PUT_WRITES=K|CRASH_AFTER_PUT=K] python tests/crash_runner.py run GRAPH ...

The ``crashy`` provider is the offline policy plus two things a test needs from outside the
process: a log line per agent run (``start``/``final`` with the agent's role and partition),
and, when ``CRASH_BLOCK_ROLE`` names a role, that agent blocking forever — so the test can
SIGKILL the process in the middle of a graph, after other nodes have checkpointed; with
``CRASH_AFTER_PUT_WRITES=K`` the process kills itself right after the K-th saved write, with
``CRASH_AFTER_PUT=K`` right after the K-th saved checkpoint.
"""

from __future__ import annotations

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


class LoggingPolicy(OfflinePolicyModel):
    def __init__(self, log: str, block_role: str | None) -> None:
        super().__init__()
        self.log, self.block_role = log, block_role

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
        message = super().generate(messages, stop_sequences, response_format, tools_to_call_from, **kw)
        if message.tool_calls and message.tool_calls[0].function.name == "final_answer":
            self.note(f"final {key}")
        return message


def crashy(log: str, block_role: str | None = None) -> Any:
    """The ``crashy`` provider: the offline policy, logging each agent run to ``log``."""
    from relaygraph.providers import Provider

    return Provider("crashy", lambda s: LoggingPolicy(log, block_role), lambda s: OfflineChatModel(),
                    lambda s: OFFLINE_LABEL)


def main() -> None:
    from crash_graph import killed_after_put_writes
    from relaygraph.cli.main import main as cli_main
    from relaygraph.providers import register_provider

    register_provider(crashy(os.environ["CRASH_LOG"], os.environ.get("CRASH_BLOCK_ROLE") or None))
    sys.argv = ["relaygraph", *sys.argv[1:]]
    # CRASH_AFTER_PUT_WRITES=K: die right after the K-th saved write, before the next checkpoint;
    # CRASH_AFTER_PUT=K: die right after the K-th saved checkpoint
    with (killed_after_put_writes(int(os.environ.get("CRASH_AFTER_PUT_WRITES") or 0)),
          killed_after_put_writes(int(os.environ.get("CRASH_AFTER_PUT") or 0), "put")):
        cli_main()


if __name__ == "__main__":
    main()
