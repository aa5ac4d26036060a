"""The native grouped engine against SQLite: two engines, one answer.

Every statement runs with ``engine="sqlite"`` (the reference) and with the
default engine; results must be equal, Arrow types included (floats
bit-identical for SQLite's own aggregates; user aggregates split over
threads within 1e-12 relative, as their merge changes summation order).
Errors must be the same exception with the same message.
"""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastagg
from aggs import MergeableWelfordVar, WelfordVar

# The native engine leaves frames under NATIVE_MIN_ROWS to SQLite while numba
# is not loaded (start-up); these tests are about the engine itself.
import numba  # noqa: E402, F401

EXAMPLES = settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))


@fastagg.aggregate(name="evar")
class EVar(MergeableWelfordVar):
    pass


@fastagg.aggregate(name="evar1")
class EVarOne(WelfordVar):
    """No merge: always one thread."""


@fastagg.aggregate(name="boom")
class Boom:
    """Raises in the group that holds 13.0."""

    n: np.int64

    def step(self, x: float):
        if x == 13.0:
            raise ValueError("thirteen")
        self.n += 1

    def finalize(self) -> int:
        return self.n


@fastagg.aggregate(name="enulls")
class ENulls:
    """Optional argument: counts NULLs; __init__ runs once per group."""

    nulls: np.int64
    inits: np.int64

    def __init__(self):
        self.inits += 1

    def step(self, x: float | None):
        if x is None:
            self.nulls += 1

    def finalize(self) -> int:
        return self.nulls * 1000 + self.inits


AGGS = [EVar, EVarOne, Boom, ENulls]


RAN = {"native": 0, "sqlite": 0}


def outcome(df, sql, aggregates=AGGS, **kw):
    from fastagg.engine.native import last_run

    try:
        result = "ok", fastagg.query(df, sql, aggregates, output="arrow", **kw)
    except Exception as exc:  # noqa: BLE001 - compared between the engines
        result = "error", type(exc).__name__, str(exc)
    if kw.get("engine") != "sqlite":
        ran = last_run()
        RAN[ran.engine if ran else "sqlite"] += 1
        if result[0] == "ok" and fastagg.explain(df, sql, aggregates).engine == "native":
            # In the shape and no error: the native engine must have answered (or given
            # way to SQLite on an overflow in an argument's arithmetic, whose rows SQLite makes REAL;
            # or, under LIMIT, on an error in a group SQLite then never reached: the native run
            # computes every group, so an integer overflow or a raising step there stops it).
            assert ran is not None and (
                ran.engine == "native" or "overflow in an argument" in ran.reason
                or (" LIMIT " in sql and "native run stopped" in ran.reason)), (sql, ran)
    return result


def assert_same(df, sql, aggregates=AGGS, rel=0.0, params=None, **kw):
    ref = outcome(df, sql, aggregates, engine="sqlite", workers=1, params=params)
    got = outcome(df, sql, aggregates, params=params, **kw)
    assert ref[0] == got[0], (sql, ref, got)
    if ref[0] == "error":
        assert ref == got, sql
        return
    a, b = ref[1], got[1]
    assert a.schema == b.schema, (sql, a.schema, b.schema)
    if rel == 0.0:
        assert a.equals(b), (sql, a.to_pydict(), b.to_pydict())
        # bit-identical floats (equals treats 0.0 == -0.0)
        for ca, cb in zip(a.columns, b.columns):
            if pa.types.is_floating(ca.type):
                x = ca.to_numpy(zero_copy_only=False)
                y = cb.to_numpy(zero_copy_only=False)
                assert np.array_equal(x.view(np.int64), y.view(np.int64)) or np.array_equal(x, y, equal_nan=True)
        return
    for ra, rb in zip(a.to_pylist(), b.to_pylist()):
        for k in ra:
            x, y = ra[k], rb[k]
            if isinstance(x, float) and isinstance(y, float):
                assert math.isclose(x, y, rel_tol=rel, abs_tol=1e-300), (sql, k, x, y)
            else:
                assert x == y, (sql, k, x, y)


