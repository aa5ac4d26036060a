"""The front end: every input kind, every output kind, sessions, accessor, errors."""

from __future__ import annotations

import gc
import sqlite3

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import fastagg


@fastagg.aggregate(name="fvar")
class FVar:
    """Welford variance (sample)."""

    n: np.int64
    mean: np.float64
    m2: np.float64

    def step(self, x: float):
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def finalize(self) -> float | None:
        return self.m2 / (self.n - 1) if self.n > 1 else None


@pytest.fixture
def frame():
    rng = np.random.default_rng(3)
    n = 5_000
    return pd.DataFrame(
        {
            "g": rng.integers(0, 20, n),
            "x": rng.normal(size=n),
            "s": rng.choice(["a", "b", "cé"], n),
        }
    )


def expected_var(frame):
    return frame.groupby("g")["x"].var().sort_index()


SQL = "SELECT g, fvar(x) AS v FROM df GROUP BY g ORDER BY g"


def check(result, frame):
    assert isinstance(result, pd.DataFrame)
    assert all(isinstance(t, pd.ArrowDtype) for t in result.dtypes)
    np.testing.assert_allclose(result["v"].to_numpy(dtype=float), expected_var(frame).to_numpy(), rtol=1e-10)
    assert result["g"].tolist() == sorted(frame["g"].unique().tolist())


def test_query_dataframe(frame):
    before = frame.copy(deep=True)
    check(fastagg.query(frame, SQL, [FVar]), frame)
    pd.testing.assert_frame_equal(frame, before)


def test_query_arrow_table(frame):
    check(fastagg.query(pa.Table.from_pandas(frame), SQL, [FVar]), frame)


def test_query_arrow_stream(frame):
    class Stream:
        def __init__(self, table):
            self.table = table

        def __arrow_c_stream__(self, requested_schema=None):
            return self.table.__arrow_c_stream__(requested_schema)

    check(fastagg.query(Stream(pa.Table.from_pandas(frame)), SQL, [FVar]), frame)


def test_query_dict_of_frames(frame):
    names = pd.DataFrame({"g": range(20), "name": [f"n{i}" for i in range(20)]})
    out = fastagg.query(
        {"df": frame, "names": names},
        "SELECT name, fvar(x) AS v FROM df JOIN names USING (g) GROUP BY g ORDER BY g",
        [FVar],
    )
    assert out["name"].tolist() == [f"n{i}" for i in sorted(frame["g"].unique())]


def test_query_connection_unregisters_aggregates(frame, con):
    frame.to_sql("df", con, index=False)
    check(fastagg.query(con, SQL, [FVar]), frame)
    with pytest.raises(sqlite3.OperationalError, match="no such function: fvar"):
        con.execute(SQL)


def test_query_path(frame, tmp_path):
    path = tmp_path / "data.sqlite"
    with sqlite3.connect(path) as c:
        frame.to_sql("df", c, index=False)
    c.close()
    check(fastagg.query(path, SQL, [FVar]), frame)
    check(fastagg.query(str(path), SQL, [FVar]), frame)


def test_query_missing_path(tmp_path):
    with pytest.raises(fastagg.Error, match="no such SQLite database file"):
        fastagg.query(tmp_path / "nope.sqlite", "SELECT 1")
    assert not (tmp_path / "nope.sqlite").exists()


def test_query_database_session(frame):
    with fastagg.connect() as db:
        db.register("df", frame)
        check(fastagg.query(db, SQL, [FVar]), frame)
        check(db.query(SQL, [FVar]), frame)
        # Given to a query, an aggregate serves that query only.
        with pytest.raises(sqlite3.OperationalError):
            db.query("SELECT fvar(x) FROM df", builtins=False)
        fastagg.register(db, FVar)
        assert db.query("SELECT fvar(x) AS v FROM df")["v"].iloc[0] == pytest.approx(frame["x"].var())


def test_output_arrow(frame):
    table = fastagg.query(frame, SQL, [FVar], output="arrow")
    assert isinstance(table, pa.Table)
    assert table.schema.field("g").type == pa.int64()
    assert table.schema.field("v").type == pa.float64()


def test_unknown_output(frame):
    with pytest.raises(fastagg.Error, match="output must be one of"):
        fastagg.query(frame, SQL, [FVar], output="excel")


def test_params(frame):
    out = fastagg.query(frame, "SELECT count(*) AS n FROM df WHERE g = ? AND x > ?", params=(3, 0.0))
    assert out["n"].iloc[0] == ((frame.g == 3) & (frame.x > 0)).sum()
    out = fastagg.query(frame, "SELECT count(*) AS n FROM df WHERE g = :g", params={"g": 3})
    assert out["n"].iloc[0] == (frame.g == 3).sum()


def test_type_rules():
    out = fastagg.query(
        pd.DataFrame({"a": [1]}),
        "SELECT 1 AS i, 1.5 AS f, 'x' AS t, x'00ff' AS b, NULL AS n "
        "UNION ALL SELECT 2, 2, 'y', x'', NULL",
        output="arrow",
    )
    assert out.schema.field("i").type == pa.int64()
    assert out.schema.field("f").type == pa.float64()
    assert out.schema.field("t").type in (pa.string(), pa.large_string())
    assert out.schema.field("b").type in (pa.binary(), pa.large_binary())
    assert out.column("f").to_pylist() == [1.5, 2.0]
    assert out.column("b").to_pylist() == [b"\x00\xff", b""]
    assert out.column("n").null_count == 2


