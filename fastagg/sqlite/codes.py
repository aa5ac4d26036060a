"""SQLite's result codes and the one mapping from a code to a Python exception.

Every stage that turns a failed SQLite call into an exception goes through
:func:`exception_for`, so fastagg raises what Python's ``sqlite3`` raises for
the same failure. Imports no numba and no ctypes binding.

Codes: https://www.sqlite.org/rescode.html
"""

from __future__ import annotations

import sqlite3

__all__ = ["exception_for"]

# Primary result codes.
SQLITE_OK = 0
SQLITE_ERROR = 1
SQLITE_INTERNAL = 2
SQLITE_PERM = 3
SQLITE_ABORT = 4
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_NOMEM = 7
SQLITE_READONLY = 8
SQLITE_INTERRUPT = 9
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_NOTFOUND = 12
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_PROTOCOL = 15
SQLITE_EMPTY = 16
SQLITE_SCHEMA = 17
SQLITE_TOOBIG = 18
SQLITE_CONSTRAINT = 19
SQLITE_MISMATCH = 20
SQLITE_MISUSE = 21
SQLITE_RANGE = 25
SQLITE_ROW = 100
SQLITE_DONE = 101

# Exception class per primary result code, as Python's sqlite3 chooses them
# (Modules/_sqlite/util.c); any other code is a DatabaseError.
ERROR_CLASSES: dict[int, type[sqlite3.Error]] = {
    SQLITE_ERROR: sqlite3.OperationalError,
    SQLITE_INTERNAL: sqlite3.InternalError,
    SQLITE_PERM: sqlite3.OperationalError,
    SQLITE_ABORT: sqlite3.OperationalError,
    SQLITE_BUSY: sqlite3.OperationalError,
    SQLITE_LOCKED: sqlite3.OperationalError,
    SQLITE_READONLY: sqlite3.OperationalError,
    SQLITE_INTERRUPT: sqlite3.OperationalError,
    SQLITE_IOERR: sqlite3.OperationalError,
    SQLITE_CORRUPT: sqlite3.DatabaseError,
    SQLITE_NOTFOUND: sqlite3.InternalError,
    SQLITE_FULL: sqlite3.OperationalError,
    SQLITE_CANTOPEN: sqlite3.OperationalError,
    SQLITE_PROTOCOL: sqlite3.OperationalError,
    SQLITE_EMPTY: sqlite3.OperationalError,
    SQLITE_SCHEMA: sqlite3.OperationalError,
    SQLITE_TOOBIG: sqlite3.DataError,
    SQLITE_CONSTRAINT: sqlite3.IntegrityError,
    SQLITE_MISMATCH: sqlite3.IntegrityError,
    SQLITE_MISUSE: sqlite3.InterfaceError,
    SQLITE_RANGE: sqlite3.InterfaceError,
}


def exception_for(rc: int, message: str, errorcode: int | None = None) -> BaseException:
    """Return the exception ``sqlite3`` raises for (extended) result code *rc*.

    ``SQLITE_NOMEM`` is a :class:`MemoryError`; every other code is the
    :class:`sqlite3.Error` subclass of its primary code, carrying *message*
    and, as ``sqlite_errorcode``, *errorcode* (default *rc*).

    Examples
    --------
    >>> exc = exception_for(SQLITE_CONSTRAINT, "UNIQUE constraint failed: t.a", 2067)
    >>> type(exc).__name__, exc.sqlite_errorcode
    ('IntegrityError', 2067)
    """
    primary = rc & 0xFF
    exc = MemoryError() if primary == SQLITE_NOMEM else ERROR_CLASSES.get(primary, sqlite3.DatabaseError)(message)
    exc.sqlite_errorcode = rc if errorcode is None else errorcode
    return exc
