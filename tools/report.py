"""Markdown + PNG report rendering.

The report recomputes every number from the dataset it is given — agents contribute notes, never
figures — so a report can be trusted even when a weak model wrote the notes. Each number is
computed by :mod:`relaygraph.tools.measures` with the rule the metric's role allows, and each
label says which rule that was (``revenue (sum)``, ``temperature_c (mean)``, ``rows``). Every
data-derived string is escaped (:mod:`relaygraph.tools.markdown`), so any column name or
category value leaves the Markdown valid.

The chart is drawn with matplotlib's object-oriented API on its own Agg canvas (no pyplot
state), so concurrent branches writing reports never share a figure.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection, Mapping
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from relaygraph.tools import combine, frames
from relaygraph.tools import markdown as md
from relaygraph.tools.measures import (
    MIXED_SIGNS_NOTE,
    STATS,
    Breakdown,
    Trend,
    breakdown,
    label,
    outlier_mask,
    overall,
    series_note,
    trend,
)
from relaygraph.tools.roles import ColumnRole, category_columns, default_metric, role_of
from relaygraph.tools.sections import SECTIONS
from relaygraph.tools.workspace import Workspace

ALL_ROWS = "(all rows)"
#: The report's optional sections, in order; the overview and headline are always written.
PERIOD_WORDS = {"additive": "sum per month", "non_additive": "mean per month", "level": "end of month"}


def headline(metric: str, role: ColumnRole, overall: dict[str, Any]) -> str:
    """One sentence stating the metric's main figures with the rule that produced them."""
    name = f"**{md.text(metric)}** ({role.role.replace('_', '-')}: {md.text(role.reason)})"
    missing = overall["rows"] - overall["values"]
    gaps = f"; {md.plural(missing, 'row')} without a value" if missing else ""
    if role.role == "additive":
        return (f"Metric: {name} — total {md.number(overall['sum'])} "
                f"(sum over {md.plural(overall['values'], 'value')}{gaps}).")
    if role.role == "non_additive":
        return (f"Metric: {name} — mean {md.number(overall['mean'])}, median {md.number(overall['median'])}, "
                f"range {md.number(overall['min'])} to {md.number(overall['max'])} "
                f"(over {md.plural(overall['values'], 'value')}{gaps}; averaged, never summed).")
    note = series_note(role, overall.get("series_by") or [], overall.get("series_count", 1),
                       overall.get("last_carried_forward", 0))
    note = f" — each series' first and latest reading, {md.text(note)}" if note else ""
    return (f"Metric: {name} — latest {md.number(overall['last'])}{_at(overall['last_at'])}, "
            f"first {md.number(overall['first'])}{_at(overall['first_at'])}, "
            f"change {_change(overall['change'], overall['change_pct'])}{gaps}{note}.")


def _at(moment: str | None) -> str:
    return f" ({moment[:10]})" if moment else ""


def _change(delta: float | None, pct: float | None) -> str:
    if delta is None:
        return "n/a"
    return f"{delta:+,.2f}" + (f" ({pct:+.1%})" if pct is not None else "")


def breakdown_table(result: Breakdown) -> str:
    """The breakdown as a table: one row per group (``(missing)`` included) and an all-rows row."""
    metric, role = result.metric, result.role
    stats = STATS[role.role]
    columns = [result.group_by, "rows", *(label(metric, s) for s in stats)]
    if role.role == "additive":
        columns.append(f"share of {label(metric, 'sum')}")

    def row(name: str, values: dict[str, Any], share: float | None) -> list[Any]:
        cells = [name, values["rows"], *(values[s] for s in stats)]
        if role.role == "additive":
            cells.append(md.text(f"{share:.1%}") if share is not None else None)
        return cells

    rows = [row(g["group"], g, g.get("share")) for g in result.groups]
    rows.append(row(ALL_ROWS, result.overall, 1.0 if result.total and not result.mixed_signs else None))
    table = md.table(columns, rows)
    return table + (f"\n\nShares: n/a — {MIXED_SIGNS_NOTE}." if result.mixed_signs else "")


def plain(text: str) -> str:
    """Chart text shown literally: matplotlib reads ``$...$`` as math, so a ``$`` in data is escaped."""
    return str(text).replace("$", r"\$")


