"""The core battery over every input kind, against a real SQLite table.

Each statement runs twice: through fastagg over the data as one input kind
(the ``frame_kind`` parameter of conftest.py), and on plain ``sqlite3`` over
the same data written by ``DataFrame.to_sql`` into an ordinary table, with
the custom aggregates run by ``sqlite3``'s own Python callbacks
(:mod:`reference`). Rows must match in value and SQL type, and in order
where the statement's ORDER BY fixes it (a plain ``SELECT *`` keeps the
frame's row order too).

Narrow the kinds with ``--frame-kinds=pandas,pyarrow[chunked]``.
"""

from __future__ import annotations

import re
import sqlite3

import numpy as np
import pyarrow as pa
import pytest

import fastagg
from aggs import MergeableWelfordVar, NullCount, WelfordVar, WinAvg, assert_rows_match, table_rows
from reference import register_python


@fastagg.aggregate(name="fvar")
class FVar(WelfordVar):
    """Sample variance, the custom aggregate of the battery."""


@fastagg.aggregate(name="mvar")
class MVar(MergeableWelfordVar):
    """Sample variance with a merge: a statement using it can be split across workers."""


AGGREGATES = [FVar, WinAvg, NullCount]


def make_table(n: int = 150, seed: int = 20) -> pa.Table:
    """Integers, floats, text and bools, each with NULLs, and a unique ``id``."""
    rng = np.random.default_rng(seed)

    def with_nulls(values, rate=0.15):
        return [None if rng.random() < rate else v for v in values]

    ints = with_nulls(rng.integers(-50, 50, n).tolist())
    ints[:4] = [7, 7, -(2**40), 2**53 + 1]  # a repeated key, values past float precision
    floats = with_nulls(np.round(rng.normal(0, 10, n), 3).tolist())
    # NaN is a value in Arrow but NULL for pandas, to_sql and SQLite alike.
    floats[:6] = [0.0, -0.0, 1e15, 1e-300, 2.5, float("nan")]
    words = ["a", "b", "B", "", "cé", "ü", "a b", "zz", "10", "9", "😀", "a\x00b", "long " * 60]
    text = with_nulls([words[j] for j in rng.integers(0, len(words), n)])
    text[:2] = ["a", None]
    bools = with_nulls(rng.random(n) < 0.5)
    return pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "k": pa.array(rng.integers(0, 5, n), pa.int64()),
            "i": pa.array(ints, pa.int64()),
            "x": pa.array(floats, pa.float64()),
            "s": pa.array(text, pa.string()),
            "b": pa.array([None if v is None else bool(v) for v in bools], pa.bool_()),
            # Columns without NULLs keep their numpy dtype in every pandas kind.
            "y": pa.array(rng.normal(size=n), pa.float64()),
            "flag": pa.array(rng.random(n) < 0.3, pa.bool_()),
        }
    )


TABLE = make_table()
# The second frame of the joins: k 4 has no match, k 5 no partner in df.
DIM = pa.table(
    {
        "k": pa.array([0, 1, 2, 3, 5], pa.int64()),
        "name": pa.array(["zero", "one", "two", "three", "five"], pa.string()),
        "s": pa.array(["a", "b", None, "cé", "x"], pa.string()),
    }
)


