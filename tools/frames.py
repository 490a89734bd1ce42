"""Loading data files and inferring column roles — the shared ground of every data tool.

pandas does the parsing (CSV and Parquet); this module finds the date and text columns, and
:mod:`relaygraph.tools.roles` decides what each column means, so tools work on any file a user
points at, not just the sample.
"""

from __future__ import annotations

import codecs
import csv
import logging
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pandas as pd
from relaygraph.tools.declared import ATTRS_KEY, check_columns
from relaygraph.tools.result import ToolResult
from relaygraph.tools.workspace import Workspace


class DataFileError(ValueError):
    """A data file that cannot be analysed as it is: empty, only a header, binary, not UTF-8 text,
    or not parseable. The message names the file, the problem and how to fix it."""


logger = logging.getLogger(__name__)


PARQUET_SUFFIXES = (".parquet", ".pq")
#: Separators a CSV file may use, comma first (it wins whenever it splits the file consistently).
SEPARATORS = (",", ";", "\t", "|")
SEPARATOR_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_SNIFF_BYTES = 64 * 1024
_DECODE_CHUNK = 1 << 20
#: Signatures of files people export by mistake, with what to do instead.
_MAGIC = (
    (b"PAR1", "a Parquet file; give it a .parquet name"),
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook?); export the sheet as CSV"),
    (b"\xd0\xcf\x11\xe0", "an old Excel/Office file; export the sheet as CSV"),
    (b"\x1f\x8b", "gzip-compressed; decompress it first (gunzip)"),
    (b"%PDF", "a PDF document, not a table; export the data as CSV"),
    (b"SQLite format 3", "a SQLite database; export a table as CSV"),
)


def check_data_file(path: str | Path) -> None:
    """Raise :class:`DataFileError` unless ``path`` is a CSV (UTF-8 text) or Parquet file with a
    header and at least one data row — checked before any run starts, so a bad file is one clear
    sentence instead of a run that fails halfway. Reads the file once (CSV text is decoded in
    chunks, only the first rows are parsed); a parse error further down is reported by
    :func:`read_frame` when the file is loaded."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Data file not found: {path}")
    if path.stat().st_size == 0:
        raise DataFileError(f"Data file {path} is empty (0 bytes); export the data with a header row and rows.")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        _check_parquet(path)
    else:
        _check_csv_text(path)
        _check_csv_rows(path)


def _check_parquet(path: Path) -> None:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a corrupt file
        raise DataFileError(f"Data file {path} is not a readable Parquet file ({exc}); "
                            "write it again with pandas/pyarrow or pass a CSV file.") from None
    if meta.num_columns == 0 or meta.num_rows == 0:
        raise DataFileError(f"Data file {path} has {'no columns' if meta.num_columns == 0 else 'columns but no rows'}; "
                            "there is nothing to analyse.")


def _check_csv_text(path: Path) -> None:
    with path.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
        for magic, what in _MAGIC:
            if head.startswith(magic):
                raise DataFileError(f"Data file {path} is binary, not CSV text: {what}.")
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise DataFileError(f"Data file {path} is UTF-16 text; save it as UTF-8 CSV.")
        nul = head.find(b"\x00")
        if nul >= 0:
            raise DataFileError(f"Data file {path} is binary, not CSV text (a NUL byte at offset {nul}); "
                                "export the data as a UTF-8 CSV file.")
        fh.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        offset, blank = 0, True
        while chunk := fh.read(_DECODE_CHUNK):
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                where = offset + exc.start
                raise DataFileError(
                    f"Data file {path} is not UTF-8 text: byte 0x{chunk[exc.start]:02x} at offset {where} "
                    f"(line {_line_of(path, where)}); save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)."
                ) from None
            blank = blank and not text.strip()
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise DataFileError(f"Data file {path} is not UTF-8 text: it ends inside a character "
                                "(truncated?); save it again as UTF-8.") from None
    if blank:
        raise DataFileError(f"Data file {path} is empty (only blank lines); export the data with a header row.")


def _line_of(path: Path, offset: int) -> int:
    with path.open("rb") as fh:
        return fh.read(offset).count(b"\n") + 1


def sniff_separator(path: str | Path) -> str:
    """The separator of a CSV file, of :data:`SEPARATORS`: the first that splits the header into
    two or more columns and gives (nearly) every one of the first rows the header's width.
    Comma when none does (a one-column file). A ``;``-separated export read with commas is one
    text column and fails late with a misleading cause, so this is asked before every read."""
    with Path(path).open("rb") as fh:
        raw = fh.read(_SNIFF_BYTES)
        truncated = bool(fh.read(1))
    text = raw.decode("utf-8", errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    if truncated and len(lines) > 1:
        lines = lines[:-1]  # cut mid-line
    lines = lines[:200]
    if not lines:
        return ","
    for sep in SEPARATORS:
        try:
            widths = [len(row) for row in csv.reader(lines, delimiter=sep)]
        except csv.Error:
            continue
        header = widths[0]
        if header >= 2 and sum(w == header for w in widths) >= 0.9 * len(widths):
            return sep
    return ","


def separator_note(path: str | Path) -> str:
    """``"semicolon-separated"`` (etc.) for a CSV file that is not comma-separated, else empty:
    what a report says about how it read the user's file."""
    path = Path(path)
    if path.suffix.lower() in PARQUET_SUFFIXES or not path.is_file():
        return ""
    options = csv_options(path)
    if options["sep"] == ",":
        return ""
    decimals = " with decimal commas" if options.get("decimal") == "," else ""
    return f"{SEPARATOR_NAMES[options['sep']]}-separated CSV{decimals}"


