"""fastagg.table: column buffers, the virtual table, the bulk loader.

Every query runs three times, over the virtual table (``v``), a table written
by :func:`load_frame` (``l``) and one written by ``DataFrame.to_sql`` (``s``),
and the three ``fetchall()`` lists must be equal.
"""

from __future__ import annotations

import datetime as dt
import gc
import math
import sqlite3
import subprocess
import sys
import textwrap
import time
import weakref

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import fastagg
from fastagg.sqlite import capi as _capi
from fastagg.table import release_pending
from fastagg.table.gather import CHUNK
from fastagg.table import frame_columns, load_frame, register_frame, unregister_frame

N = 240


def make_frame(n=N, seed=0):
    rng = np.random.default_rng(seed)
    nulls = rng.random(n) < 0.15

    def with_nulls(values, dtype=None):
        s = pd.Series(values, dtype=dtype)
        return s.mask(pd.Series(nulls)) if dtype is None else s.where(~nulls)

    ints = rng.integers(-5, 6, n)
    floats = np.round(rng.normal(size=n) * 3, 1)
    floats[nulls] = np.nan
    floats[:3] = [-0.0, 0.0, np.inf]
    words = np.array(["", "a", "b", "ab", "B", "é", "z z", "a\x00b"], dtype=object)
    text = words[rng.integers(0, len(words), n)].copy()
    text[nulls] = None
    stamps = pd.to_datetime("2024-01-02 03:04:05") + pd.to_timedelta(rng.integers(-10**6, 10**6, n), unit="s")
    stamps = pd.Series(stamps).astype("datetime64[ns]")
    stamps[::7] += pd.Timedelta(microseconds=250)
    stamps[::11] += pd.Timedelta(nanoseconds=999)
    stamps[nulls] = pd.NaT
    return pd.DataFrame(
        {
            "i": ints,  # int64, no NULLs
            "i8": ints.astype(np.int8),
            "u32": np.abs(ints).astype(np.uint32),
            "u64": np.abs(ints).astype(np.uint64),
            "f": floats,
            "f32": floats.astype(np.float32),
            "b": ints > 0,
            "ni": pd.array(np.where(nulls, None, ints), dtype="Int64"),
            "nf": pd.array(np.where(nulls, None, floats), dtype="Float64"),
            "nb": pd.array(np.where(nulls, None, ints > 0), dtype="boolean"),
            "ai": pd.Series(pd.array(np.where(nulls, None, ints), dtype="Int64")).astype("int64[pyarrow]"),
            "s": pd.Series(text, dtype="str"),
            "so": pd.Series(text, dtype=object),
            "ss": pd.Series(text, dtype="string"),
            "sa": pd.Series(text).astype(pd.ArrowDtype(pa.large_string())),
            "cat": pd.Series(text, dtype="category"),
            "ts": stamps,
            "tsu": stamps.astype("datetime64[us]"),
            "d": pd.Series([None if m else dt.date(2020, 1, 1) + dt.timedelta(days=int(k)) for m, k in zip(nulls, ints)], dtype=object),
            "blob": pd.Series([None if m else bytes([65 + abs(int(k))]) * abs(int(k)) for m, k in zip(nulls, ints)], dtype=object),
            "g": rng.integers(0, 4, n),
        }
    )


@pytest.fixture(scope="module")
def frame():
    return make_frame()


@pytest.fixture(scope="module")
def db(frame):
    con = sqlite3.connect(":memory:")
    reg = register_frame(con, "v", frame)
    load_frame(con, "l", frame)
    with pytest.warns(UserWarning) if False else _nullcontext():
        frame.to_sql("s", con, index=False)
    yield con
    reg.close()
    con.close()


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def same(con, sql, params=()):
    """Run *sql* over v, l and s; return the (equal) rows."""
    out = {t: con.execute(sql.format(t=t), params).fetchall() for t in ("v", "l", "s")}
    assert out["v"] == out["s"], sql
    assert out["l"] == out["s"], sql
    return out["v"]


COLUMNS = list(make_frame(4).columns)
NUMERIC = ["i", "i8", "u32", "u64", "f", "f32", "b", "ni", "nf", "nb", "ai"]


