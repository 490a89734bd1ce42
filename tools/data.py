"""Data-processing tools for agents: profile, validate, clean, aggregate, trends, outliers, report.

Each tool is a smolagents ``Tool`` bound to a :class:`~relaygraph.tools.workspace.Workspace`, so it can
only read the configured data and write this run's outputs. Tools return a typed
:class:`~relaygraph.tools.result.ToolResult` (``summary``, ``facts``, ``artifacts``): the model reads
it rendered as text, nodes read its ``artifacts`` — e.g. the cleaned dataset's name, which becomes
the ``dataset`` of the agents after it.
Errors are raised as exceptions with messages that tell the agent how to fix its call;
smolagents turns them into observations the agent can react to.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
from relaygraph.tools import frames, measures, roles
from relaygraph.tools import markdown as md
from relaygraph.tools.cleaning import (
    clean_frame,
    implied_constraints,
    parse_constraints,
    unparseable,
)
from relaygraph.tools.frames import tool_result
from relaygraph.tools.measures import outlier_mask
from relaygraph.tools.report import render_report
from relaygraph.tools.result import ToolResult, TypedTool
from relaygraph.tools.workspace import Workspace

DATASET_INPUT = {"type": "string", "description": "Dataset file name (CSV or Parquet) to work on."}
CONSTRAINTS_INPUT = {
    "type": "string",
    "description": "Optional rules a valid row must meet, e.g. 'quantity >= 0; humidity <= 100'. "
    "Rules implied by column meanings (no negative quantities, counts or prices) apply anyway.",
    "nullable": True,
}
PARTITION_INPUT = {
    "type": "string",
    "description": "Optional 'k/n': work on the k-th of n equal row slices (map-reduce).",
    "nullable": True,
}


class DataTool(TypedTool):
    """A tool bound to a workspace; inputs can be narrowed to values known in the run."""

    column_inputs: ClassVar[tuple[str, ...]] = ()
    #: Writes outside the call (files, rows, messages): such calls run once per task even when
    #: the task runs again after a crash (see :mod:`relaygraph.tools.ledger`).
    side_effects: ClassVar[bool] = False
    skip_forward_signature_validation = False

    def __init__(self, workspace: Workspace, observation_chars: int | None = None) -> None:
        self.workspace = workspace
        if observation_chars is not None:
            self.observation_chars = observation_chars
        self.inputs = copy.deepcopy(self.inputs)  # per-instance: constraints differ per run
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
    inputs = {}
    output_type = "string"

    def forward(self) -> ToolResult:
        names = self.workspace.list_datasets()
        return tool_result(f"{md.plural(len(names), 'dataset')} available.", datasets=names)


class ProfileDatasetTool(DataTool):
    name = "profile_dataset"
    description = (
        "Profile a dataset's schema: row count, column types, null counts, distinct values, "
        "numeric ranges and inferred roles (date, categories, metric)."
    )
    inputs = {"dataset": DATASET_INPUT, "partition": PARTITION_INPUT}
    output_type = "string"

    def forward(self, dataset: str, partition: str | None = None) -> ToolResult:
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
        column_roles = roles.infer_roles(frame)
        measures_found = [c for c, r in column_roles.items() if r.is_measure]
        declared = [f"{c} {r.role.replace('_', '-')}" for c, r in column_roles.items() if r.declared]
        months = (int(frames.parse_dates(frame[date_col]).dt.to_period("M").nunique())
                  if date_col is not None else None)
        return tool_result(
            f"{self.workspace.display(path)}: {md.plural(len(frame), 'row')} x {md.plural(len(frame.columns), 'column')}"
            + (f"; roles declared, not inferred: {', '.join(declared)}." if declared else "."),
            dataset=self.workspace.display(path),
            rows=len(frame),
            columns=columns,
            roles={
                "date": date_col,
                "categories": roles.category_columns(frame),
                "metric": roles.default_metric(frame) if measures_found else None,
                "key": frames.key_column(frame),
                "additive": [c for c, r in column_roles.items() if r.role == "additive"],
                "non_additive": [c for c, r in column_roles.items() if r.role == "non_additive"],
                "levels": [c for c, r in column_roles.items() if r.role == "level"],
            },
            column_roles={c: {"role": r.role, "aggregate_with": r.rule, "why": r.reason,
                              "source": "declared" if r.declared else "inferred"}
                          for c, r in column_roles.items()},
            declared_roles=sorted(c for c, r in column_roles.items() if r.declared),
            date_months=months,  # months with a dated row: a trend needs two
            artifacts={"dataset": self.workspace.display(path)},
        )


def range_violations(frame: pd.DataFrame, constraints: str | None = None) -> dict[str, int]:
    """Values per column breaking a declared rule or one the column's meaning implies.

    See :mod:`relaygraph.tools.cleaning`: a negative temperature or balance breaks nothing; a
    negative quantity does, unless so many are negative that the sign carries meaning.
    """
    out: dict[str, int] = {}
    rules = parse_constraints(constraints, frame.columns) + implied_constraints(frame).applied
    for rule in rules:
        if rule.column in frames.numeric_columns(frame):
            count = int(rule.breaches(frame).sum())
            if count:
                out[rule.column] = out.get(rule.column, 0) + count
    return out


def type_issues(frame: pd.DataFrame) -> dict[str, int]:
    """Numeric text columns with values that are neither numbers nor missing-value markers."""
    return {col: int(bad.sum()) for col, (_, bad) in unparseable(frame).items() if bad.any()}


def invalid_row_mask(frame: pd.DataFrame, parsed: pd.DataFrame, constraints: str | None = None) -> pd.Series:
    """Rows that are provably invalid — what the cleaner drops: exact duplicates, rows with an
    unparseable number, rows breaking a declared or implied rule. A row counts once however many
    cells are wrong; a null is missing, not invalid (``issue_count`` mixes rows and cells)."""
    mask = frame.duplicated()
    for _, bad in unparseable(frame).values():
        mask |= bad.reindex(frame.index, fill_value=False).astype(bool)
    for rule in parse_constraints(constraints, parsed.columns) + implied_constraints(parsed).applied:
        if rule.column in frames.numeric_columns(parsed):
            mask |= rule.breaches(parsed).reindex(frame.index, fill_value=False).astype(bool)
    return mask


class ValidateDatasetTool(DataTool):
    name = "validate_dataset"
    description = (
        "Validate data quality: nulls per column, type problems, out-of-range (negative) values, "
        "exact duplicate rows and duplicate keys."
    )
    inputs = {"dataset": DATASET_INPUT, "constraints": CONSTRAINTS_INPUT,
                              "partition": PARTITION_INPUT}
    output_type = "string"

    def forward(self, dataset: str, constraints: str | None = None, partition: str | None = None) -> ToolResult:
        frame, path = frames.load(self.workspace, dataset, partition)
        nulls = {str(c): int(n) for c, n in frame.isna().sum().items() if n}
        duplicates = int(frame.duplicated().sum())
        key = frames.key_column(frame)
        duplicate_keys = int(frame[key].duplicated().sum()) if key else 0
        types = type_issues(frame)
        parsed = frame.assign(**{c: values for c, (values, _) in unparseable(frame).items()})
        ranges = range_violations(parsed, constraints)
        implied = implied_constraints(parsed)
        issues = sum(nulls.values()) + duplicates + sum(ranges.values()) + sum(types.values())
        invalid = invalid_row_mask(frame, parsed, constraints)
        return tool_result(
            f"{md.plural(len(frame), 'row')}: {md.plural(duplicates, 'duplicate row')}, "
            f"{md.plural(sum(nulls.values()), 'null')} in {md.plural(len(nulls), 'column')}, "
            f"{md.plural(sum(ranges.values()), 'out-of-range value')}, "
            f"{md.plural(sum(types.values()), 'unparseable value')}; "
            f"{md.plural(int(invalid.sum()), 'invalid row')} (duplicate, unparseable or breaking a rule).",
            dataset=self.workspace.display(path),
            rows=len(frame),
            nulls=nulls,
            duplicate_rows=duplicates,
            key_column=key,
            duplicate_keys=duplicate_keys,
            out_of_range=ranges,
            rules_checked=[str(r) for r in parse_constraints(constraints, frame.columns) + implied.applied],
            rules_not_applied=implied.not_applied,
            type_issues=types,
            issue_count=issues,
            invalid_rows=int(invalid.sum()),
            passed=issues == 0,
        )


class CleanDatasetTool(DataTool):
    name = "clean_dataset"
    side_effects = True  # writes the cleaned file
    description = (
        "Clean a dataset: drop exact duplicate rows, rows with unparseable numbers and rows breaking "
        "a declared or implied rule (e.g. a negative quantity), counted by reason; normalise text "
        "categories (whitespace, case); writes a cleaned Parquet file for later steps. Negative "
        "values are kept unless a rule forbids them."
    )
    inputs = {
        "dataset": DATASET_INPUT,
        "output_name": {
            "type": "string",
            "description": "File name for the cleaned data (default: <name>_clean.parquet).",
            "nullable": True,
        },
        "constraints": CONSTRAINTS_INPUT,
    }
    output_type = "string"

    def forward(self, dataset: str, output_name: str | None = None, constraints: str | None = None) -> ToolResult:
        frame, path = frames.load(self.workspace, dataset)
        cleaned = clean_frame(frame, parse_constraints(constraints, frame.columns))
        target = self.workspace.resolve_output(output_name or f"{path.stem}_clean.parquet")
        if target.suffix.lower() not in (".parquet", ".pq"):
            target = target.with_suffix(".parquet")
        cleaned.frame.to_parquet(target, index=False)
        name = self.workspace.display(target)
        dropped = cleaned.dropped
        duplicates = dropped.get("duplicate", 0)
        by_rule = {k.removeprefix("constraint: "): v for k, v in dropped.items() if k.startswith("constraint: ")}
        by_parse = {k.removeprefix("unparseable: "): v for k, v in dropped.items() if k.startswith("unparseable: ")}
        reasons = [md.plural(duplicates, "duplicate row")]
        reasons += [f"{md.plural(n, 'row')} breaking {rule}" for rule, n in by_rule.items()]
        reasons += [f"{md.plural(n, 'row')} with an unparseable {col}" for col, n in by_parse.items()]
        return tool_result(
            f"Dropped {sum(dropped.values()):,} of {md.plural(cleaned.rows_in, 'row')} "
            f"({', '.join(reasons)}); normalised {md.plural(sum(cleaned.normalised.values()), 'text value')}; "
            f"{md.plural(cleaned.rows_out, 'row')} written to {name}.",
            source=self.workspace.display(path),
            rows_in=cleaned.rows_in,
            rows_out=cleaned.rows_out,
            dropped_by_reason=dropped,
            duplicates_removed=duplicates,
            out_of_range_removed=sum(by_rule.values()),
            unparseable_removed=sum(by_parse.values()),
            constraints_enforced=[str(r) for r in cleaned.constraints],
            constraints_not_applied=cleaned.not_applied,
            normalised_values=cleaned.normalised,
            nulls_from_markers=cleaned.nulls_from_markers,
            remaining_nulls={str(c): int(n) for c, n in cleaned.frame.isna().sum().items() if n},
            artifacts={"dataset": name, "source_dataset": self.workspace.display(path)},
        )


class AggregateTool(DataTool):
    name = "aggregate"
    description = (
        "Group-by statistics of a measure per value of a category column, by the measure's role: "
        "sum and share for amounts/counts, mean/median/min/max for prices, rates and temperatures, "
        "first/last/change for levels (balances, stock on hand). Rows with no group value form "
        "the '(missing)' group, so the groups add up to the total."
    )
    column_inputs = ("group_by", "metric")
    inputs = {
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
    ) -> ToolResult:
        frame, path = frames.load(self.workspace, dataset, partition)
        if frame.empty:
            raise ValueError("The dataset (or partition) has no rows to aggregate.")
        categories = roles.category_columns(frame)
        group_by = frames.check_column(frame, group_by) if group_by else next(iter(categories), None)
        if group_by is None:
            raise ValueError("No category column found; pass group_by with a column name.")
        metric = frames.check_column(frame, metric, numeric=True) if metric else roles.default_metric(frame)
        result = measures.breakdown(frame, group_by, metric)
        role, top = result.role, result.groups[0]
        primary = measures.STATS[role.role][0]
        headline = measures.label(metric, primary)
        counted = md.plural(len(result.groups), "group")
        if result.missing_rows:
            counted += f" (incl. {measures.MISSING}: {md.plural(result.missing_rows, 'row')} without {group_by})"
        if result.total is not None:
            share = f" ({top['share']:.1%} of the total)" if top.get("share") is not None else ""
            summary = (f"{headline} by {group_by}: {counted}, total "
                       f"{md.number(result.total)}; top is {top['group']}{share}"
                       + (f" ({measures.MIXED_SIGNS_NOTE})" if result.mixed_signs else "") + ".")
        else:
            value = top[primary]
            why = (f"{metric} is a level: each group's latest value, never a sum over time"
                   if role.role == "level" else f"{metric} is {role.role.replace('_', '-')}, so it is not summed")
            over = result.overall
            note = measures.series_note(role, over.get("series_by") or [], over.get("series_count", 1),
                                        over.get("last_carried_forward", 0))
            summary = (f"{headline} by {group_by}: {counted}; highest is "
                       f"{top['group']} ({'n/a' if value is None else f'{value:,.2f}'}); {why}"
                       f"{f'; the overall latest is {note}' if note else ''}.")
        return tool_result(
            summary,
            dataset=self.workspace.display(path),
            partition=partition,
            group_by=group_by,
            metric=metric,
            role=role.role,
            rule=role.rule,
            labels={"rows": "rows", **{s: measures.label(metric, s) for s in measures.STATS[role.role]}},
            total=result.total,
            overall=result.overall,
            missing_group_rows=result.missing_rows,
            groups=result.groups,
        )


class DetectTrendsTool(DataTool):
    name = "detect_trends"
    description = (
        "Trend over time of a measure per day/week/month/quarter/year, aggregated by its role "
        "(sum of amounts, mean of prices and temperatures, end-of-period level of balances), "
        "with the change between the first and last complete periods and the fitted slope."
    )
    column_inputs = ("date_column", "metric")
    inputs = {
        "dataset": DATASET_INPUT,
        "date_column": {"type": "string", "description": "Date column.", "nullable": True},
        "metric": {"type": "string", "description": "Numeric column to follow.", "nullable": True},
        "period": {
            "type": "string",
            "description": "Bucket size: day, week, month, quarter or year (default month).",
            "nullable": True,
            "enum": list(measures.PERIODS),
        },
    }
    output_type = "string"

    def forward(
        self,
        dataset: str,
        date_column: str | None = None,
        metric: str | None = None,
        period: str | None = None,
    ) -> ToolResult:
        frame, path = frames.load(self.workspace, dataset)
        result = trend_of(frame, date_column, metric, period or "month")
        if len(result.series) < 2:
            raise ValueError("Need at least two periods of data to find a trend.")
        what = f"{result.metric} ({result.rule} per {result.period})"
        if result.compared and result.change is not None:
            first, last = result.compared
            pct = f" ({result.change_pct:+.1%})" if result.change_pct is not None else ""
            moved = (f"changed {result.change:+,.2f}{pct} from the first complete {result.period} {first} "
                     f"({result.first_value:,.2f}) to the last {last} ({result.last_value:,.2f}); "
                     f"fitted slope {result.slope:+,.4g} per {result.period}")
            heading = f"went {result.direction}"
        else:
            moved = "too few complete periods to measure a change"
            heading = "has no direction to report"
        partial = f"; partial, not compared: {', '.join(result.partial)}" if result.partial else ""
        note = measures.series_note(result.role, result.series_by, result.series_count, 0)
        if note:
            carried = ", ".join(f"{p} ({n})" for p, n in result.carried.items())
            note = f"; each {result.period} {note}" + (
                f"; series carried forward from an earlier {result.period}: {carried}" if carried else "")
        return tool_result(
            f"{what} {heading}: {moved}; peak {result.peak}, "
            f"{md.plural(len(result.series), 'period')}{partial}{note}"
            + (f"; {result.date_note}." if result.date_note else "."),
            dataset=self.workspace.display(path),
            metric=result.metric,
            role=result.role.role,
            rule=result.rule,
            label=what,
            period=result.period,
            direction=result.direction,
            slope=result.slope,
            change=result.change,
            change_pct=result.change_pct,
            change_label=(f"{result.metric} ({result.rule} per {result.period}), last complete {result.period} "
                          "minus first: absolute change, and relative change where the scale allows it"),
            first_value=result.first_value,
            last_value=result.last_value,
            compared_periods=list(result.compared or ()),
            partial_periods=result.partial,
            peak_period=result.peak,
            rows_without_date=result.rows_without_date,
            series={str(k): v for k, v in result.series.round(4).items()},
            series_by=result.series_by,
            series_count=result.series_count,
            carried_forward=result.carried,
            date_note=result.date_note,
        )


def trend_of(frame: pd.DataFrame, date_column: str | None, metric: str | None, period: str = "month"
             ) -> measures.Trend:
    """:func:`measures.trend` with the agent's column choices checked (or inferred)."""
    metric = frames.check_column(frame, metric, numeric=True) if metric else roles.default_metric(frame)
    return measures.trend(frame, date_column, metric, period)


