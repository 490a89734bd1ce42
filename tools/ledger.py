"""Tool side effects happen once: an idempotency ledger for tasks that run again.

A node killed mid-run runs again from its start on resume, and so do its agent's tool calls.
For a pure tool that costs time; for one with a side effect (a payment, a row, a message, a
file appended to) it does the thing twice. So every call of a tool that declares
``side_effects = True`` goes through a ledger keyed by *(thread, checkpoint namespace, task id,
call index)* — LangGraph gives a re-run of the same task the same task id:

    call #i of task T ──► ledger has #i for T with the same tool and arguments?
                             ├─ yes: return the recorded result (the tool does not run)
                             └─ no:  run the tool, record its result under #i

What is guaranteed: once a call's result is recorded, a re-run of its task that makes the same
call (same position, tool and arguments) gets the recorded result instead of a second effect.
What is not: a process killed *between* the tool's effect and the record (a few microseconds)
can repeat that one call; a re-run that makes a different call runs it. Tool exceptions are not
recorded (a failed call may run again). Results are stored with the checkpointer's serde.

The ledger lives in the checkpoint database (table ``relaygraph_tool_ledger``, created through
the saver's migrations) when the run has relaygraph's SQLAlchemy saver; without one (plain
``invoke``, another saver) a process-local ledger is used, which protects only retries within
the process.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlalchemy import (
    AsyncSQLAlchemySaver,
    MigrationSet,
    SQLAlchemySaver,
    create_tables,
)
from langgraph.checkpoint.sqlalchemy.engines import make_engine
from langgraph.checkpoint.sqlalchemy.errors import DatabaseUnavailableError
from langgraph.checkpoint.sqlalchemy.retry import DEFAULT_RETRY, RetryPolicy, retrying
from langgraph.checkpoint.sqlalchemy.urls import redact
from relaygraph.tools.result import ToolResult
from smolagents import Tool
from sqlalchemy.dialects import mysql

LEDGER = sa.Table(
    "relaygraph_tool_ledger",
    sa.MetaData(),
    # sha256 of (thread, namespace, task): fixed width, so nested namespaces fit any backend's keys
    sa.Column("scope", sa.String(64), primary_key=True),
    sa.Column("call_index", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("thread_id", sa.String(255), nullable=False, index=True),
    sa.Column("tool", sa.String(128), nullable=False),
    sa.Column("args_digest", sa.String(64), nullable=False),
    sa.Column("result_type", sa.String(32), nullable=False),
    sa.Column("result", sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb"), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)
LEDGER_MIGRATIONS = MigrationSet("relaygraph_tool_ledger", [create_tables(LEDGER)])


@dataclass(frozen=True)
class Entry:
    tool: str
    args_digest: str
    result_type: str
    result: bytes


class Ledger(Protocol):
    def get(self, scope: str, index: int) -> Entry | None: ...

    def put(self, scope: str, index: int, thread_id: str, entry: Entry) -> None: ...


class MemoryLedger:
    """Process-local: protects retries inside one process only."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, int], Entry] = {}
        self._lock = threading.Lock()

    def get(self, scope: str, index: int) -> Entry | None:
        with self._lock:
            return self._entries.get((scope, index))

    def put(self, scope: str, index: int, thread_id: str, entry: Entry) -> None:
        with self._lock:
            self._entries[(scope, index)] = entry


class SqlLedger:
    """The ledger in the checkpoint database (its own table, through the saver's migrations)."""

    def __init__(self, engine: sa.Engine, retry: RetryPolicy = DEFAULT_RETRY) -> None:
        self.engine, self.retry, self._url = engine, retry, redact(engine.url)
        LEDGER_MIGRATIONS.apply(engine, retry)

    def get(self, scope: str, index: int) -> Entry | None:
        """The recorded call, if any (a lost connection is retried as the saver's reads are)."""
        query = sa.select(LEDGER.c.tool, LEDGER.c.args_digest, LEDGER.c.result_type, LEDGER.c.result).where(
            LEDGER.c.scope == scope, LEDGER.c.call_index == index)

        def read() -> Any:
            with self.engine.connect() as conn:
                return conn.execute(query).first()

        row = retrying(self.retry, "a tool-ledger read", read, self._url)
        return Entry(row.tool, row.args_digest, row.result_type, bytes(row.result)) if row else None

    def put(self, scope: str, index: int, thread_id: str, entry: Entry) -> None:
        """Record a call; one transaction of delete + insert, so running it again is safe."""
        values = {"scope": scope, "call_index": index, "thread_id": thread_id, "tool": entry.tool,
                  "args_digest": entry.args_digest, "result_type": entry.result_type,
                  "result": entry.result, "created_at": time.time()}

        def write() -> None:
            with self.engine.begin() as conn:  # a re-run that made a different call #i replaces it
                conn.execute(LEDGER.delete().where(LEDGER.c.scope == scope, LEDGER.c.call_index == index))
                conn.execute(LEDGER.insert().values(**values))

        retrying(self.retry, "a tool-ledger write", write, self._url)


_MEMORY = MemoryLedger()
_SQL: dict[str, SqlLedger] = {}
_SQL_GUARD = threading.Lock()


