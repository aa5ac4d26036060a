"""End to end: ``fastagg.query(df, "SELECT g, myvar(x) FROM df GROUP BY g")``.

Against the classic path (pandas ``to_sql`` + Python ``create_aggregate`` +
``pd.read_sql``) on a 2,000,000-row frame, with where the time goes on both
sides: getting the frame into SQLite, running the query, reading the result.
Results are checked equal first.
Run: ``python benchmarks/bench_query.py [--rows N] [--repeat R] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import sqlite3
import time

import numpy as np
import pandas as pd

import fastagg
from _harness import median_time, print_table, write_json
from fastagg.table import register_frame
from fastagg.reader import read_query

SQL = "SELECT g, myvar(x) AS v FROM df GROUP BY g"


@fastagg.aggregate(name="myvar")
class MyVar:
    """Sample variance, Welford's update."""

    n: np.int64
    mean: np.float64
    m2: np.float64

    def step(self, x: float):
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def finalize(self) -> float | None:
        return self.m2 / (self.n - 1) if self.n > 1 else None


class PyVar:
    """The same variance for Python's create_aggregate."""

    def __init__(self):
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def step(self, x):
        if x is None:
            return
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def finalize(self):
        return self.m2 / (self.n - 1) if self.n > 1 else None


def make_frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"g": rng.integers(0, 1000, rows), "x": rng.normal(size=rows)})


def classic(df: pd.DataFrame, splits: dict | None = None) -> pd.DataFrame:
    t0 = time.perf_counter()
    con = sqlite3.connect(":memory:")
    df.to_sql("df", con, index=False)
    con.create_aggregate("myvar", 1, PyVar)
    t1 = time.perf_counter()
    cur = con.execute(SQL)
    first = cur.fetchone()  # the grouped query does its work in the first step
    t2 = time.perf_counter()
    rest = cur.fetchall()
    out = pd.DataFrame([first, *rest], columns=["g", "v"])
    t3 = time.perf_counter()
    con.close()
    if splits is not None:
        splits.update(load=t1 - t0, query=t2 - t1, read=t3 - t2)
    return out


def fast(df: pd.DataFrame, splits: dict | None = None) -> pd.DataFrame:
    if splits is None:
        return fastagg.query(df, SQL, [MyVar])
    t0 = time.perf_counter()
    con = sqlite3.connect(":memory:", check_same_thread=False)
    registration = register_frame(con, "df", df)
    fastagg.register(con, MyVar)
    t1 = time.perf_counter()
    table = read_query(con, SQL)
    t2 = time.perf_counter()
    out = table.to_pandas(types_mapper=pd.ArrowDtype)
    t3 = time.perf_counter()
    registration.close()
    con.close()
    # read_query steps and reads in one compiled loop: its time is "query";
    # "read" is the Arrow-to-pandas conversion.
    splits.update(load=t1 - t0, query=t2 - t1, read=t3 - t2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    df = make_frame(args.rows)
    a = fast(df).sort_values("g").reset_index(drop=True)
    b = classic(df).sort_values("g").reset_index(drop=True)
    assert a["g"].tolist() == b["g"].tolist()
    np.testing.assert_allclose(a["v"].to_numpy(dtype=float), b["v"].to_numpy(dtype=float), rtol=1e-9)

    t_fast = median_time(lambda: fast(df), args.repeat)
    t_classic = median_time(lambda: classic(df), max(1, args.repeat // 2))
    t_pandas = median_time(lambda: df.groupby("g")["x"].var(), args.repeat)
    rows = [
        {"path": "fastagg.query", "seconds": t_fast, "x faster than classic": t_classic / t_fast},
        {"path": "classic: to_sql + create_aggregate + read_sql", "seconds": t_classic, "x faster than classic": 1.0},
        {"path": "pandas groupby().var() (no SQL)", "seconds": t_pandas, "x faster than classic": t_classic / t_pandas},
    ]
    print_table(f"{SQL} over {args.rows:,} rows, 1,000 groups (median of {args.repeat})", rows)

    fast_splits: dict = {}
    classic_splits: dict = {}
    fast(df, fast_splits)
    classic(df, classic_splits)
    labels = {
        "load": "load (frame into SQLite, register aggregate)",
        # SQLite's sorter-based GROUP BY aggregates each group while its rows
        # are fetched, so the classic split puts aggregation in "read" too.
        "query": "query (to the first row)",
        "read": "read (the other rows, to a DataFrame)",
    }
    split_rows = [
        {"stage": labels[stage], "fastagg s": fast_splits[stage], "classic s": classic_splits[stage]}
        for stage in ("load", "query", "read")
    ]
    print_table("Where the time goes (one run each)", split_rows)
    write_json(args.json, {"rows": args.rows, "end_to_end": rows, "stages": split_rows})


if __name__ == "__main__":
    main()
