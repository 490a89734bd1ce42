"""Logic shared by the sync and async SQLAlchemy savers.

Every operation is written once, as a generator that yields SQL calls (``_Call``) and
receives their rows back; ``saver.py`` drives it on a ``Connection`` and ``aio.py`` on an
``AsyncConnection``. So the two savers cannot drift apart: they share the statements,
the row layout, delta encoding and error reporting, and differ only in how they wait.
The sync saver's hot paths (put, put_writes, get_tuple) run the same statements and
operations on the DBAPI cursor instead (``fastpath.py``).
"""

from __future__ import annotations

import functools
import json
import logging
import operator
import random
import struct
import threading
import zlib
from collections import ChainMap, OrderedDict, deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    EXCLUDED_METADATA_KEYS,
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.sqlalchemy import schema
from langgraph.checkpoint.sqlalchemy.compression import (
    PRESET_PREFIX,
    WIDE_FROM,
    deflate_small,
    inflate_small,
)
from langgraph.checkpoint.sqlalchemy.errors import (
    CheckpointCorruptError,
    MetadataTooLargeError,
    UnstorableTextError,
)
from langgraph.checkpoint.sqlalchemy.retry import DEFAULT_RETRY, RetryPolicy

import sqlalchemy as sa

T = TypeVar("T")
logger = logging.getLogger(__name__)

PRUNE_STRATEGIES = ("keep_latest", "delete")
DEFAULT_DELTA_SNAPSHOT_EVERY = 64
DEFAULT_INLINE_MAX_BYTES = 512
DEFAULT_COMPRESS_MIN_BYTES = 128
ZLIB_PREFIX = "zlib:"
#: Key of the stored checkpoint holding small serialized values: {channel: [type, bytes]}.
INLINE_KEY = "rg_inline"
#: Key of the stored checkpoint listing the channels whose values are blob rows. Channels
#: in ``channel_versions`` but in neither place are empty: no row, no lookup.
BLOBS_KEY = "rg_blobs"
_CHUNK = 500  # bound on IN-list sizes (SQLite variables, statement length)
_LIST_PAGE = 100  # checkpoints ``list`` decodes per read transaction
_CHAIN_CACHE_SIZE = 4096
#: Serialized values larger than this are stored as chunks of this size (schema v3).
#: 1 MiB: within every server's default packet limit (MariaDB 16 MiB, MySQL 5.7 4 MiB)
#: with room for escaping, and few rows per value.
DEFAULT_CHUNK_BYTES = 1 << 20
#: Type prefix of a blob or write stored in chunks; its own row holds ``_CHUNK_HEADER``.
CHUNKED_PREFIX = "chunks:"
_CHUNK_HEADER = struct.Struct("<4sIQI")  # magic, chunk count, total bytes, CRC-32
_CHUNK_MAGIC = b"RGC1"
#: Type of a row whose chunks could not be read back; decoding it raises
#: ``CheckpointCorruptError`` with the checkpoint and channel that need it.
_BROKEN = "rg:broken"
#: Above this size, compression is tried on samples first (zlib over 100 MB of
#: incompressible bytes costs about half a second and a second copy for nothing).
_SAMPLE_ABOVE = 1 << 20
_SAMPLE_BYTES = 32 * 1024
_CORRUPT_KEPT = 100
#: Metadata is one JSON value in the checkpoint row (searched by ``list(filter=...)``),
#: never chunked: larger metadata is refused on every backend.
MAX_METADATA_BYTES = 1 << 20


#: Compact metadata JSON, unknown objects as strings (``json.dumps(md, default=str,
#: separators=(",", ":"))`` without building an encoder per call).
_metadata_json = json.JSONEncoder(default=str, separators=(",", ":")).encode
#: Types whose values are stored as they are in the checkpoint record (see ``_is_plain``).
_PLAIN_TYPES = frozenset({type(None), bool, int, float})


#: Called after a checkpoint or a task's writes are stored, with a payload shaped like LangGraph's
#: ``checkpoints`` stream event: ``{"config", "parent_config"}`` for a checkpoint,
#: ``{"config", "tasks": [{"id"}]}`` for a task's writes. See ``BaseSQLAlchemySaver.add_listener``.
CheckpointListener = Callable[[dict[str, Any]], None]


StaticCalls = list[tuple[sa.Executable, list[dict[str, Any]]]]


class _BlobRow(NamedTuple):
    """A blob row whose chunks were read back (columns of ``schema._BLOB_COLS``)."""

    channel: str
    version: str
    type: str
    blob: Any
    root_version: str
    base_version: str | None
    depth: int
    item_count: int | None


class _WriteRow(NamedTuple):
    """A write row whose chunks were read back (columns of ``schema.SELECT_WRITES``)."""

    checkpoint_id: str
    task_id: str
    task_path: str
    idx: int
    channel: str
    type: str
    blob: Any


class _Call(NamedTuple):
    stmt: sa.Executable
    params: Any
    fetch: bool


Op = Generator[_Call, Any, T]


def query(stmt: sa.Executable, params: Any = None) -> _Call:
    """A call whose rows the operation needs back."""
    return _Call(stmt, params, True)


def execute(stmt: sa.Executable, params: Any = None) -> _Call:
    """A call run for its effect (a list of dicts runs as executemany)."""
    return _Call(stmt, params, False)


def fetch_op(stmt: sa.Executable, params: Any = None) -> Op[list[Any]]:
    """An operation that is a single query."""
    rows = yield query(stmt, params)
    return rows


def chunks(items: Sequence[T], size: int = _CHUNK) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(slots=True)
class _ChainState:
    """What this process last stored for one list channel (enough to append a delta)."""

    version: str
    root: str
    depth: int
    items: list[Any]  # the stored list's items (strong references: identity is compared)
    root_bytes: int  # size of the full value the chain starts from
    delta_bytes: int  # bytes of the deltas stored since


@dataclass
class _PreparedPut:
    checkpoint_row: dict[str, Any]
    blob_rows: list[dict[str, Any]]
    chunk_rows: list[dict[str, Any]] = field(default_factory=list)
    chain_updates: dict[tuple[str, str, str], _ChainState | None] = field(default_factory=dict)
    remember: dict[tuple[str, str, str], tuple[str, list[Any] | None]] = field(
        default_factory=dict
    )


@dataclass(frozen=True, slots=True)
class StorageOptions:
    """How both savers store values (one definition for both and their constructors).

    * ``delta_snapshot_every`` - a list channel that only grows is stored as the
      appended items plus a reference to the previous version; a full copy is written
      again after at least this many deltas, once they outweigh the last full copy
      (see ``BaseSQLAlchemySaver._snapshot_due``). 0 disables deltas.
    * ``compress_min_bytes`` - serialized values at least this big stored in a row of
      their own (blob rows, pending writes) are compressed when that saves 10%; None
      turns compression off. Below 2 KiB with zlib's deflate, a 4 KiB window and a
      preset dictionary of LangGraph's and LangChain's structural strings
      (``compression.py``: -55% on a 450-byte chat message), from 2 KiB with plain zlib
      level 1. The checkpoint record and the small values inside it are not compressed
      (that cost a tiny state's ``put`` about 20 us).
    * ``inline_max_bytes`` - values that serialize to at most this many bytes (and
      numbers, bools, None, strings this short) live in the checkpoint row itself:
      a tiny state is one row per checkpoint, like the official SQLite saver's, with no
      blob row, index entry or lookup per channel.
    * ``writes_flush_delay`` - under LangGraph's ``async`` durability, how long a task's
      writes may wait for the next checkpoint's transaction before they are committed
      on their own (seconds).
    * ``chunk_bytes`` - a serialized value (blob or pending write) larger than this is
      stored as chunks of this size in ``rg_checkpoint_chunks`` and read back
      reassembled, so no statement exceeds a server's packet limit (MariaDB's
      ``max_allowed_packet`` is 16 MiB by default).
    """

    delta_snapshot_every: int = DEFAULT_DELTA_SNAPSHOT_EVERY
    inline_max_bytes: int = DEFAULT_INLINE_MAX_BYTES
    compress_min_bytes: int | None = DEFAULT_COMPRESS_MIN_BYTES
    writes_flush_delay: float = 0.05
    chunk_bytes: int = DEFAULT_CHUNK_BYTES