# ---------------------------------------------------------------- values


def test_full_scan_equal(db):
    rows = same(db, "SELECT rowid, * FROM {t} ORDER BY rowid")
    assert len(rows) == N


def test_types_equal(db):
    cols = ", ".join(f"typeof({c})" for c in COLUMNS)
    same(db, f"SELECT {cols} FROM {{t}} ORDER BY rowid")


def test_datetime_text_matches_to_sql():
    df = pd.DataFrame({"t": pd.to_datetime(["2024-01-02 03:04:05", "2024-01-02 03:04:05.5", None, "1960-02-29 23:59:59.123456789"], format="ISO8601")})
    con = sqlite3.connect(":memory:")
    df.to_sql("s", con, index=False)
    with register_frame(con, "v", df):
        got = con.execute("SELECT t FROM v").fetchall()
    assert got == con.execute("SELECT t FROM s").fetchall()
    assert got[0] == ("2024-01-02 03:04:05",) and got[1] == ("2024-01-02 03:04:05.500000",)
    assert got[2] == (None,)


def test_tz_aware_and_dates_match_to_sql():
    df = pd.DataFrame({
        "t": pd.to_datetime(["2024-01-02 03:04:05", None, "2024-06-01 00:00:00"]).tz_localize("Europe/Paris"),
        "d": [dt.date(2024, 1, 2), None, dt.date(1999, 12, 31)],
    })
    con = sqlite3.connect(":memory:")
    df.to_sql("s", con, index=False)
    with register_frame(con, "v", df):
        assert con.execute("SELECT * FROM v").fetchall() == con.execute("SELECT * FROM s").fetchall()


def test_uint64_above_int64_is_real():
    df = pd.DataFrame({"u": np.array([1, 2**63 - 1, 2**63, 2**64 - 1], dtype=np.uint64)})
    con = sqlite3.connect(":memory:")
    with register_frame(con, "v", df):
        rows = con.execute("SELECT u, typeof(u) FROM v").fetchall()
    assert rows[:2] == [(1, "integer"), (2**63 - 1, "integer")]
    assert rows[2] == (float(2**63), "real") and rows[3] == (float(2**64), "real")


def test_arrow_table_and_c_stream():
    table = pa.table({"a": pa.array([1, None, 3]), "s": pa.array(["x", None, "zz"]),
                      "d": pa.array(["p", "q", "p"]).dictionary_encode(), "n": pa.nulls(3),
                      "bb": pa.array([True, None, False])})

    class Stream:
        def __arrow_c_stream__(self, requested_schema=None):
            return table.__arrow_c_stream__(requested_schema)

    con = sqlite3.connect(":memory:")
    expected = [(1, "x", "p", None, 1), (None, None, "q", None, None), (3, "zz", "p", None, 0)]
    for src in (table, Stream(), table.slice(0, 3)):
        with register_frame(con, "v", src):
            assert con.execute("SELECT * FROM v").fetchall() == expected
    with register_frame(con, "v", table.slice(1, 2)):
        assert con.execute("SELECT * FROM v").fetchall() == expected[1:]
        assert con.execute("SELECT s FROM v ORDER BY s DESC").fetchall() == [("zz",), (None,)]


def test_zero_copy_buffers(frame):
    cols = {c.name: c for c in frame_columns(frame)}
    assert cols["i"].data == frame["i"].to_numpy().ctypes.data
    assert cols["f"].data == frame["f"].to_numpy().ctypes.data
    assert [c.decl for c in frame_columns(frame)][:7] == ["INTEGER"] * 4 + ["REAL"] * 2 + ["INTEGER"]


# ---------------------------------------------------------------- filters

OPS = ["=", "<", "<=", ">", ">="]


@pytest.mark.parametrize("col", ["i", "i8", "u32", "f", "f32", "b", "ni", "nf", "nb", "ai", "rowid"])
@pytest.mark.parametrize("op", OPS)
def test_filter_params(db, col, op):
    for value in (0, 2, -3, 2.5, -0.5, 2**62, -(2**63), 1e300, -1e300, None, "2"):
        same(db, f"SELECT rowid FROM {{t}} WHERE {col} {op} ? ORDER BY rowid", (value,))


