"""Write a week of hourly readings from three stations (with a few real-world defects).

    python make_data.py relaygraph-data/weather.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd


def readings(seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    hours = pd.date_range("2026-07-01", periods=24 * 7, freq="h")
    rows = []
    for station, base in (("north", 24.0), ("coast", 29.0), ("valley", 33.0)):
        daily = 6 * np.sin((hours.hour - 9) / 24 * 2 * np.pi)
        temp = base + daily + rng.normal(0, 1.5, len(hours))
        humidity = np.clip(70 - daily * 3 + rng.normal(0, 8, len(hours)), 10, 100)
        rows.append(pd.DataFrame({"station": station, "timestamp": hours, "temperature_c": temp.round(1),
                                  "humidity_pct": humidity.round(0)}))
    frame = pd.concat(rows, ignore_index=True)
    frame.loc[rng.choice(len(frame), 6, replace=False), "humidity_pct"] = np.nan  # sensor dropouts
    return pd.concat([frame, frame.iloc[:4]], ignore_index=True)  # a re-sent batch: 4 duplicate rows


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "relaygraph-data/weather.csv")
    target.parent.mkdir(parents=True, exist_ok=True)
    readings().to_csv(target, index=False)
    print(f"wrote {target}")
