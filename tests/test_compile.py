"""Compiled aggregates against the same classes run by Python's sqlite3.

Each class below is registered twice on one connection: compiled by fastagg
under its own name, and interpreted by CPython (``create_aggregate``) under
``py_<name>``. Every query is run with both and the rows must agree.
"""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pytest

import fastagg
from aggs import assert_rows_close
from reference import python_version_of, register_python


@fastagg.aggregate
class MyAvg:
    total: np.float64
    count: np.int64

    def step(self, x: float):
        self.total += x
        self.count += 1

    def finalize(self) -> float | None:
        return self.total / self.count if self.count else None

    def inverse(self, x: float):
        self.total -= x
        self.count -= 1


@fastagg.aggregate(name="wavg")
class WAvg:
    total: np.float64
    weight: np.float64

    def step(self, x: float, w: float):
        self.total += x * w
        self.weight += w

    def finalize(self) -> float | None:
        return self.total / self.weight if self.weight else None


@fastagg.aggregate
class MinOf:
    """A min starting at +inf: a non-zero initial state."""

    lo: float
    seen: bool

    def __init__(self):
        self.lo = np.inf

    def step(self, x: float):
        self.seen = True
        if x < self.lo:
            self.lo = x

    def finalize(self) -> float:
        return self.lo


@fastagg.aggregate
class CountNulls:
    """Optional argument: receives None for SQL NULL."""

    nulls: int
    values: int

    def step(self, x: float | None):
        if x is None:
            self.nulls += 1
        else:
            self.values += 1

    def finalize(self) -> int:
        return self.nulls * 1000 + self.values


@fastagg.aggregate
class IntSum:
    total: np.int64

    def step(self, x: int):
        self.total += x

    def finalize(self) -> int:
        return self.total

    def inverse(self, x: int):
        self.total -= x


@fastagg.aggregate
class LongestText:
    """Text argument and text result."""

    best: int
    count: int

    def step(self, s: str):
        if len(s) > self.best:
            self.best = len(s)
        self.count += 1

    def finalize(self) -> str | None:
        if self.count == 0:
            return None
        return "é" * self.best + "-" + str(self.count)


@fastagg.aggregate
class BlobStats:
    """Blob argument and blob result."""

    total: int
    first: int

    def step(self, b: bytes):
        self.total += len(b)
        if len(b):
            self.first = b[0]

    def finalize(self) -> bytes:
        out = np.zeros(3, np.uint8)
        out[0] = self.total % 256
        out[1] = self.first
        out[2] = 7
        return out


@fastagg.aggregate
class AnyTrue:
    """bool argument and bool result."""

    hits: int

    def step(self, flag: bool):
        if flag:
            self.hits += 1

    def finalize(self) -> bool:
        return self.hits > 0


@fastagg.aggregate
class Float32Sum:
    """numpy scalar argument types."""

    total: np.float64

    def step(self, x: np.float32, k: np.int32):
        self.total += x * k

    def finalize(self) -> np.float64:
        return self.total


@fastagg.aggregate
class Hist8:
    """Fixed-size array field in the state."""

    counts: fastagg.array(np.int64, 8)

    def step(self, x: int):
        self.counts[min(max(x, 0), 7)] += 1

    def finalize(self) -> int:
        best = 0
        for i in range(8):
            if self.counts[i] > self.counts[best]:
                best = i
        return best * 100 + self.counts[best]


ALL = [MyAvg, WAvg, MinOf, CountNulls, IntSum, LongestText, BlobStats, AnyTrue, Float32Sum, Hist8]


