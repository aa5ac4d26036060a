"""Bad input gets a clear error, never a crash.

Errors raised by user code inside compiled callbacks run in a subprocess, so
that a segfault fails one test instead of the whole suite.
"""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

import fastagg
from conftest import run_isolated

RAISING_CLASS = '''
import json, sqlite3, numpy as np, fastagg

@fastagg.aggregate
class Fails:
    total: float
    def __init__(self):
        if FAIL_IN == "__init__":
            raise ValueError("bad init")
        self.total = 0.0
    def step(self, x: float):
        if FAIL_IN == "step" and x > 2:
            raise ValueError("x too large")
        if FAIL_IN == "zero":
            self.total += 1 // int(x - x)
        self.total += x
    def inverse(self, x: float):
        if FAIL_IN == "inverse":
            raise KeyError("no inverse")
        self.total -= x
    def value(self) -> float:
        if FAIL_IN == "value":
            raise RuntimeError("no value")
        return self.total
    def finalize(self) -> float:
        if FAIL_IN == "finalize":
            raise ArithmeticError("cannot finish")
        return self.total

con = sqlite3.connect(":memory:")
fastagg.register(con, Fails)
con.execute("CREATE TABLE t (x REAL)")
con.executemany("INSERT INTO t VALUES (?)", [(1.0,), (2.0,), (3.0,), (4.0,)])
out = {}
try:
    out["rows"] = con.execute(SQL).fetchall()
except Exception as exc:
    out["type"] = type(exc).__name__
    out["message"] = str(exc)
# The connection stays usable after the failure.
out["after"] = con.execute("SELECT fails(x) FROM t WHERE 0").fetchall() if FAIL_IN != "__init__" and FAIL_IN != "finalize" else None
print(json.dumps(out))
'''

AGG = "SELECT fails(x) FROM t"
WINDOW = "SELECT fails(x) OVER (ORDER BY x ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM t"


