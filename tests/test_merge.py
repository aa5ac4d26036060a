"""Mergeable states: <name>_partial / _combine / _merge equal the one-pass result."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

import fastagg
from aggs import MergeableWelfordVar


@fastagg.aggregate
class MVar(MergeableWelfordVar):
    """Welford variance with a pairwise merge."""


@fastagg.aggregate
class MMin:
    """Non-zero initial state and an int result."""

    lo: np.int64

    def __init__(self):
        self.lo = 2**62

    def step(self, k: int):
        self.lo = min(self.lo, k)

    def merge(self, other):
        self.lo = min(self.lo, other.lo)

    def finalize(self) -> int:
        return self.lo


@fastagg.aggregate
class MCounts:
    """Fixed-size array state."""

    counts: fastagg.array(np.int64, 7)

    def step(self, k: int):
        self.counts[k % 7] += 1

    def merge(self, other):
        for i in range(7):
            self.counts[i] += other.counts[i]

    def finalize(self) -> int:
        total = 0
        for i in range(7):
            total = total * 31 + self.counts[i]
        return total


@fastagg.aggregate
class MMedian:
    """Two growable fields."""

    values: fastagg.vector(np.float64)
    keys: fastagg.vector(np.int32)

    def step(self, x: float, k: int):
        self.values.append(x)
        self.keys.append(k)

    def merge(self, other):
        self.values.extend(other.values.as_array())
        self.keys.extend(other.keys.as_array())

    def finalize(self) -> float | None:
        if len(self.values) == 0:
            return None
        return np.median(self.values.as_array()) + self.keys.as_array().sum()


ALL = [MVar, MMin, MCounts, MMedian]


@pytest.fixture(scope="module")
def db():
    con = sqlite3.connect(":memory:")
    fastagg.register(con, *ALL)
    rng = np.random.default_rng(11)
    n = 40_000
    con.execute("CREATE TABLE t (g INTEGER, part INTEGER, x REAL, k INTEGER)")
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?)",
        zip(
            rng.integers(0, 60, n).tolist(),
            rng.integers(0, 9, n).tolist(),
            (5.0 + 10.0 * rng.normal(size=n)).tolist(),
            rng.integers(-1000, 1000, n).tolist(),
        ),
    )
    yield con
    con.close()


CALLS = {
    "mvar": "({p}(x))",
    "mmin": "({p}(k))",
    "mcounts": "({p}(k))",
    "mmedian": "({p}(x, k))",
}


def one_pass(con, name):
    args = CALLS[name].format(p=name)
    return con.execute(f"SELECT g, {args} FROM t GROUP BY g ORDER BY g").fetchall()


@pytest.mark.parametrize("name", list(CALLS))
@pytest.mark.parametrize("split", ["part", "rowid % 2", "g % 3", "0", "CASE WHEN rowid < 100 THEN 0 ELSE part END"])
def test_partial_then_merge_equals_one_pass(db, name, split):
    partial = CALLS[name].format(p=f"{name}_partial")
    merged = db.execute(
        f"SELECT g, {name}_merge(p) FROM (SELECT g, {split} AS s, {partial} AS p FROM t GROUP BY g, s) "
        f"GROUP BY g ORDER BY g"
    ).fetchall()
    expected = one_pass(db, name)
    assert [r[0] for r in merged] == [r[0] for r in expected]
    for (_, a), (_, b) in zip(merged, expected):
        if isinstance(b, float):
            assert a == pytest.approx(b, rel=1e-12)
        else:
            assert a == b


@pytest.mark.parametrize("name", list(CALLS))
def test_combine_is_associative(db, name):
    partial = CALLS[name].format(p=f"{name}_partial")
    combined = db.execute(
        f"SELECT g, {name}_merge(c) FROM ("
        f"  SELECT g, {name}_combine(p) AS c FROM ("
        f"    SELECT g, part, {partial} AS p FROM t GROUP BY g, part"
        f"  ) GROUP BY g, part % 3"
        f") GROUP BY g ORDER BY g"
    ).fetchall()
    expected = one_pass(db, name)
    for (_, a), (_, b) in zip(combined, expected):
        assert a == pytest.approx(b, rel=1e-12) if isinstance(b, float) else a == b


def test_empty_partitions(db):
    # A partial over no rows is the initial state; merging it changes nothing.
    row = db.execute(
        "SELECT mmin_merge(p), mvar_merge(q) FROM ("
        "  SELECT mmin_partial(k) AS p, mvar_partial(x) AS q FROM t WHERE 0"
        "  UNION ALL SELECT mmin_partial(k), mvar_partial(x) FROM t"
        ")"
    ).fetchone()
    assert row[0] == db.execute("SELECT min(k) FROM t").fetchone()[0]
    assert row[1] == pytest.approx(db.execute("SELECT mvar(x) FROM t").fetchone()[0], rel=1e-12)
    assert db.execute("SELECT mmin_merge(p) FROM (SELECT mmin_partial(k) AS p FROM t WHERE 0)").fetchone() == (2**62,)


def test_partial_is_a_blob_of_the_record(db):
    blob = db.execute("SELECT mvar_partial(x) FROM t").fetchone()[0]
    assert isinstance(blob, bytes) and len(blob) == 16 + MVar.__fastagg_spec__.state.itemsize
    record = np.frombuffer(blob[16:], MVar.__fastagg_spec__.state)[0]
    assert record["n"] == db.execute("SELECT count(x) FROM t").fetchone()[0]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT mvar_merge(x'00')",
        "SELECT mvar_merge('not a blob at all, but long enough to pass')",
        "SELECT mvar_merge(p) FROM (SELECT mmedian_partial(x, k) AS p FROM t)",
    ],
)
def test_wrong_blob_is_an_error(db, sql):
    with pytest.raises(sqlite3.OperationalError, match="not a partial state of MVar"):
        db.execute(sql).fetchall()


def test_merge_arity_checked():
    with pytest.raises(fastagg.CompileError, match="merge must take"):

        @fastagg.aggregate
        class Bad:
            n: int

            def step(self, x: int):
                self.n += x

            def merge(self, a, b):
                pass

            def finalize(self) -> int:
                return self.n


def test_plain_python_merge():
    a, b = MVar(), MVar()
    for v in (1.0, 2.0):
        a.step(v)
    for v in (3.0, 4.0, 5.0):
        b.step(v)
    a.merge(b)
    assert a.finalize() == pytest.approx(np.var([1, 2, 3, 4, 5], ddof=1))