@pytest.fixture(scope="module")
def db():
    """One connection with every class compiled and interpreted, and test data."""
    con = sqlite3.connect(":memory:")
    fastagg.register(con, *ALL)
    for cls in ALL:
        register_python(con, cls, "py_" + cls.__fastagg_spec__.name)
    rng = np.random.default_rng(42)
    n = 20_000
    g = rng.integers(0, 50, n)
    x = rng.normal(size=n).round(6)
    w = rng.uniform(0, 2, n).round(6)
    k = rng.integers(-5, 5, n)
    x_with_nulls = [None if i % 7 == 0 else float(v) for i, v in enumerate(x)]
    texts = ["".join("abcé"[j % 4] for j in range(i % 13)) if i % 11 else None for i in range(n)]
    blobs = [bytes(range(i % 5)) if i % 9 else None for i in range(n)]
    con.execute("CREATE TABLE t (g INTEGER, x REAL, w REAL, k INTEGER, xn REAL, s TEXT, b BLOB)")
    con.executemany(
        "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)",
        zip(g.tolist(), x.tolist(), w.tolist(), k.tolist(), x_with_nulls, texts, blobs),
    )
    con.execute("CREATE TABLE empty (g INTEGER, x REAL, w REAL)")
    yield con
    con.close()


def both(db, sql_template: str, params=()):
    """Run *sql_template* with ``{f}`` as compiled and as Python function names."""
    compiled = db.execute(sql_template.replace("{p}", ""), params).fetchall()
    python = db.execute(sql_template.replace("{p}", "py_"), params).fetchall()
    return compiled, python


QUERIES = [
    "SELECT {p}myavg(x) FROM t",
    "SELECT g, {p}myavg(x) FROM t GROUP BY g ORDER BY g",
    "SELECT 1, {p}myavg(x) FROM t GROUP BY 1",
    "SELECT {p}wavg(x, w) FROM t",
    "SELECT g, {p}wavg(x, w), {p}wavg(w, x) FROM t GROUP BY g ORDER BY g",
    "SELECT g, {p}minof(x), {p}minof(w) FROM t GROUP BY g ORDER BY g",
    "SELECT {p}myavg(xn), {p}countnulls(xn) FROM t",
    "SELECT g, {p}countnulls(xn) FROM t GROUP BY g ORDER BY g",
    "SELECT g, {p}intsum(k) FROM t GROUP BY g ORDER BY g",
    "SELECT g, {p}longesttext(s) FROM t GROUP BY g ORDER BY g",
    "SELECT g, {p}blobstats(b) FROM t GROUP BY g ORDER BY g",
    "SELECT g, {p}anytrue(x > 2.5) FROM t GROUP BY g ORDER BY g",
    "SELECT g, {p}float32sum(x, k) FROM t GROUP BY g ORDER BY g",
    "SELECT g, {p}hist8(k + 4) FROM t GROUP BY g ORDER BY g",
    "SELECT {p}intsum(DISTINCT k) FROM t",
    "SELECT g, {p}myavg(x) FILTER (WHERE w > 1) FROM t GROUP BY g ORDER BY g",
    "SELECT g, {p}myavg(x) AS a FROM t GROUP BY g HAVING {p}myavg(x) > 0 ORDER BY g",
    "SELECT g, {p}myavg(x) AS a FROM t GROUP BY g ORDER BY a, g",
    "SELECT {p}myavg(a) FROM (SELECT g, {p}myavg(x) AS a FROM t GROUP BY g)",
    "SELECT g FROM t GROUP BY g HAVING {p}intsum(k) > (SELECT {p}intsum(k) / 50 FROM t) ORDER BY g",
    "SELECT {p}myavg(x), {p}myavg(x) FROM t WHERE g = 3",
    "SELECT {p}myavg(x) FROM t WHERE g = -1 GROUP BY g",
]


@pytest.mark.parametrize("sql", QUERIES)
def test_matches_python(db, sql):
    compiled, python = both(db, sql)
    assert_rows_close(compiled, python)


