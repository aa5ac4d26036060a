"""The reader's compiled loops, and their C entry points.

:func:`read_rows` and :func:`format_mixed` are the loops
:mod:`fastagg.reader` runs (see its docstring for the buffers). They return
numpy arrays, which only numba's dispatcher can hand to Python; so each has
a C entry (a ``numba.cfunc``, :data:`ENTRIES`) that writes the rc, the row
count and every result array's NRT meminfo, data pointer and shape into an
int64 array the caller passes. The caller (:mod:`fastagg.reader`, through
ctypes, with the GIL released) wraps the data as numpy arrays and releases
each meminfo with ``NRT_MemInfo_release`` when the array dies. Being
cfuncs, the entries are loaded from a native image without numba.
"""

from __future__ import annotations

import numpy as np
from numba import carray, cfunc, njit, types
from numba.extending import intrinsic

from ..sqlite import capi as _capi
from ..sqlite.codes import SQLITE_DONE, SQLITE_NOMEM, SQLITE_OK, SQLITE_ROW
from ..sqlite.declarations import (
    sqlite3_bind_double,
    sqlite3_bind_int64,
    sqlite3_column_bytes,
    sqlite3_column_text,
    sqlite3_column_value,
    sqlite3_db_handle,
    sqlite3_db_mutex,
    sqlite3_mutex_enter,
    sqlite3_mutex_leave,
    sqlite3_reset,
    sqlite3_step,
    sqlite3_value_blob,
    sqlite3_value_bytes,
    sqlite3_value_double,
    sqlite3_value_int64,
    sqlite3_value_text,
    sqlite3_value_type,
)
from .intrinsics import as_voidptr, is_null
from .statement import MESSAGE_BYTES, copy_errmsg, prepare_locked

__all__ = ["ENTRIES", "OUT_SLOTS", "read_rows", "format_mixed"]

SQLITE_INTEGER = _capi.SQLITE_INTEGER
SQLITE_FLOAT = _capi.SQLITE_FLOAT
SQLITE_TEXT = _capi.SQLITE_TEXT
SQLITE_BLOB = _capi.SQLITE_BLOB
SQLITE_NULL = _capi.SQLITE_NULL

_MUTEX_ROWS = 4096  # rows read per hold of the connection mutex


@njit(cache=True, nogil=True, inline="always")
def _copy_bytes(dst, at, src, nbytes):
    """Copy *nbytes* from uint8 array *src* into *dst* at offset *at*."""
    # A plain loop, as every array copy here: an array-to-array slice
    # assignment checks the two arrays for overlap and compiles a
    # shape-mismatch error path that formats text (numba's str / repr of
    # tuples: ~0.4 s of an empty cache's compile per kind of site).
    for k in range(nbytes):
        dst[at + k] = src[k]


@njit(cache=True, nogil=True)
def _grow_bytes(buf, used, need):
    """Return *buf* with room for *need* bytes, keeping its first *used* bytes."""
    if need <= buf.size:
        return buf
    bigger = np.empty(max(need, 2 * buf.size, 64), np.uint8)
    _copy_bytes(bigger, 0, buf, used)
    return bigger


