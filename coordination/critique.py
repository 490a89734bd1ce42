"""The report critique: is every figure in a report one that the tools reproduce?

A critic agent recomputes the report with the data tools (``profile_dataset``, ``aggregate``,
``detect_trends``, ``detect_outliers`` … on the dataset the report is about, and on its source);
:func:`check_report` then parses the report's Markdown and checks **every figure** in it against
the recomputed value *for that figure*:

==================  ===========================================================================
where               recomputed from (the critic's tool call on the report's dataset)
==================  ===========================================================================
Source line         rows and column count — ``profile_dataset``
headline            total / values / rows without a value (additive); mean, median, range
                    (non-additive); latest, first, change (level) — ``aggregate``'s ``overall``
breakdown table     each group's row (rows, each statistic, share) and the all-rows row, by
                    group name and column label — ``aggregate``'s ``groups``
trend               first and last compared month, change, change %, peak month and its value
                    — ``detect_trends`` (``period`` month)
outliers            outlier count, largest value, median — ``detect_outliers`` (IQR)
partitions line     none: "Computed from N partitions of the rows: …" says how the figures were
                    computed (per partition, combined), not a figure of the data; the combined
                    figures themselves are checked like any other, against one-pass
                    recomputations, which is exactly what an exact combination must equal
Agent notes         claims agents made along the way: each figure must match *some* value the
                    critic's tools returned (on either dataset), at its shown precision; a note
                    labelled as one partition's (``detect_outliers (partition 1/2): …``) is
                    checked against that partition's recomputation only, never the whole data's
==================  ===========================================================================

A figure that differs from its recomputed value by more than half a unit of its last shown
digit is a :class:`Discrepancy` carrying the recomputed value; so is a figure nothing recomputed
(the critic made no matching call, or the line is in no form the critic knows — a figure
outside these rules is never silently trusted). A reviser rewrites the report from the data
(``write_report``) without the notes that could not be reproduced; rounds repeat until a round
is clean or :data:`MAX_ROUNDS` is reached.

What counts as a figure in free text (Agent notes, unknown lines): every number (``2,995``,
``22.6%``, ``1,564,024.26``, ``-3``) except those inside dates (``2024-01``), node names (``validate#2``), paths, file names
and Markdown image/link targets. Small whole numbers up to 12 are matched against the counts of
lists and tables as well (``5 groups``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

MAX_ROUNDS = 3

_SKIP = re.compile(r"\S*/\S*|\w+#\d+|\d{4}-\d{2}(?:-\d{2})?(?:[T ][\d:.]+)?|\d{4}Q\d|`[^`]*`|\]\([^)]*\)|\w+\.(?:png|md|csv|parquet)")
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?%?|(?<![\w.])[-+]?\d+(?:\.\d+)?%?")


class Figure(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str
    value: float
    decimals: int
    percent: bool
    line: int


class Discrepancy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    figure: str
    line: int
    context: str
    reason: str
    what: str = ""  # what the figure states ("revenue (sum) of North"), where a rule knows it
    expected: float | None = None  # the recomputed value (a share or change % as a fraction)


def figures(markdown: str) -> list[Figure]:
    out = []
    for number, line in enumerate(markdown.splitlines(), 1):
        clean = _SKIP.sub(" ", line)
        for match in _NUMBER.finditer(clean):
            text = match.group(0)
            raw = text.rstrip("%").replace(",", "").lstrip("+")
            decimals = len(raw.split(".", 1)[1]) if "." in raw else 0
            out.append(Figure(text=text, value=float(raw), decimals=decimals, percent=text.endswith("%"),
                              line=number))
    return out


def values(found: Any) -> list[float]:
    """Every number in nested tool facts, plus the sizes of their lists and tables."""
    out: list[float] = []
    if isinstance(found, bool):
        return out
    if isinstance(found, (int, float)):
        if math.isfinite(found):
            out.append(float(found))
    elif isinstance(found, str):
        out += [f.value for f in figures(found)]
    elif isinstance(found, dict):
        out.append(float(len(found)))
        for v in found.values():
            out += values(v)
    elif isinstance(found, (list, tuple)):
        out.append(float(len(found)))
        for v in found:
            out += values(v)
    return out


def matches(figure: Figure, known: Iterable[float]) -> bool:
    tolerance = 0.5 * 10 ** -figure.decimals + 1e-9
    for k in known:
        candidates = (k, k * 100) if figure.percent else (k,)
        if any(abs(abs(figure.value) - abs(c)) <= tolerance for c in candidates):
            return True
    return False


def section_lines(markdown: str, heading: str | None) -> set[int]:
    """Line numbers (1-based) under ``## heading`` up to the next heading; every line if None."""
    lines = markdown.splitlines()
    if heading is None:
        return set(range(1, len(lines) + 1))
    inside, out = False, set()
    for number, line in enumerate(lines, 1):
        if line.startswith("#"):
            inside = line.lstrip("#").strip().lower() == heading.lower()
        elif inside:
            out.add(number)
    return out


