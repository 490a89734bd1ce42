"""The bundled sample dataset: realistic sales orders with known, deliberate defects.

It is generated (seeded, so byte-for-byte reproducible) instead of committed, which keeps the
repository small and documents exactly which defects exist — the tests assert that the tools
find precisely these: :data:`DEFECTS`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

SAMPLE_NAME = "sample_sales.csv"
SEED = 20260101
BASE_ROWS = 3000

#: What the generator injects, and so what validation must find.
DEFECTS = {
    "duplicate_rows": 48,  # exact copies of existing orders
    "null_region": 45,
    "null_unit_price": 30,
    "null_customer_id": 20,
    "quantity_outliers": 12,  # quantities 40-60x the usual
    "negative_quantity": 5,  # mis-keyed returns: out of range
    "messy_region_spelling": 150,  # " north", "SOUTH " ...
}

REGIONS = ["North", "South", "East", "West", "Central"]
CHANNELS = ["online", "retail", "partner"]
CATALOG = [  # product, category, list price
    ("Laptop Pro 14", "Computers", 1899.0),
    ("Laptop Air 13", "Computers", 1199.0),
    ("Desktop Tower", "Computers", 1499.0),
    ("27in Monitor", "Displays", 329.0),
    ("32in 4K Monitor", "Displays", 549.0),
    ("Wireless Mouse", "Accessories", 39.0),
    ("Mechanical Keyboard", "Accessories", 129.0),
    ("USB-C Dock", "Accessories", 189.0),
    ("Noise-Cancel Headset", "Audio", 249.0),
    ("Conference Speaker", "Audio", 299.0),
    ("Office Chair", "Furniture", 449.0),
    ("Standing Desk", "Furniture", 699.0),
]


def generate(rows: int = BASE_ROWS, seed: int = SEED) -> pd.DataFrame:
    """Build the dataset in memory (deterministic for a given seed)."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2024-01-01", "2025-06-30", freq="D")
    # Demand grows ~35% over the period and peaks in Q4: a real trend to find.
    weights = np.linspace(1.0, 1.35, len(days)) * (1 + 0.25 * np.isin(days.month, [11, 12]))
    dates = rng.choice(days, size=rows, p=weights / weights.sum())
    product_idx = rng.integers(0, len(CATALOG), size=rows)
    quantity = rng.poisson(2.5, size=rows) + 1
    list_price = np.array([CATALOG[i][2] for i in product_idx])
    unit_price = np.round(list_price * rng.uniform(0.9, 1.05, size=rows), 2)
    discount = np.round(rng.choice([0.0, 0.0, 0.05, 0.1, 0.15, 0.2], size=rows), 2)
    region_p = np.array([0.28, 0.22, 0.2, 0.18, 0.12])
    frame = pd.DataFrame(
        {
            "order_id": [f"ORD-{i:05d}" for i in range(1, rows + 1)],
            "order_date": pd.to_datetime(dates).strftime("%Y-%m-%d"),
            "customer_id": [f"C{n:04d}" for n in rng.integers(1, 601, size=rows)],
            "region": rng.choice(REGIONS, size=rows, p=region_p).astype(object),
            "channel": rng.choice(CHANNELS, size=rows, p=[0.5, 0.35, 0.15]),
            "product": [CATALOG[i][0] for i in product_idx],
            "category": [CATALOG[i][1] for i in product_idx],
            "quantity": quantity.astype(float),
            "unit_price": unit_price,
            "discount": discount,
        }
    )
    frame = frame.sort_values("order_date", kind="stable").reset_index(drop=True)
    frame["order_id"] = [f"ORD-{i:05d}" for i in range(1, rows + 1)]

    # Disjoint row sets per defect, so each count is exact.
    sizes = [DEFECTS[k] for k in ("null_region", "null_unit_price", "null_customer_id",
                                  "quantity_outliers", "negative_quantity", "messy_region_spelling")]
    *defect_rows, clean_rows = np.split(rng.permutation(rows), np.cumsum(sizes))
    picks = iter(defect_rows)
    frame.loc[next(picks), "region"] = None
    frame.loc[next(picks), "unit_price"] = np.nan
    frame.loc[next(picks), "customer_id"] = None
    outliers = next(picks)
    frame.loc[outliers, "quantity"] = frame.loc[outliers, "quantity"] * rng.integers(40, 61, len(outliers))
    negative = next(picks)
    frame.loc[negative, "quantity"] = -frame.loc[negative, "quantity"]
    messy = next(picks)
    variants = [str.lower, str.upper, lambda s: f" {s}", lambda s: f"{s}  "]
    frame.loc[messy, "region"] = [
        variants[k % len(variants)](r) if r is not None else r
        for k, r in enumerate(frame.loc[messy, "region"])
    ]
    frame["revenue"] = np.round(frame["quantity"] * frame["unit_price"] * (1 - frame["discount"]), 2)

    # Duplicates copy defect-free rows, so every other defect count stays exact.
    dupes = frame.loc[rng.choice(clean_rows, size=DEFECTS["duplicate_rows"], replace=False)]
    frame = pd.concat([frame, dupes], ignore_index=True)
    return frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)


def ensure_sample(data_dir: Path) -> Path:
    """Write the sample into ``data_dir`` unless it is already there; return its path."""
    data_dir = Path(data_dir)
    path = data_dir / SAMPLE_NAME
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        # A temp file per writer, then an atomic rename: concurrent first runs (parallel
        # branches, several processes) each write whole files and never read a partial one.
        fd, tmp = tempfile.mkstemp(prefix=f".{SAMPLE_NAME}.", suffix=".tmp", dir=data_dir)
        with os.fdopen(fd, "w", newline="") as handle:
            generate().to_csv(handle, index=False)
        os.replace(tmp, path)
    return path