@njit(cache=True, nogil=True)
def read_rows(stmt_address, ncol, utf8_database, message):
    """Step statement *stmt_address* to its end, keeping every column value.

    *utf8_database* says the connection's text encoding is UTF-8.

    Returns ``(rc, nrows, slots, tags, seen, data, dstart)``: *rc* is
    ``SQLITE_DONE`` or the failing result code, whose message and extended
    code are then copied into *message* (:func:`fastagg.native.statement.copy_errmsg`)
    before the connection's mutex is let go; ``slots[c, :nrows+1]`` and
    ``tags[c, :nrows]`` describe column *c* (module docstring); ``seen[c]``
    has bit ``1 << type`` set for each SQLite type met; the bytes of column
    *c* are ``data[dstart[c]:dstart[c+1]]``. The statement stays owned by
    the caller, who finalizes it.
    """
    stmt = as_voidptr(stmt_address)
    cap = 1024
    slots = np.empty((ncol, cap + 1), np.int64)
    reals = slots.view(np.float64)
    tags = np.empty((ncol, cap), np.uint8)
    seen = np.zeros(ncol, np.int64)
    used = np.zeros(ncol, np.int64)  # bytes of text and blobs per column
    # Text and blob bytes of all columns, in row-then-column order; split into
    # exact-size per-column buffers after the last row.
    arena = np.empty(4096, np.uint8)
    # Counters start typed (not the literal 0): a call typed with a literal
    # argument is a second specialisation of the callee (numba compiled
    # _split_arena, _grow_bytes and two more twice).
    filled = np.int64(0)
    slots[:, 0] = 0
    n = np.int64(0)
    # Hold the connection's (recursive) mutex, as sqlite3_step and every
    # sqlite3_column_* call would take it anyway: the values of the current row
    # are then protected and read with the mutex-free sqlite3_value_*
    # functions, a single mutex round trip per value instead of two or three.
    # Released every _MUTEX_ROWS rows to let other threads of the connection in
    # (a NULL mutex, for a connection opened without one, is a no-op).
    mutex = sqlite3_db_mutex(sqlite3_db_handle(stmt))
    sqlite3_mutex_enter(mutex)
    rc = SQLITE_DONE
    while True:
        rc = sqlite3_step(stmt)
        if rc != SQLITE_ROW:
            break
        if n == cap:
            cap *= 2
            wider = np.empty((ncol, cap + 1), np.int64)
            wider_tags = np.empty((ncol, cap), np.uint8)
            for c in range(ncol):  # not wider[:, :n + 1] = slots[:, :n + 1] (see _copy_bytes)
                for r in range(n + 1):
                    wider[c, r] = slots[c, r]
                for r in range(n):
                    wider_tags[c, r] = tags[c, r]
            slots = wider
            reals = slots.view(np.float64)
            tags = wider_tags
        for c in range(ncol):
            value = sqlite3_column_value(stmt, c)
            t = sqlite3_value_type(value)
            tags[c, n] = t
            seen[c] |= 1 << t
            if t == SQLITE_INTEGER:
                slots[c, n + 1] = sqlite3_value_int64(value)
            elif t == SQLITE_FLOAT:
                reals[c, n + 1] = sqlite3_value_double(value)
            elif t == SQLITE_NULL:
                slots[c, n + 1] = 0
            else:
                # Pointer first, then the size of that representation.
                # sqlite3_value_text would first copy text that is not
                # NUL-terminated (all text read from a table) to terminate it;
                # in a UTF-8 database value_blob gives the same bytes uncopied.
                if t == SQLITE_TEXT and not utf8_database:
                    ptr = sqlite3_value_text(value)
                else:
                    ptr = sqlite3_value_blob(value)  # NULL for an empty value
                nbytes = sqlite3_value_bytes(value)
                if is_null(ptr) and nbytes > 0:
                    rc = SQLITE_NOMEM
                    break
                if filled + nbytes > arena.size:
                    arena = _grow_bytes(arena, filled, filled + nbytes)
                if nbytes > 0:
                    _copy_bytes(arena, filled, carray(ptr, nbytes, np.uint8), nbytes)
                filled += nbytes
                used[c] += nbytes
                slots[c, n + 1] = filled  # arena end; made column-local below
        if rc == SQLITE_NOMEM:
            break
        n += 1
        if n % _MUTEX_ROWS == 0:
            sqlite3_mutex_leave(mutex)
            sqlite3_mutex_enter(mutex)
    if rc != SQLITE_DONE:
        # Still under the mutex: no other thread's call has replaced the message.
        copy_errmsg(sqlite3_db_handle(stmt), rc, message)
    sqlite3_mutex_leave(mutex)
    if rc != SQLITE_DONE:
        return rc, n, slots, tags, seen, arena[:0], used
    for c in range(ncol):
        if used[c] == 0 and seen[c] & ((1 << SQLITE_TEXT) | (1 << SQLITE_BLOB)):
            # Only empty values: the slots hold arena ends of other columns' bytes.
            _zero_byte_slots(slots[c], tags[c], n)
    dstart = np.zeros(ncol + 1, np.int64)
    for c in range(ncol):
        dstart[c + 1] = dstart[c] + used[c]
    holders = 0
    for c in range(ncol):
        holders += used[c] > 0
    if holders <= 1:
        # One column holds all the bytes, in row order, and its slots are
        # already its offsets (NULLs stored 0: fix them to the running end).
        for c in range(ncol):
            if used[c] > 0:
                _fill_null_offsets(slots[c], tags[c], n)
                dstart[c + 1 :] = filled
        return rc, n, slots, tags, seen, arena[:filled], dstart
    data = np.empty(dstart[ncol], np.uint8)
    _split_arena(n, ncol, slots, tags, arena, data, dstart)
    return rc, n, slots, tags, seen, data, dstart


