"""Benchmark fastagg._ingest: register, load, and queries over the virtual table.

Run ``python benchmarks/bench_ingest.py [--rows N] [--reps K] [--json PATH]``.
Every comparison first asserts that both sides give the same result.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import time

import numpy as np
import pandas as pd

from fastagg import _ingest


def make_frame(n: int, groups: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "g": rng.integers(0, groups, n),
            "i": rng.integers(-1_000_000, 1_000_000, n),
            "x": rng.random(n),
            "y": rng.normal(size=n),
            "s": pd.Series(np.array([f"k{v:03d}" for v in range(groups)], dtype=object)[rng.integers(0, groups, n)], dtype="str"),
        }
    )


def timed(fn, reps):
    out = []
    result = None
    for _ in range(reps):
        t = time.perf_counter()
        result = fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out), result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--big", type=int, default=20_000_000, help="rows for the second register timing")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    n, reps = args.rows, args.reps
    rows = []

    def row(name, seconds, baseline=None, base_seconds=None):
        rows.append({"benchmark": name, "seconds": seconds, "baseline": baseline, "baseline_seconds": base_seconds})

    df = make_frame(n)
    con = sqlite3.connect(":memory:")
    warm = _ingest.register_frame(con, "warm", df.head(10))  # compile / load cache outside timings
    con.execute("SELECT * FROM warm ORDER BY s").fetchall()
    warm.close()

    def reg_once(frame, name):
        c = sqlite3.connect(":memory:")
        t = time.perf_counter()
        r = _ingest.register_frame(c, name, frame)
        dt = time.perf_counter() - t
        r.close()
        c.close()
        return dt

    row(f"register {n:,} rows", statistics.median(reg_once(df, "t") for _ in range(reps)))
    if args.big:
        big = make_frame(args.big, seed=1)
        row(f"register {args.big:,} rows", statistics.median(reg_once(big, "t") for _ in range(reps)))
        del big

    # load vs to_sql (equality first)
    def load():
        c = sqlite3.connect(":memory:")
        _ingest.load_frame(c, "t", df)
        return c

    def to_sql():
        c = sqlite3.connect(":memory:")
        df.to_sql("t", c, index=False)
        return c

    a, b = load(), to_sql()
    q = "SELECT count(*), sum(g), sum(i), total(x), total(y), count(DISTINCT s), min(s), max(s) FROM t"
    assert a.execute(q).fetchall() == b.execute(q).fetchall()
    t_load, _ = timed(load, reps)
    t_sql, _ = timed(to_sql, max(1, reps // 2))
    row("load_frame", t_load, "DataFrame.to_sql", t_sql)

    # queries: virtual table vs loaded table
    reg = _ingest.register_frame(a, "v", df)
    qs = {
        "SELECT sum(x)": ("SELECT sum(x) FROM v", "SELECT sum(x) FROM t"),
        "GROUP BY g (1,000 groups)": (
            "SELECT g, count(*), sum(x) FROM v GROUP BY g",
            "SELECT g, count(*), sum(x) FROM t GROUP BY g",
        ),
        "WHERE i > 900000": ("SELECT count(*), sum(x) FROM v WHERE i > 900000", "SELECT count(*), sum(x) FROM t WHERE i > 900000"),
    }
    for label, (qv, qt) in qs.items():
        rv = a.execute(qv).fetchall()
        rt = a.execute(qt).fetchall()
        assert len(rv) == len(rt) and all(
            x[:-1] == y[:-1] and abs(x[-1] - y[-1]) <= 1e-9 * max(1.0, abs(y[-1])) for x, y in zip(rv, rt)
        ), label
        tv, _ = timed(lambda: a.execute(qv).fetchall(), reps)
        tt, _ = timed(lambda: a.execute(qt).fetchall(), reps)
        row(f"{label}: vtab", tv, "loaded table", tt)

    def pandas_groupby():
        return df.groupby("g", sort=True).agg(c=("x", "size"), s=("x", "sum"))

    pg = pandas_groupby()
    rv = a.execute(qs["GROUP BY g (1,000 groups)"][0]).fetchall()
    assert [r[0] for r in rv] == list(pg.index) and [r[1] for r in rv] == list(pg["c"])
    tp, _ = timed(pandas_groupby, reps)
    tv, _ = timed(lambda: a.execute(qs["GROUP BY g (1,000 groups)"][0]).fetchall(), reps)
    row("GROUP BY g: vtab", tv, "pandas groupby", tp)
    reg.close()

    print(f"fastagg._ingest benchmarks, {n:,} rows, median of {reps}; SQLite {sqlite3.sqlite_version}")
    print(f"{'benchmark':<36}{'seconds':>10}  {'baseline':<20}{'seconds':>10}{'ratio':>8}")
    for r in rows:
        base = r["baseline"] or ""
        bs = f"{r['baseline_seconds']:.4f}" if r["baseline_seconds"] is not None else ""
        ratio = f"{r['baseline_seconds'] / r['seconds']:.1f}x" if r["baseline_seconds"] else ""
        print(f"{r['benchmark']:<36}{r['seconds']:>10.4f}  {base:<20}{bs:>10}{ratio:>8}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": n, "reps": reps, "results": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