QUERIES = {
    # Scans
    "select_star": "SELECT * FROM df",
    "select_columns_reordered": "SELECT s, b, id, x FROM df",
    "types": "SELECT id, typeof(i), typeof(x), typeof(s), typeof(b) FROM df",
    "expressions": "SELECT id, i + 1, x * 2, s || '!', length(s), b + 0 FROM df WHERE id % 7 = 0",
    "empty": "SELECT * FROM df WHERE 0",
    "distinct": "SELECT DISTINCT s FROM df ORDER BY s",
    # WHERE on int
    "where_int_gt": "SELECT id, i FROM df WHERE i > 5",
    "where_int_eq": "SELECT id FROM df WHERE i = 7",
    "where_int_le_neg": "SELECT id FROM df WHERE i <= -10",
    "where_int_between": "SELECT id FROM df WHERE i BETWEEN -10 AND 10",
    "where_int_in": "SELECT id FROM df WHERE i IN (1, 2, 3, 7, -5)",
    "where_int_ne": "SELECT id FROM df WHERE i <> 7",
    "where_int_is_null": "SELECT id FROM df WHERE i IS NULL",
    "where_int_is_not_null": "SELECT id FROM df WHERE i IS NOT NULL AND k = 2",
    "where_int_real_constant": "SELECT id FROM df WHERE i > 5.5 OR i = -3.0",
    "where_int_text_constant": "SELECT id FROM df WHERE i = '7'",
    "where_int_big": "SELECT id FROM df WHERE i > 2147483648",
    "where_rowid_key": "SELECT id FROM df WHERE id >= 140",
    "where_int_real_equal": "SELECT id FROM df WHERE i = 7.0 OR i < -49.5",
    "where_int_is": "SELECT id FROM df WHERE i IS 7",
    "where_int_is_not": "SELECT id FROM df WHERE i IS NOT 7",
    "where_int_eq_null": "SELECT id FROM df WHERE i = NULL",
    "where_int_null_subquery": "SELECT id FROM df WHERE i > (SELECT NULL)",
    "where_int_past_float": "SELECT id FROM df WHERE i = 9007199254740993",
    # WHERE on float
    "where_float_lt": "SELECT id, x FROM df WHERE x < 0.5",
    "where_float_zero": "SELECT id FROM df WHERE x = 0",
    "where_float_ge_int": "SELECT id FROM df WHERE x >= 3",
    "where_float_range": "SELECT id FROM df WHERE x > -5 AND x <= 5.25",
    "where_float_is_null": "SELECT id FROM df WHERE x IS NULL",
    "where_float_or_null": "SELECT id FROM df WHERE x IS NULL OR x > 1",
    "where_float_big_int": "SELECT id FROM df WHERE x < 9007199254740993 AND x > 999999999999999",
    "where_float_no_nulls": "SELECT id FROM df WHERE y > 0.5",
    # WHERE on text
    "where_text_eq": "SELECT id FROM df WHERE s = 'a'",
    "where_text_gt": "SELECT id, s FROM df WHERE s > 'b'",
    "where_text_range": "SELECT id FROM df WHERE s >= '' AND s < 'b'",
    "where_text_like": "SELECT id FROM df WHERE s LIKE 'a%'",
    "where_text_glob": "SELECT id FROM df WHERE s GLOB 'a*'",
    "where_text_in": "SELECT id FROM df WHERE s IN ('a', 'cé', '')",
    "where_text_int_constant": "SELECT id FROM df WHERE s = 10",
    "where_text_is_null": "SELECT id FROM df WHERE s IS NULL",
    "where_text_nocase": "SELECT id FROM df WHERE s = 'b' COLLATE NOCASE",
    "where_text_lt_int": "SELECT id FROM df WHERE s < 10",
    "where_text_is_not": "SELECT id FROM df WHERE s IS NOT 'a'",
    "where_text_non_bmp": "SELECT id FROM df WHERE s >= '😀'",
    "where_text_nul": "SELECT id, length(s), hex(s) FROM df WHERE s LIKE 'a%b'",
    # WHERE on bool
    "where_bool": "SELECT id FROM df WHERE b",
    "where_bool_false": "SELECT id FROM df WHERE b = 0",
    "where_bool_not": "SELECT id FROM df WHERE NOT b",
    "where_bool_is_null": "SELECT id FROM df WHERE b IS NULL",
    "where_bool_no_nulls": "SELECT id FROM df WHERE flag AND b IS NOT 1",
    "where_mixed": "SELECT id FROM df WHERE (k = 1 AND x > 0) OR s = 'b' OR b IS NULL",
    "where_two_columns": "SELECT id FROM df WHERE x > i",
    # GROUP BY
    "group_builtin": "SELECT k, count(*), count(i), sum(i), total(x), avg(x), min(s), max(s), sum(b) "
    "FROM df GROUP BY k ORDER BY k",
    "group_custom": "SELECT k, fvar(x), fvar(i), nullcount(x), nullcount(s) FROM df GROUP BY k ORDER BY k",
    "group_text_key": "SELECT s, count(*), fvar(x) FROM df GROUP BY s ORDER BY s",
    "group_bool_key": "SELECT b, count(*), avg(i), fvar(x) FROM df GROUP BY b ORDER BY b",
    "group_two_keys_having": "SELECT k, b, count(*), fvar(x) FROM df GROUP BY k, b HAVING count(*) > 5 ORDER BY k, b",
    "group_float_key": "SELECT x, count(*) FROM df GROUP BY x ORDER BY x",
    "group_distinct": "SELECT k, count(DISTINCT s), avg(DISTINCT i), sum(flag) FROM df GROUP BY k ORDER BY k",
    "group_filter": "SELECT k, fvar(x) FILTER (WHERE b), count(*) FILTER (WHERE s IS NULL) FROM df "
    "GROUP BY k ORDER BY k",
    "aggregate_whole_table": "SELECT count(*), sum(i), min(x), max(x), fvar(x), group_concat(s, '|') FROM "
    "(SELECT * FROM df ORDER BY id)",
    # ORDER BY with NULLs
    "order_int": "SELECT id, i FROM df ORDER BY i, id",
    "order_int_desc_nulls_first": "SELECT id, i FROM df ORDER BY i DESC NULLS FIRST, id",
    "order_float_desc": "SELECT id, x FROM df ORDER BY x DESC, id",
    "order_text_nulls_last": "SELECT id, s FROM df ORDER BY s NULLS LAST, id DESC",
    "order_text_nocase": "SELECT id, s FROM df ORDER BY s COLLATE NOCASE, id",
    "order_bool": "SELECT id, b FROM df ORDER BY b, id",
    "order_limit_offset": "SELECT id, x FROM df ORDER BY x, id LIMIT 7 OFFSET 3",
    "order_by_key_desc": "SELECT id FROM df ORDER BY id DESC",
    "order_mixed_directions": "SELECT k, s, x, id FROM df ORDER BY k DESC, s, x DESC NULLS LAST, id",
    "order_expression": "SELECT id FROM df ORDER BY abs(i) DESC NULLS LAST, length(s), id",
    # Joins of two frames
    "join_int": "SELECT df.id, dim.name FROM df JOIN dim ON df.k = dim.k ORDER BY df.id",
    "join_text_left": "SELECT df.id, dim.name FROM df LEFT JOIN dim ON df.s = dim.s ORDER BY df.id",
    "join_grouped": "SELECT dim.name, count(*), fvar(df.x) FROM df JOIN dim USING (k) GROUP BY dim.name "
    "ORDER BY dim.name",
    "self_join": "SELECT a.id, c.id FROM df AS a JOIN df AS c ON a.i = c.i AND a.id < c.id ORDER BY 1, 2",
    "semi_join": "SELECT id FROM df WHERE k IN (SELECT k FROM dim WHERE name > 'o') ORDER BY id",
    # Window aggregates
    "window_builtin": "SELECT id, sum(i) OVER (PARTITION BY k ORDER BY id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) "
    "FROM df ORDER BY id",
    "window_custom": "SELECT id, winavg(x) OVER (PARTITION BY k ORDER BY id ROWS BETWEEN 3 PRECEDING AND 1 FOLLOWING) "
    "FROM df ORDER BY id",
    "window_custom_range": "SELECT id, winavg(x) OVER (ORDER BY k RANGE BETWEEN 1 PRECEDING AND CURRENT ROW) "
    "FROM df ORDER BY id",
    "window_ranks": "SELECT id, row_number() OVER (PARTITION BY s ORDER BY x, id), rank() OVER (ORDER BY b) "
    "FROM df ORDER BY id",
    # Counts of NULLs
    "null_counts": "SELECT count(*) - count(i), sum(i IS NULL), sum(x IS NULL), sum(s IS NULL), sum(b IS NULL), "
    "nullcount(x), nullcount(i), nullcount(b) FROM df",
}


