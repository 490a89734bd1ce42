"""Data-processing tools for agents: profile, validate, clean, aggregate, trends, outliers, report.

Each tool is a smolagents ``Tool`` bound to a :class:`~relaygraph.tools.workspace.Workspace`, so it can
only read the configured data and write this run's outputs. Tools return a JSON observation
(``summary`` plus facts) that a model can read and that nodes can mine for ``artifacts`` —
e.g. the cleaned dataset's name, which becomes the ``dataset`` of the agents after it.
Errors are raised as exceptions with messages that tell the agent how to fix its call;
smolagents turns them into observations the agent can react to.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from relaygraph.tools import frames
from relaygraph.tools.frames import monthly_series, observation, outlier_mask
from relaygraph.tools.report import render_report
from relaygraph.tools.workspace import Workspace
from smolagents import Tool

DATASET_INPUT = {"type": "string", "description": "Dataset file name (CSV or Parquet) to work on."}
PARTITION_INPUT = {
    "type": "string",
    "description": "Optional 'k/n': work on the k-th of n equal row slices (map-reduce).",
    "nullable": True,
}


class DataTool(Tool):
    """A tool bound to a workspace; inputs can be narrowed to values known in the run."""

    column_inputs: ClassVar[tuple[str, ...]] = ()
    skip_forward_signature_validation = False

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.inputs = copy.deepcopy(type(self).inputs)  # per-instance: constraints differ per run
        super().__init__()

    def constrain(self, allowed: dict[str, list[str]]) -> DataTool:
        """Turn run-specific allowed values (dataset names, real columns) into JSON-schema enums.

        Small models choose far better from an enum, and a grammar-constrained server can only
        emit listed values. Keys: an input name, or ``"columns"`` for every column input.
        """
        for name, spec in self.inputs.items():
            values = allowed.get(name)
            if values is None and name in self.column_inputs:
                values = allowed.get("columns")
            if values:
                spec["enum"] = sorted(dict.fromkeys(str(v) for v in values))
        return self


class ListDatasetsTool(DataTool):
    name = "list_datasets"
    description = "List the data files (CSV/Parquet) available to analyse."
    inputs: ClassVar[dict] = {}
    output_type = "string"

    def forward(self) -> str:
        names = self.workspace.list_datasets()
        return observation(f"{len(names)} dataset(s) available.", datasets=names)


class ProfileDatasetTool(DataTool):
    name = "profile_dataset"
    description = (
        "Profile a dataset's schema: row count, column types, null counts, distinct values, "
        "numeric ranges and inferred roles (date, categories, metric)."
    )
    inputs: ClassVar[dict] = {"dataset": DATASET_INPUT, "partition": PARTITION_INPUT}
    output_type = "string"

    def forward(self, dataset: str, partition: str | None = None) -> str:
        frame, path = frames.load(self.workspace, dataset, partition)
        columns = {}
        for col in frame.columns:
            series = frame[col]
            info: dict[str, Any] = {
                "dtype": str(series.dtype),
                "nulls": int(series.isna().sum()),
                "distinct": int(series.nunique(dropna=True)),
            }
            if col in frames.numeric_columns(frame):
                info.update(min=series.min(), max=series.max(), mean=series.mean())
            else:
                info["examples"] = [str(v) for v in series.dropna().unique()[:3]]
            columns[str(col)] = info
        date_col = frames.date_column(frame)
        return observation(
            f"{self.workspace.display(path)}: {len(frame)} rows x {len(frame.columns)} columns.",
            dataset=self.workspace.display(path),
            rows=len(frame),
            columns=columns,
            roles={
                "date": date_col,
                "categories": frames.categorical_columns(frame),
                "metric": frames.default_metric(frame) if frames.numeric_columns(frame) else None,
                "key": frames.key_column(frame),
            },
            artifacts={"dataset": self.workspace.display(path), "columns": [str(c) for c in frame.columns]},
        )


def range_violations(frame: pd.DataFrame) -> dict[str, int]:
    """Negative values in columns that are otherwise non-negative (quantities, prices, ...).

    A column is taken to be non-negative when at least 95% of its values are >= 0; the rest are
    then data-entry errors rather than legitimate negatives (a balance column keeps its sign).
    """
    out = {}
    for col in frames.numeric_columns(frame):
        series = frame[col].dropna()
        negatives = int((series < 0).sum())
        if negatives and negatives <= 0.05 * len(series):
            out[str(col)] = negatives
    return out


def type_issues(frame: pd.DataFrame) -> dict[str, int]:
    """Text columns that are mostly numbers or dates but have unparseable values."""
    issues = {}
    for col in frame.columns:
        series = frame[col].dropna()
        if not frames.is_text(series) or series.empty:
            continue
        as_number = pd.to_numeric(series, errors="coerce")
        bad = int(as_number.isna().sum())
        if 0 < bad <= 0.05 * len(series):
            issues[str(col)] = bad
    return issues


class ValidateDatasetTool(DataTool):
    name = "validate_dataset"
    description = (
        "Validate data quality: nulls per column, type problems, out-of-range (negative) values, "
        "exact duplicate rows and duplicate keys."
    )
    inputs: ClassVar[dict] = {"dataset": DATASET_INPUT, "partition": PARTITION_INPUT}
    output_type = "string"

    def forward(self, dataset: str, partition: str | None = None) -> str:
        frame, path = frames.load(self.workspace, dataset, partition)
        nulls = {str(c): int(n) for c, n in frame.isna().sum().items() if n}
        duplicates = int(frame.duplicated().sum())
        key = frames.key_column(frame)
        duplicate_keys = int(frame[key].duplicated().sum()) if key else 0
        ranges = range_violations(frame)
        types = type_issues(frame)
        issues = sum(nulls.values()) + duplicates + sum(ranges.values()) + sum(types.values())
        return observation(
            f"{len(frame)} rows: {duplicates} duplicate rows, {sum(nulls.values())} nulls in "
            f"{len(nulls)} columns, {sum(ranges.values())} out-of-range values.",
            dataset=self.workspace.display(path),
            rows=len(frame),
            nulls=nulls,
            duplicate_rows=duplicates,
            key_column=key,
            duplicate_keys=duplicate_keys,
            out_of_range=ranges,
            type_issues=types,
            issue_count=issues,
            passed=issues == 0,
        )


def normalise_text(series: pd.Series) -> tuple[pd.Series, int]:
    """Trim whitespace and unify case variants to the most common spelling ('north' -> 'North')."""
    stripped = series.str.strip()
    canonical = (
        stripped.dropna().groupby(stripped.dropna().str.casefold()).agg(lambda s: s.value_counts().idxmax())
    )
    normalised = stripped.str.casefold().map(canonical).where(stripped.notna(), None)
    changed = int(((normalised != series) & series.notna()).sum())
    return normalised, changed


class CleanDatasetTool(DataTool):
    name = "clean_dataset"
    description = (
        "Clean a dataset: drop exact duplicate rows, normalise text categories (whitespace, case), "
        "drop rows with out-of-range values; writes a cleaned Parquet file for later steps."
    )
    inputs: ClassVar[dict] = {
        "dataset": DATASET_INPUT,
        "output_name": {
            "type": "string",
            "description": "File name for the cleaned data (default: <name>_clean.parquet).",
            "nullable": True,
        },
    }
    output_type = "string"

    def forward(self, dataset: str, output_name: str | None = None) -> str:
        frame, path = frames.load(self.workspace, dataset)
        before = len(frame)
        frame = frame.drop_duplicates()
        duplicates = before - len(frame)
        normalised = {}
        for col in frames.categorical_columns(frame, max_distinct=200):
            frame[col], changed = normalise_text(frame[col].astype(object))
            if changed:
                normalised[str(col)] = changed
        bad = pd.Series(False, index=frame.index)
        for col in range_violations(frame):
            bad |= frame[col] < 0
        frame = frame[~bad]
        target = self.workspace.resolve_output(output_name or f"{path.stem}_clean.parquet")
        if target.suffix.lower() not in (".parquet", ".pq"):
            target = target.with_suffix(".parquet")
        frame.reset_index(drop=True).to_parquet(target, index=False)
        name = self.workspace.display(target)
        return observation(
            f"Removed {duplicates} duplicate rows and {int(bad.sum())} out-of-range rows, normalised "
            f"{sum(normalised.values())} text values; {len(frame)} rows written to {name}.",
            source=self.workspace.display(path),
            rows_in=before,
            rows_out=len(frame),
            duplicates_removed=duplicates,
            out_of_range_removed=int(bad.sum()),
            normalised_values=normalised,
            remaining_nulls={str(c): int(n) for c, n in frame.isna().sum().items() if n},
            artifacts={"dataset": name, "source_dataset": self.workspace.display(path)},
        )


class AggregateTool(DataTool):
    name = "aggregate"
    description = (
        "Group-by statistics: for each value of a category column, the count, sum, mean and "
        "median of a numeric metric, largest first."
    )
    column_inputs = ("group_by", "metric")
    inputs: ClassVar[dict] = {
        "dataset": DATASET_INPUT,
        "group_by": {"type": "string", "description": "Category column to group by.", "nullable": True},
        "metric": {"type": "string", "description": "Numeric column to summarise.", "nullable": True},
        "partition": PARTITION_INPUT,
    }
    output_type = "string"

    def forward(
        self,
        dataset: str,
        group_by: str | None = None,
        metric: str | None = None,
        partition: str | None = None,
    ) -> str:
        frame, path = frames.load(self.workspace, dataset, partition)
        categories = frames.categorical_columns(frame)
        group_by = frames.check_column(frame, group_by) if group_by else (categories or [None])[0]
        if group_by is None:
            raise ValueError("No category column found; pass group_by with a column name.")
        metric = frames.check_column(frame, metric, numeric=True) if metric else frames.default_metric(frame)
        table = (
            frame.groupby(group_by, dropna=True)[metric]
            .agg(["count", "sum", "mean", "median"])
            .sort_values("sum", ascending=False)
        )
        total = float(table["sum"].sum())
        top = table.index[0]
        rows = [{"group": str(idx), **row} for idx, row in table.round(2).to_dict("index").items()]
        return observation(
            f"{metric} by {group_by}: {len(table)} groups, total {total:,.2f}; top is {top} "
            f"({table.loc[top, 'sum'] / total:.1%} of total).",
            dataset=self.workspace.display(path),
            group_by=group_by,
            metric=metric,
            total=total,
            groups=rows,
        )


class DetectTrendsTool(DataTool):
    name = "detect_trends"
    description = (
        "Trend over time: totals of a metric per month (or week/quarter), growth between the "
        "first and last period, and the fitted slope."
    )
    column_inputs = ("date_column", "metric")
    inputs: ClassVar[dict] = {
        "dataset": DATASET_INPUT,
        "date_column": {"type": "string", "description": "Date column.", "nullable": True},
        "metric": {"type": "string", "description": "Numeric column to total.", "nullable": True},
        "period": {
            "type": "string",
            "description": "Bucket size: week, month or quarter (default month).",
            "nullable": True,
            "enum": ["week", "month", "quarter"],
        },
    }
    output_type = "string"

    def forward(
        self,
        dataset: str,
        date_column: str | None = None,
        metric: str | None = None,
        period: str | None = None,
    ) -> str:
        frame, path = frames.load(self.workspace, dataset)
        series = monthly_series(frame, date_column, metric, period or "month")
        if len(series) < 2:
            raise ValueError("Need at least two periods of data to find a trend.")
        slope = float(np.polyfit(np.arange(len(series)), series.to_numpy(dtype=float), 1)[0])
        first, last = float(series.iloc[0]), float(series.iloc[-1])
        growth = (last - first) / first if first else None
        peak = series.idxmax()
        direction = "up" if slope > 0 else "down" if slope < 0 else "flat"
        return observation(
            f"{series.name} per {period or 'month'} trends {direction}: slope {slope:,.1f} per period, "
            f"peak {peak}, {len(series)} periods.",
            dataset=self.workspace.display(path),
            metric=series.name,
            period=period or "month",
            direction=direction,
            slope=slope,
            growth_first_to_last=growth,
            peak_period=str(peak),
            series={str(k): v for k, v in series.round(2).items()},
        )


class DetectOutliersTool(DataTool):
    name = "detect_outliers"
    description = (
        "Find outliers in a numeric column with the IQR rule (beyond 1.5x the interquartile range) "
        "or robust z-scores (median/MAD > 3.5)."
    )
    column_inputs = ("column",)
    inputs: ClassVar[dict] = {
        "dataset": DATASET_INPUT,
        "column": {"type": "string", "description": "Numeric column to check.", "nullable": True},
        "method": {
            "type": "string",
            "description": "iqr or zscore (default iqr).",
            "nullable": True,
            "enum": ["iqr", "zscore"],
        },
        "partition": PARTITION_INPUT,
    }
    output_type = "string"

    def forward(
        self,
        dataset: str,
        column: str | None = None,
        method: str | None = None,
        partition: str | None = None,
    ) -> str:
        frame, path = frames.load(self.workspace, dataset, partition)
        columns = [frames.check_column(frame, column, numeric=True)] if column else frames.numeric_columns(frame)
        method = method or "iqr"
        found = {}
        for col in columns:
            mask = outlier_mask(frame[col], method)
            if mask.any():
                found[str(col)] = {
                    "count": int(mask.sum()),
                    "examples": frame.loc[mask, col].sort_values(ascending=False).head(5).tolist(),
                }
        total = sum(v["count"] for v in found.values())
        return observation(
            f"{total} outlier values ({method}) across {len(found)} of {len(columns)} numeric columns.",
            dataset=self.workspace.display(path),
            method=method,
            outliers=found,
        )


class WriteReportTool(DataTool):
    name = "write_report"
    description = (
        "Write a Markdown report with a PNG chart: dataset overview, breakdown of the main metric "
        "by category, trend over time and outliers, all computed from the dataset."
    )
    column_inputs = ("group_by", "metric")
    inputs: ClassVar[dict] = {
        "dataset": DATASET_INPUT,
        "title": {"type": "string", "description": "Report title.", "nullable": True},
        "group_by": {"type": "string", "description": "Category column for the breakdown.", "nullable": True},
        "metric": {"type": "string", "description": "Numeric column to report on.", "nullable": True},
        "notes": {"type": "string", "description": "Findings from earlier agents to include.", "nullable": True},
    }
    output_type = "string"

    def forward(
        self,
        dataset: str,
        title: str | None = None,
        group_by: str | None = None,
        metric: str | None = None,
        notes: str | None = None,
    ) -> str:
        frame, path = frames.load(self.workspace, dataset)
        report = render_report(
            frame,
            workspace=self.workspace,
            source=self.workspace.display(path),
            title=title or "Data report",
            group_by=frames.check_column(frame, group_by) if group_by else None,
            metric=frames.check_column(frame, metric, numeric=True) if metric else None,
            notes=notes,
        )
        return observation(
            f"Report written to {report['report']} with chart {report['chart']}.",
            **report,
            artifacts={"report": report["report"], "chart": report["chart"]},
        )


DATA_TOOLS: dict[str, type[DataTool]] = {
    cls.name: cls
    for cls in (
        ListDatasetsTool,
        ProfileDatasetTool,
        ValidateDatasetTool,
        CleanDatasetTool,
        AggregateTool,
        DetectTrendsTool,
        DetectOutliersTool,
        WriteReportTool,
    )
}
