"""The SQLite C API, resolved in the very library Python's ``sqlite3`` uses.

Two copies of SQLite in one process corrupt each other (each has its own
allocator and global state), so fastagg never loads ``libsqlite3`` by name:
every symbol is looked up through the handle of the ``_sqlite3`` extension
module, whose dependency list contains the SQLite that module was linked
against. The library's version must equal :data:`sqlite3.sqlite_version`.

Two views of the same symbols are offered:

* ``lib``: a :class:`ctypes.CDLL` with typed functions, for Python-side calls
  (registering functions, verifying connections).
* :func:`native`: :class:`numba.types.ExternalFunction` declarations by
  *name*; :mod:`.declarations` holds one per function, under SQLite's name.
  Their addresses are given to LLVM with ``llvmlite.binding.add_symbol`` at
  the first declaration, so compiled code refers to symbols rather than to
  embedded addresses and numba's on-disk cache stays valid across processes.

Result codes and their exceptions are in :mod:`.codes`. Importing this
module loads no numba.

Documentation of every function: https://www.sqlite.org/c3ref/funclist.html
"""

from __future__ import annotations

import ctypes
import sqlite3
import sys
import threading
from functools import lru_cache

from ..errors import SQLiteLibraryError

# Result codes live in .codes; the ones callers of ``lib`` compare with are
# also offered here.
from .codes import (  # noqa: F401 - re-exported
    SQLITE_CONSTRAINT,
    SQLITE_DONE,
    SQLITE_ERROR,
    SQLITE_OK,
    SQLITE_ROW,
    exception_for,
)

# Fundamental datatypes (https://www.sqlite.org/c3ref/c_blob.html).
SQLITE_INTEGER = 1
SQLITE_FLOAT = 2
SQLITE_TEXT = 3
SQLITE_BLOB = 4
SQLITE_NULL = 5

# Text encodings and function flags (https://www.sqlite.org/c3ref/c_deterministic.html).
SQLITE_UTF8 = 1
SQLITE_DETERMINISTIC = 0x000000800

# Destructor sentinel: SQLite makes its own copy of the bytes before returning.
SQLITE_TRANSIENT = -1
SQLITE_STATIC = 0

SQLITE_LIMIT_COLUMN = 2
SQLITE_LIMIT_VARIABLE_NUMBER = 9

# Signatures in a compact code: p pointer, i int32, q int64, d double,
# z pointer-sized integer (destructor sentinels), v void. First letter is the
# result. Function pointers are passed as p.
_SIGNATURES = {
    # library
    "sqlite3_libversion": "p",
    "sqlite3_libversion_number": "i",
    # connections
    "sqlite3_limit": "ipii",
    "sqlite3_db_filename": "ppp",
    "sqlite3_errmsg": "pp",
    "sqlite3_errstr": "pi",
    "sqlite3_extended_errcode": "ip",
    "sqlite3_interrupt": "vp",
    "sqlite3_changes64": "qp",
    "sqlite3_exec": "ippppp",
    # functions
    "sqlite3_create_function_v2": "ippiippppp",
    "sqlite3_create_window_function": "ippiipppppp",
    "sqlite3_aggregate_context": "ppi",
    "sqlite3_value_type": "ip",
    "sqlite3_value_double": "dp",
    "sqlite3_value_int64": "qp",
    "sqlite3_value_text": "pp",
    "sqlite3_value_blob": "pp",
    "sqlite3_value_bytes": "ip",
    "sqlite3_result_null": "vp",
    "sqlite3_result_double": "vpd",
    "sqlite3_result_int64": "vpq",
    "sqlite3_result_text": "vppiz",
    "sqlite3_result_text64": "vppqzi",
    "sqlite3_result_blob": "vppiz",
    "sqlite3_result_blob64": "vppqz",
    "sqlite3_result_error": "vppi",
    "sqlite3_result_error_nomem": "vp",
    "sqlite3_result_error_toobig": "vp",
    # memory
    "sqlite3_memory_used": "q",
    "sqlite3_malloc64": "pq",
    "sqlite3_realloc64": "ppq",
    "sqlite3_free": "vp",
    # statements
    "sqlite3_prepare_v2": "ippipp",
    "sqlite3_step": "ip",
    "sqlite3_reset": "ip",
    "sqlite3_finalize": "ip",
    "sqlite3_bind_parameter_count": "ip",
    "sqlite3_bind_parameter_name": "ppi",
    "sqlite3_bind_null": "ipi",
    "sqlite3_bind_int64": "ipiq",
    "sqlite3_bind_double": "ipid",
    "sqlite3_bind_text64": "ipipqzi",
    "sqlite3_bind_blob64": "ipipqz",
    "sqlite3_column_count": "ip",
    "sqlite3_column_name": "ppi",
    "sqlite3_column_decltype": "ppi",
    "sqlite3_column_text": "ppi",
    "sqlite3_column_bytes": "ipi",
    # fastagg.reader: read values under the connection mutex it holds
    "sqlite3_column_value": "ppi",
    "sqlite3_db_handle": "pp",
    "sqlite3_db_mutex": "pp",
    "sqlite3_mutex_enter": "vp",
    "sqlite3_mutex_leave": "vp",
    # virtual tables
    "sqlite3_create_module_v2": "ippppp",
    "sqlite3_declare_vtab": "ipp",
    "sqlite3_vtab_config": "ipi",
    # not called yet: the indexed lookups of issue 12 (IN lists, DISTINCT)
    "sqlite3_vtab_distinct": "ip",
    "sqlite3_vtab_in": "ipii",
    "sqlite3_vtab_in_first": "ipp",
    "sqlite3_vtab_in_next": "ipp",
    "sqlite3_vtab_rhs_value": "ipip",
    "sqlite3_vtab_collation": "ppi",  # 3.22: an index answers BINARY comparisons only
    # statements of a connection (fastagg.table: is any statement mid-run?)
    "sqlite3_next_stmt": "ppp",
    "sqlite3_stmt_busy": "ip",
    # variadic; called only with the (int, int*) arguments of boolean options
    "sqlite3_db_config": "ipiip",
}