@njit(cache=True, nogil=True)
def _zero_byte_slots(slots, tags, n):
    """Give the text, blob and NULL rows of a column without bytes the offset 0."""
    for r in range(n):
        t = tags[r]
        if t == SQLITE_TEXT or t == SQLITE_BLOB or t == SQLITE_NULL:
            slots[r + 1] = 0


@njit(cache=True, nogil=True)
def _fill_null_offsets(slots, tags, n):
    """Give NULL rows of a byte column the end offset of the row before."""
    for r in range(n):
        if tags[r] == SQLITE_NULL:
            slots[r + 1] = slots[r] if r else 0


@njit(cache=True, nogil=True)
def _split_arena(n, ncol, slots, tags, arena, data, dstart):
    """Move each column's bytes from the arena to its part of *data*.

    Rewrites the slots of text, blob and NULL values in columns holding bytes
    into column-local end offsets, which then are the Arrow offsets.
    """
    ends = dstart[:ncol].copy()  # absolute end in data, per column
    pos = 0  # arena end of the previous value (the arena is in row-column order)
    for r in range(n):
        for c in range(ncol):
            if dstart[c + 1] == dstart[c]:
                continue
            t = tags[c, r]
            if t == SQLITE_TEXT or t == SQLITE_BLOB:
                end = slots[c, r + 1]
                _copy_bytes(data, ends[c], arena[pos:end], end - pos)
                ends[c] += end - pos
                pos = end
                slots[c, r + 1] = ends[c] - dstart[c]
            elif t == SQLITE_NULL:
                slots[c, r + 1] = ends[c] - dstart[c]


@njit(cache=True, nogil=True)
def format_mixed(fmt_address, slots, tags, data, n, capacity):
    """Rebuild a text/blob column whose rows also hold numbers.

    *slots* (``n + 1``) and *tags* (``n``) are the column's; *data* its bytes.
    Numbers become the text SQLite's ``CAST(x AS TEXT)`` gives, by stepping
    the helper statement *fmt_address* (``SELECT CAST(?1 AS TEXT)``).
    Returns ``(rc, offsets, bytes)``; *rc* is ``SQLITE_OK`` or the helper's
    failing result code.
    """
    fmt = as_voidptr(fmt_address)
    reals = slots.view(np.float64)
    offsets = np.empty(n + 1, np.int64)
    offsets[0] = 0
    out = np.empty(max(capacity, 64), np.uint8)
    m = np.int64(0)  # typed: see read_rows
    prev_end = np.int64(0)
    for r in range(n):
        t = tags[r]
        if t == SQLITE_INTEGER or t == SQLITE_FLOAT:
            if t == SQLITE_INTEGER:
                sqlite3_bind_int64(fmt, 1, slots[r + 1])
            else:
                sqlite3_bind_double(fmt, 1, reals[r + 1])
            rc = sqlite3_step(fmt)
            if rc != SQLITE_ROW:
                sqlite3_reset(fmt)
                return rc, offsets, out[:0]
            ptr = sqlite3_column_text(fmt, 0)
            nbytes = sqlite3_column_bytes(fmt, 0)
            if is_null(ptr):
                sqlite3_reset(fmt)
                return SQLITE_NOMEM, offsets, out[:0]
            out = _grow_bytes(out, m, m + nbytes)
            _copy_bytes(out, m, carray(ptr, nbytes, np.uint8), nbytes)
            m += nbytes
            sqlite3_reset(fmt)
        elif t == SQLITE_TEXT or t == SQLITE_BLOB:
            end = slots[r + 1]
            out = _grow_bytes(out, m, m + end - prev_end)
            _copy_bytes(out, m, data[prev_end:end], end - prev_end)
            m += end - prev_end
            prev_end = end
        offsets[r + 1] = m
    return SQLITE_OK, offsets, out[:m]



# --------------------------------------------------------------------------
# C entry points