def trend_text(result: Trend) -> str:
    series, role = result.series, result.role
    what = f"{md.text(result.metric)} ({PERIOD_WORDS[role.role]})"
    if result.compared is None:
        return f"Monthly {what}: not enough complete months to measure a change." + (
            f" Note: {md.text(result.date_note)}." if result.date_note else "")
    first, last = result.compared
    sentence = (f"Monthly {what} moved from {md.number(series[first])} ({first}) to "
                f"{md.number(series[last])} ({last}), {_change(result.change, result.change_pct)}; "
                f"peak month {result.peak} ({md.number(series.max())}).")
    note = series_note(role, result.series_by, result.series_count, 0)
    if note:
        sentence += f" Each month's value is {md.text(note)}"
        carried = ", ".join(f"{p} ({n})" for p, n in result.carried.items())
        sentence += (f"; series with no reading in a month carry their earlier value forward: {carried}."
                     if carried else ".")
    if result.partial:
        sentence += (f" Not compared: {', '.join(result.partial)}, which the data covers only in part "
                     "(a partial month's sum is not a drop).")
    if result.date_note:
        sentence += f" Note: {md.text(result.date_note)}."
    return sentence


def render_report(
    frame: pd.DataFrame | frames.RowSource,
    *,
    workspace: Workspace,
    source: str,
    title: str,
    group_by: str | None = None,
    metric: str | None = None,
    notes: str | None = None,
    sections: Collection[str] | None = None,
    partitions: int | None = None,
    left_out_why: Mapping[str, str] | None = None,
    cleaned_from: str | None = None,
    read_as: str | None = None,
) -> dict[str, Any]:
    """Write ``report.md`` and ``chart.png`` into the run folder; return paths and key figures.

    ``sections`` (default: all of :data:`SECTIONS`) limits the report to the analyses that were
    actually done — a plan that ran no trend analysis gets no trend section — and the report
    says which sections it leaves out, and why (``left_out_why``: section -> reason, e.g. "not
    requested: --param sections=outliers"; default "not part of the analysis that was run").

    ``partitions`` (> 1: a run scaled down to row partitions) computes every figure per
    partition and combines the results (:mod:`relaygraph.tools.combine`), and the report says
    it was computed from that many partitions and how. ``read_as`` (e.g. "semicolon-separated CSV
    with decimal commas"): how the user's CSV was split, said when it is not by commas. A monthly trend is not combined from
    partitions (its partial-month rule needs every date at once): it is left out, saying why.

    ``frame`` may be a :class:`~relaygraph.tools.frames.RowSource` (with ``partitions`` > 1): the
    file is then read one partition at a time and never whole — what a run scaled down for lack
    of resources can afford. The column choices (measure, role, group-by, date column, a level's
    series) are then made on a sample of at most one partition's rows spread over the file
    (:meth:`~relaygraph.tools.frames.RowSource.sample`), the figures from every row; label
    columns are read as text, so a numeric group code keeps the file's spelling (``1``, never ``1.0``)."""
    reader = frame if isinstance(frame, frames.RowSource) else None
    if reader is not None and not (partitions and partitions > 1):
        raise ValueError("A dataset read per partition needs partitions > 1.")
    if isinstance(frame, pd.DataFrame) and frame.empty:
        raise ValueError("The dataset has no rows: there is nothing to report on.")
    wanted = set(SECTIONS if sections is None else sections)
    unknown = sorted(wanted - set(SECTIONS))
    if unknown:
        raise ValueError(f"Unknown report section(s) {', '.join(unknown)}; the sections are {', '.join(SECTIONS)}.")
    if partitions is not None and partitions < 1:
        raise ValueError(f"partitions must be at least 1 (1: one pass over the whole dataset), got {partitions}.")
    parted = partitions is not None and partitions > 1
    streamed: combine.Accumulator | None = None
    if reader is not None:
        assert partitions is not None
        sample = reader.sample(min(frames.SAMPLE_ROWS, math.ceil(reader.rows / partitions)))
        metric = metric or default_metric(sample)
        role = role_of(sample, metric)
        group_by = group_by or next(iter(category_columns(sample)), None)
        choices = combine.choose(sample, metric, group_by)
        streamed = combine.Accumulator(choices)
        for lo, hi in combine.bounds(reader.rows, partitions):
            streamed.add(reader.read(lo, hi, text=choices.text_columns))
        whole = streamed.overall()
        rows, columns, dated = reader.rows, len(reader.columns), choices.date_column is not None
    else:
        assert isinstance(frame, pd.DataFrame)
        metric = metric or default_metric(frame)
        role = role_of(frame, metric)
        group_by = group_by or next(iter(category_columns(frame)), None)
        whole = combine.overall(frame, metric, partitions or 1) if parted else overall(frame, metric)
        rows, columns, dated = len(frame), len(frame.columns), frames.date_column(frame) is not None
    lines = [
        f"# {md.text(title)}",
        "",
        f"Source: {md.code(source)} — {md.plural(rows, 'row')}, {md.plural(columns, 'column')}.",
        "",
    ]
    if cleaned_from:  # the user gave cleaned_from; source is the run's cleaned copy of it
        lines += [f"Your file: {md.code(cleaned_from)}, cleaned (duplicates dropped, values normalised) into "
                  f"{md.code(source)}, which every figure below is computed from.", ""]
    if read_as:
        lines += [f"Your file was read as {md.text(read_as)} (not comma-separated).", ""]
    facts: dict[str, Any] = {"rows": rows, "metric": metric, "role": role.role, "rule": role.rule,
                             "overall": whole}
    if parted:
        lines += [f"{combine.PARTITIONED_LINE.format(partitions=partitions)} {combine.METHOD}.", ""]
        facts.update(partitions=partitions, combined=combine.METHOD)
    lines += [headline(metric, role, whole), ""]
    if role.role == "additive":
        facts["total"] = whole["sum"]

    parts = None
    left_out = [name for name in SECTIONS if name not in wanted]
    if left_out:  # grouped by why (the caller knows: not requested, learned, no date column...)
        why = {name: (left_out_why or {}).get(name) or "not part of the analysis that was run" for name in left_out}
        for reason in dict.fromkeys(why.values()):
            lines += [f"Not in this report: {', '.join(n for n in left_out if why[n] == reason)} ({reason}).", ""]
        facts["sections_left_out"] = left_out
    if parted and "trend" in wanted and dated:
        lines += [("Not in this report: trend (a monthly trend is not combined from partitions: whether a month "
                   "is partial needs all its dates at once)."), ""]
        facts["sections_left_out"] = [*left_out, "trend"]
        wanted = wanted - {"trend"}
    if group_by and "breakdown" in wanted:
        if streamed is not None:
            parts = streamed.breakdown()
        else:
            assert isinstance(frame, pd.DataFrame)
            parts = (combine.breakdown(frame, group_by, metric, partitions or 1) if parted
                     else breakdown(frame, group_by, metric))
        assert parts is not None
        lines += [f"## {md.text(metric)} by {md.text(group_by)}", "", breakdown_table(parts), ""]
        facts.update(group_by=group_by, groups=len(parts.groups), top_group=parts.groups[0]["group"],
                     missing_group_rows=parts.missing_rows)

    chart_path = workspace.resolve_output("chart.png")
    series = None
    if "trend" in wanted and dated:
        assert isinstance(frame, pd.DataFrame)  # a partitioned report has left the trend out
        monthly = trend(frame, None, metric, "month")
        if len(monthly.series) >= 2:
            series = monthly.series
            lines += ["## Trend", "", trend_text(monthly), "", "![Monthly trend](chart.png)", ""]
            facts.update(peak_month=monthly.peak, change=monthly.change, change_pct=monthly.change_pct,
                         compared_months=list(monthly.compared or ()), partial_months=monthly.partial)

    # The object-oriented API on the Agg canvas: headless, and the process's pyplot backend is
    # left alone (``matplotlib.use`` at import would switch it for every user of the library).
    fig = Figure(figsize=(8, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    if series is not None:
        ax.plot(pd.PeriodIndex(series.index, freq="M").to_timestamp(), series.values, marker="o")
        ax.set_title(plain(f"{metric} ({PERIOD_WORDS[role.role]})"))
        ax.tick_params(axis="x", rotation=60, labelsize=7)
    elif parts is not None:
        primary = STATS[role.role][0]
        shown = [g for g in parts.groups if g[primary] is not None]
        ax.bar([plain(g["group"]) for g in shown], [g[primary] for g in shown])
        ax.set_title(plain(f"{label(metric, primary)} by {group_by}"))
    ax.set_ylabel(plain(label(metric, role.rule)))
    with warnings.catch_warnings():  # a glyph the font lacks (any user's column name) is not an error
        warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
        fig.tight_layout()
        fig.savefig(chart_path)

    if "outliers" in wanted:
        if streamed is not None:
            found = streamed.outliers()
        elif parted:
            assert isinstance(frame, pd.DataFrame)
            found = combine.outliers(frame[metric], partitions or 1)
        else:
            assert isinstance(frame, pd.DataFrame)
            values = frame[metric].dropna()
            found = {"values": len(values), "count": int(outlier_mask(values, "iqr").sum()),
                     "max": float(values.max()) if len(values) else None,
                     "median": float(values.median()) if len(values) else None}
        count = found["count"]
        verb = "has" if count == 1 else "have"
        lines += ["## Outliers", ""]
        if not found["values"]:
            lines += [f"{md.text(metric)} has no values to check.", ""]
        else:
            lines += [(f"{md.plural(count, 'row')} {verb} an unusual {md.text(metric)} (IQR rule); the largest "
                       f"value is {md.number(found['max'])} against a median of {md.number(found['median'])}."), ""]
        facts["outliers"] = count
    if notes:
        lines += ["## Agent notes", "", md.notes(notes), ""]

    report_path = workspace.resolve_output("report.md")
    report_path.write_text("\n".join(lines), encoding="utf-8")
    return {"report": str(report_path), "chart": str(chart_path), **facts}
