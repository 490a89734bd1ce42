"""The sections a report can have: named here, apart from the report's code, so the
``--param sections`` schema checks them without loading pandas or matplotlib."""

from __future__ import annotations

SECTIONS = ("breakdown", "trend", "outliers")
