"""The report critique: is every figure in a report one that the tools reproduce?

A critic agent recomputes the report's figures with the data tools (on the dataset the report
is about and on its source); :func:`discrepancies` then checks every number written in the
report against everything those tool calls returned — their facts and summary lines — and
lists the figures that no recomputed value matches at the precision the report shows them.
A reviser rewrites the report without what could not be reproduced; rounds repeat until a
round is clean or :data:`MAX_ROUNDS` is reached.

The planned graph checks the report's *Agent notes* section: those are figures agents claimed
along the way, while ``write_report`` computes its own sections from the dataset as it writes
them (and some, such as group shares and the median, no single tool returns, so a whole-report
check would flag figures that are right). :func:`discrepancies` can check a whole document.

What counts as a figure: every number in the text (``2,995``, ``22.6%``, ``1,564,024.26``,
``-3``) except those inside dates (``2024-01``), paths, file names and Markdown image/link targets.
A figure matches a recomputed value when they agree to half a unit of the figure's last shown
digit (``22.6%`` also matches a share of ``0.2261``). Small whole numbers up to 12 are matched
against the counts of lists and tables as well (``5 groups``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict

MAX_ROUNDS = 3

_SKIP = re.compile(r"\S*/\S*|\d{4}-\d{2}(?:-\d{2})?(?:[T ][\d:.]+)?|\d{4}Q\d|`[^`]*`|\]\([^)]*\)|\w+\.(?:png|md|csv|parquet)")
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
    """The notes the reviser keeps: those on no line with a figure the critic could not reproduce."""
    bad = [d.context.lstrip("-* ").strip() for d in found]
    return [n for n in notes if not any(b and (b in n or n.strip() in b) for b in bad)]