# ------------------------------------------------------------------ frames

TEXT = st.text(alphabet=st.sampled_from(list("ab\u00e9\u4e2dZ ")), max_size=3)


@st.composite
def frames(draw):
    n = draw(st.sampled_from([0, 1, 2, 5, 30, 200]))
    mode = draw(st.sampled_from(["few", "one", "distinct"]))
    ngroups = {"few": 4, "one": 1, "distinct": max(n, 1)}[mode]

    def keys(values):
        return [values[draw(st.integers(0, len(values) - 1))] if mode != "distinct" else values[i % len(values)]
                for i in range(n)]

    ints = draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=ngroups, max_size=ngroups, unique=True))
    gi = keys(ints)
    null_keys = draw(st.booleans())
    k_int = pd.array([None if null_keys and i % 5 == 0 else v for i, v in enumerate(gi)], dtype="Int64")
    floats = draw(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64).filter(lambda f: f != 0 or math.copysign(1, f) > 0),
                           min_size=ngroups, max_size=ngroups))
    gf = np.array(keys(floats) if floats else [0.0] * n, dtype=np.float64)
    if null_keys and n:
        gf[::3] = np.nan
    texts = draw(st.lists(TEXT, min_size=ngroups, max_size=ngroups))
    gt = [None if null_keys and i % 4 == 1 else v for i, v in enumerate(keys(texts))]
    gb = np.array([draw(st.booleans()) for _ in range(n)], dtype=bool)
    x = np.array([draw(st.one_of(st.floats(-1e6, 1e6), st.sampled_from([0.0, 13.0, np.nan, 1e300])))
                  for _ in range(n)], dtype=np.float64)
    ibig = draw(st.booleans())
    xi = [draw(st.integers(-(2**63), 2**63 - 1) if ibig else st.integers(-100, 100)) for _ in range(n)]
    days = [draw(st.integers(0, 60)) for _ in range(n)]
    stamps = pd.to_datetime("2020-01-01") + pd.to_timedelta(days, unit="D") + pd.to_timedelta(
        [d * 3600 for d in days], unit="s")
    d = pd.Series(stamps).where([not (null_keys and k % 6 == 2) for k in range(n)])
    dd = pd.array([None if null_keys and k % 7 == 3 else (stamps[k].date()) for k in range(n)],
                  dtype=pd.ArrowDtype(pa.date32()))
    return pd.DataFrame({
        "ki": k_int, "kf": gf, "kt": pd.array(gt, dtype=object), "kb": gb,
        "x": x, "i": np.array(xi, dtype=np.int64), "d": d.astype("datetime64[ns]"), "dd": dd,
    })


KEYSETS = [(), ("ki",), ("kf",), ("kt",), ("kb",), ("kt", "ki"), ("kb", "kf", "kt"), ("dd", "kb"), ("d",)]
AGG_CALLS = ["count(*)", "count(x)", "count(kt)", "sum(x)", "total(x)", "avg(x)", "min(x)", "max(x)",
             "sum(i)", "total(i)", "avg(i)", "min(i)", "max(i)", "sum(kb)", "evar(x)", "evar1(x)", "enulls(x)",
             "var_samp(x)", "median(x)", "evar(i)",
             # arithmetic in arguments (SQLite's integer/real rules, overflow, division by zero)
             "sum(x * 2 - i)", "avg(i / 3)", "total(-x)", "min(x / i)", "max(i * i)", "count(x + i)",
             "sum(i * 3 - 1)", "sum(i / (i - i))", "evar(x * 1.5)", "enulls(x - i)", "sum(-(i))", "avg(kb + 0.5)",
             # FILTER (WHERE ...)
             "sum(i) FILTER (WHERE x > 0)", "count(*) FILTER (WHERE kt = 'a' OR kt IS NULL)",
             "evar(x) FILTER (WHERE i < 50)", "enulls(x) FILTER (WHERE i IN (1, 2, 3))",
             "avg(x) FILTER (WHERE dd > '2020-01-20')",
             # text min / max (BINARY)
             "min(kt)", "max(kt)", "max(kt) FILTER (WHERE x > 0)"]
