"""The ``fastagg`` command line.

``fastagg demo`` generates data and runs a showcase: a custom compiled
aggregate, a built-in statistic and a window aggregate, timed against the
same query done the classic way (pandas ``to_sql`` + Python
``create_aggregate`` + ``pd.read_sql``).
"""

from __future__ import annotations

import argparse
import sys
import time

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
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


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``fastagg`` command."""
    parser = argparse.ArgumentParser(prog="fastagg", description="SQL over DataFrames with compiled aggregates.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="generate data and run a timed showcase")
    demo.add_argument("--rows", type=int, default=1_000_000, help="rows of generated data (default 1,000,000)")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one clear line, no traceback
        print(f"fastagg: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
