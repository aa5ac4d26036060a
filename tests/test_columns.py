"""fastagg.table.columns: what each column kind becomes, and what is refused, at registration.

Defects of issue 11 (big-endian numpy, too many columns, NUL in names, bad
object columns) and the Arrow kinds of issue 12 item 4 ("Parquet as it
comes"), checked against DuckDB over the same Arrow table.
"""

from __future__ import annotations

import decimal
import math
import shutil
import sqlite3
import subprocess

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import fastagg
from fastagg.table import frame_columns, register_frame

duckdb = pytest.importorskip("duckdb")


def _query(data, sql, **kw):
    return fastagg.query(data, sql, output="arrow", workers=1, **kw).to_pylist()


# --------------------------------------------------------------------------
# numpy byte order


@pytest.mark.parametrize("dtype", [">i8", ">i4", ">i2", ">u4", ">u8", ">f8", ">f4"])
def test_big_endian_numpy_columns_read_as_numbers(dtype):
    frame = pd.DataFrame({"x": np.array([1, 2, 3], dtype=dtype)})
    assert frame["x"].dtype.byteorder == ">"  # pandas keeps the byte order
    rows = _query(frame, "SELECT sum(x) AS s, min(x) AS lo, max(x) AS hi FROM df")
    assert rows == [{"s": 6, "lo": 1, "hi": 3}]


def test_big_endian_datetimes_and_masked_values():
    frame = pd.DataFrame({"t": np.array(["2024-01-02T03:04:05"], dtype="datetime64[s]").astype(">M8[s]")})
    assert _query(frame, "SELECT t FROM df") == [{"t": "2024-01-02 03:04:05"}]
    con = sqlite3.connect(":memory:")
    values = np.array([7, 8], dtype=">i8")
    with register_frame(con, "t", pd.DataFrame({"x": values})):
        values[0] = 100  # converted once at registration: not a view of this buffer
        assert con.execute("SELECT sum(x) FROM t").fetchone() == (15,)
    con.close()


# --------------------------------------------------------------------------
# Schemas SQLite cannot declare: refused at register time, not at first use


def test_more_than_2000_columns_refused_at_register():
    con = sqlite3.connect(":memory:")
    wide = pd.DataFrame(np.zeros((2, 2001)))
    with pytest.raises(fastagg.Error, match=r"2001 columns .* at most 2000 .*SQLITE_LIMIT_COLUMN"):
        register_frame(con, "wide", wide)
    with register_frame(con, "ok", pd.DataFrame(np.zeros((2, 2000)))):
        assert con.execute("SELECT count(*) FROM ok").fetchone() == (2,)
    con.setlimit(sqlite3.SQLITE_LIMIT_COLUMN, 10)  # the connection's own limit counts
    with pytest.raises(fastagg.Error, match=r"11 columns .* at most 10"):
        register_frame(con, "eleven", pd.DataFrame(np.zeros((1, 11))))
    con.close()
    with fastagg.connect() as db, pytest.raises(fastagg.Error, match="2001 columns"):
        db.register("wide", wide)


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"a\0b": [1]}),
        pa.table({"a\0b": [1]}),
        pd.DataFrame([[1]], columns=pd.Index(["a\ud800"], dtype=object)),
    ],
    ids=["pandas-nul", "arrow-nul", "pandas-surrogate"],
)
def test_column_name_sqlite_cannot_declare_refused_at_register(frame):
    con = sqlite3.connect(":memory:")
    with pytest.raises(fastagg.Error, match="column name .* rename it"):
        register_frame(con, "t", frame)
    con.close()


# --------------------------------------------------------------------------
# Object columns: bad values are UnsupportedDtypeError, never a raw exception


@pytest.mark.parametrize(
    "values, match",
    [
        ([2**64 - 1], "outside the int64 range"),
        ([1, 2**64 - 1], "outside the int64 range"),
        ([-(2**70)], "outside the int64 range"),
        (["a", "\ud800"], "not valid Unicode"),
        (["a", b"b"], "mix bytes"),
        ([b"b", "a", None], "mix bytes"),
        ([b"b", 1], "one Arrow type"),
    ],
)
def test_bad_object_columns_raise_unsupported_dtype(values, match):
    frame = pd.DataFrame({"o": pd.Series(values, dtype=object)})
    with pytest.raises(fastagg.UnsupportedDtypeError, match=rf"column 'o' .*{match}"):
        _query(frame, "SELECT count(*) FROM df")


