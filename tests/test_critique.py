"""The report critique: every figure of a report checked against its recomputed value."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relaygraph.coordination.critique import (
    check_report,
    discrepancies,
    figures,
    revise_notes,
    section_lines,
)

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


# --- every figure of a real report, each against its own recomputed value -------------------

CRITIC_TOOLS = ("profile_dataset", "validate_dataset", "aggregate", "detect_trends", "detect_outliers")


def written_and_recomputed(workspace, dataset: str, notes: str | None = None):
    """A report written by the write_report tool, and the critic's recomputation with the data tools."""
    from relaygraph.tools import build_tools

    writer, *critic = build_tools(["write_report", *CRITIC_TOOLS], workspace)
    writer.forward(dataset=dataset, notes=notes)
    markdown = workspace.resolve_output("report.md").read_text(encoding="utf-8")
    calls = [(tool.name, tool.forward(dataset=dataset).facts) for tool in critic]
    return markdown, calls


@pytest.fixture
def sales_report(workspace, sample_path):
    return written_and_recomputed(workspace, "sample_sales.csv",
                                  notes="- validate_dataset: 3,048 rows, 48 duplicate rows.")


def other_roles(workspace, metric: str) -> tuple[str, list]:
    rng = np.random.default_rng(7)
    days = pd.date_range("2024-01-01", periods=120, freq="D")
    frame = pd.DataFrame({"day": np.repeat(days.strftime("%Y-%m-%d"), 3),
                          "site": ["Oslo", "Lima", "Pune"] * 120,
                          metric: rng.normal(50, 12, 360).round(2)})
    frame.to_csv(workspace.data_dir / f"{metric}.csv", index=False)
    return written_and_recomputed(workspace, f"{metric}.csv")


def test_every_figure_of_a_true_report_is_reproduced(sales_report, workspace):
    markdown, calls = sales_report
    assert check_report(markdown, calls, notes_known=[f for _, f in calls]) == []
    for metric in ("temperature_c", "balance"):  # a non-additive and a level headline and table
        text, recomputed = other_roles(workspace, metric)
        assert check_report(text, recomputed, notes_known=[f for _, f in recomputed]) == [], text


def test_a_swapped_breakdown_figure_is_caught_with_its_recomputed_value(sales_report):
    """Both numbers exist in the tools' results, so matching "any value" could not catch this."""
    markdown, calls = sales_report
    north = next(line for line in markdown.splitlines() if line.startswith("| North |"))
    south = next(line for line in markdown.splitlines() if line.startswith("| South |"))
    n_sum, s_sum = north.split(" | ")[2], south.split(" | ")[2]
    altered = markdown.replace(north, north.replace(n_sum, s_sum))
    (found,) = check_report(altered, calls, notes_known=[f for _, f in calls])
    assert found.figure == s_sum and found.what == "revenue (sum) of North"
    assert f"{found.expected:,.2f}" == n_sum and found.reason == f"recomputed: {n_sum}"


def test_a_figure_nothing_recomputed_is_a_discrepancy(sales_report):
    markdown, calls = sales_report
    without_trends = [c for c in calls if c[0] != "detect_trends"]
    found = check_report(markdown, without_trends, notes_known=[f for _, f in calls])
    assert {d.line for d in found} == {next(i for i, line in enumerate(markdown.splitlines(), 1)
                                            if line.startswith("Monthly "))}
    assert all("no successful detect_trends call" in d.reason and d.expected is None for d in found)
    stray = markdown.replace("## Outliers", "Margins grew 12.5% this year.\n\n## Outliers")
    (odd,) = check_report(stray, calls, notes_known=[f for _, f in calls])
    assert odd.figure == "12.5%" and "in no form the critic checks" in odd.reason


def _shown(value: float, like: str) -> str:
    decimals = len(like.rstrip("%").split(".", 1)[1]) if "." in like else 0
    text = f"{value:{'+' if like[0] in '+-' else ''}{',' if ',' in like or abs(value) >= 1000 else ''}.{decimals}f}"
    return text + ("%" if like.endswith("%") else "")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pick=st.integers(min_value=0), units=st.integers(min_value=2, max_value=500), up=st.booleans())
def test_any_altered_figure_outside_the_notes_is_found(sales_report, pick, units, up):
    """Property: move any one figure of the report by at least two units of its last shown digit
    and the check lists that figure, on its line. (One unit is not enough to be *wrong*: a value
    on a rounding tie, such as a median of 1,155.695, is correctly shown as .69 or .70.)"""
    markdown, calls = sales_report
    notes = section_lines(markdown, "Agent notes")
    candidates = [f for f in figures(markdown) if f.line not in notes]
    target = candidates[pick % len(candidates)]
    step = 10 ** -target.decimals * units * (1 if up else -1)
    new = _shown(target.value + step if not target.text.startswith("-") else -(abs(target.value) + step),
                 target.text)
    lines = markdown.splitlines()
    before = [f for f in candidates if f.line == target.line and f.text == target.text]
    nth = next(i for i, f in enumerate(before) if f is target)
    hits = [m for m in re.finditer(rf"(?<![\w.,]){re.escape(target.text)}(?![\w%]|[.,]\d)", lines[target.line - 1])]
    hit = hits[nth]
    line = lines[target.line - 1]
    lines[target.line - 1] = line[:hit.start()] + new + line[hit.end():]
    found = check_report("\n".join(lines), calls, notes_known=[f for _, f in calls])
    assert any(d.line == target.line and d.figure == new for d in found), (target, new, found)


@given(st.text(alphabet="ab_*|`\\ 12", min_size=1, max_size=20).filter(lambda t: t.strip()),
       st.text(alphabet="cd_*| 34", min_size=1, max_size=20).filter(lambda t: t.strip()))
def test_the_reviser_drops_the_note_a_discrepancy_names_however_the_report_escaped_it(bad: str, good: str) -> None:
    """The report shows notes Markdown-escaped (``detect\\_outliers: …``); the reviser keeps the
    agents' own words, so it must match them on the unescaped line, or it keeps a wrong note."""
    from relaygraph.coordination.critique import Discrepancy, revise_notes
    from relaygraph.tools import markdown as md

    notes = [f"tool_a: {bad} 138", f"tool_b: {good} 7"]
    found = [Discrepancy(figure="138", line=1, context=f"- {md.text(notes[0])}", reason="unmatched")]
    assert revise_notes(notes, found) == [notes[1]]


def test_a_report_that_says_why_it_left_the_trend_out_is_clean(workspace, sample_path):
    """The "Not in this report" line states the planner's reasons (learned probabilities): no data
    figure, so a true report with it has no discrepancy (it made learned plans end partial)."""
    from relaygraph.tools import build_tools

    why = {"trend": "left out by what earlier runs taught the planner: time_series_analysis 0.9 -> 0.76 "
                    "(relaygraph experience show); --param learn=false plans from the priors"}
    writer, *critic = build_tools(["write_report", *CRITIC_TOOLS], workspace)
    writer.forward(dataset="sample_sales.csv", sections="breakdown,outliers", left_out_why=json.dumps(why))
    markdown = workspace.resolve_output("report.md").read_text(encoding="utf-8")
    assert "Not in this report: trend (left out by what earlier runs taught the planner" in markdown
    calls = [(tool.name, tool.forward(dataset="sample_sales.csv").facts) for tool in critic]
    assert check_report(markdown, calls, notes_known=[f for _, f in calls]) == []