@pytest.mark.parametrize("col", ["i", "f", "ni", "rowid"])
@pytest.mark.parametrize("op", OPS)
def test_filter_literals(db, col, op):
    # Literals let xBestIndex see the value (sqlite3_vtab_rhs_value) and omit SQLite's check.
    for lit in ("1", "2.5", "-4", "9223372036854775807", "-9223372036854775808", "1e19", "'3'", "NULL"):
        same(db, f"SELECT rowid, {col} FROM {{t}} WHERE {col} {op} {lit} ORDER BY rowid")


def test_filter_combined_and_in(db):
    same(db, "SELECT rowid FROM {t} WHERE i > -2 AND f <= 1.5 AND rowid BETWEEN 10 AND 200 ORDER BY rowid")
    same(db, "SELECT rowid FROM {t} WHERE i IN (1, 3, -4) ORDER BY rowid")
    same(db, "SELECT rowid FROM {t} WHERE ni IN (SELECT i FROM s WHERE i > 2) ORDER BY rowid")
    same(db, "SELECT count(*) FROM {t} WHERE rowid = 7")


# ---------------------------------------------------------------- grouping and ordering


@pytest.mark.parametrize("col", COLUMNS)
def test_group_by_one(db, col):
    same(db, f"SELECT {col}, count(*), sum(i) FROM {{t}} GROUP BY {col}")


@pytest.mark.parametrize("cols", [("g", "s"), ("s", "ni"), ("cat", "f", "b"), ("ts", "g"), ("blob", "u64")])
def test_group_by_several(db, cols):
    c = ", ".join(cols)
    same(db, f"SELECT {c}, count(*), total(f) FROM {{t}} GROUP BY {c}")


@pytest.mark.parametrize("col", COLUMNS)
@pytest.mark.parametrize("direction", ["ASC", "DESC"])
def test_order_by(db, col, direction):
    same(db, f"SELECT {col}, rowid FROM {{t}} ORDER BY {col} {direction}, rowid")


def test_order_by_several_and_collate(db):
    same(db, "SELECT s, i, rowid FROM {t} ORDER BY s DESC, i, rowid DESC")
    same(db, "SELECT s, rowid FROM {t} ORDER BY s COLLATE NOCASE, rowid")
    same(db, "SELECT s, rowid FROM {t} ORDER BY s NULLS LAST, rowid")
    same(db, "SELECT rowid FROM {t} ORDER BY rowid DESC")


def test_grouped_scan_skips_sorter(db):
    plan = db.execute("EXPLAIN QUERY PLAN SELECT g, count(*) FROM v GROUP BY g").fetchall()
    assert not any("TEMP B-TREE" in r[-1] for r in plan), plan
    plan = db.execute("EXPLAIN QUERY PLAN SELECT s, g, sum(f) FROM v GROUP BY s, g").fetchall()
    assert not any("TEMP B-TREE" in r[-1] for r in plan), plan
    plan = db.execute("EXPLAIN QUERY PLAN SELECT g, count(*) FROM l GROUP BY g").fetchall()
    assert any("USE TEMP B-TREE FOR GROUP BY" in r[-1] for r in plan)
    plan = db.execute("EXPLAIN QUERY PLAN SELECT * FROM v ORDER BY f DESC").fetchall()
    assert not any("TEMP B-TREE" in r[-1] for r in plan), plan


