"""Figures computed per partition and combined: the report of a run scaled down to partitions.

A planned run that ran out of resources is replanned onto row partitions (``partition="k/n"``,
the contiguous slices of :func:`relaygraph.tools.frames.take_partition`). Its report must then
be what the partitions computed, *combined* — not the whole dataset recomputed in one pass, which
is what the run could not afford. Each statistic is combined by what its mathematics allows:

=========================  ==========================================================================
statistic                  combined from the partitions' results
=========================  ==========================================================================
rows, values, sums         added
mean                       the added sums over the added value counts (weighted by counts, never a
                           mean of the partitions' means)
min, max                   the least minimum, the greatest maximum
level first / last         per series (a long table's ticker, store × sku …): its earliest / latest
                           moment over all partitions, its rows at that moment combined by the
                           level's rule (sum, or a mean weighted by their counts); then the series
                           combined by that rule, as one pass does; without a date column, file order
share                      a group's added sum over the added total
median, IQR quartiles      *not* combinable from partition results: recomputed over the partitions'
                           values of the measure gathered together (exact; the report says so)
outlier count              each partition's values beyond the recomputed quartiles' fences, added
=========================  ==========================================================================

So every combined figure equals the whole-data figure of :mod:`relaygraph.tools.measures` up to
floating-point rounding (the property tests check this over random frames and partition counts).
Column choices — which measure, its role, the group key labels, the date column, which columns
tell a level's series apart — are made once for the dataset, as a one-pass report makes them:
they say what the rows are, not what the figures are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from relaygraph.tools import frames
from relaygraph.tools.measures import (
    MISSING,
    STATS,
    Breakdown,
    LevelFrame,
    change,
    entity_columns,
    group_keys,
    level_frame,
    measure_role,
    parse_dates,
    shares_are_parts,
    whole_numbers,
)
from relaygraph.tools.roles import ColumnRole

#: The report's line saying its figures were computed from partitions, then how (:data:`METHOD`);
#: the critic recognises it (:mod:`relaygraph.coordination.critique`).
PARTITIONED_LINE = "Computed from {partitions} partitions of the rows:"
#: How partition results are combined, in words.
METHOD = ("sums, counts, minima and maxima added or compared across partitions, means weighted by their "
          "value counts; medians and IQR quartiles recomputed over all partitions' values (they cannot "
          "be combined from partition results)")


#: A level's reading per series at its first or last moment: series key -> (moment, sum of the
#: values read then, rows read then).
Readings = dict[Any, tuple[Any, float, int]]


@dataclass
class Partial:
    """One partition's combinable statistics of a measure (over one group, or all its rows)."""

    rows: int = 0
    values: int = 0
    total: float = 0.0
    low: float | None = None
    high: float | None = None
    first: Readings = field(default_factory=dict)  # levels only
    last: Readings = field(default_factory=dict)
    #: the non-null values, kept only where a median must be recomputed
    gathered: np.ndarray = field(default_factory=lambda: np.empty(0))
    #: every value a whole number (or none present): the combined sum is a count, as in one pass
    whole: bool = True


@dataclass(frozen=True)
class Timeline:
    """What orders a level's rows: moments (dates, else file positions) and series keys."""

    moments: pd.Series
    keys: pd.Series
    level: LevelFrame | None  # None: no date column, one series in file order

    def part(self, index: pd.Index) -> Timeline:
        return Timeline(self.moments[index], self.keys[index], self.level)


