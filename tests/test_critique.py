"""The report critique's figure check, by hand."""

from __future__ import annotations

from relaygraph.coordination.critique import discrepancies, figures, revise_notes

REPORT = """# Data report

Source: `sales_clean.parquet` — 2,995 rows. Trend from 297,337.08 (2024-01) to 418,656.50 (2025-06).

![Monthly trend](chart.png)

## Agent notes

- validate_dataset: 3,048 rows: 48 duplicate rows, 22.6% in North.
- analyst: revenue totals 9,999,999.99 (see /tmp/out/t-123/report.md)
"""


def test_figures_skip_dates_paths_and_file_names():
    got = [(f.text, f.value, f.decimals, f.percent) for f in figures(REPORT)]
    assert ("2,995", 2995.0, 0, False) in got and ("297,337.08", 297337.08, 2, False) in got
    assert ("22.6%", 22.6, 1, True) in got and ("9,999,999.99", 9999999.99, 2, False) in got
    texts = [g[0] for g in got]
    assert "2024" not in texts and "123" not in texts and "01" not in texts


def test_discrepancies_match_at_the_shown_precision():
    recomputed = [{"rows": 3048, "duplicate_rows": 48, "groups": [{"sum": 1564024.26, "share": 0.2261}]}]
    found = discrepancies(REPORT, recomputed, section="Agent notes")
    assert [d.figure for d in found] == ["9,999,999.99"]
    assert found[0].context.startswith("- analyst: revenue totals")
    everywhere = {d.figure for d in discrepancies(REPORT, recomputed)}
    assert {"2,995", "297,337.08", "418,656.50"} <= everywhere  # nothing recomputed them
    notes = ["validate_dataset: 3,048 rows: 48 duplicate rows, 22.6% in North.",
             "analyst: revenue totals 9,999,999.99 (see /tmp/out/t-123/report.md)"]
    assert revise_notes(notes, found) == notes[:1]
