"""The one output converter: Arrow -> arrow / pandas (pd.ArrowDtype) / polars, from every front end."""

from __future__ import annotations

import sys

import pandas as pd
import pyarrow as pa
import pytest

import fastagg
from fastagg import output

FRAME = pd.DataFrame({"g": [1, 1, 2], "x": [1.0, None, 4.0], "s": ["a", "b", None]})
SQL = "SELECT g, sum(x) AS sx, max(s) AS ms, median(x) AS mx FROM df GROUP BY g ORDER BY g"


def test_pandas_output_is_arrow_backed():
    out = fastagg.query(FRAME, SQL)
    assert all(isinstance(t, pd.ArrowDtype) for t in out.dtypes)
    assert out["sx"].tolist() == [1.0, 4.0]


def test_polars_output_shares_the_arrow_buffers():
    pl = pytest.importorskip("polars")
    table = fastagg.query(FRAME, SQL, output="arrow")
    out = fastagg.query(FRAME, SQL, output="polars")
    assert isinstance(out, pl.DataFrame)
    assert out.columns == ["g", "sx", "ms", "mx"]
    assert out.to_arrow().to_pylist() == table.to_pylist()
    assert out.schema["g"] == pl.Int64 and out.schema["ms"] in (pl.String, pl.Utf8)
    # Zero copy: polars' column points at the Arrow buffer it was given.
    big = pa.table({"x": pa.array(range(100_000), pa.int64())})
    frame = output.convert(big, "polars")
    assert frame["x"].to_arrow().buffers()[1].address == big.column("x").chunk(0).buffers()[1].address


def test_polars_output_from_a_session_and_dask():
    pl = pytest.importorskip("polars")
    with fastagg.connect() as db:
        db.register("df", FRAME)
        assert isinstance(db.query(SQL, output="polars"), pl.DataFrame)
    dd = pytest.importorskip("dask.dataframe")
    from fastagg import dask as fdask

    out = fdask.query(dd.from_pandas(FRAME, npartitions=2), "SELECT g, count(*) AS n FROM df GROUP BY g ORDER BY g",
                             output="polars")
    assert isinstance(out, pl.DataFrame) and out["n"].to_list() == [2, 1]


def test_polars_missing_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "polars", None)  # import polars raises ImportError
    with pytest.raises(fastagg.Error, match="pip install polars"):
        fastagg.query(FRAME, "SELECT 1 AS one", output="polars")


def test_arrow_output_is_the_table_itself():
    table = pa.table({"x": [1, 2]})
    assert output.convert(table, "arrow") is table
    with pytest.raises(fastagg.Error, match="output must be one of"):
        output.convert(table, "excel")
