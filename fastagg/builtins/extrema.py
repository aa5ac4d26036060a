"""Values picked by another column's extreme: arg_min, arg_max and their aliases min_by, max_by.

The state is the best (arg, val) pair so far; the first row wins a tie,
and so does the state merged into.
"""

from __future__ import annotations

import numpy as np

from ..compile.spec import aggregate

__all__ = ["ArgMin", "ArgMax", "MinBy", "MaxBy"]


class _BestRow:
    """The rows seen and the (arg, val) of the best one so far (not registered).

    Each subclass's ``step`` and ``merge`` say which ``val`` is better; a
    row replaces the best only when strictly better, so the first of equal
    rows wins, and on a tie in ``merge`` this state's row wins: it comes
    first when partial states are merged in row order.
    """

    n: np.int64
    arg: np.float64
    val: np.float64

    def finalize(self) -> float | None:
        if self.n == 0:
            return None
        return self.arg


@aggregate(name="arg_min")
class ArgMin(_BestRow):
    """The ``arg`` of the row with the least ``val`` (the first such row).

    SQL: ``arg_min(arg, val)``, DuckDB's order; rows where either is NULL
    are skipped; NULL for no rows. Both are floats: an integer ``arg``
    comes back as a float (exact up to 2**53). Not a window function.

    Attributes
    ----------
    n : np.int64
        Rows seen.
    arg, val : np.float64
        The best row so far.

    Examples
    --------
    >>> s = ArgMin(); s.step(10.0, 3.0); s.step(20.0, 1.0); s.step(30.0, 1.0); s.finalize()
    20.0
    """

    def step(self, arg: float, val: float):
        if self.n == 0 or val < self.val:
            self.arg = arg
            self.val = val
        self.n += 1

    def merge(self, other):
        if other.n > 0 and (self.n == 0 or other.val < self.val):
            self.arg = other.arg
            self.val = other.val
        self.n += other.n


@aggregate(name="min_by")
class MinBy(ArgMin):
    """Alias of :class:`ArgMin`: SQL ``min_by(arg, val)``.

    Examples
    --------
    >>> s = MinBy(); s.step(10.0, 3.0); s.step(20.0, 1.0); s.finalize()
    20.0
    """


@aggregate(name="arg_max")
class ArgMax(_BestRow):
    """The ``arg`` of the row with the greatest ``val`` (the first such row).

    SQL: ``arg_max(arg, val)``; rows where either is NULL are skipped; NULL
    for no rows. Both are floats. Not a window function. The state is
    :class:`ArgMin`'s.

    Examples
    --------
    >>> s = ArgMax(); s.step(10.0, 3.0); s.step(20.0, 1.0); s.finalize()
    10.0
    """

    def step(self, arg: float, val: float):
        if self.n == 0 or val > self.val:
            self.arg = arg
            self.val = val
        self.n += 1

    def merge(self, other):
        if other.n > 0 and (self.n == 0 or other.val > self.val):
            self.arg = other.arg
            self.val = other.val
        self.n += other.n


@aggregate(name="max_by")
class MaxBy(ArgMax):
    """Alias of :class:`ArgMax`: SQL ``max_by(arg, val)``.

    Examples
    --------
    >>> s = MaxBy(); s.step(10.0, 3.0); s.step(20.0, 1.0); s.finalize()
    10.0
    """