WHERES = [None, "x > 0", "x <= 10.5 AND NOT (kt IS NULL)", "x BETWEEN -5 AND 1000 OR kt = 'a'", "i >= 0",
          "kt IN ('a', '\u00e9')", "NOT (x < 0) OR i < 3", "ki IS NOT NULL", "kb = 1",
          # constant expressions (evaluated once by SQLite), dates and datetimes against text
          "x > 0.06 - 0.01", "kt >= lower('A')", "d <= datetime('2020-02-01', '-3 days')",
          "dd <= date('2020-02-01', '-30 days')", "d BETWEEN '2020-01-05' AND '2020-01-20 12:00'",
          "dd <> '2020-01-03' AND dd IS NOT NULL", "kt < 'b' || ''"]
TAILS = ["", " HAVING count(*) > 1", " ORDER BY 1 DESC", " LIMIT 2"]


@st.composite
def statements(draw):
    keys = draw(st.sampled_from(KEYSETS))
    aggs = draw(st.lists(st.sampled_from(AGG_CALLS), min_size=0 if keys else 1, max_size=4))
    where = draw(st.sampled_from(WHERES))
    select = ", ".join(list(keys) + aggs)
    sql = f"SELECT {select} FROM df"
    if where:
        sql += f" WHERE {where}"
    if keys:
        sql += " GROUP BY " + ", ".join(keys)
        sql += draw(st.sampled_from(TAILS))
    return sql


@EXAMPLES
@given(frames(), statements())
def test_differential(df, sql):
    assert_same(df, sql)


def test_differential_mostly_native():
    # The generated statements are in the shape: most must run natively
    # (the rest stopped on an error SQLite then reported).
    if sum(RAN.values()) < 20:
        pytest.skip("run with test_differential")
    assert RAN["native"] > RAN["sqlite"], RAN


@EXAMPLES
@given(frames(), st.sampled_from([KEYSETS[1], KEYSETS[3], KEYSETS[5]]), st.sampled_from([1, 2, 3]))
def test_threads_same_answer(df, keys, workers):
    df = pd.concat([df] * 20, ignore_index=True)
    sql = f"SELECT {', '.join(keys)}, evar(x), evar1(x), enulls(x), sum(x), avg(i), count(*) FROM df GROUP BY {', '.join(keys)}"
    assert_same(df, sql, rel=1e-12, workers=workers)


# ------------------------------------------------------------ fixed cases


@pytest.fixture(scope="module")
def df():
    rng = np.random.default_rng(7)
    n = 3000
    frame = pd.DataFrame({
        "g": rng.integers(0, 40, n),
        "s": rng.choice(["a", "\u00e9", "b", None, "zz"], n),
        "x": rng.normal(size=n) * 100,
        "i": rng.integers(-5, 5, n),
    })
    frame.loc[::11, "x"] = np.nan
    return frame


def test_explain(df):
    e = fastagg.explain(df, "SELECT g, evar(x) FROM df GROUP BY g", [EVar])
    assert e.engine == "native"
    assert fastagg.explain(df, "SELECT g, evar(x) FROM df GROUP BY g", [EVar], engine="sqlite").engine == "sqlite"
    e = fastagg.explain(df, "SELECT g, count(DISTINCT x) FROM df GROUP BY g")
    assert (e.engine, e.reason) == ("sqlite", "DISTINCT aggregate")
    with fastagg.connect() as db:
        db.register("t", df)
        assert db.explain("SELECT sum(x) FROM t").engine == "native"
        assert "is not a column" in db.explain("SELECT g % 3, sum(x) FROM t GROUP BY g % 3").reason


