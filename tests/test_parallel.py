"""workers=N: split-partial-merge results equal single-connection results."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import fastagg
from aggs import assert_tables_same as assert_same  # noqa: F401 - test_dask imports it from here
from fastagg.engine import parallel as _parallel

pytest.importorskip("sqlglot")


@fastagg.aggregate
class PVar:
    """Welford variance with Chan's merge."""

    n: np.int64
    mean: float
    m2: float

    def step(self, x: float):
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self.m2 += d * (x - self.mean)

    def merge(self, other):
        if other.n == 0:
            return
        n = self.n + other.n
        d = other.mean - self.mean
        self.mean += d * other.n / n
        self.m2 += other.m2 + d * d * self.n * other.n / n
        self.n = n

    def finalize(self) -> float | None:
        return self.m2 / (self.n - 1) if self.n > 1 else None


@fastagg.aggregate
class PMinK:
    """Non-zero initial state, int result."""

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
class PSumNoMerge:
    """No merge: a query using it runs on one connection."""

    total: float

    def step(self, x: float):
        self.total += x

    def finalize(self) -> float:
        return self.total


AGGS = [PVar, PMinK, PSumNoMerge]


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(7)
    n = 30_011
    x = rng.normal(10.0, 3.0, n)
    x[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "g": rng.integers(0, 40, n),
            "s": pd.array(rng.choice(["a", "b", "c", None], n), dtype=object),
            "k": pd.array(np.where(rng.random(n) < 0.1, None, rng.integers(-50, 50, n)), dtype="Int64"),
            "x": x,
            "w": rng.integers(0, 3, n).astype(np.int32),
        }
    )


@pytest.fixture(scope="module")
def db(frame):
    with fastagg.connect() as session:
        session.register("df", frame)
        yield session


SPLIT = [
    # (sql, params, ordered)
    ("SELECT g, count(*), count(x), sum(k), total(x), avg(x), min(s), max(x) FROM df GROUP BY g", None, False),
    ("SELECT g, pvar(x) AS v, pmink(k) FROM df WHERE x > ? AND w <> 1 GROUP BY g", (9.5,), False),
    ("SELECT s, w, count(*) AS n, avg(k) FROM df GROUP BY s, w ORDER BY s NULLS LAST, w DESC", None, True),
    ("SELECT k, count(*) AS n FROM df GROUP BY k ORDER BY n DESC, k LIMIT 7 OFFSET 2", None, True),
    ("SELECT g % 5 AS m, sum(x) / count(*) AS r, pvar(x) * 2 FROM df GROUP BY m HAVING count(*) > :n ORDER BY 1",
     {"n": 100}, True),
    ("SELECT lower(s) AS ls, g > 20, sum(w) FROM df GROUP BY 1, 2 HAVING pvar(x) > 8.0 ORDER BY 3 DESC, 1, 2", None,
     True),
    ("SELECT d.g, count(*) FILTER (WHERE d.x > 10) AS hi, pvar(x) FILTER (WHERE w = 2) FROM df AS d GROUP BY d.g",
     None, False),
    ("SELECT count(*), sum(k), pvar(x), avg(x) FROM df WHERE g < 0", None, True),  # no rows, no GROUP BY
    ("SELECT g, sum(k) FROM df WHERE g < 0 GROUP BY g", None, True),  # no rows at all
    ("SELECT s, sum(k) FROM df WHERE k IS NULL GROUP BY s ORDER BY s", None, True),  # sum of only NULLs
    ("SELECT coalesce(s, 'none') AS c, min(k), max(k) FROM df GROUP BY c ORDER BY c", None, True),
    ("SELECT g FROM df GROUP BY g ORDER BY g DESC LIMIT 3", None, True),  # keys only
    ("SELECT sum(x) AS t, G FROM df GROUP BY \"G\" ORDER BY t", None, True),  # case, column after aggregate
    ("SELECT count(*) AS n FROM df", None, True),
]

