"""Cleaning that drops only what is provably invalid, and counts every dropped row by reason.

A row is dropped for exactly one of three reasons, checked in this order (a row is counted
under the first that applies, so the counts add up to ``rows_in - rows_out``):

1. ``duplicate`` — an exact copy of an earlier row;
2. ``unparseable: <column>`` — a column whose values are numbers (>= 95% parse) holds one
   that is not a number and not a missing-value marker (``"12..5"``, ``"abc"``);
3. ``constraint: <column> >= 0`` (or any rule) — the value breaks a constraint the caller
   declared, or one the column's meaning implies (:mod:`relaygraph.tools.roles`: a quantity,
   count or price cannot be negative, relative humidity cannot exceed 100).

An implied constraint is applied only while it is clearly an error check: when more than 5% of
a column breaks it, the values carry meaning (negative quantities in a returns ledger) and the
rule is reported as *not applied*, with the reason. A negative number alone is never invalid:
temperatures, profit, balances and returns keep their sign. Missing values are not invalid
either — they stay, and are reported. Missing-value markers in numeric columns (``"n/a"``,
``"-"``, ``"unknown"``) become nulls, counted, not dropped.

Written here rather than with a validation library (pandera, Great Expectations): the rules are
``column op number`` plus the implied ones, and what matters is the *accounting* — one reason per
dropped row, in a fixed order, and rules reported as not applied — which those libraries leave
to the caller anyway.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pandas as pd
from relaygraph.tools import frames
from relaygraph.tools.roles import role_of

NULL_MARKERS = {"", "-", "--", "?", "na", "n/a", "nan", "null", "none", "unknown", "missing", "#n/a"}
NUMERIC_SHARE = 0.95  # a text column is numeric when at least this share of its values parse
IMPLIED_MAX_SHARE = 0.05  # an implied rule stops being an error check beyond this share of breaches
OPS: dict[str, Callable[[pd.Series, float], pd.Series]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "!=": operator.ne,
}


@dataclass(frozen=True)
class Constraint:
    """``column op bound`` — a value that fails it is invalid (a missing value never fails)."""

    column: str
    op: str
    bound: float
    source: str = "declared"

    def __str__(self) -> str:
        return f"{self.column} {self.op} {self.bound:g}"

    def breaches(self, frame: pd.DataFrame) -> pd.Series:
        values = frame[self.column]
        if not pd.api.types.is_numeric_dtype(values):
            raise ValueError(f"Constraint {self}: column {self.column!r} is not numeric.")
        return values.notna() & ~OPS[self.op](values, self.bound)


_RULE = re.compile(r"^\s*(?P<column>.+?)\s*(?P<op>>=|<=|!=|>|<)\s*(?P<bound>[-+]?\d+(\.\d+)?([eE][-+]?\d+)?)\s*$")


def parse_constraints(text: str | None, columns: Iterable[str]) -> list[Constraint]:
    """``"quantity >= 0; humidity <= 100"`` -> constraints (separated by ``;`` or newlines)."""
    known = [str(c) for c in columns]
    out = []
    for part in re.split(r"[;\n]", text or ""):
        if not part.strip():
            continue
        match = _RULE.match(part)
        if not match:
            raise ValueError(f"Constraint {part.strip()!r} must look like 'column >= number' "
                             f"(operators: {', '.join(OPS)}).")
        column = match["column"].strip().strip("`'\"")
        if column not in known:
            raise ValueError(f"Constraint {part.strip()!r}: unknown column {column!r}; columns are: {', '.join(known)}.")
        out.append(Constraint(column, match["op"], float(match["bound"])))
    return out


def unparseable(frame: pd.DataFrame) -> dict[str, tuple[pd.Series, pd.Series]]:
    """Text columns that are numbers: ``column -> (parsed values, mask of unparseable values)``.

    Missing-value markers parse as nulls; what remains unparseable in a >= 95%-numeric column
    is a broken value.
    """
    out = {}
    for col in frame.columns:
        series = frame[col]
        if not frames.is_text(series) or series.isna().all():
            continue
        text = series.astype("string").str.strip()
        marker = text.str.lower().isin(NULL_MARKERS)
        candidates = text.where(~marker & text.notna())
        parsed = pd.to_numeric(candidates, errors="coerce")
        present = candidates.notna()
        if present.sum() and (parsed[present].notna().mean() >= NUMERIC_SHARE):
            out[str(col)] = (parsed.astype(float), (present & parsed.isna()).fillna(False).astype(bool))
    return out


@dataclass
class ImpliedRules:
    applied: list[Constraint] = field(default_factory=list)
    not_applied: dict[str, str] = field(default_factory=dict)  # rule -> why not


def implied_constraints(frame: pd.DataFrame) -> ImpliedRules:
    """Constraints the columns' meanings imply (see :mod:`relaygraph.tools.roles`)."""
    rules = ImpliedRules()
    for col in frames.numeric_columns(frame):
        role = role_of(frame, str(col))
        candidates = []
        if role.minimum is not None:
            candidates.append(Constraint(str(col), ">=", role.minimum, f"implied: {role.reason}"))
        if role.maximum is not None:
            candidates.append(Constraint(str(col), "<=", role.maximum, f"implied: {role.reason}"))
        present = int(frame[col].notna().sum())
        for rule in candidates:
            breaches = int(rule.breaches(frame).sum())
            if breaches and breaches > IMPLIED_MAX_SHARE * present:
                rules.not_applied[str(rule)] = (
                    f"{breaches} of {present} values break it ({breaches / present:.0%}), so the values "
                    "carry meaning rather than errors")
            else:
                rules.applied.append(rule)
    return rules


