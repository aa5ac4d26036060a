"""approx_count_distinct on the native engine: the whole-column kernel (:func:`fastagg.builtins.sketches.hll_grouped`).

A grouped statement hands the column to one kernel (each group's entries
gathered contiguously, then each group's register counts and estimate)
instead of a state with a vector per group. The estimate must not change:
the kernel's counts are :func:`sparse_counts`' and its estimate
:func:`hll_estimate`'s, bit for bit, so the native answers equal SQLite's
(``engine="sqlite"``, the type-generic class) on 1, 2 and 3 threads.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import fastagg
from fastagg.builtins import sketches
from fastagg.builtins.sketches import HLL_P, SPARSE_LIMIT
from fastagg.engine.native import last_run

# The native engine leaves small frames to SQLite while numba is not loaded.
import numba  # noqa: E402, F401


def _native_equals_sqlite(df, sql, threads=(1, 2, 3), engine="native"):
    ref = fastagg.query(df, sql, engine="sqlite", workers=1)
    for w in threads:
        got = fastagg.query(df, sql, workers=w)
        assert last_run().engine == engine, (sql, last_run())
        pd.testing.assert_frame_equal(got, ref, check_dtype=False, obj=f"{sql} workers={w}")
    return ref


def _frame(n, groups, seed=0):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    return pd.DataFrame({
        "g": g,
        "h": rng.integers(0, 5000, n),
        "big": rng.integers(-2**63, 2**63 - 1, n, dtype=np.int64),
        "r": np.where(rng.random(n) < 0.1, np.nan, rng.integers(-3000, 3000, n) * 0.5),
        "ni": pd.array(np.where(rng.random(n) < 0.2, None, rng.integers(0, 900, n)).tolist(), dtype="Int64"),
        "x": rng.normal(size=n),
    })


# 200,000 rows: over 65,536 rows a thread, so 2 and 3 threads split the rows.
@pytest.mark.parametrize("groups", [1, 7, 1000, 60_000])
@pytest.mark.parametrize("expr", ["h", "big", "r", "ni"])
def test_native_equals_sqlite(groups, expr):
    _native_equals_sqlite(_frame(200_000, groups), f"SELECT g, approx_count_distinct({expr}) FROM df GROUP BY g")


@pytest.mark.parametrize("expr", ["h * 3 - 1", "r + 0.25"])
def test_arithmetic_stays_on_sqlite(expr):
    """A value argument the engine would pass as a number: SQLite's (the plain forms take columns)."""
    _native_equals_sqlite(_frame(70_000, 100), f"SELECT g, approx_count_distinct({expr}) FROM df GROUP BY g",
                          threads=(1, 2), engine="sqlite")


@pytest.mark.parametrize("clause", [
    "WHERE x > 0.5",  # a WHERE: dropped rows are group -1
    "WHERE x > 100",  # no row kept: no group
    "WHERE g < 300 AND r IS NOT NULL OR x < -1",
])
def test_where(clause):
    _native_equals_sqlite(_frame(200_000, 500, 1), f"SELECT g, approx_count_distinct(h) FROM df {clause} GROUP BY g")


def test_filter_and_with_other_aggregates():
    df = _frame(200_000, 300, 2)
    _native_equals_sqlite(df, "SELECT g, approx_count_distinct(h) FILTER (WHERE x > 0), count(*),"
                              " approx_count_distinct(r), sum(h) FROM df GROUP BY g ORDER BY 2 DESC, g LIMIT 50")


def test_groups_with_only_nulls_count_zero():
    n = 200_000
    g = np.arange(n) % 10
    r = np.where(g < 3, np.nan, (np.arange(n) % 777) * 1.5)
    ref = _native_equals_sqlite(pd.DataFrame({"g": g, "r": r}), "SELECT g, approx_count_distinct(r) FROM df GROUP BY g")
    assert ref.iloc[:3, 1].tolist() == [0, 0, 0]


@pytest.mark.parametrize("size", [1, 2, 63, 64, 65, 500, SPARSE_LIMIT, SPARSE_LIMIT + 1, 2**HLL_P + 5, 100_000])
def test_group_sizes_around_every_limit(size):
    """Below and above the kernel's small-group limit (64), the state's sparse limit and the register count."""
    rng = np.random.default_rng(size)
    rest = 200_000
    g = np.concatenate([np.zeros(size, np.int64), rng.integers(1, 50, rest)])
    h = np.concatenate([rng.integers(0, 10 * size + 1, size), rng.integers(0, 10**6, rest)])
    perm = rng.permutation(len(g))
    _native_equals_sqlite(pd.DataFrame({"g": g[perm], "h": h[perm]}),
                          "SELECT g, approx_count_distinct(h) FROM df GROUP BY g")