@pytest.mark.parametrize(
    "fail_in, sql, fragment",
    [
        ("__init__", AGG, "Fails.__init__: ValueError: bad init"),
        ("step", AGG, "Fails.step: ValueError: x too large"),
        ("zero", AGG, "Fails.step: ZeroDivisionError"),
        ("finalize", AGG, "Fails.finalize: ArithmeticError: cannot finish"),
        ("inverse", WINDOW, "Fails.inverse: KeyError: 'no inverse'"),
        ("value", WINDOW, "Fails.value: RuntimeError: no value"),
    ],
)
def test_exception_in_user_code_fails_the_statement(fail_in, sql, fragment):
    code = f"FAIL_IN = {fail_in!r}\nSQL = {sql!r}\n" + RAISING_CLASS
    proc = run_isolated(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out.get("type") == "OperationalError", out
    assert fragment in out["message"]
    # Never "Exception ignored" or a traceback printed while carrying on.
    assert "Exception ignored" not in proc.stderr
    assert "Traceback" not in proc.stderr
    if out["after"] is not None:
        assert out["after"] == [[0.0]]


def test_empty_table_error_in_finalize_is_also_an_error():
    code = "FAIL_IN = 'finalize'\nSQL = 'SELECT fails(x) FROM t WHERE 0'\n" + RAISING_CLASS
    out = json.loads(run_isolated(code).stdout.strip().splitlines()[-1])
    assert "Fails.finalize: ArithmeticError" in out["message"]


def _define(body: str, **kw):
    namespace = {"np": np, "fastagg": fastagg}
    exec(body, namespace)  # noqa: S102 - test input
    return namespace


DECORATION_ERRORS = [
    (
        "missing step",
        "@fastagg.aggregate\nclass A:\n    n: int\n    def finalize(self) -> int:\n        return 1\n",
        "A: missing method step",
    ),
    (
        "missing finalize",
        "@fastagg.aggregate\nclass A:\n    n: int\n    def step(self, x: float):\n        pass\n",
        "A: missing method finalize",
    ),
    (
        "unknown argument annotation",
        "@fastagg.aggregate\nclass A:\n    n: int\n    def step(self, x: list):\n        pass\n"
        "    def finalize(self) -> int:\n        return 1\n",
        "A.step: argument 'x' is annotated list; use float, int, str, bytes, bool",
    ),
    (
        "missing argument annotation",
        "@fastagg.aggregate\nclass A:\n    n: int\n    def step(self, x):\n        pass\n"
        "    def finalize(self) -> int:\n        return 1\n",
        "A.step: argument 'x' has no annotation",
    ),
    (
        "missing result annotation",
        "@fastagg.aggregate\nclass A:\n    n: int\n    def step(self, x: int):\n        pass\n"
        "    def finalize(self):\n        return 1\n",
        "A.finalize: the result has no annotation",
    ),
    (
        "bad result annotation",
        "@fastagg.aggregate\nclass A:\n    n: int\n    def step(self, x: int):\n        pass\n"
        "    def finalize(self) -> dict:\n        return 1\n",
        "A.finalize: the result is annotated dict",
    ),
    (
        "inverse arity",
        "@fastagg.aggregate\nclass A:\n    n: int\n    def step(self, x: int, y: int):\n        pass\n"
        "    def inverse(self, x: int):\n        pass\n    def finalize(self) -> int:\n        return 1\n",
        "A.inverse takes 1 argument(s) but step takes 2",
    ),
    (
        "value without inverse",
        "@fastagg.aggregate\nclass A:\n    n: int\n    def step(self, x: int):\n        pass\n"
        "    def value(self) -> int:\n        return 1\n    def finalize(self) -> int:\n        return 1\n",
        "value() is for window functions and needs inverse",
    ),
    (
        "bad state field",
        "@fastagg.aggregate\nclass A:\n    n: str\n    def step(self, x: int):\n        pass\n"
        "    def finalize(self) -> int:\n        return 1\n",
        "A: state field 'n' is annotated str",
    ),
    (
        "no state",
        "@fastagg.aggregate\nclass A:\n    def step(self, x: int):\n        pass\n"
        "    def finalize(self) -> int:\n        return 1\n",
        "A: no state fields",
    ),
    (
        "init with arguments",
        "@fastagg.aggregate\nclass A:\n    n: int\n    def __init__(self, k):\n        pass\n"
        "    def step(self, x: int):\n        pass\n    def finalize(self) -> int:\n        return 1\n",
        "A.__init__ must take only self",
    ),
    (
        "default argument",
        "@fastagg.aggregate\nclass A:\n    n: int\n    def step(self, x: int = 1):\n        pass\n"
        "    def finalize(self) -> int:\n        return 1\n",
        "parameter 'x' has a default",
    ),
    (
        "varargs",
        "@fastagg.aggregate\nclass A:\n    n: int\n    def step(self, *xs: int):\n        pass\n"
        "    def finalize(self) -> int:\n        return 1\n",
        "parameter 'xs' is variadic positional",
    ),
    (
        "bad name",
        "@fastagg.aggregate(name='no spaces')\nclass A:\n    n: int\n    def step(self, x: int):\n        pass\n"
        "    def finalize(self) -> int:\n        return 1\n",
        "SQL name 'no spaces' is not a valid identifier",
    ),
    ("not a class", "@fastagg.aggregate\ndef f():\n    pass\n", "decorates a class, got function"),
    (
        "explicit state not structured",
        "@fastagg.aggregate(state=np.dtype(np.float64))\nclass A:\n    def step(self, x: int):\n        pass\n"
        "    def finalize(self) -> int:\n        return 1\n",
        "state must be a structured dtype",
    ),
]


@pytest.mark.parametrize("case, body, fragment", DECORATION_ERRORS, ids=[c[0] for c in DECORATION_ERRORS])
def test_invalid_class_rejected_at_decoration(case, body, fragment):
    with pytest.raises(fastagg.CompileError) as info:
        _define(body)
    assert fragment in str(info.value)
    assert isinstance(info.value, TypeError) and isinstance(info.value, sqlite3.Error)


def test_uncompilable_body_rejected_at_registration(con):
    @fastagg.aggregate
    class UsesDict:
        n: int

        def step(self, x: float):
            self.n += {"a": object()}["a"]

        def finalize(self) -> int:
            return self.n

    with pytest.raises(fastagg.CompileError, match="UsesDict: numba could not compile"):
        fastagg.register(con, UsesDict)
    # Nothing half-registered.
    with pytest.raises(sqlite3.OperationalError, match="no such function"):
        con.execute("SELECT usesdict(1)")


def test_undecorated_class_rejected(con):
    class Plain:
        def step(self, x):
            pass

        def finalize(self):
            return 1

    with pytest.raises(fastagg.CompileError, match="decorate the class with @fastagg.aggregate"):
        fastagg.register(con, Plain)
    with pytest.raises(fastagg.CompileError, match="not a fastagg aggregate"):
        fastagg.register(con, "myavg")


def test_closed_connection(con):
    @fastagg.aggregate
    class Count:
        n: int

        def step(self, x: float):
            self.n += 1

        def finalize(self) -> int:
            return self.n

    con.close()
    with pytest.raises(sqlite3.ProgrammingError):
        fastagg.register(con, Count)


def test_not_a_connection():
    @fastagg.aggregate
    class Count2:
        n: int

        def step(self, x: float):
            self.n += 1

        def finalize(self) -> int:
            return self.n

    with pytest.raises(TypeError, match="expected a sqlite3.Connection"):
        fastagg.register("not a connection", Count2)


# --------------------------------------------------------------------------
# Results the annotation cannot hold, and indexes past the state (issue 11)

OUT_OF_BOUNDS = '''
import json, sqlite3, numpy as np, pandas as pd, fastagg

COUNT = "WITH RECURSIVE s(value) AS (SELECT 0 UNION ALL SELECT value + 1 FROM s WHERE value < {n}) SELECT {f} FROM s"

@fastagg.aggregate
class Hist:
    counts: fastagg.array(np.int64, 8)
    def step(self, x: int):
        self.counts[x] += 1
    def finalize(self) -> int:
        return int(self.counts.argmax())

con = sqlite3.connect(":memory:")
fastagg.register(con, Hist)
out = {}
try:
    out["rows"] = con.execute(COUNT.format(n=2000, f="hist(value)")).fetchall()
except Exception as exc:
    out["type"] = type(exc).__name__
    out["message"] = str(exc)
try:
    fastagg.query(pd.DataFrame({"x": np.arange(2000)}), "SELECT hist(x) FROM df", aggregates=[Hist])
except fastagg.AggregateError as exc:
    out["query"] = str(exc)
out["in bounds"] = con.execute(COUNT.format(n=20, f="hist(value % 8)")).fetchall()
print(json.dumps(out))
'''


def test_index_past_array_field_is_an_error_not_a_crash():
    """Writing counts[8] of an 8-slot array went past the state into SQLite's heap (exit -11)."""
    proc = run_isolated(OUT_OF_BOUNDS)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["type"] == "OperationalError"
    assert "Hist.step: IndexError" in out["message"]
    assert "Hist.step: IndexError" in out["query"]
    assert out["in bounds"] == [[0]]


INT_RESULT = '''
import json, pandas as pd, fastagg

@fastagg.aggregate
class FloatAsInt:
    total: float
    def step(self, x: float):
        self.total += x
    def finalize(self) -> int:
        return self.total

@fastagg.aggregate
class NoneAsFloat:
    total: float
    def step(self, x: float):
        self.total += x
    def finalize(self) -> float:
        if self.total > 0:
            return self.total
        return None

@fastagg.aggregate
class FloatAsBool:
    total: float
    def step(self, x: float):
        self.total += x
    def finalize(self) -> bool:
        return self.total

@fastagg.function
def none_as_float(x: float) -> float:
    return x if x > 0 else None

out = {}
for sql in SQLS:
    try:
        out[sql] = fastagg.query(
            pd.DataFrame({"x": [1.0, 2.0]}), sql, aggregates=[FloatAsInt, NoneAsFloat, FloatAsBool],
            functions=[none_as_float], output="arrow",
        ).to_pylist()
    except fastagg.AggregateError as exc:
        out[sql] = "AggregateError: " + str(exc)
print(json.dumps(out))
'''


def test_results_the_annotation_cannot_hold_raise():
    """``-> int`` returning 5e305 gave INT64_MIN; ``-> float`` returning None gave NULL;
    ``-> bool`` returning 0.3 gave false."""
    sqls = [
        "SELECT floatasint(x * 2.5e305) FROM df",
        "SELECT floatasint(x + 0.5) FROM df",
        "SELECT floatasint(x * -1e19) FROM df",
        "SELECT noneasfloat(x) FROM df",
        "SELECT noneasfloat(-x) FROM df",
        "SELECT none_as_float(-x) FROM df",
        "SELECT none_as_float(x) FROM df",
        "SELECT floatasbool(x * 0.1), floatasbool(x * 0.0), floatasbool(x * -1e300) FROM df",
    ]
    proc = run_isolated(INT_RESULT.replace("SQLS", repr(sqls)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out[sqls[0]] == "AggregateError: FloatAsInt.finalize: OverflowError: float result is outside the range of a 64-bit SQL INTEGER"
    assert out[sqls[1]] == [{"floatasint(x + 0.5)": 4}]  # in range: truncated as int() does
    assert "OverflowError" in out[sqls[2]]
    assert out[sqls[3]] == [{"noneasfloat(x)": 3.0}]
    for sql in (sqls[4], sqls[5]):
        assert "TypeError: returned None but the result is annotated float; annotate it `float | None`" in out[sql]
    assert out[sqls[4]].startswith("AggregateError: NoneAsFloat.finalize: ")
    assert out[sqls[6]] == [{"none_as_float(x)": 1.0}, {"none_as_float(x)": 2.0}]
    # -> bool follows Python's truth rules: 0.3 is true (fptosi made it 0).
    assert list(out[sqls[7]][0].values()) == [1, 0, 1]


def test_array_shape_must_be_integers_that_fit_a_state():
    """``fastagg.array(np.float64, 3e8)`` gave "'float' object is not iterable"."""
    with pytest.raises(fastagg.CompileError, match=r"shape must be positive integers, got 300000000.0 .*such as 300_000_000"):
        fastagg.array(np.float64, 3e8)
    with pytest.raises(fastagg.CompileError, match=r"2,400,000,000 bytes; a state lives in one SQLite allocation"):
        fastagg.array(np.float64, 300_000_000)
    with pytest.raises(fastagg.CompileError, match="shape must be positive integers"):
        fastagg.array(np.float64, (4, 2.0))
    with pytest.raises(fastagg.CompileError, match="shape must be positive integers"):
        fastagg.array(np.float64, True)
    with pytest.raises(fastagg.CompileError, match="is not a numpy dtype"):
        fastagg.array("no such dtype", 3)
    with pytest.raises(fastagg.CompileError, match="state record is .* bytes"):
        _define(
            "@fastagg.aggregate\nclass Huge:\n    a: fastagg.array(np.int64, 200_000_000)\n"
            "    b: fastagg.array(np.int64, 200_000_000)\n    def step(self, x: int):\n        pass\n"
            "    def finalize(self) -> int:\n        return 1\n"
        )
    assert fastagg.array(np.int8, (np.int64(2), 3)).shape == (2, 3)


def test_sql_name_longer_than_sqlite_allows():
    """A 300-character name failed at registration with "File name too long" from the cache."""
    with pytest.raises(fastagg.CompileError, match="is 300 bytes long; SQLite allows function names of at most 255"):
        fastagg.aggregate(name="a" * 300)(_define_count())
    with pytest.raises(fastagg.CompileError, match=r"255 bytes \(247 with merge"):
        fastagg.aggregate(name="m" * 250)(_define_count(merge=True))
    with pytest.raises(fastagg.CompileError, match="at most 255"):
        fastagg.function(name="f" * 256)(_define_identity())


def test_longest_sql_name_compiles_and_runs(con):
    """255 bytes is a valid SQLite name; the cache's file names must not depend on its length."""
    long = fastagg.aggregate(name="n" * 255)(_define_count())
    fastagg.register(con, long)
    assert con.execute(f"SELECT {'n' * 255}(x) FROM (SELECT 1 AS x UNION ALL SELECT 2)").fetchone() == (2,)


def _define_count(merge: bool = False):
    """A fresh undecorated counting class."""
    class Count:
        n: int

        def step(self, x: float):
            self.n += 1

        def finalize(self) -> int:
            return self.n

    if merge:
        def merge_(self, other):
            self.n += other.n

        Count.merge = merge_
    return Count


def _define_identity():
    """A fresh undecorated scalar function."""

    def f(x: float) -> float:
        return x

    return f


def test_one_class_decorated_under_two_names_refused():
    """Decorating a class twice replaced its first SQL name: queries naming it failed."""
    cls = fastagg.aggregate(name="first_name")(_define_count())
    with pytest.raises(fastagg.CompileError, match="already decorated as SQL function 'first_name'.*subclass"):
        fastagg.aggregate(name="second_name")(cls)
    assert cls.__fastagg_spec__.name == "first_name"
    fastagg.aggregate(name="FIRST_NAME")(cls)  # the same name again changes nothing

    @fastagg.aggregate(name="second_name")
    class Second(cls):
        pass

    assert Second.__fastagg_spec__.name == "second_name"
    f = fastagg.function(name="f_one")(_define_identity())
    with pytest.raises(fastagg.CompileError, match="already decorated as SQL function 'f_one'"):
        fastagg.function(name="f_two")(f)
    out = fastagg.query(
        _frame(), "SELECT first_name(x), second_name(x) FROM df",
        aggregates=[cls, Second], output="arrow",
    )
    assert out.to_pylist() == [{"first_name(x)": 3, "second_name(x)": 3}]


def test_two_classes_with_one_sql_name_in_one_query_refused(con):
    """The last of two classes with one SQL name silently won."""
    a = fastagg.aggregate(name="dup")(_define_count())
    b = fastagg.aggregate(name="DUP")(_define_count())
    f = fastagg.function(name="dup")(_define_identity())
    for given in ({"aggregates": [a, b]}, {"aggregates": [a], "functions": [f]}):
        with pytest.raises(fastagg.Error, match="both define SQL function '(dup|DUP)' with 1 argument"):
            fastagg.query(_frame(), "SELECT dup(x) FROM df", **given)
    with pytest.raises(fastagg.Error, match="the second would silently replace the first"):
        fastagg.register(con, a, b)
    with pytest.raises(sqlite3.OperationalError, match="no such function"):
        con.execute("SELECT dup(1)")  # nothing half-registered
    # One class given twice is one function.
    assert fastagg.query(_frame(), "SELECT dup(x) FROM df", aggregates=[a, a], output="arrow").to_pylist() == [{"dup(x)": 3}]


def _frame():
    import pandas as pd

    return pd.DataFrame({"x": [1.0, 2.0, 3.0]})