def test_object_column_of_bytes_is_still_blob():
    frame = pd.DataFrame({"o": pd.Series([b"a", None, b"\xff"], dtype=object)})
    assert _query(frame, "SELECT o, typeof(o) AS t FROM df") == [
        {"o": b"a", "t": "blob"}, {"o": None, "t": "null"}, {"o": b"\xff", "t": "blob"},
    ]


# --------------------------------------------------------------------------
# Parquet as it comes: decimals, view and large layouts, several chunks


def _arrow_kinds() -> pa.Table:
    """One column of every Arrow kind TPC-H-like Parquet brings, in two chunks."""
    D = decimal.Decimal
    money = [D("1.50"), D("-2.25"), None, D("99999999999999.99"), D("0.10")]
    text = ["a", "", None, "ünïcode", "long text over twelve bytes"]
    blobs = [b"\x00", b"", None, b"\xff" * 20, b"z"]
    columns = {
        "d128": pa.array(money, pa.decimal128(16, 2)),
        "d256": pa.array(money, pa.decimal256(40, 2)),
        "d0": pa.array([D(1), D(-7), None, D(10**17), D(0)], pa.decimal128(18, 0)),
        "sv": pa.array(text, pa.string_view()),
        "bv": pa.array(blobs, pa.binary_view()),
        "ls": pa.array(text, pa.large_string()),
        "lb": pa.array(blobs, pa.large_binary()),
        "i": pa.array([1, 2, 3, None, 5], pa.int32()),
        "dict": pa.array(["x", "y", None, "x", "z"]).dictionary_encode(),
    }
    one = pa.table(columns)
    # Two chunks per column, with different dictionaries (as two row groups give).
    return pa.Table.from_batches(one.slice(0, 2).to_batches() + one.slice(2).combine_chunks().to_batches())


def _plain(value):
    return float(value) if isinstance(value, decimal.Decimal) else value


def _duck_rows(table, sql):
    # DuckDB reads no decimal256 from Arrow: give it the same values as decimal128.
    fields = [pa.field(f.name, pa.decimal128(38, f.type.scale)) if pa.types.is_decimal256(f.type) else f
              for f in table.schema]
    table = table.cast(pa.schema(fields))
    con = duckdb.connect()
    con.register("df", table)
    result = con.execute(sql)
    names = [d[0] for d in result.description]
    rows = [dict(zip(names, map(_plain, row))) for row in result.fetchall()]
    con.close()
    return rows


def test_every_arrow_kind_registers_and_matches_duckdb():
    table = _arrow_kinds()
    assert all(table.column(i).num_chunks == 2 for i in range(table.num_columns))
    sql = "SELECT * FROM df"
    assert _query(table, sql) == _duck_rows(table, sql)
    decls = {c.name: c.decl for c in frame_columns(table)}
    assert decls["d128"] == decls["d256"] == decls["d0"] == "REAL"
    assert decls["sv"] == decls["ls"] == "TEXT" and decls["bv"] == decls["lb"] == "BLOB"
    sums = "SELECT sum(d128) AS a, sum(d256) AS b, sum(d0) AS c, count(sv) AS n FROM df"
    (ours,), (theirs,) = _query(table, sums), _duck_rows(table, sums)
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert math.isclose(ours[key], theirs[key], rel_tol=1e-12), key
    where = "SELECT count(*) AS n FROM df WHERE sv = 'a' OR ls = '' OR d128 > 1"
    assert _query(table, where) == _duck_rows(table, where)


@pytest.mark.parametrize(
    "typ",
    [pa.decimal128(15, 2), pa.decimal128(12, 4), pa.decimal128(15, 0), pa.decimal128(5, -3),
     pa.decimal128(15, 15), pa.decimal128(18, 2), pa.decimal256(15, 2), pa.decimal256(40, 10),
     pa.decimal64(15, 2), pa.decimal32(9, 3)],
    ids=str,
)
def test_decimals_become_the_nearest_double(typ):
    """Each value is float(Decimal): correctly rounded (Arrow's own cast is not), slices too."""
    import random

    rng = random.Random(typ.precision * 100 + typ.scale)
    values = [None if rng.random() < 0.1 else
              decimal.Decimal(rng.randint(-(10**typ.precision) + 1, 10**typ.precision - 1)).scaleb(-typ.scale)
              for _ in range(5000)]
    array = pa.array(values, typ)
    for part in (array, array.slice(7, 3000)):
        rows = _query(pa.table({"d": part}), "SELECT d FROM df")
        assert [r["d"] for r in rows] == [None if v is None else float(v) for v in part.to_pylist()]