def test_many_groups(con):
    fastagg.register(con, MyAvg, MinOf)
    register_python(con, MyAvg, "py_myavg")
    register_python(con, MinOf, "py_minof")
    rng = np.random.default_rng(0)
    n = 300_000
    con.execute("CREATE TABLE big (g INTEGER, x REAL)")
    con.executemany(
        "INSERT INTO big VALUES (?, ?)",
        zip(rng.permutation(np.arange(n) % 100_000).tolist(), rng.normal(size=n).tolist()),
    )
    sql = "SELECT g, {p}myavg(x), {p}minof(x) FROM big GROUP BY g ORDER BY g"
    compiled = con.execute(sql.replace("{p}", "")).fetchall()
    python = con.execute(sql.replace("{p}", "py_")).fetchall()
    assert len(compiled) == 100_000
    assert_rows_close(compiled, python)


@pytest.mark.parametrize(
    "cls, expected",
    [
        (MyAvg, None),
        (MinOf, math.inf),
        (CountNulls, 0),
        (IntSum, 0),
        (AnyTrue, 0),
        (LongestText, None),
        (Hist8, 0),
    ],
)
def test_empty_input_runs_finalize_on_initial_state(db, cls, expected):
    name = cls.__fastagg_spec__.name
    args = ", ".join(["g"] * cls.__fastagg_spec__.narg)
    (row,) = db.execute(f"SELECT {name}({args}) FROM empty").fetchall()
    assert row == (expected,)
    assert python_version_of(cls)().finalize() == expected


def test_empty_input_blob_result(db):
    assert db.execute("SELECT blobstats(b) FROM t WHERE 0").fetchall() == [(bytes([0, 0, 7]),)]


def test_each_use_has_its_own_state(db):
    """Two uses of one aggregate with a non-zero initial state, in one query."""
    rows = db.execute("SELECT minof(x), minof(w), minof(-x) FROM t").fetchone()
    expected = db.execute("SELECT min(x), min(w), min(-x) FROM t").fetchone()
    assert rows == expected


def test_types_of_results(db):
    row = db.execute(
        "SELECT typeof(myavg(x)), typeof(intsum(k)), typeof(longesttext(s)), "
        "typeof(blobstats(b)), typeof(anytrue(1)) FROM t"
    ).fetchone()
    assert row == ("real", "integer", "text", "blob", "integer")


def test_text_round_trip_unicode(con):
    @fastagg.aggregate
    class Concat:
        n: int

        def step(self, s: str):
            self.n += len(s)

        def finalize(self) -> int:
            return self.n

    fastagg.register(con, Concat)
    samples = ["", "a", "é", "日本語", "😀x", "\x00a", "mixé😀日"]
    for s in samples:
        assert con.execute("SELECT concat(?)", (s,)).fetchone() == (len(s),), s


def test_text_result_unicode(con):
    @fastagg.aggregate
    class Echo:
        n: int

        def step(self, x: int):
            self.n = x

        def finalize(self) -> str:
            if self.n == 0:
                return "plain"
            if self.n == 1:
                return "é"
            if self.n == 2:
                return "日本"
            return "😀"

    fastagg.register(con, Echo)
    for i, expected in enumerate(["plain", "é", "日本", "😀"]):
        assert con.execute("SELECT echo(?)", (i,)).fetchone() == (expected,)


def test_int64_bounds(con):
    fastagg.register(con, IntSum)
    for v in (2**63 - 1, -(2**63), 0, -1):
        assert con.execute("SELECT intsum(?)", (v,)).fetchone() == (v,)


def test_python_class_stays_plain_python():
    s = MinOf()
    assert s.lo == math.inf and s.seen is False
    s.step(3.0)
    s.step(-1.0)
    assert s.finalize() == -1.0
    h = Hist8()
    assert isinstance(h.counts, np.ndarray) and h.counts.shape == (8,)
    avg = MyAvg()
    assert avg.total == 0.0 and avg.count == 0 and avg.finalize() is None


def test_state_dtype_and_size():
    from fastagg.compile.cache import compile_spec

    assert MyAvg.__fastagg_spec__.state == np.dtype([("total", "f8"), ("count", "i8")])
    assert compile_spec(MyAvg.__fastagg_spec__).state_nbytes == 16
    # A class with __init__ needs one more byte: the "initialised" flag.
    assert compile_spec(MinOf.__fastagg_spec__).state_nbytes == MinOf.__fastagg_spec__.state.itemsize + 1


