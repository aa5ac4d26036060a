"""Values picked by another column's extreme: arg_min, arg_max and their aliases min_by, max_by.

The state is the best (arg, val) pair so far; the first row wins a tie,
and so does the state merged into.
"""

from __future__ import annotations

import numba
import numpy as np

from ..compile.spec import aggregate
from ..compile.vector import vector
from .frames import FRAME_LIMIT, check_rows_kept, move_pair_to_end

__all__ = ["ArgMin", "ArgMax", "MinBy", "MaxBy"]


@numba.njit(cache=True)
def _best(vals, least):
    """Index of the first least (or greatest) of *vals*; -1 if empty."""
    best = -1
    for i in range(len(vals)):
        if best < 0 or (vals[i] < vals[best] if least else vals[i] > vals[best]):
            best = i
    return best


class _BestRow:
    """The rows seen and the (arg, val) of the best one so far (not registered).

    Each subclass's ``step`` and ``merge`` say which ``val`` is better; a
    row replaces the best only when strictly better, so the first of equal
    rows wins, and on a tie in ``merge`` this state's row wins: it comes
    first when partial states are merged in row order.

    The window form (:mod:`.frames`): the rows themselves are kept, in
    arrival order, while there are at most ``FRAME_LIMIT``; ``inverse``
    removes the oldest equal row and marks the best stale, and ``value``
    finds it again among the kept rows.
    """

    n: np.int64
    arg: np.float64
    val: np.float64
    stale: np.bool_
    args: vector(np.float64)
    vals: vector(np.float64)

    def inverse(self, arg: float, val: float):
        check_rows_kept(self.n, len(self.vals))
        if move_pair_to_end(self.args.as_array(), self.vals.as_array(), arg, val):
            self.args.remove(arg)
            self.vals.remove(val)
            self.n -= 1
            self.stale = True

    def finalize(self) -> float | None:
        raise NotImplementedError  # each subclass finds its best row


@aggregate(name="arg_min")
class ArgMin(_BestRow):
    """The ``arg`` of the row with the least ``val`` (the first such row).

    SQL: ``arg_min(arg, val)``, DuckDB's order; rows where either is NULL
    are skipped; NULL for no rows. Both are floats: an integer ``arg``
    comes back as a float (exact up to 2**53). A window function (it keeps
    the frame's rows, see :mod:`.frames`).

    Attributes
    ----------
    n : np.int64
        Rows seen.
    arg, val : np.float64
        The best row so far.
    stale : np.bool_
        ``inverse`` removed a row: ``value`` finds the best again.
    args, vals : fastagg.vector(np.float64)
        The rows, while there are at most ``FRAME_LIMIT``.

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
        if self.n <= FRAME_LIMIT:
            self.args.append(arg)
            self.vals.append(val)

    def merge(self, other):
        if other.n > 0 and (self.n == 0 or other.val < self.val):
            self.arg = other.arg
            self.val = other.val
        if self.n + other.n <= FRAME_LIMIT:
            self.args.extend(other.args.as_array())
            self.vals.extend(other.vals.as_array())
        self.n += other.n

    def finalize(self) -> float | None:
        if self.stale:
            i = _best(self.vals.as_array(), True)
            if i >= 0:
                self.arg = self.args[i]
                self.val = self.vals[i]
            self.stale = False
        if self.n == 0:
            return None
        return self.arg
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
    for no rows. Both are floats. A window function. The state is
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
        if self.n <= FRAME_LIMIT:
            self.args.append(arg)
            self.vals.append(val)

    def merge(self, other):
        if other.n > 0 and (self.n == 0 or other.val > self.val):
            self.arg = other.arg
            self.val = other.val
        if self.n + other.n <= FRAME_LIMIT:
            self.args.extend(other.args.as_array())
            self.vals.extend(other.vals.as_array())
        self.n += other.n

    def finalize(self) -> float | None:
        if self.stale:
            i = _best(self.vals.as_array(), False)
            if i >= 0:
                self.arg = self.args[i]
                self.val = self.vals[i]
            self.stale = False
        if self.n == 0:
            return None
        return self.arg


@aggregate(name="max_by")
class MaxBy(ArgMax):
    """Alias of :class:`ArgMax`: SQL ``max_by(arg, val)``.

    Examples
    --------
    >>> s = MaxBy(); s.step(10.0, 3.0); s.step(20.0, 1.0); s.finalize()
    10.0
    """
