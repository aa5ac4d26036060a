"""The native engine's fast paths against SQLite: dense int keys and ungrouped lanes.

- A plain int64 key with a small value range (:func:`fastagg.engine.kernels.dense_int_groups`):
  the key values come from the minimum and the values present (no gather),
  the min/max and first-row passes over row ranges on threads. Keys not
  starting at 0, with gaps, negative, at the int64 extremes; 1, 2 and 3 threads.
- An ungrouped user aggregate on threads (:data:`fastagg.engine.reduce.LANES`
  states per thread): blocks without a NULL run in a loop of their own,
  blocks with one take the per-row tests; the lanes fold into one state in
  one call (``merge_lanes``). Counts exact, sums within 1e-12 of SQLite's.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastagg
from aggs import MergeableWelfordVar
from fastagg.engine import kernels
from fastagg.sqlite import capi

import numba  # noqa: F401 - the engine itself, not the small-frame start-up rule
from test_engine import assert_same

EXAMPLES = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))


@fastagg.aggregate(name="svar")
class SVar(MergeableWelfordVar):
    """Welford variance with Chan's merge."""


@fastagg.aggregate(name="ucount")
class UCount:
    """Rows stepped (non-NULL x), and their sum: exact count, summation-order sum."""

    n: np.int64
    total: np.float64

    def step(self, x: float):
        self.n += 1
        self.total += x

    def merge(self, other):
        self.n += other.n
        self.total += other.total

    def finalize(self) -> int:
        return self.n


@fastagg.aggregate(name="usum")
class USum(UCount):
    def finalize(self) -> float | None:
        return self.total if self.n else None


@fastagg.aggregate(name="ulen")
class ULen:
    """Keeps its values in a vector (merge_lanes frees what it merges in)."""

    values: fastagg.vector(np.float64)

    def step(self, x: float):
        self.values.append(x)

    def merge(self, other):
        self.values.extend(other.values.as_array())

    def finalize(self) -> int:
        return len(self.values.as_array())


@fastagg.aggregate(name="ipairs")
class IPairs:
    """Two int arguments: rows where both are non-NULL."""

    n: np.int64

    def step(self, a: int, b: int):
        self.n += 1

    def merge(self, other):
        self.n += other.n

    def finalize(self) -> int:
        return self.n


AGGS = [SVar, UCount, USum, ULen, IPairs]

BASES = [0, 1, -7, 1000, 2**62, -(2**63), 2**63 - 40]


@st.composite
def dense_frames(draw):
    base = draw(st.sampled_from(BASES))
    span = draw(st.integers(1, 30))
    n = draw(st.sampled_from([1, 2, 9, 60, 250]))
    picks = draw(st.lists(st.integers(0, span - 1), min_size=n, max_size=n))
    if draw(st.booleans()):
        picks[: min(n, span)] = range(min(n, span))  # every value present (the key column is the ids)
    keys = np.array([base + p for p in picks], dtype=np.int64)
    x = np.array(draw(st.lists(st.sampled_from([1.5, -2.25, 0.1, np.nan, 1e16, -0.0]), min_size=n, max_size=n)))
    return pd.DataFrame({"g": keys, "x": x})


@pytest.fixture
def small_ranges(monkeypatch):
    """Row ranges of 7 rows: the key passes split even a small frame over threads."""
    monkeypatch.setattr(kernels, "_KEY_RANGE_ROWS", 7)