#: A number written with a decimal comma: optional sign, digits (``.``-grouped or not), ``,`` decimals.
_DECIMAL_COMMA = re.compile(r"[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+),\d+")
#: An integer in ``.``-grouped thousands (``1.234``): German thousands, or a period decimal.
_GROUPED = re.compile(r"[+-]?\d{1,3}(?:\.\d{3})+")
_INTEGER = re.compile(r"[+-]?\d+")
_PERIOD_DECIMAL = re.compile(r"[+-]?\d*\.\d+")
#: Digits with dots (and perhaps a comma): what ``thousands="."`` would read as one number.
_DOTTED = re.compile(r"[+-]?[\d.]*\.[\d.,]*")
#: Rows of a file's head that decide whether it is written with decimal commas.
_DECIMAL_SAMPLE_ROWS = 2_000
_NEARLY_ALL = 0.9


def csv_options(path: str | Path) -> dict[str, Any]:
    """The options every ``pd.read_csv`` of a data file passes: its ``sep``
    (:func:`sniff_separator`) and, for a non-comma file whose numbers are written ``1,5`` /
    ``1.234,56``, ``decimal=","`` (and ``thousands="."`` when grouped thousands appear and no
    value in the file could be misread by it). One helper, so no read can forget them: a reader
    without them sees those measures as text. Cached per file version (path, mtime, size)."""
    path = Path(path)
    stat = path.stat()
    options = dict(_csv_options(str(path), stat.st_mtime_ns, stat.st_size))
    if "converters" in options:  # a fresh dict per read: pandas may keep what it is given
        options["converters"] = {c: decimal_comma_number for c in options["converters"]}
    return options


@lru_cache(maxsize=64)
def _csv_options(path: str, mtime_ns: int, size: int) -> tuple[tuple[str, Any], ...]:
    del mtime_ns, size  # the cache key: a rewritten file is sniffed again
    sep = sniff_separator(path)
    if sep == ",":  # a comma cannot also be the decimal mark
        return (("sep", sep),)
    try:
        head = pd.read_csv(path, sep=sep, dtype=str, nrows=_DECIMAL_SAMPLE_ROWS, keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError):
        return (("sep", sep),)  # the read itself reports what is wrong with the file
    decimal, grouped = _decimal_commas(head)
    if not decimal:
        return (("sep", sep),)
    if grouped and _thousands_unambiguous(path, sep):
        return (("sep", sep), ("decimal", ","), ("thousands", "."))
    if grouped:  # another column (dotted dates) forbids thousands=".": convert the number columns one by one
        return (("sep", sep), ("decimal", ","), ("converters", _decimal_comma_columns(head)))
    return (("sep", sep), ("decimal", ","))


def decimal_comma_number(text: str) -> float:
    """One value of a decimal-comma column as a number: ``1.087,20`` -> 1087.2, ``625,12`` ->
    625.12; empty or null -> NaN. The per-column read where ``thousands="."`` would misread
    another column (a ``dd.mm.yyyy`` date), so the amounts are not left as text."""
    value = str(text).strip() if text is not None else ""
    if _DECIMAL_COMMA.fullmatch(value) or _GROUPED.fullmatch(value) or _INTEGER.fullmatch(value):
        return float(value.replace(".", "").replace(",", "."))
    try:
        return float(value)
    except ValueError:
        return math.nan  # empty, a null marker (NA, null) or a stray word: missing, as pandas reads it


def _number_shapes(column: pd.Series) -> tuple[int, int, int, int, int, bool]:
    """How the non-empty values of a column (read as text) are written: (how many, decimal-comma
    numbers, ``.``-grouped integers, plain integers, period decimals, any decimal comma after a
    ``.`` group) — what both the file-wide and the per-column decimal-comma choice count."""
    values = [v.strip() for v in column.dropna().astype(str) if v.strip()]
    comma = [v for v in values if _DECIMAL_COMMA.fullmatch(v)]
    groups = sum(bool(_GROUPED.fullmatch(v)) for v in values)
    ints = sum(bool(_INTEGER.fullmatch(v)) for v in values)
    period = sum(bool(_PERIOD_DECIMAL.fullmatch(v)) and not _GROUPED.fullmatch(v) for v in values)
    return len(values), len(comma), groups, ints, period, any("." in v for v in comma)


def _is_decimal_comma_column(n: int, comma: int, groups: int, ints: int) -> bool:
    """Nearly every value a decimal-comma number, a ``.``-grouped or a plain integer, and at least
    one of the first two (a column of plain integers says nothing about the decimal mark)."""
    return bool(n) and bool(comma or groups) and comma + groups + ints >= _NEARLY_ALL * n