def ledger_for(checkpointer: Any) -> tuple[Ledger, SerializerProtocol]:
    """The ledger (and serde) for a run whose checkpointer is ``checkpointer``."""
    serde = getattr(checkpointer, "serde", None) or JsonPlusSerializer()
    if not isinstance(checkpointer, SQLAlchemySaver | AsyncSQLAlchemySaver):
        return _MEMORY, serde
    url = checkpointer.engine.url.render_as_string(hide_password=False)
    with _SQL_GUARD:
        if url not in _SQL:
            # the async saver (langgraph dev) shares the database through a sync engine of its own
            engine = checkpointer.engine if isinstance(checkpointer, SQLAlchemySaver) else make_engine(url)
            _SQL[url] = SqlLedger(engine, checkpointer.retry)
        return _SQL[url], serde


class CallScope:
    """One task execution's position in the ledger: its key and the index of its next call."""

    def __init__(self, thread_id: str, checkpoint_ns: str, task_id: str) -> None:
        self.thread_id = thread_id
        raw = "\0".join((thread_id, checkpoint_ns, task_id)).encode("utf-8", "surrogatepass")
        self.scope = hashlib.sha256(raw).hexdigest()
        self._next = 0
        self._lock = threading.Lock()
        #: The database went away past its retry bound during a ledger call: the run must stop
        #: (the agent node raises it), not go on as if the tool had merely failed.
        self.fatal: DatabaseUnavailableError | None = None

    def next_index(self) -> int:
        with self._lock:
            index, self._next = self._next, self._next + 1
            return index


def args_digest(tool: str, args: Sequence[Any], kwargs: dict[str, Any]) -> str:
    text = json.dumps({"tool": tool, "args": list(args), "kwargs": kwargs}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def encode(result: Any, serde: SerializerProtocol) -> tuple[str, bytes]:
    """A recorded result: typed tool results and JSON values as JSON (no class loading on the way
    back), anything else through the checkpointer's serde."""
    if isinstance(result, ToolResult):
        return "tool_result", result.model_dump_json().encode()
    try:
        return "json", json.dumps(result).encode()
    except (TypeError, ValueError):
        return serde.dumps_typed(result)


def decode(result_type: str, data: bytes, serde: SerializerProtocol) -> Any:
    if result_type == "tool_result":
        return ToolResult.model_validate_json(data)
    if result_type == "json":
        return json.loads(data)
    return serde.loads_typed((result_type, data))


#: The ledger position of a task's finished output (its tool calls count up from 0).
OUTPUT_INDEX = -1
_OUTPUT_TOOL = "__task_output__"


def recorded_output(ledger: Ledger, serde: SerializerProtocol, scope: CallScope) -> tuple[bool, Any]:
    """``(True, output)`` when this task finished before (its output was recorded), else
    ``(False, None)``. An output that no longer decodes counts as not recorded: the task runs."""
    found = ledger.get(scope.scope, OUTPUT_INDEX)
    if found is None or found.tool != _OUTPUT_TOOL:
        return False, None
    try:
        return True, serde.loads_typed((found.result_type, found.result))
    except Exception:  # noqa: BLE001 - a stale or foreign record: run the task again
        return False, None


def record_output(ledger: Ledger, serde: SerializerProtocol, scope: CallScope, output: Any) -> bool:
    """Record a task's finished output, through the checkpointer's serde (exactly as its writes
    will be stored). False when it cannot be serialized: the task then may run again."""
    try:
        result_type, data = serde.dumps_typed(output)
    except Exception:  # noqa: BLE001 - not recordable; LangGraph's own writes are the only record
        return False
    ledger.put(scope.scope, OUTPUT_INDEX, scope.thread_id, Entry(_OUTPUT_TOOL, "", result_type, data))
    return True


def guard_side_effects(tools: Sequence[Tool], ledger: Ledger, serde: SerializerProtocol,
                       scope: CallScope) -> list[Tool]:
    """``tools`` with every side-effecting one routed through the ledger (others untouched)."""
    for tool in tools:
        if getattr(tool, "side_effects", False):
            _route(tool, ledger, serde, scope)
    return list(tools)


def _route(tool: Tool, ledger: Ledger, serde: SerializerProtocol, scope: CallScope) -> None:
    original = tool.forward

    def forward(*args: Any, **kwargs: Any) -> Any:
        index = scope.next_index()
        digest = args_digest(tool.name, args, kwargs)
        try:
            found = ledger.get(scope.scope, index)
        except DatabaseUnavailableError as exc:
            scope.fatal = exc  # the agent framework turns a tool's error into an observation
            raise
        if found is not None and found.tool == tool.name and found.args_digest == digest:
            return decode(found.result_type, found.result, serde)
        result = original(*args, **kwargs)
        result_type, data = encode(result, serde)
        try:
            ledger.put(scope.scope, index, scope.thread_id, Entry(tool.name, digest, result_type, data))
        except DatabaseUnavailableError as exc:
            scope.fatal = exc
            raise
        return result

    tool.forward = forward  # the instance's own: tools are fresh per run
