"""The fixed cost of a statement: remembered one-shot statements, column reads, the pandas result.

A one-shot ``fastagg.query`` that the native engine answered with a result
it builds itself is remembered (``engine.native.run_remembered``); the next
call with the same statement, frame names, column names and types, specs
and options runs without SQLite. Every test compares with the usual path
(``engine="sqlite"``, or the first, unremembered call) and checks which
path ran.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import fastagg
from fastagg import database
from fastagg.engine import native
from fastagg.output import to_pandas

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ROWS = 250_000  # above NATIVE_MIN_ROWS: the native engine answers in a fresh process too


@fastagg.aggregate(name="ovavg")
class OvAvg:
    total: float
    n: int

    def step(self, x: float):
        self.total += x
        self.n += 1

    def merge(self, other):
        self.total += other.total
        self.n += other.n

    def finalize(self) -> float | None:
        return self.total / self.n if self.n else None


@fastagg.aggregate(name="ovboom")
class OvBoom:
    n: int

    def step(self, x: float):
        if x == 13.0:
            raise ValueError("thirteen")
        self.n += 1

    def finalize(self) -> int:
        return self.n


def _frame(rows=ROWS, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "g": rng.integers(0, 50, rows),
        "x": rng.normal(10.0, 3.0, rows),
        "s": pd.Series(rng.choice(["a", "b", "c"], rows), dtype="string[pyarrow]"),
        "h": rng.integers(0, 1000, rows),
    })


class _Spy:
    """Counts the one-shot sessions (the usual path) and the remembered runs."""

    def __init__(self, monkeypatch):
        self.usual = 0
        self.remembered = 0
        run, remembered = database.Database._run, native.run_remembered

        def counting_run(db, *a, **k):
            self.usual += 1
            return run(db, *a, **k)

        def counting_remembered(*a, **k):
            out = remembered(*a, **k)
            self.remembered += out is not None
            return out

        monkeypatch.setattr(database.Database, "_run", counting_run)
        monkeypatch.setattr(native, "run_remembered", counting_remembered)


@pytest.fixture
def spy(monkeypatch):
    return _Spy(monkeypatch)


def _same(a, b):
    pd.testing.assert_frame_equal(a, b, check_exact=True, check_column_type=True, check_index_type=True)


STATEMENTS = [
    ("SELECT ovavg(x) AS m FROM df", [OvAvg]),
    ("SELECT g, ovavg(x) AS m, count(*) AS n FROM df GROUP BY g", [OvAvg]),
    ("SELECT s, sum(x), avg(h), min(h), max(x) FROM df GROUP BY s", []),
    ("SELECT g, var_samp(x) AS v, median(h) AS m FROM df GROUP BY g LIMIT 7 OFFSET 3", []),
    ("SELECT count(*) AS n, total(x) AS t FROM df", []),
]


@pytest.mark.parametrize("sql,aggs", STATEMENTS)
def test_a_remembered_statement_gives_the_usual_answer(spy, sql, aggs):
    df = _frame()
    first = fastagg.query(df, sql, aggs, workers=1)
    assert fastagg.engine.native.last_run().engine == "native"
    usual = spy.usual
    again = fastagg.query(df, sql, aggs, workers=1)
    assert spy.usual == usual and spy.remembered >= 1, "the second call should not open a session"
    assert native.last_run().engine == "native"
    _same(first, again)
    _same(fastagg.query(df, sql, aggs, engine="sqlite", workers=1), again)
    for output in ("arrow", "pandas"):
        assert type(fastagg.query(df, sql, aggs, workers=2, output=output)) is type(
            fastagg.query(df, sql, aggs, workers=2, output=output, engine="sqlite"))


def test_values_changed_in_place_give_the_new_answer(spy):
    df = _frame()
    sql = "SELECT g, ovavg(x) AS m, sum(h) AS s FROM df GROUP BY g"
    fastagg.query(df, sql, [OvAvg])
    before = fastagg.query(df, sql, [OvAvg])
    df.loc[df["g"] == 3, "x"] += 1000.0
    df.loc[0, "h"] = 10**9
    after = fastagg.query(df, sql, [OvAvg])
    assert spy.remembered >= 2
    _same(after, fastagg.query(df, sql, [OvAvg], engine="sqlite"))
    assert not after.equals(before)


@pytest.mark.parametrize("replacement", [
    lambda n: np.arange(n, dtype=np.float64),  # same dtype: the same remembered entry
    lambda n: np.arange(n, dtype=np.int64),  # another kind: another entry
    lambda n: pd.array(np.where(np.arange(n) % 5 == 0, None, np.arange(n)), dtype="Int64"),
    lambda n: pd.Series(np.arange(n) % 7, dtype="category"),
])
def test_a_replaced_column_gives_the_new_answer(replacement):
    df = _frame()
    sql = "SELECT g, ovavg(x) AS m, count(x) AS c, max(x) AS hi FROM df GROUP BY g"
    fastagg.query(df, sql, [OvAvg])
    fastagg.query(df, sql, [OvAvg])
    df["x"] = replacement(len(df))
    got = fastagg.query(df, sql, [OvAvg])
    _same(got, fastagg.query(df, sql, [OvAvg], engine="sqlite"))
    again = fastagg.query(df, sql, [OvAvg])
    _same(got, again)


def test_a_dropped_or_renamed_column_is_not_reused():
    df = _frame()
    sql = "SELECT ovavg(x) AS m FROM df"
    fastagg.query(df, sql, [OvAvg])
    fastagg.query(df, sql, [OvAvg])
    with pytest.raises(Exception) as usual:
        fastagg.query(df.drop(columns="x"), sql, [OvAvg], engine="sqlite")
    with pytest.raises(type(usual.value), match="no such column"):
        fastagg.query(df.drop(columns="x"), sql, [OvAvg])
    renamed = df.rename(columns={"x": "X"})
    _same(fastagg.query(renamed, sql, [OvAvg]), fastagg.query(renamed, sql, [OvAvg], engine="sqlite"))


def test_another_class_of_the_same_name_is_not_reused():
    df = _frame()
    sql = "SELECT ovavg(x) AS m FROM df"
    fastagg.query(df, sql, [OvAvg])
    fastagg.query(df, sql, [OvAvg])

    @fastagg.aggregate(name="ovavg")
    class Twice:
        total: float

        def step(self, x: float):
            self.total += 2 * x

        def merge(self, other):
            self.total += other.total

        def finalize(self) -> float:
            return self.total

    got = fastagg.query(df, sql, [Twice])
    assert got["m"][0] == pytest.approx(2 * df["x"].sum(), rel=1e-12)
    _same(got, fastagg.query(df, sql, [Twice], engine="sqlite", workers=1))


def test_statements_outside_the_remembered_shape_take_the_usual_path(spy):
    df = _frame()
    other = pd.DataFrame({"g": np.arange(50), "w": np.arange(50.0)})
    cases = [
        ("SELECT g, ovavg(x) AS m FROM df WHERE h > 10 GROUP BY g", {}),  # WHERE: SQLite plans the scan
        ("SELECT g, ovavg(x) AS m FROM df GROUP BY g", {"params": ()}),  # params given
        ("SELECT g, ovavg(x) * 2 AS m FROM df GROUP BY g HAVING count(*) > 1 ORDER BY m", {}),  # SQL after
        ("SELECT count(*) AS n FROM df JOIN o USING (g)", {}),  # a join: SQLite
        ("SELECT g, ovavg(x) AS m FROM df GROUP BY g", {"read_only": True}),
    ]
    for sql, kw in cases:
        data = {"df": df, "o": other}
        for _ in range(3):
            got = fastagg.query(data, sql, [OvAvg], **kw)
        _same(got, fastagg.query(data, sql, [OvAvg], engine="sqlite", **kw))
    assert spy.remembered == 0


def test_parameters_are_still_counted():
    df = _frame()
    sql = "SELECT ovavg(x) AS m FROM df"
    fastagg.query(df, sql, [OvAvg])
    fastagg.query(df, sql, [OvAvg])
    with pytest.raises(Exception) as usual:
        fastagg.query(df, sql, [OvAvg], params=(1,), engine="sqlite")
    with pytest.raises(type(usual.value)):
        fastagg.query(df, sql, [OvAvg], params=(1,))


def test_a_step_error_is_the_usual_error():
    df = _frame()
    sql = "SELECT g, ovboom(x) AS b FROM df GROUP BY g"
    fastagg.query(df, sql, [OvBoom])
    fastagg.query(df, sql, [OvBoom])
    bad = df.copy()
    bad.loc[len(bad) // 2, "x"] = 13.0
    with pytest.raises(fastagg.AggregateError) as usual:
        fastagg.query(bad, sql, [OvBoom], engine="sqlite")
    for workers in (1, 2):
        with pytest.raises(fastagg.AggregateError) as got:
            fastagg.query(bad, sql, [OvBoom], workers=workers)
        assert str(got.value) == str(usual.value)
    _same(fastagg.query(df, sql, [OvBoom]), fastagg.query(df, sql, [OvBoom], engine="sqlite"))


def test_an_unsupported_column_is_the_usual_error():
    df = _frame()
    sql = "SELECT ovavg(x) AS m FROM df"
    fastagg.query(df, sql, [OvAvg])
    fastagg.query(df, sql, [OvAvg])
    df["t"] = pd.to_timedelta(np.arange(len(df)), unit="s")
    with pytest.raises(fastagg.UnsupportedDtypeError, match="'t'"):
        fastagg.query(df, sql, [OvAvg])


def test_arrow_tables_streams_and_decimals(spy):
    df = _frame()
    table = pa.Table.from_pandas(df, preserve_index=False)
    sql = "SELECT g, ovavg(x) AS m FROM df GROUP BY g"
    want = fastagg.query(df, sql, [OvAvg], engine="sqlite", output="arrow")
    for _ in range(2):
        assert fastagg.query(table, sql, [OvAvg], output="arrow").equals(want)
    assert spy.remembered >= 1
    # A stream is read once: never by the remembered path, which could not give it back.
    remembered = spy.remembered
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    assert fastagg.query(reader, sql, [OvAvg], output="arrow").equals(want)
    assert spy.remembered == remembered
    dec = pa.table({"g": pa.array(np.arange(ROWS) % 3), "d": pa.array(np.arange(ROWS) / 4).cast(pa.decimal128(12, 2))})
    for decimals in ("real", "text", "real", "text"):
        got = fastagg.query(dec, "SELECT g, max(d) AS m FROM df GROUP BY g", decimals=decimals, output="arrow")
        assert got.equals(fastagg.query(dec, "SELECT g, max(d) AS m FROM df GROUP BY g", decimals=decimals,
                                        engine="sqlite", output="arrow"))


def test_two_frames_and_an_empty_frame():
    df = _frame()
    frames = {"df": df, "other": df.head(10)}
    sql = "SELECT g, ovavg(x) AS m FROM other GROUP BY g"
    for _ in range(2):
        _same(fastagg.query(frames, sql, [OvAvg]), fastagg.query(frames, sql, [OvAvg], engine="sqlite"))
    empty = df.head(0)
    for s in ("SELECT ovavg(x) AS m FROM df", "SELECT g, ovavg(x) AS m FROM df GROUP BY g"):
        fastagg.query(df, s, [OvAvg])
        _same(fastagg.query(empty, s, [OvAvg]), fastagg.query(empty, s, [OvAvg], engine="sqlite"))


def test_the_memory_is_bounded():
    df = _frame(1000)
    fastagg.query(_frame(), "SELECT ovavg(x) FROM df", [OvAvg])  # numba loaded: small frames run natively
    for k in range(native._REMEMBERED_KEPT + 20):
        fastagg.query(df, f"SELECT ovavg(x) AS m{k} FROM df", [OvAvg])
    assert len(native._remembered) <= native._REMEMBERED_KEPT
    assert len(native._remembered_texts) <= native._REMEMBERED_KEPT


# --------------------------------------------------------------------------
# to_pandas: what pyarrow's conversion makes, built directly


def test_to_pandas_is_what_pyarrow_makes():
    table = pa.table({
        "i": pa.array([1, None, 3]), "f": [0.5, None, 2.0], "s": ["a", None, "é"], "b": pa.array([b"x", None, b""]),
        "n": pa.nulls(3), "1": pa.array(["x", "y", "z"], pa.large_string()), "": [True, False, None],
        "t": pa.array([1, 2, 3], pa.timestamp("us")),
    })
    for t in (table, table.slice(1), table.slice(3), pa.concat_tables([table, table])):
        _same(to_pandas(t), t.to_pandas(types_mapper=pd.ArrowDtype))
    out = to_pandas(table)
    out.columns.name = "renamed"
    assert to_pandas(table).columns.name is None  # each result has its own column Index


def test_duplicate_result_names_keep_their_types():
    got = fastagg.query(pd.DataFrame({"x": [1]}), "SELECT 1 AS a, 'x' AS a, 2.5 AS a")
    assert list(got.columns) == ["a", "a", "a"]
    assert [str(t) for t in got.dtypes] == ["int64[pyarrow]", "string[pyarrow]", "double[pyarrow]"]
    assert got.iloc[0].tolist() == [1, "x", 2.5]


# --------------------------------------------------------------------------
# registry.function_names over the names a query decides about


def test_function_names_of_some_names_are_the_full_lists():
    import sqlite3

    from fastagg.registry import function_names

    con = sqlite3.connect(":memory:")
    con.create_function("Mine", 1, lambda x: x)
    con.create_function("\u212aey", 1, lambda x: x)  # KELVIN SIGN: str.lower makes it "key", SQLite's lower does not
    full = function_names(con)
    wanted = ["mine", "key", "sum", "median", "nothing_of_that_name", "json_each", "count"]
    got = function_names(con, wanted)
    assert {n: got[n] for n in wanted if n in got} == {n: full[n] for n in wanted if n in full}
    assert set(wanted) & set(full) <= set(got)
    assert function_names(con, []) == {"key": False}  # a name outside ASCII always comes back
    assert set(function_names(con, [f"f{i}" for i in range(1200)] + ["mine"])) >= {"mine"}


def test_a_query_still_refuses_a_function_of_the_callers():
    import sqlite3

    con = sqlite3.connect(":memory:")
    con.create_function("OVAVG", 1, lambda x: x)
    con.execute("CREATE TABLE t(x)")
    with pytest.raises(fastagg.Error, match="fastagg did not"):
        fastagg.query(con, "SELECT ovavg(x) FROM t", [OvAvg])
    db = fastagg.Database(connection=sqlite3.connect(":memory:"))
    db.register("df", _frame(100))
    for _ in range(3):  # functions deleted after each query, the marker with them
        assert db.query("SELECT ovavg(x) AS m, median(x) AS d FROM df", [OvAvg], output="arrow").num_rows == 1
    db.connection.create_function("median", 1, lambda x: -1.0)  # the caller's own median answers from now on
    assert set(db.query("SELECT median(x) AS d FROM df", output="arrow").column("d").to_pylist()) == {-1.0}