def _decimal_comma_columns(head: pd.DataFrame) -> tuple[str, ...]:
    """The columns of ``head`` (read as text) whose values nearly all are decimal-comma numbers,
    ``.``-grouped or not."""
    return tuple(str(name) for name in head.columns
                 if _is_decimal_comma_column(*_number_shapes(head[name])[:4]))


def _decimal_commas(head: pd.DataFrame) -> tuple[bool, bool]:
    """Whether ``head`` (read as text) has a column of decimal-comma numbers and none of period
    decimals (``decimal=","`` would turn those into text), and whether its number columns hold
    ``.``-grouped thousands."""
    found = grouped = False
    for name in head.columns:
        n, comma, groups, ints, period, dotted_comma = _number_shapes(head[name])
        if not n:
            continue
        if period and period + ints >= _NEARLY_ALL * n:
            return False, False  # a column of 1.5-style numbers: the file mixes both marks
        if _is_decimal_comma_column(n, comma, groups, ints):
            found = found or bool(comma)
            grouped = grouped or groups > 0 or dotted_comma
    return found, grouped


def _thousands_unambiguous(path: str, sep: str) -> bool:
    """No value in the whole file that ``thousands="."`` would misread: every dotted number is
    ``.``-grouped thousands (``1.5`` would read as 15, a date ``05.01.2024`` as 5012024)."""
    for chunk in pd.read_csv(path, sep=sep, dtype=str, chunksize=COUNT_CHUNK_ROWS):
        for name in chunk.columns:
            for value in chunk[name].dropna():
                text = str(value).strip()
                if _DOTTED.fullmatch(text) and not (_GROUPED.fullmatch(text) or _DECIMAL_COMMA.fullmatch(text)):
                    return False
    return True


def _one_column_hint(path: Path, columns: Any) -> str | None:
    """Why a file that reads as one column is probably mis-separated: its header holds a likely
    separator (a cell cannot name several columns at once), else None."""
    if len(columns) != 1:
        return None
    header = str(columns[0])
    found = next((s for s in SEPARATORS if s in header), None)
    if found is None:
        return None
    return (f"Data file {path} reads as 1 column, but its header contains {found!r}: is it "
            f"{SEPARATOR_NAMES[found]}-separated with rows of different widths? Save it as a comma-separated CSV "
            "with the same number of fields on every row.")


def _check_csv_rows(path: Path) -> None:
    try:
        head = pd.read_csv(path, nrows=1000, **csv_options(path))
    except pd.errors.EmptyDataError:
        raise DataFileError(f"Data file {path} has no header row or columns; nothing to analyse.") from None
    except pd.errors.ParserError as exc:
        raise DataFileError(f"Data file {path} cannot be parsed as CSV: {str(exc).strip()}") from None
    if head.empty:
        columns = ", ".join(map(str, head.columns))
        raise DataFileError(f"Data file {path} has a header ({columns}) but no data rows; nothing to analyse.")
    hint = _one_column_hint(path, head.columns)
    if hint:
        raise DataFileError(hint)


