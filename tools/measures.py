"""Numbers that follow a column's role: headline figures, breakdowns, trends, outliers.

Every aggregation here asks :mod:`relaygraph.tools.roles` how the measure may be combined —
``sum`` for additive measures, ``mean`` (and median) for non-additive ones, ``last`` (with
first and change) for levels — so no tool can sum a temperature or a balance over time.

Three promises the tests check on generated frames:

* a breakdown keeps rows whose key is missing, as the group ``(missing)``, so an additive
  measure's groups add up to the headline total, and shares are taken of that same total;
* a trend aggregates each period with the role's rule, and change is measured between
  complete periods for additive measures (a half month's sales are not a drop);
* nothing here returns a sum for a column whose role is not additive.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from relaygraph.tools import frames
from relaygraph.tools.roles import ColumnRole, role_of

MISSING = "(missing)"
PERIODS = {"day": "D", "week": "W", "month": "M", "quarter": "Q", "year": "Y"}
#: The statistics each role reports per group, primary first.
STATS = {"additive": ("sum", "mean"), "non_additive": ("mean", "median", "min", "max"),
         "level": ("last", "first", "change", "mean")}


def label(metric: str, stat: str) -> str:
    """What a number is, for people: ``revenue (sum)``, ``unit_price (mean)``."""
    return f"{metric} ({stat})"


def parse_dates(series: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series):
        return series
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.to_datetime(series, errors="coerce", format="mixed")


def measure_role(frame: pd.DataFrame, metric: str) -> ColumnRole:
    role = role_of(frame, metric)
    if not role.is_measure:
        raise ValueError(f"Column {metric!r} is {role.role.replace('_', ' ')} ({role.reason}), not a measure; "
                         "pick a numeric measure column.")
    return role


def group_keys(series: pd.Series) -> pd.Series:
    """Group labels as text, with nulls as an explicit ``(missing)`` group."""
    keys = series.astype(object).where(series.notna(), None).map(lambda v: None if v is None else str(v))
    missing = MISSING if MISSING not in set(keys.dropna()) else f"{MISSING} "
    return keys.fillna(missing)


def level_value(frame: pd.DataFrame, metric: str, role: ColumnRole, dates: pd.Series | None,
                pick: str) -> tuple[float | None, Any]:
    """A level's ``first`` or ``last`` value: rows at that moment combined by ``role.across``.

    Without a date column, "moment" means file order (the first or last non-null row).
    """
    values = frame[metric]
    if dates is None:
        present = values.dropna()
        if present.empty:
            return None, None
        return float(present.iloc[0 if pick == "first" else -1]), None
    ok = values.notna() & dates.notna()
    if not ok.any():
        return None, None
    moment = dates[ok].min() if pick == "first" else dates[ok].max()
    at = values[ok & (dates == moment)]
    return float(at.sum() if role.across == "sum" else at.mean()), moment


def change(first: float | None, last: float | None, role: ColumnRole) -> tuple[float | None, float | None]:
    """Absolute change, and relative change where it means something (positive base, ratio scale)."""
    if first is None or last is None:
        return None, None
    pct = (last - first) / first if first > 0 and not role.interval else None
    return last - first, pct


def stats(frame: pd.DataFrame, metric: str, role: ColumnRole, dates: pd.Series | None) -> dict[str, Any]:
    """The role's statistics over ``frame`` (one group, or the whole data)."""
    values = frame[metric]
    out: dict[str, Any] = {"rows": len(frame), "values": int(values.notna().sum())}
    if role.role == "additive":
        out.update(sum=float(values.sum()), mean=_num(values.mean()))
    elif role.role == "non_additive":
        out.update(mean=_num(values.mean()), median=_num(values.median()), min=_num(values.min()),
                   max=_num(values.max()))
    else:
        first, first_at = level_value(frame, metric, role, dates, "first")
        last, last_at = level_value(frame, metric, role, dates, "last")
        delta, pct = change(first, last, role)
        out.update(first=first, last=last, change=delta, change_pct=pct, mean=_num(values.mean()),
                   first_at=_when(first_at), last_at=_when(last_at))
    return out


def _num(value: Any) -> float | None:
    return None if pd.isna(value) else float(value)