# Cases that show a fastagg bug: strict, so the fix is noticed.
KNOWN_BUGS: dict[str, str] = {}


@pytest.fixture(scope="module")
def session(frame_kind):
    """A fastagg session with df and dim registered as *frame_kind*."""
    with fastagg.connect() as db:
        db.register("df", frame_kind(TABLE))
        db.register("dim", frame_kind(DIM))
        yield db


@pytest.fixture(scope="module")
def reference(frame_kind):
    """Plain sqlite3 with the same data in real tables, written by ``to_sql``."""
    con = sqlite3.connect(":memory:")
    frame_kind.reference(TABLE).to_sql("df", con, index=False)
    frame_kind.reference(DIM).to_sql("dim", con, index=False)
    for cls in AGGREGATES:
        register_python(con, cls)
    yield con
    con.close()


def _cases():
    for name, sql in QUERIES.items():
        marks = [pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[name])] if name in KNOWN_BUGS else []
        yield pytest.param(sql, id=name, marks=marks)


def _is_ordered(sql: str) -> bool:
    """Whether the statement's own ORDER BY fixes its row order (not one inside OVER or a subquery)."""
    outer = sql
    while True:
        inner = re.sub(r"\([^()]*\)", "", outer)
        if inner == outer:
            return "ORDER BY" in outer.upper()
        outer = inner


def _sort_key(row):
    return [(v is None, type(v).__name__, v if v is not None else 0) for v in row]


@pytest.mark.parametrize("sql", list(_cases()))
def test_battery(session, reference, sql):
    got = table_rows(session.query(sql, AGGREGATES, output="arrow"))
    want = reference.execute(sql).fetchall()
    if not _is_ordered(sql) and not sql.startswith("SELECT * FROM df"):
        # SQL leaves this order open: the virtual table may answer from an index.
        got, want = sorted(got, key=_sort_key), sorted(want, key=_sort_key)
    assert_rows_match(got, want, what=sql)


def test_params(session, reference):
    sql = "SELECT id FROM df WHERE i > ? AND s <> ? ORDER BY id"
    got = table_rows(session.query(sql, params=(3, "a"), output="arrow"))
    assert_rows_match(got, reference.execute(sql, (3, "a")).fetchall(), what=sql)