_CTYPES = {
    "p": ctypes.c_void_p,
    "i": ctypes.c_int,
    "q": ctypes.c_int64,
    "d": ctypes.c_double,
    "z": ctypes.c_ssize_t,
    "v": None,
}

# Functions that exist only in newer SQLite versions; absent ones are skipped
# and code needing them checks :func:`has`.
_OPTIONAL = {
    "sqlite3_vtab_distinct",  # 3.38
    "sqlite3_vtab_in",  # 3.38
    "sqlite3_vtab_in_first",
    "sqlite3_vtab_in_next",
}


def _load_library() -> ctypes.CDLL:
    """Return a handle whose symbol lookups reach the SQLite of ``_sqlite3``."""
    import _sqlite3

    path = getattr(_sqlite3, "__file__", None)
    if path is None:
        # _sqlite3 is built into the interpreter: its symbols are in the
        # process itself.
        return ctypes.CDLL(None)
    return ctypes.CDLL(path)


def _bind(lib: ctypes.CDLL) -> dict[str, int]:
    addresses: dict[str, int] = {}
    for name, code in _SIGNATURES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            if name in _OPTIONAL:
                continue
            raise SQLiteLibraryError(
                f"the SQLite library used by Python's sqlite3 module does not "
                f"export {name}; fastagg needs a sqlite3 module linked against a "
                f"shared SQLite ({sqlite3.sqlite_version}) with exported symbols"
            ) from None
        fn.restype = _CTYPES[code[0]]
        fn.argtypes = [_CTYPES[c] for c in code[1:]]
        addresses[name] = ctypes.cast(fn, ctypes.c_void_p).value
    return addresses


lib = _load_library()
_ADDRESSES = _bind(lib)

LIBVERSION: str = ctypes.string_at(lib.sqlite3_libversion()).decode()
if LIBVERSION != sqlite3.sqlite_version:
    raise SQLiteLibraryError(
        f"the SQLite found through Python's _sqlite3 module is {LIBVERSION} but "
        f"sqlite3.sqlite_version is {sqlite3.sqlite_version}: two SQLite "
        f"libraries are loaded; fastagg refuses to mix them"
    )
LIBVERSION_NUMBER: int = lib.sqlite3_libversion_number()


def has(name: str) -> bool:
    """Return whether the loaded SQLite exports C function *name*."""
    return name in _ADDRESSES


def _register_llvm_symbols() -> None:
    """Tell LLVM where each SQLite symbol lives (cheap: no compilation).

    Explicitly added symbols take precedence over the process's own symbol
    table, so compiled code binds to this SQLite even if another copy is
    loaded globally.
    """
    import llvmlite.binding as llvm

    for name, addr in _ADDRESSES.items():
        llvm.add_symbol(name, addr)


