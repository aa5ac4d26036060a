"""Shared pieces of the built-ins' window forms (``inverse``), for states without an exact inverse.

A sketch (HyperLogLog registers, a t-digest) or a best-row pair cannot
forget a row. Their window form keeps the rows themselves, in arrival
order, beside the fixed state: ``inverse`` removes the oldest equal row and
marks the fixed state stale, and ``value`` rebuilds it from the kept rows,
which gives exactly what the function computes over that frame from
scratch. So that a plain aggregate does not grow without bound, a state
keeps rows only while it has seen at most :data:`FRAME_LIMIT`; ``inverse``
on a state that stopped keeping them raises instead of answering wrongly.
"""

from __future__ import annotations

import numba

__all__ = ["FRAME_LIMIT", "check_rows_kept", "move_to_end", "move_pair_to_end"]

FRAME_LIMIT = 1 << 20
"""Rows a sketch or arg_min/arg_max state keeps for its window form (8 or 16 bytes each)."""


@numba.njit(cache=True)
def check_rows_kept(n, kept):
    """Raise unless all *n* rows of the frame are kept (``inverse`` needs them)."""
    if kept != n:
        raise ValueError(
            "as a window function with a sliding frame this aggregate keeps at most "
            "1048576 rows of a frame (fastagg.builtins.frames.FRAME_LIMIT); this frame has more"
        )


@numba.njit(cache=True)
def move_to_end(a, x):
    """Move the first element of *a* equal to *x* to the end, keeping the others in order.

    Return whether one was found. The caller then drops the last element
    with the vector's ``remove(x)``: every element equal to *x* is
    identical, so removing the first one and moving the last into its place
    leaves the same sequence as dropping the last.
    """
    n = len(a)
    for i in range(n):
        if a[i] == x:
            for j in range(i, n - 1):
                a[j] = a[j + 1]
            a[n - 1] = x
            return True
    return False


@numba.njit(cache=True)
def move_pair_to_end(a, b, x, y):
    """:func:`move_to_end` for the first row with ``a[i] == x`` and ``b[i] == y``."""
    n = len(a)
    for i in range(n):
        if a[i] == x and b[i] == y:
            for j in range(i, n - 1):
                a[j] = a[j + 1]
                b[j] = b[j + 1]
            a[n - 1] = x
            b[n - 1] = y
            return True
    return False
