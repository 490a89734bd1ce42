"""Analytics tools for specialist agents: customer segmentation, record scoring, enrichment.

Same contract as :mod:`relaygraph.tools.data` — bound to a :class:`~relaygraph.tools.workspace.Workspace`, pandas does
the work, the return value is a typed ``ToolResult`` with a one-line ``summary`` — and the same
``partition="k/n"`` input, so several instances of one specialist can map over slices of a
large file and their results can be reduced afterwards.

The rules are simple and stated (quartile RFM segments, a value × completeness score) because
an agent and a reader must both be able to check them against the data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from relaygraph.tools import frames, measures, roles
from relaygraph.tools import markdown as md
from relaygraph.tools.cleaning import implied_constraints
from relaygraph.tools.data import DATASET_INPUT, PARTITION_INPUT, DataTool
from relaygraph.tools.frames import tool_result
from relaygraph.tools.result import ToolResult

CUSTOMER_HINTS = ("customer", "client", "account", "user")

#: RFM segments, checked in order; r/f/m are quartile scores 1 (lowest) to 4 (highest).
SEGMENT_RULES: tuple[tuple[str, str], ...] = (
    ("champions", "recent, frequent and high-spending (R, F and M in the top half)"),
    ("at_risk", "valuable (F or M in the top half) but not recent (R in the bottom half)"),
    ("promising", "recent but infrequent (R in the top half, F in the bottom half)"),
    ("hibernating", "everyone else: not recent, not frequent, low spend"),
)


def find_customer_column(frame: pd.DataFrame) -> str | None:
    """The column identifying customers: a name hint first, else a repeating ``*_id`` column whose
    name says nothing else — ``sensor_id``, ``store_id``, ``ticker_id`` identify sensors, stores and
    tickers (the things readings and levels are about), never customers, so data without customers
    gets no customer columns (``customer_orders``) and no segments."""
    for col in frame.columns:
        if any(h in str(col).lower() for h in CUSTOMER_HINTS) and frames.is_text(frame[col]):
            return str(col)
    key = frames.key_column(frame)
    for col in frame.columns:
        low = str(col).lower()
        other_thing = set(roles.words(low.removesuffix("_id"))) & (roles.SERIES_WORDS - set(CUSTOMER_HINTS))
        if col != key and low.endswith("_id") and not other_thing and frame[col].duplicated().any():
            return str(col)
    return None


def quartile_score(values: pd.Series) -> pd.Series:
    """1-4: the quartile of each value's percentile rank (ties share a rank)."""
    return np.ceil(values.rank(pct=True, method="average") * 4).clip(1, 4).astype(int)


def rfm_table(frame: pd.DataFrame, customer: str, metric: str, date_col: str) -> pd.DataFrame:
    """Per customer: recency (days before the newest order), frequency, monetary, r/f/m scores."""
    dates = frames.parse_dates(frame[date_col])
    data = frame.assign(_date=dates).dropna(subset=[customer, "_date"])
    newest = data["_date"].max()
    table = data.groupby(customer).agg(
        last=("_date", "max"), frequency=("_date", "size"), monetary=(metric, "sum")
    )
    table["recency_days"] = (newest - table["last"]).dt.days
    table["r"] = quartile_score(-table["recency_days"])
    table["f"] = quartile_score(table["frequency"])
    table["m"] = quartile_score(table["monetary"])
    table["segment"] = [segment_of(r, f, m) for r, f, m in zip(table["r"], table["f"], table["m"], strict=True)]
    return table


def segment_of(r: int, f: int, m: int) -> str:
    if r >= 3 and f >= 3 and m >= 3:
        return "champions"
    if r <= 2 and (f >= 3 or m >= 3):
        return "at_risk"
    if r >= 3 and f <= 2:
        return "promising"
    return "hibernating"