FALLBACK = [
    ("SELECT s, group_concat(g) FROM df GROUP BY s", None),  # order-dependent aggregate
    ("SELECT s, count(DISTINCT g) FROM df GROUP BY s", None),
    ("SELECT s, psumnomerge(x) FROM df GROUP BY s", None),  # no merge
    ("SELECT s, x, max(g) FROM df GROUP BY s", None),  # bare column
    ("SELECT g, sum(x) OVER (PARTITION BY s) FROM df WHERE g < 3", None),  # window
    ("SELECT g, count(*) FROM df WHERE g IN (SELECT g FROM df WHERE x > 15) GROUP BY g", None),  # subquery
    ("SELECT a.g, count(*) FROM df a JOIN df b ON a.g = b.g AND a.w = b.w AND a.k = b.k GROUP BY a.g", None),
    ("WITH t AS (SELECT * FROM df) SELECT g, count(*) FROM t GROUP BY g", None),
    ("SELECT DISTINCT s FROM df", None),
    ("SELECT g, x FROM df WHERE g = 3 ORDER BY x LIMIT 5", None),  # not an aggregate query
    ("SELECT s, count(*) FROM df GROUP BY s COLLATE NOCASE", None),
]


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize("sql, params, ordered", SPLIT)
def test_split_equals_single(db, sql, params, ordered, workers):
    specs = [a.__fastagg_spec__ for a in AGGS]
    fastagg.register(db, *AGGS)
    assert _parallel.plan_query(db.connection, sql, {"df": list(db._frames["df"].columns)}, specs, params)
    one = db.query(sql, AGGS, params=params, output="arrow", workers=1)
    many = db.query(sql, AGGS, params=params, output="arrow", workers=workers)
    assert_same(one, many, ordered)


@pytest.mark.parametrize("sql, params", FALLBACK)
def test_fallback_is_still_right(db, sql, params):
    specs = [a.__fastagg_spec__ for a in AGGS]
    fastagg.register(db, *AGGS)
    assert _parallel.plan_query(db.connection, sql, {"df": list(db._frames["df"].columns)}, specs, params) is None
    one = db.query(sql, AGGS, params=params, output="arrow", workers=1)
    many = db.query(sql, AGGS, params=params, output="arrow", workers=2)
    assert_same(one, many, ordered=False)


def test_one_shot_query_and_pandas_output(frame):
    sql = "SELECT s, pvar(x) AS v, count(*) AS n FROM df GROUP BY s ORDER BY s"
    one = fastagg.query(frame, sql, [PVar], workers=1)
    many = fastagg.query(frame, sql, [PVar], workers=2)
    assert list(one.dtypes) == list(many.dtypes)
    pd.testing.assert_frame_equal(one, many, check_exact=False, rtol=1e-9)


def test_errors_in_workers_raise(db):
    with pytest.raises(fastagg.Error):
        db.query("SELECT g, count(*) FROM df GROUP BY g", workers=0)
    with pytest.raises(Exception, match="no such column"):
        db.query("SELECT nope, count(*) FROM df GROUP BY nope", workers=2)


def test_aggregate_error_in_a_worker():
    @fastagg.aggregate
    class Boom:
        n: np.int64

        def step(self, x: float):
            self.n += 1
            if x > 0.9:
                raise ValueError("too big")

        def merge(self, other):
            self.n += other.n

        def finalize(self) -> int:
            return self.n

    df = pd.DataFrame({"g": np.arange(1000) % 3, "x": np.linspace(0, 1, 1000)})
    with pytest.raises(fastagg.AggregateError, match="too big"):
        fastagg.query(df, "SELECT g, boom(x) FROM df GROUP BY g", [Boom], workers=2)


def test_split_ranges_cover_every_row():
    for n in (2, 3, 7, 1000, 1001):
        for w in (2, 3, 4):
            ranges = _parallel._split(n, w)
            assert ranges[0][0] == 1 and ranges[-1][1] == n
            assert all(a[1] + 1 == b[0] for a, b in zip(ranges, ranges[1:]))


def test_default_workers():
    assert _parallel.default_workers(10) == 1
    assert 1 <= _parallel.default_workers(5_000_000) <= 4


def test_frame_left_alone_and_nothing_left_registered(frame):
    before = frame.copy()
    fastagg.query(frame, "SELECT g, sum(x) FROM df GROUP BY g", workers=2)
    pd.testing.assert_frame_equal(frame, before)


# --------------------------------------------------------------------------
# Issue 11: every worker count reads exactly what was registered


def _sum_x(db, workers):
    # engine="sqlite": these tests are about the SQL-rewrite workers path (the
    # native grouped engine would otherwise take this statement first).
    out = db.query("SELECT g, sum(x) AS s, count(*) AS n FROM t GROUP BY g ORDER BY g", output="arrow",
                   workers=workers, engine="sqlite")
    return out.to_pylist()


def _spy_plans(monkeypatch):
    """Record the plans that ran split, so a test knows the parallel path was taken."""
    ran = []
    real = _parallel.run_plan

    def spy(plan, *args, **kw):
        ran.append(plan)
        return real(plan, *args, **kw)

    monkeypatch.setattr(_parallel, "run_plan", spy)
    return ran


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_record_batch_reader_input(workers, monkeypatch):
    ran = _spy_plans(monkeypatch)
    table = pa.table({"g": [1, 2, 1, 2, 1] * 200, "x": np.arange(1000, dtype=np.float64)})
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=100))
    with fastagg.connect() as db:
        db.register("t", reader)
        got = _sum_x(db, workers)
    assert got == [
        {"g": 1, "s": float(sum(range(0, 1000, 5)) + sum(range(2, 1000, 5)) + sum(range(4, 1000, 5))), "n": 600},
        {"g": 2, "s": float(sum(range(1, 1000, 5)) + sum(range(3, 1000, 5))), "n": 400},
    ]
    assert len(ran) == (workers > 1)


