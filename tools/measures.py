"""Numbers that follow a column's role: headline figures, breakdowns, trends, outliers.

Every aggregation here asks :mod:`relaygraph.tools.roles` how the measure may be combined —
``sum`` for additive measures, ``mean`` (and median) for non-additive ones, ``last`` (with
first and change) for levels — so no tool can sum a temperature or a balance over time.

Three promises the tests check on generated frames:

* a breakdown keeps rows whose key is missing, as the group ``(missing)``, so an additive
  measure's groups add up to the headline total, and shares are taken of that same total —
  only when every group is on one side of zero (:func:`shares_are_parts`);
* a trend aggregates each period with the role's rule, and change is measured between
  complete periods for additive measures (a half month's sales are not a drop);
* nothing here returns a sum for a column whose role is not additive.

A level in a long table holds several series (a ticker's closes, each store's stock): the
total at a moment is each series' latest value at or before it, combined by the level's
``across`` rule, so a store that did not report this month still counts with its last known
stock — carried forward, and counted as such — instead of vanishing from the total.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from relaygraph.tools import frames
from relaygraph.tools.roles import ColumnRole, infer_roles, names_a_series, role_of

MISSING = "(missing)"
PERIODS = {"day": "D", "week": "W", "month": "M", "quarter": "Q", "year": "Y"}
#: The statistics each role reports per group, primary first.
STATS = {"additive": ("sum", "mean"), "non_additive": ("mean", "median", "min", "max"),
         "level": ("last", "first", "change", "mean")}


def label(metric: str, stat: str) -> str:
    """What a number is, for people: ``revenue (sum)``, ``unit_price (mean)``."""
    return f"{metric} ({stat})"


parse_dates = frames.parse_dates  # one parser, one day/month order per column (tools.frames.date_order)


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


def entity_columns(frame: pd.DataFrame, dates: pd.Series, metric: str) -> list[str]:
    """The columns that tell apart the series a long table of levels holds, e.g. ``ticker`` or
    ``warehouse`` + ``sku``; ``[]`` for one series.

    First every column that names a series (an identifier such as ``store_id``, or a category
    named like ``ticker``, ``store``, ``account``: :func:`~relaygraph.tools.roles.names_a_series`),
    less those the others imply (a store's region); then, while some series still has two readings
    at one moment, the category that leaves the fewest such clashes. Together they must leave each series two readings on average (a per-row
    id is not a series). Readings of one series at one moment combine by the level's ``across``.
    """
    ok = frame[metric].notna() & dates.notna()
    data, when = frame[ok], dates[ok]
    if data.empty:
        return []
    candidates = [r for c, r in infer_roles(frame).items()
                  if r.role in ("category", "identifier") and c in data and 1 < data[c].nunique(dropna=False)]

    def repeats(columns: list[str]) -> bool:  # each series keeps two readings on average
        return len(data[columns].drop_duplicates()) * 2 <= len(data)

    def clashes(columns: list[str]) -> int:
        return int(pd.concat([data[columns], when.rename("\0when")], axis=1).duplicated().sum())

    chosen: list[str] = []
    for role in candidates:
        if names_a_series(role) and repeats(chosen + [role.column]):
            chosen.append(role.column)
    for column in sorted(chosen, key=lambda c: data[c].nunique(dropna=False)):  # coarsest first
        fewer = [c for c in chosen if c != column]
        if fewer and len(data[fewer].drop_duplicates()) == len(data[chosen].drop_duplicates()):
            chosen = fewer  # implied by the others (a store's region): it splits no series
    rest = [r.column for r in candidates if r.column not in chosen]
    best = clashes(chosen)
    while best and rest:
        tried = [(clashes(chosen + [c]), i, c) for i, c in enumerate(rest) if repeats(chosen + [c])]
        if not tried:
            break
        score, _, column = min(tried)
        if score >= best:
            break
        chosen.append(column)
        rest.remove(column)
        best = score
    return chosen


def entity_keys(frame: pd.DataFrame, entities: list[str]) -> pd.Series:
    """One series number per row (all 0 when the table is one series); a null key is its own series."""
    if not entities:
        return pd.Series(0, index=frame.index)
    return frame.groupby(entities, dropna=False, sort=False).ngroup()


@dataclass(frozen=True)
class LevelFrame:
    """What a level needs besides its values: when each row was read and which series it belongs to."""

    dates: pd.Series
    keys: pd.Series
    entities: list[str]

    def part(self, index: pd.Index) -> LevelFrame:
        return LevelFrame(self.dates[index], self.keys[index], self.entities)


def level_frame(frame: pd.DataFrame, metric: str, role: ColumnRole, date_column: str | None = None
                ) -> LevelFrame | None:
    """Dates and series keys of a level (None for other roles, or with no date column)."""
    if role.role != "level":
        return None
    date_column = date_column or frames.date_column(frame)
    if not date_column:
        return None
    dates = parse_dates(frame[date_column])
    entities = entity_columns(frame, dates, metric)
    return LevelFrame(dates, entity_keys(frame, entities), entities)


def level_value(frame: pd.DataFrame, metric: str, role: ColumnRole, level: LevelFrame | None,
                pick: str) -> tuple[float | None, Any, int]:
    """A level's ``first`` or ``last`` value, the moment it stands for, and how many series' values
    in it were read at another moment.

    ``last`` combines every series' latest reading: the total at the latest moment, each series'
    value carried forward from its own last reading (counted). ``first`` combines every series'
    first reading, so ``change`` is the series' changes combined, not a store that opened later
    counted as growth (series first read after the earliest moment are counted). Rows of one
    series at one moment, and the series, combine by ``role.across``. Without a date column,
    "moment" means file order (the first or last non-null row).
    """
    values = frame[metric]
    if level is None:
        present = values.dropna()
        if present.empty:
            return None, None, 0
        return float(present.iloc[0 if pick == "first" else -1]), None, 0
    ok = values.notna() & level.dates.notna()
    if not ok.any():
        return None, None, 0
    data = pd.DataFrame({"when": level.dates[ok], "value": values[ok], "key": level.keys[ok]})
    edge = "min" if pick == "first" else "max"
    moment = data["when"].agg(edge)
    at_edge = data[data["when"] == data.groupby("key")["when"].transform(edge)]
    per_series = at_edge.groupby("key").agg(value=("value", role.across), when=("when", edge))
    elsewhere = int((per_series["when"] != moment).sum())
    return float(per_series["value"].agg(role.across)), moment, elsewhere


def level_series(dates: pd.Series, values: pd.Series, keys: pd.Series, across: str, freq: str
                 ) -> tuple[pd.Series, pd.Series]:
    """Per period, the level's end-of-period total, and how many series in it were carried forward.

    Each series' value in a period is its value at its last moment in that period; a series with
    no row in a period keeps its value from its latest earlier period (carried forward); series
    not yet started count for nothing. Only periods with at least one reading are listed.
    """
    data = pd.DataFrame({"when": dates, "value": values, "key": keys}).dropna(subset=["when", "value"])
    if data.empty:
        empty = pd.Series(dtype=float)
        return empty, empty.astype(int)
    at_moment = data.groupby(["key", "when"])["value"].agg(across).reset_index()
    at_moment["period"] = at_moment["when"].dt.to_period(freq)
    last = at_moment.sort_values("when").groupby(["period", "key"])["value"].last()
    wide = last.unstack("key").sort_index()
    filled = wide.ffill()
    carried = (filled.notna() & wide.isna()).sum(axis=1)
    return filled.agg(across, axis=1), carried


def series_note(role: ColumnRole, series_by: list[str], series_count: int, carried: int) -> str:
    """How a level's figure combines its series, in words (``""`` for one series):
    ``summed over 12 series (one per warehouse × sku), 2 carried forward from an earlier reading``."""
    if role.role != "level" or not series_by:
        return ""
    how = "summed" if role.across == "sum" else "averaged"
    text = f"{how} over {series_count:,} series (one per {' × '.join(map(str, series_by))})"
    if carried:
        text += f", {carried:,} carried forward from an earlier reading"
    return text


def change(first: float | None, last: float | None, role: ColumnRole) -> tuple[float | None, float | None]:
    """Absolute change, and relative change where it means something (positive base, ratio scale)."""
    if first is None or last is None:
        return None, None
    pct = (last - first) / first if first > 0 and not role.interval else None
    return last - first, pct


def stats(frame: pd.DataFrame, metric: str, role: ColumnRole, level: LevelFrame | None) -> dict[str, Any]:
    """The role's statistics over ``frame`` (one group, or the whole data)."""
    values = frame[metric]
    out: dict[str, Any] = {"rows": len(frame), "values": int(values.notna().sum())}
    if role.role == "additive":
        total = float(values.sum())
        out.update(sum=int(round(total)) if whole_numbers(values) else total, mean=_num(values.mean()))
    elif role.role == "non_additive":
        out.update(mean=_num(values.mean()), median=_num(values.median()), min=_num(values.min()),
                   max=_num(values.max()))
    else:
        first, first_at, later = level_value(frame, metric, role, level, "first")
        last, last_at, carried = level_value(frame, metric, role, level, "last")
        delta, pct = change(first, last, role)
        out.update(first=first, last=last, change=delta, change_pct=pct, mean=_num(values.mean()),
                   first_at=_when(first_at), last_at=_when(last_at))
        if level is not None and level.entities:
            out.update(series_count=int(level.keys[values.notna() & level.dates.notna()].nunique()),
                       series_by=list(level.entities), last_carried_forward=carried, first_read_later=later)
    return out


def whole_numbers(values: pd.Series) -> bool:
    """Whether a measure holds counts: every value a whole number (an integer column, or one read as
    floats because of a gap). Its sums are counts too, so they are ints — shown as ``976``, not
    ``976.00``; a mean is still a float."""
    present = pd.to_numeric(values, errors="coerce").dropna()
    return bool(len(present)) and bool((present == present.round()).all()) and bool(present.abs().max() < 2**53)


def _num(value: Any) -> float | None:
    return None if pd.isna(value) else float(value)


def _when(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()


def overall(frame: pd.DataFrame, metric: str) -> dict[str, Any]:
    """The role's statistics over every row: the headline a breakdown must reconcile with."""
    role = measure_role(frame, metric)
    return stats(frame, metric, role, level_frame(frame, metric, role))


@dataclass
class Breakdown:
    """A measure by one key, with the headline it must reconcile with."""

    group_by: str
    metric: str
    role: ColumnRole
    groups: list[dict[str, Any]]  # {"group", "rows", <role stats>, ["share"]}, largest first, (missing) last
    overall: dict[str, Any]  # the same statistics over every row
    missing_rows: int
    mixed_signs: bool = False  # groups on both sides of zero: no shares (see shares_are_parts)

    @property
    def total(self) -> float | None:
        """The headline total, for additive measures only."""
        return self.overall.get("sum")


MIXED_SIGNS_NOTE = "no shares: the groups have mixed signs, so a share of the net total could pass 100% or go negative"


def shares_are_parts(values: Any) -> bool:
    """Whether shares of the total of ``values`` are parts of a whole: only when no value pulls the
    other way. With credits and debits (bank amounts, profit and loss) the net total can be smaller
    than a part, so a "share" reads 138% or -69%; such a breakdown gives sums and no shares."""
    numbers = [float(v) for v in values if v is not None and not pd.isna(v)]
    return not (any(v > 0 for v in numbers) and any(v < 0 for v in numbers))


def breakdown(frame: pd.DataFrame, group_by: str, metric: str) -> Breakdown:
    """``metric`` per value of ``group_by`` (nulls grouped as ``(missing)``), by the metric's role."""
    role = measure_role(frame, metric)
    level = level_frame(frame, metric, role)
    keys = group_keys(frame[group_by])
    overall = stats(frame, metric, role, level)
    groups = []
    for key, part in frame.groupby(keys, sort=False, dropna=False):
        groups.append({"group": str(key), **stats(part, metric, role,
                                                   None if level is None else level.part(part.index))})
    mixed = role.role == "additive" and not shares_are_parts(g["sum"] for g in groups)
    if role.role == "additive":
        for row in groups:
            row["share"] = row["sum"] / overall["sum"] if overall["sum"] and not mixed else None
    primary = STATS[role.role][0]
    missing_label = keys[frame[group_by].isna()].iloc[0] if frame[group_by].isna().any() else None
    groups.sort(key=lambda g: (g["group"] == missing_label, -(g[primary] if g[primary] is not None else -np.inf)))
    return Breakdown(group_by, metric, role, groups, overall, int(frame[group_by].isna().sum()), mixed)


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
    series_by: list[str] = field(default_factory=list)  # levels: the columns telling series apart
    series_count: int = 1  # levels: how many series each period's value combines
    carried: dict[str, int] = field(default_factory=dict)  # levels: period -> series carried forward into it
    date_note: str | None = None  # how the dates were read when no value tells day from month (frames.date_order_note)

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
    level = level_frame(frame, metric, role, date_column)
    dates = parse_dates(frame[date_column])
    data = pd.DataFrame({"date": dates, "value": frame[metric]})[dates.notna()]
    buckets = data["date"].dt.to_period(PERIODS[period])
    if role.role == "additive":
        series = data.groupby(buckets)["value"].sum()
    elif role.role == "non_additive":
        series = data.groupby(buckets)["value"].mean()
    else:  # level: each series' end-of-period value (carried forward when it has none), combined
        assert level is not None  # level_frame is None only for other roles or without a date column
        series, carried = level_series(level.dates, frame[metric], level.keys, str(role.across), PERIODS[period])
        data = data.dropna(subset=["value"])
    series = series.dropna().sort_index()
    partial = partial_periods(data["date"], series.index) if role.role == "additive" else []
    labelled = pd.Series(series.to_numpy(dtype=float), index=[str(p) for p in series.index], name=metric)
    result = Trend(metric, role, period, role.rule, labelled, [str(p) for p in partial],
                   rows_without_date=int(dates.isna().sum()),
                   date_note=frames.date_order_note(frame[date_column], str(date_column)))
    if level is not None and level.entities:
        result.series_by = list(level.entities)
        result.series_count = int(level.keys[data.index].nunique())
        result.carried = {str(p): int(n) for p, n in carried.items() if n}
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