class DetectOutliersTool(DataTool):
    name = "detect_outliers"
    description = (
        "Find outliers in a numeric column with the IQR rule (beyond 1.5x the interquartile range) "
        "or robust z-scores (median/MAD > 3.5)."
    )
    column_inputs = ("column",)
    inputs = {
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
    ) -> ToolResult:
        frame, path = frames.load(self.workspace, dataset, partition)
        columns = [frames.check_column(frame, column, numeric=True)] if column else roles.measure_columns(frame)
        method = method or "iqr"
        found, checked = {}, {}
        for col in columns:
            values = frame[col].dropna()
            checked[str(col)] = {"values": len(values),
                                 "median": float(values.median()) if len(values) else None,
                                 "max": float(values.max()) if len(values) else None}
            mask = outlier_mask(frame[col], method)
            if mask.any():
                found[str(col)] = {
                    "count": int(mask.sum()),
                    "examples": frame.loc[mask, col].sort_values(ascending=False).head(5).tolist(),
                }
        total = sum(v["count"] for v in found.values())
        return tool_result(
            f"{md.plural(total, 'outlier value')} ({method}) across {len(found)} of "
            f"{md.plural(len(columns), 'measure column')}.",
            dataset=self.workspace.display(path),
            partition=partition,
            method=method,
            outliers=found,
            checked=checked,  # per column checked: how many values, their median and largest
        )


