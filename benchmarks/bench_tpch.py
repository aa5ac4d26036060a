"""TPC-H over DataFrames: the 22 queries on fastagg vs SQLite with key indexes vs DuckDB.

Data: ``tpchgen-cli parquet -s SF`` (cached under ``benchmarks/data/tpch-sf<SF>/``),
read with pyarrow. Per query, in one run: fastagg over the Arrow tables
(``fastagg.query({name: table, ...}, sql, output="arrow")``, all eight
tables passed, the query only: it runs in a worker process started and
warmed up beforehand, abandoned and restarted when a query passes
``--timeout``), DuckDB over the same Arrow tables, and plain ``sqlite3`` over
the same data loaded into tables with the primary- and foreign-key indexes
a DBA would create, then ``ANALYZE`` (load time reported separately). The
queries are ``benchmarks/tpch/qNN.sql`` in SQLite's dialect; DuckDB runs the
same text with ``date(d, '+N unit')`` rewritten as ``DATE d + INTERVAL``.
Every answer is checked against DuckDB's first (numbers to 1e-6 relative,
text exact, rows with equal ORDER BY keys as multisets): a wrong SQLite
baseline stops the run, a wrong fastagg answer is reported in the table.

The ``decimal128`` money columns stay decimals by default: fastagg exposes
them as REAL (converted once, when a query registers the tables), DuckDB
computes in exact decimals, the SQLite baseline loads them as REAL.
``--cast-decimals`` casts them to float64 when preparing the Arrow tables,
for every engine.

Run: ``python benchmarks/bench_tpch.py [--sf 0.1] [--queries q01,q05]
[--timeout 60] [--reps 3] [--data DIR] [--cast-decimals] [--json PATH]
[--plot PATH]``.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import print_table, write_json  # noqa: E402

HERE = Path(__file__).resolve().parent
QUERY_DIR = HERE / "tpch"
TABLES = ("region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem")

#: Output columns (0-based) of each query's ORDER BY, and its LIMIT: rows with
#: equal keys may come in any order, and a tie at the LIMIT may keep any of them.
ORDER_KEYS = {
    "q01": [0, 1], "q02": [0, 2, 1, 3], "q03": [1, 2], "q04": [0], "q05": [1], "q06": [],
    "q07": [0, 1, 2], "q08": [0], "q09": [0, 1], "q10": [2], "q11": [1], "q12": [0],
    "q13": [1, 0], "q14": [], "q15": [0], "q16": [3, 0, 1, 2], "q17": [], "q18": [4, 3],
    "q19": [], "q20": [0], "q21": [1, 0], "q22": [0],
}
LIMITS = {"q02": 100, "q03": 10, "q10": 20, "q18": 100, "q21": 100}

#: What a DBA creates: primary keys (single integer keys as INTEGER PRIMARY
#: KEY, i.e. the rowid) and an index on every foreign key.
PRIMARY_KEYS = {
    "region": ["r_regionkey"], "nation": ["n_nationkey"], "supplier": ["s_suppkey"],
    "customer": ["c_custkey"], "part": ["p_partkey"], "partsupp": ["ps_partkey", "ps_suppkey"],
    "orders": ["o_orderkey"], "lineitem": ["l_orderkey", "l_linenumber"],
}
FOREIGN_KEYS = [
    ("nation", ["n_regionkey"]), ("supplier", ["s_nationkey"]), ("customer", ["c_nationkey"]),
    ("partsupp", ["ps_suppkey"]), ("orders", ["o_custkey"]),
    ("lineitem", ["l_partkey", "l_suppkey"]), ("lineitem", ["l_suppkey"]),
]


# --------------------------------------------------------------------------
# Data


def ensure_data(sf: float, data_dir: Path) -> Path:
    """Generate the Parquet files with tpchgen-cli unless *data_dir* has them."""
    if all((data_dir / f"{t}.parquet").exists() for t in TABLES):
        return data_dir
    exe = shutil.which("tpchgen-cli")
    if exe is None:
        raise SystemExit("bench_tpch: tpchgen-cli not found (pip install tpchgen-cli, in the bench extra)")
    data_dir.mkdir(parents=True, exist_ok=True)
    print(f"bench_tpch: generating TPC-H SF {sf:g} into {data_dir} ...", flush=True)
    subprocess.run([exe, "parquet", "-s", f"{sf:g}", "--output-dir", str(data_dir)], check=True)
    return data_dir


def load_tables(data_dir: Path, cast_decimals: bool) -> dict:
    """Read the eight Parquet files; with *cast_decimals*, decimal128 columns become float64."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = {}
    for name in TABLES:
        table = pq.read_table(data_dir / f"{name}.parquet")
        if cast_decimals:
            fields = [
                pa.field(f.name, pa.float64(), f.nullable) if pa.types.is_decimal(f.type) else f
                for f in table.schema
            ]
            table = table.cast(pa.schema(fields))
        tables[name] = table
    return tables


