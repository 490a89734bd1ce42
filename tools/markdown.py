"""Markdown that stays valid whatever the data holds: escaped text, safe tables, right plurals.

Column names and category values come from users' files, so they may contain ``*``, ``_``,
``|`` or backticks; unescaped, they turn into emphasis, split table cells or open code spans.
Everything data-derived goes through :func:`text` (or :func:`code`) before it reaches a report.
markdown-it-py (already installed with rich) parses Markdown but has no escaping API, so these few
lines do it; the tests parse every generated report with markdown-it-py to prove the escaping.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterable, Sequence
from typing import Any

#: Characters with inline meaning anywhere in a line (line-start markers never occur: callers
#: put escaped text after a heading mark, a table pipe or other words).
_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")


def text(value: Any) -> str:
    """Inline Markdown showing ``value`` literally (one line; ``&`` kept out of entities)."""
    flat = " ".join(str(value).split())
    return _SPECIAL.sub(r"\\\1", flat.replace("&", "&amp;"))


_BULLET = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")


def notes(value: Any) -> str:
    """Free text an agent wrote (report notes), one escaped line per line: a leading list marker
    (``-``, ``*``, ``•``, ``1.``) stays a ``-`` bullet, everything else is shown literally — the
    agent quotes column names such as ``net*sales``, which would otherwise turn into emphasis."""
    lines = []
    for line in str(value).splitlines():
        if not line.strip():
            continue
        marker = _BULLET.match(line)
        lines.append(f"- {text(line[marker.end():])}" if marker else text(line))
    return "\n".join(lines)


def code(value: Any) -> str:
    """An inline code span of ``value``, fenced by more backticks than it contains."""
    flat = " ".join(str(value).split())
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") or not flat else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 row``, ``2 rows``, ``1,234 rows``."""
    return f"{count:,} {word if count == 1 else many or word + 's'}"


def number(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):  # numpy ints too: counts
        return f"{int(value):,}"
    return f"{float(value):,.{digits}f}"


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A pipe table; text cells are escaped, numbers formatted, ``None`` shown as ``n/a``."""

    def cell(value: Any) -> str:
        if value is None or isinstance(value, (int, float)):
            return number(value)
        return text(value)

    head = "| " + " | ".join(text(c) for c in columns) + " |"
    rule = "|" + "---|" * len(columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join([head, rule, *body])
