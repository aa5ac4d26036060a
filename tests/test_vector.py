"""Growable state (fastagg.vector): results, window use, and no leaked memory."""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest

import fastagg
from fastagg.sqlite import capi as _capi


@fastagg.aggregate(name="vmedian")
class VMedian:
    values: fastagg.vector(np.float64)

    def step(self, x: float):
        self.values.append(x)

    def inverse(self, x: float):
        self.values.remove(x)

    def finalize(self) -> float | None:
        return np.median(self.values.as_array()) if len(self.values) else None


@fastagg.aggregate(name="vmode")
class VMode:
    """Most frequent integer (smallest on ties), two vectors and extend()."""

    values: fastagg.vector(np.int64)
    scratch: fastagg.vector(np.int64)

    def step(self, x: int):
        self.values.append(x)

    def finalize(self) -> int | None:
        n = len(self.values)
        if n == 0:
            return None
        self.scratch.extend(self.values.as_array())
        data = self.scratch.as_array()
        data.sort()
        best, best_count, run = data[0], 0, 0
        for i in range(n):
            run = run + 1 if i and data[i] == data[i - 1] else 1
            if run > best_count:
                best, best_count = data[i], run
        return best


@fastagg.aggregate(name="failing_collect")
class FailingCollect:
    values: fastagg.vector(np.float64)

    def step(self, x: float):
        if x > 150_000:
            raise ValueError("stop here")
        self.values.append(x)

    def finalize(self) -> int:
        return len(self.values)


@pytest.fixture(scope="module")
def db():
    con = sqlite3.connect(":memory:")
    fastagg.register(con, VMedian, VMode, FailingCollect)
    rng = np.random.default_rng(5)
    n = 200_000
    frame = pd.DataFrame({"g": rng.integers(0, 2_000, n), "x": rng.normal(size=n), "k": rng.integers(0, 7, n)})
    con.execute("CREATE TABLE t (g INTEGER, x REAL, k INTEGER)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", frame.itertuples(index=False))
    yield con, frame
    con.close()


def memory_used() -> int:
    return _capi.lib.sqlite3_memory_used()


def test_grouped_median_and_mode(db):
    con, frame = db
    rows = con.execute("SELECT g, vmedian(x), vmode(k) FROM t GROUP BY g ORDER BY g").fetchall()
    expected_median = frame.groupby("g")["x"].median()
    expected_mode = frame.groupby("g")["k"].agg(lambda s: s.value_counts().sort_index().idxmax())
    np.testing.assert_allclose([r[1] for r in rows], expected_median.to_numpy())
    assert [r[2] for r in rows] == expected_mode.tolist()


def test_empty_group(db):
    con, _ = db
    assert con.execute("SELECT vmedian(x), vmode(k) FROM t WHERE 0").fetchall() == [(None, None)]


def test_sliding_window_median(db):
    con, frame = db
    rows = con.execute(
        "SELECT vmedian(x) OVER (ORDER BY rowid ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) FROM t LIMIT 2000"
    ).fetchall()
    x = frame["x"].to_numpy()
    expected = [np.median(x[max(0, i - 6) : i + 1]) for i in range(2000)]
    np.testing.assert_allclose([r[0] for r in rows], expected)


def test_no_leak_after_complete_queries(db):
    con, _ = db
    con.execute("SELECT g, vmedian(x) FROM t GROUP BY g").fetchall()
    before = memory_used()
    for _ in range(3):
        con.execute("SELECT g, vmedian(x), vmode(k) FROM t GROUP BY g").fetchall()
    assert memory_used() - before < 64 * 1024


def test_no_leak_after_error_mid_query(db):
    con, _ = db
    con.execute("SELECT vmedian(x) FROM t").fetchall()
    before = memory_used()
    for _ in range(3):
        with pytest.raises(sqlite3.OperationalError, match="FailingCollect.step: ValueError: stop here"):
            con.execute("SELECT failing_collect(rowid) FROM t").fetchall()
    assert memory_used() - before < 64 * 1024


def test_no_leak_after_abandoned_statement(db):
    con, _ = db
    before = memory_used()
    for _ in range(3):
        # UNBOUNDED FOLLOWING: every row is stepped before the first result.
        cur = con.execute(
            "SELECT vmedian(x) OVER (ORDER BY rowid ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING) FROM t"
        )
        cur.fetchone()  # the statement stops with 200,000 values collected
        cur.close()
    assert memory_used() - before < 64 * 1024


def test_no_leak_after_interrupt(db):
    con, _ = db
    before = memory_used()
    calls = {"n": 0}

    def stop_soon():
        calls["n"] += 1
        return calls["n"] > 50  # non-zero: SQLite interrupts the statement

    con.set_progress_handler(stop_soon, 1000)
    try:
        with pytest.raises(sqlite3.OperationalError, match="interrupted"):
            con.execute("SELECT vmedian(x) FROM t").fetchall()
    finally:
        con.set_progress_handler(None, 0)
    assert memory_used() - before < 64 * 1024


def test_plain_python_vector():
    m = VMedian()
    for v in (3.0, 1.0, 2.0, 10.0):
        m.step(v)
    m.inverse(10.0)
    assert m.finalize() == 2.0
    mode = VMode()
    for v in (1, 2, 2, 3):
        mode.step(v)
    assert mode.finalize() == 2


def test_vector_elements_must_be_numeric():
    with pytest.raises(fastagg.CompileError, match="numeric or bool"):
        fastagg.vector(np.str_)


def test_vector_methods_after_other_numba_code():
    """numba typing records before fastagg.compile.vector_ops is imported must not hide the methods."""
    from conftest import run_isolated

    proc = run_isolated(
        """
        import sqlite3, numpy as np
        from numba import njit

        @njit
        def field(a):
            return a[0].x

        field(np.zeros(1, np.dtype([("x", np.float64)])))
        import fastagg

        @fastagg.aggregate
        class Collect:
            v: fastagg.vector(np.float64)
            def step(self, x: float):
                self.v.append(x)
            def finalize(self) -> float:
                return self.v.as_array().sum()

        con = sqlite3.connect(":memory:")
        fastagg.register(con, Collect)
        print(con.execute("SELECT collect(x) FROM (SELECT 1.5 AS x UNION ALL SELECT 2)").fetchone()[0])
        """
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-1] == "3.5"