OUTSIDE = [
    "SELECT g % 3 AS k, sum(x) FROM df GROUP BY g % 3",
    "SELECT g, sum(abs(x)) FROM df GROUP BY g",
    "SELECT g, count(DISTINCT i) FROM df GROUP BY g",
    "SELECT g, sum(x) FROM df WHERE i IN (1, 2) GROUP BY g",
    "SELECT g, sum(x) FROM df WHERE i = 1 OR i = 2 GROUP BY g",
    "SELECT g, sum(x) FROM df WHERE s IN ('a', 'b') GROUP BY g",  # the virtual table probes IN per value
    "SELECT sum(x) FILTER (WHERE s IN ('a', 'b')) FROM df WHERE x > 0.5 - 0.25",  # an index plan: key order
    "SELECT g, sum(x) FROM df WHERE s = 'a' OR s = 'b' GROUP BY g",  # SQLite makes it IN
    "SELECT g, sum(x) OVER (PARTITION BY g) FROM df",
    "SELECT DISTINCT g FROM df",
    "SELECT g, group_concat(s) FROM df GROUP BY g",
    "SELECT s, max(s || 'x') FROM df GROUP BY s",
    "SELECT g, sum(x) FILTER (WHERE x > ?) FROM df GROUP BY g",
    "SELECT g, sum(x) FROM df WHERE x > unicode('a') GROUP BY g",
    "SELECT g, sum(x) FROM df WHERE s > date('now') GROUP BY g",
    "SELECT g, sum(x * '2') FROM df GROUP BY g",
    "SELECT g, sum(x) FROM df WHERE x > i GROUP BY g",
    "SELECT g, sum(x) FROM (SELECT * FROM df) GROUP BY g",
    "SELECT g, x, sum(i) FROM df GROUP BY g",
]


@pytest.mark.parametrize("sql", OUTSIDE)
def test_outside_the_shape_falls_back(df, sql):
    assert fastagg.explain(df, sql, AGGS).engine == "sqlite"
    assert_same(df, sql)


INSIDE = [
    "SELECT g, sum(x) / count(*) AS r, evar(x) AS v FROM df GROUP BY g HAVING count(x) > 60 ORDER BY v DESC LIMIT 5",
    "SELECT s, g, avg(x), min(i), max(x) FROM df WHERE x > ? AND s <> 'b' GROUP BY s, g",
    "SELECT count(*), sum(x), total(x), avg(x), evar(x), enulls(x) FROM df WHERE x > 1e9",
    "SELECT g, count(*) FROM df WHERE x > 1e9 GROUP BY g",
    "SELECT round(avg(x), 3) AS a, upper(s) AS u FROM df GROUP BY s ORDER BY a",
    "SELECT var_samp(x), corr(x, i), stddev(x) FROM df",
    "SELECT g, boom(x) FROM df GROUP BY g",
    "SELECT g, sum(x + 1), avg(i * 2.5), sum(i / 2), total(x / i) FROM df GROUP BY g",
    "SELECT s, max(s), min(s), count(*) FILTER (WHERE x > 0) AS n FROM df GROUP BY s",
    "SELECT g, evar(x) FILTER (WHERE i BETWEEN -2 AND 2 AND s <> 'b') FROM df GROUP BY g ORDER BY g LIMIT 7",
    "SELECT sum(x) FILTER (WHERE s IN ('a', 'b')), count(*) FROM df WHERE x > 0.25 AND s <> 'zz'",
    "SELECT g, sum(x) FILTER (WHERE s IN ('a', 'b')), count(*) FROM df WHERE x > 0.5 - 0.25 GROUP BY g",
    "-- a leading comment\nSELECT g, count(*) FROM df GROUP BY g",
    "SELECT g AS k, sum(x) AS t FROM df GROUP BY g ORDER BY g LIMIT 5 OFFSET 3",
]