@lru_cache(maxsize=None)
def native(name: str):
    """Return the numba declaration of C function *name*, callable in nopython code.

    Pointer arguments are ``voidptr``; integers are ``int32``/``int64``;
    destructor sentinels are ``intp`` (pass ``SQLITE_TRANSIENT``).
    """
    from numba import types

    if name not in _ADDRESSES:
        raise SQLiteLibraryError(f"SQLite {LIBVERSION} has no {name}")
    kinds = {
        "p": types.voidptr,
        "i": types.int32,
        "q": types.int64,
        "d": types.float64,
        "z": types.intp,
        "v": types.void,
    }
    code = _SIGNATURES[name]
    sig = kinds[code[0]](*[kinds[c] for c in code[1:]])
    _ensure_llvm_symbols()
    return types.ExternalFunction(name, sig)


_llvm_symbols_registered = False


def _ensure_llvm_symbols() -> None:
    global _llvm_symbols_registered
    if not _llvm_symbols_registered:
        _register_llvm_symbols()
        _llvm_symbols_registered = True


# --------------------------------------------------------------------------
# Connections


class _PyObjectHead(ctypes.Structure):
    _fields_ = [("ob_refcnt", ctypes.c_ssize_t), ("ob_type", ctypes.c_void_p)]


# CPython's pysqlite_Connection begins with PyObject_HEAD followed by the
# ``sqlite3 *db`` member (Modules/_sqlite/connection.h, 3.8 through 3.14).
_DB_OFFSET = ctypes.sizeof(_PyObjectHead)

_PROBE_LIMIT = SQLITE_LIMIT_VARIABLE_NUMBER
_PROBE_LOCK = threading.Lock()


def connection_handle(con: sqlite3.Connection) -> int:
    """Return the ``sqlite3*`` of *con*, verified against the connection itself.

    Reads the handle from CPython's ``pysqlite_Connection`` struct, then
    checks it: SQLite must report for the handle the same main database file
    as the connection, and a limit set through the handle must be what the
    connection reports (``Connection.getlimit``, Python 3.11+). Raises
    :class:`SQLiteLibraryError` instead of using a pointer that fails either
    check, and :class:`sqlite3.ProgrammingError` for a closed connection.
    Calls ``sqlite3_db_filename`` and ``sqlite3_limit``.
    """
    if not isinstance(con, sqlite3.Connection):
        raise TypeError(f"expected a sqlite3.Connection, got {type(con).__name__}")
    if sys.implementation.name != "cpython":
        raise SQLiteLibraryError(
            "fastagg reads the SQLite handle from CPython's sqlite3.Connection; "
            f"{sys.implementation.name} is not supported"
        )
    # Raises ProgrammingError on a closed connection, before any pointer is read.
    (main_file,) = [
        row[2] for row in con.execute("PRAGMA database_list") if row[1] == "main"
    ]
    handle = ctypes.c_void_p.from_address(id(con) + _DB_OFFSET).value
    if not handle or handle % ctypes.alignment(ctypes.c_void_p):
        raise SQLiteLibraryError(_layout_message(con))
    _verify_handle(con, handle, main_file)
    return handle


def _verify_handle(con: sqlite3.Connection, handle: int, main_file: str) -> None:
    reported = lib.sqlite3_db_filename(handle, b"main")
    reported = ctypes.string_at(reported).decode() if reported else ""
    if reported != main_file:
        raise SQLiteLibraryError(_layout_message(con))
    if hasattr(con, "getlimit"):
        # One probe at a time: two threads probing the same connection would
        # read each other's probe value (a false layout error, and a limit
        # left changed).
        with _PROBE_LOCK:
            old = con.getlimit(_PROBE_LIMIT)
            probe = max(1, old - 1)
            lib.sqlite3_limit(handle, _PROBE_LIMIT, probe)
            seen = con.getlimit(_PROBE_LIMIT)
            lib.sqlite3_limit(handle, _PROBE_LIMIT, old)
        if seen != probe:
            raise SQLiteLibraryError(_layout_message(con))


def _layout_message(con) -> str:
    return (
        f"could not verify the SQLite handle of {con!r}: this Python's "
        f"sqlite3.Connection layout is not the one fastagg knows "
        f"(Python {sys.version.split()[0]})"
    )


