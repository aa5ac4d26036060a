"""Bulk loading: a frame copied into a real SQLite table in one transaction.

The rows go through a temporary registration of the frame with one
``INSERT INTO target SELECT * FROM <registration>`` inside a SAVEPOINT, or,
with ``method="bind"``, through a compiled bind / step / reset loop.
"""

from __future__ import annotations

import ctypes
import sqlite3

import numpy as np
from numba import carray, njit

from ..errors import Error
from ..native.intrinsics import as_voidptr
from ..sqlite import capi as _capi
from ..sqlite.declarations import (
    sqlite3_bind_blob64,
    sqlite3_bind_double,
    sqlite3_bind_int64,
    sqlite3_bind_null,
    sqlite3_bind_text64,
    sqlite3_reset,
    sqlite3_step,
)
from ..sqlite.structs import COLUMN, SCRATCH_BYTES, TABLE
from .columns import build_table, frame_columns, quote
from .registration import register_frame, registry_lock
from .values import (
    SQLITE_BLOB, SQLITE_FLOAT, SQLITE_INTEGER, SQLITE_STATIC, SQLITE_TEXT, SQLITE_TRANSIENT,
    SQLITE_UTF8, cell,
)

__all__ = ["load_frame"]

SQLITE_OK = _capi.SQLITE_OK
SQLITE_DONE = _capi.SQLITE_DONE


@njit(cache=True, nogil=True)
def _bind_cell(stmt, j, cd, r, scratch):
    """Bind row *r* of column *cd* to parameter *j* (1-based) of *stmt* (``sqlite3_bind_*``)."""
    t, iv, fv, addr, n, static = cell(cd, r, scratch)
    if t == SQLITE_INTEGER:
        return sqlite3_bind_int64(stmt, j, iv)
    if t == SQLITE_FLOAT:
        return sqlite3_bind_double(stmt, j, fv)
    if t == SQLITE_TEXT:
        destructor = SQLITE_STATIC if static else SQLITE_TRANSIENT
        return sqlite3_bind_text64(stmt, j, as_voidptr(addr), n, destructor, SQLITE_UTF8)
    if t == SQLITE_BLOB:
        return sqlite3_bind_blob64(stmt, j, as_voidptr(addr), n, SQLITE_STATIC if static else SQLITE_TRANSIENT)
    return sqlite3_bind_null(stmt, j)


@njit(cache=True, nogil=True)
def _insert_rows(stmt_addr, table_addr):
    """Bind, step and reset *stmt* once per row; return (rows done, last rc)."""
    stmt = as_voidptr(stmt_addr)
    tab = carray(as_voidptr(table_addr), 1, TABLE)[0]
    nrows = tab.nrows
    cols = carray(as_voidptr(tab.columns), tab.ncols, COLUMN)
    scratch = np.zeros(SCRATCH_BYTES, np.uint8)
    sp = as_voidptr(scratch.ctypes.data)
    for r in range(nrows):
        for c in range(len(cols)):
            rc = _bind_cell(stmt, c + 1, cols[c], r, sp)
            if rc != SQLITE_OK:
                return r, rc
        rc = sqlite3_step(stmt)
        if rc != SQLITE_DONE:
            sqlite3_reset(stmt)
            return r, rc
        sqlite3_reset(stmt)
    return nrows, SQLITE_OK


def _load_by_binding(handle, target, cols, columns, nrows):
    """INSERT with a compiled bind/step/reset loop; return rows inserted."""
    sql = f"INSERT INTO {target} ({cols}) VALUES ({', '.join('?' * len(columns))})".encode()
    stmt = ctypes.c_void_p()
    rc = _capi.lib.sqlite3_prepare_v2(handle, sql, -1, ctypes.byref(stmt), None)
    if rc != SQLITE_OK:
        raise sqlite3.OperationalError(_capi.errmsg(handle))
    try:
        table, column_structs = build_table(columns, None)
        done, rc = _insert_rows(stmt.value, table.ctypes.data)
        del column_structs  # pinned until here: table points at it
        if rc != SQLITE_OK:
            error = sqlite3.IntegrityError if rc == _capi.SQLITE_CONSTRAINT else sqlite3.OperationalError
            raise error(_capi.errmsg(handle))
        return done
    finally:
        _capi.lib.sqlite3_finalize(stmt)


