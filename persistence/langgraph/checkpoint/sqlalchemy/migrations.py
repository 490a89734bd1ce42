"""Versioned schema migrations kept in ``rg_checkpoint_migrations``.

Why not Alembic: the saver must migrate itself from ``setup()`` inside any app that
embeds it, on three dialects, without an ``alembic.ini``; an ordered list of steps and a
version table is all that takes. Add a migration by appending a function to
``MIGRATIONS``; its position (1-based) is its version. A database at a higher version
than this list is refused (``SchemaVersionError``) rather than written with an old
layout.
"""

from __future__ import annotations

from collections.abc import Callable

from langgraph.checkpoint.sqlalchemy import schema
from langgraph.checkpoint.sqlalchemy.errors import SchemaVersionError

import sqlalchemy as sa


def _v1_create_tables(conn: sa.Connection) -> None:
    schema.metadata_obj.create_all(conn, tables=list(schema.TABLES), checkfirst=True)


MIGRATIONS: list[Callable[[sa.Connection], None]] = [
    _v1_create_tables,
]

SCHEMA_VERSION = len(MIGRATIONS)

# An advisory lock so two processes starting at once don't both run a migration.
_LOCK_KEY = 0x52474350  # "RGCP"


def _lock(conn: sa.Connection) -> Callable[[], None]:
    name = conn.dialect.name
    if name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    elif name in ("mysql", "mariadb"):
        conn.execute(sa.text("SELECT GET_LOCK('rg_checkpoint_migrations', 60)"))

        def release() -> None:
            conn.execute(sa.text("SELECT RELEASE_LOCK('rg_checkpoint_migrations')"))

        return release
    # SQLite: the write transaction (BEGIN IMMEDIATE) already serialises setup.
    return lambda: None


def current_version(conn: sa.Connection) -> int:
    """The schema version stored in the database (0 when never set up)."""
    if not sa.inspect(conn).has_table(schema.migrations.name):
        return 0
    return conn.execute(schema.SELECT_SCHEMA_VERSION).scalar() or 0


def check_version(found: int) -> None:
    """Refuse a schema newer than this code, with what to do about it."""
    if found > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"the checkpoint database has schema version {found}, newer than the "
            f"{SCHEMA_VERSION} this relaygraph understands; upgrade relaygraph "
            "(pip install -U relaygraph) or point RELAYGRAPH_CHECKPOINT_DB at another database"
        )


def migrate(conn: sa.Connection) -> int:
    """Create or upgrade the schema on ``conn`` (inside its transaction); returns version."""
    release = _lock(conn)
    try:
        schema.metadata_obj.create_all(conn, tables=[schema.migrations], checkfirst=True)
        found = conn.execute(schema.SELECT_SCHEMA_VERSION).scalar() or 0
        check_version(found)
        for version in range(found + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[version - 1](conn)
            conn.execute(schema.INSERT_SCHEMA_VERSION, {"v": version})
        return SCHEMA_VERSION
    finally:
        release()