def test_grouped_and_ordered_scans(db):
    # GROUP BY alone, GROUP BY with ORDER BY on the same / other terms, DISTINCT.
    same(db, "SELECT g, count(*) FROM {t} GROUP BY g ORDER BY g DESC")
    same(db, "SELECT s, g, count(*) FROM {t} GROUP BY s, g ORDER BY s, g")
    same(db, "SELECT g, count(*) AS c FROM {t} GROUP BY g ORDER BY c, g")
    # DISTINCT without ORDER BY: a real table emits first appearances, the
    # virtual table sorted groups; the rows are the same.
    out = {t: db.execute(f"SELECT DISTINCT s, g FROM {t}").fetchall() for t in ("v", "s")}
    key = lambda r: (r[0] is not None, r[0] or "", r[1])  # noqa: E731
    assert sorted(out["v"], key=key) == sorted(out["s"], key=key) and len(out["v"]) == len(set(out["s"]))
    same(db, "SELECT DISTINCT ni FROM {t} ORDER BY ni DESC")
    # Products of distinct counts beyond 2n: one counting sort per term.
    same(db, "SELECT f, ts, s, count(*) FROM {t} GROUP BY f, ts, s")
    same(db, "SELECT f, ts, i, rowid FROM {t} ORDER BY f DESC, ts, i DESC, rowid")
    same(db, "SELECT rowid, f FROM {t} ORDER BY rowid DESC, f")
    same(db, "SELECT n.g, n.c, m.t FROM (SELECT g, count(*) AS c FROM {t} GROUP BY g) n "
             "JOIN (SELECT g, total(f) AS t FROM {t} GROUP BY g) m USING (g) ORDER BY 1")
    # v as the inner loop: xFilter runs again on the same cursor.
    same(db, "SELECT a.g, (SELECT group_concat(b.s, '|') FROM (SELECT s FROM {t} b WHERE b.g = a.g ORDER BY s, rowid) b) "
             "FROM (SELECT DISTINCT g FROM s) a ORDER BY a.g")
    same(db, "SELECT a.rowid, b.s FROM s a JOIN {t} b ON b.i = a.i AND b.g = a.g ORDER BY b.s, a.rowid, b.rowid LIMIT 50")


def _three_tables(df, *, to_sql=True):
    con = sqlite3.connect(":memory:")
    if to_sql:
        df.to_sql("s", con, index=False)
    load_frame(con, "l", df)
    return con, register_frame(con, "v", df)


