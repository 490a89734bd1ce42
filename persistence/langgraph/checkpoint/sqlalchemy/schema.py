"""Tables and every SQL statement the savers run, in one place (SQLAlchemy Core).

Layout (why):

* ``rg_checkpoints`` - one row per checkpoint: the checkpoint with its small channel
  values serialized inside (a tiny state needs no other row), metadata as JSON
  (filterable on every dialect), ``run_id`` pulled out for ``delete_for_runs`` and
  ``created_at`` for retention. Only the primary key is indexed.
* ``rg_checkpoint_blobs`` - one row per (thread, namespace, channel, version) of a value
  too large to inline, written only for ``new_versions``. A list that extends an earlier stored version of its
  channel is stored as the appended items plus ``base_version``; ``root_version`` and
  ``depth`` let one query fetch a whole delta chain, and a full snapshot every N
  deltas bounds it. Only the primary key is indexed (schema v4): a chain's versions lie
  between its root's and its end's, so the key's (thread, namespace, channel, version)
  range finds them.
* ``rg_checkpoint_writes`` - pending writes keyed like the official savers, ordered on
  read by ``(task_path, task_id, idx)``.
* ``rg_checkpoint_chunks`` (schema v3) - a blob or write larger than the chunk size
  (1 MiB) is stored as numbered chunks here and its own row keeps a small header
  (chunk count, length, CRC-32), so no statement or result row exceeds a server's
  packet limit (MariaDB's ``max_allowed_packet`` is 16 MiB by default). A chunk is
  keyed by its owner: ``kind`` ``b`` (blob: ``version``, ``name`` = channel) or ``w``
  (write: ``version`` = checkpoint id, ``name`` = task id, ``idx``), so deleting the
  owners deletes their chunks by the same keys.

Key columns are bounded VARCHARs (MySQL cannot index TEXT) with a binary collation on
MySQL/MariaDB so thread ``"A"`` and ``"a"`` stay distinct.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.types import TypeDecorator

MAX_THREAD_ID = 255
MAX_NS = 255
MAX_CHANNEL = 150
MAX_ID = 64
MAX_TASK_ID = 128


def _key(length: int) -> sa.types.TypeEngine:
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


_BLOB = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


def _jsonable(value: Any) -> Any:
    """Metadata as plain JSON types (unknown objects become strings, like the PG saver)."""
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


class MetadataJSON(TypeDecorator):
    """JSON column (JSONB on PostgreSQL) that never fails on odd metadata values."""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB())
        return dialect.type_descriptor(sa.JSON())

    def bind_processor(self, dialect: sa.Dialect) -> Any:
        """Metadata arrives as JSON text, encoded once by the saver (not dumped, loaded
        and dumped again); other values are encoded here."""

        def text(value: Any) -> Any:
            if value is None or isinstance(value, str):
                return value
            return json.dumps(value, default=str)

        if dialect.name != "postgresql":
            return text
        from psycopg.types.json import Jsonb

        def jsonb(value: Any) -> Any:
            return None if value is None else Jsonb(text(value), dumps=_as_is)

        return jsonb


def _as_is(text: str) -> str:
    return text


metadata_obj = sa.MetaData()

checkpoints = sa.Table(
    "rg_checkpoints",
    metadata_obj,
    sa.Column("thread_id", _key(MAX_THREAD_ID), primary_key=True),
    sa.Column("checkpoint_ns", _key(MAX_NS), primary_key=True, server_default=""),
    sa.Column("checkpoint_id", _key(MAX_ID), primary_key=True),
    sa.Column("parent_checkpoint_id", _key(MAX_ID), nullable=True),
    sa.Column("run_id", _key(MAX_THREAD_ID), nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),  # epoch milliseconds
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("checkpoint", _BLOB, nullable=False),
    sa.Column("metadata", MetadataJSON, nullable=False),
    # No index on run_id (schema v2): every put paid for it and only delete_for_runs,
    # a rare maintenance call, reads by it. A rowid table on SQLite (v2): checkpoint
    # rows are too large for a WITHOUT ROWID b-tree (SQLite advises under ~1/20 page).
)

blobs = sa.Table(
    "rg_checkpoint_blobs",
    metadata_obj,
    sa.Column("thread_id", _key(MAX_THREAD_ID), primary_key=True),
    sa.Column("checkpoint_ns", _key(MAX_NS), primary_key=True, server_default=""),
    sa.Column("channel", _key(MAX_CHANNEL), primary_key=True),
    sa.Column("version", _key(MAX_ID), primary_key=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("blob", _BLOB, nullable=True),
    # Delta chain: a full value has root_version == version, depth 0, no base.
    sa.Column("root_version", _key(MAX_ID), nullable=False),
    sa.Column("base_version", _key(MAX_ID), nullable=True),
    sa.Column("depth", sa.Integer, nullable=False, server_default="0"),
    sa.Column("item_count", sa.Integer, nullable=True),
    # No index on root_version (schema v4; v1-v3 had ix_rg_checkpoint_blobs_chain): chain
    # reads use the primary key's version range (``select_chain_members``), so every put
    # saves an index entry and a 500-step chat 45 kB on SQLite.
)

writes = sa.Table(
    "rg_checkpoint_writes",
    metadata_obj,
    sa.Column("thread_id", _key(MAX_THREAD_ID), primary_key=True),
    sa.Column("checkpoint_ns", _key(MAX_NS), primary_key=True, server_default=""),
    sa.Column("checkpoint_id", _key(MAX_ID), primary_key=True),
    sa.Column("task_id", _key(MAX_TASK_ID), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("channel", _key(MAX_CHANNEL), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("blob", _BLOB, nullable=False),
    sa.Column("task_path", sa.Text, nullable=False),
    # SQLite: store rows in the primary-key b-tree instead of a rowid table plus a
    # second copy of the key in an index (about a third of this table's size).
    sqlite_with_rowid=False,
)

chunks = sa.Table(
    "rg_checkpoint_chunks",
    metadata_obj,
    sa.Column("thread_id", _key(MAX_THREAD_ID), primary_key=True),
    sa.Column("checkpoint_ns", _key(MAX_NS), primary_key=True, server_default=""),
    sa.Column("kind", _key(1), primary_key=True),  # "b": a blob, "w": a pending write
    sa.Column("version", _key(MAX_ID), primary_key=True),  # blob version / write checkpoint id
    sa.Column("name", _key(MAX_CHANNEL), primary_key=True),  # blob channel / write task id
    sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),  # write idx; 0 for blobs
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("data", _BLOB, nullable=False),
    # A rowid table on SQLite: 1 MiB rows are far too large for a WITHOUT ROWID b-tree.
)

migrations = sa.Table(
    "rg_checkpoint_migrations",
    metadata_obj,
    sa.Column("v", sa.Integer, primary_key=True, autoincrement=False),
)

TABLES = (checkpoints, blobs, writes, chunks)

# --- shared statements (dialect independent) ------------------------------------------

_CP_COLS = (
    checkpoints.c.thread_id,
    checkpoints.c.checkpoint_ns,
    checkpoints.c.checkpoint_id,
    checkpoints.c.parent_checkpoint_id,
    checkpoints.c.type,
    checkpoints.c.checkpoint,
    checkpoints.c.metadata,
)

SELECT_CHECKPOINT = sa.select(*_CP_COLS).where(
    checkpoints.c.thread_id == sa.bindparam("thread_id"),
    checkpoints.c.checkpoint_ns == sa.bindparam("checkpoint_ns"),
    checkpoints.c.checkpoint_id == sa.bindparam("checkpoint_id"),
)

# Served by the primary key: (thread_id, checkpoint_ns, checkpoint_id DESC) LIMIT 1.
SELECT_LATEST_CHECKPOINT = (
    sa.select(*_CP_COLS)
    .where(
        checkpoints.c.thread_id == sa.bindparam("thread_id"),
        checkpoints.c.checkpoint_ns == sa.bindparam("checkpoint_ns"),
    )
    .order_by(checkpoints.c.checkpoint_id.desc())
    .limit(1)
)

SELECT_WRITES = sa.select(
    writes.c.checkpoint_id,
    writes.c.task_id,
    writes.c.task_path,
    writes.c.idx,
    writes.c.channel,
    writes.c.type,
    writes.c.blob,
).where(
    writes.c.thread_id == sa.bindparam("thread_id"),
    writes.c.checkpoint_ns == sa.bindparam("checkpoint_ns"),
    writes.c.checkpoint_id.in_(sa.bindparam("checkpoint_ids", expanding=True)),
)

# The common case of one checkpoint (get_tuple): no expanding IN list, so it can be
# compiled once to a plain SQL string (see fastpath.py).
SELECT_WRITES_ONE = sa.select(*SELECT_WRITES.selected_columns).where(
    writes.c.thread_id == sa.bindparam("thread_id"),
    writes.c.checkpoint_ns == sa.bindparam("checkpoint_ns"),
    writes.c.checkpoint_id == sa.bindparam("checkpoint_id"),
)

_BLOB_COLS = (
    blobs.c.channel,
    blobs.c.version,
    blobs.c.type,
    blobs.c.blob,
    blobs.c.root_version,
    blobs.c.base_version,
    blobs.c.depth,
    blobs.c.item_count,
)


# Blob lookups are a UNION ALL of branches that each pin a full index prefix with
# equalities. Why: an OR of pairs, a row-value IN or two IN lists let SQLite, or a
# PostgreSQL planner without fresh statistics, search by (thread_id, checkpoint_ns)
# only and read every blob of a long thread (10 ms instead of 0.1 ms at 3,000 rows).
@lru_cache(maxsize=64)
def select_blobs(pairs: int) -> sa.CompoundSelect | sa.Select:
    """The blobs of ``pairs`` (channel, version) pairs, bound as ``c0``/``v0``, ..."""
    branches = [
        sa.select(*_BLOB_COLS).where(
            blobs.c.thread_id == sa.bindparam("thread_id"),
            blobs.c.checkpoint_ns == sa.bindparam("checkpoint_ns"),
            blobs.c.channel == sa.bindparam(f"c{i}"),
            blobs.c.version == sa.bindparam(f"v{i}"),
        )
        for i in range(pairs)
    ]
    return branches[0] if pairs == 1 else sa.union_all(*branches)


@lru_cache(maxsize=128)
def select_chain_members(chains: int, bounded: bool = True) -> sa.CompoundSelect | sa.Select:
    """Rows of delta chains below a depth: ``c0``/``r0`` (channel, root) and ``d0``, ...

    ``bounded``: also ``r0 <= version < t0`` (``t0``: the chain's deepest version wanted),
    a range of the primary key. The saver's versions grow along a chain (a counter
    first, zero-padded), so that range holds the chain; a chain it misses (versions of
    another kind) is read again unbounded, which scans the channel's rows of the thread.
    """
    branches = []
    for i in range(chains):
        where = [
            blobs.c.thread_id == sa.bindparam("thread_id"),
            blobs.c.checkpoint_ns == sa.bindparam("checkpoint_ns"),
            blobs.c.channel == sa.bindparam(f"c{i}"),
        ]
        if bounded:
            where += [blobs.c.version >= sa.bindparam(f"r{i}"),
                      blobs.c.version < sa.bindparam(f"t{i}")]
        where += [blobs.c.root_version == sa.bindparam(f"r{i}"),
                  blobs.c.depth < sa.bindparam(f"d{i}")]
        branches.append(sa.select(*_BLOB_COLS).where(*where))
    return branches[0] if chains == 1 else sa.union_all(*branches)


DELETE_THREAD = tuple(
    t.delete().where(t.c.thread_id.in_(sa.bindparam("thread_ids", expanding=True)))
    for t in TABLES
)

SELECT_RUN_CHECKPOINTS = sa.select(
    checkpoints.c.thread_id, checkpoints.c.checkpoint_ns, checkpoints.c.checkpoint_id
).where(checkpoints.c.run_id.in_(sa.bindparam("run_ids", expanding=True)))

DELETE_CHECKPOINTS_BY_ID = checkpoints.delete().where(
    checkpoints.c.thread_id == sa.bindparam("thread_id"),
    checkpoints.c.checkpoint_ns == sa.bindparam("checkpoint_ns"),
    checkpoints.c.checkpoint_id.in_(sa.bindparam("checkpoint_ids", expanding=True)),
)

DELETE_WRITES_BY_CHECKPOINT = writes.delete().where(
    writes.c.thread_id == sa.bindparam("thread_id"),
    writes.c.checkpoint_ns == sa.bindparam("checkpoint_ns"),
    writes.c.checkpoint_id.in_(sa.bindparam("checkpoint_ids", expanding=True)),
)

DELETE_BLOBS_BY_VERSION = blobs.delete().where(
    blobs.c.thread_id == sa.bindparam("thread_id"),
    blobs.c.checkpoint_ns == sa.bindparam("checkpoint_ns"),
    blobs.c.channel == sa.bindparam("channel"),
    blobs.c.version.in_(sa.bindparam("versions", expanding=True)),
)

# One chunk of a large blob or write (read one at a time: memory holds one more chunk,
# not a second copy of the value).
SELECT_CHUNK = sa.select(chunks.c.data).where(
    chunks.c.thread_id == sa.bindparam("thread_id"),
    chunks.c.checkpoint_ns == sa.bindparam("checkpoint_ns"),
    chunks.c.kind == sa.bindparam("kind"),
    chunks.c.version == sa.bindparam("version"),
    chunks.c.name == sa.bindparam("name"),
    chunks.c.idx == sa.bindparam("idx"),
    chunks.c.seq == sa.bindparam("seq"),
)

DELETE_WRITE_CHUNKS_BY_CHECKPOINT = chunks.delete().where(
    chunks.c.thread_id == sa.bindparam("thread_id"),
    chunks.c.checkpoint_ns == sa.bindparam("checkpoint_ns"),
    chunks.c.kind == "w",
    chunks.c.version.in_(sa.bindparam("checkpoint_ids", expanding=True)),
)

DELETE_BLOB_CHUNKS_BY_VERSION = chunks.delete().where(
    chunks.c.thread_id == sa.bindparam("thread_id"),
    chunks.c.checkpoint_ns == sa.bindparam("checkpoint_ns"),
    chunks.c.kind == "b",
    chunks.c.name == sa.bindparam("channel"),
    chunks.c.version.in_(sa.bindparam("versions", expanding=True)),
)

# The rows blob garbage collection needs: what each remaining checkpoint references ...
SELECT_NS_CHECKPOINT_REFS = sa.select(
    checkpoints.c.checkpoint_id, checkpoints.c.type, checkpoints.c.checkpoint
).where(
    checkpoints.c.thread_id == sa.bindparam("thread_id"),
    checkpoints.c.checkpoint_ns == sa.bindparam("checkpoint_ns"),
)

# ... and the chain structure of every stored blob (no payloads).
SELECT_NS_BLOB_INDEX = sa.select(
    blobs.c.channel, blobs.c.version, blobs.c.base_version, blobs.c.root_version
).where(
    blobs.c.thread_id == sa.bindparam("thread_id"),
    blobs.c.checkpoint_ns == sa.bindparam("checkpoint_ns"),
)

# Latest checkpoint per namespace of a thread (keep_latest).
SELECT_THREAD_HEADS = (
    sa.select(
        checkpoints.c.checkpoint_ns,
        sa.func.max(checkpoints.c.checkpoint_id).label("checkpoint_id"),
    )
    .where(checkpoints.c.thread_id == sa.bindparam("thread_id"))
    .group_by(checkpoints.c.checkpoint_ns)
)

SELECT_NS_CHECKPOINT_IDS = sa.select(checkpoints.c.checkpoint_id).where(
    checkpoints.c.thread_id == sa.bindparam("thread_id"),
    checkpoints.c.checkpoint_ns == sa.bindparam("checkpoint_ns"),
)

SELECT_HEAD_METADATA = sa.select(checkpoints.c.metadata).where(
    checkpoints.c.thread_id == sa.bindparam("thread_id"),
    checkpoints.c.checkpoint_ns == sa.bindparam("checkpoint_ns"),
    checkpoints.c.checkpoint_id == sa.bindparam("checkpoint_id"),
)

# Checkpoints whose parent was just deleted lose the parent link instead of dangling.
CLEAR_DANGLING_PARENTS = (
    checkpoints.update()
    .where(
        # (UPDATE reserves bind names equal to column names, hence the b_ prefix)
        checkpoints.c.thread_id == sa.bindparam("b_thread_id"),
        checkpoints.c.checkpoint_ns == sa.bindparam("b_checkpoint_ns"),
        checkpoints.c.parent_checkpoint_id.in_(
            sa.bindparam("checkpoint_ids", expanding=True)
        ),
    )
    .values(parent_checkpoint_id=None)
)

# Per-thread activity for retention (latest checkpoint time per thread).
SELECT_THREAD_ACTIVITY = sa.select(
    checkpoints.c.thread_id, sa.func.max(checkpoints.c.created_at).label("last_at")
).group_by(checkpoints.c.thread_id)

SELECT_THREAD_IDS = sa.select(checkpoints.c.thread_id).distinct()

SELECT_SCHEMA_VERSION = sa.select(sa.func.max(migrations.c.v))
INSERT_SCHEMA_VERSION = migrations.insert()


def copy_thread_statements() -> tuple[sa.Executable, ...]:
    """INSERT .. SELECT of every row of ``:source`` under ``:target`` (ignoring clashes)."""
    out = []
    for table in TABLES:
        cols = [c for c in table.c]
        select = sa.select(
            *[
                sa.bindparam("target", type_=c.type) if c.name == "thread_id" else c
                for c in cols
            ]
        ).where(table.c.thread_id == sa.bindparam("source"))
        out.append((table, cols, select))
    return tuple(out)  # type: ignore[return-value]


# --- dialect specific statements ------------------------------------------------------


@dataclass(frozen=True)
class Statements:
    """The write statements of one dialect (upserts differ per database)."""

    dialect: str
    insert_blob: sa.Executable  # insert, keep existing on conflict
    upsert_checkpoint: sa.Executable
    insert_write: sa.Executable  # insert-or-ignore: a repeated (task_id, idx) is a no-op
    upsert_write: sa.Executable  # special channels: last write wins
    insert_chunk: sa.Executable  # chunks of a blob or regular write (kept like their owner)
    upsert_chunk: sa.Executable  # chunks of a special write (replaced like it)
    copy_rows: tuple[sa.Executable, ...]


def _do_nothing(table: sa.Table, dialect: str) -> sa.Executable:
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    # Not INSERT IGNORE: that also turns truncation and other errors into warnings.
    stmt = mysql.insert(table)
    first_key = table.primary_key.columns.values()[0].name
    return stmt.on_duplicate_key_update({first_key: stmt.inserted[first_key]})


def insert_if_missing(table: sa.Table, dialect: str) -> sa.Executable:
    """An INSERT into ``table`` that leaves a row whose primary key is stored already as it is.

    Why public: tables kept beside the checkpoints (through ``MigrationSet``) are written
    idempotently too, since a write retried after a connection lost at COMMIT may find its
    rows there; one statement per batch instead of reading the stored keys first. MariaDB and
    MySQL get a no-op ``ON DUPLICATE KEY UPDATE``, not ``INSERT IGNORE``.
    """
    return _do_nothing(table, "mysql" if dialect == "mariadb" else dialect)


def _do_update(table: sa.Table, dialect: str, columns: list[str]) -> sa.Executable:
    keys = [c.name for c in table.primary_key.columns]
    if dialect in ("postgresql", "sqlite"):
        mod = postgresql if dialect == "postgresql" else sqlite
        stmt = mod.insert(table)
        return stmt.on_conflict_do_update(
            index_elements=keys, set_={c: stmt.excluded[c] for c in columns}
        )
    stmt = mysql.insert(table)
    return stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in columns})


@lru_cache(maxsize=None)
def statements_for(dialect: str) -> Statements:
    """Statements for a dialect name, built once per process (compiled-cache friendly)."""
    dialect = "mysql" if dialect == "mariadb" else dialect
    if dialect not in ("sqlite", "postgresql", "mysql"):
        raise ValueError(f"unsupported dialect {dialect!r}")
    copies = []
    for table, cols, select in copy_thread_statements():  # type: ignore[misc]
        ins = _do_nothing(table, dialect)
        copies.append(ins.from_select([c.name for c in cols], select))
    return Statements(
        dialect=dialect,
        insert_blob=_do_nothing(blobs, dialect),
        upsert_checkpoint=_do_update(
            checkpoints,
            dialect,
            ["parent_checkpoint_id", "run_id", "created_at", "type", "checkpoint", "metadata"],
        ),
        insert_write=_do_nothing(writes, dialect),
        upsert_write=_do_update(writes, dialect, ["channel", "type", "blob", "task_path"]),
        insert_chunk=_do_nothing(chunks, dialect),
        upsert_chunk=_do_update(chunks, dialect, ["data"]),
        copy_rows=tuple(copies),
    )


# --- metadata filters -----------------------------------------------------------------

_SAFE_KEY = re.compile(r"^[^\"\\\x00-\x1f]{1,200}$")


def metadata_filter(dialect: str, key: str, value: Any) -> sa.ColumnElement[bool]:
    """``metadata[key]`` matches ``value`` (JSON semantics), for one dialect.

    PostgreSQL uses JSONB containment (``@>``). Elsewhere a dict value is matched key by
    key (containment, like ``@>``) and scalars by ``json_extract``/``JSON_CONTAINS``, with
    JSON types kept apart (``1``, ``"1"`` and ``true`` are different values).
    """
    if not isinstance(key, str) or not _SAFE_KEY.match(key):
        raise ValueError(
            f"metadata filter key {key!r} is not supported: use a non-empty string "
            "without quotes, backslashes or control characters"
        )
    col = checkpoints.c.metadata
    if dialect == "postgresql":
        return sa.type_coerce(col, postgresql.JSONB).contains({key: _jsonable(value)})
    return sa.and_(*_leaf_filters(dialect, sa.type_coerce(col, sa.Text), f'$."{key}"', value))


def _leaf_filters(dialect: str, col: Any, path: str, value: Any) -> list[Any]:
    if isinstance(value, dict) and value:
        out = []
        for key, sub in value.items():
            if not isinstance(key, str) or not _SAFE_KEY.match(key):
                raise ValueError(f"metadata filter key {key!r} is not supported")
            out.extend(_leaf_filters(dialect, col, f'{path}."{key}"', sub))
        return out
    # MariaDB compares JSON strings as written; metadata is stored ASCII-escaped.
    encoded = json.dumps(_jsonable(value), ensure_ascii=dialect != "sqlite", separators=(",", ":"))
    literal = sa.literal(encoded, sa.Text)
    if dialect != "sqlite":
        return [sa.func.json_contains(col, literal, path) == 1]
    # json_extract maps true/false to 1/0, so the JSON type is compared as well.
    kind = sa.func.json_type(col, path)
    if isinstance(value, bool) or value is None:
        type_check = kind == ("null" if value is None else ("true" if value else "false"))
    elif isinstance(value, (int, float)):
        type_check = kind.in_(("integer", "real"))
    else:
        type_check = kind == sa.func.json_type(literal, "$")
    return [type_check,
            sa.func.json_extract(col, path).is_not_distinct_from(sa.func.json_extract(literal, "$"))]