@dataclass
class Cleaned:
    frame: pd.DataFrame
    rows_in: int
    dropped: dict[str, int]  # reason -> rows, in the order the reasons are checked
    normalised: dict[str, int]  # column -> text values rewritten (whitespace/case)
    nulls_from_markers: dict[str, int]  # column -> "n/a"-like markers turned into nulls
    constraints: list[Constraint]  # every rule that was enforced
    not_applied: dict[str, str]
    kept: pd.Index  # the input's row labels that survived, in order

    @property
    def rows_out(self) -> int:
        return len(self.frame)


def normalise_text(series: pd.Series) -> tuple[pd.Series, int]:
    """Trim whitespace and unify case variants to the most common spelling ('north' -> 'North')."""
    stripped = series.str.strip()
    canonical = (
        stripped.dropna().groupby(stripped.dropna().str.casefold()).agg(lambda s: s.value_counts().idxmax())
    )
    normalised = stripped.str.casefold().map(canonical).where(stripped.notna(), None)
    changed = int(((normalised != series) & series.notna()).sum())
    return normalised, changed


def clean_frame(frame: pd.DataFrame, declared: Iterable[Constraint] = ()) -> Cleaned:
    """Drop duplicates, unparseable values and constraint breaches; count each by reason."""
    rows_in = len(frame)
    frame = frame.copy()
    drop = pd.Series(False, index=frame.index)
    dropped: dict[str, int] = {}

    def mark(reason: str, mask: pd.Series) -> None:
        new = mask & ~drop
        if new.any():
            dropped[reason] = dropped.get(reason, 0) + int(new.sum())
            drop.loc[new[new].index] = True

    mark("duplicate", frame.duplicated())
    markers: dict[str, int] = {}
    for col, (parsed, bad) in unparseable(frame).items():
        mark(f"unparseable: {col}", bad)
        was_null = frame[col].isna()
        markers_here = int((parsed.isna() & ~bad & ~was_null).sum())
        if markers_here:
            markers[col] = markers_here
        frame[col] = parsed
    declared = list(declared)
    implied = implied_constraints(frame[~drop])
    enforced = declared + [r for r in implied.applied if str(r) not in {str(d) for d in declared}]
    for rule in enforced:
        mark(f"constraint: {rule}", rule.breaches(frame))
    frame = frame[~drop]
    kept = frame.index
    normalised = {}
    for col in frames.categorical_columns(frame, max_distinct=200):
        frame[col], changed = normalise_text(frame[col].astype(object))
        if changed:
            normalised[str(col)] = changed
    return Cleaned(frame.reset_index(drop=True), rows_in, dropped, normalised, markers, enforced,
                   implied.not_applied, kept)