class SegmentCustomersTool(DataTool):
    name = "segment_customers"
    description = (
        "Segment customers by RFM (recency, frequency, monetary value, scored by quartile) into "
        "champions, at_risk, promising and hibernating; per segment: customers, share of revenue."
    )
    column_inputs = ("customer_column", "metric", "date_column")
    inputs = {
        "dataset": DATASET_INPUT,
        "customer_column": {"type": "string", "description": "Column identifying the customer.", "nullable": True},
        "metric": {"type": "string", "description": "Numeric column of spend.", "nullable": True},
        "date_column": {"type": "string", "description": "Order date column.", "nullable": True},
        "partition": PARTITION_INPUT,
    }
    output_type = "string"

    def forward(
        self,
        dataset: str,
        customer_column: str | None = None,
        metric: str | None = None,
        date_column: str | None = None,
        partition: str | None = None,
    ) -> ToolResult:
        frame, path = frames.load(self.workspace, dataset, partition)
        customer = frames.check_column(frame, customer_column) if customer_column else find_customer_column(frame)
        if customer is None:
            raise ValueError("No customer column found; pass customer_column with a column name.")
        metric = frames.check_column(frame, metric, numeric=True) if metric else roles.default_metric(frame)
        role = roles.role_of(frame, metric)
        if role.role != "additive":
            raise ValueError(f"RFM's monetary value is a sum of spend, and {metric!r} is "
                             f"{role.role.replace('_', '-')} ({role.reason}); pass an amount column as metric.")
        date_col = frames.check_column(frame, date_column) if date_column else frames.date_column(frame)
        if date_col is None:
            raise ValueError("No date column found; pass date_column with a column name.")
        table = rfm_table(frame, customer, metric, date_col)
        if table.empty:
            raise ValueError(f"No rows with both {customer} and {date_col}; nothing to segment.")
        total = float(table["monetary"].sum())
        mixed = not measures.shares_are_parts(table["monetary"])  # refunds past spend: no shares
        segments: dict[str, dict[str, Any]] = {}
        for name, rule in SEGMENT_RULES:
            part = table[table["segment"] == name]
            segments[name] = {
                "customers": len(part),
                "share_of_customers": len(part) / len(table),
                "share_of_revenue": float(part["monetary"].sum()) / total if total and not mixed else None,
                "mean_monetary": float(part["monetary"].mean()) if len(part) else None,
                "rule": rule,
            }
        skipped = int(frame[customer].isna().sum())
        if mixed:
            top = max(segments, key=lambda s: segments[s]["customers"])
            brings = (f"{top} is the largest ({md.plural(segments[top]['customers'], 'customer')}); "
                      f"{measures.MIXED_SIGNS_NOTE.replace('groups', 'customers')} of {metric}.")
        else:
            top = max(segments, key=lambda s: segments[s]["share_of_revenue"] or 0)
            brings = (f"{top} ({md.plural(segments[top]['customers'], 'customer')}) bring "
                      f"{(segments[top]['share_of_revenue'] or 0):.1%} of the {metric} of customers with an id "
                      f"and a date.")
        return tool_result(
            f"{md.plural(len(table), 'customer')} in "
            f"{md.plural(sum(1 for s in segments.values() if s['customers']), 'segment')}; " + brings,
            dataset=self.workspace.display(path),
            partition=partition,
            customer_column=customer,
            metric=metric,
            rows=len(frame),
            customers=len(table),
            rows_without_customer=skipped,
            segments=segments,
        )


def record_scores(frame: pd.DataFrame, metric: str) -> pd.Series:
    """0-100 per row: 60 × the metric's percentile rank + 40 × the row's completeness.

    A row with a missing metric, or one breaking a rule its meaning implies (a negative
    quantity; see :mod:`relaygraph.tools.cleaning`), gets no value points: it cannot be trusted
    as worth anything.
    """
    value = frame[metric].rank(pct=True).fillna(0.0)
    for rule in implied_constraints(frame).applied:
        if rule.column == metric:
            value = value.where(~rule.breaches(frame), 0.0)
    completeness = frame.notna().mean(axis=1)
    return (60 * value + 40 * completeness).round(2)


