"""Grouped custom variance: workers=N vs one connection, and Dask vs one process.

Run: ``python benchmarks/bench_parallel.py [--rows 4000000] [--groups 1000]
[--dask-rows 1000000,4000000,16000000] [--repeat 3] [--no-dask] [--json PATH]``.

Each scenario first asserts that its result equals the one-connection result
(within 1e-9 relative: partial sums are added in another order).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(__file__))
from _harness import median_time, print_table, write_json  # noqa: E402

import fastagg  # noqa: E402


@fastagg.aggregate
class Welford:
    """Sample variance by Welford's update, Chan's merge."""

    n: np.int64
    mean: float
    m2: float

    def step(self, x: float):
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self.m2 += d * (x - self.mean)

    def merge(self, other):
        if other.n == 0:
            return
        n = self.n + other.n
        d = other.mean - self.mean
        self.mean += d * other.n / n
        self.m2 += other.m2 + d * d * self.n * other.n / n
        self.n = n

    def finalize(self) -> float | None:
        return self.m2 / (self.n - 1) if self.n > 1 else None


SQL = "SELECT g, welford(x) AS v, count(*) AS n FROM df GROUP BY g ORDER BY g"


def make_frame(rows: int, groups: int) -> pd.DataFrame:
    rng = np.random.default_rng(42)
    return pd.DataFrame({"g": rng.integers(0, groups, rows), "x": rng.normal(100.0, 15.0, rows)})


def check(expected: pd.DataFrame, got: pd.DataFrame) -> None:
    assert list(expected["g"]) == list(got["g"]) and list(expected["n"]) == list(got["n"])
    np.testing.assert_allclose(got["v"].to_numpy(float), expected["v"].to_numpy(float), rtol=1e-9)


def bench_threads(rows: int, groups: int, repeat: int) -> list[dict]:
    df = make_frame(rows, groups)
    out = []
    with fastagg.connect() as db:
        db.register("df", df)
        base = db.query(SQL, [Welford], workers=1)
        single = median_time(lambda: db.query(SQL, [Welford], workers=1), repeat=repeat)
        for workers in (1, 2, 4):
            check(base, db.query(SQL, [Welford], workers=workers))
            t = single if workers == 1 else median_time(lambda: db.query(SQL, [Welford], workers=workers), repeat=repeat)
            # CPU seconds of the whole process: equal work split, or more? (Other
            # load on the machine shows as wall time above CPU / workers.)
            cpu = time.process_time()
            db.query(SQL, [Welford], workers=workers)
            cpu = time.process_time() - cpu
            out.append({"scenario": "threads", "rows": rows, "workers": workers, "seconds": t,
                        "speedup": single / t, "cpu s": cpu, "Mrows/s": rows / t / 1e6})
    return out


def bench_dask(sizes: list[int], groups: int, repeat: int) -> list[dict]:
    import dask.dataframe as dd
    import distributed

    import fastagg.dask as fdask

    out = []
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        for rows in sizes:
            df = make_frame(rows, groups)
            base = fastagg.query(df, SQL, [Welford], workers=1)
            single = median_time(lambda: fastagg.query(df, SQL, [Welford], workers=1), repeat=repeat)
            # Data already on the cluster (persisted), as a Dask user's would be.
            ddf = dd.from_pandas(df, npartitions=8).persist()
            distributed.wait(ddf)
            check(base, fdask.query(ddf, SQL, [Welford]))  # also warms the workers' compile
            t = median_time(lambda: fdask.query(ddf, SQL, [Welford]), repeat=repeat, warmup=0)
            # Including shipping the frame from this process to the workers.
            start = time.perf_counter()
            fdask.query(dd.from_pandas(df, npartitions=8), SQL, [Welford])
            shipped = time.perf_counter() - start
            out.append({"scenario": "dask", "rows": rows, "single s": single, "dask s": t,
                        "dask+ship s": shipped, "dask speedup": single / t, "over ideal s": t - single / 2})
            del ddf
            client.run(lambda: __import__("gc").collect())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--dask-rows", default="1000000,4000000,16000000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-dask", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    threads = bench_threads(args.rows, args.groups, args.repeat)
    print_table(f"workers=N vs one connection ({args.rows:,} rows, {args.groups} groups, {os.cpu_count()} cpus)",
                threads)
    payload = {"threads": threads}
    if not args.no_dask:
        dask_rows = bench_dask([int(r) for r in args.dask_rows.split(",")], args.groups, args.repeat)
        print_table("Dask LocalCluster (2 worker processes, 8 partitions) vs one process", dask_rows)
        payload["dask"] = dask_rows
    write_json(args.json, payload)


if __name__ == "__main__":
    main()
