"""Aggregate classes and result comparisons that several test files share.

The bodies here are plain Python classes. A test file that needs its own SQL
name decorates a subclass (``@fastagg.aggregate(name="fvar") class
FVar(WelfordVar): ...``): the decorator reads methods and annotations through
the class's bases, and it marks the class it is given, so one undecorated
body can serve any number of names. Classes decorated here (the window
family, :class:`NullCount`) are used under their own names.

For the Python reference of a compiled aggregate (the same class driven by
``sqlite3``'s own callbacks) see :mod:`reference`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastagg

# --------------------------------------------------------------- aggregates


class WelfordVar:
    """Sample variance by Welford's update: NULL for fewer than two rows.

    Undecorated: decorate a subclass to give it a SQL name.
    """

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


class MergeableWelfordVar(WelfordVar):
    """:class:`WelfordVar` with Chan's pairwise merge, for partial states and workers.

    Undecorated: decorate a subclass to give it a SQL name.
    """

    def merge(self, other):
        if other.n == 0:
            return
        n = self.n + other.n
        d = other.mean - self.mean
        self.mean += d * other.n / n
        self.m2 += other.m2 + d * d * self.n * other.n / n
        self.n = n


@fastagg.aggregate
class WinAvg:
    """avg(x) as a window function: step and inverse."""

    total: np.float64
    count: np.int64

    def step(self, x: float):
        self.total += x
        self.count += 1

    def inverse(self, x: float):
        self.total -= x
        self.count -= 1

    def finalize(self) -> float | None:
        return self.total / self.count if self.count else None


@fastagg.aggregate
class WinSum:
    """Integer sum; NULL for an empty frame, like SQLite's sum."""

    total: np.int64
    count: np.int64

    def step(self, x: int):
        self.total += x
        self.count += 1

    def inverse(self, x: int):
        self.total -= x
        self.count -= 1

    def finalize(self) -> int | None:
        return self.total if self.count else None


@fastagg.aggregate
class WinCount:
    """count(x) with a separate value(): finalize is never used in a window."""

    count: np.int64

    def step(self, x: float):
        self.count += 1

    def inverse(self, x: float):
        self.count -= 1

    def value(self) -> int:
        return self.count

    def finalize(self) -> int:
        return self.count


@fastagg.aggregate(name="nullcount")
class NullCount:
    """Count of NULL arguments: an optional argument receives NULL as None."""

    nulls: np.int64

    def step(self, x: float | None):
        if x is None:
            self.nulls += 1

    def finalize(self) -> int:
        return self.nulls


# -------------------------------------------------------------- comparisons


def assert_rows_close(a, b, rel=1e-9):
    """Assert two lists of result rows are equal, floats within *rel* (NaN equals NaN)."""
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert len(ra) == len(rb)
        for va, vb in zip(ra, rb):
            if isinstance(va, float) and isinstance(vb, float):
                assert va == pytest.approx(vb, rel=rel, abs=1e-12) or (math.isnan(va) and math.isnan(vb))
            else:
                assert va == vb


def assert_rows_match(got, want, rel=1e-12, what=""):
    """Assert result rows equal in value *and* SQL type, floats within *rel*.

    Stricter than :func:`assert_rows_close`: an integer where the reference
    has a real (``1`` for ``1.0``) fails, as does a reordering. Both sides are
    lists of tuples (``fetchall()``, or an Arrow table's rows).
    """
    assert len(got) == len(want), f"{what}: {len(got)} rows, expected {len(want)}"
    for number, (rg, rw) in enumerate(zip(got, want)):
        assert len(rg) == len(rw), f"{what}: row {number} has {len(rg)} columns, expected {len(rw)}"
        for column, (vg, vw) in enumerate(zip(rg, rw)):
            where = f"{what}: row {number} column {column}: got {vg!r}, expected {vw!r}"
            assert type(vg) is type(vw), where
            if isinstance(vw, float):
                assert vg == pytest.approx(vw, rel=rel, abs=1e-12) or (math.isnan(vg) and math.isnan(vw)), where
            else:
                assert vg == vw, where


def table_rows(table) -> list[tuple]:
    """Return a ``pyarrow.Table``'s rows as tuples, as ``fetchall()`` gives them."""
    columns = [column.to_pylist() for column in table.columns]
    return list(zip(*columns)) if columns else []


def assert_tables_same(a, b, ordered: bool):
    """Assert two ``pyarrow.Table`` results are equal: names, schema, rows (floats to 1e-9).

    With ``ordered=False`` rows are compared as multisets.
    """
    assert a.column_names == b.column_names
    assert a.schema == b.schema, (a.schema, b.schema)
    ra, rb = a.to_pylist(), b.to_pylist()
    if not ordered:
        key = lambda r: [(v is None, repr(v) if not isinstance(v, float) else round(v, 6)) for v in r.values()]  # noqa: E731
        ra, rb = sorted(ra, key=key), sorted(rb, key=key)
    assert len(ra) == len(rb)
    for x, y in zip(ra, rb):
        for name in x:
            u, v = x[name], y[name]
            if isinstance(u, float) and isinstance(v, float):
                assert math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-9), (name, u, v)
            else:
                assert u == v, (name, u, v)
