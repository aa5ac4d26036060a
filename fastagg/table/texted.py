"""Sort keys of every column but plain int64 / float64 ones: a native image of its own, built on first need.

Ranking text in SQLite's BINARY order (hashing the values, merge-sorting
the distinct ones, the short-value and dictionary shortcuts) was about a
third of the virtual table's compile from an empty cache, and reading the
other non-plain columns' values in order (validity masks and bitmaps,
dictionary codes, dates and datetimes, uint64, narrower integers, floats
and booleans) most of what was left of the base's ORDER BY; a plain scan,
a WHERE or a GROUP BY on a numpy int64 / float64 key never runs either. So
the base image (:mod:`.module`) holds only the plain keys
(:func:`fastagg.table.ordering.plain_keys`) and calls this image's one
entry through the slot ``SLOT_TEXT`` after the ``sqlite3_module``
(:mod:`.indirect`) for any other column; xBestIndex loads it
(:func:`fastagg.table.callbacks.load_text`) before it plans an order on
such a column, and lets SQLite sort when it cannot be had. The index image
(:mod:`.indexed`) keeps its own copy of the whole ordering code.
"""

from __future__ import annotations

import numpy as np
from numba import carray, cfunc, types

from ..native.intrinsics import as_voidptr
from ..sqlite import capi as _capi
from ..sqlite.structs import COLUMN
from .ordering import _sort_keys

__all__ = ["CALLBACKS"]

SQLITE_OK = _capi.SQLITE_OK
_I64 = types.int64


@cfunc(types.int32(_I64, _I64, _I64, _I64, _I64), cache=True)
def keys_entry(column_addr, rows_addr, n, keys_addr, isnull_addr):
    """Write the sort keys and NULL flags of the *n* table rows at *rows_addr* (int64) to *keys_addr* / *isnull_addr*.

    :func:`fastagg.table.ordering._sort_keys` of the column whose
    :data:`COLUMN` record is at *column_addr*: int64 keys in SQLite's order
    of its values (uint8 NULL flags, key 0). Returns SQLITE_OK.
    """
    cd = carray(as_voidptr(column_addr), 1, COLUMN)[0]
    rows = carray(as_voidptr(rows_addr), n, np.int64)
    keys, isnull = _sort_keys(cd, rows)
    out = carray(as_voidptr(keys_addr), n, np.int64)
    null = carray(as_voidptr(isnull_addr), n, np.uint8)
    for i in range(n):  # not out[:] = keys (see records.set_rows)
        out[i] = keys[i]
        null[i] = isnull[i]
    return SQLITE_OK


#: The keys image's entries, by slot name (:mod:`.indirect`; loaded by :mod:`.callbacks`).
CALLBACKS = {"keys": keys_entry}
