"""Property tests at type edges: int64 bounds, floats, arbitrary text and bytes."""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastagg


@fastagg.aggregate(name="p_isum")
class ISum:
    total: np.int64
    count: np.int64

    def step(self, x: int):
        self.total += x
        self.count += 1

    def finalize(self) -> int | None:
        return self.total if self.count else None


@fastagg.aggregate(name="p_fmax")
class FMax:
    best: float
    seen: bool

    def step(self, x: float):
        if not self.seen or x > self.best:
            self.best = x
        self.seen = True

    def finalize(self) -> float | None:
        return self.best if self.seen else None


@fastagg.aggregate(name="p_longest")
class Longest:
    """Keeps the length and first code point of the longest text: str in, str out."""

    length: np.int64
    first: np.int64

    def step(self, s: str):
        if len(s) > self.length:
            self.length = len(s)
            self.first = ord(s[0])

    def finalize(self) -> str:
        return chr(self.first) * self.length if self.length else ""


@fastagg.aggregate(name="p_bytesum")
class ByteSum:
    total: np.int64

    def step(self, b: bytes):
        for v in b:
            self.total += v

    def finalize(self) -> int:
        return self.total


@pytest.fixture(scope="module")
def con():
    connection = sqlite3.connect(":memory:")
    fastagg.register(connection, ISum, FMax, Longest, ByteSum)
    yield connection
    connection.close()


def run(con, name, values):
    con.execute("DROP TABLE IF EXISTS v")
    con.execute("CREATE TABLE v (x)")
    con.executemany("INSERT INTO v VALUES (?)", [(x,) for x in values])
    return con.execute(f"SELECT {name}(x) FROM v").fetchone()[0]


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@SETTINGS
@given(st.lists(INT64, max_size=20))
def test_int64_sum_wraps_like_numpy(con, values):
    expected = int(np.array(values, dtype=np.int64).sum(dtype=np.int64)) if values else None
    assert run(con, "p_isum", values) == expected


@SETTINGS
@given(st.lists(st.floats(allow_nan=False, allow_infinity=True, width=64), max_size=20))
def test_float_max(con, values):
    expected = max(values) if values else None
    got = run(con, "p_fmax", values)
    assert got == expected or (math.isnan(got) and math.isnan(expected))


@SETTINGS
@given(st.lists(st.text(max_size=30), max_size=10))
def test_text_arguments_and_results(con, values):
    longest = max(values, key=len, default="")
    expected = longest[0] * len(longest) if longest else ""
    assert run(con, "p_longest", values) == expected


@SETTINGS
@given(st.lists(st.binary(max_size=40), max_size=10))
def test_blob_arguments(con, values):
    assert run(con, "p_bytesum", values) == sum(sum(b) for b in values)