def errmsg(handle: int) -> str:
    """Return SQLite's last error message on *handle*. Calls ``sqlite3_errmsg``.

    The message is that of the latest call on the connection from *any*
    thread; for a failing call's own message use :func:`error_message`.
    """
    msg = lib.sqlite3_errmsg(handle)
    return ctypes.string_at(msg).decode("utf-8", "replace") if msg else ""


def errstr(rc: int) -> str:
    """Return SQLite's generic English text of result code *rc*. Calls ``sqlite3_errstr``."""
    msg = lib.sqlite3_errstr(rc)
    return ctypes.string_at(msg).decode("utf-8", "replace") if msg else "unknown error"


def error_message(handle: int, rc: int) -> tuple[str, int]:
    """Return ``(message, extended code)`` of the call on *handle* that just returned *rc*.

    Read at once after the call. Another thread's call on the same
    connection in between replaces the connection's error ("not an error",
    "another row available"); that is seen as an error code whose primary
    code is not *rc*'s, and the generic text of *rc* (``sqlite3_errstr``)
    is given instead of a message that belongs to another call. Holding the
    connection mutex from Python instead could deadlock: ctypes takes the
    GIL back after every call, while another thread holding the GIL may be
    waiting for that mutex. Compiled code that holds the mutex reads the
    message there (:mod:`fastagg.reader`). Calls ``sqlite3_extended_errcode``
    and ``sqlite3_errmsg``.
    """
    code = lib.sqlite3_extended_errcode(handle)
    message = errmsg(handle)
    if code & 0xFF != rc & 0xFF or lib.sqlite3_extended_errcode(handle) != code:
        return errstr(rc), rc
    return message, code


def last_error(handle: int, rc: int) -> BaseException:
    """Return the exception for a call on *handle* that returned *rc*.

    The message and ``sqlite_errorcode`` are the connection's, read at once
    (:func:`error_message`; 0 for *handle*: "unknown error" and *rc*); the
    class is :func:`.codes.exception_for`'s.
    """
    if not handle:
        return exception_for(rc, "unknown error")
    return exception_for(rc, *error_message(handle, rc))


def create_aggregate(
    handle: int,
    name: str,
    narg: int,
    step: int,
    final: int,
    value: int | None = None,
    inverse: int | None = None,
) -> None:
    """Register C callbacks as aggregate (or, with *inverse*, window) function *name*.

    Calls ``sqlite3_create_window_function`` or ``sqlite3_create_function_v2``
    (https://www.sqlite.org/c3ref/create_function.html).
    """
    encoded = name.encode()
    if inverse is not None:
        rc = lib.sqlite3_create_window_function(
            handle, encoded, narg, SQLITE_UTF8, None, step, final, value, inverse, None
        )
    else:
        rc = lib.sqlite3_create_function_v2(
            handle, encoded, narg, SQLITE_UTF8, None, None, step, final, None
        )
    if rc != SQLITE_OK:
        raise sqlite3.OperationalError(f"cannot register {name}: {error_message(handle, rc)[0]}")


def create_scalar(handle: int, name: str, narg: int, func: int, *, deterministic: bool) -> None:
    """Register C callback *func* as scalar function *name*.

    Calls ``sqlite3_create_function_v2``; *deterministic* adds
    ``SQLITE_DETERMINISTIC`` so SQLite may use the function in indexes and
    fold constant calls.
    """
    flags = SQLITE_UTF8 | (SQLITE_DETERMINISTIC if deterministic else 0)
    rc = lib.sqlite3_create_function_v2(handle, name.encode(), narg, flags, None, func, None, None, None)
    if rc != SQLITE_OK:
        raise sqlite3.OperationalError(f"cannot register {name}: {error_message(handle, rc)[0]}")


def delete_function(handle: int, name: str, narg: int) -> None:
    """Remove function *name* with *narg* arguments from the connection.

    Calls ``sqlite3_create_function_v2`` with NULL callbacks.
    """
    rc = lib.sqlite3_create_function_v2(
        handle, name.encode(), narg, SQLITE_UTF8, None, None, None, None, None
    )
    if rc != SQLITE_OK:
        raise sqlite3.OperationalError(f"cannot unregister {name}: {error_message(handle, rc)[0]}")
