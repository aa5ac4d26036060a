"""GROUP BY keys of the native engine (:mod:`fastagg.engine.keys`) against SQLite.

Text keys hashed a word at a time on threads, dictionary / categorical keys
by code, several keys combined, TPC-H Q1-shaped statements: each statement
runs with ``engine="sqlite", workers=1`` (the reference: groups in BINARY
key order, NULL one group) and natively with 1, 2 and 3 threads; results
must be equal, Arrow types included. The row-range size of the key
kernels is lowered so that small frames are split over threads too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastagg
from fastagg.engine import keys as keys_module

import numba  # noqa: F401 - the engine itself, not the small-frame start-up rule
from test_engine import assert_same as _assert_same

EXAMPLES = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


def assert_same(data, sql, workers):
    """test_engine's comparison; a statement SQLite runs (a NULL-typed key, say) with one thread on both sides.

    (SQLite with several workers takes the SQL-rewrite parallel path, whose float sums differ.)
    """
    native = fastagg.explain(data, sql).engine == "native"
    _assert_same(data, sql, workers=workers if native else 1)


@pytest.fixture(autouse=True)
def small_ranges(monkeypatch):
    """Ranges of 7 rows: every thread count splits even a small frame (no probe for mostly distinct text)."""
    monkeypatch.setattr(keys_module, "MIN_RANGE", 7)
    monkeypatch.setattr(keys_module, "PROBE_ROWS", 0)


# Short and long values, non-ASCII, embedded NULs, the empty string, prefixes of each other.
CHARS = st.sampled_from(list("ab\u00e9\u4e2d\x00Z-"))
WORDS = st.one_of(
    st.text(alphabet=CHARS, max_size=3),
    st.text(alphabet=CHARS, min_size=6, max_size=10),
    st.text(alphabet=CHARS, min_size=15, max_size=40),
    st.sampled_from(["", "\x00", "\x00\x00", "a", "a\x00", "abcdefgh", "abcdefghi", "abcdefg", "key-00001"]),
)


@st.composite
def text_frames(draw):
    n = draw(st.sampled_from([0, 1, 2, 5, 40, 200]))
    distinct = draw(st.lists(WORDS, min_size=1, max_size=30, unique=True))
    picks = draw(st.lists(st.integers(0, len(distinct)), min_size=n, max_size=n))
    values = [None if p == len(distinct) else distinct[p] for p in picks]  # the last pick is NULL
    x = draw(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=n, max_size=n))
    k = draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n))
    return values, np.array(x, np.float64), np.array(k, np.int64)


def _as(values, how):
    """The text values as one of the key representations a frame can hold."""
    if how == "pyarrow":
        return pd.array(values, dtype="string[pyarrow]")
    if how == "category":
        return pd.Categorical(values)
    if how == "object":
        return pd.array(values, dtype=object)
    raise AssertionError(how)


def _arrow(values, how):
    if how == "string":
        return pa.array(values, pa.string())
    if how == "large_binary":
        return pa.array([None if v is None else v.encode() for v in values], pa.large_binary())
    if how == "dictionary":
        return pa.array(values, pa.string()).dictionary_encode()
    if how == "string_view":
        return pa.array(values, pa.string()).cast(pa.string_view())
    raise AssertionError(how)


SQLS = [
    "SELECT t, count(*), sum(x), min(x), max(t) FROM df GROUP BY t",
    "SELECT t, k, count(*), total(x) FROM df GROUP BY t, k",
    "SELECT k, t, avg(x), count(t) FROM df GROUP BY k, t",
    "SELECT t, count(*) FROM df WHERE x > 0 GROUP BY t",
]


@EXAMPLES
@given(text_frames(), st.sampled_from(["pyarrow", "category", "object"]), st.sampled_from([1, 2, 3]))
def test_text_keys_pandas(data, how, workers):
    values, x, k = data
    df = pd.DataFrame({"t": _as(values, how), "x": x, "k": k})
    for sql in SQLS:
        assert_same(df, sql, workers=workers)


@EXAMPLES
@given(text_frames(), st.sampled_from(["string", "large_binary", "dictionary", "string_view"]),
       st.sampled_from([1, 2, 3]))
def test_text_keys_arrow(data, how, workers):
    values, x, k = data
    table = pa.table({"t": _arrow(values, how), "x": pa.array(x), "k": pa.array(k)})
    for sql in SQLS:
        assert_same({"df": table}, sql, workers=workers)


@EXAMPLES
@given(text_frames(), text_frames(), st.sampled_from([1, 2, 3]))
def test_several_mixed_keys(a, b, workers):
    """Text, int, categorical and dictionary keys together, in every order."""
    values, x, k = a
    other = (b[0] * (len(values) // max(len(b[0]), 1) + 1))[:len(values)] if b[0] else [None] * len(values)
    table = pa.table({
        "t": pa.array(values, pa.large_string()),
        "c": pa.array(other, pa.string()).dictionary_encode(),
        "k": pa.array(k),
        "x": pa.array(x),
    })
    df = table.to_pandas()
    df["p"] = pd.Categorical(other)
    for sql in ["SELECT t, c, count(*), sum(x) FROM df GROUP BY t, c",
                "SELECT c, k, t, count(*) FROM df GROUP BY c, k, t",
                "SELECT p, t, k, total(x), max(c) FROM df GROUP BY p, t, k",
                "SELECT k, p, count(*) FROM df WHERE x < 100 GROUP BY k, p"]:
        assert_same({"df": table}, sql.replace(", p", ", c").replace("p, ", "c, "), workers=workers)
        assert_same(df, sql, workers=workers)


@pytest.mark.parametrize("probe", [0, 64])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_one_group_many_groups_and_empty(workers, probe, monkeypatch):
    monkeypatch.setattr(keys_module, "PROBE_ROWS", probe)  # 64: mostly distinct text takes one range
    n = 5000
    rng = np.random.default_rng(3)
    many = [f"value-{i:07d}-\u00e9" for i in rng.permutation(n)]
    cases = {
        "one": ["same"] * n,
        "many": many,
        "all null": [None] * n,
        "empty strings": [""] * (n // 2) + [None] * (n // 2),
        "nul bytes": ["\x00" * (i % 9) for i in range(n)],
    }
    for name, values in cases.items():
        df = pd.DataFrame({"t": pd.array(values, dtype="string[pyarrow]"), "x": rng.normal(size=n)})
        assert_same(df, "SELECT t, count(*), sum(x) FROM df GROUP BY t", workers=workers)
        assert_same(df, "SELECT t, count(*) FROM df WHERE x > 0.5 GROUP BY t", workers=workers)
    empty = pd.DataFrame({"t": pd.array([], dtype="string[pyarrow]"), "x": np.zeros(0)})
    assert_same(empty, "SELECT t, count(*) FROM df GROUP BY t", workers=workers)


def _q1_frame(n, seed):
    rng = np.random.default_rng(seed)
    return pa.table({
        "l_returnflag": pa.array(rng.choice(["A", "N", "R"], n)),
        "l_linestatus": pa.array(rng.choice(["F", "O"], n)),
        "l_quantity": pa.array(rng.integers(1, 51, n).astype(np.float64)),
        "l_extendedprice": pa.array(rng.uniform(900, 100000, n).round(2)),
        "l_discount": pa.array(rng.integers(0, 11, n) / 100),
        "l_tax": pa.array(rng.integers(0, 9, n) / 100),
        "l_shipdate": pa.array(rng.integers(8000, 10600, n).astype(np.int32)).cast(pa.date32()),
    })


Q1 = """select l_returnflag, l_linestatus, sum(l_quantity) as sum_qty, sum(l_extendedprice) as sum_base_price,
    sum(l_extendedprice * (1 - l_discount)) as sum_disc_price,
    sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) as sum_charge,
    avg(l_quantity) as avg_qty, avg(l_extendedprice) as avg_price, avg(l_discount) as avg_disc, count(*) as count_order