@pytest.mark.parametrize("workers", [1, 2, 3])
@EXAMPLES
@given(frame=dense_frames())
def test_dense_int_keys_match_sqlite(small_ranges, frame, workers):
    for sql in ("SELECT g, sum(x) AS s, count(*) AS n, count(x) AS c, min(x) AS lo FROM df GROUP BY g",
                "SELECT g, svar(x) AS v, ucount(x) AS k FROM df GROUP BY g",
                "SELECT g, avg(x) AS a FROM df GROUP BY g LIMIT 3 OFFSET 1"):
        assert fastagg.explain(frame, sql, AGGS).engine == "native", fastagg.explain(frame, sql, AGGS)
        assert_same(frame, sql, AGGS, workers=workers)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_dense_int_keys_extremes_and_empty(small_ranges, workers):
    top = np.iinfo(np.int64).max
    low = np.iinfo(np.int64).min
    frames = [
        pd.DataFrame({"g": np.array([top, top - 3, top, top - 1], np.int64), "x": [1.0, 2.0, 3.0, 4.0]}),
        pd.DataFrame({"g": np.array([low + 2, low, low, low + 5], np.int64), "x": [1.0, np.nan, 3.0, 4.0]}),
        pd.DataFrame({"g": np.array([-3, -1, -3, 0, 2, -1, 2, 2], np.int64), "x": np.arange(8.0)}),
        pd.DataFrame({"g": np.zeros(0, np.int64), "x": np.zeros(0)}),
    ]
    for frame in frames:
        for sql in ("SELECT g, sum(x) AS s, count(*) AS n FROM df GROUP BY g",
                    "SELECT g, svar(x) AS v FROM df GROUP BY g"):
            assert_same(frame, sql, AGGS, workers=workers)


def _close(want, got, what):
    assert want.schema == got.schema, (what, want.schema, got.schema)
    for ra, rb in zip(want.to_pylist(), got.to_pylist(), strict=True):
        for k in ra:
            x, y = ra[k], rb[k]
            if isinstance(x, float) and isinstance(y, float):
                assert math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-300), (what, k, x, y)
            else:
                assert x == y, (what, k, x, y)


def _nulls(rows, pattern, rng):
    """Where the NULLs go: none, one, scattered, or whole runs (blocks all NULL, blocks without)."""
    if pattern == "none":
        return np.zeros(rows, bool)
    if pattern == "one":
        out = np.zeros(rows, bool)
        out[rows // 2 + 3] = True
        return out
    if pattern == "scattered":
        return rng.random(rows) < 0.05
    return (np.arange(rows) // 37) % 3 == 0  # runs of 37: across block boundaries


@pytest.mark.parametrize("pattern", ["none", "one", "scattered", "runs"])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_ungrouped_lanes_with_null_blocks(pattern, workers):
    rows = 200_003  # not a multiple of the lanes: a tail after the blocks
    rng = np.random.default_rng(11)
    x = rng.normal(10.0, 3.0, rows)
    null = _nulls(rows, pattern, rng)
    a = rng.integers(-5, 5, rows)
    b = rng.integers(0, 9, rows)
    bnull = _nulls(rows, "scattered" if pattern != "none" else "none", rng)
    frames = {
        "nan": pd.DataFrame({"x": np.where(null, np.nan, x), "a": a, "b": b}),  # NaN is NULL: variant n
        "mask": pd.DataFrame({"x": pd.Series(x, dtype="Float64").mask(null),
                              "a": pd.Series(a, dtype="Int64").mask(null),
                              "b": pd.Series(b, dtype="Int64").mask(bnull)}),  # masks: variant m
    }
    sql = ("SELECT ucount(x) AS n, usum(x) AS s, ulen(x) AS l, svar(x) AS v, ipairs(a, b) AS p, "
           "count(x) AS c FROM df")
    for name, frame in frames.items():
        assert fastagg.explain(frame, sql, AGGS).engine == "native"
        want = fastagg.query(frame, sql, AGGS, engine="sqlite", workers=1, output="arrow")
        fastagg.query(frame, sql, AGGS, workers=workers, output="arrow")  # compiled: memory measured from here
        before = capi.lib.sqlite3_memory_used()
        got = fastagg.query(frame, sql, AGGS, workers=workers, output="arrow")
        _close(want, got, (name, pattern, workers))
        assert capi.lib.sqlite3_memory_used() - before < 65536  # merged-in vectors freed