def test_int64_extremes_and_integral_reals():
    n = 200_000
    ext = np.array([-2**63, 2**63 - 1, 0, -1, 1, 2**53, 2**53 + 1], np.int64)
    df = pd.DataFrame({"g": np.arange(n) % 5, "v": ext[np.arange(n) % len(ext)],
                       "f": np.array([1.0, -0.0, 0.0, 2.0**63, -2.0**63, 1e300, 0.5, np.inf, -np.inf])[np.arange(n) % 9]})
    _native_equals_sqlite(df, "SELECT g, approx_count_distinct(v), approx_count_distinct(f) FROM df GROUP BY g")


def test_text_key():
    df = _frame(200_000, 200, 3)
    df["g"] = pd.Series([f"k-{v}" for v in df["g"]], dtype="string[pyarrow]")
    _native_equals_sqlite(df, "SELECT g, approx_count_distinct(h) FROM df GROUP BY g")


def test_empty_frame():
    df = pd.DataFrame({"g": np.zeros(0, np.int64), "h": np.zeros(0, np.int64)})
    ref = fastagg.query(df, "SELECT g, approx_count_distinct(h) FROM df GROUP BY g", engine="sqlite")
    got = fastagg.query(df, "SELECT g, approx_count_distinct(h) FROM df GROUP BY g")
    assert len(ref) == len(got) == 0


# --------------------------------------------------------------------------
# The kernel's pieces against the state's functions


def test_group_estimates_equal_sparse_counts():
    """Per group: the kernel's estimate is hll_estimate(sparse_counts(entries)), at every size."""
    rng = np.random.default_rng(5)
    sizes = [0, 1, 2, 3, 16, 17, 63, 64, 65, 128, 129, 1000, 5000, 16384, 40000, 200000]
    hashes = [rng.integers(0, 2**63, s, dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
              for s in sizes]
    # Repeated registers too (few distinct values, so equal entries), and ranks up to the top.
    hashes.append(np.repeat(hashes[9][:20], 7))
    hashes.append(np.array([np.uint64(1) << np.uint64(k) for k in range(64)] * 3, np.uint64))
    entries = [np.array([sketches.hll_entry(h) for h in hs], np.uint32) for hs in hashes]
    starts = np.concatenate([[0], np.cumsum([len(e) for e in entries])]).astype(np.int64)
    flat = np.concatenate(entries).astype(np.uint32)
    out = np.zeros(len(entries), np.int64)
    sketches.hll_group_estimates(flat, starts, 0, len(entries), sketches.hll_sigmas(), out)
    want = [sketches.hll_estimate(sketches.sparse_counts(e.copy())) for e in entries]
    assert out.tolist() == want
    assert out[0] == 0


def test_estimate_shortcuts_give_the_same_bits():
    """hll_estimate_from with the highest counted rank and the sigma table is hll_estimate, for any counts."""
    rng = np.random.default_rng(6)
    m = 2**HLL_P
    q = 64 - HLL_P
    sigmas = sketches.hll_sigmas()
    for trial in range(3000):
        counts = np.zeros(q + 2, np.int64)
        top = int(rng.integers(1, q + 2))
        filled = int(rng.integers(0, m + 1)) if trial % 3 else int(rng.integers(0, 40))
        if filled:
            counts[1:top + 1] = np.bincount(rng.integers(1, top + 1, filled), minlength=top + 1)[1:]
        counts[0] = m - counts[1:].sum()
        highest = int(np.flatnonzero(counts[1:])[-1]) + 1 if counts[1:].any() else 0
        assert sketches.hll_estimate_from(counts, highest, sigmas) == sketches.hll_estimate(counts), counts
        assert sketches.hll_estimate_from(counts, highest, None) == sketches.hll_estimate(counts), counts


def test_hook_on_the_plain_forms_only():
    """SQLite's type-generic class keeps its states; only the plain forms (native, numeric columns) take the hook."""
    from fastagg.builtins import ApproxCountDistinct
    from fastagg.builtins.plain import ApproxCountDistinctInt, ApproxCountDistinctReal

    assert not hasattr(ApproxCountDistinct, "__fastagg_grouped__")
    assert ApproxCountDistinctInt.__fastagg_grouped__ is sketches.hll_grouped
    assert ApproxCountDistinctReal.__fastagg_grouped__ is sketches.hll_grouped


def test_ungrouped_keeps_the_states():
    """No GROUP BY: the states (lanes on threads) as before, the same answer as SQLite."""
    df = _frame(200_000, 1, 7)
    for w in (1, 2, 3):
        ref = fastagg.query(df, "SELECT approx_count_distinct(h), approx_count_distinct(r) FROM df", engine="sqlite")
        got = fastagg.query(df, "SELECT approx_count_distinct(h), approx_count_distinct(r) FROM df", workers=w)
        pd.testing.assert_frame_equal(got, ref, check_dtype=False)


@pytest.mark.parametrize("offset", [5, -1000, 2**62])
def test_int_key_not_starting_at_zero(offset):
    """A dense int key whose ids are the column minus its minimum (the engine reads the column as the ids)."""
    df = _frame(200_000, 100)
    df["g"] += offset
    _native_equals_sqlite(df, "SELECT g, approx_count_distinct(h), median(x) FROM df GROUP BY g")
