"""The hot paths (put, put_writes, get_tuple) run on the DBAPI connection directly.

Why: a profile of a 3-node graph's saver calls on SQLite showed more time in SQLAlchemy's
per-execute machinery (execution context, event dispatch, result proxy, pool and
transaction bookkeeping: about 60 us a statement) than in SQLite itself (about 15 us).
The statements are still built once with SQLAlchemy Core in ``schema.py``; here each
is compiled once per dialect into its SQL string, the order of its parameters and the
type processors of its binds and result columns (JSON metadata, for example), and then
run with ``cursor.execute``/``executemany``. Rare operations (delete, prune, copy,
list) keep going through SQLAlchemy. Values larger than a chunk reach this path already
cut into chunk rows (``base.py``), so no row here exceeds a server's packet limit.
"""

from __future__ import annotations

import contextlib
import operator
import re
import threading
import weakref
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from langgraph.checkpoint.sqlalchemy.base import Op, T
from langgraph.checkpoint.sqlalchemy.retry import is_connection_lost

import sqlalchemy as sa
from sqlalchemy.pool import StaticPool


class RawStatement:
    """One statement compiled for one dialect, ready for ``cursor.execute``."""

    __slots__ = (
        "any_result_processor", "defaults", "get", "names", "positional", "proc_at",
        "processors", "result_processors", "row_type", "sql",
    )

    def __init__(self, stmt: sa.Executable, dialect: sa.Dialect, keys: Sequence[str] | None) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys) if keys else None)
        if getattr(compiled, "post_compile_params", None) or any(
            b.expanding for b in compiled.binds.values()
        ):
            raise ValueError("expanding parameters are not supported on the raw path")
        self.sql: str = compiled.string
        self.positional: bool = bool(dialect.positional)
        rendered = {name: bind for bind, name in compiled.bind_names.items()}
        self.names: tuple[str, ...] = (
            tuple(compiled.positiontup or ()) if self.positional else tuple(rendered)
        )
        self.processors: dict[str, Callable[[Any], Any]] = {}
        # Binds the statement fills itself (the 1 of LIMIT 1, for example).
        self.defaults: dict[str, Any] = {}
        for name, bind in rendered.items():
            if not bind.required:
                self.defaults[name] = bind.effective_value
            proc = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None:
                self.processors[name] = proc
        # The values in bind order, picked by one C call (a generator over the names
        # was a fifth of the saver's own CPU per put); processors patch their places.
        self.get: Callable[[Mapping[str, Any]], tuple[Any, ...]] = _getter(self.names)
        self.proc_at: tuple[tuple[int, Callable[[Any], Any]], ...] = tuple(
            (i, self.processors[n]) for i, n in enumerate(self.names) if n in self.processors
        )
        self.row_type: Any = None
        self.result_processors: list[Callable[[Any], Any] | None] = []
        self.any_result_processor = False
        if isinstance(stmt, (sa.Select, sa.CompoundSelect)):
            cols = list(stmt.selected_columns)
            self.row_type = namedtuple("Row", [c.key for c in cols])  # type: ignore[misc]
            self.result_processors = [
                c.type.dialect_impl(dialect).result_processor(dialect, None) for c in cols
            ]
            self.any_result_processor = any(self.result_processors)

    def bind(self, params: Mapping[str, Any]) -> Any:
        if self.defaults:
            params = {**self.defaults, **params}
        values = self.get(params)
        if self.proc_at:
            patched = list(values)
            for i, proc in self.proc_at:
                patched[i] = proc(patched[i])
            values = tuple(patched)
        if self.positional:
            return values
        return dict(zip(self.names, values, strict=True))

    def rows(self, fetched: Sequence[Sequence[Any]]) -> list[Any]:
        make = self.row_type._make
        procs = self.result_processors
        if not self.any_result_processor:
            return [make(r) for r in fetched]
        return [
            make([p(v) if p is not None else v for p, v in zip(procs, r, strict=True)])
            for r in fetched
        ]