def test_one_shot_query_of_a_dict(frame_kind, reference):
    # fastagg.query builds and closes its own session per call.
    sql = QUERIES["join_grouped"]
    out = fastagg.query({"df": frame_kind(TABLE), "dim": frame_kind(DIM)}, sql, AGGREGATES, output="arrow")
    assert_rows_match(table_rows(out), reference.execute(sql).fetchall(), what=sql)


def test_bulk_load_matches_the_view(frame_kind, session):
    # db.load copies into a real table; it must read every kind as register does.
    session.load("loaded", frame_kind(TABLE))
    try:
        for sql in (QUERIES["select_star"], QUERIES["types"], QUERIES["group_custom"]):
            want = table_rows(session.query(sql, AGGREGATES, output="arrow"))
            got = table_rows(session.query(sql.replace("FROM df", "FROM loaded"), AGGREGATES, output="arrow"))
            assert_rows_match(got, want, what=sql)
    finally:
        session.query("DROP TABLE loaded")


def test_the_kinds_differ_as_intended():
    from conftest import FRAME_KINDS

    built = {kind.name: kind(TABLE) for kind in FRAME_KINDS if kind.name != "polars"}
    assert built["pyarrow"].column("i").num_chunks == 1
    assert built["pyarrow[chunked]"].column("i").num_chunks > 2
    assert str(built["pandas"]["i"].dtype) == "float64"  # ints with NULLs, as pandas holds them
    assert str(built["pandas[object]"]["s"].dtype) == "object"
    assert built["pandas[view]"]["x"].to_numpy().strides[0] > 8  # a strided view, not a copy
    assert str(built["pandas[nullable]"]["i"].dtype) == "Int64"
    assert str(built["pandas[pyarrow]"]["i"].dtype) == "int64[pyarrow]"
    assert not isinstance(built["arrow_c_stream"], pa.Table)
    assert [name for name in dir(built["arrow_c_stream"]) if name.startswith("__arrow")] == ["__arrow_c_stream__"]


SPLIT = ["group_builtin", "group_text_key", "group_bool_key", "null_counts"]


@pytest.mark.parametrize("name", SPLIT)
def test_parallel_split(frame_kind, reference, name):
    # workers=2 splits the scan even for a small frame; the merge must give the same rows.
    sql = QUERIES[name].replace("fvar(", "mvar(")
    out = fastagg.query({"df": frame_kind(TABLE)}, sql, [MVar, NullCount], output="arrow", workers=2)
    register_python(reference, MVar)
    assert_rows_match(table_rows(out), reference.execute(sql).fetchall(), rel=1e-9, what=sql)


EMPTY_SQL = [
    "SELECT * FROM df",
    "SELECT count(*), count(i), sum(i), total(x), max(s), fvar(x), nullcount(x) FROM df",
    "SELECT k, fvar(x) FROM df GROUP BY k",
    "SELECT id FROM df WHERE i > 3 ORDER BY s",
]


@pytest.mark.parametrize("sql", EMPTY_SQL)
def test_empty_frame(frame_kind, sql):
    empty = pa.Table.from_batches([], schema=TABLE.schema)  # no chunk at all
    con = sqlite3.connect(":memory:")
    frame_kind.reference(empty).to_sql("df", con, index=False)
    for cls in AGGREGATES:
        register_python(con, cls)
    want = con.execute(sql).fetchall()
    con.close()
    if "fvar" in sql and "GROUP BY" not in sql:
        # sqlite3's Python callbacks return NULL for no rows without calling
        # finalize; fastagg calls finalize, as SQLite's own count does (DESIGN).
        want = [want[0][:-1] + (0,)]
    got = table_rows(fastagg.query(frame_kind(empty), sql, AGGREGATES, output="arrow"))
    assert_rows_match(got, want, what=sql)


def test_all_null_columns(frame_kind):
    n = 6
    table = pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "i": pa.nulls(n, pa.int64()),
            "x": pa.nulls(n, pa.float64()),
            "s": pa.nulls(n, pa.string()),
            "b": pa.nulls(n, pa.bool_()),
        }
    )
    sql = (
        "SELECT count(i), count(x), count(s), count(b), sum(i), max(s), nullcount(x), nullcount(i), "
        "(SELECT count(*) FROM df WHERE i IS NULL AND x IS NULL AND s IS NULL AND b IS NULL) FROM df"
    )
    con = sqlite3.connect(":memory:")
    frame_kind.reference(table).to_sql("df", con, index=False)
    register_python(con, NullCount)
    want = con.execute(sql).fetchall()
    con.close()
    got = table_rows(fastagg.query(frame_kind(table), sql, [NullCount], output="arrow"))
    assert_rows_match(got, want, what=sql)
