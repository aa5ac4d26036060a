"""Failing calls and their own error message: copied under the connection mutex, in compiled code.

A connection's error message (``sqlite3_errmsg``) is replaced by the next
API call on it from any thread: read later, a failed prepare or step of one
thread reports another thread's "not an error" or "another row available".
Compiled code reads it while still holding the connection mutex, with the
GIL released throughout; holding that mutex from Python could deadlock, as
ctypes takes the GIL back after every call while a thread holding the GIL
may be waiting for the mutex (Python's ``sqlite3`` calls SQLite with the GIL
held). Used by the reader's loop (:mod:`fastagg.native.read_loop`);
Python-side calls use :func:`fastagg.sqlite.capi.error_message`.
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit

from ..sqlite.codes import SQLITE_NOMEM, SQLITE_OK
from ..sqlite.declarations import (
    sqlite3_db_mutex,
    sqlite3_errmsg,
    sqlite3_extended_errcode,
    sqlite3_mutex_enter,
    sqlite3_mutex_leave,
    sqlite3_prepare_v2,
)
from .intrinsics import address_of, as_voidptr, is_null

__all__ = ["MESSAGE_BYTES", "copy_errmsg", "prepare_locked"]

MESSAGE_BYTES = 1024  # extended code (8 bytes) and an error message, NUL-terminated


@njit(cache=True, nogil=True)
def copy_errmsg(db, rc, message):
    """Copy the connection's error message and code into *message*, under its mutex.

    ``message[:8]`` receives the extended result code (int64), the bytes
    after it the message (truncated, NUL-terminated). The caller holds the
    connection mutex, so the message is that of the call that returned *rc*.
    """
    codes = message[:8].view(np.int64)
    codes[0] = rc if rc == SQLITE_NOMEM else sqlite3_extended_errcode(db)
    ptr = sqlite3_errmsg(db)
    k = 0
    if rc != SQLITE_NOMEM and not is_null(ptr):  # NOMEM: the loop's own, maybe not SQLite's
        start = address_of(ptr)
        while k < message.size - 9:
            byte = carray(as_voidptr(start + k), 1, np.uint8)[0]
            if byte == 0:
                break
            message[8 + k] = byte
            k += 1
    message[8 + k] = 0


@njit(cache=True, nogil=True)
def prepare_locked(handle, sql_address, nbytes, out, message):
    """Prepare one statement, and on failure copy its message, in one hold of the mutex.

    ``out[0]`` receives the ``sqlite3_stmt*``, ``out[1]`` the tail pointer.
    Returns the result code. The mutex is entered and left here, with the
    GIL released throughout: holding it from Python could deadlock with a
    thread that holds the GIL while waiting for it.
    """
    db = as_voidptr(handle)
    mutex = sqlite3_db_mutex(db)
    sqlite3_mutex_enter(mutex)
    rc = sqlite3_prepare_v2(
        db, as_voidptr(sql_address), nbytes, as_voidptr(out.ctypes.data), as_voidptr(out.ctypes.data + 8)
    )
    if rc != SQLITE_OK:
        copy_errmsg(db, np.int64(rc), message)  # int64, as the reader's call: one specialisation
    sqlite3_mutex_leave(mutex)
    return rc