from lineitem where l_shipdate <= date('1998-12-01', '-90 days')
group by l_returnflag, l_linestatus order by l_returnflag, l_linestatus"""


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("variant", ["q1", "no where", "one key", "keys swapped", "filter"])
def test_q1_shaped(workers, variant):
    sql = Q1
    if variant == "no where":
        sql = sql.replace("where l_shipdate <= date('1998-12-01', '-90 days')", "")
    elif variant == "one key":
        sql = sql.replace("l_returnflag, l_linestatus,", "l_linestatus,").replace(
            "group by l_returnflag, l_linestatus order by l_returnflag, l_linestatus", "group by l_linestatus")
    elif variant == "keys swapped":
        sql = sql.replace("group by l_returnflag, l_linestatus", "group by l_linestatus, l_returnflag")
    elif variant == "filter":
        sql = sql.replace("count(*) as count_order", "count(*) filter (where l_discount > 0.05) as c")
    table = _q1_frame(3000, workers)
    assert fastagg.explain({"lineitem": table}, sql).engine == "native"
    assert_same({"lineitem": table}, sql, workers=workers)


def test_hash_reads_stay_inside_the_values():
    """A short value at the very end of the buffer is read byte by byte (no word past the end)."""
    values = ["a-long-enough-value", "xy", "b", "zzz"]
    for tail in range(1, 8):
        vals = values + ["q" * tail]
        table = pa.table({"t": pa.array(vals * 3), "x": pa.array(np.arange(15.0))})
        assert_same({"df": table}, "SELECT t, count(*), sum(x) FROM df GROUP BY t", workers=2)


@pytest.mark.parametrize("workers", [1, 2])
def test_real_arithmetic_over_many_rows(workers):
    """Arithmetic over more rows than one block of the numpy path: the compiled REAL pass, NULLs and /0 included."""
    n = 70_000
    rng = np.random.default_rng(8)
    x = rng.normal(size=n)
    x[rng.integers(0, n, 500)] = np.nan
    y = rng.integers(-2, 3, n).astype(np.float64) / 4
    y[rng.integers(0, n, 500)] = np.nan
    df = pd.DataFrame({"k": rng.integers(0, 5, n), "x": x, "y": y, "i": rng.integers(-5, 5, n),
                       "t": pd.array(rng.choice(["A", "N", "R"], n), dtype="string[pyarrow]")})
    for e in ["x * (1 - y)", "x / y", "-x + y * 2", "(1 + 2) * x - 7 / 2", "x * y * (1 + y) - x", "-(y) / (x - x)",
              "x + i", "x * 0.5 / (y + 1.5)"]:
        sql = f"SELECT k, t, sum({e}), avg({e}), total({e}), count({e}), min({e}) FROM df GROUP BY k, t"
        assert_same(df, sql, workers=workers)
        assert_same(df, f"SELECT sum({e}), max({e}) FROM df WHERE x > -1", workers=workers)


SHORT = st.text(alphabet=CHARS, max_size=7).filter(lambda v: len(v.encode()) <= 7)


@EXAMPLES
@given(st.lists(st.tuples(st.one_of(st.none(), SHORT), st.one_of(st.none(), SHORT), st.integers(-2, 2)), max_size=150),
       st.booleans(), st.sampled_from([1, 2, 3]))
def test_several_short_text_keys(rows, one_long, workers):
    """Text keys of under eight bytes hashed together (one pass); a longer value anywhere falls back per key."""
    a = [r[0] for r in rows]
    b = [r[1] for r in rows]
    if one_long and rows:
        b[len(b) // 2] = "a value of many bytes"
    x = np.arange(len(rows), dtype=np.float64)
    table = pa.table({"a": pa.array(a, pa.string()), "b": pa.array(b, pa.large_string()),
                      "k": pa.array([r[2] for r in rows], pa.int64()), "x": pa.array(x)})
    for sql in ["SELECT a, b, count(*), sum(x) FROM df GROUP BY a, b",
                "SELECT b, a, count(*) FROM df GROUP BY b, a",
                "SELECT a, b, a, count(*) FROM df GROUP BY a, b, a",
                "SELECT a, b, sum(x) FROM df WHERE x > 3 GROUP BY a, b"]:
        assert_same({"df": table}, sql, workers=workers)
    df = pd.DataFrame({"a": pd.array(a, dtype="string[pyarrow]"), "b": pd.array(b, dtype="string[pyarrow]"), "x": x})
    assert_same(df, "SELECT a, b, count(*), total(x) FROM df GROUP BY a, b", workers=workers)


@pytest.mark.parametrize("workers", [1, 3])
def test_long_values_sharing_sixteen_bytes(workers):
    """Distinct values are sorted by their first 16 bytes, then byte by byte where those tie."""
    stem = "0123456789abcdef"
    values = [stem, stem + "\x00", stem + "a", stem + "\x00a", stem + "b" * 30, stem[:15], stem[:15] + "\x00",
              stem[:15] + "\x00\x00", stem + "\u00e9", stem + "a\x00", "", "\x00", stem + "b" * 29 + "c", None]
    rng = np.random.default_rng(4)
    picks = [values[i] for i in rng.integers(0, len(values), 400)]
    df = pd.DataFrame({"t": pd.array(picks, dtype="string[pyarrow]"), "x": np.arange(400.0)})
    assert_same(df, "SELECT t, count(*), sum(x) FROM df GROUP BY t", workers=workers)
    assert_same({"df": pa.table({"t": pa.array(picks, pa.string()), "x": pa.array(np.arange(400.0))})},
                "SELECT t, count(*) FROM df GROUP BY t", workers=workers)
