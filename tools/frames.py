"""Loading data files and inferring column roles — the shared ground of every data tool.

pandas does the parsing (CSV and Parquet); this module finds the date and text columns, and
:mod:`relaygraph.tools.roles` decides what each column means, so tools work on any file a user
points at, not just the sample.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from relaygraph.tools.result import ToolResult
from relaygraph.tools.workspace import Workspace


def read_frame(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file (the workspace has already vetted the path)."""
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    try:
        return pd.read_csv(path, low_memory=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"Could not parse {path.name} as CSV: {exc}") from exc


def load(workspace: Workspace, dataset: str, partition: str | None = None) -> tuple[pd.DataFrame, Path]:
    """Load a dataset, optionally one partition ``"k/n"`` (k from 1) of its rows."""
    path = workspace.resolve_input(dataset)
    frame = read_frame(path)
    if partition:
        frame = take_partition(frame, partition)
    return frame, path


def take_partition(frame: pd.DataFrame, partition: str) -> pd.DataFrame:
    """Rows of partition k of n: contiguous, disjoint slices that together cover the frame."""
    try:
        k, n = (int(x) for x in str(partition).split("/"))
    except ValueError:
        raise ValueError(f"partition must look like 'k/n' (e.g. '2/4'), got {partition!r}") from None
    if not 1 <= k <= n:
        raise ValueError(f"partition {partition!r}: k must be between 1 and n")
    bounds = np.linspace(0, len(frame), n + 1).astype(int)
    return frame.iloc[bounds[k - 1] : bounds[k]]


def is_text(series: pd.Series) -> bool:
    """Object or string dtype (pandas 3 infers ``str`` where pandas 2 said ``object``)."""
    return series.dtype == object or pd.api.types.is_string_dtype(series)


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c]) and frame[c].dtype != bool]


def date_column(frame: pd.DataFrame) -> str | None:
    """The date column: a datetime dtype, else a text column whose values parse as dates.

    Columns named like dates are tried first; a sample of up to 200 values must parse at
    >= 90% (so free text, codes and ids are never mistaken for dates).
    """
    for col in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[col]):
            return col
    text = [c for c in frame.columns if is_text(frame[c])]
    named = [c for c in text if any(h in str(c).lower() for h in ("date", "time", "day", "month"))]
    for col in named + [c for c in text if c not in named]:
        sample = frame[col].dropna().head(200).astype(str)
        if sample.empty or not sample.str.contains(r"\d").all():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
        if parsed.notna().mean() >= 0.9:
            return col
    return None


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