@pytest.mark.parametrize(
    "change",
    [
        lambda df: df.__setitem__("x", 2.0),
        lambda df: df.__delitem__("x"),
        lambda df: df.drop(index=df.index[10:], inplace=True),  # the same frame object, fewer rows
    ],
    ids=["assign", "drop-column", "trim-rows"],
)
@pytest.mark.filterwarnings("ignore:The inplace keyword")
@pytest.mark.parametrize("workers", [2, 3])
def test_workers_read_what_was_registered(change, workers, monkeypatch):
    ran = _spy_plans(monkeypatch)
    df = pd.DataFrame({"g": np.arange(1000) % 3, "x": np.arange(1000, dtype=np.float64)})
    with fastagg.connect() as db:
        db.register("t", df)
        expected = _sum_x(db, 1)
        change(df)
        assert _sum_x(db, 1) == expected
        assert _sum_x(db, workers) == expected
    assert len(ran) == 1


@pytest.mark.parametrize("workers", [11, 12, 40])
def test_many_workers(workers, monkeypatch):
    ran = _spy_plans(monkeypatch)
    df = pd.DataFrame({"g": np.arange(5000) % 7, "x": np.arange(5000, dtype=np.float64)})
    with fastagg.connect() as db:
        db.register("t", df)
        assert _sum_x(db, workers) == _sum_x(db, 1)
    assert len(ran) == 1


_INT64_MAX = np.iinfo(np.int64).max


def _sum_v(db, workers):
    # A key the native engine does not take (an expression), so the split path decides.
    sql = "SELECT g % 7 AS k, sum(v) AS s FROM t GROUP BY g % 7"
    try:
        return db.query(sql, workers=workers, output="arrow").to_pylist()
    except Exception as exc:  # noqa: BLE001 - the error is part of the answer compared
        return type(exc).__name__, str(exc)


def _overflow_frames():
    n = 4000
    # The row-order sum overflows at row n/2 (MAX + 1) and comes back (- 1): SQLite raises;
    # the two halves' partial sums (MAX, 0) would add up without error.
    wraps = np.zeros(n, np.int64)
    wraps[0], wraps[n // 2], wraps[n // 2 + 1] = _INT64_MAX, 1, -1
    # The row-order sum never overflows (MIN, then + MAX twice); the second half alone does.
    range_wraps = np.zeros(n, np.int64)
    range_wraps[0], range_wraps[n // 2], range_wraps[n // 2 + 1] = -_INT64_MAX - 1, _INT64_MAX, _INT64_MAX
    return {"row order overflows": wraps, "a range overflows": range_wraps}


@pytest.mark.parametrize("case", list(_overflow_frames()))
@pytest.mark.parametrize("workers", [2, 3])
def test_integer_sum_overflow_is_sqlites_own(case, workers, monkeypatch):
    ran = _spy_plans(monkeypatch)
    v = _overflow_frames()[case]
    with fastagg.connect() as db:
        db.register("t", pd.DataFrame({"g": np.zeros(len(v), np.int64), "v": v}))
        assert _sum_v(db, workers) == _sum_v(db, 1)
    assert ran == []  # the magnitudes allow an overflow: one connection, in row order


@pytest.mark.parametrize("dtype", ["int64", "int32", "Int64", "float64"])
def test_integer_sum_is_split_where_it_cannot_overflow(dtype, monkeypatch):
    ran = _spy_plans(monkeypatch)
    v = pd.array(np.arange(-2000, 2000), dtype=dtype)
    with fastagg.connect() as db:
        db.register("t", pd.DataFrame({"g": np.arange(4000), "v": v}))
        assert _sum_v(db, 2) == _sum_v(db, 1)
    assert len(ran) == 1


def test_sum_of_an_expression_is_not_split(monkeypatch):
    ran = _spy_plans(monkeypatch)
    with fastagg.connect() as db:
        db.register("t", pd.DataFrame({"g": np.arange(4000), "v": np.arange(4000)}))
        sql = "SELECT g % 7 AS k, sum(v * v) AS s, avg(v) AS a FROM t GROUP BY g % 7"
        assert db.query(sql, workers=2, output="arrow").equals(db.query(sql, workers=1, output="arrow"))
    assert ran == []