def test_state_from_explicit_dtype(con):
    @fastagg.aggregate(name="explicit_sum", state=np.dtype([("s", np.float64), ("n", np.int32)]))
    class ExplicitSum:
        def step(self, x: float):
            self.s += x
            self.n += 1

        def finalize(self) -> float:
            return self.s + self.n

    fastagg.register(con, ExplicitSum)
    assert con.execute("SELECT explicit_sum(x) FROM (SELECT 1.5 AS x UNION ALL SELECT 2.5)").fetchone() == (6.0,)


def test_large_array_state_many_groups(con):
    @fastagg.aggregate
    class BigState:
        slots: fastagg.array(np.int64, 4096)  # 32 KiB

        def step(self, x: int):
            self.slots[x % 4096] += 1

        def finalize(self) -> int:
            return self.slots.sum()

    fastagg.register(con, BigState)
    (rows,) = con.execute(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 199999) "
        "SELECT count(*) FROM (SELECT i % 100000 AS g, bigstate(i) AS c FROM n GROUP BY g HAVING c = 2)"
    ).fetchone()
    assert rows == 100_000


def test_reregister_and_two_connections():
    a = sqlite3.connect(":memory:")
    b = sqlite3.connect(":memory:")
    fastagg.register(a, MyAvg)
    fastagg.register(a, MyAvg)
    fastagg.register(b, MyAvg)
    a.close()
    assert b.execute("SELECT myavg(2.0)").fetchone() == (2.0,)
    b.close()


def test_name_is_case_insensitive(con):
    fastagg.register(con, WAvg)
    assert con.execute("SELECT WAVG(2, 1), wAvg(4, 1)").fetchone() == (2.0, 4.0)


def test_wrong_argument_count_is_sql_error(con):
    fastagg.register(con, WAvg)
    with pytest.raises(sqlite3.OperationalError, match="wrong number of arguments"):
        con.execute("SELECT wavg(1)")


def test_second_process_loads_from_numba_cache(tmp_path):
    """Compiled callbacks are cached on disk: a second process compiles nothing."""
    from conftest import run_isolated

    script = """
        import sqlite3, numpy as np, fastagg
        from fastagg.compile.cache import compile_spec

        @fastagg.aggregate
        class CachedAvg:
            total: np.float64
            n: np.int64
            def step(self, x: float):
                self.total += x
                self.n += 1
            def finalize(self) -> float | None:
                return self.total / self.n if self.n else None

        con = sqlite3.connect(":memory:")
        fastagg.register(con, CachedAvg)
        assert con.execute("SELECT cachedavg(2.0)").fetchone() == (2.0,)
        compiled = compile_spec(CachedAvg.__fastagg_spec__)
        print(sum(compiled._callbacks[m].cache_hits for m in ("step", "finalize")))
    """
    env = {"FASTAGG_CACHE_DIR": str(tmp_path / "cache")}
    first = run_isolated(script, env=env)
    second = run_isolated(script, env=env)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert first.stdout.split()[-1] == "0"
    assert second.stdout.split()[-1] == "2"