def test_many_distinct_keys_and_chunks():
    # More rows than a gathered chunk, more distinct values than the first
    # hash table, mostly-distinct numbers (radix sort), text with NULLs.
    n = 3 * CHUNK + 17
    rng = np.random.default_rng(3)
    words = np.array([f"w{v}" * (v % 3) for v in range(n // 2)], dtype=object)
    text = words[rng.integers(0, len(words), n)]
    text[rng.random(n) < 0.05] = None
    floats = rng.normal(size=n) * 1e6
    floats[::97] = np.nan
    floats[:4] = [-0.0, 0.0, np.inf, -np.inf]
    ints = rng.integers(-(2**62), 2**62, n)
    ints[:2] = [-(2**63), 2**63 - 1]
    df = pd.DataFrame({"s": pd.Series(text, dtype=object), "f": floats, "i": ints,
                       "k": rng.integers(0, 5, n), "d": pd.Series(text, dtype=object).astype("category")})
    con, reg = _three_tables(df)
    with reg:
        same(con, "SELECT s, count(*), min(i) FROM {t} GROUP BY s")
        same(con, "SELECT d, count(*) FROM {t} GROUP BY d")
        same(con, "SELECT f, rowid FROM {t} ORDER BY f, rowid")
        same(con, "SELECT i, s FROM {t} ORDER BY i DESC")
        same(con, "SELECT k, s, f, count(*) FROM {t} GROUP BY k, s, f")
        same(con, "SELECT rowid, * FROM {t} ORDER BY s DESC, k, rowid")
        for limit, offset in ((5, 0), (3, CHUNK - 1), (2 * CHUNK, 7), (10, n - 4)):
            same(con, f"SELECT rowid, s, f FROM {{t}} ORDER BY k, s, rowid LIMIT {limit} OFFSET {offset}")
    con.close()


def test_group_by_null_and_wide_frames():
    cols = {f"c{j}": np.arange(70) % (j + 2) for j in range(70)}
    df = pd.DataFrame(cols)
    df["txt"] = pd.Series([None, "b", "a", None, "b"] * 14, dtype=object)
    df["nul"] = pd.Series([None] * 70, dtype=object)
    con, reg = _three_tables(df)
    with reg:
        # colUsed bit 63 covers columns 63 and up.
        same(con, "SELECT c68, c69, txt, count(*) FROM {t} GROUP BY c68, txt ORDER BY 1, 3")
        same(con, "SELECT c1, c66, txt FROM {t} ORDER BY c69 DESC, txt, rowid")
        same(con, "SELECT nul, count(*) FROM {t} GROUP BY nul")
        same(con, "SELECT txt, nul, c3 FROM {t} ORDER BY nul, txt DESC, rowid")
    con.close()


def test_uint64_above_int64_groups_like_sqlite():
    # 2**63 and 2**63 + 1 are the same REAL in SQLite, so they form one group.
    u = np.array([2**63, 2**63 + 1, 5, 2**64 - 1, 5, 2**63 + 4096], dtype=np.uint64)
    df = pd.DataFrame({"u": u, "x": np.arange(6)})
    con = sqlite3.connect(":memory:")
    load_frame(con, "l", df)
    q = "SELECT u, count(*), sum(x) FROM {t} GROUP BY u"
    with register_frame(con, "v", df):
        assert con.execute(q.format(t="v")).fetchall() == con.execute(q.format(t="l")).fetchall()
        assert len(con.execute(q.format(t="v")).fetchall()) == 4


def test_ordered_cursors_free_their_buffers():
    df = pd.DataFrame({"g": np.arange(50_000) % 7, "s": [str(v) for v in range(50_000)]})
    con = sqlite3.connect(":memory:")
    with register_frame(con, "v", df):
        con.execute("SELECT s FROM v ORDER BY g LIMIT 1").fetchall()
        before = _capi.lib.sqlite3_memory_used()
        for _ in range(20):
            assert con.execute("SELECT s FROM v ORDER BY g, s DESC LIMIT 2").fetchall() == [("9996",), ("9989",)]
            con.execute("SELECT g, max(s) FROM v GROUP BY g").fetchall()
        assert _capi.lib.sqlite3_memory_used() - before < 1_000_000


# ---------------------------------------------------------------- other SQL


def test_join_with_real_table(db):
    # CROSS JOIN fixes the loop order: the float totals are compared exactly,
    # and their rounding depends on the order the rows are summed in (with
    # indexes SQLite may otherwise probe v from s).
    same(db, "SELECT count(*), total(a.f), total(b.f) FROM {t} a CROSS JOIN s b ON a.i = b.ni")
    same(db, "SELECT a.rowid, b.rowid FROM {t} a JOIN l b ON a.s = b.so AND a.g = b.g ORDER BY 1, 2")
    same(db, "SELECT a.g, count(*) FROM {t} a LEFT JOIN v b ON a.rowid = b.rowid + 1 GROUP BY a.g")


def test_window_functions(db):
    same(db, "SELECT rowid, sum(i) OVER (PARTITION BY g ORDER BY rowid), rank() OVER (ORDER BY f) FROM {t} ORDER BY rowid")


def test_limit_offset_distinct(db):
    same(db, "SELECT * FROM {t} ORDER BY i, rowid LIMIT 5 OFFSET 3")
    same(db, "SELECT rowid FROM {t} LIMIT 7 OFFSET 100")
    same(db, "SELECT DISTINCT s FROM {t} ORDER BY s")
    same(db, "SELECT DISTINCT g, b FROM {t} ORDER BY 1, 2")
    same(db, "SELECT count(DISTINCT cat), count(DISTINCT ts) FROM {t}")


def test_frame_unchanged(frame):
    before = frame.copy(deep=True)
    con = sqlite3.connect(":memory:")
    with register_frame(con, "v", frame):
        con.execute("SELECT * FROM v ORDER BY s, f DESC").fetchall()
        con.execute("SELECT g, count(*) FROM v GROUP BY g").fetchall()
    load_frame(con, "t", frame)
    pd.testing.assert_frame_equal(frame, before)


# ---------------------------------------------------------------- lifetime


def test_close_releases_buffers():
    values = np.arange(1000.0)
    ref = weakref.ref(values)
    df = pd.DataFrame({"x": values}, copy=False)
    assert np.shares_memory(df["x"].to_numpy(), values)
    con = sqlite3.connect(":memory:")
    reg = register_frame(con, "t", df)
    del values, df
    gc.collect()
    assert ref() is not None  # pinned by the registration
    assert con.execute("SELECT sum(x) FROM t").fetchone() == (499500.0,)
    gc.collect()
    assert ref() is not None
    reg.close()
    gc.collect()
    assert reg.released and ref() is None
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        con.execute("SELECT sum(x) FROM t")


def test_reregister_same_name_refreshes_cached_statements():
    con = sqlite3.connect(":memory:")
    reg = register_frame(con, "t", pd.DataFrame({"x": [1, 2]}))
    assert con.execute("SELECT sum(x) FROM t").fetchone() == (3,)
    with pytest.raises(fastagg.Error, match="already registered"):
        register_frame(con, "t", pd.DataFrame({"x": [1]}))
    reg2 = register_frame(con, "T", pd.DataFrame({"x": [10, 20, 30]}), replace=True)
    assert reg.closed and reg.released
    assert con.execute("SELECT sum(x) FROM t").fetchone() == (60,)
    unregister_frame(con, "t")
    assert reg2.released
    with pytest.raises(fastagg.Error):
        unregister_frame(con, "t")


def test_close_while_cursor_open_defers_release():
    values = np.arange(10_000)
    ref = weakref.ref(values)
    con = sqlite3.connect(":memory:")
    reg = register_frame(con, "t", pd.DataFrame({"x": values, "s": [str(v) for v in values]}, copy=False))
    del values
    cur = con.execute("SELECT s, x FROM t ORDER BY x")
    first = cur.fetchone()
    reg.close()
    gc.collect()
    assert not reg.released and ref() is not None  # a statement still reads it
    rest = cur.fetchall()
    assert first == ("0", 0) and len(rest) == 9_999 and rest[-1] == ("9999", 9999)
    assert release_pending() == 0
    gc.collect()
    assert reg.released and ref() is None


def test_connection_closed_first():
    con = sqlite3.connect(":memory:")
    reg = register_frame(con, "t", pd.DataFrame({"x": [1]}))
    con.close()
    assert release_pending() == 0
    assert reg.released
    reg.close()


def test_register_is_constant_time():
    small = pd.DataFrame({"a": np.arange(10), "x": np.ones(10)})
    big = pd.DataFrame({"a": np.arange(2_000_000), "x": np.ones(2_000_000)})
    con = sqlite3.connect(":memory:")
    times = []
    for df in (small, big):
        t = time.perf_counter()
        reg = register_frame(con, "t", df)
        times.append(time.perf_counter() - t)
        reg.close()
    assert times[1] < 0.05, times


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "column, dtype",
    [
        (pd.to_timedelta([1, 2], unit="s"), "timedelta"),
        (pd.Series([pd.Period("2024-01"), None]), "period"),
        (pd.Series([1, "a"], dtype=object), "object"),
        (pd.Series([[1], [2]]), "object"),
    ],
)
def test_unsupported_dtype(column, dtype):
    df = pd.DataFrame({"ok": [1, 2], "bad": column})
    con = sqlite3.connect(":memory:")
    with pytest.raises(fastagg.UnsupportedDtypeError, match="'bad'") as info:
        register_frame(con, "t", df)
    assert dtype in str(info.value)
    with pytest.raises(sqlite3.OperationalError):
        con.execute("SELECT * FROM t")
    with pytest.raises(fastagg.UnsupportedDtypeError):
        load_frame(con, "t", df)
    assert con.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


def test_name_clashes_and_duplicates():
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t(a)")
    with pytest.raises(fastagg.Error, match="exists"):
        register_frame(con, "T", pd.DataFrame({"a": [1]}))
    with pytest.raises(fastagg.Error, match="duplicate"):
        register_frame(con, "u", pd.DataFrame([[1, 2]], columns=["a", "A"]))
    with register_frame(con, "v", pd.DataFrame({"a": [1]})):
        with pytest.raises(sqlite3.OperationalError, match="may not be modified"):
            con.execute("INSERT INTO v VALUES (2)")


# ---------------------------------------------------------------- loading


def test_load_round_trip_and_types(frame):
    con = sqlite3.connect(":memory:")
    assert load_frame(con, "t", frame) == N
    decl = [r[2] for r in con.execute("PRAGMA table_info(t)")]
    assert set(decl) <= {"INTEGER", "REAL", "TEXT", "BLOB"}
    with register_frame(con, "v", frame):
        assert con.execute("SELECT * FROM t").fetchall() == con.execute("SELECT * FROM v").fetchall()


def test_load_if_exists_and_rollback():
    con = sqlite3.connect(":memory:")
    df = pd.DataFrame({"a": [1, 2, None], "b": ["x", "y", "z"]})
    load_frame(con, "t", df)
    with pytest.raises(fastagg.Error, match="already exists"):
        load_frame(con, "t", df)
    load_frame(con, "t", df, if_exists="append")
    assert con.execute("SELECT count(*) FROM t").fetchone() == (6,)
    load_frame(con, "t", df.head(1), if_exists="replace")
    assert con.execute("SELECT * FROM t").fetchall() == [(1.0, "x")]
    con.execute("CREATE TABLE strict_t(a INTEGER NOT NULL, b TEXT)")
    con.execute("INSERT INTO strict_t VALUES (7, 'keep')")
    con.commit()
    with pytest.raises(fastagg.Error, match="NOT NULL"):
        load_frame(con, "strict_t", df, if_exists="append")
    assert con.execute("SELECT * FROM strict_t").fetchall() == [(7, "keep")]
    assert not con.in_transaction
    assert release_pending() == 0


def test_load_respects_callers_transaction():
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE other(a)")
    con.execute("INSERT INTO other VALUES (1)")  # opens Python's implicit transaction
    assert con.in_transaction
    load_frame(con, "t", pd.DataFrame({"a": [1, 2]}))
    assert con.in_transaction
    con.rollback()
    assert con.execute("SELECT name FROM sqlite_master").fetchall() == [("other",)]
    assert con.execute("SELECT count(*) FROM other").fetchone() == (0,)


def test_load_bind_method_equal(frame):
    con = sqlite3.connect(":memory:")
    load_frame(con, "a", frame)
    load_frame(con, "b", frame, method="bind")
    assert con.execute("SELECT * FROM a").fetchall() == con.execute("SELECT * FROM b").fetchall()


# ---------------------------------------------------------------- subprocess: interpreter exit


def test_exit_with_live_registration_does_not_crash():
    code = textwrap.dedent(
        """
        import sqlite3, pandas as pd
        from fastagg.table import register_frame
        con = sqlite3.connect(":memory:")
        reg = register_frame(con, "t", pd.DataFrame({"s": ["a", "b"], "x": [1, 2]}))
        cur = con.execute("SELECT s FROM t ORDER BY s")
        print(cur.fetchone()[0])
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "a"


# ---------------------------------------------------------------- properties

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ints=st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), min_size=0, max_size=30),
    text=st.lists(st.one_of(st.none(), st.text(max_size=4)), min_size=30, max_size=30),
    floats=st.lists(st.one_of(st.none(), st.floats(allow_nan=False, width=64)), min_size=30, max_size=30),
    bound=st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False)),
)
def test_random_frames(ints, text, floats, bound):
    n = len(ints)
    df = pd.DataFrame({
        "i": pd.array(ints, dtype="Int64"),
        "s": pd.Series(text[:n], dtype=object),
        "f": pd.Series(floats[:n], dtype="float64"),
    })
    con = sqlite3.connect(":memory:")
    df.to_sql("s", con, index=False, dtype={"s": "TEXT"})
    load_frame(con, "l", df)
    with register_frame(con, "v", df):
        same(con, "SELECT rowid, * FROM {t} ORDER BY rowid")
        same(con, "SELECT s, count(*), max(i) FROM {t} GROUP BY s")
        same(con, "SELECT i, f, rowid FROM {t} ORDER BY f DESC, i, rowid")
        for op in OPS:
            same(con, f"SELECT rowid FROM {{t}} WHERE i {op} ? ORDER BY rowid", (bound,))
            same(con, f"SELECT rowid FROM {{t}} WHERE f {op} ? ORDER BY rowid", (bound,))
