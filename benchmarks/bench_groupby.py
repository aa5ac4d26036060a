"""Grouped aggregates end to end: fastagg vs pandas, pandas+numba, numbagg, DuckDB, polars.

Three frames of ``--rows`` rows (default 2,000,000), in the same run: an
int64 key with 1,000 groups, an int64 key with 1,000,000 groups, and a text
key (``string[pyarrow]``) with 1,000 groups. Two threads are allowed for
every engine (fastagg ``workers=2``, DuckDB ``SET threads=2``,
``POLARS_MAX_THREADS=2``, ``NUMBA_NUM_THREADS=2``). Cases (issue 13):

- a custom Welford variance, ``SELECT g, myvar(x) FROM df GROUP BY g``, from
  the DataFrame to a pandas result, vs pandas
  ``groupby("g")["x"].agg(f, engine="numba")``, DuckDB's ``var_samp``,
  numbagg's ``group_nanvar`` (on the key's integer codes; int keys only)
  and pandas' ``.var()``;
- built-in ``var_samp``, ``corr``, ``median``, ``approx_count_distinct`` and
  SQLite's ``sum``/``avg``/``count`` vs DuckDB's same function and pandas'
  own groupby method (and polars');
- ungrouped ``SELECT myavg(x) FROM df`` vs numpy's ``x.mean()``;
- the classic path (``to_sql`` + ``create_aggregate`` + ``read_sql``), once;
- TPC-H Q1 (``benchmarks/tpch/q01.sql``) over the ``lineitem`` Parquet file
  of ``--tpch DIR`` (default ``benchmarks/data/tpch-sf1`` when present; its
  decimals exposed as REAL), fastagg vs DuckDB, answers checked;
- the fallback cost: a statement outside the native shape, ``engine="auto"``
  (the shape check, then SQLite) vs ``engine="sqlite"``.

Targets: custom variance <= 0.5x pandas-numba, <= 2x DuckDB, <= 3x numbagg;
built-ins <= 1.5x DuckDB and faster than pandas; ungrouped <= 2x numpy.
If ``fastagg.query`` accepts ``engine="sqlite"``, both engines are timed.
Every answer is checked first: equal to DuckDB's within 1e-9 relative
(``approx_count_distinct`` within 10% or 2 of the exact count per group:
sketches differ).

Run: ``python benchmarks/bench_groupby.py [--rows N] [--repeat R]
[--no-big-groups] [--tpch DIR | --no-tpch] [--json PATH]``.
"""

from __future__ import annotations

import os

THREADS = 2
# Before numba, polars or DuckDB start their thread pools.
os.environ.setdefault("NUMBA_NUM_THREADS", str(THREADS))
os.environ.setdefault("POLARS_MAX_THREADS", str(THREADS))

import argparse  # noqa: E402
import sqlite3  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import median_time, print_table, write_json  # noqa: E402

import fastagg  # noqa: E402
from bench_parallel import Welford  # noqa: E402 - the one benchmark Welford variance


@fastagg.aggregate(name="myvar")
class MyVar(Welford):
    """Sample variance: bench_parallel's Welford update and Chan merge, as ``myvar``."""


@fastagg.aggregate(name="myavg")
class MyAvg:
    """Mean, for the ungrouped case."""

    n: np.int64
    total: np.float64

    def step(self, x: float):
        self.n += 1
        self.total += x

    def merge(self, other):
        self.n += other.n
        self.total += other.total

    def finalize(self) -> float | None:
        return self.total / self.n if self.n else None