def test_import_compiles_nothing():
    from conftest import run_isolated

    proc = run_isolated(
        """
        import sys, fastagg
        print("numba" in sys.modules, "fastagg.compile.cache" in sys.modules)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]


AGG_SOURCE = """
import numpy as np, fastagg

@fastagg.aggregate
class Twin:
    total: np.float64
    def step(self, x: float):
        self.total += x
    def finalize(self) -> float:
        return self.total
"""


def test_cache_keeps_identical_code_of_different_modules_apart(tmp_path):
    """numba's cached code names its functions' modules: same code, other module, other entry."""
    from conftest import run_isolated

    for name in ("twin_a", "twin_b"):
        (tmp_path / f"{name}.py").write_text(AGG_SOURCE)
    env = {"FASTAGG_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(tmp_path)}
    for name in ("twin_a", "twin_b", "twin_b"):
        if name == "twin_b":
            # A later process cannot import the first module any more.
            (tmp_path / "twin_a.py").unlink(missing_ok=True)
        proc = run_isolated(
            f"""
            import sqlite3, fastagg, {name}
            con = sqlite3.connect(":memory:")
            fastagg.register(con, {name}.Twin)
            print(con.execute("SELECT twin(2.5)").fetchone()[0])
            """,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.split()[-1] == "2.5"


def test_code_from_exec_is_not_cached_but_works_twice(tmp_path):
    from conftest import run_isolated

    script = f"""
        import sqlite3, fastagg
        ns = {{"__name__": "not_a_module"}}
        exec({AGG_SOURCE!r}, ns)
        con = sqlite3.connect(":memory:")
        fastagg.register(con, ns["Twin"])
        print(con.execute("SELECT twin(1.5)").fetchone()[0])
    """
    env = {"FASTAGG_CACHE_DIR": str(tmp_path / "cache")}
    for _ in range(2):
        proc = run_isolated(script, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.split()[-1] == "1.5"


# --------------------------------------------------------------------------
# Text and bytes results built in compiled code (issue 11)

FLOAT_SAMPLES = [
    0.988317, 0.1, 0.5, -0.0, 0.0, 1.0, -2.5, 1 / 3, 2 / 3, 100.0, 123456789.125,
    1e15, 9999999999999998.0, 1e16, 1.5e300, -1e-4, 1e-5, 5e-324, 1.7976931348623157e308,
    math.inf, -math.inf, 0.30000000000000004, 1e22, 2.0**-1074 * 3,
]


def test_str_of_float_is_pythons_text(con):
    """``str(x)`` of a float gave '<object type:float64>'; it is Python's shortest repr."""

    @fastagg.aggregate
    class FloatText:
        last: float
        small: np.float32

        def step(self, x: float):
            self.last = x
            self.small = np.float32(x)

        def finalize(self) -> str:
            return str(self.last) + "|" + f"{self.last}|{repr(self.last)}|" + str(self.small)

    fastagg.register(con, FloatText)
    rng = np.random.default_rng(7)
    spread = rng.normal(size=300) * 10.0 ** rng.integers(-300, 300, 300)
    samples = FLOAT_SAMPLES + rng.normal(size=300).tolist() + spread.tolist()
    for x in samples:
        (text,) = con.execute("SELECT floattext(?)", (x,)).fetchone()
        s, f, r, small = text.split("|")
        assert s == f == r == repr(x), x
        # float32: the fewest digits that read back as the same float32.
        with np.errstate(over="ignore"):
            assert np.float32(float(small)) == np.float32(x), (x, small)
    for x in (0.1, 0.5, 1 / 3, 2.0, 1e-7):
        (text,) = con.execute("SELECT floattext(?)", (x,)).fetchone()
        assert text.split("|")[3] == str(np.float32(x))


def test_bytes_literal_result(con):
    """``return b"..."`` from ``-> bytes`` failed to compile ("must be array-like")."""

    @fastagg.aggregate
    class BytesLiteral:
        n: int

        def step(self, x: int):
            self.n += x

        def finalize(self) -> bytes:
            if self.n > 10:
                return b"big"
            return b"\x00many\xff"

    @fastagg.aggregate
    class MaybeBytes:
        n: int

        def step(self, x: int):
            self.n += x

        def finalize(self) -> bytes | None:
            return b"\x01\x02" if self.n else None

    fastagg.register(con, BytesLiteral, MaybeBytes)
    assert con.execute("SELECT bytesliteral(1), bytesliteral(20)").fetchone() == (b"\x00many\xff", b"big")
    assert con.execute("SELECT maybebytes(1), maybebytes(x) FROM (SELECT 0 AS x)").fetchone() == (b"\x01\x02", None)
    assert con.execute("SELECT typeof(bytesliteral(1))").fetchone() == ("blob",)