def discrepancies(markdown: str, recomputed: Iterable[Any], *, section: str | None = None) -> list[Discrepancy]:
    """The report's figures (in ``section``, or anywhere) that no recomputed value reproduces."""
    known = [v for item in recomputed for v in values(item)]
    lines = markdown.splitlines()
    checked = section_lines(markdown, section)
    return [Discrepancy(figure=f.text, line=f.line, context=lines[f.line - 1].strip()[:200],
                        reason="no tool result recomputed by the critic matches it")
            for f in figures(markdown) if f.line in checked and not matches(f, known)]


def revise_notes(notes: Iterable[str], found: Iterable[Discrepancy]) -> list[str]:
    """The notes the reviser keeps: those on no line with a figure the critic could not reproduce.
    A discrepancy's context is the report's (Markdown-escaped) line; notes are the agents' own words."""
    bad = [_flat(unescape(d.context.lstrip("-* ").strip())) for d in found]
    return [n for n in notes if not any(b and (b in _flat(n) or _flat(n) in b) for b in bad)]


# --- every figure of a report, each against its own recomputed value ------------------------

NUM = r"-?[\d,]+(?:\.\d+)?"
_SIGNED = r"[+-][\d,]+(?:\.\d+)?"
_DATE = r"(?: \(\d{4}-\d{2}-\d{2}\))?"
_MISSING = rf"(?:; (?P<missing>{NUM}) rows? without a value)?"
# A level over several series (``tools.measures.series_note``): how many, and how many carried forward.
_SERIES = (rf"(?: — each series' first and latest reading, (?:summed|averaged) over (?P<series_count>{NUM}) series "
           rf"\(one per .+?\)(?:, (?P<last_carried_forward>{NUM}) carried forward from an earlier reading)?)?")
_SOURCE = re.compile(rf"^Source: (`+) ?(?P<dataset>.*?) ?\1 — (?P<rows>{NUM}) rows?, (?P<columns>{NUM}) columns?\.$")
_METRIC = re.compile(r"^Metric: \*\*(?P<metric>(?:\\.|[^*\\])+)\*\* \(")
_HEADLINES = {
    "additive": re.compile(rf" — total (?P<sum>{NUM}) \(sum over (?P<values>{NUM}) values?{_MISSING}\)\.$"),
    "non_additive": re.compile(rf" — mean (?P<mean>{NUM}|n/a), median (?P<median>{NUM}|n/a), range (?P<min>{NUM}|n/a) "
                               rf"to (?P<max>{NUM}|n/a) \(over (?P<values>{NUM}) values?{_MISSING}; averaged, never summed\)\.$"),
    "level": re.compile(rf" — latest (?P<last>{NUM}|n/a){_DATE}, first (?P<first>{NUM}|n/a){_DATE}, change "
                        rf"(?:n/a|(?P<change>{_SIGNED})(?: \((?P<change_pct>{_SIGNED}%)\))?){_MISSING}{_SERIES}\.$"),
}
_TREND = re.compile(rf"^Monthly .+ moved from (?P<first>{NUM}) \((?P<first_at>[^)]+)\) to (?P<last>{NUM}) "
                    rf"\((?P<last_at>[^)]+)\), (?:n/a|(?P<change>{_SIGNED})(?: \((?P<change_pct>{_SIGNED}%)\))?); "
                    rf"peak month (?P<peak>\S+) \((?P<peak_value>{NUM})\)\.")
_OUTLIERS = re.compile(rf"^(?P<count>{NUM}) rows? (?:has|have) an unusual (?P<metric>.+) \(IQR rule\); the largest "
                       rf"value is (?P<max>{NUM}) against a median of (?P<median>{NUM})\.$")
_PARTITIONED = re.compile(r"^Computed from \d+ partitions of the rows: .+\.$")
_NO_VALUES = re.compile(r"^.+ has no values to check\.$")
# Why a section is left out (tools/report.py): its figures, if any, are the planner's (learned
# probabilities, partition counts), not the data's, so there is nothing for the data tools to recompute.
_LEFT_OUT = re.compile(r"^Not in this report: .+\.$")
_NO_TREND = re.compile(r"^Monthly .+: not enough complete months to measure a change\.$")
ALL_ROWS = "(all rows)"
NOTES = "Agent notes"
Call = tuple[str, Mapping[str, Any]]  # (tool name, the facts it returned)


