"""Text and blob sort keys: a native image of their own, built on first need.

Ranking text in SQLite's BINARY order (hashing the values, merge-sorting
the distinct ones, the short-value and dictionary shortcuts) was about a
third of the virtual table's compile from an empty cache, and a plain scan,
a WHERE on numbers or a GROUP BY on an integer key never runs it. So the
base image (:mod:`.module`) holds only the numeric half of the sort keys
(:func:`fastagg.table.ordering.numeric_keys`) and calls this image's one
entry through the slot ``SLOT_TEXT`` after the ``sqlite3_module``
(:mod:`.indirect`); xBestIndex loads it (:func:`fastagg.table.callbacks.load_text`)
before it plans an order on a text or blob column, and lets SQLite sort
when it cannot be had. The index image (:mod:`.indexed`) keeps its own copy
of the whole ordering code.
"""

from __future__ import annotations

import numpy as np
from numba import carray, cfunc, types

from ..native.intrinsics import as_voidptr
from ..sqlite import capi as _capi
from ..sqlite.structs import COLUMN
from .ordering import text_keys

__all__ = ["CALLBACKS"]

SQLITE_OK = _capi.SQLITE_OK
_I64 = types.int64


@cfunc(types.int32(_I64, _I64, _I64, _I64, _I64), cache=True)
def text_entry(column_addr, vals_addr, n, keys_addr, _unused):
    """Write the BINARY-order keys of the *n* value rows at *vals_addr* (int64, -1: NULL) to *keys_addr*.

    *column_addr* is the column's :data:`COLUMN` record. Returns SQLITE_OK.
    """
    cd = carray(as_voidptr(column_addr), 1, COLUMN)[0]
    vals = carray(as_voidptr(vals_addr), n, np.int64)
    keys = carray(as_voidptr(keys_addr), n, np.int64)
    text_keys(cd, vals, keys)
    return SQLITE_OK


#: The text image's entries, by slot name (:mod:`.indirect`; loaded by :mod:`.callbacks`).
CALLBACKS = {"text": text_entry}
