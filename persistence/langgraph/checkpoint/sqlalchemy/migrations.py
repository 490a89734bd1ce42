"""Versioned schema migrations: the saver's own tables and any named set of other tables.

Why not Alembic: the saver must migrate itself from ``setup()`` inside any app that
embeds it, on three dialects, without an ``alembic.ini``; an ordered list of steps and a
version table is all that takes.

A ``MigrationSet`` is a name and an ordered list of steps; a step's position (1-based)
is its version, so a set grows by appending steps, never by editing old ones. Each set
keeps its versions in its own table, ``{name}_migrations``, so applications can keep
their own tables next to the checkpoints (relaygraph keeps its spans this way) and
upgrade them with the same mechanism, lock and error reporting as the saver's tables::

    SPANS = MigrationSet("relaygraph_spans", [create_tables(spans_table)])
    saver.migrate(SPANS)              # or: SPANS.apply(engine); async: await saver.migrate(SPANS)

The saver's own set is ``CHECKPOINTS`` (version table ``rg_checkpoint_migrations``). A
database at a higher version than a set's steps is refused (``SchemaVersionError``)
rather than written with an old layout.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from langgraph.checkpoint.sqlalchemy import schema
from langgraph.checkpoint.sqlalchemy.engines import WRITE_OPTION, sqlite_write_lock
from langgraph.checkpoint.sqlalchemy.errors import SchemaVersionError
from langgraph.checkpoint.sqlalchemy.retry import DEFAULT_RETRY, RetryPolicy, retrying
from langgraph.checkpoint.sqlalchemy.urls import redact

import sqlalchemy as sa

#: One migration: runs inside the migrating transaction, on its connection.
Step = Callable[[sa.Connection], None]

# One advisory lock for every set, so two processes starting at once never run the same
# migration twice (and a set's steps may rely on another set's tables being settled).
_LOCK_KEY = 0x52474350  # "RGCP"
_LOCK_NAME = "rg_checkpoint_migrations"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,48}$")


def create_tables(*tables: sa.Table) -> Step:
    """A step creating ``tables`` (and their indexes) where missing: the usual version 1."""

    def step(conn: sa.Connection) -> None:
        for table in tables:
            table.create(conn, checkfirst=True)

    step.__name__ = f"create_{'_'.join(t.name for t in tables)}"
    return step


@dataclass(frozen=True)
class MigrationSet:
    """Named, ordered schema steps with their own version table ``{name}_migrations``.

    ``name`` is lower-case letters, digits and ``_`` (it names a table); choose one that
    says whose tables these are (``relaygraph_spans``). ``version`` is ``len(steps)``.
    """

    name: str
    steps: Sequence[Step]
    version_table: sa.Table = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(
                f"migration set name {self.name!r} must be 1-49 lower-case letters, digits "
                "or underscores, starting with a letter (it names the version table)"
            )
        object.__setattr__(self, "steps", tuple(self.steps))
        table = _version_table(f"{self.name}_migrations")
        object.__setattr__(self, "version_table", table)

    @property
    def version(self) -> int:
        """The version this code brings the tables to."""
        return len(self.steps)

    def current_version(self, conn: sa.Connection) -> int:
        """The version stored in the database (0 when never migrated)."""
        if not sa.inspect(conn).has_table(self.version_table.name):
            return 0
        return conn.execute(sa.select(sa.func.max(self.version_table.c.v))).scalar() or 0

    def check_version(self, found: int) -> None:
        """Refuse tables newer than this code, with what to do about it."""
        if found > self.version:
            raise SchemaVersionError(
                f"the {self.name} tables in this database have schema version {found}, newer "
                f"than the {self.version} this relaygraph understands; upgrade relaygraph "
                "(pip install -U relaygraph) or point RELAYGRAPH_CHECKPOINT_DB at another database"
            )

    def migrate(self, conn: sa.Connection, target: int | None = None) -> int:
        """Create or upgrade this set's tables on ``conn`` (inside its transaction) to
        ``target`` (default: the newest; older targets are for upgrade tests)."""
        target = self.version if target is None else min(target, self.version)
        release = _lock(conn)
        try:
            self.version_table.create(conn, checkfirst=True)
            found = conn.execute(sa.select(sa.func.max(self.version_table.c.v))).scalar() or 0
            self.check_version(found)
            for version in range(found + 1, target + 1):
                self.steps[version - 1](conn)
                conn.execute(self.version_table.insert(), {"v": version})
            return max(found, target)
        finally:
            release()

    def apply(self, engine: sa.Engine, retry: RetryPolicy = DEFAULT_RETRY) -> int:
        """``migrate`` in a write transaction of its own on ``engine``.

        For a database without a saver at hand (a reader that must not find the tables
        missing); with a saver use ``saver.migrate(set)``, which also queues behind the
        saver's writes. A lost connection is retried as ``retry`` allows (every step is
        create-if-missing, so running it again is safe).
        """
        write_engine = engine.execution_options(**{WRITE_OPTION: True})
        lock = sqlite_write_lock(engine.url) if engine.dialect.name == "sqlite" else None

        def attempt() -> int:
            if lock is None:
                with write_engine.begin() as conn:
                    return self.migrate(conn)
            with lock, write_engine.begin() as conn:
                return self.migrate(conn)

        return retrying(retry, f"creating the {self.name} tables", attempt, redact(engine.url))


_version_tables: dict[str, sa.Table] = {}


def _version_table(name: str) -> sa.Table:
    """The version table ``name`` (one ``Table`` object per name and process)."""
    if name == schema.migrations.name:
        return schema.migrations
    if name not in _version_tables:
        _version_tables[name] = sa.Table(
            name, sa.MetaData(), sa.Column("v", sa.Integer, primary_key=True, autoincrement=False)
        )
    return _version_tables[name]


def _lock(conn: sa.Connection) -> Callable[[], None]:
    name = conn.dialect.name
    if name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    elif name in ("mysql", "mariadb"):
        conn.execute(sa.text("SELECT GET_LOCK(:n, 60)"), {"n": _LOCK_NAME})

        def release() -> None:
            conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": _LOCK_NAME})

        return release
    # SQLite: the write transaction (BEGIN IMMEDIATE) already serialises setup.
    return lambda: None


# --- the saver's own tables -----------------------------------------------------------


def _v1_metadata() -> sa.MetaData:
    """The tables as version 1 created them (frozen: later versions change them)."""
    md = sa.MetaData()
    checkpoints = schema.checkpoints.to_metadata(md)
    checkpoints.dialect_options["sqlite"]["with_rowid"] = False
    sa.Index("ix_rg_checkpoints_run_id", checkpoints.c.run_id)
    blobs = schema.blobs.to_metadata(md)
    sa.Index("ix_rg_checkpoint_blobs_chain", blobs.c.root_version, blobs.c.thread_id,
             blobs.c.checkpoint_ns, blobs.c.channel, blobs.c.depth)
    schema.writes.to_metadata(md)
    return md


def _v1_create_tables(conn: sa.Connection) -> None:
    _v1_metadata().create_all(conn, checkfirst=True)


def _v2_lean_puts(conn: sa.Connection) -> None:
    """One row per put: drop the run_id index; SQLite's checkpoints become a rowid table.

    Checkpoint rows of version 1 stay readable as they are (``base.py`` reads both
    layouts of the checkpoint record), so no row is rewritten.
    """
    table = schema.checkpoints.name
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"ALTER TABLE {table} RENAME TO {table}_v1")
        schema.checkpoints.create(conn)
        cols = ", ".join(c.name for c in schema.checkpoints.c)
        conn.exec_driver_sql(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {table}_v1")
        conn.exec_driver_sql(f"DROP TABLE {table}_v1")  # and its run_id index
        return
    if any(ix["name"] == "ix_rg_checkpoints_run_id" for ix in sa.inspect(conn).get_indexes(table)):
        on = f" ON {table}" if conn.dialect.name in ("mysql", "mariadb") else ""
        conn.exec_driver_sql(f"DROP INDEX ix_rg_checkpoints_run_id{on}")


def _v3_chunks(conn: sa.Connection) -> None:
    """Large values in chunks: add ``rg_checkpoint_chunks``.

    Rows of earlier versions are small enough to have been stored whole and stay as
    they are; only values written from now on and larger than the chunk size use it.
    """
    schema.chunks.create(conn, checkfirst=True)


def _v4_compact(conn: sa.Connection) -> None:
    """Fewer bytes per step: drop the blob chain index; values of 128 bytes to 2 KiB
    are written compressed (``zd1:``, ``compression.py``) from now on.

    Chain reads use the primary key's version range instead (``schema.select_chain_members``).
    Earlier rows stay as they are and readable; the version tells older code, which
    cannot read ``zd1:`` rows, to refuse this database instead of failing on them.
    """
    table = schema.blobs.name
    if any(ix["name"] == "ix_rg_checkpoint_blobs_chain"
           for ix in sa.inspect(conn).get_indexes(table)):
        on = f" ON {table}" if conn.dialect.name in ("mysql", "mariadb") else ""
        conn.exec_driver_sql(f"DROP INDEX ix_rg_checkpoint_blobs_chain{on}")


#: The checkpoint tables (``rg_checkpoint_migrations`` holds their versions).
CHECKPOINTS = MigrationSet(
    "rg_checkpoint", [_v1_create_tables, _v2_lean_puts, _v3_chunks, _v4_compact]
)

MIGRATIONS = CHECKPOINTS.steps
SCHEMA_VERSION = CHECKPOINTS.version


def current_version(conn: sa.Connection) -> int:
    """The checkpoint schema version stored in the database (0 when never set up)."""
    return CHECKPOINTS.current_version(conn)


def check_version(found: int) -> None:
    """Refuse a checkpoint schema newer than this code."""
    CHECKPOINTS.check_version(found)


def migrate(conn: sa.Connection, target: int | None = None) -> int:
    """Create or upgrade the checkpoint tables on ``conn`` (inside its transaction)."""
    return CHECKPOINTS.migrate(conn, target)