@pytest.mark.parametrize("sql", INSIDE)
def test_inside_the_shape(df, sql):
    assert fastagg.explain(df, sql, AGGS).engine == "native", fastagg.explain(df, sql, AGGS)
    params = [0.5] if "?" in sql else None
    assert_same(df, sql, params=params)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_error_in_one_group(df, workers):
    frame = df.copy()
    frame.loc[17, "x"] = 13.0
    ref = outcome(frame, "SELECT g, boom(x) FROM df GROUP BY g", engine="sqlite", workers=1)
    got = outcome(frame, "SELECT g, boom(x) FROM df GROUP BY g", workers=workers)
    assert ref[0] == "error" and ref == got
    assert "Boom.step: ValueError: thirteen" in got[2]


def test_integer_overflow():
    frame = pd.DataFrame({"g": [1, 1, 2], "i": [2**62, 2**62, 1]})
    ref = outcome(frame, "SELECT g, sum(i) FROM df GROUP BY g", engine="sqlite")
    assert ref[0] == "error" and "integer overflow" in ref[2]
    assert outcome(frame, "SELECT g, sum(i) FROM df GROUP BY g") == ref
    assert_same(frame, "SELECT g, total(i), avg(i) FROM df GROUP BY g")


def test_arrow_frame_and_empty():
    table = pa.table({"g": pa.array(["x", None, "x", "\u00e9"]), "x": pa.array([1.5, 2.0, None, 4.0])})
    for sql in ["SELECT g, sum(x), count(*), evar(x) FROM df GROUP BY g", "SELECT sum(x), evar(x) FROM df"]:
        assert_same(table, sql)
        assert_same(table.slice(0, 0), sql)
    assert fastagg.query(table.slice(0, 0), "SELECT count(*) AS n, total(x) AS t FROM df", output="arrow").to_pylist() == [
        {"n": 0, "t": 0.0}
    ]


def test_engine_option_checked(df):
    with pytest.raises(fastagg.Error, match="engine must be"):
        fastagg.query(df, "SELECT 1", engine="fast")
    with pytest.raises(fastagg.Error, match="outside the native shape"):
        fastagg.query(df, "SELECT DISTINCT g FROM df", engine="native")



def test_column_kinds():
    n = 400
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({
        "c": pd.Categorical(rng.choice(["b", "a", "\u00e9"], n)),
        "u": rng.integers(0, 5, n).astype(np.uint8),
        "f": rng.normal(size=n).astype(np.float32),
        "t": pd.array(rng.choice(["a\x00b", "a", "a\x00", None], n), dtype="string[pyarrow]"),
        "m": pd.array(rng.choice([1.5, None, -2.0], n), dtype="Float64"),
        "b": pd.array(rng.choice([True, False, None], n), dtype="boolean"),
    })
    for sql in [
        "SELECT c, u, sum(f), min(f), max(u), evar(f), avg(m), count(b), sum(b) FROM df GROUP BY c, u",
        "SELECT t, count(*), total(m), enulls(m) FROM df GROUP BY t",
        "SELECT b, evar(u), max(m) FROM df WHERE f > 0 GROUP BY b",
        "SELECT c, sum(u) FROM df WHERE c = 'a' OR t IS NULL GROUP BY c",
    ]:
        assert fastagg.explain(frame, sql, AGGS).engine == "native", sql
        assert_same(frame, sql)
        assert_same(pa.Table.from_pandas(frame, preserve_index=False), sql)


