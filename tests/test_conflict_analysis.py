"""Conflict analysis and proposals on data where positions are out of reach or equivalent (issue 13)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from relaygraph.nodes.negotiation import (
    K_GRID,
    ProposalBox,
    ProposeThresholdTool,
    Stance,
    flagged_share,
    threshold_for,
)


def heavy_tailed(rows: int = 600, extreme: int = 20) -> pd.DataFrame:
    """Quantities 1–10 with ``extreme`` rows of 80–200: no IQR fence up to k = 6 spares them."""
    body = [1 + i % 10 for i in range(rows - extreme)]
    tail = [80 + (i * 7) % 121 for i in range(extreme)]
    return pd.DataFrame({"quantity": body + tail})


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=4, max_size=60),
       target=st.floats(0.001, 0.5))
def test_a_threshold_meets_the_tolerance_or_says_no_k_on_the_grid_does(values: list[float], target: float) -> None:
    series = pd.Series(values)
    k, met = threshold_for(series, target)
    if met:
        assert flagged_share(series, k) <= target
        assert all(flagged_share(series, smaller) > target for smaller in K_GRID if smaller < k)
    else:
        assert all(flagged_share(series, g) > target for g in K_GRID)
        assert k == K_GRID[-1]  # the k that flags the fewest (shares only fall as k grows)
        assert flagged_share(series, k) == min(flagged_share(series, g) for g in K_GRID)


def test_a_proposal_out_of_reach_of_its_tolerance_says_so(workspace: Any) -> None:
    workspace.data_dir.mkdir(parents=True, exist_ok=True)
    heavy_tailed().to_csv(workspace.data_dir / "heavy.csv", index=False)
    box = ProposalBox()
    result = ProposeThresholdTool(workspace, "heavy.csv", "quantity", Stance(target=0.01, flexibility=0.5),
                                  box).forward("quantity")
    assert result.summary == ("no k on the grid (0.5–6) flags 1% or less of 600 quantity values; k = 6 is the "
                              "closest (3.33% flagged, tolerated: 1%).")
    assert box.proposal is not None and box.proposal["meets_tolerance"] is False
    lenient = ProposeThresholdTool(workspace, "heavy.csv", "quantity", Stance(target=0.06, flexibility=0.2),
                                   ProposalBox()).forward("quantity")
    assert lenient.summary == "k = 0.5 flags 3.33% of 600 quantity values (tolerated: 6%)."
