"""A custom tool for the weather team: the heat index of every reading.

It subclasses relaygraph's ``DataTool``, so it reads and writes only inside the run's workspace
like the built-in tools, and returns a typed ``ToolResult``. It writes an enriched file, so it
declares ``side_effects``: after a crash its call is replayed from the ledger, not redone.
"""

from __future__ import annotations

from typing import ClassVar

import pandas as pd
from relaygraph.tools import DataTool, ToolResult

#: NWS heat-index bands (°C) and what they mean.
BANDS = ((27.0, "caution"), (32.0, "extreme caution"), (41.0, "danger"), (54.0, "extreme danger"))


def heat_index_c(temp_c: pd.Series, humidity: pd.Series) -> pd.Series:
    """The NWS heat index (Rothfusz regression, with Steadman's simple formula below 80 °F), in °C."""
    t = temp_c * 9 / 5 + 32
    rh = humidity
    simple = 0.5 * (t + 61.0 + (t - 68.0) * 1.2 + rh * 0.094)
    full = (-42.379 + 2.04901523 * t + 10.14333127 * rh - 0.22475541 * t * rh - 6.83783e-3 * t**2
            - 5.481717e-2 * rh**2 + 1.22874e-3 * t**2 * rh + 8.5282e-4 * t * rh**2 - 1.99e-6 * t**2 * rh**2)
    hi_f = simple.where((simple + t) / 2 < 80, full)
    return ((hi_f - 32) * 5 / 9).round(2)


def find_column(frame: pd.DataFrame, *hints: str) -> str | None:
    return next((c for c in frame.columns if any(h in str(c).lower() for h in hints)), None)


class HeatIndexTool(DataTool):
    name = "heat_index"
    description = ("Compute the heat index (°C) of every reading from its temperature (°C) and relative "
                   "humidity (%) columns, count readings per danger band, and write the enriched file.")
    inputs: ClassVar[dict] = {"dataset": {"type": "string", "description": "Readings file (CSV/Parquet)."}}
    output_type = "string"
    side_effects = True  # writes <dataset>_heat.parquet

    def forward(self, dataset: str) -> ToolResult:
        path = self.workspace.resolve_input(dataset)
        frame = pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else pd.read_csv(path)
        temp, humidity = find_column(frame, "temp"), find_column(frame, "humid", "rh")
        if temp is None or humidity is None:
            raise ValueError(f"{dataset} needs a temperature and a humidity column; it has {list(frame.columns)}")
        usable = frame[[temp, humidity]].notna().all(axis=1)
        frame.loc[usable, "heat_index_c"] = heat_index_c(frame.loc[usable, temp], frame.loc[usable, humidity])
        bands = {label: int((frame["heat_index_c"] >= low).sum() - (frame["heat_index_c"] >= high).sum())
                 for (low, label), (high, _) in zip(BANDS, (*BANDS[1:], (float("inf"), "")), strict=True)}
        out = self.workspace.resolve_output(f"{path.stem}_heat.parquet")
        frame.to_parquet(out, index=False)
        skipped = int((~usable).sum())
        return ToolResult(
            summary=(f"Heat index of {int(usable.sum())} readings: max {frame['heat_index_c'].max():.1f} °C; "
                     f"{bands['danger'] + bands['extreme danger']} in danger or worse"
                     + (f"; {skipped} readings without temperature or humidity were skipped" if skipped else "")
                     + "."),
            facts={"readings": int(usable.sum()), "skipped": skipped,
                   "max_heat_index_c": float(frame["heat_index_c"].max()), "bands": bands,
                   "temperature_column": temp, "humidity_column": humidity},
            artifacts={"heat_dataset": self.workspace.display(out)},
        )
