"""Date and datetime columns compared with text: the scan's pushed-down intervals answer as SQLite does.

xBestIndex pushes ``col OP 'text'`` on date32 and datetime columns into the
scan (:mod:`fastagg.table.dates`), SQLite re-checking. Every statement runs
over the registered frame and over a plain SQLite table holding the very
text xColumn gives (copied from the frame), on the same connection: the
answers must be identical. Values cover years 0000 and 9999 (the domain's
edges), values outside it (kept by the scan, SQLite decides), NULLs, NaT,
every datetime unit, with and without a time of day; right-hand sides are
dates, partial dates ('1995-09'), non-dates ('abc', ''), non-ASCII text,
numbers, NULL and bound parameters.
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastagg.table import dates, register_frame
from fastagg.table.filtering import DATE_MIN_ROWS

UNITS = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": -1_000}
OPS = ["=", "<", "<=", ">", ">="]
COLS = ["d", "ts_s", "ts_ms", "ts_us", "ts_ns"]


def _domain(col):
    if col == "d":
        return dates.domain(dates.K_DATE32, 0)
    return dates.domain(dates.K_DATETIME, UNITS[col[3:]])


def _values(col):
    """Stored integers for *col*: inside the domain, at its edges, outside it (when representable), NULL."""
    lo, hi = _domain(col)
    if col == "d":
        outside = st.integers(-(2**31), 2**31 - 1)
    elif col == "ts_ns":
        outside = st.integers(-(2**63) + 1, 2**63 - 1)  # every ns value has a 4-digit year
    else:
        # beyond the domain, but still convertible to microseconds without overflow
        limit = (2**63 - 1) // max(UNITS[col[3:]], 1)
        outside = st.integers(max(-limit, -(2**63) + 1), min(limit, 2**63 - 1))
    top = 2**31 - 1 if col == "d" else 2**63 - 1
    edges = st.sampled_from([v for v in (lo, lo + 1, hi - 1, hi, lo - 1, hi + 1, 0, -1) if -top <= v <= top])
    near = st.integers(lo, hi)
    day = {"d": 1, "ts_s": 86_400, "ts_ms": 86_400_000, "ts_us": 86_400_000_000, "ts_ns": 86_400_000_000_000}[col]
    whole_days = st.integers(-(-lo // day), hi // day).map(lambda k: k * day)  # midnights within the domain
    return st.one_of(st.none(), edges, near, whole_days, outside)


def _arrow_column(col, values):
    ints = pa.array(values, pa.int32() if col == "d" else pa.int64())
    return ints.cast(pa.date32() if col == "d" else pa.timestamp(col[3:]))


def _text(col, v):
    """The text SQLite sees for an in-domain value (fastagg.table.dates' formatter)."""
    if col == "d":
        return dates.text_of(dates.K_DATE32, 0, v).decode()
    return dates.text_of(dates.K_DATETIME, UNITS[col[3:]], v).decode()


def _literals(values):
    """Right-hand sides: texts of values (whole and cut), their neighbours, and anything else."""
    texts = [t for t in values if t is not None] or ["1995-09-01"]
    base = st.sampled_from(texts)
    cut = st.tuples(base, st.integers(0, 26)).map(lambda p: p[0][: p[1]])
    bumped = st.tuples(base, st.sampled_from(["0", "9", " ", ".", ":", "-", "\0", "~", "é", "Z", ".000001"])).map(
        lambda p: p[0] + p[1]
    )
    fixed = st.sampled_from([
        "", "abc", "1995-09", "1995-09-01", "1995-09-01 00:00:00", "0000-01-01", "9999-12-31 23:59:59.999999",
        "-", "0", "9", "10000-01-01", "1970-01-01 00:00:00.000000", " ", "é", "\u0100", "1995-13-45",
    ])
    anything = st.text(alphabet="0123456789-: .aZé", max_size=28)
    return st.one_of(base, cut, bumped, fixed, anything)


def _connect(table, pad):
    """A connection with *table* registered as ``t`` and copied, as text, into the real table ``r``."""
    con = sqlite3.connect(":memory:")
    reg = register_frame(con, "t", table)
    decl = ", ".join(f"{c} TEXT" for c in table.column_names)
    con.execute(f"CREATE TABLE r ({decl})")
    con.execute(f"INSERT INTO r (rowid, {', '.join(table.column_names)}) SELECT rowid, * FROM t")
    return con, reg


def _padded(columns, n):
    """An Arrow table of *columns* (name -> stored integers or None) padded with NULLs to at least *n* rows."""
    size = max(max(len(v) for v in columns.values()), n)
    return pa.table({c: _arrow_column(c, list(v) + [None] * (size - len(v))) for c, v in columns.items()})


def _quote(text):
    return "'" + text.replace("'", "''") + "'"


def _same(con, where, params=()):
    got = con.execute(f"SELECT rowid FROM t WHERE {where} ORDER BY rowid", params).fetchall()
    want = con.execute(f"SELECT rowid FROM r WHERE {where} ORDER BY rowid", params).fetchall()
    assert got == want, where


def _in_domain(table):
    for c in COLS:
        lo, hi = _domain(c)
        vs = table.column(c).cast(pa.int32() if c == "d" else pa.int64()).to_pylist()
        if any(v is not None and not lo <= v <= hi for v in vs):
            return False
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_generated_comparisons_match_sqlite(data):
    columns = {c: data.draw(st.lists(_values(c), min_size=1, max_size=30), label=c) for c in COLS}
    table = _padded(columns, DATE_MIN_ROWS)
    con, reg = _connect(table, DATE_MIN_ROWS)
    # Bound parameters are unknown to xBestIndex: such a statement may load the
    # index image and build an index on the column, whose order (like ORDER BY's,
    # fastagg.table.ordering) is the stored integers' also outside years
    # 0000-9999, where the text order differs: a separate registration, and
    # only over values within those years.
    con2, reg2 = _connect(table, DATE_MIN_ROWS) if _in_domain(table) else (None, None)
    with reg:
        # The text the Python formatter gives is what xColumn gives (the bounds rely on it).
        for c in COLS:
            lo, hi = _domain(c)
            got = dict(con.execute(f"SELECT rowid, {c} FROM t WHERE {c} IS NOT NULL").fetchall())
            for i, v in enumerate(table.column(c).cast(pa.int32() if c == "d" else pa.int64()).to_pylist()):
                if v is not None and lo <= v <= hi:
                    assert got[i + 1] == _text(c, v)
        texts = [t for (t,) in con.execute("SELECT d FROM t UNION ALL SELECT ts_us FROM t UNION ALL SELECT ts_s FROM t")]
        for _ in range(12):
            col = data.draw(st.sampled_from(COLS), label="col")
            op = data.draw(st.sampled_from(OPS), label="op")
            lit = data.draw(_literals(texts), label="lit")
            lit2 = data.draw(_literals(texts), label="lit2")
            if con2 is not None:
                _same(con2, f"{col} {op} ?", (lit,))
                _same(con2, f"{col} BETWEEN ? AND ?", (lit, lit2))
            if "\0" in lit + lit2:
                continue  # not in a statement's text (sqlite3 refuses it)
            _same(con, f"{col} {op} {_quote(lit)}")
            _same(con, f"{col} BETWEEN {_quote(min(lit, lit2))} AND {_quote(max(lit, lit2))}")
            _same(con, f"{_quote(lit)} {op} {col}")  # the literal on the left: SQLite flips the operator
            _same(con, f"{col} {op} {_quote(lit)} AND {col} {op} {_quote(lit2)}")
    if reg2 is not None:
        reg2.close()


def test_pushed_and_equal_on_tpch_shaped_dates():
    rng = np.random.default_rng(7)
    days = rng.integers(8035, 10591, 5000).astype(np.int32)  # 1992-01-01 .. 1998-12-31
    table = pa.table({"d": pa.array(days).cast(pa.date32())})
    con, reg = _connect(table, 0)
    with reg:
        dates._cache.clear()
        where = "d >= '1995-09-01' AND d < '1995-10-01'"
        _same(con, where)
        asked = {(op, rhs) for (_, _, op, rhs) in dates._cache}
        assert {(32, b"1995-09-01"), (16, b"1995-10-01")} <= asked  # xFilter asked for both bounds
        _same(con, "d >= '1995-09-01' AND d < date('1995-09-01', '+1 months')")  # TPC-H's form
        assert dates._in_domain[reg] == {0: True}  # so SQLite omits its test of the constant bounds
        # LIMIT is pushed into a scan whose filters are all exact (without ORDER BY
        # the order is unspecified: SQLite's table scans, fastagg's scan or index)
        for q in ("SELECT rowid, d FROM {} WHERE d >= '1995-09-01' ORDER BY rowid LIMIT 7 OFFSET 3",
                  "SELECT rowid, d FROM {} WHERE d BETWEEN '1995-09-01' AND '1995-09-30' ORDER BY rowid LIMIT 5",
                  "SELECT count(*) FROM (SELECT d FROM {} WHERE d > '1998-12' LIMIT 100000)"):
            assert con.execute(q.format("t")).fetchall() == con.execute(q.format("r")).fetchall(), q
        n = con.execute(f"SELECT count(*) FROM t WHERE {where}").fetchone()[0]
        assert n == int(((days >= 9374) & (days < 9404)).sum())


@pytest.mark.parametrize("rhs", ["19950901", "1995.5", "NULL", "x'31393935'", "CAST('1995' AS BLOB)", "1995"])
def test_non_text_right_hand_sides_are_sqlites(rhs):
    days = np.arange(-1000, 30000, 37, dtype=np.int32)
    table = pa.table({"d": pa.array(days).cast(pa.date32()), "ts": pa.array(days.astype(np.int64) * 86400 + 7).cast(
        pa.timestamp("s"))})
    con, reg = _connect(table, 0)
    with reg:
        for col in ("d", "ts"):
            for op in OPS:
                _same(con, f"{col} {op} {rhs}")


@pytest.mark.parametrize("collate", ["NOCASE", "RTRIM", "BINARY", "binary"])
def test_collations(collate):
    days = np.arange(0, 20000, 7, dtype=np.int32)
    table = pa.table({"d": pa.array(days).cast(pa.date32())})
    con, reg = _connect(table, 0)
    with reg:
        for op in OPS:
            for lit in ("1995-09-01", "1995-09-01 ", "1995-09-01   ", "1995-09-01a", "1995-09-01A"):
                _same(con, f"d {op} {_quote(lit)} COLLATE {collate}")


def test_pandas_datetimes_with_nat_and_time_of_day():
    rng = np.random.default_rng(3)
    n = 3000
    stamps = pd.Series(pd.to_datetime("1990-01-01") + pd.to_timedelta(rng.integers(0, 10**6, n) * 997, unit="s"))
    stamps[rng.random(n) < 0.1] = pd.NaT
    whole = stamps.dt.floor("D")
    frac = stamps + pd.to_timedelta(rng.integers(0, 10**6, n), unit="us")
    nanos = frac + pd.to_timedelta(rng.integers(0, 1000, n), unit="ns")  # xColumn truncates to microseconds
    frame = pd.DataFrame({"a": stamps, "w": whole, "f": frac, "n": nanos})
    con = sqlite3.connect(":memory:")
    with register_frame(con, "t", frame):
        con.execute("CREATE TABLE r (a TEXT, w TEXT, f TEXT, n TEXT)")
        con.execute("INSERT INTO r (rowid, a, w, f, n) SELECT rowid, * FROM t")
        samples = [x for (x,) in con.execute("SELECT f FROM t WHERE f IS NOT NULL LIMIT 50")]
        dates._cache.clear()
        for col in ("a", "w", "f", "n"):
            for op in OPS:
                for lit in samples[:10] + [s[:k] for s in samples[:5] for k in (4, 10, 11, 19, 20, 23)]:
                    _same(con, f"{col} {op} {_quote(lit)}")
        assert {k for (k, _, _, _) in dates._cache} == {dates.K_DATETIME}  # pushed into the scan


def test_join_with_a_date_filter_on_one_side():
    rng = np.random.default_rng(11)
    n_o, n_l = 2000, 8000
    orders = pd.DataFrame({
        "o_orderkey": np.arange(n_o),
        "o_orderdate": pd.to_datetime("1992-01-01") + pd.to_timedelta(rng.integers(0, 2500, n_o), unit="D"),
    })
    lineitem = pa.table({
        "l_orderkey": pa.array(rng.integers(0, n_o, n_l)),
        "l_shipdate": pa.array(rng.integers(8035, 10591, n_l).astype(np.int32)).cast(pa.date32()),
        "l_qty": pa.array(rng.integers(1, 50, n_l)),
    })
    con = sqlite3.connect(":memory:")
    with register_frame(con, "o", orders), register_frame(con, "l", lineitem):
        con.execute("CREATE TABLE ro (o_orderkey INTEGER, o_orderdate TEXT)")
        con.execute("INSERT INTO ro SELECT * FROM o")
        con.execute("CREATE TABLE rl (l_orderkey INTEGER, l_shipdate TEXT, l_qty INTEGER)")
        con.execute("INSERT INTO rl SELECT * FROM l")
        queries = [
            "SELECT o_orderkey, sum(l_qty) FROM {o} JOIN {l} ON l_orderkey = o_orderkey "
            "WHERE l_shipdate >= '1995-09-01' AND l_shipdate < date('1995-09-01', '+1 months') GROUP BY 1 ORDER BY 1",
            "SELECT count(*), sum(l_qty) FROM {o} JOIN {l} ON l_orderkey = o_orderkey "
            "WHERE o_orderdate < '1995-03-15' AND l_shipdate > '1995-03-15'",
            "SELECT count(*) FROM {o} JOIN {l} ON l_orderkey = o_orderkey AND l_shipdate > o_orderdate "
            "WHERE o_orderdate BETWEEN '1994-01-01' AND '1994-12-31'",
            "SELECT count(*) FROM {l} WHERE l_shipdate > (SELECT max(o_orderdate) FROM {o} WHERE o_orderkey < 10)",
        ]
        for q in queries:
            got = con.execute(q.format(o="o", l="l")).fetchall()
            want = con.execute(q.format(o="ro", l="rl")).fetchall()
            assert got == want, q


def test_bounds_are_the_text_order():
    """dates.bounds against a direct scan of the formatted texts, around edges and odd literals."""
    for kind, unit in ((dates.K_DATE32, 0), (dates.K_DATETIME, 1_000_000), (dates.K_DATETIME, -1_000)):
        lo, hi = dates.domain(kind, unit)
        for start in (lo, hi - 400, (lo + hi) // 2):
            vs = list(range(start, start + 400))
            texts = [dates.text_of(kind, unit, v) for v in vs]
            assert texts == sorted(texts)
            for rhs in (texts[0], texts[57], texts[57][:7], texts[-1] + b" ", b"", b"abc", b"\xff", texts[200][:-1],
                        b"2262-04-12", b"10000", b"9999-12-31 23:59:59.9999999"):
                for op, test in ((2, bytes.__eq__), (4, bytes.__gt__), (8, bytes.__le__), (16, bytes.__lt__),
                                 (32, bytes.__ge__)):
                    b_lo, b_hi, d_lo, d_hi = dates.bounds(kind, unit, op, rhs)
                    assert (d_lo, d_hi) == (lo, hi)
                    assert -(2**63) <= b_lo < 2**63 and -(2**63) <= b_hi < 2**63  # int64 words
                    for v, t in zip(vs, texts):
                        assert test(t, rhs) == (b_lo <= v <= b_hi), (kind, unit, op, rhs, v)
