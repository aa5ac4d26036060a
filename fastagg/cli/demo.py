"""``fastagg demo``: generated data, a compiled aggregate, a built-in and a window, timed against the classic way."""

from __future__ import annotations

import argparse
import time

from .errors import UsageError

__all__ = ["run_demo"]


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo with ``args.rows`` generated rows; print what it shows; return 0."""
    import sqlite3

    import numpy as np
    import pandas as pd

    import fastagg

    @fastagg.aggregate(name="wavg")
    class WeightedAverage:
        """Weighted average; a window function too, thanks to inverse."""

        total: np.float64
        weight: np.float64

        def step(self, x: float, w: float):
            self.total += x * w
            self.weight += w

        def inverse(self, x: float, w: float):
            self.total -= x * w
            self.weight -= w

        def finalize(self) -> float | None:
            return self.total / self.weight if self.weight else None

    rows = args.rows
    if rows < 1:
        raise UsageError("--rows must be at least 1")
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "sensor": rng.integers(0, 1000, rows),
            "reading": rng.normal(20.0, 5.0, rows),
            "weight": rng.uniform(0.5, 2.0, rows),
        }
    )
    print(f"fastagg demo: {rows:,} rows, 1,000 sensors (pandas DataFrame, in-memory SQLite)\n")

    grouped = (
        "SELECT sensor, wavg(reading, weight) AS weighted, var_samp(reading) AS variance, "
        "count(*) AS n FROM df GROUP BY sensor ORDER BY sensor"
    )
    start = time.perf_counter()
    result = fastagg.query(df, grouped, [WeightedAverage])
    first = time.perf_counter() - start
    start = time.perf_counter()
    result = fastagg.query(df, grouped, [WeightedAverage])
    fast = time.perf_counter() - start
    print("Custom compiled aggregate + built-in statistic, grouped:")
    print(f"  {grouped}")
    print(result.head(5).to_string(index=False))
    print(f"  fastagg: {fast:.3f} s (first call, compiling: {first:.3f} s)\n")

    window = (
        "SELECT sensor, reading, wavg(reading, weight) OVER "
        "(PARTITION BY sensor ORDER BY rowid ROWS BETWEEN 9 PRECEDING AND CURRENT ROW) AS moving "
        "FROM df WHERE sensor < 3 ORDER BY sensor, rowid LIMIT 5"
    )
    print("Window aggregate (moving weighted average over 10 rows):")
    print(f"  {window}")
    print(fastagg.query(df, window, [WeightedAverage]).to_string(index=False))

    class PyWeightedAverage:
        def __init__(self):
            self.total = 0.0
            self.weight = 0.0

        def step(self, x, w):
            if x is not None and w is not None:
                self.total += x * w
                self.weight += w

        def finalize(self):
            return self.total / self.weight if self.weight else None

    start = time.perf_counter()
    con = sqlite3.connect(":memory:")
    df.to_sql("df", con, index=False)
    con.create_aggregate("wavg", 2, PyWeightedAverage)
    classic = pd.read_sql(
        "SELECT sensor, wavg(reading, weight) AS weighted FROM df GROUP BY sensor ORDER BY sensor", con
    )
    slow = time.perf_counter() - start
    con.close()
    assert np.allclose(classic["weighted"].to_numpy(), result["weighted"].to_numpy(dtype=float))
    print(
        f"\nSame weighted average the classic way (to_sql + create_aggregate + read_sql): "
        f"{slow:.3f} s -> fastagg is {slow / fast:.1f}x faster"
    )
    return 0
