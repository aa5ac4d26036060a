"""Joins between registered frames answer exactly as the same data in real SQLite tables.

Each query runs twice: over frames registered with fastagg (the virtual
table, whose indexes serve the joins) and over the same frames written to
plain SQLite tables with ``DataFrame.to_sql`` (the independent reference).
Keys have NULLs and duplicates on both sides, in every column kind.
"""

from __future__ import annotations

import sqlite3

import numpy as np
import pandas as pd
import pytest

from aggs import assert_rows_match
from fastagg.table import register_frame

N_A, N_B = 240, 60


def _frames(seed=0):
    rng = np.random.default_rng(seed)
    words = np.array(["a", "b", "B", "c", "3", "é", "", "ab", "a\0b"], dtype=object)

    def with_nulls(values, n, share=0.15):
        out = pd.Series(values, dtype=object)
        out[rng.random(n) < share] = None
        return out

    def frame(n, tag):
        k = with_nulls(rng.integers(0, 12, n), n)
        f = pd.Series(rng.integers(0, 12, n).astype(float) / np.where(rng.random(n) < 0.3, 2, 1))
        f[rng.random(n) < 0.15] = np.nan
        stamps = pd.to_datetime("2024-01-02 03:04:05") + pd.to_timedelta(rng.integers(0, 6, n) * 1800, unit="s")
        stamps = pd.Series(stamps).astype("datetime64[ns]")
        stamps[rng.random(n) < 0.15] = pd.NaT
        return pd.DataFrame({
            f"id{tag}": np.arange(n),
            "k": k.astype("Int64"),
            "f": f,
            "s": with_nulls(words[rng.integers(0, len(words), n)], n),
            "b": rng.random(n) < 0.5,
            "c": pd.Series(words[rng.integers(0, 4, n)], dtype="category"),
            "t": stamps,
            f"v{tag}": rng.integers(0, 1000, n),
        })

    return frame(N_A, "a"), frame(N_B, "b")


@pytest.fixture(scope="module")
def pair():
    a, b = _frames()
    fa = sqlite3.connect(":memory:")
    ref = sqlite3.connect(":memory:")
    regs = [register_frame(fa, "a", a), register_frame(fa, "b", b)]
    for name, frame in (("a", a), ("b", b)):
        frame.to_sql(name, ref, index=False, dtype={"t": "TEXT"})
    yield fa, ref, regs
    for reg in regs:
        reg.close()
    fa.close()
    ref.close()


def _key(row):
    return [(v is None, type(v).__name__, v if v is not None else 0) for v in row]


def same(pair, sql, ordered=False):
    fa, ref, _ = pair
    got = fa.execute(sql).fetchall()
    want = ref.execute(sql).fetchall()
    if not ordered:
        got, want = sorted(got, key=_key), sorted(want, key=_key)
    assert_rows_match(got, want, what=sql)
    return got


