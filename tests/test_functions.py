"""Compiled scalar functions (@fastagg.function) against the same Python functions."""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pytest

import fastagg
from conftest import run_isolated


@fastagg.function
def clamp(x: float, lo: float, hi: float) -> float:
    return min(max(x, lo), hi)


@fastagg.function(name="null_to_zero")
def null_to_zero(x: float | None) -> float:
    return 0.0 if x is None else x


@fastagg.function
def shout(s: str) -> str:
    return s.upper() + "!"


@fastagg.function(deterministic=False)
def half_or_none(k: int) -> int | None:
    return k // 2 if k % 2 == 0 else None


@fastagg.function
def first_byte(b: bytes) -> int:
    return b[0] if len(b) else -1


FUNCTIONS = [clamp, null_to_zero, shout, half_or_none, first_byte]


@pytest.fixture
def db(con):
    fastagg.register(con, *FUNCTIONS)
    return con


def test_matches_python(db):
    rng = np.random.default_rng(1)
    for x in rng.normal(size=200):
        x = float(x)
        assert db.execute("SELECT clamp(?, -0.5, 0.5)", (x,)).fetchone()[0] == clamp(x, -0.5, 0.5)
    for k in range(-5, 6):
        assert db.execute("SELECT half_or_none(?)", (k,)).fetchone()[0] == half_or_none(k)
    for s in ["", "abc", "é日本"]:
        assert db.execute("SELECT shout(?)", (s,)).fetchone()[0] == shout(s)
    assert db.execute("SELECT first_byte(x'07ff'), first_byte(x'')").fetchone() == (7, -1)


def test_null_rules(db):
    assert db.execute("SELECT clamp(NULL, 0, 1), clamp(0.5, NULL, 1)").fetchone() == (None, None)
    assert db.execute("SELECT null_to_zero(NULL), null_to_zero(2.5)").fetchone() == (0.0, 2.5)


def test_in_query_over_table(db):
    db.execute("CREATE TABLE t (x REAL)")
    db.executemany("INSERT INTO t VALUES (?)", [(float(i) / 10,) for i in range(-20, 21)])
    got = db.execute("SELECT sum(clamp(x, -1, 1)) FROM t").fetchone()[0]
    assert got == pytest.approx(sum(clamp(i / 10, -1, 1) for i in range(-20, 21)))


def test_deterministic_function_allowed_in_index(db):
    db.execute("CREATE TABLE t (x REAL)")
    db.execute("CREATE INDEX t_clamped ON t (clamp(x, 0, 1))")
    with pytest.raises(sqlite3.OperationalError, match="non-deterministic"):
        db.execute("CREATE INDEX t_half ON t (half_or_none(x))")


def test_query_functions_keyword():
    import pandas as pd

    df = pd.DataFrame({"x": [-2.0, 0.5, 3.0]})
    out = fastagg.query(df, "SELECT clamp(x, 0, 1) AS c FROM df", functions=[clamp])
    assert out["c"].tolist() == [0.0, 0.5, 1.0]


def test_error_in_function_fails_statement():
    proc = run_isolated(
        """
        import sqlite3, fastagg
        @fastagg.function
        def inv(x: float) -> float:
            return 1.0 / x
        con = sqlite3.connect(":memory:")
        fastagg.register(con, inv)
        print(con.execute("SELECT inv(4)").fetchone())
        try:
            con.execute("SELECT inv(0)").fetchone()
        except sqlite3.OperationalError as exc:
            print("error:", exc)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "(0.25,)" in proc.stdout
    assert "error: inv: ZeroDivisionError" in proc.stdout


@pytest.mark.parametrize(
    "body, fragment",
    [
        ("@fastagg.function\ndef f(x):\n    return x\n", "argument 'x' has no annotation"),
        ("@fastagg.function\ndef f(x: list) -> int:\n    return 1\n", "argument 'x' is annotated list"),
        ("@fastagg.function\ndef f(x: int):\n    return 1\n", "the result has no annotation"),
        ("@fastagg.function\nclass F:\n    pass\n", "decorates a function"),
    ],
)
def test_invalid_functions(body, fragment):
    with pytest.raises(fastagg.CompileError, match=fragment):
        exec(body, {"fastagg": fastagg})  # noqa: S102 - test input


@fastagg.function
def float_text(x: float) -> str:
    return f"{x}/{x * 0.0}"


@fastagg.function
def bytes_literal(k: int) -> bytes:
    return b"\x00yes\xff" if k else b""


def test_float_text_and_bytes_literal_results(con):
    """str/f-string of a float gave '<object type:float64>'; a bytes literal failed to compile."""
    fastagg.register(con, float_text, bytes_literal)
    for x in (0.988317, -0.0, 1e-5, 1e16, 12.5):
        assert con.execute("SELECT float_text(?)", (x,)).fetchone() == (f"{x}/{x * 0.0}",)
    assert con.execute("SELECT float_text(1e308 * 10)").fetchone() == ("inf/nan",)
    assert con.execute("SELECT bytes_literal(1), bytes_literal(0)").fetchone() == (b"\x00yes\xff", b"")
