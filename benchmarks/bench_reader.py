"""Reading a query result into Arrow: fastagg's compiled reader vs the stdlib.

A 2,000,000-row result of three columns (int, float, short text) from an
in-memory SQLite table, read by ``fastagg.reader.read_query``, by
``pd.read_sql`` and by ``cursor.fetchall()``; the floor is a compiled loop
that only steps the statement (no column reads). Both sides are checked
equal first. Also times a one-row query, to show the worker-thread hand-off.
Run: ``python benchmarks/bench_reader.py [--rows N] [--repeat R] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys

import numpy as np
import pandas as pd
from numba import njit

from _harness import median_time, print_table, write_json
from fastagg.sqlite import capi as _capi
from fastagg.native.intrinsics import as_voidptr
from fastagg.reader import _prepare, _run_interruptibly, read_query
from fastagg.sqlite.declarations import sqlite3_step

QUERY = "SELECT i, x, s FROM t"


@njit(cache=True, nogil=True)
def step_only(stmt_address):
    """Step the statement to its end without reading a column; return rows."""
    stmt = as_voidptr(stmt_address)
    n = 0
    while sqlite3_step(stmt) == _capi.SQLITE_ROW:
        n += 1
    return n


def make_table(rows: int) -> sqlite3.Connection:
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (i INTEGER, x REAL, s TEXT)")
    rng = np.random.default_rng(0)
    ints = rng.integers(-(10**9), 10**9, rows)
    reals = rng.normal(size=rows)
    words = np.array(["alpha", "beta", "gamma", "delta", "épsilon", "zeta", "η", ""])
    text = words[rng.integers(0, len(words), rows)]
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?)", zip(ints.tolist(), reals.tolist(), text.tolist())
    )
    con.commit()
    return con


def floor(con: sqlite3.Connection, sql: str) -> int:
    handle = _capi.connection_handle(con)
    stmt = _prepare(handle, sql)
    try:
        return step_only(stmt)
    finally:
        _capi.lib.sqlite3_finalize(stmt)


def check_equal(con: sqlite3.Connection) -> None:
    table = read_query(con, QUERY)
    rows = con.execute(QUERY).fetchall()
    assert table.num_rows == len(rows)
    assert [str(t) for t in table.schema.types] == ["int64", "double", "string"]
    expected = list(zip(*rows))
    for got, want in zip(table.columns, expected):
        assert got.to_pylist() == list(want)
    frame = pd.read_sql(QUERY, con)
    assert table.to_pandas().equals(frame)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", default=None, help="write the numbers to this file")
    args = parser.parse_args(argv)

    con = make_table(args.rows)
    check_equal(con)
    assert floor(con, QUERY) == args.rows

    timings = {
        "fastagg read_query": median_time(lambda: read_query(con, QUERY), args.repeat),
        "pd.read_sql": median_time(lambda: pd.read_sql(QUERY, con), args.repeat),
        "cursor.fetchall()": median_time(lambda: con.execute(QUERY).fetchall(), args.repeat),
        "floor: compiled step only": median_time(lambda: floor(con, QUERY), args.repeat),
        "SELECT count(*) FROM (...) [b-tree count; no row read, not a floor]": median_time(
            lambda: con.execute(f"SELECT count(*) FROM ({QUERY})").fetchall(), args.repeat
        ),
    }
    ours = timings["fastagg read_query"]
    rows = [
        {"reader": name, "seconds": secs, "x fastagg": secs / ours}
        for name, secs in timings.items()
    ]
    print_table(f"{args.rows:,} rows x (int, float, text) -> Arrow, median of {args.repeat}", rows)

    # Tiny query: what the worker-thread hand-off costs per call.
    handle = _capi.connection_handle(con)
    number = 2000
    tiny = {
        "read_query('SELECT 1')": median_time(
            lambda: [read_query(con, "SELECT 1") for _ in range(number)], args.repeat
        ) / number,
        "cursor.fetchall() 'SELECT 1'": median_time(
            lambda: [con.execute("SELECT 1").fetchall() for _ in range(number)], args.repeat
        ) / number,
        "step 'SELECT 1' inline": median_time(
            lambda: [floor(con, "SELECT 1") for _ in range(number)], args.repeat
        ) / number,
        "step 'SELECT 1' on the worker": median_time(
            lambda: [_tiny_on_worker(handle) for _ in range(number)], args.repeat
        ) / number,
    }
    print_table(
        "one-row query, microseconds per call",
        [{"call": k, "us": v * 1e6} for k, v in tiny.items()],
    )
    speedup = timings["pd.read_sql"] / ours
    print(f"\nfastagg vs pd.read_sql: {speedup:.1f}x (target >= 5x)")
    write_json(
        args.json,
        {
            "rows": args.rows,
            "repeat": args.repeat,
            "seconds": timings,
            "tiny_query_seconds": tiny,
            "speedup_vs_read_sql": speedup,
        },
    )
    return 0


def _tiny_on_worker(handle: int) -> None:
    stmt = _prepare(handle, "SELECT 1")
    try:
        _run_interruptibly(handle, step_only, stmt)
    finally:
        _capi.lib.sqlite3_finalize(stmt)


if __name__ == "__main__":
    sys.exit(main())
