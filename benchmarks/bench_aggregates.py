"""Compiled aggregates vs SQLite's built-ins and Python's create_aggregate.

On an in-memory table of 2,000,000 rows (int key with 1,000 distinct values,
two float columns). Every comparison first checks that both sides agree.
Run: ``python benchmarks/bench_aggregates.py [--rows N] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap

import numpy as np

import fastagg
from _harness import median_time, print_table, write_json


@fastagg.aggregate(name="favg")
class FAvg:
    total: np.float64
    count: np.int64

    def step(self, x: float):
        self.total += x
        self.count += 1

    def inverse(self, x: float):
        self.total -= x
        self.count -= 1

    def finalize(self) -> float | None:
        return self.total / self.count if self.count else None


@fastagg.aggregate(name="fwavg")
class FWAvg:
    total: np.float64
    weight: np.float64

    def step(self, x: float, w: float):
        self.total += x * w
        self.weight += w

    def finalize(self) -> float | None:
        return self.total / self.weight if self.weight else None


class PyAvg:
    """The same average for Python's create_aggregate."""

    def __init__(self):
        self.total = 0.0
        self.count = 0

    def step(self, x):
        if x is not None:
            self.total += x
            self.count += 1

    def finalize(self):
        return self.total / self.count if self.count else None


@fastagg.aggregate(name="three_fields")
class ThreeFields:
    a: np.float64
    b: np.float64
    n: np.int64

    def step(self, x: float):
        self.a += x
        self.b += x * x
        self.n += 1

    def finalize(self) -> float:
        return self.a + self.b + self.n


@fastagg.aggregate(name="big_state")
class BigState:
    slots: fastagg.array(np.float64, 4096)  # 32 KiB

    def step(self, x: float):
        self.slots[int(abs(x) * 1000) % 4096] += 1.0

    def finalize(self) -> float:
        return self.slots.sum()


def make_db(rows: int) -> sqlite3.Connection:
    rng = np.random.default_rng(1)
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (g INTEGER, x REAL, y REAL)")
    g = rng.integers(0, 1000, rows)
    x = rng.normal(size=rows)
    y = rng.uniform(0.1, 2.0, rows)
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", zip(g.tolist(), x.tolist(), y.tolist()))
    con.commit()
    fastagg.register(con, FAvg, FWAvg, ThreeFields, BigState)
    con.create_aggregate("pyavg", 1, PyAvg)
    return con


def close(a, b) -> bool:
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b):
        for va, vb in zip(ra, rb):
            if isinstance(va, float) or isinstance(vb, float):
                if not math.isclose(va, vb, rel_tol=1e-9, abs_tol=1e-12):
                    return False
            elif va != vb:
                return False
    return True


def compare(con, label, ours, baseline, repeat):
    a = con.execute(ours).fetchall()
    b = con.execute(baseline).fetchall()
    assert close(a, b), f"{label}: results differ"
    t_ours = median_time(lambda: con.execute(ours).fetchall(), repeat)
    t_base = median_time(lambda: con.execute(baseline).fetchall(), repeat)
    return {"case": label, "fastagg s": t_ours, "baseline s": t_base, "ratio": t_ours / t_base}


LATENCY_SCRIPT = textwrap.dedent(
    """
    import time, sqlite3
    t0 = time.perf_counter()
    import fastagg
    t1 = time.perf_counter()
    import numba, numpy as np  # imports done; what follows is the compile cost
    t2 = time.perf_counter()

    @fastagg.aggregate
    class LatencyProbe:
        total: np.float64
        n: np.int64
        def step(self, x: float):
            self.total += x
            self.n += 1
        def finalize(self) -> float | None:
            return self.total / self.n if self.n else None

    con = sqlite3.connect(":memory:")
    fastagg.register(con, LatencyProbe)
    con.execute("SELECT latencyprobe(1.5)").fetchone()
    t3 = time.perf_counter()
    print(t1 - t0, t3 - t2)
    """
)


def compile_latency(runs: int = 3) -> list[dict]:
    out = []
    for label, fresh in (("cold (empty cache)", True), ("warm (numba cache)", False)):
        imports, latency = [], []
        with tempfile.TemporaryDirectory() as shared_cache:
            if not fresh:  # populate once
                subprocess.run([sys.executable, "-c", LATENCY_SCRIPT], env={**os.environ, "FASTAGG_CACHE_DIR": shared_cache}, check=True, capture_output=True)
            for _ in range(runs):
                cache = tempfile.mkdtemp() if fresh else shared_cache
                env = {**os.environ, "FASTAGG_CACHE_DIR": cache}
                proc = subprocess.run([sys.executable, "-c", LATENCY_SCRIPT], env=env, check=True, capture_output=True, text=True)
                imp, lat = map(float, proc.stdout.split())
                imports.append(imp)
                latency.append(lat)
        out.append({"case": label, "import fastagg s": float(np.median(imports)), "define->first result s": float(np.median(latency))})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    con = make_db(args.rows)
    r = args.repeat
    speed = [
        compare(con, "avg(x) vs built-in avg", "SELECT favg(x) FROM t", "SELECT avg(x) FROM t", r),
        compare(con, "avg(x) vs Python create_aggregate", "SELECT favg(x) FROM t", "SELECT pyavg(x) FROM t", max(1, r // 2)),
        compare(con, "GROUP BY g: avg vs built-in avg", "SELECT g, favg(x) FROM t GROUP BY g", "SELECT g, avg(x) FROM t GROUP BY g", r),
        compare(con, "GROUP BY g: avg vs Python", "SELECT g, favg(x) FROM t GROUP BY g", "SELECT g, pyavg(x) FROM t GROUP BY g", max(1, r // 2)),
        compare(con, "wavg(x, y) vs sum(x*y)/sum(y)", "SELECT fwavg(x, y) FROM t", "SELECT sum(x * y) / sum(y) FROM t", r),
        compare(
            con,
            "moving avg, 10 rows, vs built-in window avg",
            "SELECT favg(x) OVER (ORDER BY rowid ROWS BETWEEN 9 PRECEDING AND CURRENT ROW) FROM t",
            "SELECT avg(x) OVER (ORDER BY rowid ROWS BETWEEN 9 PRECEDING AND CURRENT ROW) FROM t",
            max(1, r // 2),
        ),
    ]
    print_table(f"Aggregates over {args.rows:,} rows (median of {r}; ratio < 1 means fastagg is faster)", speed)

    from fastagg.compile.cache import compile_spec

    groups = "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 199999) SELECT count(*) FROM (SELECT i % 100000 AS g, {f}(i * 0.001) FROM n GROUP BY g)"
    state = []
    for cls in (ThreeFields, BigState):
        spec = cls.__fastagg_spec__
        seconds = median_time(lambda: con.execute(groups.format(f=spec.name)).fetchall(), 1, 0)
        state.append(
            {
                "aggregate": spec.name,
                "record bytes": spec.state.itemsize,
                "requested from sqlite3_aggregate_context": compile_spec(spec).state_nbytes,
                "100,000 groups s": seconds,
            }
        )
    print_table("State size: bytes SQLite allocates per aggregate context", state)

    latency = compile_latency()
    print_table("Compile latency in a fresh process (median of 3)", latency)
    write_json(args.json, {"rows": args.rows, "speed": speed, "state": state, "latency": latency})


if __name__ == "__main__":
    main()
