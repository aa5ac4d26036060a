"""Date filters compared with text, in statements SQLite runs itself: pushed into the scan or not.

TPC-H's joins filter date columns by text (``l_shipdate >= '1995-09-01' AND
l_shipdate < date('1995-09-01', '+1 months')``). Over ``lineitem`` (and
``part`` for q14's join), registered with :func:`fastagg.table.register_frame`
on a ``sqlite3`` connection, each statement runs with the scan's date
filtering on (xFilter tests integer intervals, :mod:`fastagg.table.dates`)
and off (:func:`fastagg.table.dates.set_pushdown`: xBestIndex pushes no date
comparison, SQLite compares every row's text, as before the pushdown), in
the same process, alternating; then
in DuckDB over the same Arrow tables when installed. Answers are checked
equal first. Data: the TPC-H parquet files of ``--data`` (default
``benchmarks/data/tpch-sf1``, see ``bench_tpch.py``), else generated tables
of the same shape (``--rows``).

Run: ``python benchmarks/bench_date_filters.py [--data DIR] [--rows N] [--reps 5] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import time

import numpy as np
import pyarrow as pa

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import print_table, write_json  # noqa: E402
from bench_tpch import duckdb_sql  # noqa: E402

from fastagg.table import dates, register_frame  # noqa: E402

# Constant bounds first: a date() bound is unknown to xBestIndex, which may then
# build an index on l_shipdate that the registration keeps and later statements use.
QUERIES = {
    "count, two text bounds":
        "SELECT count(*) AS n FROM lineitem WHERE l_shipdate >= '1995-09-01' AND l_shipdate < '1995-10-01'",
    "sum, BETWEEN":
        "SELECT sum(l_quantity) AS n FROM lineitem WHERE l_shipdate BETWEEN '1994-01-01' AND '1994-12-31'",
    "q14's join, text bounds":
        "SELECT 100.00 * sum(CASE WHEN p_type LIKE 'PROMO%' THEN l_extendedprice * (1 - l_discount) ELSE 0 END)"
        " / sum(l_extendedprice * (1 - l_discount)) AS n FROM lineitem, part WHERE l_partkey = p_partkey"
        " AND l_shipdate >= '1995-09-01' AND l_shipdate < '1995-10-01'",
    "count, date() upper bound":
        "SELECT count(*) AS n FROM lineitem WHERE l_shipdate >= '1995-09-01' "
        "AND l_shipdate < date('1995-09-01', '+1 months')",
    "q14's join (lineitem, part)":
        "SELECT 100.00 * sum(CASE WHEN p_type LIKE 'PROMO%' THEN l_extendedprice * (1 - l_discount) ELSE 0 END)"
        " / sum(l_extendedprice * (1 - l_discount)) AS n FROM lineitem, part WHERE l_partkey = p_partkey"
        " AND l_shipdate >= '1995-09-01' AND l_shipdate < date('1995-09-01', '+1 months')",
}
LINEITEM = ["l_partkey", "l_quantity", "l_extendedprice", "l_discount", "l_shipdate"]
PART = ["p_partkey", "p_type"]


def load(data: str, rows: int) -> tuple[dict, str]:
    """The tables (parquet from *data* if there, else generated) and where they came from."""
    li, pt = os.path.join(data, "lineitem.parquet"), os.path.join(data, "part.parquet")
    if os.path.exists(li) and os.path.exists(pt):
        import pyarrow.parquet as pq

        tables = {"lineitem": pq.read_table(li, columns=LINEITEM), "part": pq.read_table(pt, columns=PART)}
        for name, t in tables.items():  # money decimals as float64, as --cast-decimals does
            tables[name] = t.cast(pa.schema([
                pa.field(f.name, pa.float64()) if pa.types.is_decimal(f.type) else f for f in t.schema
            ]))
        return tables, data
    rng = np.random.default_rng(0)
    nparts = max(rows // 30, 1)
    types = np.array(["PROMO BRUSHED", "STANDARD POLISHED", "ECONOMY ANODIZED", "LARGE PLATED"], dtype=object)
    return {
        "lineitem": pa.table({
            "l_partkey": rng.integers(1, nparts + 1, rows),
            "l_quantity": rng.integers(1, 51, rows).astype(float),
            "l_extendedprice": rng.uniform(900, 105000, rows),
            "l_discount": rng.integers(0, 11, rows) / 100,
            "l_shipdate": pa.array(rng.integers(8036, 10560, rows).astype(np.int32)).cast(pa.date32()),
        }),
        "part": pa.table({"p_partkey": np.arange(1, nparts + 1), "p_type": types[rng.integers(0, 4, nparts)]}),
    }, f"generated ({rows:,} lineitem rows)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--data", default=os.path.join(here, "data", "tpch-sf1"))
    parser.add_argument("--rows", type=int, default=2_000_000, help="lineitem rows when generated")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    tables, source = load(args.data, args.rows)
    print(f"bench_date_filters: {source}: lineitem {tables['lineitem'].num_rows:,} rows", flush=True)
    con = sqlite3.connect(":memory:", cached_statements=0)  # prepared anew: set_pushdown applies
    regs = [register_frame(con, name, t) for name, t in tables.items()]
    try:
        import duckdb

        duck = duckdb.connect()
        for name, t in tables.items():
            duck.register(name, t)
    except ImportError:
        duck = None
    rows = []
    for label, sql in QUERIES.items():
        answers, times = {}, {True: [], False: []}
        for rep in range(args.reps + 1):  # the first round warms up (compiles, builds indexes)
            for on in (True, False) if rep % 2 == 0 else (False, True):
                dates.set_pushdown(on)
                t = time.perf_counter()
                answers[on] = con.execute(sql).fetchone()[0]
                if rep:
                    times[on].append(time.perf_counter() - t)
        dates.set_pushdown(True)
        assert answers[True] == answers[False], f"{label}: {answers}"
        t_duck = None
        if duck is not None:
            dsql = duckdb_sql(sql)  # date(d, '+N unit'); DuckDB casts the other literals itself
            expected = duck.execute(dsql).fetchone()[0]
            assert abs(expected - answers[True]) <= 1e-9 * max(abs(expected), 1), f"{label}: DuckDB {expected}"
            dt = []
            for _ in range(args.reps):
                t = time.perf_counter()
                duck.execute(dsql).fetchone()
                dt.append(time.perf_counter() - t)
            t_duck = statistics.median(dt)
        on, off = statistics.median(times[True]), statistics.median(times[False])
        rows.append({"statement": label, "pushed s": on, "not pushed s": off, "speed-up": off / on,
                     "duckdb s": t_duck, "answer": answers[True]})
        print(f"  {label}: pushed {on:.4f} s, not pushed {off:.4f} s", flush=True)
    for reg in regs:
        reg.close()
    print_table(f"Date filters by text ({source}; median of {args.reps}, alternating)", rows)
    write_json(args.json, {"data": source, "reps": args.reps, "statements": rows})


if __name__ == "__main__":
    main()