def test_mixed_column_types():
    out = fastagg.query(
        pd.DataFrame({"a": [1]}),
        "SELECT 1 AS im, 1 AS tm UNION ALL SELECT 2.5, 'text'",
        output="arrow",
    )
    assert out.column("im").to_pylist() == [1.0, 2.5]
    assert out.column("tm").to_pylist() == ["1", "text"]


def test_empty_result_keeps_columns(frame):
    out = fastagg.query(frame, "SELECT g, x, fvar(x) AS v FROM df WHERE g < 0 GROUP BY g", [FVar])
    assert list(out.columns) == ["g", "x", "v"]
    assert len(out) == 0


def test_nulls_from_frame():
    df = pd.DataFrame(
        {
            "i": pd.array([1, None, 3], dtype="Int64"),
            "f": [1.0, np.nan, 3.0],
            "s": ["a", None, "c"],
        }
    )
    out = fastagg.query(df, "SELECT count(i) AS ci, count(f) AS cf, count(s) AS cs, count(*) AS n FROM df")
    assert out.iloc[0].tolist() == [2, 2, 2, 3]


def test_accessor_and_pipe(frame):
    check(frame.sqlagg(SQL, aggregates=[FVar]), frame)
    check(frame.sqlagg(SQL, [FVar]), frame)
    check(frame.pipe(fastagg.query, SQL, aggregates=[FVar]), frame)


def test_sql_finds_frames_in_locals(frame):
    trades = frame

    out = fastagg.sql("SELECT g, fvar(x) AS v FROM trades GROUP BY g ORDER BY g", [FVar])
    check(out, trades)


TRADES_GLOBAL = pd.DataFrame({"px": [1.0, 2.0, 6.0]})


def test_sql_finds_frames_in_globals():
    assert fastagg.sql("SELECT avg(px) AS a FROM trades_global")["a"].tolist() == [3.0]


def test_sql_cte_not_mistaken_for_table():
    px = pd.DataFrame({"v": [1, 2, 3]})
    out = fastagg.sql("WITH px2 AS (SELECT v * 2 AS v FROM px) SELECT sum(v) AS s FROM px2")
    assert out["s"].tolist() == [12]


def test_sql_missing_table():
    with pytest.raises(fastagg.Error, match="no such table: nowhere"):
        fastagg.sql("SELECT * FROM nowhere")


def test_sql_explicit_tables_win():
    t = pd.DataFrame({"v": [1]})
    out = fastagg.sql("SELECT sum(v) AS s FROM t", tables={"t": pd.DataFrame({"v": [5, 5]})})
    assert out["s"].tolist() == [10]


@pytest.mark.parametrize(
    "call, exc, fragment",
    [
        (lambda f: fastagg.query(f, "SELEC 1"), sqlite3.OperationalError, "syntax error"),
        (lambda f: fastagg.query(f, "SELECT * FROM nope"), sqlite3.OperationalError, "no such table"),
        (lambda f: fastagg.query(f, "SELECT nofunc(x) FROM df"), sqlite3.OperationalError, "no such function"),
        (lambda f: fastagg.query(f, "SELECT fvar(x, x) FROM df", [FVar]), sqlite3.OperationalError, "wrong number of arguments"),
        (lambda f: fastagg.query(f, "SELECT 1", [object]), fastagg.CompileError, "not a fastagg aggregate"),
        (lambda f: fastagg.query(42, "SELECT 1"), TypeError, "data must be"),
        (lambda f: fastagg.query(f, b"SELECT 1"), TypeError, "sql must be a str"),
    ],
)
def test_errors(frame, call, exc, fragment):
    with pytest.raises(exc, match=fragment):
        call(frame)


def test_closed_session(frame):
    db = fastagg.connect()
    db.close()
    with pytest.raises(fastagg.Error, match="closed"):
        db.query("SELECT 1")
    with pytest.raises(fastagg.Error, match="closed"):
        db.register("df", frame)


def test_aggregate_error_is_fastagg_error(frame):
    @fastagg.aggregate
    class Boom:
        n: int

        def step(self, x: float):
            if x > 1:
                raise ValueError("too big")
            self.n += 1

        def finalize(self) -> int:
            return self.n

    with pytest.raises(fastagg.AggregateError, match="Boom.step: ValueError: too big") as info:
        fastagg.query(frame, "SELECT boom(x) FROM df", [Boom])
    assert isinstance(info.value, sqlite3.Error)


def test_repeated_queries_do_not_leak(frame):
    import tracemalloc

    def run():
        fastagg.query(frame, "SELECT g, fvar(x) FROM df GROUP BY g", [FVar])

    for _ in range(20):
        run()
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for _ in range(200):
        run()
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert grown < 2_000_000, grown


def test_one_shot_query_releases_the_frame():
    import weakref

    df = pd.DataFrame({"x": np.arange(1000.0)})
    ref = weakref.ref(df)
    fastagg.query(df, "SELECT sum(x) FROM df")
    del df
    gc.collect()
    assert ref() is None


def test_builtin_partial_states_available_by_name(frame):
    out = fastagg.query(
        frame,
        "SELECT g, var_samp_merge(p) AS v FROM (SELECT g, g % 2 AS h, var_samp_partial(x) AS p "
        "FROM df GROUP BY g, h) GROUP BY g ORDER BY g",
    )
    np.testing.assert_allclose(out["v"].to_numpy(dtype=float), expected_var(frame).to_numpy(), rtol=1e-12)