QUERIES = [
    # inner / LEFT / self / three-way
    "SELECT a.ida, b.idb FROM a JOIN b ON a.k = b.k",
    "SELECT a.ida, b.idb FROM a LEFT JOIN b ON a.k = b.k",
    "SELECT a.ida, b.idb FROM b LEFT JOIN a ON a.s = b.s",
    "SELECT x.ida, y.ida FROM a x JOIN a y ON x.s = y.s AND x.ida < y.ida",
    "SELECT a.ida, b.idb, a2.ida FROM a JOIN b ON a.k = b.k JOIN a a2 ON a2.s = b.s",
    # two columns, IS, mixed kinds
    "SELECT a.ida, b.idb FROM a JOIN b ON a.k = b.k AND a.s = b.s",
    "SELECT a.ida, b.idb FROM a JOIN b ON a.s = b.s AND a.t = b.t",
    "SELECT a.ida, b.idb FROM a JOIN b ON a.k IS b.k",
    "SELECT a.ida, b.idb FROM a JOIN b ON a.s IS b.s",
    "SELECT a.ida, b.idb FROM a JOIN b ON a.k = b.f",
    "SELECT a.ida, b.idb FROM a JOIN b ON a.f = b.k",
    "SELECT a.ida, b.idb FROM a JOIN b ON a.s = b.k",
    "SELECT a.ida, b.idb FROM a JOIN b ON a.k = b.s",
    "SELECT a.ida, b.idb FROM a JOIN b ON a.b = b.b AND a.k = b.k",
    "SELECT a.ida, b.idb FROM a JOIN b ON a.c = b.c AND a.k = b.k",
    "SELECT a.ida, b.idb FROM a JOIN b ON a.c = b.s",
    "SELECT a.ida, b.idb FROM a JOIN b ON a.t = b.t",
    "SELECT a.ida, b.idb FROM a JOIN b ON a.f = b.f",
    "SELECT a.ida, b.idb FROM a JOIN b ON a.s = b.s COLLATE NOCASE",
    # expressions that cannot use an index
    "SELECT a.ida, b.idb FROM a JOIN b ON a.k + 1 = b.k + 1",
    "SELECT a.ida, b.idb FROM a JOIN b ON lower(a.s) = b.s",
    # USING, NATURAL
    "SELECT ida, idb, k FROM a JOIN b USING (k)",
    "SELECT ida, idb FROM a JOIN b USING (k, c)",
    "SELECT count(*) FROM (SELECT ida, k, s FROM a) NATURAL JOIN (SELECT idb, k, s FROM b)",
    # correlated subqueries, EXISTS, IN
    "SELECT ida, (SELECT max(vb) FROM b WHERE b.k = a.k) FROM a",
    "SELECT ida, (SELECT count(*) FROM b WHERE b.s = a.s) FROM a",
    "SELECT ida FROM a WHERE a.k IN (SELECT k FROM b WHERE b.s = a.s)",
    "SELECT ida FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.k = a.k AND b.t = a.t)",
    "SELECT ida FROM a WHERE NOT EXISTS (SELECT 1 FROM b WHERE b.s = a.s)",
    "SELECT ida FROM a WHERE k IN (SELECT k FROM b)",
    "SELECT ida FROM a WHERE s IN (SELECT s FROM b WHERE vb > 500)",
    "SELECT ida FROM a WHERE s IN ('a', 'B', NULL, 3)",
    "SELECT ida FROM a WHERE k IN (1, 2.0, 3.5, '4')",
    "SELECT ida FROM a WHERE f IN (1, 2.5, '3')",
    "SELECT ida FROM a WHERE t IN ('2024-01-02 03:04:05', '2024-01-02 04:04:05')",
    # constants of another type (affinity)
    "SELECT ida FROM a WHERE k = '3'",
    "SELECT ida FROM a WHERE s = 3",
    "SELECT ida FROM a WHERE s IS NULL",
    "SELECT ida FROM a WHERE k IS NULL",
    # ranges and BETWEEN, joined and constant
    "SELECT a.ida, b.idb FROM a JOIN b ON b.k > a.k AND b.k <= a.k + 1",
    "SELECT a.ida, b.idb FROM a JOIN b ON b.k BETWEEN a.k AND a.k + 2",
    "SELECT a.ida, b.idb FROM a JOIN b ON b.s >= a.s AND b.s < 'b' AND b.k = a.k",
    "SELECT a.ida, b.idb FROM a JOIN b ON b.t > a.t AND b.c = a.c",
    "SELECT a.ida, b.idb FROM a JOIN b ON b.f < a.f AND b.k = a.k",
    "SELECT ida FROM a WHERE s BETWEEN 'a' AND 'b'",
    "SELECT ida FROM a WHERE s > 1",
    "SELECT ida FROM a WHERE t >= '2024-01-02 04'",
    "SELECT ida FROM a WHERE k > 2.5 AND k <= 7",
]


@pytest.mark.parametrize("sql", QUERIES)
def test_join_matches_sqlite(pair, sql):
    same(pair, sql)