def read_frame(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file (the workspace has already vetted the path); a file that is
    empty, binary or not UTF-8 text raises :class:`DataFileError` naming it and the problem."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        try:
            frame = pd.read_parquet(path)
            frame.attrs.pop(ATTRS_KEY, None)  # pandas stores attrs in Parquet: a run's roles are its own
            texts = [str(c) for c in frame.columns if is_text(frame[c])]
            return with_date_orders(frame, _date_orders_of(frame, texts))
        except (OSError, ValueError) as exc:
            if path.is_file() and path.stat().st_size == 0:
                raise DataFileError(f"Data file {path.name} is empty (0 bytes).") from None
            raise DataFileError(f"Could not read {path.name} as Parquet: {exc}") from exc
    try:
        frame = pd.read_csv(path, low_memory=False, **csv_options(path))
    except pd.errors.EmptyDataError:
        raise DataFileError(f"Data file {path.name} is empty: no header row or columns.") from None
    except UnicodeDecodeError as exc:
        raise DataFileError(f"Data file {path.name} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
                            f"offset {exc.start}); save it as UTF-8.") from None
    except pd.errors.ParserError as exc:
        raise DataFileError(f"Could not parse {path.name} as CSV: {exc}") from exc
    hint = _one_column_hint(path, frame.columns)
    if hint:
        raise DataFileError(hint)
    return with_date_orders(frame, _date_orders_of(frame))  # the whole file: what its partitions read too


def load(workspace: Workspace, dataset: str, partition: str | None = None) -> tuple[pd.DataFrame, Path]:
    """Load a dataset, optionally one partition ``"k/n"`` (k from 1) of its rows. A partition is
    read alone (:func:`load_partition`): a run scaled down to partitions because the file is too
    large for memory must not hold the whole file in every task."""
    if partition:
        return load_partition(workspace, dataset, partition)
    path = workspace.resolve_input(dataset)
    frame = read_frame(path)
    if frame.empty:  # a header without rows (or a cleaned file left with none): nothing to work on
        raise DataFileError(f"Data file {path.name} has {'columns' if len(frame.columns) else 'no columns'} "
                            "but no data rows; nothing to analyse.")
    if workspace.roles:  # the run's declared column roles win over inference (tools/declared.py)
        check_columns(workspace.roles, frame.columns, path.name)
    frame.attrs[ATTRS_KEY] = dict(workspace.roles)
    return frame, path


#: Rows the partition reader counts per chunk (one column) and reads per row-group.
COUNT_CHUNK_ROWS = 100_000
#: At most this many rows, spread over the file, make the column choices of a partitioned report.
SAMPLE_ROWS = 10_000
#: A CSV sample is read in chunks of at least this many rows (a tenth of the sample when larger).
SAMPLE_CHUNK_ROWS = 1_000


@dataclass(frozen=True)
class RowSource:
    """A data file read a slice of rows at a time, never whole: what a run scaled down to
    partitions (too large for one pass) reads. ``read(lo, hi)`` returns rows ``lo..hi-1`` (as the
    whole file would number them: its index is ``lo..hi-1``), ``sample()`` a bounded sample of
    rows spread over the file. Both carry the run's declared roles (``attrs``), as :func:`load` does.
    """

    path: Path
    rows: int
    columns: tuple[str, ...]
    roles: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)  # a CSV's read options (:func:`csv_options`)
    date_orders: Mapping[str, DateOrder] = field(default_factory=dict)  # the whole file's (:func:`file_date_orders`)

    @property
    def parquet(self) -> bool:
        return self.path.suffix.lower() in PARQUET_SUFFIXES

    def _framed(self, frame: pd.DataFrame, index: Any) -> pd.DataFrame:
        frame.index = index
        frame.attrs[ATTRS_KEY] = dict(self.roles)
        return with_date_orders(frame, self.date_orders)

    def read(self, lo: int, hi: int, *, text: Sequence[str] = ()) -> pd.DataFrame:
        """Rows ``lo..hi-1``; the ``text`` columns read as text (CSV), so a label reads the same in
        every slice (a slice of codes ``1, 2`` without a null would read as ints, one with a null
        as floats ``1.0``)."""
        if self.parquet:
            table = _parquet_rows(self.path, lo, hi)
            frame = table.to_pandas()
            frame.attrs.pop(ATTRS_KEY, None)
        else:
            converted = self.options.get("converters") or {}
            dtype = {c: str for c in text if c in self.columns and c not in converted} or None
            frame = self._csv_rows(lambda start, n: slice(max(0, lo - start), max(0, min(hi, start + n) - start)),
                                   max(1, min(COUNT_CHUNK_ROWS, hi - lo)), hi, dtype)
        return self._framed(frame, pd.RangeIndex(lo, lo + len(frame)))

    def _csv_rows(self, pick: Any, chunk_rows: int, stop: int | None, dtype: Any = None) -> pd.DataFrame:
        """The rows ``pick(start, n)`` chooses of each chunk (``n`` rows from row ``start``), read in
        chunks of ``chunk_rows`` until row ``stop``. Chunks, not ``skiprows``: pandas numbers the
        rows ``skiprows`` skips by *line*, so a quoted field holding a newline shifts every row
        after it — the parser's chunks count records."""
        pieces, start = [], 0
        reader = pd.read_csv(self.path, chunksize=chunk_rows, low_memory=False, dtype=dtype, **self.options)
        for chunk in reader:
            piece = chunk.iloc[pick(start, len(chunk))]
            if len(piece):
                pieces.append(piece)
            start += len(chunk)
            if stop is not None and start >= stop:
                break
        getattr(reader, "close", lambda: None)()  # stopped early: the file is closed now
        if not pieces:
            return pd.read_csv(self.path, nrows=0, dtype=dtype, **self.options)
        return pd.concat(pieces) if len(pieces) > 1 else pieces[0]

    def sample(self, limit: int = SAMPLE_ROWS) -> pd.DataFrame:
        """At most ``limit`` rows: every ``ceil(rows / limit)``-th row, first row included."""
        step = max(1, math.ceil(self.rows / max(1, limit)))
        if self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            source, start, kept = pq.ParquetFile(self.path), 0, []
            for group in range(source.num_row_groups):
                table = source.read_row_group(group)
                first = (-start) % step
                kept.append(table.take(pa.array(range(first, table.num_rows, step), type=pa.int64())))
                start += table.num_rows
            frame = pa.concat_tables(kept).to_pandas() if kept else pd.DataFrame(columns=list(self.columns))
            frame.attrs.pop(ATTRS_KEY, None)
        else:
            frame = self._csv_rows(lambda start, n: slice((-start) % step, n, step),
                                   min(COUNT_CHUNK_ROWS, max(SAMPLE_CHUNK_ROWS, math.ceil(limit / 10))),
                                   (max(0, self.rows - 1) // step) * step + 1)  # up to the last row it keeps
        return self._framed(frame, pd.RangeIndex(0, len(frame) * step, step))


def _parquet_rows(path: Path, lo: int, hi: int) -> Any:
    """Rows ``lo..hi-1`` of a Parquet file, reading only the row groups they lie in."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source, start, pieces = pq.ParquetFile(path), 0, []
    for group in range(source.num_row_groups):
        size = source.metadata.row_group(group).num_rows
        if start < hi and start + size > lo:
            table = source.read_row_group(group)
            pieces.append(table.slice(max(0, lo - start), min(hi, start + size) - max(lo, start)))
        start += size
    return pa.concat_tables(pieces) if pieces else source.schema_arrow.empty_table()


def open_rows(workspace: Workspace, dataset: str) -> RowSource:
    """A dataset as a :class:`RowSource`: its columns and row count, found without holding it
    (CSV rows are counted one column at a time, in chunks; Parquet's are in its metadata)."""
    path = workspace.resolve_input(dataset)
    check_data_file(path)
    options: dict[str, Any] = {}
    if path.suffix.lower() in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(path)
        columns, rows = tuple(str(c) for c in meta.schema_arrow.names), int(meta.metadata.num_rows)
    else:
        try:
            options = csv_options(path)
            columns = tuple(str(c) for c in pd.read_csv(path, nrows=0, **options).columns)
            rows = sum(len(chunk) for chunk in pd.read_csv(path, usecols=[0], chunksize=COUNT_CHUNK_ROWS, **options))
        except pd.errors.ParserError as exc:
            raise DataFileError(f"Could not parse {path.name} as CSV: {exc}") from exc
    if not rows:
        raise DataFileError(f"Data file {path.name} has columns but no data rows; nothing to analyse.")
    if workspace.roles:
        check_columns(workspace.roles, columns, path.name)
    return RowSource(path, rows, columns, dict(workspace.roles), options, file_date_orders(path))


def partition_bounds(partition: str, rows: int) -> tuple[int, int]:
    """Rows ``lo..hi-1`` of partition k of n over ``rows`` rows: contiguous, disjoint slices that
    together cover them."""
    try:
        k, n = (int(x) for x in str(partition).split("/"))
    except ValueError:
        raise ValueError(f"partition must look like 'k/n' (e.g. '2/4'), got {partition!r}") from None
    if not 1 <= k <= n:
        raise ValueError(f"partition {partition!r}: k must be between 1 and n")
    bounds = np.linspace(0, rows, n + 1).astype(int)
    return int(bounds[k - 1]), int(bounds[k])


def take_partition(frame: pd.DataFrame, partition: str) -> pd.DataFrame:
    """Rows of partition k of n of a frame in memory (:func:`partition_bounds`)."""
    lo, hi = partition_bounds(partition, len(frame))
    return frame.iloc[lo:hi]


def load_partition(workspace: Workspace, dataset: str, partition: str) -> tuple[pd.DataFrame, Path]:
    """Partition ``"k/n"`` of a dataset, equal to the same rows of the whole file's :func:`load`
    (values, dtypes, index) but read through a :class:`RowSource`: Parquet reads only the row
    groups the rows lie in; a CSV is scanned once in chunks (row count and each column's dtype as
    a whole-file read would infer it — a slice alone would read ``1, 2`` as ints where the file
    has a null further down) and then only the partition's rows are kept. A column whose chunks
    disagree in a way a slice cannot reproduce is read whole, with the reason logged."""
    path = workspace.resolve_input(dataset)
    check_data_file(path)  # before the partition is parsed: a bad file is the same one sentence
    partition_bounds(partition, 1)  # a malformed partition is refused before any read
    if path.suffix.lower() in PARQUET_SUFFIXES:
        source = open_rows(workspace, dataset)
        lo, hi = partition_bounds(partition, source.rows)
        frame = _as_whole(source.read(lo, hi), _parquet_dtypes(path))
        return frame, path
    try:
        options = csv_options(path)
        columns, rows, dtypes, mixed = _csv_dtypes(path, options)
    except pd.errors.ParserError as exc:
        raise DataFileError(f"Could not parse {path.name} as CSV: {exc}") from exc
    if not rows:
        raise DataFileError(f"Data file {path.name} has columns but no data rows; nothing to analyse.")
    if mixed:
        logger.warning("partition %s of %s read from the whole file: column(s) %s mix value types across the "
                       "file, which a slice alone cannot reproduce", partition, path.name, ", ".join(mixed))
        frame, path = load(workspace, dataset)
        return take_partition(frame, partition), path
    if workspace.roles:
        check_columns(workspace.roles, columns, path.name)
    source = RowSource(path, rows, columns, dict(workspace.roles), options, file_date_orders(path))
    lo, hi = partition_bounds(partition, rows)
    text = [c for c, d in dtypes.items() if isinstance(d, pd.StringDtype)]
    return _as_whole(source.read(lo, hi, text=text), dtypes), path


def _as_whole(frame: pd.DataFrame, dtypes: Mapping[str, Any]) -> pd.DataFrame:
    """``frame`` with each column cast to the dtype the whole file's read gives it."""
    casts = {c: d for c, d in dtypes.items() if c in frame.columns and frame[c].dtype != d}
    if casts:
        attrs = dict(frame.attrs)
        frame = frame.astype(casts)
        frame.attrs.update(attrs)
    return frame


def _csv_dtypes(path: Path, options: Mapping[str, Any]) -> tuple[tuple[str, ...], int, dict[str, Any], list[str]]:
    """Columns, row count and each column's dtype in a whole-file read, from one pass in chunks of
    :data:`COUNT_CHUNK_ROWS` rows (text where chunks mix numbers, flags or text: the whole read
    keeps the text); plus the columns whose chunks mix kinds this does not know how to reproduce."""
    rows, nulls = 0, set()
    kinds: dict[str, set[Any]] = {}
    first: dict[str, Any] = {}
    columns: tuple[str, ...] = ()
    for chunk in pd.read_csv(path, chunksize=COUNT_CHUNK_ROWS, low_memory=False, **options):
        columns = tuple(str(c) for c in chunk.columns)
        rows += len(chunk)
        for name in chunk.columns:
            series = chunk[name]
            first.setdefault(str(name), series.dtype)
            missing = series.isna()
            if missing.any():
                nulls.add(str(name))
            if not missing.all():
                kinds.setdefault(str(name), set()).add(series.dtype)
    dtypes: dict[str, Any] = {}
    mixed: list[str] = []
    for name in columns:
        seen = kinds.get(name)
        if not seen:  # nothing but nulls: what the first chunk read them as
            dtypes[name] = first[name]
        elif any(isinstance(d, pd.StringDtype) for d in seen):
            dtypes[name] = next(d for d in seen if isinstance(d, pd.StringDtype))
        elif seen <= {np.dtype("int64"), np.dtype("float64")}:
            dtypes[name] = np.dtype("int64") if seen == {np.dtype("int64")} and name not in nulls \
                else np.dtype("float64")
        elif seen <= {np.dtype(bool), np.dtype(object)}:
            dtypes[name] = np.dtype(bool) if seen == {np.dtype(bool)} and name not in nulls else np.dtype(object)
        elif seen <= {np.dtype(bool), np.dtype(object), np.dtype("int64"), np.dtype("float64")}:
            dtypes[name] = pd.StringDtype(na_value=np.nan)  # flags and numbers: the whole read keeps the text
        elif len(seen) == 1:
            dtypes[name] = next(iter(seen))
        else:
            mixed.append(name)
    return columns, rows, dtypes, mixed


def _parquet_dtypes(path: Path) -> dict[str, Any]:
    """The dtypes a whole read gives the Parquet columns a slice may read otherwise: an integer or
    boolean column with a null anywhere (float64 / object in pandas), found from the row groups'
    statistics, or by reading that one column when a row group has none."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    schema, meta, out = source.schema_arrow, source.metadata, {}
    for index, field_ in enumerate(schema):
        if not (pa.types.is_integer(field_.type) or pa.types.is_boolean(field_.type)):
            continue
        has_null = False
        for group in range(meta.num_row_groups):
            column = meta.row_group(group).column(index)
            stats = column.statistics
            if stats is not None and stats.has_null_count:
                count = stats.null_count
            else:
                count = source.read_row_group(group, columns=[field_.name]).column(0).null_count
            if count:
                has_null = True
                break
        if has_null:
            out[field_.name] = np.dtype("float64") if pa.types.is_integer(field_.type) else np.dtype(object)
    return out


def is_text(series: pd.Series) -> bool:
    """Object or string dtype (pandas 3 infers ``str`` where pandas 2 said ``object``)."""
    return series.dtype == object or pd.api.types.is_string_dtype(series)


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c]) and frame[c].dtype != bool]


#: Words that name a date column (``order_date``, ``timestamp``, ``day``, ``month``).
DATE_NAME_HINTS = ("date", "time", "day", "month")


def named_as_date(column: str) -> bool:
    """Whether the column's *name* says it holds dates (not only its values)."""
    return any(h in str(column).lower() for h in DATE_NAME_HINTS)


def date_column(frame: pd.DataFrame) -> str | None:
    """The date column: a datetime dtype, else a text column whose values parse as dates.

    Columns named like dates are tried first; a sample of up to 200 values must parse at
    >= 90% (so free text, codes and ids are never mistaken for dates).
    """
    declared = frame.attrs.get(ATTRS_KEY) or {}  # a declared time column first; other declared roles never
    for col in [c for c in frame.columns if declared.get(str(c)) == "time"]:
        if pd.api.types.is_datetime64_any_dtype(frame[col]) or _parses_as_dates(frame[col]):
            return col
    for col in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[col]) and str(col) not in declared:
            return col
    text = [c for c in frame.columns if is_text(frame[c]) and str(c) not in declared]
    named = [c for c in text if named_as_date(c)]
    for col in named + [c for c in text if c not in named]:
        if _parses_as_dates(frame[col]):
            return col
    return None


def _parses_as_dates(series: pd.Series) -> bool:
    """A sample of up to 200 values, all with a digit, parses as dates at >= 90%."""
    sample = series.dropna().head(200).astype(str)
    if sample.empty or not sample.str.contains(r"\d").all():
        return False
    return bool(parse_dates(sample).notna().mean() >= 0.9)


#: ``dd.mm.yyyy`` (the German/European way: always day first), perhaps with a time.
_DOTTED_DATE = re.compile(r"\d{1,2}\.\d{1,2}\.\d{2,4}(?:[ T].*)?")
#: ``a/b/yyyy`` or ``a-b-yyyy``: day or month first, which only a value's fields can tell.
_NUMERIC_DATE = re.compile(r"(?P<a>\d{1,2})[/-](?P<b>\d{1,2})[/-]\d{2,4}(?:[ T].*)?")
DateOrder = Literal["day_first", "month_first", "ambiguous", "other"]


#: Where a frame read from a file carries its date columns' day/month order, decided over the
#: whole file (``frame.attrs[DATE_ORDERS_KEY]``: column -> :data:`DateOrder`): a partition alone
#: may hold no day > 12 and would read a day-first file month first.
DATE_ORDERS_KEY = "relaygraph_date_orders"


@dataclass
class _DateTally:
    """What decides a column's day/month order, added up over a column's pieces (chunks, row
    groups): a partition's order is then the whole file's."""

    values: int = 0
    dotted: int = 0
    numeric: int = 0
    day_over_12: bool = False
    month_over_12: bool = False

    def add(self, series: pd.Series) -> None:
        if not is_text(series):  # a chunk that read numbers or flags: values, none of them a date
            self.values += int(series.notna().sum())
            return
        values = series.dropna().astype(str).str.strip()
        values = values[values != ""]
        if values.empty:
            return
        self.values += len(values)
        self.dotted += int(values.str.fullmatch(_DOTTED_DATE.pattern).sum())
        fields = values.str.extract(f"^{_NUMERIC_DATE.pattern}$").dropna()
        self.numeric += len(fields)
        self.day_over_12 = self.day_over_12 or bool((fields["a"].astype(int) > 12).any())
        self.month_over_12 = self.month_over_12 or bool((fields["b"].astype(int) > 12).any())

    @property
    def order(self) -> DateOrder:
        if not self.values:
            return "other"
        if self.dotted >= _NEARLY_ALL * self.values:
            return "day_first"
        if self.numeric < _NEARLY_ALL * self.values:
            return "other"
        if self.day_over_12 != self.month_over_12:
            return "day_first" if self.day_over_12 else "month_first"
        return "ambiguous"  # no value tells (or values tell both ways): read month first, and say so


def date_order(series: pd.Series) -> DateOrder:
    """How a text date column writes day and month, decided for the whole column (one value at a
    time, ``03/01/2025`` would read as 1 March beside a ``13/01/2025`` read as 13 January):
    ``dd.mm.yyyy`` is day first; ``a/b/yyyy`` is day first when some ``a`` > 12 and no ``b`` > 12,
    month first the other way round, ``ambiguous`` when no value tells; ``other`` for ISO and
    anything else (no order to choose). A column of a frame read from a file takes the order
    decided over the whole file (:data:`DATE_ORDERS_KEY`), so every partition reads it alike."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return "other"
    decided = (series.attrs.get(DATE_ORDERS_KEY) or {}).get(str(series.name))
    if decided is not None:
        return cast(DateOrder, decided)
    tally = _DateTally()
    tally.add(series)
    return tally.order


#: Rows of a file's head that pick the columns whose dates a whole-file scan decides.
_DATE_HEAD_ROWS = 1_000


def _date_candidates(head: pd.DataFrame) -> list[str]:
    """Columns whose head values are mostly ``dd.mm.yyyy`` / ``a/b/yyyy`` (or has none): the only
    ones scanned; any other column is ``other`` for the file, in every read alike."""
    out = []
    for name in head.columns:
        values = head[name].dropna().astype(str).str.strip()
        values = values[values != ""]
        dated = values.str.fullmatch(_DOTTED_DATE.pattern) | values.str.fullmatch(_NUMERIC_DATE.pattern)
        if values.empty or dated.mean() >= _NEARLY_ALL:
            out.append(str(name))
    return out


def _date_orders_of(frame: pd.DataFrame, candidates: Sequence[str] | None = None) -> dict[str, DateOrder]:
    """Each column's order in a whole file read into ``frame`` (only ``candidates`` tallied, by
    default those of its head): what the chunked scan of :func:`file_date_orders` decides."""
    if candidates is None:
        candidates = _date_candidates(frame.head(_DATE_HEAD_ROWS))
    orders: dict[str, DateOrder] = {str(c): "other" for c in frame.columns}
    for name in candidates:
        tally = _DateTally()
        tally.add(frame[name])
        orders[name] = tally.order
    return orders


def file_date_orders(path: str | Path) -> dict[str, DateOrder]:
    """The day/month order of each column of a data file, decided over the whole file (never
    holding it: a CSV's candidate columns are scanned one at a time, in chunks; Parquet's string
    columns a row group at a time), cached per file version (path, mtime, size)."""
    path = Path(path)
    stat = path.stat()
    return dict(_file_date_orders(str(path), stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=64)
def _file_date_orders(path: str, mtime_ns: int, size: int) -> tuple[tuple[str, DateOrder], ...]:
    del mtime_ns, size  # the cache key: a rewritten file is scanned again
    tallies: dict[str, _DateTally] = {}
    if Path(path).suffix.lower() in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        source = pq.ParquetFile(path)
        names = [str(f.name) for f in source.schema_arrow]
        texts = [f.name for f in source.schema_arrow if _pa_is_text(f.type)]
        for group in range(source.num_row_groups if texts else 0):
            piece = source.read_row_group(group, columns=texts).to_pandas()
            for name in texts:
                tallies.setdefault(name, _DateTally()).add(piece[name])
    else:
        options = csv_options(path)
        # the head in chunks too (a scan chunk, or the file check's 1,000 rows, whichever is fewer)
        pieces = list(pd.read_csv(path, nrows=_DATE_HEAD_ROWS, chunksize=min(COUNT_CHUNK_ROWS, _DATE_HEAD_ROWS),
                                  low_memory=False, **options))
        head = pd.concat(pieces) if pieces else pd.read_csv(path, nrows=0, **options)
        names = [str(c) for c in head.columns]
        for name in _date_candidates(head):  # one column at a time: a chunk never holds the file's rows
            tally = tallies.setdefault(name, _DateTally())
            with pd.read_csv(path, usecols=[name], chunksize=COUNT_CHUNK_ROWS, low_memory=False,
                             **options) as reader:
                for chunk in reader:
                    tally.add(chunk[name])
    orders: dict[str, DateOrder] = {name: "other" for name in names}
    orders.update({name: tally.order for name, tally in tallies.items()})
    return tuple(orders.items())


def _pa_is_text(kind: Any) -> bool:
    """A Parquet (Arrow) string column: the only kind whose dates need an order decided."""
    import pyarrow as pa

    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def with_date_orders(frame: pd.DataFrame, orders: Mapping[str, DateOrder]) -> pd.DataFrame:
    """``frame`` carrying its file's date orders (:data:`DATE_ORDERS_KEY`)."""
    frame.attrs[DATE_ORDERS_KEY] = dict(orders)
    return frame


def date_order_note(series: pd.Series, column: str) -> str | None:
    """What a report must say about how it read ``column``'s dates, or None when the values
    decide it (over the whole file, for a frame read from one)."""
    if date_order(series) != "ambiguous":
        return None
    return f"dates in {column!r} read as month/day; no value tells day/month apart"


def parse_dates(series: pd.Series) -> pd.Series:
    """A date column as datetimes (unparseable values NaT), day and month in the order
    :func:`date_order` decides for the whole column (the whole file, for a frame read from one).
    Every reader of dates uses it, so the analysis and the critic that recomputes its figures
    read the same months, and so does every partition."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return series
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.to_datetime(series, errors="coerce", format="mixed", dayfirst=date_order(series) == "day_first")


def categorical_columns(frame: pd.DataFrame, max_distinct: int = 50) -> list[str]:
    """Text columns with few distinct values: the natural group-by keys."""
    out = []
    dates = date_column(frame)
    for col in frame.columns:
        series = frame[col]
        if is_text(series) and col != dates:
            distinct = series.nunique(dropna=True)
            if 1 < distinct <= max_distinct:
                out.append(col)
    return out


def date_like_columns(path: str | Path, sample_rows: int = 200) -> tuple[list[str], list[str]]:
    """A data file's columns, and those that look like dates (a datetime type, a date-like name,
    or text whose first ``sample_rows`` values parse as dates) — read without loading the file."""
    path = Path(path)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        import pyarrow.parquet as pq

        source = pq.ParquetFile(path)
        head = source.read_row_group(0).slice(0, sample_rows).to_pandas() if source.num_row_groups else pd.DataFrame()
    else:
        head = pd.read_csv(path, nrows=sample_rows, **csv_options(path))
    columns = [str(c) for c in head.columns]
    dated = [str(c) for c in head.columns
             if named_as_date(str(c)) or pd.api.types.is_datetime64_any_dtype(head[c])
             or (is_text(head[c]) and _parses_as_dates(head[c]))]
    return columns, dated


def key_column(frame: pd.DataFrame) -> str | None:
    """An identifier column (name ends in 'id' and values are mostly unique)."""
    for col in frame.columns:
        low = col.lower()
        if (low == "id" or low.endswith("_id")) and frame[col].nunique() >= 0.9 * len(frame):
            return col
    return None


def check_column(frame: pd.DataFrame, column: str, *, numeric: bool = False) -> str:
    """Validate an agent-chosen column name, listing the real ones when it is wrong."""
    if column not in frame.columns:
        raise ValueError(f"Unknown column {column!r}; columns are: {', '.join(map(str, frame.columns))}.")
    if numeric and column not in numeric_columns(frame):
        raise ValueError(
            f"Column {column!r} is not numeric; numeric columns are: {', '.join(numeric_columns(frame))}."
        )
    return column


# --- computations the tools and the report share -----------------------------------------


def jsonable(value: Any) -> Any:
    """Plain JSON values from numpy/pandas scalars (NaN becomes None)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(value) else round(float(value), 4)
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    if value is pd.NaT or value is None:
        return None
    return value


def tool_result(summary: str, *, artifacts: dict[str, str] | None = None, **facts: Any) -> ToolResult:
    """A tool's return value: a one-line summary, JSON-ready facts, and named artifacts."""
    return ToolResult(summary=summary, facts=jsonable(facts), artifacts=artifacts or {})
