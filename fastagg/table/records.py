"""Small helpers shared by the virtual table's two images (:mod:`.module`, :mod:`.indexed`).

Kept apart from both so that importing one image's callbacks never
compiles the other's (numba compiles a ``cfunc`` when it is decorated).
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit

from ..native.intrinsics import address_of, as_voidptr, is_null
from ..sqlite.declarations import sqlite3_malloc64
from ..sqlite.structs import COLUMN, TABLE

__all__ = ["columns_of", "record", "set_rows"]


@njit(cache=True)
def record(addr, dtype):
    """The struct *dtype* at integer address *addr*, as a one-element array."""
    return carray(as_voidptr(addr), 1, dtype)


@njit(cache=True)
def columns_of(table_addr):
    """The :data:`COLUMN` array of the table at *table_addr*."""
    tab = carray(as_voidptr(table_addr), 1, TABLE)[0]
    return carray(as_voidptr(tab.columns), tab.ncols, COLUMN)


@njit(cache=True)
def set_rows(cur, rows):
    """Hand the cursor a copy of *rows* (sqlite3_malloc64, its own); False on NOMEM."""
    m = len(rows)
    cur.end = m
    if m == 0:
        return True
    p = sqlite3_malloc64(8 * m)
    if is_null(p):
        return False
    dst = carray(p, m, np.int64)
    # A loop, not ``dst[:] = rows``: numba compiles each array-to-array slice
    # assignment with a shape-mismatch error path that formats text (about
    # 0.2 s of compile per site from an empty cache); LLVM makes this a memcpy.
    for i in range(m):
        dst[i] = rows[i]
    cur.rows = address_of(p)
    cur.own_rows = 1
    return True