def unescape(text: str) -> str:
    """Report text (escaped Markdown, see ``tools/markdown.py``) back to the data's own words."""
    return re.sub(r"\\([\\`*_\[\]<>|~])", r"\1", text).replace("&amp;", "&")


def _flat(value: Any) -> str:
    """A data value as a report shows it, unescaped: whitespace runs as one space."""
    return " ".join(str(value).split())


def figure_of(text: str, line: int) -> Figure:
    raw = text.rstrip("%").replace(",", "")
    decimals = len(raw.split(".", 1)[1]) if "." in raw else 0
    return Figure(text=text, value=float(raw), decimals=decimals, percent=text.endswith("%"), line=line)


def agrees(figure: Figure, expected: float) -> bool:
    """Equal at the figure's shown precision (a percentage against a fraction); the slack covers
    tools that round their facts to 4 decimals (fractions are recomputed from their parts)."""
    value = expected * 100 if figure.percent else expected
    slack = 1e-6 if figure.percent else 5e-5
    return abs(figure.value - value) <= 0.5 * 10 ** -figure.decimals + slack + 1e-11 * max(1.0, abs(value))


@dataclass(frozen=True)
class Claim:
    """One figure of the report, what it states, and the recomputed value it must equal (None:
    nothing recomputed it — ``missing`` says what call was needed)."""

    figure: Figure
    what: str
    expected: float | None
    missing: str = ""


def _latest(calls: Sequence[Call], tool: str, **match: Any) -> Mapping[str, Any] | None:
    for name, facts in reversed(calls):
        if name == tool and all(facts.get(k) == v for k, v in match.items()):
            return facts
    return None