def bounds(rows: int, partitions: int) -> list[tuple[int, int]]:
    """Row ranges of the ``partitions`` slices, exactly as ``take_partition`` cuts them."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    cut = np.linspace(0, rows, partitions + 1).astype(int)
    return [(int(cut[k]), int(cut[k + 1])) for k in range(partitions)]


def _readings(data: pd.DataFrame, edge: str) -> Readings:
    at = data[data["when"] == data.groupby("key")["when"].transform(edge)]
    found = at.groupby("key").agg(when=("when", edge), total=("value", "sum"), rows=("value", "size"))
    return {key: (row.when, float(row.total), int(row.rows)) for key, row in found.iterrows()}


def partial(values: pd.Series, role: ColumnRole, timeline: Timeline | None, *, keep: bool = False) -> Partial:
    """The statistics of ``values`` (one partition's rows) that combine across partitions.

    ``timeline`` (levels only) orders the rows in time and tells their series apart; ``keep``
    keeps the values themselves (for a recomputed median).
    """
    present = values.dropna().astype(float)
    out = Partial(rows=len(values), values=len(present), total=float(present.sum()),
                  whole=not len(present) or whole_numbers(present),
                  low=float(present.min()) if len(present) else None,
                  high=float(present.max()) if len(present) else None)
    if keep:
        out.gathered = present.to_numpy()
    if role.role == "level" and timeline is not None:
        ok = values.notna() & timeline.moments.notna()
        data = pd.DataFrame({"when": timeline.moments[ok], "value": values[ok].astype(float),
                             "key": timeline.keys[ok]})
        if not data.empty:
            out.first, out.last = _readings(data, "min"), _readings(data, "max")
    return out


def _merge(parts: Sequence[Partial], which: str) -> Readings:
    """Each series' reading at its earliest (``first``) or latest moment over all partitions."""
    merged: Readings = {}
    pick = min if which == "first" else max
    for p in parts:
        for key, (moment, total, rows) in getattr(p, which).items():
            seen = merged.get(key)
            if seen is None or pick(seen[0], moment) != seen[0]:
                merged[key] = (moment, total, rows)
            elif seen[0] == moment:  # the series read at that moment in more than one partition
                merged[key] = (moment, seen[1] + total, seen[2] + rows)
    return merged


def _at(parts: Sequence[Partial], which: str, role: ColumnRole) -> tuple[float | None, Any, int]:
    """A level's combined first or last value, its moment, and how many series' readings are
    from another moment (as :func:`relaygraph.tools.measures.level_value` returns them)."""
    merged = _merge(parts, which)
    if not merged:
        return None, None, 0
    per_series = [total if role.across == "sum" else total / rows for _, total, rows in merged.values()]
    moments = [m for m, _, _ in merged.values()]
    moment = min(moments) if which == "first" else max(moments)
    value = float(sum(per_series)) if role.across == "sum" else float(sum(per_series) / len(per_series))
    return value, moment, sum(1 for m in moments if m != moment)


def combine(parts: Sequence[Partial], role: ColumnRole, timeline: Timeline | None = None) -> dict[str, Any]:
    """The role's statistics (as :func:`relaygraph.tools.measures.stats` returns them) from the
    partitions' partials; ``timeline`` says whether a level's moments are dates and its series."""
    rows, values = sum(p.rows for p in parts), sum(p.values for p in parts)
    total = float(sum(p.total for p in parts))
    mean = total / values if values else None
    lows = [p.low for p in parts if p.low is not None]
    highs = [p.high for p in parts if p.high is not None]
    out: dict[str, Any] = {"rows": rows, "values": values}
    if role.role == "additive":
        whole = values > 0 and all(p.whole for p in parts)
        out.update(sum=int(round(total)) if whole else total, mean=mean)
    elif role.role == "non_additive":
        gathered = np.concatenate([p.gathered for p in parts]) if parts else np.empty(0)
        out.update(mean=mean, median=float(np.median(gathered)) if len(gathered) else None,
                   min=min(lows) if lows else None, max=max(highs) if highs else None)
    else:
        first, first_at, later = _at(parts, "first", role)
        last, last_at, carried = _at(parts, "last", role)
        delta, pct = change(first, last, role)
        dated = timeline is not None and timeline.level is not None
        out.update(first=first, last=last, change=delta, change_pct=pct, mean=mean,
                   first_at=_when(first_at) if dated else None, last_at=_when(last_at) if dated else None)
        if timeline is not None and timeline.level is not None and timeline.level.entities:
            out.update(series_count=len(_merge(parts, "first")), series_by=list(timeline.level.entities),
                       last_carried_forward=carried, first_read_later=later)
    return out


def _when(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()


def _timeline(frame: pd.DataFrame, metric: str, role: ColumnRole) -> Timeline | None:
    """A level's timeline over the whole frame (dates and series keys, else file order)."""
    if role.role != "level":
        return None
    level = level_frame(frame, metric, role)
    if level is not None:
        return Timeline(level.dates, level.keys, level)
    return Timeline(pd.Series(np.arange(len(frame)), index=frame.index), pd.Series(0, index=frame.index), None)


def overall(frame: pd.DataFrame, metric: str, partitions: int) -> dict[str, Any]:
    """The headline statistics of ``metric``, computed per partition and combined."""
    frame = frame.reset_index(drop=True)
    role = measure_role(frame, metric)
    timeline = _timeline(frame, metric, role)
    parts = [partial(frame[metric].iloc[lo:hi], role, None if timeline is None else timeline.part(frame.index[lo:hi]),
                     keep=role.role == "non_additive")
             for lo, hi in bounds(len(frame), partitions)]
    return combine(parts, role, timeline)


def breakdown(frame: pd.DataFrame, group_by: str, metric: str, partitions: int) -> Breakdown:
    """:func:`relaygraph.tools.measures.breakdown`, computed per partition and combined: the
    same groups (``(missing)`` included), statistics and shares, in the same order."""
    frame = frame.reset_index(drop=True)
    role = measure_role(frame, metric)
    timeline = _timeline(frame, metric, role)
    keys = group_keys(frame[group_by])  # labels, decided once: "(missing)" must mean one thing
    keep = role.role == "non_additive"
    per_group: dict[str, list[Partial]] = {}  # first appearance order, as one pass groups them
    whole: list[Partial] = []
    for lo, hi in bounds(len(frame), partitions):
        values = frame[metric].iloc[lo:hi]
        whole.append(partial(values, role, None if timeline is None else timeline.part(values.index), keep=keep))
        for key, group in values.groupby(keys.iloc[lo:hi], sort=False):
            per_group.setdefault(str(key), []).append(
                partial(group, role, None if timeline is None else timeline.part(group.index), keep=keep))
    missing_label = keys[frame[group_by].isna()].iloc[0] if frame[group_by].isna().any() else None
    return _breakdown(group_by, metric, role, timeline, whole, per_group, missing_label,
                      int(frame[group_by].isna().sum()))


def _breakdown(group_by: str, metric: str, role: ColumnRole, timeline: Timeline | None, whole: list[Partial],
               per_group: dict[str, list[Partial]], missing_label: str | None, missing_rows: int) -> Breakdown:
    """The breakdown from the partitions' partials (overall and per group, groups in first
    appearance order): shares, and the order one pass gives (largest first, ``(missing)`` last)."""
    overall_stats = combine(whole, role, timeline)
    groups = []
    for key, parts in per_group.items():
        groups.append({"group": key, **combine(parts, role, timeline)})
    mixed = role.role == "additive" and not shares_are_parts(g["sum"] for g in groups)  # as one pass decides
    if role.role == "additive":
        for row in groups:
            row["share"] = row["sum"] / overall_stats["sum"] if overall_stats["sum"] and not mixed else None
    primary = STATS[role.role][0]
    groups.sort(key=lambda g: (g["group"] == missing_label, -(g[primary] if g[primary] is not None else -np.inf)))
    return Breakdown(group_by, metric, role, groups, overall_stats, missing_rows, mixed)


def outliers(values: pd.Series, partitions: int) -> dict[str, Any]:
    """IQR outliers of ``values``: quartiles recomputed over every partition's values, then each
    partition's values beyond the fences counted and added; largest value and median too."""
    values = values.reset_index(drop=True)
    return _outliers([values.iloc[lo:hi].dropna().astype(float).to_numpy() for lo, hi in bounds(len(values), partitions)])


def _outliers(slices: list[np.ndarray]) -> dict[str, Any]:
    """IQR outliers from each partition's non-null values (see :func:`outliers`)."""
    gathered = np.concatenate(slices) if slices else np.empty(0)
    if not len(gathered):
        return {"values": 0, "count": 0, "max": None, "median": None}
    q1, q3 = np.quantile(gathered, [0.25, 0.75])
    spread = q3 - q1
    low, high = q1 - 1.5 * spread, q3 + 1.5 * spread
    count = sum(int(((s < low) | (s > high)).sum()) for s in slices)
    return {"values": len(gathered), "count": count, "max": max(float(s.max()) for s in slices if len(s)),
            "median": float(np.median(gathered))}


# --- a report fed one partition at a time (a file too large for one pass) ---------------------------


@dataclass(frozen=True)
class Choices:
    """Column decisions a partitioned report makes once, before it reads any partition: the
    measure and its role, the group-by column and its ``(missing)`` label, the date column, and
    a level's series columns (None: not a level read by dates)."""

    metric: str
    role: ColumnRole
    group_by: str | None
    date_column: str | None
    entities: tuple[str, ...] | None
    missing_label: str

    @property
    def text_columns(self) -> tuple[str, ...]:
        """Columns that are labels: read as text in every partition, so a label reads alike in each."""
        return tuple(dict.fromkeys([*([self.group_by] if self.group_by else []), *(self.entities or ())]))


def choose(frame: pd.DataFrame, metric: str, group_by: str | None) -> Choices:
    """The :class:`Choices` for ``frame`` (the whole data, or a sample of its rows)."""
    role = measure_role(frame, metric)
    date_column = frames.date_column(frame)
    entities = None
    if role.role == "level" and date_column:
        entities = tuple(entity_columns(frame, parse_dates(frame[date_column]), metric))
    missing = MISSING
    if group_by is not None:
        labels = _labels(frame[group_by])
        missing = MISSING if MISSING not in set(labels.dropna()) else f"{MISSING} "
    return Choices(metric, role, group_by, date_column, entities, missing)


def _labels(series: pd.Series) -> pd.Series:
    """Group labels as text, nulls left null (:func:`relaygraph.tools.measures.group_keys`)."""
    return series.astype(object).where(series.notna(), None).map(lambda v: None if v is None else str(v))


def _series_keys(part: pd.DataFrame, entities: Sequence[str]) -> pd.Series:
    """A level's series per row, by its entity values (not a group number, which would differ
    from one partition to the next); a null is its own value; one series: all 0."""
    if not entities:
        return pd.Series(0, index=part.index)
    texts = [part[e].astype(object).where(part[e].notna(), "\x00null").map(str) for e in entities]
    keys = texts[0]
    for more in texts[1:]:
        keys = keys + "\x1f" + more
    return keys


class Accumulator:
    """The figures of a partitioned report, fed one partition (a :class:`~relaygraph.tools.frames.RowSource`
    slice, indexed by its rows' positions in the file) at a time: only the partitions' partials
    and the measure's non-null values (for the recomputed median and IQR fences) are kept."""

    def __init__(self, choices: Choices) -> None:
        self.choices = choices
        self.rows = 0
        self.whole: list[Partial] = []
        self.per_group: dict[str, list[Partial]] = {}
        self.slices: list[np.ndarray] = []
        self.missing_rows = 0

    def _timeline(self, part: pd.DataFrame) -> Timeline | None:
        c = self.choices
        if c.role.role != "level":
            return None
        if c.entities is not None and c.date_column is not None:
            dates = parse_dates(part[c.date_column])
            keys = _series_keys(part, c.entities)
            return Timeline(dates, keys, LevelFrame(dates, keys, list(c.entities)))
        return Timeline(pd.Series(part.index.to_numpy(), index=part.index), pd.Series(0, index=part.index), None)

    def add(self, part: pd.DataFrame) -> None:
        c = self.choices
        values = pd.to_numeric(part[c.metric], errors="coerce")
        timeline = self._timeline(part)
        keep = c.role.role == "non_additive"
        self.rows += len(part)
        self.whole.append(partial(values, c.role, timeline, keep=keep))
        self.slices.append(values.dropna().astype(float).to_numpy())
        if c.group_by is None:
            return
        self.missing_rows += int(part[c.group_by].isna().sum())
        keys = _labels(part[c.group_by]).fillna(c.missing_label)
        for key, group in values.groupby(keys, sort=False):
            self.per_group.setdefault(str(key), []).append(
                partial(group, c.role, None if timeline is None else timeline.part(group.index), keep=keep))

    def _meta(self) -> Timeline | None:
        """What :func:`combine` reads of a timeline: whether the level is read by dates, its series."""
        c, empty = self.choices, pd.Series(dtype=float)
        if c.role.role != "level":
            return None
        level = LevelFrame(empty, empty, list(c.entities)) if c.entities is not None else None
        return Timeline(empty, empty, level)

    def overall(self) -> dict[str, Any]:
        return combine(self.whole, self.choices.role, self._meta())

    def breakdown(self) -> Breakdown | None:
        c = self.choices
        if c.group_by is None:
            return None
        return _breakdown(c.group_by, c.metric, c.role, self._meta(), self.whole, self.per_group,
                          c.missing_label if self.missing_rows else None, self.missing_rows)

    def outliers(self) -> dict[str, Any]:
        return _outliers(self.slices)