class PyVar:
    """The same variance for Python's ``create_aggregate`` (the classic path)."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def step(self, x):
        if x is None:
            return
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def finalize(self):
        return self.m2 / (self.n - 1) if self.n > 1 else None


def welford_numba(values, index):
    """pandas ``engine="numba"`` UDF: the same Welford loop."""
    n, mean, m2 = 0, 0.0, 0.0
    for x in values:
        n += 1
        delta = x - mean
        mean += delta / n
        m2 += delta * (x - mean)
    return m2 / (n - 1) if n > 1 else np.nan


def make_frame(rows: int, groups: int, text: bool) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    g = rng.integers(0, groups, rows)
    df = pd.DataFrame({
        "g": g,
        "x": rng.normal(100.0, 15.0, rows),
        "y": rng.normal(size=rows),
        "h": rng.integers(0, 50_000, rows),
    })
    df["y"] += 0.5 * df["x"]
    if text:
        keys = np.array([f"key-{i:05d}" for i in range(groups)], dtype=object)
        df["g"] = pd.Series(keys[g], dtype="string[pyarrow]")
    return df


# --------------------------------------------------------------------------
# Checks


def _values(frame: pd.DataFrame, column) -> np.ndarray:
    return pd.to_numeric(frame[column].astype(object).where(frame[column].notna(), np.nan)).to_numpy(float)


def by_key(result: pd.DataFrame) -> pd.DataFrame:
    """Result columns renamed to g, v1, v2, ...; rows sorted by the key, plain dtypes."""
    out = result.copy()
    out.columns = ["g"] + [f"v{i}" for i in range(1, out.shape[1])]
    out["g"] = out["g"].astype(object)
    return out.sort_values("g", kind="stable").reset_index(drop=True)


def check(name: str, expected: pd.DataFrame, got: pd.DataFrame, rtol: float = 1e-9, atol: float = 0.0) -> None:
    """Assert that two grouped results agree (same keys; values within *rtol*/*atol*, NULL as NaN)."""
    expected, got = by_key(expected), by_key(got)
    assert len(expected) == len(got), f"{name}: {len(got)} groups, expected {len(expected)}"
    assert expected["g"].tolist() == got["g"].tolist(), f"{name}: group keys differ"
    for column in expected.columns[1:]:
        np.testing.assert_allclose(
            _values(got, column), _values(expected, column), rtol=rtol, atol=atol, equal_nan=True, err_msg=name
        )


def check_scalar(name: str, expected: float, got: float, rtol: float = 1e-9) -> None:
    assert abs(got - expected) <= rtol * abs(expected), f"{name}: {got} != {expected}"


# --------------------------------------------------------------------------
# Engines


def sqlite_engine_available() -> bool:
    """Does this fastagg take ``engine="sqlite"`` (issue 13's switch)?"""
    try:
        fastagg.query(pd.DataFrame({"g": [1], "x": [1.0]}), "SELECT g, sum(x) FROM df GROUP BY g", engine="sqlite")
    except TypeError:
        return False
    return True


def fast(df, sql, aggregates=(), engine=None):
    kw = {"workers": THREADS}
    if engine is not None:
        kw["engine"] = engine
    return fastagg.query(df, sql, list(aggregates), **kw)


def classic(df: pd.DataFrame, sql: str) -> pd.DataFrame:
    con = sqlite3.connect(":memory:")
    df.to_sql("df", con, index=False)
    con.create_aggregate("myvar", 1, PyVar)
    out = pd.read_sql(sql, con)
    con.close()
    return out


#: (case, SQL for fastagg and DuckDB (over df), pandas method, polars expressions)
BUILTINS = [
    ("var_samp", "SELECT g, var_samp(x) FROM df GROUP BY g",
     lambda df: df.groupby("g")["x"].var().reset_index(),
     lambda pl: [pl.col("x").var()]),
    ("corr", "SELECT g, corr(x, y) FROM df GROUP BY g",
     lambda df: df.groupby("g")[["x", "y"]].corr().xs("x", level=1)["y"].reset_index(),
     lambda pl: [pl.corr("x", "y")]),
    ("median", "SELECT g, median(x) FROM df GROUP BY g",
     lambda df: df.groupby("g")["x"].median().reset_index(),
     lambda pl: [pl.col("x").median()]),
    ("approx_count_distinct", "SELECT g, approx_count_distinct(h) FROM df GROUP BY g",
     lambda df: df.groupby("g")["h"].nunique().reset_index(),
     lambda pl: [pl.col("h").approx_n_unique()]),
    ("sum, avg, count (SQLite's)", "SELECT g, sum(x), avg(x), count(*) FROM df GROUP BY g",
     lambda df: df.groupby("g")["x"].agg(["sum", "mean", "count"]).reset_index(),
     lambda pl: [pl.col("x").sum().alias("s"), pl.col("x").mean().alias("m"), pl.len()]),
]


#: A call slower than this is timed once (its checked first run): pandas'
#: groupby().corr() and sketch aggregates over 1,000,000 groups take minutes.
SLOW_S = 10.0


def measure(fn, repeat: int, warmup=None):
    """Return (the first result, median seconds); the first run is the warm-up, or the figure if slow.

    *warmup* (the same call on a small slice of the frame) runs first, untimed:
    a compile on a cold cache (fastagg's aggregates, pandas' numba UDF) is no
    part of the figure and must not make the first run look slow.
    """
    if warmup is not None:
        warmup()
    start = time.perf_counter()
    result = fn()
    first = time.perf_counter() - start
    if first > SLOW_S:
        return result, first
    return result, median_time(fn, repeat, warmup=0)


COLUMNS = [
    "case", "key", "fastagg s", "fastagg[sqlite] s", "duckdb s", "pandas s", "pandas numba UDF s",
    "pandas .var() s", "numbagg s", "polars s", "fastagg/duckdb", "fastagg/pandas",
    "fastagg/pandas-numba", "fastagg/numbagg",
]


def ordered(rows: list[dict]) -> list[dict]:
    """Rows with the same columns, in COLUMNS order."""
    present = [c for c in COLUMNS if any(c in r for r in rows)]
    present += [k for r in rows for k in r if k not in present]
    return [{k: r.get(k) for k in present} for r in rows]


def _ratio(a, b):
    return a / b if a is not None and b else None


def _fast_column(engine) -> str:
    return f"fastagg[{engine}] s" if engine else "fastagg s"


def bench_frame(label: str, df: pd.DataFrame, repeat: int, duck, pl, engines: list) -> list[dict]:
    """Every grouped case over one frame; one row per case."""
    duck.register("df", df)
    pdf = pl.from_pandas(df) if pl is not None else None
    int_key = df["g"].dtype == np.int64
    small = df.head(1000)  # for warm-up calls
    rows = []

    # Custom variance.
    sql = "SELECT g, myvar(x) AS v FROM df GROUP BY g"
    reference = duck.execute("SELECT g, var_samp(x) AS v FROM df GROUP BY g").df()
    row = {"case": "custom variance myvar(x)", "key": label}
    for engine in engines:
        got, row[_fast_column(engine)] = measure(
            lambda: fast(df, sql, [MyVar], engine), repeat, lambda: fast(small, sql, [MyVar], engine)
        )
        check(f"myvar ({engine or 'default'})", reference, got)
    udf = lambda: df.groupby("g")["x"].agg(welford_numba, engine="numba").reset_index()  # noqa: E731
    got, row["pandas numba UDF s"] = measure(
        udf, repeat, lambda: small.groupby("g")["x"].agg(welford_numba, engine="numba")
    )
    check("pandas numba", reference, got)
    row["duckdb s"] = measure(lambda: duck.execute("SELECT g, var_samp(x) AS v FROM df GROUP BY g").df(), repeat)[1]
    if int_key:
        from numbagg.grouped import group_nanvar

        groups = int(df["g"].max()) + 1
        labels, values = df["g"].to_numpy(), df["x"].to_numpy()
        got = group_nanvar(values, labels, num_labels=groups)
        present = np.bincount(labels, minlength=groups) > 0
        # numbagg's sum-of-squares pass loses digits on groups of two close
        # values (variance ~1e-5 of x ~ 100): also allow 1e-9 * mean(x)^2.
        check("numbagg", reference, pd.DataFrame({"g": np.arange(groups)[present], "v": got[present]}),
              atol=1e-9 * float(np.mean(values)) ** 2)
        row["numbagg s"] = median_time(lambda: group_nanvar(values, labels, num_labels=groups), repeat)
    row["pandas .var() s"] = measure(lambda: df.groupby("g")["x"].var(), repeat)[1]
    t = row.get("fastagg s")
    row["fastagg/pandas-numba"] = _ratio(t, row["pandas numba UDF s"])
    row["fastagg/duckdb"] = _ratio(t, row["duckdb s"])
    row["fastagg/numbagg"] = _ratio(t, row.get("numbagg s"))
    rows.append(row)

    # Built-ins.
    for case, sql, pandas_method, polars_exprs in BUILTINS:
        # A sketch (fastagg's or DuckDB's): within 10% or 2 of the exact count (small groups collide in a register).
        rtol, atol = (0.10, 2.0) if case.startswith("approx") else (1e-9, 0.0)
        reference = duck.execute(sql).df() if rtol < 0.01 else pandas_method(df)  # approx: vs exact
        row = {"case": case, "key": label}
        for engine in engines:
            got, row[_fast_column(engine)] = measure(
                lambda: fast(df, sql, (), engine), repeat, lambda: fast(small, sql, (), engine)
            )
            check(f"{case} ({engine or 'default'})", reference, got, rtol, atol)
        got, row["duckdb s"] = measure(lambda: duck.execute(sql).df(), repeat)
        check(f"{case} (duckdb)", reference, got, rtol, atol)
        got, row["pandas s"] = measure(lambda: pandas_method(df), repeat)
        check(f"{case} (pandas)", reference, got, rtol, atol)
        if pdf is not None:
            polars_query = lambda: pdf.group_by("g").agg(polars_exprs(pl)).to_pandas()  # noqa: E731
            got, row["polars s"] = measure(polars_query, repeat)
            check(f"{case} (polars)", reference, got, rtol, atol)
        t = row.get("fastagg s")
        row["fastagg/duckdb"] = _ratio(t, row["duckdb s"])
        row["fastagg/pandas"] = _ratio(t, row["pandas s"])
        rows.append(row)
    duck.unregister("df")
    return rows


def bench_tpch_q1(data_dir: str, repeat: int, duck, engines: list) -> dict:
    """TPC-H Q1 over lineitem.parquet: fastagg (each engine) vs DuckDB, same Arrow table."""
    import pyarrow.parquet as pq

    here = os.path.dirname(os.path.abspath(__file__))
    sql = open(os.path.join(here, "tpch", "q01.sql")).read()
    columns = ["l_returnflag", "l_linestatus", "l_quantity", "l_extendedprice", "l_discount", "l_tax", "l_shipdate"]
    lineitem = pq.read_table(os.path.join(data_dir, "lineitem.parquet"), columns=columns)
    duck.register("lineitem", lineitem)
    duck_sql = sql.replace("date('1998-12-01', '-90 days')", "DATE '1998-12-01' - INTERVAL 90 DAY")
    row = {"case": "TPC-H Q1", "rows": lineitem.num_rows,
           "explain": str(fastagg.explain({"lineitem": lineitem}, sql))}
    expected, row["duckdb s"] = measure(lambda: duck.sql(duck_sql).df(), repeat)
    expected = expected.rename(columns={"l_returnflag": "g"})
    for engine in engines:
        kw = {"workers": THREADS} if engine is None else {"workers": THREADS, "engine": engine}
        # The warm-up (a slice, untimed) compiles what the statement needs: a cold cache's
        # compile is no part of the figure (measure reports a first run over SLOW_S as it is).
        got, row[_fast_column(engine)] = measure(lambda: fastagg.query({"lineitem": lineitem}, sql, **kw), repeat,
                                                 warmup=lambda: fastagg.query({"lineitem": lineitem.slice(0, 20_000)},
                                                                              sql, **kw))
        got = got.rename(columns={"l_returnflag": "g"})
        got["g"] = got["g"].astype(str) + got.pop("l_linestatus").astype(str)
        want = expected.copy()
        want["g"] = want["g"].astype(str) + want.pop("l_linestatus").astype(str)
        check(f"TPC-H Q1 ({engine or 'default'})", want, got, rtol=1e-9)
    duck.unregister("lineitem")
    row["fastagg/duckdb"] = _ratio(row.get("fastagg s"), row["duckdb s"])
    return row


def bench_fallback(df: pd.DataFrame, repeat: int) -> dict:
    """A statement outside the native shape: engine="auto" (checked, then SQLite) vs engine="sqlite"."""
    sql = "SELECT g % 7 AS k, sum(x) AS s, count(*) AS n FROM df GROUP BY g % 7"
    row = {"case": "fallback: " + sql, "explain": str(fastagg.explain(df, sql))}
    _, row["auto s"] = measure(lambda: fastagg.query(df, sql, workers=THREADS), repeat)
    _, row["sqlite s"] = measure(lambda: fastagg.query(df, sql, workers=THREADS, engine="sqlite"), repeat)
    row["auto/sqlite"] = _ratio(row["auto s"], row["sqlite s"])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--groups", type=int, default=1000, help="groups of the int and text key frames")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-big-groups", action="store_true", help="skip the 1,000,000-group frame")
    default_tpch = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "tpch-sf1")
    parser.add_argument("--tpch", default=default_tpch, help="directory holding TPC-H lineitem.parquet (Q1)")
    parser.add_argument("--no-tpch", action="store_true", help="skip TPC-H Q1")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import duckdb

    try:
        import polars as pl
    except ImportError:
        pl = None
    duck = duckdb.connect()
    duck.execute(f"SET threads={THREADS}")
    engines = [None, "sqlite"] if sqlite_engine_available() else [None]

    frames = [(f"int64, {args.groups:,} groups", make_frame(args.rows, args.groups, False))]
    if not args.no_big_groups:
        big = min(1_000_000, args.rows // 2)
        frames.append((f"int64, {big:,} groups", make_frame(args.rows, big, False)))
    frames.append((f"string[pyarrow], {args.groups:,} groups", make_frame(args.rows, args.groups, True)))

    grouped = []
    for label, df in frames:
        print(f"bench_groupby: {label} ...", flush=True)
        grouped += bench_frame(label, df, args.repeat, duck, pl, engines)

    # Ungrouped custom mean vs numpy.
    df = frames[0][1]
    x = df["x"].to_numpy()
    sql = "SELECT myavg(x) AS m FROM df"
    ungrouped = {"case": "SELECT myavg(x) FROM df"}
    for engine in engines:
        got, ungrouped[_fast_column(engine)] = measure(
            lambda: fast(df, sql, [MyAvg], engine), args.repeat, lambda: fast(df.head(1000), sql, [MyAvg], engine)
        )
        check_scalar(f"myavg ({engine or 'default'})", x.mean(), float(got["m"].iloc[0]))
    ungrouped["numpy x.mean() s"] = median_time(x.mean, args.repeat)
    duck.register("df", df)
    check_scalar("duckdb avg", x.mean(), float(duck.execute("SELECT avg(x) FROM df").fetchone()[0]))
    ungrouped["duckdb avg(x) s"] = median_time(lambda: duck.execute("SELECT avg(x) FROM df").df(), args.repeat)
    duck.unregister("df")
    ungrouped["fastagg/numpy"] = _ratio(ungrouped["fastagg s"], ungrouped["numpy x.mean() s"])

    # The classic path, once.
    sql = "SELECT g, myvar(x) AS v FROM df GROUP BY g"
    expected = fast(df, sql, [MyVar])
    start = time.perf_counter()
    got = classic(df, sql)
    classic_s = time.perf_counter() - start
    check("classic", expected, got)
    fast_s = grouped[0]["fastagg s"]
    classic_rows = [
        {"path": "classic: to_sql + create_aggregate + read_sql", "seconds": classic_s},
        {"path": "fastagg.query", "seconds": fast_s},
        {"path": "classic / fastagg", "seconds": None, "ratio": _ratio(classic_s, fast_s)},
    ]

    tpch = []
    if not args.no_tpch and os.path.exists(os.path.join(args.tpch, "lineitem.parquet")):
        print("bench_groupby: TPC-H Q1 ...", flush=True)
        tpch.append(bench_tpch_q1(args.tpch, args.repeat, duck, engines))
    fallback = [bench_fallback(frames[0][1], args.repeat)] if engines[-1] == "sqlite" else []

    title = f"Grouped, {args.rows:,} rows, {THREADS} threads each (median of {args.repeat})"
    grouped = ordered(grouped)
    print_table(title, grouped)
    print_table("Ungrouped", [ungrouped])
    print_table(f"Classic path, {frames[0][0]} (one run)", classic_rows)
    if tpch:
        print_table(f"TPC-H Q1 ({args.tpch})", tpch)
    if fallback:
        print_table("Fallback cost (a statement outside the native shape)", fallback)
    print(f"\nfastagg engines timed: {', '.join(e or 'default' for e in engines)}")
    write_json(args.json, {
        "rows": args.rows,
        "threads": THREADS,
        "engines": ", ".join(e or "default" for e in engines),
        "grouped": grouped,
        "ungrouped": [ungrouped],
        "classic": classic_rows,
        "tpch_q1": tpch,
        "fallback": fallback,
    })


if __name__ == "__main__":
    main()