def _ratio(part: Any, whole: Any, rounded: Any) -> float | None:
    """A share or change % from its parts: tools round every fact to 4 decimals, too coarse for
    a fraction shown as ``0.4%``; ``rounded`` (the tool's own fraction) when the parts are missing."""
    if rounded is None:
        return None
    a, b = _number(part), _number(whole)
    return a / b if a is not None and b else _number(rounded)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class _Reader:
    """Walks the report's lines, turning each recognised line's figures into claims."""

    def __init__(self, markdown: str, calls: Sequence[Call]) -> None:
        self.lines = markdown.splitlines()
        self.calls = calls
        self.claims: list[Claim] = []
        self.covered: set[int] = set()  # lines whose every figure a rule claimed
        self.dataset: str | None = None
        self.metric: str | None = None
        self._header: tuple[str, list[str]] | None = None  # the current table's section and labels
        self._rows = -1  # data rows of the current table read so far, minus one

    def claim(self, number: int, match: re.Match[str], group: str, what: str, expected: Any,
              missing: str = "") -> None:
        text = match.group(group)
        if text is None or text == "n/a":
            return
        self.claims.append(Claim(figure_of(text, number), what, _number(expected), missing))

    def need(self, tool: str, what: str, **match: Any) -> tuple[Mapping[str, Any], str]:
        facts = _latest(self.calls, tool, dataset=self.dataset, **match)
        if facts is not None:
            return facts, ""
        args = ", ".join(f"{k}={v!r}" for k, v in match.items())
        return {}, f"the critic made no successful {tool} call on {self.dataset!r}{', ' + args if args else ''} ({what})"

    def read(self) -> None:
        section: str | None = None
        for number, line in enumerate(self.lines, 1):
            if line.startswith("#"):
                section = line.lstrip("#").strip()
                self.covered.add(number)
            elif section == NOTES:
                continue
            elif self.source(number, line) or self.headline(number, line) or self.trend(number, line) \
                    or self.outliers(number, line) or _PARTITIONED.match(line) or _LEFT_OUT.match(line):
                self.covered.add(number)
            elif line.startswith("|") and section is not None:
                self.table_row(number, line, section)

    def source(self, number: int, line: str) -> bool:
        match = _SOURCE.match(line)
        if not match:
            return False
        self.dataset = match.group("dataset")
        facts, missing = self.need("profile_dataset", "rows and columns")
        self.claim(number, match, "rows", "rows", facts.get("rows"), missing)
        self.claim(number, match, "columns", "columns", len(facts["columns"]) if "columns" in facts else None, missing)
        return True

    def headline(self, number: int, line: str) -> bool:
        start = _METRIC.match(line)
        if not start:
            return False
        metric = unescape(start.group("metric"))
        for role, pattern in _HEADLINES.items():
            match = pattern.search(line)
            if match:
                break
        else:
            return False
        self.metric = metric
        facts, missing = self.need("aggregate", f"the headline of {metric}", metric=metric)
        overall = facts.get("overall") or {}
        if facts and facts.get("role") != role:
            missing = f"{metric} is {facts.get('role')}, not {role}, by the critic's aggregate"
            overall = {}
        for key in match.groupdict():
            if key == "missing":
                rows, values = overall.get("rows"), overall.get("values")
                expected = rows - values if rows is not None and values is not None else None
                self.claim(number, match, key, f"{metric}: rows without a value", expected, missing)
            elif key == "change_pct":
                self.claim(number, match, key, f"{metric} (change %) over all rows",
                           _ratio(overall.get("change"), overall.get("first"), overall.get("change_pct")), missing)
            else:
                self.claim(number, match, key, f"{metric} ({key}) over all rows", overall.get(key), missing)
        return True

    def table_row(self, number: int, line: str, section: str) -> None:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if not cells or set("".join(cells)) <= set("-: "):
            self.covered.add(number)  # the separator row
            return
        metric, by = self._heading(section)
        facts, missing = self.need("aggregate", f"the breakdown {section!r}", metric=metric, group_by=by)
        labels = {str(v): str(k) for k, v in (facts.get("labels") or {}).items()}
        primary = next((k for k in labels.values() if k != "rows"), None)
        if primary is not None:
            labels[f"share of {facts['labels'][primary]}"] = "share"
        header = self._header
        if header is None or header[0] != section:
            self._header = (section, [unescape(c) for c in cells])  # the header row: labels, not figures
            self._rows = -1
            self.covered.add(number)
            return
        name = unescape(cells[0])
        index = self._rows = self._rows + 1  # rows come in the breakdown's order: largest first
        groups = list(facts.get("groups") or [])
        row: Mapping[str, Any] | None = None
        if name == ALL_ROWS:
            row = {**(facts.get("overall") or {}), "share": 1.0 if facts.get("total") else None}
        elif index < len(groups) and _flat(groups[index].get("group")) == name:
            row = groups[index]
        elif facts:
            missing = (f"row {index + 1} of the critic's breakdown is {_flat(groups[index].get('group'))!r}"
                       if index < len(groups) else f"the critic's breakdown has {len(groups)} groups")
        for label, cell in zip(header[1][1:], cells[1:], strict=False):
            if not re.fullmatch(rf"{NUM}%?", cell):
                continue
            key = labels.get(label)
            expected = (row or {}).get(key) if key else None
            if key == "share" and row is not None and name != ALL_ROWS:
                expected = _ratio((row or {}).get("sum"), (facts.get("overall") or {}).get("sum"), expected)
            why = missing or ("" if key else f"no recomputed statistic is labelled {label!r}")
            self.claims.append(Claim(figure_of(cell, number), f"{label} of {name}", _number(expected), why))
        self.covered.add(number)

    def _heading(self, section: str) -> tuple[str | None, str | None]:
        for _, facts in self.calls:
            metric, by = facts.get("metric"), facts.get("group_by")
            if metric and by and unescape(section) == f"{metric} by {by}":
                return str(metric), str(by)
        metric, _, by = unescape(section).rpartition(" by ")
        return metric or None, by or None

    def trend(self, number: int, line: str) -> bool:
        if _NO_TREND.match(line):
            return True
        match = _TREND.match(line)
        if not match:
            return False
        facts, missing = self.need("detect_trends", "the monthly trend", metric=self.metric, period="month")
        series = facts.get("series") or {}
        for key, at in (("first", "first_at"), ("last", "last_at"), ("peak_value", "peak")):
            month = match.group(at)
            expected = series.get(month)
            why = missing or ("" if expected is not None else f"the critic's trend has no month {month}")
            self.claims.append(Claim(figure_of(match.group(key), number), f"{self.metric} in {month}",
                                     _number(expected), why))
        if facts and match.group("peak") != facts.get("peak_period"):
            self.claims.append(Claim(Figure(text=match.group("peak"), value=0.0, decimals=0, percent=False,
                                            line=number),
                                     f"peak month (recomputed: {facts.get('peak_period')})", None,
                                     f"the critic's peak month is {facts.get('peak_period')}"))
        self.claim(number, match, "change", f"{self.metric}: change between compared months",
                   facts.get("change"), missing)
        compared = facts.get("compared_periods") or [None]
        self.claim(number, match, "change_pct", f"{self.metric}: change % between compared months",
                   _ratio(facts.get("change"), series.get(compared[0]), facts.get("change_pct")), missing)
        return True

    def outliers(self, number: int, line: str) -> bool:
        if _NO_VALUES.match(line):
            return True
        match = _OUTLIERS.match(line)
        if not match:
            return False
        metric = unescape(match.group("metric"))
        facts, missing = self.need("detect_outliers", f"the outliers of {metric}", method="iqr")
        checked = (facts.get("checked") or {}).get(metric)
        if facts and checked is None:
            missing = f"the critic's detect_outliers did not check {metric}"
        count = ((facts.get("outliers") or {}).get(metric) or {}).get("count", 0) if checked else None
        self.claim(number, match, "count", f"{metric}: outliers (IQR)", count, missing)
        self.claim(number, match, "max", f"{metric}: largest value", (checked or {}).get("max"), missing)
        self.claim(number, match, "median", f"{metric}: median", (checked or {}).get("median"), missing)
        return True