#: int64 slots of an entry's output: rc, n, then (meminfo, data, rows, cols)
#: per result array. rc stays -1 if the entry failed before writing (a
#: MemoryError inside compiled code).
OUT_SLOTS = 2 + 4 * 5


@intrinsic
def _export(typingctx, arr):
    """Return ``(meminfo, data)`` of array *arr* as integers, with a new reference.

    The reference belongs to the caller of the C entry, who releases it with
    ``NRT_MemInfo_release``.
    """
    if not isinstance(arr, types.Array):
        return None
    sig = types.UniTuple(types.intp, 2)(arr)

    def codegen(context, builder, sig, args):
        ary = context.make_array(arr)(context, builder, value=args[0])
        context.nrt.incref(builder, arr, args[0])
        intp = context.get_value_type(types.intp)
        mi = builder.ptrtoint(ary.meminfo, intp)
        data = builder.ptrtoint(ary.data, intp)
        return context.make_tuple(builder, sig.return_type, [mi, data])

    return sig, codegen


@njit(cache=True, nogil=True)
def _put(out, i, exported, rows, cols):
    """Write result array *i*'s ``(meminfo, data)`` (:func:`_export`) and shape into *out*.

    Integers only, typed (``np.int64``, not literals): one specialisation
    for every call (with the arrays, and literal indices, it was seven).
    """
    mi, data = exported
    base = 2 + 4 * i
    out[base] = mi
    out[base + 1] = data
    out[base + 2] = rows
    out[base + 3] = cols


_VP = types.voidptr
_I64 = types.int64


@cfunc(types.void(_I64, _I64, _I64, _VP, _VP), cache=True)
def read_rows_entry(stmt_address, ncol, utf8_database, out_ptr, message_ptr):
    """C entry of :func:`read_rows`: arrays slots, tags, seen, data, dstart.

    *message_ptr*: ``MESSAGE_BYTES`` bytes for the failing step's code and message.
    """
    out = carray(out_ptr, OUT_SLOTS, np.int64)
    out[0] = -1
    message = carray(message_ptr, MESSAGE_BYTES, np.uint8)
    rc, n, slots, tags, seen, data, dstart = read_rows(stmt_address, ncol, utf8_database != 0, message)
    one = np.int64(1)
    _put(out, np.int64(0), _export(slots), np.int64(slots.shape[0]), np.int64(slots.shape[1]))
    _put(out, one, _export(tags), np.int64(tags.shape[0]), np.int64(tags.shape[1]))
    _put(out, np.int64(2), _export(seen), np.int64(seen.size), one)
    _put(out, np.int64(3), _export(data), np.int64(data.size), one)
    _put(out, np.int64(4), _export(dstart), np.int64(dstart.size), one)
    out[1] = n
    out[0] = rc


@cfunc(types.void(_I64, _VP, _VP, _VP, _I64, _I64, _I64, _VP), cache=True)
def format_mixed_entry(fmt_address, slots_ptr, tags_ptr, data_ptr, data_size, n, capacity, out_ptr):
    """C entry of :func:`format_mixed`: arrays offsets, bytes."""
    out = carray(out_ptr, OUT_SLOTS, np.int64)
    out[0] = -1
    slots = carray(slots_ptr, n + 1, np.int64)
    tags = carray(tags_ptr, n, np.uint8)
    data = carray(data_ptr, data_size, np.uint8)
    rc, offsets, text = format_mixed(fmt_address, slots, tags, data, n, capacity)
    one = np.int64(1)
    _put(out, np.int64(0), _export(offsets), np.int64(offsets.size), one)
    _put(out, one, _export(text), np.int64(text.size), one)
    out[1] = n
    out[0] = rc


#: The C entries, by name, for :class:`fastagg.native.loader.NativeImage`.
@cfunc(types.int32(_I64, _I64, _I64, _VP, _VP), cache=True)
def prepare_entry(handle, sql_address, nbytes, out_ptr, message_ptr):
    """C entry of :func:`fastagg.native.statement.prepare_locked`: out = (stmt, tail)."""
    out = carray(out_ptr, 2, np.int64)
    message = carray(message_ptr, MESSAGE_BYTES, np.uint8)
    return prepare_locked(handle, sql_address, nbytes, out, message)


ENTRIES = {"read_rows": read_rows_entry, "format_mixed": format_mixed_entry, "prepare": prepare_entry}
