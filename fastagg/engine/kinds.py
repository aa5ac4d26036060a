"""What the native engine's shape check and WHERE share: column-kind sets and the reason exception.

Kept apart so that :mod:`.shape` and :mod:`.predicate` import it, not each
other. The numbers are :mod:`fastagg.table.columns`' ``K_*`` codes, repeated
here so that the shape check imports no numba.
"""

from __future__ import annotations

__all__ = ["FLOAT_KINDS", "KEY_KINDS", "NUMERIC_KINDS", "TEXT_KINDS", "TIME_KINDS", "NotInShape"]

NUMERIC_KINDS = frozenset({1, 2, 3, 4, 5, 6, 7, 9, 10, 11})  # ints (not uint64), floats, Arrow bool
TEXT_KINDS = frozenset({12, 13})
TIME_KINDS = frozenset({16, 17})  # datetime, date32: SQLite sees their text
KEY_KINDS = NUMERIC_KINDS | TEXT_KINDS | {14, 15, 16, 17}  # + blob, datetime, date
FLOAT_KINDS = frozenset({9, 10})


class NotInShape(Exception):
    """The statement is outside the native shape; the message is the reason."""
