"""Values picked from the rows: arg_min, arg_max, their aliases min_by, max_by, and any_value.

Both ``arg`` and ``val`` are any-typed (``fastagg.Value``): ``val`` is
compared by SQLite's rules (numbers by value, then text, then blobs, as
``min``/``max`` do) and ``arg`` comes back with its own type. The state is
the best (arg, val) pair so far; the first row wins a tie, and so does the
state merged into.
"""

from __future__ import annotations

import numpy as np
from numba.extending import register_jitable

from ..compile.spec import aggregate
from ..compile.value import Value
from ..compile.vector import vector
from ..native.anyvalue import value_parts
from .frames import FRAME_LIMIT, check_rows_kept
from .valuelist import best_index, find_pair, list_append, list_extend, list_get, list_remove_at, value_compare

__all__ = ["ArgMin", "ArgMax", "MinBy", "MaxBy", "AnyValue"]


# The bodies ArgMin and ArgMax share; *least* says which ``val`` is better.
# Each takes the state itself (a record in compiled code, where it is a
# reference: the helper's writes are the state's).


@register_jitable
def _better(c, least):
    """Whether comparison *c* (new ``val`` against the best) makes the new row the best: strictly."""
    return c < 0 if least else c > 0


@register_jitable
def _best_step(s, arg, val, least):
    if s.n == 0 or _better(value_compare(val, s.val.get()), least):
        s.arg.set(arg)
        s.val.set(val)
    s.n += 1
    if s.n <= FRAME_LIMIT:
        list_append(s.arg_tags, s.arg_payload, s.arg_data, s.arg_ends, arg)
        list_append(s.val_tags, s.val_payload, s.val_data, s.val_ends, val)


@register_jitable
def _best_merge(s, other, least):
    if other.n > 0 and (s.n == 0 or _better(value_compare(other.val.get(), s.val.get()), least)):
        s.arg.set(other.arg.get())
        s.val.set(other.val.get())
    if s.n + other.n <= FRAME_LIMIT:
        list_extend(s.arg_tags, s.arg_payload, s.arg_data, s.arg_ends,
                    other.arg_tags, other.arg_payload, other.arg_data, other.arg_ends)
        list_extend(s.val_tags, s.val_payload, s.val_data, s.val_ends,
                    other.val_tags, other.val_payload, other.val_data, other.val_ends)
    s.n += other.n


@register_jitable
def _best_finalize(s, least):
    if s.stale:
        i = best_index(s.val_tags.as_array(), s.val_payload.as_array(), s.val_data.as_array(),
                       s.val_ends.as_array(), least)
        if i >= 0:
            s.arg.set(list_get(s.arg_tags, s.arg_payload, s.arg_data, s.arg_ends, i))
            s.val.set(list_get(s.val_tags, s.val_payload, s.val_data, s.val_ends, i))
        s.stale = False
    if s.n == 0:
        return None
    return s.arg.get()


class _BestRow:
    """The rows seen and the (arg, val) of the best one so far (not registered).

    Each subclass's ``step`` and ``merge`` say which ``val`` is better; a
    row replaces the best only when strictly better, so the first of equal
    rows wins, and on a tie in ``merge`` this state's row wins: it comes
    first when partial states are merged in row order.

    The window form (:mod:`.frames`): the rows themselves are kept, in
    arrival order, while there are at most ``FRAME_LIMIT``, in two value
    lists (:mod:`.valuelist`); ``inverse`` removes the oldest equal row and
    marks the best stale, and ``finalize`` finds it again among the kept
    rows.
    """

    n: np.int64
    stale: np.bool_
    arg: Value
    val: Value
    arg_tags: vector(np.uint8)
    arg_payload: vector(np.int64)
    arg_data: vector(np.uint8)
    arg_ends: vector(np.int64)
    val_tags: vector(np.uint8)
    val_payload: vector(np.int64)
    val_data: vector(np.uint8)
    val_ends: vector(np.int64)

    def inverse(self, arg: Value, val: Value):
        check_rows_kept(self.n, len(self.val_tags))
        k = find_pair(
            self.arg_tags.as_array(), self.arg_payload.as_array(), self.arg_data.as_array(), self.arg_ends.as_array(),
            self.val_tags.as_array(), self.val_payload.as_array(), self.val_data.as_array(), self.val_ends.as_array(),
            value_parts(arg), value_parts(val),
        )
        if k >= 0:
            list_remove_at(self.arg_tags, self.arg_payload, self.arg_data, self.arg_ends, k)
            list_remove_at(self.val_tags, self.val_payload, self.val_data, self.val_ends, k)
            self.n -= 1
            self.stale = True

    def finalize(self) -> Value | None:
        raise NotImplementedError  # each subclass finds its best row