def _when(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()


def overall(frame: pd.DataFrame, metric: str) -> dict[str, Any]:
    """The role's statistics over every row: the headline a breakdown must reconcile with."""
    role = measure_role(frame, metric)
    return stats(frame, metric, role, _level_dates(frame, role))


def _level_dates(frame: pd.DataFrame, role: ColumnRole) -> pd.Series | None:
    date_col = frames.date_column(frame)
    return parse_dates(frame[date_col]) if date_col and role.role == "level" else None


@dataclass
class Breakdown:
    """A measure by one key, with the headline it must reconcile with."""

    group_by: str
    metric: str
    role: ColumnRole
    groups: list[dict[str, Any]]  # {"group", "rows", <role stats>, ["share"]}, largest first, (missing) last
    overall: dict[str, Any]  # the same statistics over every row
    missing_rows: int

    @property
    def total(self) -> float | None:
        """The headline total, for additive measures only."""
        return self.overall.get("sum")


def breakdown(frame: pd.DataFrame, group_by: str, metric: str) -> Breakdown:
    """``metric`` per value of ``group_by`` (nulls grouped as ``(missing)``), by the metric's role."""
    role = measure_role(frame, metric)
    dates = _level_dates(frame, role)
    keys = group_keys(frame[group_by])
    overall = stats(frame, metric, role, dates)
    groups = []
    for key, part in frame.groupby(keys, sort=False, dropna=False):
        row = {"group": str(key), **stats(part, metric, role, None if dates is None else dates[part.index])}
        if role.role == "additive":
            row["share"] = row["sum"] / overall["sum"] if overall["sum"] else None
        groups.append(row)
    primary = STATS[role.role][0]
    missing_label = keys[frame[group_by].isna()].iloc[0] if frame[group_by].isna().any() else None
    groups.sort(key=lambda g: (g["group"] == missing_label, -(g[primary] if g[primary] is not None else -np.inf)))
    return Breakdown(group_by, metric, role, groups, overall, int(frame[group_by].isna().sum()))


@dataclass
class Trend:
    """A measure per period, aggregated with its role's rule, and its change."""

    metric: str
    role: ColumnRole
    period: str
    rule: str  # sum, mean or last
    series: pd.Series  # period label -> value
    partial: list[str] = field(default_factory=list)  # edge periods the data covers only in part
    compared: tuple[str, str] | None = None  # the periods the change is measured between
    change: float | None = None
    change_pct: float | None = None
    slope: float | None = None
    rows_without_date: int = 0

    @property
    def direction(self) -> str:
        """The sign of the reported change (last compared period minus the first), in words.

        Never the fitted slope's sign: noisy data can slope up while ending lower than it started,
        and a report saying "up: changed -1.42" contradicts itself. The slope is reported beside it.
        """
        if self.change is None:
            return "unknown"  # fewer than two complete periods: no direction to claim
        return "up" if self.change > 0 else "down" if self.change < 0 else "flat"

    @property
    def first_value(self) -> float | None:
        return None if self.compared is None else float(self.series[self.compared[0]])

    @property
    def last_value(self) -> float | None:
        return None if self.compared is None else float(self.series[self.compared[1]])

    @property
    def peak(self) -> str:
        return str(self.series.idxmax())


def trend(frame: pd.DataFrame, date_column: str | None, metric: str, period: str = "month") -> Trend:
    """Per-period values of ``metric``: sum (additive), mean (non-additive) or end-of-period (level)."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}, got {period!r}")
    date_column = frames.check_column(frame, date_column) if date_column else frames.date_column(frame)
    if date_column is None:
        raise ValueError("No date column found; pass date_column with a column name.")
    role = measure_role(frame, metric)
    dates = parse_dates(frame[date_column])
    data = pd.DataFrame({"date": dates, "value": frame[metric]})[dates.notna()]
    buckets = data["date"].dt.to_period(PERIODS[period])
    if role.role == "additive":
        series = data.groupby(buckets)["value"].sum()
    elif role.role == "non_additive":
        series = data.groupby(buckets)["value"].mean()
    else:  # level: the value at each period's last moment, rows at that moment combined by role.across
        data = data.dropna(subset=["value"])
        buckets = data["date"].dt.to_period(PERIODS[period])
        at_end = data[data["date"] == data.groupby(buckets)["date"].transform("max")]
        series = at_end.groupby(at_end["date"].dt.to_period(PERIODS[period]))["value"].agg(role.across)
    series = series.dropna().sort_index()
    partial = partial_periods(data["date"], series.index) if role.role == "additive" else []
    labelled = pd.Series(series.to_numpy(dtype=float), index=[str(p) for p in series.index], name=metric)
    result = Trend(metric, role, period, role.rule, labelled, [str(p) for p in partial],
                   rows_without_date=int(dates.isna().sum()))
    complete = labelled.drop(index=result.partial)  # partial edge periods are shown, never compared
    if len(complete) >= 2:
        result.compared = (str(complete.index[0]), str(complete.index[-1]))
        result.change, result.change_pct = change(float(complete.iloc[0]), float(complete.iloc[-1]), role)
        result.slope = float(np.polyfit(np.arange(len(complete)), complete.to_numpy(dtype=float), 1)[0])
    return result


def partial_periods(dates: pd.Series, periods: pd.Index) -> list[pd.Period]:
    """First/last periods the data starts late in or ends early in (beyond its usual spacing).

    Daily data starting on the 15th makes a half month; monthly data stamped on the 1st does not.
    """
    if len(periods) < 2:
        return []
    distinct = pd.Series(dates.dropna().unique()).sort_values()
    spacing = distinct.diff().median() if len(distinct) > 1 else pd.Timedelta(0)
    slack = max(2 * spacing, pd.Timedelta(days=1))
    out = []
    first, last = periods[0], periods[-1]
    if distinct.iloc[0] - first.start_time > slack:
        out.append(first)
    if last.end_time - distinct.iloc[-1] > slack + pd.Timedelta(days=1):
        out.append(last)
    return out


def outlier_mask(series: pd.Series, method: str = "iqr") -> pd.Series:
    """IQR (beyond 1.5 x the interquartile range) or robust z-score (|0.6745 (x - median) / MAD| > 3.5)."""
    values = series.astype(float)
    if method == "iqr":
        q1, q3 = values.quantile([0.25, 0.75])
        spread = q3 - q1
        return (values < q1 - 1.5 * spread) | (values > q3 + 1.5 * spread)
    if method == "zscore":
        median = values.median()
        mad = (values - median).abs().median()
        if not mad:
            return pd.Series(False, index=series.index)
        return (0.6745 * (values - median) / mad).abs() > 3.5
    raise ValueError(f"method must be 'iqr' or 'zscore', got {method!r}")