def duckdb_sql(sql: str) -> str:
    """Rewrite SQLite's ``date('YYYY-MM-DD', '+N unit')`` for DuckDB; the rest is accepted as is."""
    return re.sub(
        r"date\('(\d{4}-\d\d-\d\d)',\s*'\+?(-?\d+) (\w+)'\)",
        r"CAST(DATE '\1' + INTERVAL '\2 \3' AS DATE)",
        sql,
    )


def load_sqlite(tables: dict) -> tuple[sqlite3.Connection, float]:
    """Load *tables* into an in-memory SQLite database with key indexes; return it and the seconds."""
    import pyarrow as pa
    import pyarrow.compute as pc

    start = time.perf_counter()
    con = sqlite3.connect(":memory:")
    for name, table in tables.items():
        pk = PRIMARY_KEYS[name]
        decls = []
        for f in table.schema:
            if pa.types.is_integer(f.type):
                decl = "INTEGER"
            elif pa.types.is_floating(f.type) or pa.types.is_decimal(f.type):
                decl = "REAL"
            else:
                decl = "TEXT"
            if pk == [f.name]:
                decl += " PRIMARY KEY"
            decls.append(f"{f.name} {decl}")
        con.execute(f"CREATE TABLE {name} ({', '.join(decls)})")
        marks = ", ".join("?" * table.num_columns)
        # In batches: Python objects for all of SF 1's lineitem at once would take gigabytes.
        for batch in table.to_batches(max_chunksize=200_000):
            columns = []
            for column, f in zip(batch.columns, table.schema):
                if pa.types.is_decimal(f.type):
                    column = pc.cast(column, pa.float64())
                elif pa.types.is_temporal(f.type):
                    column = pc.cast(column, pa.string())  # ISO text, as fastagg shows dates
                columns.append(column.to_pylist())
            con.executemany(f"INSERT INTO {name} VALUES ({marks})", zip(*columns))
        if len(pk) > 1:
            con.execute(f"CREATE UNIQUE INDEX {name}_pk ON {name} ({', '.join(pk)})")
    for name, cols in FOREIGN_KEYS:
        con.execute(f"CREATE INDEX {name}_{'_'.join(cols)} ON {name} ({', '.join(cols)})")
    con.execute("ANALYZE")
    con.commit()
    return con, time.perf_counter() - start


# --------------------------------------------------------------------------
# Answers


def _norm(value):
    import datetime
    import decimal

    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bool):
        return int(value)
    return value


def normalise(rows) -> list[tuple]:
    """Rows (tuples, or dicts from ``Table.to_pylist``) with plain Python values."""
    return [tuple(_norm(v) for v in (r.values() if isinstance(r, dict) else r)) for r in rows]


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    return a == b


def _same_row(a, b) -> bool:
    return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))


def _sort_key(row):
    # Numbers rounded so that answers equal to 1e-6 sort alike.
    return tuple(
        (0, "") if v is None else (1, f"{v:.5e}") if isinstance(v, (int, float)) else (2, str(v))
        for v in row
    )


def compare(query: str, expected: list[tuple], got: list[tuple]) -> str | None:
    """Return None when *got* answers *query* as *expected* does, else what differs."""
    if len(expected) != len(got):
        return f"{len(got)} rows, expected {len(expected)}"
    if expected and len(expected[0]) != len(got[0]):
        return f"{len(got[0])} columns, expected {len(expected[0])}"
    keys = ORDER_KEYS[query]
    cut = LIMITS.get(query) == len(expected)
    start = 0
    while start < len(expected):
        head = [expected[start][k] for k in keys]
        end = start + 1
        while end < len(expected) and _same_row(head, [expected[end][k] for k in keys]):
            end += 1
        for row in got[start:end]:
            if not _same_row(head, [row[k] for k in keys]):
                return f"row {start}: ORDER BY key {[row[k] for k in keys]}, expected {head}"
        if not (cut and end == len(expected)):  # a tie cut by LIMIT may keep any rows
            for a, b in zip(sorted(expected[start:end], key=_sort_key), sorted(got[start:end], key=_sort_key)):
                if not _same_row(a, b):
                    return f"rows {start}..{end - 1}: {b}, expected {a}"
        start = end
    return None