def _changed_frame():
    n = 1000
    return pd.DataFrame({
        "g": np.arange(n) % 3,
        "x": np.arange(n, dtype=np.float64),
        "s": np.array(["a", "b", "\u00e9", None] * (n // 4), dtype=object),
        "p": pd.array(["k1", "k2"] * (n // 2), dtype="string[pyarrow]"),
        "c": pd.Categorical(["u", "v", "w", "u"] * (n // 4)),
        "m": pd.array(list(range(n)), dtype="Int64"),
    })


CHANGES = {
    "assign": lambda df: df.__setitem__("x", 2.0),
    "drop-column": lambda df: df.drop(columns="x", inplace=True),
    "trim-rows": lambda df: df.drop(index=df.index[500:], inplace=True),
    "object-cell": lambda df: df.loc.__setitem__((slice(0, 600), "s"), "zz"),
    "arrow-string-cell": lambda df: df.loc.__setitem__((slice(0, 600), "p"), "k9"),
    "categorical": lambda df: df.__setitem__("c", df["c"].cat.rename_categories(["z", "y", "x"])),
    "masked-cell": lambda df: df.loc.__setitem__((slice(0, 600), "m"), None),
    "replace-all": lambda df: [df.__setitem__(c, df[c].iloc[::-1].to_numpy()) for c in list(df.columns)],
}

#: Writes into a buffer the registration shares (documented: both engines see them).
IN_PLACE = {"masked-cell"}

CHANGED_SQL = [
    "SELECT g, sum(x) AS s, var_samp(x) AS v, count(*) AS n FROM t GROUP BY g",
    "SELECT s, p, count(*) AS n, sum(x) AS t, max(s) AS hi FROM t WHERE s <> 'b' AND p = 'k1' GROUP BY s, p",
    "SELECT c, sum(m) AS t, count(m) FILTER (WHERE c = 'u') AS n FROM t GROUP BY c",
    "SELECT sum(x * 2 + m) AS t, count(*) FILTER (WHERE s IS NULL) AS n FROM t WHERE m > 10",
]


@pytest.mark.parametrize("change", list(CHANGES), ids=list(CHANGES))
@pytest.mark.parametrize("sql", CHANGED_SQL)
@pytest.mark.filterwarnings("ignore")
def test_native_engine_reads_what_was_registered(change, sql):
    """The native engine answers over the frame as registered (the table stage's buffers), as SQLite does."""
    df = _changed_frame()
    with fastagg.connect() as db:
        db.register("t", df)
        before = db.query(sql, output="arrow", engine="sqlite", workers=1)
        CHANGES[change](df)
        assert db.explain(sql).engine == "native"
        got = db.query(sql, output="arrow")
        from fastagg.engine.native import last_run

        assert last_run().engine == "native", last_run()
        after = db.query(sql, output="arrow", engine="sqlite", workers=1)
        assert got.equals(after) and got.schema == after.schema, (got.to_pydict(), after.to_pydict())
        if change not in IN_PLACE:
            assert after.equals(before)


def test_small_frames_go_to_sqlite_before_numba_loads():
    """In a fresh process a small grouped query is answered without importing numba."""
    from conftest import run_isolated

    proc = run_isolated(
        """
        import sys, numpy as np, pandas as pd, fastagg
        df = pd.DataFrame({"g": np.arange(1000) % 7, "x": np.arange(1000.0)})
        sql = "SELECT g, sum(x) FROM df GROUP BY g"
        print(fastagg.explain(df, sql).engine, fastagg.query(df, sql).shape, "numba" in sys.modules)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["sqlite", "(7,", "2)", "False"]


def _lineitem(n=20_000, seed=5):
    """A TPC-H lineitem-like Arrow table: decimal128 money, string_view flags, date32 ship dates, chunks."""
    import datetime
    import decimal

    rng = np.random.default_rng(seed)
    money = lambda lo, hi: pa.array([decimal.Decimal(int(v)) / 100 for v in rng.integers(lo, hi, n)],  # noqa: E731
                                    pa.decimal128(15, 2))
    flags = pa.array(rng.choice(["A", "N", "R"], n)).cast(pa.string_view())
    status = pa.array(rng.choice(["F", "O"], n)).cast(pa.string_view())
    ship = pa.array([datetime.date(1992, 1, 1) + datetime.timedelta(days=int(d)) for d in rng.integers(0, 2500, n)],
                    pa.date32())
    table = pa.table({"l_returnflag": flags, "l_linestatus": status, "l_quantity": money(100, 5000),
                      "l_extendedprice": money(90000, 10000000), "l_discount": money(0, 11), "l_tax": money(0, 9),
                      "l_shipdate": ship})
    return pa.concat_tables([table.slice(0, n // 3), table.slice(n // 3)])  # two chunks


def test_tpch_q1_runs_natively_and_matches():
    import pathlib

    sql = (pathlib.Path(__file__).parent.parent / "benchmarks" / "tpch" / "q01.sql").read_text()
    data = {"lineitem": _lineitem()}
    assert fastagg.explain(data, sql).engine == "native", fastagg.explain(data, sql)
    ref = fastagg.query(data, sql, output="arrow", engine="sqlite", workers=1)
    got = fastagg.query(data, sql, output="arrow")
    from fastagg.engine.native import last_run

    assert last_run().engine == "native", last_run()
    assert got.equals(ref) and got.schema == ref.schema, (got.to_pydict(), ref.to_pydict())


def test_index_built_earlier_keeps_sqlites_order():
    """After a statement built an index, a WHERE SQLite answers through it still gets SQLite's answer."""
    table = _lineitem(6000)
    grouped = ("SELECT l_returnflag, sum(l_extendedprice * (1 - l_discount)) AS s, count(*) AS n FROM t "
               "WHERE l_shipdate <= date('1998-12-01', '-900 days') GROUP BY l_returnflag")
    ungrouped = "SELECT sum(l_extendedprice) AS s FROM t WHERE l_quantity > 10.0 + 5"
    with fastagg.connect() as db:
        db.register("t", table)
        db.query("SELECT count(*) FROM t a JOIN t b ON a.l_shipdate = b.l_shipdate WHERE a.l_tax > 0.07",
                 engine="sqlite", workers=1)
        for sql in (grouped, ungrouped, grouped.replace("<=", ">")):
            ref = db.query(sql, output="arrow", engine="sqlite", workers=1)
            got = db.query(sql, output="arrow")
            assert got.equals(ref) and got.schema == ref.schema, (sql, got.to_pydict(), ref.to_pydict())
        assert "expression and no GROUP BY" in db.explain(ungrouped).reason


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_large_frame_threaded_keys_and_counts(workers):
    """Keys ranked on threads, counts over row ranges on threads: SQLite's answer, for any thread count."""
    rng = np.random.default_rng(11)
    n = 300_000
    df = pd.DataFrame({
        "k": rng.integers(0, 50, n),
        "t": pd.array(rng.choice(["alpha-long-key", "b", None, "\u00e9t\u00e9-2024-xx"], n), dtype="string[pyarrow]"),
        "x": rng.normal(size=n),
    })
    for sql in ["SELECT t, k, count(*), count(x), sum(x), max(t) FROM df GROUP BY t, k",
                "SELECT count(*), count(t), total(x) FROM df",
                "SELECT k, t, count(*) FILTER (WHERE x > 0) FROM df WHERE k < 40 GROUP BY k, t"]:
        assert_same(df, sql, workers=workers)


def test_error_in_a_group_limit_never_reaches():
    # SQLite stops after LIMIT's groups and never finalizes the overflowing third one; the native
    # run computes every group, stops on the overflow and gives way: SQLite's answer, not an error.
    # (The rule of test_differential's `outcome` allows this; hypothesis found it.)
    frame = pd.DataFrame({"ki": pd.array([1, 1, 2, 3, 3], dtype="Int64"),
                          "i": np.array([1, 2, 3, 2**62, 2**62], dtype=np.int64)})
    assert_same(frame, "SELECT ki, sum(i) FROM df GROUP BY ki LIMIT 2")
    from fastagg.engine.native import last_run

    assert last_run().engine == "sqlite" and "integer overflow" in last_run().reason
    with pytest.raises(sqlite3.OperationalError, match="integer overflow"):  # SQLite's own error
        fastagg.query(frame, "SELECT ki, sum(i) FROM df GROUP BY ki")