def test_decimals_as_exact_text():
    table = _arrow_kinds().select(["d128", "d256", "d0"])
    rows = _query(table, "SELECT d128, d256, d0, typeof(d128) AS t FROM df", decimals="text")
    assert [r["d128"] for r in rows] == ["1.50", "-2.25", None, "99999999999999.99", "0.10"]
    assert [r["d256"] for r in rows] == [r["d128"] for r in rows]
    assert [r["d0"] for r in rows] == ["1", "-7", None, "100000000000000000", "0"]
    assert rows[0]["t"] == "text"
    duck = _duck_rows(table, "SELECT CAST(d128 AS VARCHAR) AS d128 FROM df")
    assert [r["d128"] for r in rows] == [d["d128"] for d in duck]
    with fastagg.connect() as db:
        db.register("t", table, decimals="text")
        assert db.query("SELECT typeof(d0) AS t FROM t LIMIT 1", output="arrow").to_pylist() == [{"t": "text"}]
        with pytest.raises(fastagg.Error, match="decimals must be one of 'real', 'text'"):
            db.register("u", table, decimals="exact")


def test_conversions_happen_once_at_registration():
    """Chunked, view and decimal columns are converted by frame_columns, at registration only."""
    import fastagg.table.registration as registration

    calls = []
    original = registration.frame_columns

    table = _arrow_kinds()

    def counting(frame, **kw):
        if frame is table:  # not the native engine's grouped results, registered per query
            calls.append(1)
        return original(frame, **kw)

    with fastagg.connect() as db:
        registration.frame_columns = counting
        try:
            db.register("t", table)
            for _ in range(3):
                db.query("SELECT count(sv), sum(d128) FROM t", output="arrow", workers=1)
        finally:
            registration.frame_columns = original
    assert len(calls) == 1


def test_a_pyarrow_table_is_converted_once_across_queries(monkeypatch):
    """fastagg.query registers its frames per call: an Arrow table's copies are made once, kept with it."""
    import gc

    import fastagg.table.columns as columns

    copies = []
    normalise, one_chunk = columns._normalise_arrow, columns._one_chunk

    def counting_normalise(name, array, decimals="real"):
        if columns._converts(array.type):
            copies.append(name)
        return normalise(name, array, decimals)

    def counting_one_chunk(array):
        if isinstance(array, pa.ChunkedArray) and array.num_chunks > 1:
            copies.append(array.type)
        return one_chunk(array)

    monkeypatch.setattr(columns, "_normalise_arrow", counting_normalise)
    monkeypatch.setattr(columns, "_one_chunk", counting_one_chunk)
    table = _arrow_kinds()
    first = _query(table, "SELECT sum(d128) AS s, count(sv) AS n FROM df")
    made = len(copies)
    assert made >= table.num_columns  # every column has two chunks
    for _ in range(3):
        assert _query(table, "SELECT sum(d128) AS s, count(sv) AS n FROM df") == first
    assert len(copies) == made
    _query(table, "SELECT d128 FROM df", decimals="text")  # another option: its own conversion
    assert len(copies) > made
    key = id(table)
    assert key in columns._converted
    del table
    gc.collect()
    assert key not in columns._converted  # dropped with the table


@pytest.mark.skipif(shutil.which("tpchgen-cli") is None, reason="tpchgen-cli is not installed")
def test_tpch_parquet_registers_as_it_comes(tmp_path):
    import pyarrow.parquet as pq

    subprocess.run(["tpchgen-cli", "parquet", "-s", "0.01", "--output-dir", str(tmp_path)],
                   check=True, capture_output=True, timeout=300)
    tables = {p.stem: pq.read_table(p) for p in sorted(tmp_path.glob("*.parquet"))}
    assert {"lineitem", "orders", "nation"} <= tables.keys()
    types = {str(f.type) for t in tables.values() for f in t.schema}
    assert any(t.startswith("decimal") for t in types)
    for name in ("nation", "region", "supplier"):
        sql = "SELECT * FROM df"
        assert _query(tables[name], sql) == _duck_rows(tables[name], sql), name
    sql = "SELECT sum(l_extendedprice * (1 - l_discount)) AS s, count(l_comment) AS n FROM df"
    (ours,), (theirs,) = _query(tables["lineitem"], sql), _duck_rows(tables["lineitem"], sql)
    assert ours["n"] == theirs["n"]
    assert math.isclose(ours["s"], theirs["s"], rel_tol=1e-9)