# --------------------------------------------------------------------------
# fastagg in a worker process


def _worker(conn, loader, loader_args: tuple) -> None:
    """Load the tables with *loader*, warm fastagg up, then answer ("query"/"explain", sql) messages."""
    import fastagg

    tables = loader(*loader_args)
    try:
        for name in tables:  # the readers of every column kind, compiled or loaded from the cache
            fastagg.query(tables, f"SELECT * FROM {name} LIMIT 5", output="arrow")
    except Exception:  # noqa: BLE001, S110 - e.g. decimals refused: every query reports the error
        pass
    conn.send(("ready", None))
    while True:
        message = conn.recv()
        if message is None:
            return
        kind, sql = message
        try:
            if kind == "explain":
                plan = fastagg.query(tables, "EXPLAIN QUERY PLAN " + sql, output="arrow").to_pylist()
                conn.send(("ok", 0.0, [r.get("detail") for r in plan]))
                continue
            start = time.perf_counter()
            result = fastagg.query(tables, sql, output="arrow")
            seconds = time.perf_counter() - start
            conn.send(("ok", seconds, result.to_pylist()))
        except Exception as exc:  # noqa: BLE001 - a fastagg error is a result here
            conn.send(("error", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"))


class FastaggWorker:
    """A worker process running fastagg queries; abandoned and restarted on a timeout.

    *loader* (a module-level function, so that the spawned process can import
    it) returns the ``{name: table}`` dict from *loader_args*; the process
    loads it and warms fastagg up before the first timed query.
    """

    def __init__(self, loader, *loader_args):
        self.args = (loader, loader_args)
        self.ctx = multiprocessing.get_context("spawn")
        self.proc = None
        self.startups: list[float] = []

    def _start(self) -> None:
        start = time.perf_counter()
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, args=(child, *self.args), daemon=True)
        self.proc.start()
        child.close()
        if not self.conn.poll(1800):
            self.stop()
            raise RuntimeError("fastagg worker did not start within 1800 s")
        status, detail = self.conn.recv()
        if status != "ready":
            self.stop()
            raise RuntimeError(f"fastagg worker failed to start: {detail}")
        self.startups.append(time.perf_counter() - start)

    def run(self, kind: str, sql: str, timeout: float):
        """Return ("ok", seconds, rows), ("error", message) or ("timeout",)."""
        if self.proc is None or not self.proc.is_alive():
            self._start()
        self.conn.send((kind, sql))
        if self.conn.poll(timeout):
            try:
                return self.conn.recv()
            except EOFError:
                pass
        else:
            self.stop()
            return ("timeout",)
        code = self.proc.exitcode
        self.stop()
        return ("error", f"worker process died (exit code {code})")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.proc.join(0.5)
            if self.proc.is_alive():
                self.proc.kill()
        self.proc.join()
        self.proc = None


# --------------------------------------------------------------------------
# Timing


def time_sqlite(con: sqlite3.Connection, sql: str, reps: int, timeout: float):
    """Median seconds and the rows of *sql* on SQLite; (None, None) past *timeout*."""
    times, rows = [], None
    for _ in range(reps):
        deadline = time.perf_counter() + timeout
        con.set_progress_handler(lambda: time.perf_counter() > deadline, 100_000)
        start = time.perf_counter()
        try:
            rows = con.execute(sql).fetchall()
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                return None, None
            raise
        finally:
            con.set_progress_handler(None, 0)
        times.append(time.perf_counter() - start)
        if sum(times) * reps > timeout:
            break
    return statistics.median(times), rows


def time_duckdb(con, sql: str, reps: int):
    times, rows = [], None
    for _ in range(reps):
        start = time.perf_counter()
        rows = con.execute(sql).fetchall()
        times.append(time.perf_counter() - start)
    return statistics.median(times), rows


def time_fastagg(worker: FastaggWorker, sql: str, reps: int, timeout: float):
    """Return (median seconds or None, runs, rows or None, status, first run's seconds or None).

    The first run builds the indexes this query is the first to need (they
    are kept with the Arrow tables for the later runs and queries).
    """
    times, rows = [], None
    for _ in range(reps):
        answer = worker.run("query", sql, timeout)
        if answer[0] == "timeout":
            if not times:
                return None, 0, None, "timeout", None
            return statistics.median(times), len(times), rows, "ok", times[0]
        if answer[0] == "error":
            return None, 0, None, "error: " + answer[1], None
        times.append(answer[1])
        rows = answer[2]
        if sum(times) * reps > timeout:  # a slow query: one run is its figure
            break
    return statistics.median(times), len(times), rows, "ok", times[0]


def _ratio(a, b):
    return a / b if a is not None and b else None


def write_plot(path: str, rows: list[dict], timeout: float, sf: float) -> None:
    """Grouped bars per query (fastagg, SQLite+indexes, DuckDB), log scale; timeouts hatched at the timeout."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    engines = [("fastagg s", "fastagg"), ("sqlite s", "SQLite + indexes"), ("duckdb s", "DuckDB")]
    fig, ax = plt.subplots(figsize=(12, 4.5))
    width = 0.27
    for j, (key, label) in enumerate(engines):
        xs = [i + (j - 1) * width for i in range(len(rows))]
        values = [r[key] if r[key] is not None else timeout for r in rows]
        bars = ax.bar(xs, values, width=width, label=label)
        for bar, r in zip(bars, rows):
            if r[key] is None:
                bar.set_hatch("//")
                bar.set_alpha(0.5)
    ax.set_xticks(range(len(rows)), [r["query"] for r in rows], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("seconds (log; hatched: timeout or error)")
    ax.set_title(f"TPC-H SF {sf:g} over Arrow tables")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sf", type=float, default=0.1, help="scale factor (0.1; 1)")
    parser.add_argument("--queries", default=None, help="comma-separated, e.g. q01,q05 (default: all 22)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per fastagg/SQLite query run")
    parser.add_argument("--reps", type=int, default=3, help="runs per query (median); slow queries run once")
    parser.add_argument("--data", default=None, help="data directory (default benchmarks/data/tpch-sf<SF>)")
    parser.add_argument(
        "--cast-decimals", action=argparse.BooleanOptionalAction, default=False,
        help="cast decimal128 columns to float64 for every engine (default off: fastagg reads them as REAL)",
    )
    parser.add_argument("--json", default=None)
    parser.add_argument("--plot", default=None, help="write a PNG bar chart (log scale) to this path")
    args = parser.parse_args()

    import duckdb

    names = sorted(p.stem for p in QUERY_DIR.glob("q*.sql"))
    if args.queries:
        wanted = [q.strip() if q.strip().startswith("q") else f"q{int(q):02d}" for q in args.queries.split(",")]
        unknown = set(wanted) - set(names)
        if unknown:
            raise SystemExit(f"bench_tpch: no query {', '.join(sorted(unknown))}")
        names = [n for n in names if n in wanted]
    queries = {n: (QUERY_DIR / f"{n}.sql").read_text() for n in names}

    data_dir = ensure_data(args.sf, Path(args.data) if args.data else HERE / "data" / f"tpch-sf{args.sf:g}")
    tables = load_tables(data_dir, args.cast_decimals)
    import pyarrow.parquet as pq

    decimals = sorted(
        f"{t}.{f.name}" for t in TABLES for f in pq.read_schema(data_dir / f"{t}.parquet")
        if "decimal" in str(f.type)
    )
    if args.cast_decimals:
        print(f"bench_tpch: cast {len(decimals)} decimal128 columns to float64 for every engine "
              f"({', '.join(decimals)}; --no-cast-decimals keeps them)")

    duck = duckdb.connect()
    for name, table in tables.items():
        duck.register(name, table)
    duck_threads = duck.execute("SELECT current_setting('threads')").fetchone()[0]
    sqlite_con, load_seconds = load_sqlite(tables)
    print(f"bench_tpch: SQLite load with key indexes and ANALYZE: {load_seconds:.2f} s", flush=True)

    worker = FastaggWorker(load_tables, data_dir, args.cast_decimals)
    rows = []
    for name, sql in queries.items():
        t_duck, duck_rows = time_duckdb(duck, duckdb_sql(sql), args.reps)
        expected = normalise(duck_rows)
        t_sqlite, sqlite_rows = time_sqlite(sqlite_con, sql, args.reps, args.timeout)
        if sqlite_rows is not None:
            diff = compare(name, expected, normalise(sqlite_rows))
            assert diff is None, f"{name}: SQLite baseline differs from DuckDB: {diff}"
        t_fast, runs, fast_rows, status, t_first = time_fastagg(worker, sql, args.reps, args.timeout)
        if fast_rows is not None:
            diff = compare(name, expected, normalise(fast_rows))
            status = "ok" if diff is None else f"WRONG: {diff}"
        row = {
            "query": name,
            "fastagg s": t_fast,
            "sqlite s": t_sqlite,
            "duckdb s": t_duck,
            "fastagg/sqlite": _ratio(t_fast, t_sqlite),
            "fastagg/duckdb": _ratio(t_fast, t_duck),
            "fastagg runs": runs,
            # Not "... s": run_all plots those columns; this one is in the table only.
            "fastagg first run": t_first,
            "fastagg check": status,
        }
        rows.append(row)
        shown = f"{t_fast:.3f} s" if t_fast is not None else "-"
        sq = f"{t_sqlite:.4f} s" if t_sqlite is not None else "timeout"
        print(f"  {name}: fastagg {shown}, sqlite {sq}, duckdb {t_duck:.4f} s ({status})", flush=True)

    answered = [r for r in rows if r["fastagg s"] is not None]
    correct = [r for r in answered if r["fastagg check"] == "ok"]
    sqlite_done = [r for r in rows if r["sqlite s"] is not None]

    def total(key, subset):
        return sum(r[key] for r in subset) if subset else None

    totals = [
        {"engine": "fastagg", "answered": f"{len(answered)}/{len(rows)}", "correct": len(correct),
         "total s (its answered queries)": total("fastagg s", answered),
         "total s (queries fastagg answered)": total("fastagg s", answered)},
        {"engine": "SQLite + key indexes", "answered": f"{len(sqlite_done)}/{len(rows)}", "correct": len(sqlite_done),
         "total s (its answered queries)": total("sqlite s", sqlite_done),
         "total s (queries fastagg answered)": total("sqlite s", [r for r in answered if r["sqlite s"] is not None])},
        {"engine": "DuckDB", "answered": f"{len(rows)}/{len(rows)}", "correct": len(rows),
         "total s (its answered queries)": total("duckdb s", rows),
         "total s (queries fastagg answered)": total("duckdb s", answered)},
    ]
    both = [r for r in answered if r["sqlite s"] is not None]
    ratios = {
        "fastagg/sqlite (total over queries both answered)": _ratio(total("fastagg s", both), total("sqlite s", both)),
        "fastagg/duckdb (total over queries fastagg answered)": _ratio(
            total("fastagg s", answered), total("duckdb s", answered)
        ),
        "max fastagg/sqlite (one query)": max((r["fastagg/sqlite"] for r in both), default=None),
        "fastagg first runs (index builds included) / sqlite, totals": _ratio(
            total("fastagg first run", both), total("sqlite s", both)
        ),
    }
    ratios = {k: v for k, v in ratios.items() if v is not None}

    # Slowest three: timeouts first, then by time; with SQLite's plan for each.
    candidates = [r for r in rows if r["fastagg s"] is not None or r["fastagg check"] == "timeout"]
    ranked = sorted(candidates, key=lambda r: -(r["fastagg s"] if r["fastagg s"] is not None else math.inf))
    slowest = []
    for r in ranked[:3]:
        answer = worker.run("explain", queries[r["query"]], 60)
        plan = "; ".join(answer[2]) if answer[0] == "ok" else answer[0]
        # "fastagg time", not "... s": run_all plots columns named "... s", and a plan is no label.
        slowest.append({"query": r["query"], "fastagg time": r["fastagg s"], "check": r["fastagg check"], "plan": plan})
    worker.stop()

    title = f"TPC-H SF {args.sf:g}, medians of up to {args.reps} (timeout {args.timeout:g} s)"
    print_table(title, rows)
    print_table("Totals", totals)
    print_table("Ratios", [{"ratio": k, "value": v} for k, v in ratios.items()])
    print_table("Slowest three fastagg queries (EXPLAIN QUERY PLAN)", slowest)
    print(f"\nSQLite load (tables, key indexes, ANALYZE): {load_seconds:.2f} s; "
          f"fastagg worker start-up (excluded): {', '.join(f'{s:.1f}' for s in worker.startups)} s; "
          f"DuckDB threads: {duck_threads}; decimals cast to float64: {args.cast_decimals}")
    if args.plot:
        write_plot(args.plot, rows, args.timeout, args.sf)
    write_json(args.json, {
        "sf": args.sf,
        "timeout_s": args.timeout,
        "reps": args.reps,
        "cast_decimals": args.cast_decimals,
        "decimal_columns_cast": len(decimals) if args.cast_decimals else 0,
        "sqlite_load_s": load_seconds,
        "duckdb_threads": duck_threads,
        "queries": rows,
        "totals": totals,
        "ratios": ratios,
        "slowest_fastagg": slowest,
    })


if __name__ == "__main__":
    main()