@pytest.mark.parametrize("sql", [
    "SELECT ida, k FROM a ORDER BY k, ida LIMIT 7",
    "SELECT ida, s FROM a ORDER BY s, ida LIMIT 9",
    "SELECT ida, k FROM a WHERE k > 3 ORDER BY k, ida LIMIT 5",
    "SELECT ida, f FROM a ORDER BY f DESC, ida LIMIT 5 OFFSET 3",
    "SELECT ida, t FROM a ORDER BY t DESC, ida LIMIT 4 OFFSET 10",
    "SELECT a.ida, b.idb FROM a JOIN b ON a.k = b.k ORDER BY b.idb, a.ida LIMIT 20",
    "SELECT b.idb, a.ida FROM b JOIN a ON a.s = b.s ORDER BY a.s, b.idb, a.ida",
])
def test_ordered_matches_sqlite(pair, sql):
    fa = pair[0]
    fa.execute("SELECT count(*) FROM a JOIN b ON a.k = b.k").fetchall()  # an index on a.k or b.k
    fa.execute("SELECT count(*) FROM b JOIN a ON a.s = b.s").fetchall()
    same(pair, sql, ordered=True)


def test_statements_reuse_indexes(pair):
    fa, _, (ra, rb) = pair
    same(pair, "SELECT a.ida, b.idb FROM a JOIN b ON a.k = b.k")
    before = ra.indexes + rb.indexes
    assert before, "the join built no index"
    same(pair, "SELECT a.ida, b.idb FROM a JOIN b ON a.k = b.k")
    assert ra.indexes + rb.indexes == before
    for ix in before:
        assert ix["bytes"] <= 16 * max(N_A, N_B)


def test_hypothesis_joins():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import HealthCheck, given, settings, strategies as st

    keys = st.one_of(st.none(), st.integers(-3, 3), st.sampled_from([0.0, 1.0, 1.5, -2.0]))
    texts = st.one_of(st.none(), st.sampled_from(["", "a", "b", "ab", "1", "B"]))
    rows = st.tuples(keys, texts)

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(rows, min_size=0, max_size=30), st.lists(rows, min_size=0, max_size=30),
           st.sampled_from(["int", "float"]))
    def check(left, right, numeric):
        def frame(data, tag):
            k = [r[0] for r in data]
            if numeric == "int":
                k = pd.array([None if v is None else int(v) for v in k], dtype="Int64")
            else:
                k = pd.Series([np.nan if v is None else float(v) for v in k], dtype=float)
            return pd.DataFrame({"id" + tag: np.arange(len(data)), "k": k,
                                 "s": pd.Series([r[1] for r in data], dtype=object)})

        a, b = frame(left, "a"), frame(right, "b")
        fa, ref = sqlite3.connect(":memory:"), sqlite3.connect(":memory:")
        regs = [register_frame(fa, "a", a), register_frame(fa, "b", b)]
        a.to_sql("a", ref, index=False)
        b.to_sql("b", ref, index=False)
        try:
            for sql in (
                "SELECT a.ida, b.idb FROM a JOIN b ON a.k = b.k",
                "SELECT a.ida, b.idb FROM a LEFT JOIN b ON b.s = a.s",
                "SELECT a.ida, b.idb FROM a JOIN b ON b.k = a.k AND b.s = a.s",
                "SELECT a.ida, b.idb FROM a JOIN b ON b.k >= a.k AND b.k < a.k + 2",
                "SELECT ida FROM a WHERE k IN (SELECT k FROM b)",
                "SELECT ida FROM a WHERE EXISTS (SELECT 1 FROM b WHERE b.s IS a.s)",
            ):
                got = sorted(fa.execute(sql).fetchall(), key=_key)
                want = sorted(ref.execute(sql).fetchall(), key=_key)
                assert_rows_match(got, want, what=sql)
        finally:
            for reg in regs:
                reg.close()
            fa.close()
            ref.close()

    check()