class WriteReportTool(DataTool):
    name = "write_report"
    side_effects = True  # writes the report and its chart
    description = (
        "Write a Markdown report with a PNG chart: dataset overview, breakdown of the main metric "
        "by category, trend over time and outliers, all computed from the dataset with the "
        "aggregation the metric's role allows (sums only for amounts and counts)."
    )
    column_inputs = ("group_by", "metric")
    inputs = {
        "dataset": DATASET_INPUT,
        "title": {"type": "string", "description": "Report title.", "nullable": True},
        "group_by": {"type": "string", "description": "Category column for the breakdown.", "nullable": True},
        "metric": {"type": "string", "description": "Numeric column to report on.", "nullable": True},
        "notes": {"type": "string", "description": "Findings from earlier agents to include.", "nullable": True},
        "sections": {"type": "string", "nullable": True,
                     "description": "Comma-separated sections to include, of breakdown, trend, outliers "
                                    "(only the analyses that were done); all when omitted."},
        "partitions": {"type": "integer", "nullable": True,
                       "description": "Compute every figure per row partition (of this many) and combine the "
                                      "results, for a run scaled down to partitions; one pass when omitted."},
        "left_out_why": {"type": "string", "nullable": True,
                         "description": "Why sections are left out, as JSON {section: reason}; set by the "
                                        "workflow, not needed otherwise."},
        "cleaned_from": {"type": "string", "nullable": True,
                         "description": "The user's file the dataset is a cleaned copy of; set by the workflow."},
    }
    output_type = "string"

    def _read_as(self, path: Path, cleaned_from: str | None) -> str:
        """How the user's file (``cleaned_from``, else the report's own) was split, if not by commas."""
        if cleaned_from:
            try:
                path = self.workspace.resolve_input(cleaned_from)
            except (OSError, ValueError):
                return ""
        return frames.separator_note(path)

    def forward(
        self,
        dataset: str,
        title: str | None = None,
        group_by: str | None = None,
        metric: str | None = None,
        notes: str | None = None,
        sections: str | None = None,
        partitions: int | None = None,
        left_out_why: str | None = None,
        cleaned_from: str | None = None,
    ) -> ToolResult:
        try:
            reasons = json.loads(left_out_why) if left_out_why else {}
        except json.JSONDecodeError:
            reasons = {}
        data: pd.DataFrame | frames.RowSource
        if partitions is not None and partitions > 1:  # scaled down: read per partition, never whole
            data = frames.open_rows(self.workspace, dataset)
            path, checked = data.path, data.sample(1)  # its columns, to check names against (the role: later)
        else:
            data, path = frames.load(self.workspace, dataset)
            checked = data
        report = render_report(
            data,
            workspace=self.workspace,
            source=self.workspace.display(path),
            title=title or "Data report",
            group_by=frames.check_column(checked, group_by) if group_by else None,
            metric=frames.check_column(checked, metric, numeric=checked is data) if metric else None,
            notes=notes,
            sections=None if sections is None else [p.strip() for p in sections.split(",") if p.strip()],
            partitions=partitions,
            left_out_why={str(k): str(v) for k, v in reasons.items()} if isinstance(reasons, dict) else None,
            cleaned_from=cleaned_from,
            read_as=self._read_as(path, cleaned_from),
        )
        return tool_result(
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