def report_subject(markdown: str) -> dict[str, str]:
    """The report's metric and group-by column (what the critic should recompute), if it says."""
    out: dict[str, str] = {}
    for line in markdown.splitlines():
        metric = _METRIC.match(line)
        if metric and "metric" not in out:
            out["metric"] = unescape(metric.group("metric"))
        elif line.startswith("## ") and "metric" in out and unescape(line[3:]).startswith(out["metric"] + " by "):
            out["group_by"] = unescape(line[3:])[len(out["metric"]) + 4:]
            break
    return out


def corrections(found: Iterable[Discrepancy]) -> list[str]:
    """The discrepancies as instructions for the reviser."""
    return [f"line {d.line}: {d.figure} ({d.what or 'a figure'}) — {d.reason}" for d in found]


#: A note about one partition of the rows (``detect_outliers (partition 1/2): …``).
PARTITION_NOTE = re.compile(r"(?P<tool>\w+) \(partition (?P<part>\d+/\d+)\)")


def partition_notes(markdown: str) -> set[tuple[str, str]]:
    """(tool, partition) of each partition-labelled figure in the Agent notes."""
    lines = markdown.splitlines()
    return {(m.group("tool"), m.group("part")) for n in section_lines(markdown, NOTES)
            for m in PARTITION_NOTE.finditer(unescape(lines[n - 1]))}


def check_report(markdown: str, calls: Sequence[Call], *, notes_known: Iterable[Any] = (),
                 partition_known: Mapping[str, Iterable[Any]] | None = None) -> list[Discrepancy]:
    """Every figure of a ``write_report`` report against its recomputed value (see the module doc).

    ``calls``: the critic's successful tool calls, in order (the latest matching call wins);
    ``notes_known``: everything the critic's tools returned, for the Agent notes' figures;
    ``partition_known``: per partition (``"1/2"``), what recomputing that partition returned,
    for the notes labelled as that partition's — never checked against whole-data values.
    """
    reader = _Reader(markdown, calls)
    reader.read()
    lines = reader.lines
    out = []
    for c in reader.claims:
        if c.expected is not None and agrees(c.figure, c.expected):
            continue
        shown = (f"{c.expected * 100:,.{c.figure.decimals}f}%" if c.figure.percent
                 else f"{c.expected:,.{c.figure.decimals}f}") if c.expected is not None else ""
        reason = (c.missing or "not recomputed") if c.expected is None else f"recomputed: {shown}"
        out.append(Discrepancy(figure=c.figure.text, line=c.figure.line, context=lines[c.figure.line - 1].strip()[:200],
                               reason=reason, what=c.what, expected=c.expected))
    notes = section_lines(markdown, NOTES)
    parts = {n: {m.group("part") for m in PARTITION_NOTE.finditer(lines[n - 1])} for n in notes}
    whole = [v for item in notes_known for v in values(item)]
    by_part = {p: [v for item in known for v in values(item)] for p, known in (partition_known or {}).items()}
    for f in figures(markdown):
        if f.line not in notes:
            continue
        labels = parts[f.line]
        known = [v for p in labels for v in by_part.get(p, [])] if labels else whole
        if not matches(f, known):
            reason = (f"no recomputation of partition {', '.join(sorted(labels))} matches it" if labels
                      else "no tool result recomputed by the critic matches it")
            out.append(Discrepancy(figure=f.text, line=f.line, context=lines[f.line - 1].strip()[:200], reason=reason))
    for f in figures(markdown):
        if f.line not in reader.covered and f.line not in notes:
            out.append(Discrepancy(figure=f.text, line=f.line, context=lines[f.line - 1].strip()[:200],
                                   reason="not recomputed: the line is in no form the critic checks"))
    return sorted(out, key=lambda d: d.line)