def _exec(handle: int, sql: str) -> None:
    rc = _capi.lib.sqlite3_exec(handle, sql.encode(), None, None, None)
    if rc != SQLITE_OK:
        raise sqlite3.OperationalError(_capi.errmsg(handle))


_load_counter = 0


def load_frame(con: sqlite3.Connection, name: str, frame, *, if_exists: str = "fail", method: str = "select") -> int:
    """Copy *frame* into a real table *name* of *con*, in one transaction.

    Columns are declared INTEGER, REAL, TEXT or BLOB (see
    :func:`frame_columns`); values, NULLs and types round-trip exactly. The
    rows go through a temporary registration of the frame with one
    ``INSERT INTO name SELECT * FROM <registration>``: SQLite's VM reads the
    buffers through the compiled callbacks, no Python runs per row.

    Parameters
    ----------
    con : sqlite3.Connection
    name : str
    frame : pandas.DataFrame, pyarrow.Table, or object with ``__arrow_c_stream__``
    if_exists : {"fail", "replace", "append"}
        As in ``DataFrame.to_sql``. ``append`` inserts by column name.
    method : {"select", "bind"}
        ``"select"`` (the default, faster): one ``INSERT ... SELECT`` from a
        temporary registration. ``"bind"``: a compiled loop that binds each
        row's values to a prepared ``INSERT ... VALUES`` and steps it, for
        targets where reading a virtual table is not wanted; same rows, same
        types.

    Returns
    -------
    int
        Rows inserted.

    Raises
    ------
    fastagg.Error
        The table exists and ``if_exists="fail"``; or any SQLite error
        (constraint, disk full): the database is left as it was (everything
        runs inside ``SAVEPOINT``, rolled back on failure). Inside a caller's
        transaction the load joins it and commits with it.

    Examples
    --------
    >>> import sqlite3, pandas as pd
    >>> con = sqlite3.connect(":memory:")
    >>> load_frame(con, "t", pd.DataFrame({"x": [1, None], "s": ["a", "b"]}))
    2
    >>> con.execute("SELECT x, s FROM t").fetchall()
    [(1.0, 'a'), (None, 'b')]
    """
    global _load_counter
    if method not in ("select", "bind"):
        raise ValueError(f"method must be 'select' or 'bind', got {method!r}")
    if if_exists not in ("fail", "replace", "append"):
        raise ValueError(f"if_exists must be 'fail', 'replace' or 'append', got {if_exists!r}")
    columns = frame_columns(frame)
    handle = _capi.connection_handle(con)
    exists = bool(
        con.execute(
            "SELECT 1 FROM main.sqlite_master WHERE type IN ('table', 'view') AND lower(name) = lower(?)",
            (name,),
        ).fetchall()
    )
    if exists and if_exists == "fail":
        raise Error(f"table {name!r} already exists; pass if_exists='replace' or 'append'")
    with registry_lock:
        _load_counter += 1
        source = f"fastagg_load_{_load_counter}_{id(frame) & 0xFFFFFF:x}"
    reg = register_frame(con, source, frame)
    target = f"main.{quote(name)}"
    cols = ", ".join(quote(c.name) for c in columns)
    _exec(handle, "SAVEPOINT fastagg_load")
    try:
        if exists and if_exists == "replace":
            _exec(handle, f"DROP TABLE {target}")
        if not exists or if_exists == "replace":
            decl = ", ".join(f"{quote(c.name)} {c.decl}".rstrip() for c in columns)
            _exec(handle, f"CREATE TABLE {target} ({decl})")
        if method == "bind":
            inserted = _load_by_binding(handle, target, cols, columns, reg.nrows)
        else:
            _exec(handle, f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {quote(source)}")
            inserted = _capi.lib.sqlite3_changes64(handle)
        _exec(handle, "RELEASE fastagg_load")
    except BaseException as exc:
        try:
            _exec(handle, "ROLLBACK TO fastagg_load")
            _exec(handle, "RELEASE fastagg_load")
        finally:
            reg.close()
        if isinstance(exc, sqlite3.Error) and not isinstance(exc, Error):
            raise Error(f"loading {name!r} failed, nothing was changed: {exc}") from exc
        raise
    reg.close()
    return int(inserted)
