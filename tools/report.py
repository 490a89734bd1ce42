"""Markdown + PNG report rendering.

The report recomputes every number from the dataset it is given — agents contribute notes, never
figures — so a report can be trusted even when a weak model wrote the notes.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from relaygraph.tools import frames
from relaygraph.tools.frames import monthly_series, outlier_mask
from relaygraph.tools.workspace import Workspace


def _table(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render_report(
    frame: pd.DataFrame,
    *,
    workspace: Workspace,
    source: str,
    title: str,
    group_by: str | None = None,
    metric: str | None = None,
    notes: str | None = None,
) -> dict[str, Any]:
    """Write ``report.md`` and ``chart.png`` into the run folder; return paths and key figures."""
    metric = metric or frames.default_metric(frame)
    group_by = group_by or (frames.categorical_columns(frame) or [None])[0]
    total = float(frame[metric].sum())
    lines = [
        f"# {title}",
        "",
        f"Source: `{source}` — {len(frame):,} rows, {len(frame.columns)} columns. "
        f"Metric: **{metric}** (total {total:,.2f}).",
        "",
    ]
    facts: dict[str, Any] = {"rows": len(frame), "metric": metric, "total": round(total, 2)}

    if group_by:
        table = frame.groupby(group_by)[metric].agg(["count", "sum", "mean"]).sort_values("sum", ascending=False)
        table["share"] = table["sum"] / table["sum"].sum()
        shown = table.reset_index().rename(columns={"count": "orders", "sum": f"{metric} total", "mean": "mean"})
        shown["share"] = (shown["share"] * 100).map(lambda v: f"{v:.1f}%")
        lines += [f"## {metric} by {group_by}", "", _table(shown), ""]
        facts["top_group"] = str(table.index[0])
        facts["group_by"] = group_by

    chart_path = workspace.resolve_output("chart.png")
    series = None
    if frames.date_column(frame):
        series = monthly_series(frame, None, metric, "month")
        if len(series) >= 2:
            change = (series.iloc[-1] - series.iloc[0]) / series.iloc[0] if series.iloc[0] else 0.0
            lines += [
                "## Trend",
                "",
                f"Monthly {metric} moved from {series.iloc[0]:,.2f} ({series.index[0]}) to "
                f"{series.iloc[-1]:,.2f} ({series.index[-1]}), {change:+.1%}; peak month "
                f"{series.idxmax()} ({series.max():,.2f}).",
                "",
                "![Monthly trend](chart.png)",
                "",
            ]
            facts["peak_month"] = str(series.idxmax())

    # The object-oriented API on the Agg canvas: headless, and the process's pyplot backend is
    # left alone (``matplotlib.use`` at import would switch it for every user of the library).
    fig = Figure(figsize=(8, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    if series is not None and len(series) >= 2:
        ax.plot(pd.PeriodIndex(series.index, freq="M").to_timestamp(), series.values, marker="o")
        ax.set_title(f"Monthly {metric}")
        ax.tick_params(axis="x", rotation=60, labelsize=7)
    elif group_by:
        ax.bar(table.index.astype(str), table["sum"])
        ax.set_title(f"{metric} by {group_by}")
    ax.set_ylabel(metric)
    fig.tight_layout()
    fig.savefig(chart_path)

    mask = outlier_mask(frame[metric].dropna(), "iqr")
    lines += [
        "## Outliers",
        "",
        f"{int(mask.sum())} rows have an unusual {metric} (IQR rule); the largest is "
        f"{frame[metric].max():,.2f} against a median of {frame[metric].median():,.2f}.",
        "",
    ]
    facts["outliers"] = int(mask.sum())
    if notes:
        lines += ["## Agent notes", "", notes.strip(), ""]

    report_path = workspace.resolve_output("report.md")
    report_path.write_text("\n".join(lines), encoding="utf-8")
    return {"report": str(report_path), "chart": str(chart_path), **facts}