class ScoreRecordsTool(DataTool):
    name = "score_records"
    description = (
        "Score every record 0-100 (60 x percentile of a value metric + 40 x completeness of the "
        "row); report the score distribution, high/medium/low bands and the top records."
    )
    column_inputs = ("metric",)
    inputs = {
        "dataset": DATASET_INPUT,
        "metric": {"type": "string", "description": "Numeric column measuring value.", "nullable": True},
        "partition": PARTITION_INPUT,
    }
    output_type = "string"

    def forward(self, dataset: str, metric: str | None = None, partition: str | None = None) -> ToolResult:
        frame, path = frames.load(self.workspace, dataset, partition)
        if frame.empty:
            raise ValueError("The dataset (or partition) has no rows to score.")
        metric = frames.check_column(frame, metric, numeric=True) if metric else roles.default_metric(frame)
        scores = record_scores(frame, metric)
        bands = {"high": int((scores >= 70).sum()), "medium": int(((scores >= 40) & (scores < 70)).sum()),
                 "low": int((scores < 40).sum())}
        key = frames.key_column(frame)
        labels = frame[key].astype(str) if key else frame.index.astype(str)
        ranked = pd.DataFrame({"record": labels, "score": scores}).sort_values("score", ascending=False)
        return tool_result(
            f"{md.plural(len(frame), 'record')} scored on {metric}: mean {scores.mean():.1f}, "
            f"{bands['high']} high, {bands['medium']} medium, {bands['low']} low.",
            dataset=self.workspace.display(path),
            partition=partition,
            metric=metric,
            rows=len(frame),
            mean_score=float(scores.mean()),
            median_score=float(scores.median()),
            bands=bands,
            top_records=ranked.head(5).to_dict("records"),
            bottom_records=ranked.tail(5).to_dict("records"),
        )


class EnrichDatasetTool(DataTool):
    name = "enrich_dataset"
    description = (
        "Enrich a dataset with derived columns (year, quarter, month, weekday from the date; the "
        "metric's quartile band; each customer's order count) and write it as Parquet."
    )
    inputs = {
        "dataset": DATASET_INPUT,
        "output_name": {
            "type": "string",
            "description": "File name (default: <name>_enriched[_<k>of<n>].parquet).",
            "nullable": True,
        },
        "partition": PARTITION_INPUT,
    }
    output_type = "string"

    def forward(self, dataset: str, output_name: str | None = None, partition: str | None = None) -> ToolResult:
        frame, path = frames.load(self.workspace, dataset, partition)
        frame = frame.copy()
        added: list[str] = []
        date_col = frames.date_column(frame)
        if date_col:
            dates = frames.parse_dates(frame[date_col])
            frame["year"], frame["quarter"] = dates.dt.year, dates.dt.quarter
            frame["month"], frame["weekday"] = dates.dt.month, dates.dt.day_name()
            added += ["year", "quarter", "month", "weekday"]
        if roles.measure_columns(frame):
            metric = roles.default_metric(frame)
            frame[f"{metric}_band"] = pd.qcut(
                frame[metric].rank(method="first"), 4, labels=["low", "mid", "high", "top"]
            ).astype(str).where(frame[metric].notna(), None)
            added.append(f"{metric}_band")
        customer = find_customer_column(frame)
        if customer:
            frame["customer_orders"] = frame.groupby(customer)[customer].transform("size")
            added.append("customer_orders")
        if not added:
            raise ValueError("Nothing to derive: the dataset has no date, numeric or customer column.")
        suffix = f"_{partition.replace('/', 'of')}" if partition else ""
        target = self.workspace.resolve_output(output_name or f"{path.stem}_enriched{suffix}.parquet")
        if target.suffix.lower() not in (".parquet", ".pq"):
            target = target.with_suffix(".parquet")
        frame.reset_index(drop=True).to_parquet(target, index=False)
        name = self.workspace.display(target)
        return tool_result(
            f"Added {len(added)} columns ({', '.join(added)}) to {len(frame)} rows; written to {name}.",
            dataset=self.workspace.display(path),
            partition=partition,
            rows=len(frame),
            added_columns=added,
            output=name,
            artifacts={"enriched_dataset": name},
        )


ANALYTICS_TOOLS: dict[str, type[DataTool]] = {
    cls.name: cls for cls in (SegmentCustomersTool, ScoreRecordsTool, EnrichDatasetTool)
}