# LangGraph's config keys for the run's durability mode and its runtime (present in every
# call a Pregel loop makes; a direct call to the saver has neither).
_DURABILITY_KEY = "__pregel_durability"
_RUNTIME_KEY = "__pregel_runtime"


def _created_at(ts: Any) -> int:
    try:
        moment = datetime.fromisoformat(str(ts))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return int(moment.timestamp() * 1000)
    except (TypeError, ValueError):
        return int(datetime.now(timezone.utc).timestamp() * 1000)


def _check_length(what: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise ValueError(
            f"{what} is {len(value)} characters long; the checkpoint tables allow {limit}. "
            f"Use a shorter {what}."
        )
    check_text(what, value)


def plain_ascii(*texts: Any) -> bool:
    """Whether every one of ``texts`` is ASCII text without NUL, so ``check_text`` would
    pass them all: one C-level scan of them joined. The hot paths check their keys with
    it and only on a miss (or a non-str) check them one by one, to name the culprit."""
    try:
        joined = "".join(texts)
    except TypeError:
        return False
    return joined.isascii() and "\x00" not in joined


def check_text(what: str, value: Any) -> None:
    """Refuse a NUL character or a lone surrogate in text stored in a column.

    Why refuse rather than store: PostgreSQL cannot store NUL in text or JSONB, LangGraph
    strips it from metadata, and no driver can encode a lone surrogate as UTF-8; the
    same string must not be kept on one database and be an error or a different string
    on another. Cheap on the hot path: two C-level scans of short keys.
    """
    if not isinstance(value, str):
        return
    if "\x00" in value:
        raise UnstorableTextError(what, value, value.index("\x00"), "a NUL character (\\x00)")
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = value[exc.start]
        raise UnstorableTextError(
            what, value, exc.start, f"a lone surrogate ({char!r}, not valid Unicode)"
        ) from None


def _check_json_text(what: str, value: Any, depth: int = 0) -> None:
    """``check_text`` on every key and string of a JSON-like value (metadata)."""
    if isinstance(value, str):
        check_text(what, value)
    elif isinstance(value, dict) and depth < 64:
        for key, sub in value.items():
            check_text(f"{what} key", key)
            _check_json_text(f"{what}[{key!r}]", sub, depth + 1)
    elif isinstance(value, (list, tuple)) and depth < 64:
        for sub in value:
            _check_json_text(what, sub, depth + 1)


def _flat(obj: Any) -> Any:
    """A ``ChainMap`` (LangGraph's ``configurable``) as one dict with the same items in the
    same order, built in C: iterating the ChainMap looks every key up map by map."""
    if type(obj) is ChainMap:
        flat: dict[Any, Any] = {}
        for mapping in reversed(obj.maps):
            flat.update(mapping)
        return flat
    return obj


def stored_metadata(config: RunnableConfig, metadata: CheckpointMetadata) -> dict[str, Any]:
    """LangGraph's ``get_serializable_checkpoint_metadata``, in one pass, refusing NUL.

    The same dict (keys, values and order): ``metadata`` without ``writes``, plus the
    str/int/bool/float entries of ``config``'s ``metadata`` and ``configurable`` not
    already there, not excluded and not ``__``-private. Where LangGraph would strip NUL
    from a top-level string, this raises ``UnstorableTextError`` (``check_text``)
    instead, so that one walk over ``configurable`` does for both (see ``check_metadata``
    for nested strings).
    """
    md: dict[str, Any] = {}
    for key, value in metadata.items():
        if value.__class__ is str and "\x00" in value:
            _check_metadata_exactly(config, metadata)
        md[key] = value
    for obj in (config.get("metadata"), config.get("configurable")):
        if not obj:
            continue
        for key, value in _flat(obj).items():
            if key in md or key in EXCLUDED_METADATA_KEYS or key.startswith("__"):
                continue
            if isinstance(value, str):
                if "\x00" in value:
                    _check_metadata_exactly(config, metadata)
                md[key] = value
            elif isinstance(value, (int, bool, float)):
                md[key] = value
    md.pop("writes", None)
    return md


def check_metadata(config: RunnableConfig, metadata: CheckpointMetadata, stored: str) -> None:
    """Refuse NUL or lone surrogates in the metadata a put stores (see ``check_text``):
    ``metadata`` itself and the ``config`` entries LangGraph copies into it.

    ``stored`` is the JSON text to be stored (ASCII, after LangGraph stripped NUL from
    top-level strings). Fast path, about 1 us: the top-level strings LangGraph would
    strip are scanned for NUL, and ``stored`` for the escapes of NUL and of surrogates;
    only a hit (or non-BMP text, whose pairs are surrogate escapes) walks everything.
    """
    for obj in (metadata, config.get("metadata"), config.get("configurable")):
        if obj:
            for value in obj.values():
                if value.__class__ is str and "\x00" in value:
                    _check_metadata_exactly(config, metadata)
    if "\\u0000" in stored or "\\ud" in stored:
        # parsed back: values JSON-encoded with default=str are checked as stored
        _check_json_text("metadata", json.loads(stored))


def _check_metadata_exactly(config: RunnableConfig, metadata: CheckpointMetadata) -> None:
    _check_json_text("metadata", metadata)
    for obj in (config.get("metadata"), config.get("configurable")):
        if not obj:
            continue
        for key, value in obj.items():
            if key in metadata or key in EXCLUDED_METADATA_KEYS or key.startswith("__"):
                continue
            if isinstance(value, (str, int, bool, float)):
                check_text("metadata key", key)
                check_text(f"metadata[{key!r}]", value)


def _compressible(data: bytes) -> bool:
    """Whether zlib saves 10% on samples from the start, middle and end of ``data``."""
    n = len(data)
    view = memoryview(data)
    size = raw = 0
    for start in (0, n // 2, n - _SAMPLE_BYTES):
        sample = view[start : start + _SAMPLE_BYTES]
        raw += len(sample)
        size += len(zlib.compress(sample, 1))
    return size < raw * 0.9


def _broken_chains(found: dict[tuple[str, str], Any]) -> set[tuple[str, str]]:
    """(channel, root) of the delta chains in ``found`` that do not reach their root."""
    broken: set[tuple[str, str]] = set()
    whole: set[tuple[str, str]] = set()  # rows known to reach their root
    for b in found.values():
        path: list[tuple[str, str]] = []
        cursor = b
        while cursor.base_version is not None and (b.channel, cursor.version) not in whole:
            path.append((b.channel, cursor.version))
            cursor = found.get((b.channel, cursor.base_version))
            if cursor is None or len(path) > b.depth + 1:  # missing, or a cycle
                broken.add((b.channel, b.root_version))
                break
        else:
            whole.update(path)
    return broken


class BaseSQLAlchemySaver(BaseCheckpointSaver[str]):
    """State, encoding and SQL operations common to both savers (see ``StorageOptions``).

    ``SQLAlchemySaver`` and ``AsyncSQLAlchemySaver`` add only how they wait: each public
    method is a shared preparation (``_begin_put``, ``_writes_calls``, the ``_*_op``
    generators), the subclass's commit or read, and a shared ending (``_end_put``).
    """

    dialect: str

    def __init__(
        self,
        *,
        dialect: str,
        serde: SerializerProtocol | None = None,
        storage: StorageOptions | None = None,
        listeners: Iterable[CheckpointListener] = (),
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self._listeners: tuple[CheckpointListener, ...] = tuple(listeners)
        #: How a lost connection or a deadlock is retried, by both savers (``retry.py``).
        self.retry = retry or DEFAULT_RETRY
        self.storage = storage = storage or StorageOptions()
        self.compress_min_bytes = storage.compress_min_bytes
        self.dialect = "mysql" if dialect == "mariadb" else dialect
        self._st = schema.statements_for(self.dialect)
        self.delta_snapshot_every = max(0, int(storage.delta_snapshot_every))
        self.inline_max_bytes = int(storage.inline_max_bytes)
        if storage.chunk_bytes < 1024:
            raise ValueError(f"chunk_bytes must be at least 1024, not {storage.chunk_bytes}")
        self.chunk_bytes = int(storage.chunk_bytes)
        #: The corrupt checkpoints ``list`` skipped, newest last (at most 100 kept), and
        #: how many it skipped in all. Each was also logged as a warning.
        self.corrupt_skipped: deque[CheckpointCorruptError] = deque(maxlen=_CORRUPT_KEPT)
        self.corrupt_skipped_count = 0
        self._chains: OrderedDict[tuple[str, str, str], _ChainState] = OrderedDict()
        # How this process last stored each channel version that is not in the
        # checkpoint's new_versions: its inline bytes, or None for a blob row.
        self._stored: OrderedDict[tuple[str, str, str], tuple[str, list[Any] | None]] = (
            OrderedDict()
        )
        self._chains_lock = threading.Lock()

    # --- listeners ----------------------------------------------------------------------

    def add_listener(self, listener: CheckpointListener) -> None:
        """Call ``listener`` after each checkpoint and each task's writes are stored.

        Why: observers such as tracing learn which checkpoint a task ran from and which
        one its step produced under plain ``invoke`` and ``langgraph dev``, where nobody
        streams ``checkpoints``. Listeners run on the writing thread after the commit;
        one that raises is logged, never fails the save. No listeners: no cost.
        """
        self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: CheckpointListener) -> None:
        """Stop calling ``listener`` (a listener never added is ignored)."""
        self._listeners = tuple(fn for fn in self._listeners if fn != listener)

    def _announce_put(self, config: RunnableConfig, stored: RunnableConfig) -> None:
        """A checkpoint was stored: ``config`` named its parent, ``stored`` names it."""
        if self._listeners:
            self._announce({"config": stored, "parent_config": config})

    def _announce_writes(self, config: RunnableConfig, task_id: str) -> None:
        """A task's writes were stored against the checkpoint the task ran from."""
        if self._listeners:
            self._announce({"config": config, "tasks": [{"id": task_id}]})

    def _announce(self, payload: dict[str, Any]) -> None:
        for listener in self._listeners:
            try:
                listener(payload)
            except Exception:  # noqa: BLE001 - an observer must never fail a save
                logger.exception("checkpoint listener %r failed", listener)

    # --- versions ---------------------------------------------------------------------

    def get_next_version(self, current: str | int | float | None, channel: None = None) -> str:
        """Zero-padded counter plus a random suffix; sorts as a string.

        Why random: two forks of one thread writing the same channel get distinct
        versions, so their blobs never collide. Shorter than the official savers'
        51-character versions: every checkpoint repeats them several times.
        """
        if current is None:
            current_v = 0
        elif isinstance(current, (int, float)):
            current_v = int(current)
        else:
            current_v = int(str(current).split(".")[0])
        return f"{current_v + 1:012d}.{random.getrandbits(32):08x}"

    # --- delta chain cache ------------------------------------------------------------

    def _chain_get(self, key: tuple[str, str, str]) -> _ChainState | None:
        with self._chains_lock:
            state = self._chains.get(key)
            if state is not None:
                self._chains.move_to_end(key)
            return state

    def _chains_commit(
        self,
        updates: dict[tuple[str, str, str], _ChainState | None],
        stored: dict[tuple[str, str, str], tuple[str, list[Any] | None]] | None = None,
    ) -> None:
        """Remember what was stored, only once it is committed (a delta's base must exist)."""
        if stored:
            with self._chains_lock:
                for key, how in stored.items():
                    self._stored[key] = how
                    self._stored.move_to_end(key)
                while len(self._stored) > _CHAIN_CACHE_SIZE:
                    self._stored.popitem(last=False)
        if not updates or (
            not self._chains and all(state is None for state in updates.values())
        ):
            return  # only forgetting chains, and none is known (a tiny state's put)
        with self._chains_lock:
            for key, state in updates.items():
                if state is None:
                    self._chains.pop(key, None)
                else:
                    self._chains[key] = state
                    self._chains.move_to_end(key)
            while len(self._chains) > _CHAIN_CACHE_SIZE:
                self._chains.popitem(last=False)

    def _chains_forget(self, thread_ids: Iterable[str]) -> None:
        drop = set(thread_ids)
        with self._chains_lock:
            for key in [k for k in self._chains if k[0] in drop]:
                del self._chains[key]
            for key in [k for k in self._stored if k[0] in drop]:
                del self._stored[key]

    # --- encoding ---------------------------------------------------------------------

    def _is_plain(self, value: Any) -> bool:
        """Values packed into the checkpoint as they are (no serialization of their own)."""
        if value is None or isinstance(value, (bool, int, float)):
            return True
        return isinstance(value, str) and len(value) <= self.inline_max_bytes

    def _dumps(self, value: Any) -> tuple[str, bytes]:
        """``serde.dumps_typed``, compressed when it pays off (``_pack``)."""
        return self._pack(*self.serde.dumps_typed(value))

    def _pack(self, type_: str, data: bytes) -> tuple[str, bytes]:
        """Serialized bytes compressed when at least ``compress_min_bytes`` and 10% smaller.

        Compression tags the type (``zd1:msgpack``, ``zlib:msgpack``) so rows stay
        self-describing; it is on top of, not instead of, storing deltas.
        """
        if self.compress_min_bytes is None or not data or len(data) < self.compress_min_bytes:
            return type_, data
        if len(data) < WIDE_FROM:
            packed = deflate_small(data)
            prefix = PRESET_PREFIX
        elif len(data) > _SAMPLE_ABOVE and not _compressible(data):
            return type_, data
        else:
            packed = zlib.compress(data, 1)
            prefix = ZLIB_PREFIX
        if len(packed) < len(data) * 0.9:
            return prefix + type_, packed
        return type_, data

    def _chunk(
        self, row: dict[str, Any], column: str, kind: str, version: str, name: str, idx: int
    ) -> list[dict[str, Any]]:
        """Move a large payload of ``row`` into chunk rows; returns them (none if small).

        The row keeps a header (count, length, CRC-32) and ``chunks:`` before its type.
        Chunks are ``memoryview`` slices of the payload: no copy of the value is made here.
        """
        data = row[column]
        size = self.chunk_bytes
        if data is None or len(data) <= size:
            return []
        view = memoryview(data)
        count = (len(data) + size - 1) // size
        row["type"] = CHUNKED_PREFIX + row["type"]
        row[column] = _CHUNK_HEADER.pack(_CHUNK_MAGIC, count, len(data), zlib.crc32(view))
        base = {"thread_id": row["thread_id"], "checkpoint_ns": row["checkpoint_ns"],
                "kind": kind, "version": version, "name": name, "idx": idx}
        return [{**base, "seq": i, "data": view[i * size : (i + 1) * size]}
                for i in range(count)]

    def _read_chunks_op(self, thread_id: str, ns: str, kind: str, version: str, name: str,
                        idx: int, type_: str, header: bytes | None) -> Op[tuple[str, Any]]:
        """A chunked payload read back: (its type, its bytes), or (``_BROKEN``, reason).

        One chunk per query into one preallocated buffer, so a read holds the value's
        bytes once (plus one chunk), not a list of chunks and their join as well.
        """
        try:
            magic, count, total, crc = _CHUNK_HEADER.unpack(header or b"")
        except struct.error:
            magic = b""
        if magic != _CHUNK_MAGIC:
            return _BROKEN, f"the header of chunked version {version!r} is unreadable"
        params = {"thread_id": thread_id, "checkpoint_ns": ns, "kind": kind,
                  "version": version, "name": name, "idx": idx}
        buf = view = None
        at = 0
        for seq in range(count):
            got = yield query(schema.SELECT_CHUNK, {**params, "seq": seq})
            if not got:
                return _BROKEN, f"chunk {seq + 1} of {count} of version {version!r} is missing"
            part = got[0].data
            if buf is None:
                # Every chunk but the last is as long as the first: a header that does
                # not fit is corrupt (and must not size a huge allocation).
                if not (count - 1) * len(part) < total <= count * len(part):
                    return _BROKEN, f"the header of chunked version {version!r} is inconsistent"
                buf = bytearray(total)
                view = memoryview(buf)
            if at + len(part) > total:
                return _BROKEN, f"the chunks of version {version!r} exceed {total} bytes"
            view[at : at + len(part)] = part  # type: ignore[index]
            at += len(part)
            del got, part
        if buf is None or at != total or zlib.crc32(buf) != crc:
            return _BROKEN, f"the chunks of version {version!r} do not match their checksum"
        view.release()  # type: ignore[union-attr]
        inner = type_[len(CHUNKED_PREFIX) :]
        # Decoders take a bytearray, but a ``bytes`` value must come back as bytes.
        return inner, (bytes(buf) if inner == "bytes" else buf)

    def _decode(self, type_: str, data: bytes | None) -> Any:
        if type_.startswith(PRESET_PREFIX):
            type_, data = type_[len(PRESET_PREFIX) :], inflate_small(data or b"")
        elif type_.startswith(ZLIB_PREFIX):
            type_, data = type_[len(ZLIB_PREFIX) :], zlib.decompress(data or b"")
        # A NULL column holds no bytes: decoders get b"", as the compressed branches above do.
        return self.serde.loads_typed((type_, data or b""))

    def _blob_row(
        self, thread_id: str, ns: str, channel: str, version: str, type_: str, blob: bytes | None
    ) -> dict[str, Any]:
        check_text("channel name", channel)
        return {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "channel": channel,
            "version": version,
            "type": type_,
            "blob": blob,
            "root_version": version,
            "base_version": None,
            "depth": 0,
            "item_count": None,
        }

    def _encode_channel(
        self, thread_id: str, ns: str, channel: str, version: str, value: Any
    ) -> tuple[dict[str, Any] | None, list[Any] | None, _ChainState | None]:
        """A new channel version: (blob row, None, chain) or (None, [type, bytes], None).

        Small values go inline. A list is a delta of the last version this process stored
        for the channel when its first items are that version's items - the same objects,
        compared by identity: LangGraph's reducers build a new list and put a new object
        wherever an item changes (``add_messages`` replacing a message by id), so a pointer
        comparison finds the appended part without serializing the history again
        (serializing or hashing every item made each step O(history)). An item mutated in
        place, which LangGraph does not support (state changes by returning updates), is
        therefore not noticed. The chain restarts with a full value every
        ``delta_snapshot_every`` versions, which bounds the rows a read joins.
        """
        is_list = type(value) is list and self.delta_snapshot_every > 0
        prev = self._chain_get((thread_id, ns, channel)) if is_list else None
        if prev is not None and prev.version != version and not self._snapshot_due(prev):
            count = len(prev.items)
            # A prefix (value may be longer), compared in C: a generator of ``a is b``
            # cost twice as much, O(history) Python steps per step of a long chat.
            if len(value) >= count and all(map(operator.is_, prev.items, value)):
                type_, blob = self._dumps(value[count:])
                row = self._blob_row(thread_id, ns, channel, version, type_, blob)
                row.update(root_version=prev.root, base_version=prev.version,
                           depth=prev.depth + 1, item_count=len(value))
                return row, None, _ChainState(
                    version, prev.root, prev.depth + 1, list(value),
                    prev.root_bytes, prev.delta_bytes + len(blob),
                )
        type_, blob = self.serde.dumps_typed(value)
        if len(blob) <= self.inline_max_bytes:
            # inside the checkpoint record, which is compressed as a whole
            return None, [type_, blob], None
        type_, blob = self._pack(type_, blob)
        row = self._blob_row(thread_id, ns, channel, version, type_, blob)
        if not is_list:
            return row, None, None
        row["item_count"] = len(value)
        return row, None, _ChainState(version, version, 0, list(value), len(blob), 0)

    def _snapshot_due(self, chain: _ChainState) -> bool:
        """Whether the next version of a chain should be stored in full.

        At least ``delta_snapshot_every`` deltas apart, and only once the deltas since
        the last full value weigh as much as it does: full copies then take at most as
        much space as the appended data (linear growth), and a read joins at most about
        twice the value's size. A hard cap of 16x that many deltas bounds the row count
        of a read when small items are appended to a huge list.
        """
        if chain.depth + 1 >= 16 * self.delta_snapshot_every:
            return True
        return (
            chain.depth + 1 >= self.delta_snapshot_every
            and chain.delta_bytes >= chain.root_bytes
        )

    def _prepare_put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> _PreparedPut:
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        ns = conf.get("checkpoint_ns") or ""
        parent = conf.get("checkpoint_id")
        if not (
            len(thread_id) <= schema.MAX_THREAD_ID and len(ns) <= schema.MAX_NS
            and plain_ascii(thread_id, ns, checkpoint["id"], parent or "")
        ):
            _check_length("thread_id", thread_id, schema.MAX_THREAD_ID)
            _check_length("checkpoint_ns", ns, schema.MAX_NS)
            check_text("checkpoint_id", checkpoint["id"])
            check_text("parent checkpoint_id", parent)
        values = checkpoint["channel_values"]
        versions = checkpoint["channel_versions"]
        plain: dict[str, Any] = {}
        encoded: dict[str, list[Any]] = {}
        blob_rows: list[dict[str, Any]] = []
        updates: dict[tuple[str, str, str], _ChainState | None] = {}
        remember: dict[tuple[str, str, str], tuple[str, list[Any] | None]] = {}
        in_blobs: list[str] = []
        inline_max = self.inline_max_bytes
        if self._chains:  # a list channel emptied forgets its chain (none known: none to forget)
            for channel in new_versions:
                if channel not in values:  # the channel was emptied: nothing to store
                    updates[(thread_id, ns, channel)] = None
        for channel, value in values.items():
            cls = value.__class__
            if (
                cls in _PLAIN_TYPES or (cls is str and len(value) <= inline_max)
                or self._is_plain(value)  # subclasses of those types
            ):
                plain[channel] = value
                continue
            key = (thread_id, ns, channel)
            ver = str(new_versions.get(channel, versions.get(channel)))
            if channel in new_versions:
                _check_length("channel name", channel, schema.MAX_CHANNEL)
                row, inline, state = self._encode_channel(thread_id, ns, channel, ver, value)
                updates[key] = state
            else:
                # Unchanged: reuse how it was stored; else store it again (inline, or a
                # blob row that the insert ignores when it is already there).
                with self._chains_lock:
                    known = self._stored.get(key)
                if known is not None and known[0] == ver:
                    if known[1] is not None:
                        encoded[channel] = known[1]
                    else:
                        in_blobs.append(channel)
                    continue
                type_, blob = self.serde.dumps_typed(value)
                inline = [type_, blob] if len(blob) <= self.inline_max_bytes else None
                row = None if inline else self._blob_row(
                    thread_id, ns, channel, ver, *self._pack(type_, blob))
            if row is not None:
                blob_rows.append(row)
                in_blobs.append(channel)
            else:
                encoded[channel] = inline  # type: ignore[assignment]
            remember[key] = (ver, inline)
        chunk_rows: list[dict[str, Any]] = []
        for blob_row in blob_rows:
            chunk_rows += self._chunk(blob_row, "blob", "b", blob_row["version"],
                                      blob_row["channel"], 0)
        stored = dict(checkpoint)
        # Not stored twice (schema v4): the id is the row's checkpoint_id column and is
        # read back from it; no small encoded values, no rg_inline key. 50 bytes a row.
        del stored["id"]
        stored["channel_values"] = plain
        if encoded:
            stored[INLINE_KEY] = encoded
        stored[BLOBS_KEY] = in_blobs
        # The record itself is not compressed: at 300-900 bytes deflating it cost about
        # 20 us per put (a third of _prepare_put), which a tiny state's invoke cannot
        # afford against SqliteSaver; the values inside it are small by definition.
        type_, data = self.serde.dumps_typed(stored)
        md = stored_metadata(config, metadata)  # refuses NUL in top-level strings
        md_json = _metadata_json(md)  # once, no re-encoding
        if "\\u0000" in md_json or "\\ud" in md_json:
            check_metadata(config, metadata, md_json)  # nested NUL or lone surrogates
        if len(md_json) > MAX_METADATA_BYTES:
            raise MetadataTooLargeError(
                f"the metadata of checkpoint {checkpoint['id']!r} in thread {thread_id!r} is "
                f"{len(md_json):,} bytes as JSON; the saver stores at most "
                f"{MAX_METADATA_BYTES:,} (metadata is kept whole to be filtered on): keep "
                "large data in the graph state, whose values are stored in chunks"
            )
        run_id = md.get("run_id")
        return _PreparedPut(
            remember=remember,
            checkpoint_row={
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint["id"],
                "parent_checkpoint_id": parent,
                "run_id": str(run_id)[: schema.MAX_THREAD_ID] if run_id else None,
                "created_at": _created_at(checkpoint.get("ts")),
                "type": type_,
                "checkpoint": data,
                "metadata": md_json,
            },
            blob_rows=blob_rows,
            chunk_rows=chunk_rows,
            chain_updates=updates,
        )

    def _prepare_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> StaticCalls:
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        ns = conf.get("checkpoint_ns") or ""
        checkpoint_id = conf["checkpoint_id"]
        checked = (
            len(thread_id) <= schema.MAX_THREAD_ID and len(ns) <= schema.MAX_NS
            and len(task_id) <= schema.MAX_TASK_ID
            and plain_ascii(
                thread_id, ns, task_id, checkpoint_id, task_path, *[w[0] for w in writes]
            )
        )
        if not checked:
            _check_length("thread_id", thread_id, schema.MAX_THREAD_ID)
            _check_length("checkpoint_ns", ns, schema.MAX_NS)
            _check_length("task_id", task_id, schema.MAX_TASK_ID)
            check_text("checkpoint_id", checkpoint_id)
            check_text("task_path", task_path)
        rows = []
        chunk_rows: list[dict[str, Any]] = []
        # Small values (a task's usual writes) skip the compression and chunking calls
        # by length alone: below compress_min_bytes neither applies.
        dumps = self.serde.dumps_typed
        chunk_bytes = self.chunk_bytes
        small = self.compress_min_bytes if self.compress_min_bytes is not None else chunk_bytes
        small = min(small, chunk_bytes)
        # Special channels (error, interrupt, ...) are replaced; regular writes are
        # insert-or-ignore so replaying a task's writes is idempotent. Their chunks
        # follow them (a replaced special write may leave chunks past its new count:
        # its header's count and checksum say which belong to it).
        special = True  # every channel is special
        for idx, (channel, value) in enumerate(writes):
            if not checked:
                check_text("channel name", channel)
            type_, blob = dumps(value)
            row_idx = WRITES_IDX_MAP.get(channel)
            if row_idx is None:
                row_idx, special = idx, False
            row = {
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint_id,
                "task_id": task_id,
                "task_path": task_path,
                "idx": row_idx,
                "channel": channel,
                "type": type_,
                "blob": blob,
            }
            if blob and len(blob) >= small:  # below neither compression nor chunks apply
                row["type"], row["blob"] = type_, blob = self._pack(type_, blob)
                if len(blob) > chunk_bytes:
                    chunk_rows += self._chunk(row, "blob", "w", checkpoint_id, task_id, row_idx)
            rows.append(row)
        calls: StaticCalls = []
        if chunk_rows:
            calls.append(
                (self._st.upsert_chunk if special else self._st.insert_chunk, chunk_rows)
            )
        if rows:
            calls.append((self._st.upsert_write if special else self._st.insert_write, rows))
        return calls

    def _may_defer(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]]) -> bool:
        """Whether a task's writes may ride in the next transaction instead of their own.

        Only under LangGraph's ``async`` durability (its default), which already lets a
        crash lose the last step; ``sync`` and ``exit`` runs and direct calls commit
        before returning. Errors, interrupts and other special writes never wait, and
        they take any waiting writes with them.
        """
        if self.storage.writes_flush_delay <= 0:
            return False
        conf = config["configurable"]
        durability = conf.get(_DURABILITY_KEY)
        if durability is None:
            if _RUNTIME_KEY not in conf:
                return False  # a direct call, not a LangGraph run
            durability = "async"  # LangGraph's default when the run names none
        if durability != "async":
            return False
        return not any(channel in WRITES_IDX_MAP for channel, _ in writes)

    def _writes_calls(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> StaticCalls:
        return self._prepare_writes(config, writes, task_id, task_path)

    # --- operations (generators driven by the sync or async runner) -----------------

    def _put_calls(self, prepared: _PreparedPut) -> StaticCalls:
        calls = [(self._st.insert_chunk, prepared.chunk_rows)] if prepared.chunk_rows else []
        if prepared.blob_rows:
            calls.append((self._st.insert_blob, prepared.blob_rows))
        calls.append((self._st.upsert_checkpoint, [prepared.checkpoint_row]))
        return calls

    def _begin_put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> tuple[StaticCalls, Callable[[], None], RunnableConfig]:
        """What ``put`` commits, what to remember once it did, and the config it returns."""
        prepared = self._prepare_put(config, checkpoint, metadata, new_versions)
        row = prepared.checkpoint_row
        stored: RunnableConfig = {
            "configurable": {
                "thread_id": row["thread_id"],
                "checkpoint_ns": row["checkpoint_ns"],
                "checkpoint_id": row["checkpoint_id"],
            }
        }
        return (
            self._put_calls(prepared),
            lambda: self._chains_commit(prepared.chain_updates, prepared.remember),
            stored,
        )

    def _get_tuple_op(self, config: RunnableConfig) -> Op[CheckpointTuple | None]:
        conf = config["configurable"]
        params = {"thread_id": str(conf["thread_id"]), "checkpoint_ns": conf.get("checkpoint_ns") or ""}
        checkpoint_id = conf.get("checkpoint_id")  # get_checkpoint_id, once (a ChainMap)
        if not plain_ascii(params["thread_id"], params["checkpoint_ns"], checkpoint_id or ""):
            check_text("thread_id", params["thread_id"])
            check_text("checkpoint_ns", params["checkpoint_ns"])
            check_text("checkpoint_id", checkpoint_id)
        if checkpoint_id:
            rows = yield query(schema.SELECT_CHECKPOINT, {**params, "checkpoint_id": checkpoint_id})
        else:
            rows = yield query(schema.SELECT_LATEST_CHECKPOINT, params)
        if not rows:
            return None
        loaded = yield from self._load_tuples_op(rows, resume=True)
        return loaded[0]

    def _list_stmt(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> sa.Select:
        c = schema.checkpoints.c
        stmt = sa.select(
            c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id,
            c.type, c.checkpoint, c.metadata,
        )
        if config:
            conf = config["configurable"]
            check_text("thread_id", conf.get("thread_id"))
            check_text("checkpoint_ns", conf.get("checkpoint_ns"))
            check_text("checkpoint_id", get_checkpoint_id(config))
            if conf.get("thread_id") is not None:
                stmt = stmt.where(c.thread_id == str(conf["thread_id"]))
            if conf.get("checkpoint_ns") is not None:
                stmt = stmt.where(c.checkpoint_ns == conf["checkpoint_ns"])
            if checkpoint_id := get_checkpoint_id(config):
                stmt = stmt.where(c.checkpoint_id == checkpoint_id)
        for key, value in (filter or {}).items():
            _check_json_text("metadata filter", {key: value})
            stmt = stmt.where(schema.metadata_filter(self.dialect, key, value))
        if before is not None and (before_id := get_checkpoint_id(before)):
            check_text("before checkpoint_id", before_id)
            stmt = stmt.where(c.checkpoint_id < before_id)
        stmt = stmt.order_by(c.checkpoint_id.desc())
        if limit is not None:
            stmt = stmt.limit(int(limit))
        return stmt

    def _load_tuples_op(
        self, rows: Sequence[Any], resume: bool = False, skip_corrupt: bool = False
    ) -> Op[list[CheckpointTuple]]:
        """Checkpoint rows -> tuples with values and pending writes, 2 queries per namespace
        (plus one per chunk of a large value).

        ``resume`` (``get_tuple``: a run about to continue from this checkpoint): remember
        the list values returned as the ends of their delta chains, so the run's next
        version of such a list - the same item objects plus new ones - is stored as a
        delta instead of a full copy.

        A checkpoint whose data is unreadable or missing (a blob row, a chunk, a delta
        of its chain) raises ``CheckpointCorruptError``; with ``skip_corrupt`` (``list``)
        it is left out instead, logged and recorded (``_skip_corrupt``), and the others
        are returned.
        """
        resumed: dict[tuple[str, str, str], _ChainState] = {}
        skipped: list[CheckpointCorruptError] = []
        decoded = []
        groups: dict[tuple[str, str], tuple[set[tuple[str, str]], list[str]]] = {}
        for row in rows:
            try:
                checkpoint = self._loads(
                    row.type, row.checkpoint, row.thread_id, row.checkpoint_ns,
                    row.checkpoint_id, "<checkpoint record>",
                )
                versions = checkpoint.get("channel_versions", {})
                listed = BLOBS_KEY in checkpoint
                in_blobs = self._blob_channels(row, checkpoint)
            except CheckpointCorruptError as exc:
                if not skip_corrupt:
                    raise
                skipped.append(exc)  # reported once the reads are done (a retry re-runs them)
                continue
            pairs, ids = groups.setdefault((row.thread_id, row.checkpoint_ns), (set(), []))
            for channel in in_blobs:
                pairs.add((channel, str(versions[channel])))
            ids.append(row.checkpoint_id)
            decoded.append((row, checkpoint, in_blobs, listed))
        chain_rows: dict[tuple[str, str], dict[tuple[str, str], Any]] = {}
        write_rows: dict[tuple[str, str, str], list[Any]] = {}
        for (thread_id, ns), (pairs, ids) in groups.items():
            found = chain_rows.setdefault((thread_id, ns), {})
            for part in chunks(sorted(pairs), 50):
                params: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ns}
                for i, (channel, version) in enumerate(part):
                    params[f"c{i}"], params[f"v{i}"] = channel, version
                got = yield query(schema.select_blobs(len(part)), params)
                for b in got:
                    found[(b.channel, b.version)] = b
            # Deltas need their chain: every row of the same root below their depth,
            # found in the primary key's range from the root's version to the deepest
            # one wanted; a chain still incomplete is read again without the range.
            chains: dict[tuple[str, str], tuple[int, str]] = {}
            for b in list(found.values()):
                if b.base_version is not None:
                    key = (b.channel, b.root_version)
                    if key not in chains or b.depth > chains[key][0]:
                        chains[key] = (b.depth, b.version)
            for bounded in (True, False):
                for wanted in chunks(sorted(chains.items()), 50):
                    params = {"thread_id": thread_id, "checkpoint_ns": ns}
                    for i, ((channel, root), (depth, end)) in enumerate(wanted):
                        params[f"c{i}"], params[f"r{i}"], params[f"d{i}"] = channel, root, depth
                        if bounded:
                            params[f"t{i}"] = end
                    got = yield query(schema.select_chain_members(len(wanted), bounded), params)
                    for b in got:
                        found[(b.channel, b.version)] = b
                if bounded:
                    broken = _broken_chains(found)
                    chains = {k: v for k, v in chains.items() if k in broken}
            for key, b in list(found.items()):
                if b.type.startswith(CHUNKED_PREFIX):
                    type_, data = yield from self._read_chunks_op(
                        thread_id, ns, "b", b.version, b.channel, 0, b.type, b.blob)
                    found[key] = _BlobRow(**{**b._asdict(), "type": type_, "blob": data})
            for id_part in chunks(ids):
                if len(id_part) == 1:
                    got = yield query(
                        schema.SELECT_WRITES_ONE,
                        {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": id_part[0]},
                    )
                else:
                    got = yield query(
                        schema.SELECT_WRITES,
                        {"thread_id": thread_id, "checkpoint_ns": ns,
                         "checkpoint_ids": list(id_part)},
                    )
                for w in got:
                    if w.type.startswith(CHUNKED_PREFIX):
                        type_, data = yield from self._read_chunks_op(
                            thread_id, ns, "w", w.checkpoint_id, w.task_id, w.idx, w.type, w.blob)
                        w = _WriteRow(**{**w._asdict(), "type": type_, "blob": data})
                    write_rows.setdefault((thread_id, ns, w.checkpoint_id), []).append(w)
        out = []
        for row, checkpoint, in_blobs, listed in decoded:
            try:
                out.append(self._make_tuple(
                    row, checkpoint, in_blobs, listed,
                    chain_rows[(row.thread_id, row.checkpoint_ns)],
                    write_rows.get((row.thread_id, row.checkpoint_ns, row.checkpoint_id), []),
                    resumed if resume else None,
                ))
            except CheckpointCorruptError as exc:
                if not skip_corrupt:
                    raise
                skipped.append(exc)
        for corrupt in skipped:
            self._skip_corrupt(corrupt)
        if resumed:
            self._chains_commit(resumed)  # type: ignore[arg-type]
        return out

    def _make_tuple(
        self, row: Any, checkpoint: dict[str, Any], in_blobs: list[str], listed: bool,
        found: dict[tuple[str, str], Any], writes: list[Any],
        resumed: dict[tuple[str, str, str], _ChainState] | None,
    ) -> CheckpointTuple:
        """One checkpoint's tuple from its decoded record, blob rows and write rows."""
        values = dict(checkpoint.get("channel_values") or {})
        versions = checkpoint.get("channel_versions", {})
        for channel in in_blobs:
            version = str(versions[channel])
            blob = found.get((channel, version))
            if blob is None:
                if not listed:
                    continue  # before schema v2 a channel with no row had no value
                raise CheckpointCorruptError(
                    thread_id=row.thread_id, checkpoint_ns=row.checkpoint_ns,
                    checkpoint_id=row.checkpoint_id, channel=channel,
                    reason=f"its value (blob version {version!r}) is missing",
                )
            if blob.type == "empty":
                continue
            values[channel] = value = self._resolve_blob(row, channel, blob, found)
            if resumed is not None and type(value) is list and self.delta_snapshot_every:
                resumed[(row.thread_id, row.checkpoint_ns, channel)] = self._chain_of(
                    channel, blob, found, value)
        checkpoint["channel_values"] = values
        pending = sorted(writes, key=lambda w: (w.task_path, w.task_id, w.idx))
        conf = {"thread_id": row.thread_id, "checkpoint_ns": row.checkpoint_ns}
        return CheckpointTuple(
            config={"configurable": {**conf, "checkpoint_id": row.checkpoint_id}},
            checkpoint=checkpoint,  # type: ignore[arg-type]
            metadata=row.metadata,
            parent_config=(
                {"configurable": {**conf, "checkpoint_id": row.parent_checkpoint_id}}
                if row.parent_checkpoint_id
                else None
            ),
            pending_writes=[
                (
                    w.task_id,
                    w.channel,
                    self._loads(
                        w.type, w.blob, row.thread_id, row.checkpoint_ns,
                        row.checkpoint_id, w.channel,
                    ),
                )
                for w in pending
            ],
        )

    def _skip_corrupt(self, exc: CheckpointCorruptError) -> None:
        """``list`` leaves a corrupt checkpoint out: log it and keep it for callers."""
        logger.warning("list() skipped a corrupt checkpoint: %s", exc)
        self.corrupt_skipped.append(exc)
        self.corrupt_skipped_count += 1

    def _blob_channels(self, row: Any, checkpoint: dict[str, Any]) -> list[str]:
        """Decode the values stored in the checkpoint row into ``channel_values``; return
        the channels whose values are blob rows.

        Rows written before schema version 2 list no blob channels: every channel with
        a version that is not in the row may be a blob (or an "empty" marker row).
        """
        in_blobs = self._blob_names(checkpoint)
        checkpoint.pop(BLOBS_KEY, None)
        checkpoint.setdefault("id", row.checkpoint_id)  # records before v4 hold it
        values = checkpoint.get("channel_values") or {}
        encoded = checkpoint.pop(INLINE_KEY, None)
        if encoded:
            values = dict(values)
            for channel, (type_, data) in encoded.items():
                values[channel] = self._loads(
                    type_, data, row.thread_id, row.checkpoint_ns, row.checkpoint_id, channel
                )
        checkpoint["channel_values"] = values
        return in_blobs

    @staticmethod
    def _blob_names(checkpoint: dict[str, Any]) -> list[str]:
        in_blobs = checkpoint.get(BLOBS_KEY)
        if in_blobs is not None:
            return list(in_blobs)
        values = checkpoint.get("channel_values") or {}
        return [c for c in checkpoint.get("channel_versions", {}) if c not in values]

    def _loads(
        self, type_: str, data: bytes | None, thread_id: str, ns: str,
        checkpoint_id: str | None, channel: str,
    ) -> Any:
        if type_ == _BROKEN:
            raise CheckpointCorruptError(
                thread_id=thread_id, checkpoint_ns=ns, checkpoint_id=checkpoint_id,
                channel=channel, reason=str(data),
            )
        try:
            return self._decode(type_, data)
        except Exception as exc:  # any decoder error means the bytes are unusable
            raise CheckpointCorruptError(
                thread_id=thread_id, checkpoint_ns=ns, checkpoint_id=checkpoint_id,
                channel=channel, reason=f"{type(exc).__name__}: {exc}",
            ) from exc

    @staticmethod
    def _chain_of(
        channel: str, blob: Any, found: dict[tuple[str, str], Any], value: list[Any]
    ) -> _ChainState:
        """The chain state of a list value just read from ``blob`` (and its chain rows)."""
        root = found.get((channel, blob.root_version), blob)
        deltas = sum(
            len(b.blob or b"") for (c, _), b in found.items()
            if c == channel and b.root_version == blob.root_version and 0 < b.depth <= blob.depth
        )
        return _ChainState(blob.version, blob.root_version, blob.depth, list(value),
                           len(root.blob or b""), deltas)

    def _resolve_blob(
        self, row: Any, channel: str, blob: Any, found: dict[tuple[str, str], Any]
    ) -> Any:
        """A channel's value: the blob itself, or a delta chain replayed onto its root."""
        where = (row.thread_id, row.checkpoint_ns, row.checkpoint_id, channel)
        if blob.base_version is None:
            return self._loads(blob.type, blob.blob, *where)
        path = []
        seen = set()
        cursor = blob
        while cursor.base_version is not None:
            path.append(cursor)
            seen.add(cursor.version)
            base = found.get((channel, cursor.base_version))
            if base is None or base.version in seen:
                raise CheckpointCorruptError(
                    thread_id=row.thread_id, checkpoint_ns=row.checkpoint_ns,
                    checkpoint_id=row.checkpoint_id, channel=channel,
                    reason=f"delta base version {cursor.base_version!r} of version "
                    f"{cursor.version!r} is missing",
                )
            cursor = base
        value = self._loads(cursor.type, cursor.blob, *where)
        if not isinstance(value, list):
            raise CheckpointCorruptError(
                thread_id=row.thread_id, checkpoint_ns=row.checkpoint_ns,
                checkpoint_id=row.checkpoint_id, channel=channel,
                reason=f"delta root version {cursor.version!r} is not a list",
            )
        for part in reversed(path):
            suffix = self._loads(part.type, part.blob, *where)
            if not isinstance(suffix, list):
                raise CheckpointCorruptError(
                    thread_id=row.thread_id, checkpoint_ns=row.checkpoint_ns,
                    checkpoint_id=row.checkpoint_id, channel=channel,
                    reason=f"delta version {part.version!r} is not a list",
                )
            value.extend(suffix)
            if part.item_count is not None and len(value) != part.item_count:
                raise CheckpointCorruptError(
                    thread_id=row.thread_id, checkpoint_ns=row.checkpoint_ns,
                    checkpoint_id=row.checkpoint_id, channel=channel,
                    reason=f"delta chain to version {part.version!r} rebuilds "
                    f"{len(value)} items, expected {part.item_count}",
                )
        return value

    # --- deletion, copy, prune ----------------------------------------------------------

    def _delete_threads_op(self, thread_ids: Sequence[str]) -> Op[None]:
        for thread_id in thread_ids:
            check_text("thread_id", thread_id)
        for part in chunks(list(thread_ids)):
            for stmt in schema.DELETE_THREAD:
                yield execute(stmt, {"thread_ids": list(part)})

    def _copy_thread_op(self, source: str, target: str) -> Op[None]:
        check_text("thread_id", source)
        _check_length("thread_id", target, schema.MAX_THREAD_ID)
        for stmt in self._st.copy_rows:
            yield execute(stmt, {"source": source, "target": target})

    def _delete_checkpoints_op(self, thread_id: str, ns: str, ids: Sequence[str]) -> Op[None]:
        """Delete checkpoints with their writes, then blobs nothing references any more."""
        for part in chunks(list(ids)):
            params = {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_ids": list(part)}
            yield execute(schema.DELETE_WRITE_CHUNKS_BY_CHECKPOINT, params)
            yield execute(schema.DELETE_WRITES_BY_CHECKPOINT, params)
            yield execute(schema.DELETE_CHECKPOINTS_BY_ID, params)
            yield execute(
                schema.CLEAR_DANGLING_PARENTS,
                {"b_thread_id": thread_id, "b_checkpoint_ns": ns, "checkpoint_ids": list(part)},
            )
        yield from self._collect_blobs_op(thread_id, ns)

    def _collect_blobs_op(self, thread_id: str, ns: str) -> Op[int]:
        """Mark and sweep one namespace's blobs: keep what checkpoints reference and the
        delta bases those depend on, delete the rest. Returns rows deleted."""
        params = {"thread_id": thread_id, "checkpoint_ns": ns}
        refs = yield query(schema.SELECT_NS_CHECKPOINT_REFS, params)
        keep: set[tuple[str, str]] = set()
        for r in refs:
            try:
                checkpoint = self._decode(r.type, r.checkpoint)
            except Exception:
                return 0  # can't tell what an unreadable checkpoint needs: keep all
            versions = checkpoint.get("channel_versions", {})
            for channel in self._blob_names(checkpoint):
                keep.add((channel, str(versions[channel])))
        index = yield query(schema.SELECT_NS_BLOB_INDEX, params)
        base_of = {(b.channel, b.version): b.base_version for b in index}
        stack = [k for k in keep if k in base_of]
        while stack:
            channel, version = stack.pop()
            base = base_of.get((channel, version))
            if base is not None and (channel, base) not in keep:
                keep.add((channel, base))
                stack.append((channel, base))
        garbage: dict[str, list[str]] = {}
        for key in base_of:
            if key not in keep:
                garbage.setdefault(key[0], []).append(key[1])
        deleted = 0
        for channel, versions in garbage.items():
            for part in chunks(versions):
                by_version = {**params, "channel": channel, "versions": list(part)}
                yield execute(schema.DELETE_BLOB_CHUNKS_BY_VERSION, by_version)
                yield execute(schema.DELETE_BLOBS_BY_VERSION, by_version)
                deleted += len(part)
        return deleted

    def _delete_for_runs_op(self, run_ids: Sequence[str], touched: set[str]) -> Op[None]:
        """Delete the runs' checkpoints; adds their threads to ``touched``.

        Into a set the caller keeps because a retried transaction (a lost connection, see
        ``retry.py``) may find nothing left to delete when its first run did commit, yet the
        chain cache of those threads must still be forgotten.
        """
        for run_id in run_ids:
            check_text("run_id", run_id)
        found = yield query(schema.SELECT_RUN_CHECKPOINTS, {"run_ids": list(run_ids)})
        groups: dict[tuple[str, str], list[str]] = {}
        for r in found:
            groups.setdefault((r.thread_id, r.checkpoint_ns), []).append(r.checkpoint_id)
        touched.update(t for t, _ in groups)
        for (thread_id, ns), ids in groups.items():
            yield from self._delete_checkpoints_op(thread_id, ns, ids)

    def _keep_latest_op(self, thread_id: str) -> Op[int]:
        """Keep the newest checkpoint of each namespace (and what it needs); returns the
        number of checkpoints deleted."""
        heads = yield query(schema.SELECT_THREAD_HEADS, {"thread_id": thread_id})
        for head in heads:
            md = yield query(
                schema.SELECT_HEAD_METADATA,
                {"thread_id": thread_id, "checkpoint_ns": head.checkpoint_ns,
                 "checkpoint_id": head.checkpoint_id},
            )
            if md and isinstance(md[0].metadata, dict) and (
                "counters_since_delta_snapshot" in md[0].metadata
            ):
                raise NotImplementedError(
                    f"keep_latest can't prune thread {thread_id!r}: it uses a DeltaChannel, "
                    "whose latest value is rebuilt from older checkpoints; use "
                    "strategy='delete' or leave the thread unpruned"
                )
        removed = 0
        for head in heads:
            ns = head.checkpoint_ns
            ids = yield query(
                schema.SELECT_NS_CHECKPOINT_IDS, {"thread_id": thread_id, "checkpoint_ns": ns}
            )
            doomed = [r.checkpoint_id for r in ids if r.checkpoint_id != head.checkpoint_id]
            if doomed:
                yield from self._delete_checkpoints_op(thread_id, ns, doomed)
                removed += len(doomed)
        return removed

    def _list_pages(self, rows: Sequence[Any]) -> Iterator[Callable[[], Op[list[CheckpointTuple]]]]:
        """``list``'s reads after the first: one transaction per page of checkpoint rows."""
        for page in chunks(rows, _LIST_PAGE):
            yield functools.partial(self._load_tuples_op, page, skip_corrupt=True)

    def _prune_plan(
        self, thread_ids: Sequence[str], strategy: str
    ) -> tuple[list[str], list[Callable[[], Op[Any]]]]:
        """The threads ``prune`` touches and its transactions: one for ``delete``, one per
        thread for ``keep_latest``."""
        ids = self._check_prune_args(thread_ids, strategy)
        if not ids:
            return ids, []
        if strategy == "delete":
            return ids, [functools.partial(self._delete_threads_op, ids)]
        return ids, [functools.partial(self._keep_latest_op, thread_id) for thread_id in ids]

    @staticmethod
    def _check_prune_args(thread_ids: Sequence[str], strategy: str) -> list[str]:
        if isinstance(thread_ids, str):
            raise TypeError("thread_ids must be a sequence of thread IDs, not a str")
        if strategy not in PRUNE_STRATEGIES:
            raise ValueError(
                f"unknown prune strategy {strategy!r}: use 'keep_latest' or 'delete'"
            )
        ids = [str(t) for t in thread_ids]
        for thread_id in ids:
            check_text("thread_id", thread_id)
        return ids


def drive(conn: sa.Connection, op: Op[T]) -> T:
    """Run an operation on a sync connection."""
    try:
        call = next(op)
        while True:
            result = conn.execute(call.stmt, call.params)
            call = op.send(result.all() if call.fetch else None)
    except StopIteration as stop:
        return stop.value


async def adrive(conn: Any, op: Op[T]) -> T:
    """Run an operation on an ``AsyncConnection``."""
    try:
        call = next(op)
        while True:
            result = await conn.execute(call.stmt, call.params)
            call = op.send(result.all() if call.fetch else None)
    except StopIteration as stop:
        return stop.value
