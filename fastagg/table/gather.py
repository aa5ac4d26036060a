"""Ordered cursors: the used columns gathered in output order, CHUNK rows at a time.

After xFilter sorts the rows, reading them through the permutation would
jump around memory for every column SQLite asks for. Instead the cursor
gathers the columns the query uses (``colUsed``) into a block a chunk at a
time, so xColumn reads sequentially.

The block (``sqlite3_malloc64``, owned by the cursor, freed in xFilter and
xClose) starts with a copy of the table's :data:`COLUMN` array whose used
columns (``gathered = 1``) point at CHUNK-row buffers in the block: float
columns as float64 (NaN = NULL), datetimes as int64 (INT64_MIN = NULL),
integers as int64, dates as int32, text and blobs as (address, length)
pairs into the frame's pinned bytes; dictionary codes are resolved; a byte
mask carries the other NULLs.
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit

from ..native.intrinsics import address_of, as_voidptr, is_null
from ..sqlite.declarations import sqlite3_malloc64
from ..sqlite.structs import COLUMN
from .columns import (
    K_BLOB32, K_BLOB64, K_DATE32, K_DATETIME, K_F32, K_F64, K_I64, K_NULL, K_PBLOB, K_PTEXT,
    K_TEXT32, K_TEXT64, K_U64, V_BYTEMASK, V_NONE,
)
from .values import INT64_MIN, float_value, int_value, span, value_row

__all__ = ["CHUNK", "alloc_block", "fill_block"]

CHUNK = 4096  # rows gathered at a time by an ordered cursor
CHUNK_BYTES = 17 * CHUNK  # per gathered column: 16-byte values (or pairs) + a NULL mask

_COLUMN_SIZE = COLUMN.itemsize


@njit(cache=True)
def _col_used(used, col):
    """Whether bit *col* of colUsed is set (bit 63 stands for every column from 63)."""
    return ((used >> min(col, 63)) & 1) != 0


@njit(cache=True)
def alloc_block(cols, used):
    """Allocate a cursor's gathered block for the used columns; 0 if none, -1 on NOMEM."""
    ncols = len(cols)
    nm = 0
    for col in range(ncols):
        if _col_used(used, col) and cols[col].kind != K_NULL:
            nm += 1
    if nm == 0:
        return np.int64(0)
    head = ncols * _COLUMN_SIZE
    p = sqlite3_malloc64(head + nm * CHUNK_BYTES)
    if is_null(p):
        return np.int64(-1)
    base = address_of(p)
    dst = carray(p, head, np.uint8)
    src = carray(as_voidptr(cols.ctypes.data), head, np.uint8)
    for i in range(head):  # a loop, not dst[:] = src: see fastagg.table.records.set_rows
        dst[i] = src[i]
    mcols = carray(p, ncols, COLUMN)
    buf = base + head
    for col in range(ncols):
        cd = cols[col]
        md = mcols[col]
        k = cd.kind
        md.gathered = 0
        if k == K_NULL or not _col_used(used, col):
            continue
        nullable = cd.validity_kind != V_NONE or cd.codes != 0
        md.gathered = 1
        md.data = buf
        md.validity = buf + 16 * CHUNK
        md.validity_offset = 0
        md.codes = 0
        md.codes_validity = 0
        md.validity_kind = V_BYTEMASK if nullable else V_NONE
        if k == K_F32 or k == K_F64:
            md.kind = K_F64
            md.validity_kind = V_NONE
        elif k == K_DATETIME:
            md.validity_kind = V_NONE
        elif k == K_TEXT32 or k == K_TEXT64:
            md.kind = K_PTEXT
        elif k == K_BLOB32 or k == K_BLOB64:
            md.kind = K_PBLOB
        elif k != K_U64 and k != K_DATE32:
            md.kind = K_I64
        buf += CHUNK_BYTES
    return base


@njit(cache=True)
def fill_block(cols, mcols, perm_addr, start, count):
    """Gather rows ``perm[start:start + count]`` of every gathered column into the block."""
    perm = carray(as_voidptr(perm_addr + 8 * start), count, np.int64)
    for col in range(len(cols)):
        cd = cols[col]
        md = mcols[col]
        if md.gathered == 0:
            continue
        k = cd.kind
        mk = md.kind
        out = as_voidptr(md.data)
        mask = carray(as_voidptr(md.validity), count, np.uint8)
        plain = cd.validity_kind == V_NONE and cd.codes == 0
        if plain and (k == K_F64 or k == K_I64 or k == K_U64 or k == K_DATETIME):
            src = carray(as_voidptr(cd.data), cd.nvalues, np.int64)
            dst = carray(out, count, np.int64)
            for j in range(count):
                dst[j] = src[perm[j]]
        elif mk == K_F64:
            dst = carray(out, count, np.float64)
            for j in range(count):
                rr = value_row(cd, perm[j])
                dst[j] = np.nan if rr < 0 else float_value(cd, rr)
        elif k == K_DATETIME:
            dst = carray(out, count, np.int64)
            for j in range(count):
                rr = value_row(cd, perm[j])
                dst[j] = INT64_MIN if rr < 0 else int_value(cd, rr)
        elif mk == K_PTEXT or mk == K_PBLOB:
            dst = carray(out, 2 * count, np.int64)
            data = cd.data
            for j in range(count):
                rr = value_row(cd, perm[j])
                if rr < 0:
                    mask[j] = 1
                    dst[2 * j] = 0
                    dst[2 * j + 1] = 0
                else:
                    mask[j] = 0
                    s, e = span(cd, rr)
                    dst[2 * j] = data + s
                    dst[2 * j + 1] = e - s
        else:  # integers (uint64 keeps its bits), booleans as int64; dates as int32
            wide = mk != K_DATE32
            dst64 = carray(out, count, np.int64)
            dst32 = carray(out, count, np.int32)
            for j in range(count):
                rr = value_row(cd, perm[j])
                v = np.int64(0)
                mask[j] = 1 if rr < 0 else 0
                if rr >= 0:
                    v = int_value(cd, rr)
                if wide:
                    dst64[j] = v
                else:
                    dst32[j] = np.int32(v)
