"""Integer keys the native engine groups by value (``kernels.dense_int_groups``), against SQLite.

A plain int64 key whose values span at most about twice the rows is grouped
directly by value: the group of row ``i`` is ``key[i] - base`` when every
value from the minimum to the maximum occurs (the key column itself is read
as the group ids), otherwise a gathered id. Its passes run on threads from
``2 * 2**18`` rows. These cases run where that happens (600,000 rows) with
minima far from 0 (negative, near both ends of int64), gaps, one group,
sorted and shuffled keys, and 1, 2 and 3 threads; SQLite
(``engine="sqlite"``, one worker) is the reference. Aggregates: SQLite's own
(bit-identical), a built-in, a mergeable user aggregate (within 1e-12 on
threads: its merge reorders the additions), one with ``__init__`` and a
vector field (its memory must come back).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import fastagg
from fastagg.engine.native import last_run
from fastagg.sqlite import capi
from test_engine_threads import TMean, _close_tables

# The native engine leaves small frames to SQLite while numba is not loaded.
import numba  # noqa: E402, F401

ROWS = 600_000


@fastagg.aggregate(name="dk_last")
class DenseLastTwo:
    """An ``__init__`` that marks the state and a vector field: the sum of the last two values in row order."""

    started: np.int64
    values: fastagg.vector(np.float64)

    def __init__(self):
        self.started = 1

    def step(self, x: float):
        self.values.append(x)

    def merge(self, other):
        self.values.extend(other.values.as_array())

    def finalize(self) -> float | None:
        a = self.values.as_array()
        if self.started != 1 or len(a) == 0:
            return None
        return float(a[-2:].sum())


AGGS = [TMean, DenseLastTwo]

SQL = ("SELECT g, count(*) AS n, sum(x) AS s, sum(i) AS si, avg(x) AS a, min(x) AS lo, max(i) AS hi, "
       "var_samp(x) AS v, tmean(x) AS m, dk_last(x) AS l FROM df GROUP BY g")
EXACT = ["g", "n", "s", "si", "a", "lo", "hi", "l"]  # bit-identical on any number of threads


def _frame(base: int, span: int, gaps: bool, order: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    offsets = rng.integers(0, span, ROWS)
    if gaps:
        offsets = offsets - offsets % 3  # two values in three never occur
    if order == "sorted":
        offsets.sort()
    x = rng.normal(size=ROWS)
    x[::17] = np.nan
    return pd.DataFrame({"g": (np.int64(base) + offsets).astype(np.int64), "x": x,
                         "i": rng.integers(-1000, 1000, ROWS)})


CASES = [
    (0, 1000, False, "shuffled"),
    (5, 1000, True, "shuffled"),
    (-1000, 50_000, False, "sorted"),
    (2**62, 1000, True, "sorted"),
    (-(2**63), 100, False, "shuffled"),
    (2**63 - 1 - 2000, 2000, False, "shuffled"),
    (7, 1, False, "shuffled"),  # one group
    (-3, 2 * ROWS, True, "shuffled"),  # about as many values as rows: still by value
]


def _used():
    return capi.lib.sqlite3_memory_used()


@pytest.mark.parametrize("base, span, gaps, order", CASES)
def test_dense_int_keys_match_sqlite(base, span, gaps, order, monkeypatch):
    from fastagg.engine import kernels

    grouped_by_value = []
    by_value = kernels.dense_int_groups

    def spy(*args, **kw):
        out = by_value(*args, **kw)
        grouped_by_value.append(out[2] >= 0)
        return out

    monkeypatch.setattr(kernels, "dense_int_groups", spy)
    df = _frame(base, span, gaps, order, seed=span % 97)
    want = fastagg.query(df, SQL, AGGS, engine="sqlite", workers=1, output="arrow")
    fastagg.query(df, SQL, AGGS, workers=2, output="arrow")  # compiled and warmed: memory measured from here
    before = _used()
    for workers in (1, 2, 3):
        got = fastagg.query(df, SQL, AGGS, workers=workers, output="arrow")
        assert last_run().engine == "native", last_run()
        assert got.schema == want.schema
        assert got.select(EXACT).equals(want.select(EXACT)), (base, span, workers)
        _close_tables(want.select(["v", "m"]), got.select(["v", "m"]), (base, span, workers))
    assert _used() == before  # every vector freed, on every thread count
    assert grouped_by_value and all(grouped_by_value)  # the path under test ran


def test_dense_keys_with_a_null_key_are_grouped_by_hash():
    # A NULL key is a group of its own (SQLite's first); the by-value path takes plain int64 only.
    df = _frame(-50, 300, True, "shuffled", seed=3)
    g = pd.array(df["g"].to_numpy(), dtype="Int64")
    g[::1001] = pd.NA
    df["g"] = g
    want = fastagg.query(df, SQL, AGGS, engine="sqlite", workers=1, output="arrow")
    for workers in (1, 2):
        got = fastagg.query(df, SQL, AGGS, workers=workers, output="arrow")
        assert got.select(EXACT).equals(want.select(EXACT))
        assert got.column("g")[0].as_py() is None


def test_dense_keys_error_in_a_step_fails_cleanly():
    @fastagg.aggregate(name="dk_boom")
    class Boom:
        values: fastagg.vector(np.float64)

        def step(self, x: float):
            if x > 4.5:
                raise ValueError("too big")
            self.values.append(x)

        def merge(self, other):
            self.values.extend(other.values.as_array())

        def finalize(self) -> float:
            return float(len(self.values.as_array()))

    df = _frame(1000, 500, False, "shuffled", seed=11)
    df.loc[ROWS - 3, "x"] = 5.0  # in the last range only
    sql = "SELECT g, dk_boom(x) FROM df GROUP BY g"
    fastagg.query(df.head(10), "SELECT g, dk_boom(x) FROM df GROUP BY g", [Boom])  # compiled
    before = _used()
    for workers in (1, 2, 3):
        with pytest.raises(fastagg.AggregateError, match="too big"):
            fastagg.query(df, sql, [Boom], workers=workers)
    assert _used() == before


def test_dense_key_result_is_int64_arrow():
    df = _frame(-(2**40), 10, False, "shuffled", seed=5)
    got = fastagg.query(df, "SELECT g, count(*) AS n FROM df GROUP BY g", workers=2, output="arrow")
    assert got.schema.field("g").type == pa.int64()
    assert got.column("g").to_pylist() == sorted(set(df["g"].tolist()))
    assert sum(got.column("n").to_pylist()) == ROWS