@aggregate(name="arg_min")
class ArgMin(_BestRow):
    """The ``arg`` of the row with the least ``val`` (the first such row).

    SQL: ``arg_min(arg, val)``, DuckDB's order, of any types: ``val``
    compares as SQL's ``min`` does (numbers by value, 1 = 1.0, then text by
    its bytes, then blobs), ``arg`` comes back with its own type. Rows where
    either is NULL are skipped; NULL for no rows. A window function (it
    keeps the frame's rows, see :mod:`.frames`).

    Attributes
    ----------
    n : np.int64
        Rows seen.
    stale : np.bool_
        ``inverse`` removed a row: ``finalize`` finds the best again.
    arg, val : fastagg.Value
        The best row so far.
    arg_*, val_* : fastagg.vector
        The rows, while there are at most ``FRAME_LIMIT`` (two value lists).

    Examples
    --------
    >>> s = ArgMin(); s.step("x", 3); s.step("y", 1.0); s.step("z", 1); s.finalize()
    'y'
    """

    def step(self, arg: Value, val: Value):
        _best_step(self, arg, val, True)

    def merge(self, other):
        _best_merge(self, other, True)

    def finalize(self) -> Value | None:
        return _best_finalize(self, True)


@aggregate(name="min_by")
class MinBy(ArgMin):
    """Alias of :class:`ArgMin`: SQL ``min_by(arg, val)``.

    Examples
    --------
    >>> s = MinBy(); s.step(10, 3.0); s.step(20, 1.0); s.finalize()
    20
    """


@aggregate(name="arg_max")
class ArgMax(_BestRow):
    """The ``arg`` of the row with the greatest ``val`` (the first such row).

    SQL: ``arg_max(arg, val)`` of any types, compared as SQL's ``max``
    does; rows where either is NULL are skipped; NULL for no rows. A window
    function. The state is :class:`ArgMin`'s.

    Examples
    --------
    >>> s = ArgMax(); s.step(10, "b"); s.step(20, "a"); s.step(30, 5); s.finalize()
    10
    """

    def step(self, arg: Value, val: Value):
        _best_step(self, arg, val, False)

    def merge(self, other):
        _best_merge(self, other, False)

    def finalize(self) -> Value | None:
        return _best_finalize(self, False)


@aggregate(name="max_by")
class MaxBy(ArgMax):
    """Alias of :class:`ArgMax`: SQL ``max_by(arg, val)``.

    Examples
    --------
    >>> s = MaxBy(); s.step(10, 3.0); s.step(20, 1.0); s.finalize()
    10
    """


@aggregate(name="any_value")
class AnyValue:
    """The first non-NULL value, with its own type.

    SQL: ``any_value(x)`` of any type, DuckDB's: rows where ``x`` is NULL
    are skipped; NULL for no rows. "First" is the order in which rows reach
    the state (use DuckDB's ``any_value(x ORDER BY ...)`` to compare). A
    window function (it keeps the frame's rows, see :mod:`.frames`: the
    frame's first value is the oldest kept); mergeable, this state's value
    first.

    Attributes
    ----------
    n : np.int64
        Rows seen (in the frame).
    stale : np.bool_
        ``inverse`` removed the first row: ``finalize`` takes the next.
    first : fastagg.Value
        The first value.
    tags, payload, data, ends : fastagg.vector
        The rows, while there are at most ``FRAME_LIMIT``.

    Examples
    --------
    >>> s = AnyValue(); s.step("b"); s.step(1); s.finalize()
    'b'
    """

    n: np.int64
    stale: np.bool_
    first: Value
    tags: vector(np.uint8)
    payload: vector(np.int64)
    data: vector(np.uint8)
    ends: vector(np.int64)

    def step(self, x: Value):
        if self.n == 0:
            self.first.set(x)
        self.n += 1
        if self.n <= FRAME_LIMIT:
            list_append(self.tags, self.payload, self.data, self.ends, x)

    def inverse(self, x: Value):
        # A frame's rows leave oldest first: the one leaving is the first kept.
        check_rows_kept(self.n, len(self.tags))
        if self.n > 0:
            list_remove_at(self.tags, self.payload, self.data, self.ends, 0)
            self.n -= 1
            self.stale = True

    def merge(self, other):
        if self.n == 0 and other.n > 0:
            self.first.set(other.first.get())
        if self.n + other.n <= FRAME_LIMIT:
            list_extend(self.tags, self.payload, self.data, self.ends, other.tags, other.payload, other.data, other.ends)
        self.n += other.n

    def finalize(self) -> Value | None:
        if self.stale:
            if self.n > 0:
                self.first.set(list_get(self.tags, self.payload, self.data, self.ends, 0))
            self.stale = False
        if self.n == 0:
            return None
        return self.first.get()
