"""Benchmark fastagg.table: register, load, and queries over the virtual table.

Run ``python benchmarks/bench_ingest.py [--rows N] [--big N] [--reps K] [--json PATH]``.
Every comparison first asserts that both sides give the same result; each
figure is the median of ``--reps`` runs (the slow baselines run fewer times).

Scenarios (2,000,000 rows by default: int64 ``g`` with 1,000 groups, int64
``i``, float64 ``x`` and ``y``, short strings ``s``):

* ``register`` at ``--rows`` and ``--big`` rows (should be flat);
* ``load_frame`` vs ``DataFrame.to_sql``;
* ``SELECT sum(x)`` over the virtual table vs over a loaded table;
* ``GROUP BY g`` / ``GROUP BY s`` / ``ORDER BY`` / ``WHERE`` over the virtual
  table vs a loaded table;
* ``SELECT g, myvar(x) FROM df GROUP BY g`` end to end from the DataFrame:
  ``fastagg.query`` with a compiled Welford variance vs the classic path
  (``to_sql`` + Python ``create_aggregate`` + ``pd.read_sql``) vs pandas
  ``groupby(...).agg(f, engine="numba")`` with the same variance vs plain
  ``groupby(...).var()``.
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import statistics
import time

import numpy as np
import pandas as pd

import fastagg
from fastagg import table as _ingest
from bench_query import MyVar, PyVar  # the same variance as the end-to-end benchmark


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


def numba_var(values, index):
    """The same variance for pandas ``agg(engine="numba")``."""
    n = 0
    mean = 0.0
    m2 = 0.0
    for x in values:
        n += 1
        delta = x - mean
        mean += delta / n
        m2 += delta * (x - mean)
    return m2 / (n - 1) if n > 1 else np.nan


def timed(fn, reps):
    out = []
    result = None
    for _ in range(reps):
        t = time.perf_counter()
        result = fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out), result


def close_lists(a, b, rel=1e-9):
    """Whether two lists of numbers are equal within *rel* (None / NaN equal)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x is None or y is None or (isinstance(x, float) and math.isnan(x)) or (isinstance(y, float) and math.isnan(y)):
            if not ((x is None or math.isnan(x)) and (y is None or math.isnan(y))):
                return False
        elif abs(x - y) > rel * max(1.0, abs(y)):
            return False
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--big", type=int, default=20_000_000, help="rows for the second register timing (0: skip)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args(argv)
    n, reps = args.rows, args.reps
    slow_reps = max(1, min(3, reps // 2))
    rows = []

    def row(name, seconds, baseline=None, base_seconds=None):
        rows.append({"benchmark": name, "seconds": seconds, "baseline": baseline, "baseline_seconds": base_seconds})

    df = make_frame(n)
    con = sqlite3.connect(":memory:")
    warm = _ingest.register_frame(con, "warm", df.head(10))  # compile / load cache outside timings
    con.execute("SELECT * FROM warm ORDER BY s").fetchall()
    con.execute("SELECT g, s, count(*) FROM warm GROUP BY g, s").fetchall()
    warm.close()
    fastagg.query(df.head(10), "SELECT g, myvar(x) FROM df GROUP BY g", [MyVar])

    # ---- register: O(columns)
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

    # ---- load vs to_sql (equality first)
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
    assert a.execute("SELECT * FROM t WHERE rowid % 99991 = 0").fetchall() == b.execute("SELECT * FROM t WHERE rowid % 99991 = 0").fetchall()
    b.close()
    t_load, _ = timed(load, reps)
    t_sql, _ = timed(to_sql, slow_reps)
    row("load_frame", t_load, "DataFrame.to_sql", t_sql)

    # ---- queries: virtual table vs loaded table
    reg = _ingest.register_frame(a, "v", df)
    qs = {
        "SELECT sum(x)": "SELECT sum(x) FROM {t}",
        "GROUP BY g (1,000 groups)": "SELECT g, count(*), sum(x) FROM {t} GROUP BY g",
        "GROUP BY s (1,000 groups)": "SELECT s, count(*), sum(x) FROM {t} GROUP BY s",
        "GROUP BY g, s": "SELECT g, s, count(*), sum(x) FROM {t} GROUP BY g, s",
        "ORDER BY x LIMIT 10": "SELECT * FROM {t} ORDER BY x LIMIT 10",
        "WHERE i > 900000": "SELECT count(*), sum(x) FROM {t} WHERE i > 900000",
    }
    for label, sql in qs.items():
        qv, qt = sql.format(t="v"), sql.format(t="t")
        rv = a.execute(qv).fetchall()
        rt = a.execute(qt).fetchall()
        assert len(rv) == len(rt) and all(
            all(u == w or (isinstance(u, float) and close_lists([u], [w])) for u, w in zip(x, y))
            for x, y in zip(rv, rt)
        ), label  # sums may differ in the last bits (different summation order)
        tv, _ = timed(lambda: a.execute(qv).fetchall(), reps)
        tt, _ = timed(lambda: a.execute(qt).fetchall(), reps)
        row(f"{label}: vtab", tv, "loaded table", tt)
    reg.close()
    a.close()

    # ---- SELECT g, myvar(x) FROM df GROUP BY g, end to end from the DataFrame
    sql = "SELECT g, myvar(x) AS v FROM df GROUP BY g"

    def fast():
        return fastagg.query(df, sql, [MyVar])

    def classic():
        c = sqlite3.connect(":memory:")
        df.to_sql("df", c, index=False)
        c.create_aggregate("myvar", 1, PyVar)
        out = pd.read_sql(sql, c)
        c.close()
        return out

    def pandas_numba():
        return df.groupby("g")["x"].agg(numba_var, engine="numba")

    def pandas_var():
        return df.groupby("g")["x"].var()

    rf = fast()
    rc = classic()
    rn = pandas_numba()  # also compiles numba_var outside the timings
    rp = pandas_var()
    keys = list(rp.index)
    assert [int(k) for k in rf["g"]] == keys and list(rc["g"]) == keys and list(rn.index) == keys
    expect = list(rp.to_numpy())
    assert close_lists([float(v) for v in rf["v"]], expect), "fastagg myvar != pandas var"
    assert close_lists(list(rc["v"]), expect), "classic myvar != pandas var"
    assert close_lists(list(rn.to_numpy()), expect), "pandas numba var != pandas var"
    t_fast, _ = timed(fast, reps)
    t_classic, _ = timed(classic, slow_reps)
    t_numba, _ = timed(pandas_numba, reps)
    t_var, _ = timed(pandas_var, reps)
    label = "g, myvar(x) GROUP BY g: fastagg.query"
    row(label, t_fast, "classic sqlite3", t_classic)
    row(label, t_fast, "pandas agg numba", t_numba)
    row(label, t_fast, "pandas .var()", t_var)

    print(f"fastagg.table benchmarks, {n:,} rows, median of {reps} ({slow_reps} for to_sql / classic); SQLite {sqlite3.sqlite_version}")
    print(f"{'benchmark':<40}{'seconds':>9}  {'baseline':<18}{'seconds':>9}{'speedup':>9}")
    for r in rows:
        base = r["baseline"] or ""
        bs = f"{r['baseline_seconds']:.4f}" if r["baseline_seconds"] is not None else ""
        ratio = f"{r['baseline_seconds'] / r['seconds']:.2f}x" if r["baseline_seconds"] else ""
        print(f"{r['benchmark']:<40}{r['seconds']:>9.4f}  {base:<18}{bs:>9}{ratio:>9}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": n, "reps": reps, "sqlite": sqlite3.sqlite_version, "results": rows}, fh, indent=2)
    return rows


if __name__ == "__main__":
    main()