def _getter(names: Sequence[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """``params -> tuple(params[n] for n in names)``, as one ``itemgetter`` call
    (``names`` may also be positions in a tuple)."""
    if not names:
        return lambda params: ()
    if len(names) == 1:
        name = names[0]
        return lambda params: (params[name],)
    return operator.itemgetter(*names)  # type: ignore[return-value]


class StatementCache:
    """``RawStatement`` per (statement, parameter keys), compiled on first use."""

    def __init__(self, dialect: sa.Dialect) -> None:
        self.dialect = dialect
        self._cache: dict[tuple[Any, tuple[str, ...]], RawStatement] = {}

    def get(self, stmt: sa.Executable, keys: Sequence[str]) -> RawStatement:
        key = (stmt, tuple(keys))
        raw = self._cache.get(key)
        if raw is None:
            raw = self._cache[key] = RawStatement(stmt, self.dialect, key[1])
        return raw


def execute_rows(
    cursor: Any, cache: StatementCache, stmt: sa.Executable, rows: Sequence[Mapping[str, Any]]
) -> None:
    """INSERTs of ``rows`` (executemany when more than one)."""
    if not rows:
        return
    raw = cache.get(stmt, tuple(rows[0]))
    if len(rows) == 1:
        cursor.execute(raw.sql, raw.bind(rows[0]))
    else:
        cursor.executemany(raw.sql, [raw.bind(r) for r in rows])


def drive_raw(cursor: Any, cache: StatementCache, op: Op[T]) -> T:
    """Run a read-only operation (no expanding IN lists) on a DBAPI cursor."""
    try:
        call = next(op)
        while True:
            params = call.params or {}
            # Keyed in the caller's order, not sorted: the keys only name the binds of a
            # query, and an operation passes them in the same order every time.
            raw = cache.get(call.stmt, tuple(params))
            cursor.execute(raw.sql, raw.bind(params))
            call = op.send(raw.rows(cursor.fetchall()) if call.fetch else None)
    except StopIteration as stop:
        return stop.value


class RawConnections:
    """Transactions on pooled DBAPI connections of an engine, errors as SQLAlchemy's.

    SQLite connections run with the driver's transaction handling off (see
    ``engines.install_sqlite_hooks``), so ``BEGIN IMMEDIATE``/``BEGIN`` are issued here;
    the other drivers open a transaction implicitly and end it with ``commit``.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect
        self.sqlite = engine.dialect.name == "sqlite"
        self.postgres = engine.dialect.name == "postgresql"
        self.cache = StatementCache(engine.dialect)
        self.pg_batch = PostgresBatch(self.cache)
        self._multi: dict[tuple[Any, int], str] = {}
        # Two connections are kept out of the pool: one for writes (already serialized
        # by the caller's commit lock) and one for whichever read finds it free (others
        # use the pool). Why: a pool checkout plus reset per transaction bought nothing
        # and, on SQLite, a kept connection keeps a warm page cache. Not on MySQL, whose
        # idle connections time out and need the pool's pre-ping, nor for an in-memory
        # SQLite database, which is one shared connection already.
        self._keep = (self.sqlite and not isinstance(engine.pool, StaticPool)) or self.postgres
        self._kept = {"write": _Kept(), "read": _Kept()}
        # On SQLite a read takes the write connection when it is free: a write on another
        # connection empties a connection's page cache, so the reader's next transaction
        # read every page again (about 9 us of a get_tuple after each put). A write that
        # finds a read on it uses a pooled connection rather than wait. PostgreSQL keeps
        # them apart (the reader's plan_cache_mode differs).
        self._slots: dict[bool, tuple[_Kept, ...]] = {
            True: (self._kept["write"],),
            False: (self._kept["write"], self._kept["read"]) if self.sqlite
            else (self._kept["read"],),
        }
        weakref.finalize(self, _close_kept, self._kept)

    def write(self, calls: Sequence[tuple[sa.Executable, Sequence[Mapping[str, Any]]]]) -> None:
        """Run inserts in one committed transaction (callers serialize writes)."""
        if self.postgres:
            single = self.pg_batch.statement(calls)
            if single is not None:
                sql, params = single
                self._run(lambda cursor: cursor.execute(sql, params), write=True)
                return
        elif self.sqlite and len(calls) == 1:
            # One table (a put, or a task's writes): a single multi-row INSERT is atomic
            # on its own, so no BEGIN/COMMIT statements around it.
            single = self._sqlite_rows(*calls[0])
            if single is not None:
                sql, params = single
                self._run(lambda cursor: cursor.execute(sql, params), write=True)
                return

        def run(cursor: Any) -> None:
            for stmt, rows in calls:
                execute_rows(cursor, self.cache, stmt, rows)

        self._run(run, write=True, autocommit=False)

    _SQLITE_MAX_PARAMS = 32_766

    def _sqlite_rows(
        self, stmt: sa.Executable, rows: Sequence[Mapping[str, Any]]
    ) -> tuple[str, list[Any]] | None:
        """``rows`` as one multi-row INSERT (SQLite applies repeated keys in order, as
        executemany would: insert-or-ignore keeps the first, an upsert the last)."""
        raw = self.cache.get(stmt, tuple(rows[0]))
        if len(rows) == 1:
            return raw.sql, raw.bind(rows[0])
        if len(rows) * len(raw.names) > self._SQLITE_MAX_PARAMS:
            return None
        key = (stmt, len(rows))
        sql = self._multi.get(key)
        if sql is None:
            head, _, rest = raw.sql.partition(" VALUES (")
            close = rest.index(")")
            group = "(" + rest[:close] + ")"
            sql = self._multi[key] = (
                head + " VALUES " + ", ".join([group] * len(rows)) + rest[close + 1 :]
            )
        params: list[Any] = []
        for row in rows:
            params.extend(raw.bind(row))
        return sql, params

    def read(self, op: Op[T]) -> T:
        """Run a read-only operation in one transaction (one snapshot on SQLite)."""
        return self._run(lambda cursor: drive_raw(cursor, self.cache, op), write=False)

    def _open_kept(self, write: bool) -> Any:
        """A connection to keep; PostgreSQL's kept reader may reuse generic plans.

        Every statement of the read path pins a full index prefix with equalities
        (``schema.select_blobs``), so a generic plan is the custom plan without the
        planning, which under ``force_custom_plan`` was about 80 us per statement.
        """
        conn = self.engine.raw_connection()
        if self.postgres and not write:
            # This session setting must not reach other pool users: the connection is
            # closed rather than returned to the pool (``_close_kept``).
            conn.detach()
            driver = conn.dbapi_connection
            driver.autocommit = True
            try:
                driver.execute("SET plan_cache_mode = auto")
            finally:
                driver.autocommit = False
        return conn

    def close(self) -> None:
        """Give the kept connections back to the pool (new ones are taken on demand)."""
        _close_kept(self._kept)

    def _run(
        self, body: Callable[[Any], T], *, write: bool, autocommit: bool = True
    ) -> T:
        """``body`` in a transaction, on a kept connection when one is free (writes are
        serialized by the caller, so only a read can hold the write connection)."""
        if self._keep:
            for slot in self._slots[write]:
                if not slot.lock.acquire(blocking=False):
                    continue
                try:
                    if slot.conn is None:
                        slot.conn = self._open_kept(slot is self._kept["write"])
                        slot.cursor = slot.conn.cursor()
                    try:
                        return self._transaction(
                            slot.conn, body, write=write, autocommit=autocommit,
                            cursor=slot.cursor,
                        )
                    except sa.exc.DBAPIError as exc:
                        if exc.connection_invalidated:
                            slot.conn = slot.cursor = None
                        raise
                finally:
                    slot.lock.release()
        conn = self.engine.raw_connection()
        try:
            return self._transaction(conn, body, write=write, autocommit=autocommit)
        finally:
            conn.close()  # back to the pool

    def _transaction(
        self, conn: Any, body: Callable[[Any], T], *, write: bool, autocommit: bool,
        cursor: Any = None,
    ) -> T:
        """``body`` in a transaction on ``cursor`` (a kept connection's, reused: a cursor
        per call cost about 2 us of a put), or on a new cursor closed afterwards."""
        own = cursor is None
        try:
            if own:
                cursor = conn.cursor()
            if self.sqlite and write and autocommit:
                result = body(cursor)  # one statement: SQLite commits it by itself
            elif self.sqlite:
                cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                result = body(cursor)
                cursor.execute("COMMIT")
            elif self.postgres and autocommit:
                # No BEGIN/COMMIT round trips. Reads keep READ COMMITTED's guarantee
                # (each statement sees its own snapshot either way); writes reach here
                # as one atomic statement (see ``PostgresBatch``).
                conn.dbapi_connection.autocommit = True
                try:
                    result = body(cursor)
                finally:
                    conn.dbapi_connection.autocommit = False
            else:
                result = body(cursor)
                conn.commit()
            return result
        except self.dialect.loaded_dbapi.Error as exc:
            self._abort(conn)
            # A terminated backend is not always reported as a disconnect by the dialect
            # (PostgreSQL's 57P01 mid-statement): drop the connection either way.
            gone = self.dialect.is_disconnect(exc, conn.dbapi_connection, cursor) or (
                is_connection_lost(exc)
            )
            if gone:
                conn.invalidate(exc)
            raise sa.exc.DBAPIError.instance(
                None, None, exc, self.dialect.loaded_dbapi.Error,
                connection_invalidated=gone,
            ) from exc
        except BaseException:
            self._abort(conn)
            raise
        finally:
            if own and cursor is not None:
                with contextlib.suppress(Exception):  # the connection may be gone already
                    cursor.close()

    @staticmethod
    def _abort(conn: Any) -> None:
        with contextlib.suppress(Exception):  # a dead connection is invalidated by the caller
            conn.rollback()


class _Kept:
    """A connection kept out of the pool, and the lock of whoever is using it."""

    __slots__ = ("conn", "cursor", "lock")

    def __init__(self) -> None:
        self.conn: Any = None
        self.cursor: Any = None  # the one cursor every transaction on ``conn`` uses
        self.lock = threading.Lock()


def _close_kept(kept: dict[str, _Kept]) -> None:
    for slot in kept.values():
        with slot.lock:
            conn, slot.conn, slot.cursor = slot.conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):  # interpreter or pool shutting down
                conn.close()


_NAMED = re.compile(r"%\(([^)]+)\)s")


class _InsertParts(NamedTuple):
    head: str  # INSERT INTO t (cols) VALUES
    group: str  # (%s::VARCHAR, ...)
    tail: str  # ON CONFLICT ...
    names: tuple[str, ...]  # parameter of each %s in group
    upsert: bool  # last row of a key wins (else the first)
    key: tuple[int, ...]  # positions of the primary key in names
    get: Callable[[Mapping[str, Any]], tuple[Any, ...]]  # a row's values in names' order
    proc_at: tuple[tuple[int, Callable[[Any], Any]], ...]  # bind processors by position


class PostgresBatch:
    """A group commit's inserts as one PostgreSQL statement: one round trip, atomic.

    Why: on this machine a PostgreSQL round trip costs about as much as the commit
    itself (autocommit INSERT 0.14-0.23 ms; BEGIN, INSERT, COMMIT 0.26 ms; the same in
    psycopg pipeline mode 0.35 ms). So each statement's rows become one multi-row
    VALUES list, and the statements of different tables are chained as data-modifying
    CTEs (``WITH s0 AS (INSERT ...) INSERT ...``), which PostgreSQL runs as one
    statement: all or nothing even in autocommit mode.

    Rows repeating a primary key within a statement are reduced first (insert-or-ignore
    keeps the first, upsert the last), since one statement cannot touch a row twice.
    Batches that insert into one table through two statements, or are very large, return
    None and run as a transaction of separate statements instead.
    """

    _MAX_PARAMS = 30_000  # PostgreSQL's protocol allows 65,535 per statement
    # Large values arrive as 1 MiB chunk rows (``base.BaseSQLAlchemySaver._chunk``); a
    # batch carrying more than this many payload bytes runs as separate statements, one
    # row each, instead of one message that could pass PostgreSQL's 1 GB limit.
    _MAX_BYTES = 64 << 20

    def __init__(self, cache: StatementCache) -> None:
        self.cache = cache
        self._parts: dict[tuple[Any, tuple[str, ...]], _InsertParts] = {}

    def _split(self, stmt: sa.Executable, keys: tuple[str, ...]) -> _InsertParts:
        """An INSERT cut around its VALUES group, the group with positional markers."""
        got = self._parts.get((stmt, keys))
        if got is None:
            raw = self.cache.get(stmt, keys)
            head, _, rest = raw.sql.partition(" VALUES (")
            close = rest.index(") ON ")
            names = tuple(_NAMED.findall(rest[:close]))
            table = stmt.table  # type: ignore[attr-defined]
            procs = raw.processors
            got = _InsertParts(
                head=head + " VALUES ",
                group="(" + _NAMED.sub("%s", rest[:close]) + ")",
                tail=rest[close + 1 :],
                names=names,
                upsert="DO UPDATE" in rest[close:],
                key=tuple(names.index(c.key) for c in table.primary_key.columns),
                get=_getter(names),
                proc_at=tuple((i, procs[n]) for i, n in enumerate(names) if n in procs),
            )
            self._parts[(stmt, keys)] = got
        return got

    def statement(
        self, calls: Sequence[tuple[sa.Executable, Sequence[Mapping[str, Any]]]]
    ) -> tuple[str, list[Any]] | None:
        tables = [stmt.table for stmt, rows in calls if rows]  # type: ignore[attr-defined]
        if not tables or len(set(tables)) != len(tables):
            return None
        sqls: list[str] = []
        params: list[Any] = []
        payload = 0
        for stmt, rows in calls:
            if not rows:
                continue
            for row in rows:
                for value in row.values():
                    if isinstance(value, (bytes, memoryview)):
                        payload += len(value)
            if payload > self._MAX_BYTES:
                return None
            parts = self._split(stmt, tuple(rows[0]))
            get, proc_at, key_of = parts.get, parts.proc_at, _getter(parts.key)
            bound: dict[tuple[Any, ...], tuple[Any, ...]] = {}
            for row in rows:
                values = get(row)
                if proc_at:
                    patched = list(values)
                    for i, proc in proc_at:
                        patched[i] = proc(patched[i])
                    values = tuple(patched)
                key = key_of(values)
                if parts.upsert or key not in bound:
                    bound[key] = values
            if len(params) + len(bound) * len(parts.names) > self._MAX_PARAMS:
                return None
            sqls.append(parts.head + ", ".join([parts.group] * len(bound)) + parts.tail)
            for values in bound.values():
                params.extend(values)
        if len(sqls) == 1:
            return sqls[0], params
        ctes = ", ".join(f"s{i} AS ({sql})" for i, sql in enumerate(sqls[:-1]))
        return f"WITH {ctes} {sqls[-1]}", params
