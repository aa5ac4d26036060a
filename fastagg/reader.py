"""Read the result of one SQL statement into a :class:`pyarrow.Table`.

A compiled loop (:mod:`fastagg.native.read_loop`) steps the prepared statement
with ``sqlite3_step`` and copies every column value straight into native
buffers (``sqlite3_column_value`` + ``sqlite3_value_*``); Python wraps them as Arrow
arrays without copying them (``pyarrow.Array.from_buffers``). No Python
object is made per row or per value.

Buffers, per column, owned by numpy arrays that the Arrow arrays keep alive:

* ``slots`` (int64, one slot per row, after a leading 0): the integer, or
  the bits of the double, or for text and blobs the end offset of the value
  in the column's byte buffer. A pure text/blob column's slots *are* its
  Arrow offsets (int64; narrowed to int32 unless the bytes exceed 2 GiB).
* ``tags`` (uint8 per row): SQLite's fundamental type of the value; gives
  the validity bitmap and tells the values of a mixed column apart.
* a byte buffer for text and blobs: all columns append to one doubling
  arena while stepping (no per-column buffer lookups in the hot loop), split
  into exact-size per-column buffers at the end.

The row capacity of ``slots`` and ``tags`` doubles as rows arrive.

Column types, over all rows of the column (SQLite types each *value*):

========================  ===================================================
values                    Arrow type
========================  ===================================================
integers                  int64
integers and reals        double
text (and numbers)        string; numbers as SQLite's ``CAST(x AS TEXT)``
blobs (and anything)      binary; text as its UTF-8 bytes, numbers as the
                          UTF-8 bytes of their text form
only NULL, or no rows     from the declared type (``sqlite3_column_decltype``)
                          by SQLite's affinity rules: INT -> int64; CHAR, CLOB,
                          TEXT -> string; BLOB -> binary; REAL, FLOA, DOUB ->
                          double; no declared type or NUMERIC affinity -> null
========================  ===================================================

Numbers in a text or blob column are formatted by SQLite itself (a helper
statement ``SELECT CAST(?1 AS TEXT)``), so they match ``CAST`` exactly on
every SQLite version. Text that is not valid UTF-8 raises
:class:`sqlite3.OperationalError`, as ``sqlite3`` does when fetching it.

Threads. The statement steps on a worker thread with the GIL released while
the calling thread waits in short slices; a ``KeyboardInterrupt`` (or any
exception raised by a signal handler) in the caller calls
``sqlite3_interrupt`` until the worker stops, finalizes the statement and is
re-raised. Idle workers are kept for reuse: handing a query to a waiting
thread costs tens of microseconds (see ``benchmarks/bench_reader.py``), which
is less than verifying the connection handle, so even tiny queries take the
same path and every query is interruptible.
"""

from __future__ import annotations

import ctypes
import os
import queue
import sqlite3
import threading
from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from .compile.trap import last_callback_error
from .errors import AggregateError
from .native.loader import NativeImage
from .sqlite import capi as _capi
from .sqlite.codes import SQLITE_DONE, SQLITE_OK, exception_for

__all__ = ["read_query"]

SQLITE_INTEGER = _capi.SQLITE_INTEGER
SQLITE_FLOAT = _capi.SQLITE_FLOAT
SQLITE_TEXT = _capi.SQLITE_TEXT
SQLITE_BLOB = _capi.SQLITE_BLOB
SQLITE_NULL = _capi.SQLITE_NULL
SQLITE_TRANSIENT = _capi.SQLITE_TRANSIENT

_INT32_MAX = 2**31 - 1

# --------------------------------------------------------------------------
# The compiled loops (fastagg.native.read_loop), called through their C entries


def _loop_entries() -> dict:
    from .native.read_loop import ENTRIES

    return dict(ENTRIES)


#: The reader's loops as a native image: no numba when it is cached.
IMAGE = NativeImage("reader", _loop_entries, stages=("native", "sqlite"))
_OUT_SLOTS = 2 + 4 * 5  # fastagg.native.read_loop.OUT_SLOTS
_READ_ROWS = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p)
_MESSAGE_BYTES = 1024  # fastagg.native.statement.MESSAGE_BYTES
_PREPARE = ctypes.CFUNCTYPE(
    ctypes.c_int32, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p
)
_FORMAT_MIXED = ctypes.CFUNCTYPE(
    None, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
    ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
)
_entries: dict = {}
_release_address = None


def _entry(name: str, prototype):
    fn = _entries.get(name)
    if fn is None:
        fn = _entries[name] = prototype(IMAGE.addresses()[name])
    return fn


class _MemInfo:
    """Owns one NRT reference to a result array's memory; released when collected."""

    __slots__ = ("address",)

    def __init__(self, address: int):
        self.address = address

    def __del__(self):
        if self.address:
            _nrt_release(self.address)
            self.address = 0


def _nrt_release(address: int) -> None:
    global _release_address
    if _release_address is None:
        from .native.loader import runtime_symbols

        _release_address = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(runtime_symbols()["NRT_MemInfo_release"])
    _release_address(address)


def _arrays(out: np.ndarray, kinds) -> list[np.ndarray]:
    """Wrap the arrays an entry exported into *out*; *kinds* gives (dtype, ndim) of each."""
    arrays = []
    for i, (dtype, ndim) in enumerate(kinds):
        mi, data, rows, cols = (int(v) for v in out[2 + 4 * i : 6 + 4 * i])
        owner = _MemInfo(mi)
        shape = (rows, cols) if ndim == 2 else (rows,)
        nbytes = rows * cols * np.dtype(dtype).itemsize
        if nbytes == 0:
            arrays.append(np.empty(shape, dtype))
            continue
        # Writable (the reader fixes up slots in place); the ctypes view keeps
        # the owner, hence the NRT memory, alive for as long as any array
        # (or Arrow buffer made from one) is.
        view = (ctypes.c_char * nbytes).from_address(data)
        view.owner = owner
        arrays.append(np.frombuffer(view, dtype).reshape(shape))
    return arrays


_ROWS_KINDS = ((np.int64, 2), (np.uint8, 2), (np.int64, 1), (np.uint8, 1), (np.int64, 1))


def _read_rows(stmt_address: int, ncol: int, utf8_database: bool):
    """Run the compiled row loop; return ``((rc, n, slots, tags, seen, data, dstart), error)``.

    See :func:`fastagg.native.read_loop.read_rows`. ctypes releases the GIL
    for the call. *error* is None, or ``(message, extended code)`` of the
    failing step, copied under the connection mutex.
    """
    out = np.full(_OUT_SLOTS, -1, np.int64)
    message = np.zeros(_MESSAGE_BYTES, np.uint8)
    _entry("read_rows", _READ_ROWS)(
        stmt_address, ncol, int(bool(utf8_database)), out.ctypes.data, message.ctypes.data
    )
    if out[0] == -1:
        raise MemoryError("fastagg's reader could not allocate its buffers")
    slots, tags, seen, data, dstart = _arrays(out, _ROWS_KINDS)
    rc = int(out[0])
    error = None
    if rc != SQLITE_DONE:
        error = _message_of(message)
    return (rc, int(out[1]), slots, tags, seen, data, dstart), error


def _message_of(message: np.ndarray) -> tuple[str, int]:
    """Return ``(text, extended code)`` as the compiled code copied them (native.statement)."""
    code = int(message[:8].view(np.int64)[0])
    text = bytes(message[8:]).split(b"\0", 1)[0].decode("utf-8", "replace")
    return (text or "out of memory"), code


def _format_mixed(fmt_address, slots, tags, data, n, capacity):
    """Run the compiled number formatter; see :func:`fastagg.native.read_loop.format_mixed`."""
    slots = np.ascontiguousarray(slots, np.int64)
    tags = np.ascontiguousarray(tags, np.uint8)
    data = np.ascontiguousarray(data, np.uint8)
    out = np.full(_OUT_SLOTS, -1, np.int64)
    _entry("format_mixed", _FORMAT_MIXED)(
        fmt_address, slots.ctypes.data, tags.ctypes.data, data.ctypes.data, data.size, n, capacity,
        out.ctypes.data,
    )
    if out[0] == -1:
        raise MemoryError("fastagg's reader could not allocate its buffers")
    offsets, text = _arrays(out, ((np.int64, 1), (np.uint8, 1)))
    return int(out[0]), offsets, text


# --------------------------------------------------------------------------
# Worker threads


class _Job:
    """One call to run on a worker; ``done`` is released and ``finished`` set when it has run.

    ``finished`` is what an interrupted caller tests: a signal's exception
    can be raised just after ``done.acquire`` succeeded (CPython runs the
    handler at the next bytecode), and the lock is then already taken.
    """

    __slots__ = ("fn", "args", "done", "finished", "result", "error", "callback_error")

    def __init__(self, fn, args):
        self.fn = fn
        self.args = args
        self.done = threading.Lock()
        self.done.acquire()
        self.finished = False
        self.result = None
        self.error = None
        self.callback_error = None


_MAX_IDLE = 4
_idle: list[queue.SimpleQueue] = []  # inboxes of parked workers
_idle_lock = threading.Lock()


def _work(inbox: queue.SimpleQueue) -> None:
    while True:
        job = inbox.get()
        if job is None:
            return
        last_callback_error()  # forget a failure left by an earlier statement
        try:
            job.result = job.fn(*job.args)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            job.error = exc
        # Thread-local: only this thread can see what its callbacks reported.
        job.callback_error = last_callback_error()
        job.finished = True
        job.done.release()


def _take_worker() -> queue.SimpleQueue:
    with _idle_lock:
        if _idle:
            return _idle.pop()
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    threading.Thread(target=_work, args=(inbox,), name="fastagg-reader", daemon=True).start()
    return inbox


def _park_worker(inbox: queue.SimpleQueue) -> None:
    with _idle_lock:
        if len(_idle) < _MAX_IDLE:
            _idle.append(inbox)
            return
    inbox.put(None)


if hasattr(os, "register_at_fork"):
    # Threads do not survive fork: a child must not wait for a parked worker.
    os.register_at_fork(after_in_child=_idle.clear)


def _run_interruptibly(handle: int, fn, *args):
    """Return ``(fn(*args), callback_error)``, run on a worker thread.

    If the caller is interrupted (``KeyboardInterrupt`` or another exception
    from a signal handler) while waiting, SQLite is interrupted through
    ``sqlite3_interrupt`` until the worker returns, then the exception is
    re-raised: the statement is never finalized while it is stepping.
    """
    job = _Job(fn, args)
    inbox = _take_worker()
    inbox.put(job)
    try:
        while not job.done.acquire(timeout=0.25):
            pass
    except BaseException:
        # The statement was not started before the interrupt if the worker has
        # not reached its first step yet; SQLite then clears the flag at that
        # step, so repeat until the worker has stopped.
        while not job.finished:
            _capi.lib.sqlite3_interrupt(handle)
            try:
                if job.done.acquire(timeout=0.01):
                    break
            except BaseException:  # noqa: BLE001 - a second Ctrl-C; keep waiting
                continue
        _park_worker(inbox)
        raise
    _park_worker(inbox)
    if job.error is not None:
        raise job.error
    return job.result, job.callback_error


# --------------------------------------------------------------------------
# Errors


def _step_error(rc: int, error, callback_error) -> BaseException:
    """Return the exception for a failed step; prefer the callback's own error.

    *error* is ``(message, extended code)`` as read right after the step.
    """
    if callback_error is not None:
        text, original = callback_error
        exc = AggregateError(text)
        exc.__cause__ = original
        return exc
    message, code = error
    return exception_for(rc, message, code)


# --------------------------------------------------------------------------
# Statements and parameters


def _skip_trailer(sql: bytes, pos: int) -> int:
    """Return the offset of the first byte after *pos* that is not whitespace,
    a comment or a semicolon (the end if there is none)."""
    end = len(sql)
    while pos < end:
        ch = sql[pos]
        if ch in b" \t\n\r\f;":
            pos += 1
        elif sql.startswith(b"--", pos):
            newline = sql.find(b"\n", pos)
            pos = end if newline < 0 else newline + 1
        elif sql.startswith(b"/*", pos):
            close = sql.find(b"*/", pos + 2)
            pos = end if close < 0 else close + 2
        else:
            return pos
    return end


def _prepare(handle: int, sql: str) -> int:
    """Return the compiled ``sqlite3_stmt*`` of *sql* (0 if it holds no statement).

    Raises ``sqlite3.ProgrammingError`` if *sql* holds more than one.
    Calls ``sqlite3_prepare_v2``.
    """
    if not isinstance(sql, str):
        raise TypeError(f"sql must be str, not {type(sql).__name__}")
    if "\0" in sql:
        raise sqlite3.ProgrammingError("the query contains a null character")
    encoded = sql.encode("utf-8")
    # The buffer outlives the prepare call; SQLite keeps its own copy of the SQL.
    text = ctypes.create_string_buffer(encoded, len(encoded) + 1)
    base = ctypes.addressof(text)
    out = np.zeros(2, np.int64)  # stmt, tail
    message = np.zeros(_MESSAGE_BYTES, np.uint8)
    prepare = _entry("prepare", _PREPARE)
    pos = 0
    while True:
        # nByte includes the terminator: SQLite then need not copy the text.
        # Compiled: the message of a failure is copied under the connection
        # mutex, before another thread's call can replace it.
        rc = prepare(handle, base + pos, len(encoded) + 1 - pos, out.ctypes.data, message.ctypes.data)
        if rc != SQLITE_OK:
            raise exception_for(rc, *_message_of(message))
        stmt, tail = int(out[0]), int(out[1])
        pos = (tail or base + len(encoded)) - base
        if stmt or _skip_trailer(encoded, pos) >= len(encoded):
            break  # a statement, or nothing but comments and semicolons
    if stmt and _skip_trailer(encoded, pos) < len(encoded):
        _capi.lib.sqlite3_finalize(stmt)
        raise sqlite3.ProgrammingError("You can only execute one statement at a time.")
    return stmt


def _bind_one(handle: int, stmt: int, index: int, value) -> None:
    """Bind *value* to parameter *index* (1-based), as ``sqlite3`` converts it.

    Calls ``sqlite3_bind_*``; SQLite copies text and blobs (``SQLITE_TRANSIENT``).
    """
    kind = type(value)
    if kind not in (int, float, str, bytes, type(None)):
        # Registered sqlite3 adapters (e.g. for datetime) come first, as in sqlite3.
        value = sqlite3.adapt(value, sqlite3.PrepareProtocol, value)
    lib = _capi.lib
    if value is None:
        rc = lib.sqlite3_bind_null(stmt, index)
    elif isinstance(value, (int, np.integer, np.bool_)):
        number = int(value)
        if not -(2**63) <= number < 2**63:
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        rc = lib.sqlite3_bind_int64(stmt, index, number)
    elif isinstance(value, (float, np.floating)):
        rc = lib.sqlite3_bind_double(stmt, index, float(value))
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        rc = lib.sqlite3_bind_text64(stmt, index, raw, len(raw), SQLITE_TRANSIENT, _capi.SQLITE_UTF8)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        # A NULL pointer would bind NULL; ctypes passes b"" as a valid pointer.
        rc = lib.sqlite3_bind_blob64(stmt, index, raw, len(raw), SQLITE_TRANSIENT)
    else:
        raise sqlite3.ProgrammingError(
            f"Error binding parameter {index}: type '{type(value).__name__}' is not supported"
        )
    if rc != SQLITE_OK:
        raise _capi.last_error(handle, rc)


def _bind(handle: int, stmt: int, params) -> None:
    """Bind *params* (a sequence for ``?``, a mapping for ``:name``) to *stmt*.

    Calls ``sqlite3_bind_parameter_count``, ``sqlite3_bind_parameter_name``
    and, per value, :func:`_bind_one`.
    """
    lib = _capi.lib
    count = lib.sqlite3_bind_parameter_count(stmt)
    if params is None:
        params = ()
    if isinstance(params, Mapping) and not isinstance(params, (list, tuple)):
        for index in range(1, count + 1):
            name = lib.sqlite3_bind_parameter_name(stmt, index)
            if not name:
                raise sqlite3.ProgrammingError(
                    f"Binding {index} has no name, but you supplied a dictionary "
                    "(which has only names)."
                )
            name = ctypes.string_at(name).decode()
            try:
                value = params[name[1:]]  # without the :, @ or $ prefix
            except KeyError:
                raise sqlite3.ProgrammingError(
                    f"You did not supply a value for binding parameter {name}."
                ) from None
            _bind_one(handle, stmt, index, value)
        return
    if not hasattr(params, "__len__") or not hasattr(params, "__getitem__"):
        raise sqlite3.ProgrammingError("parameters are of unsupported type")
    if len(params) != count:
        raise sqlite3.ProgrammingError(
            f"Incorrect number of bindings supplied. The current statement uses "
            f"{count}, and there are {len(params)} supplied."
        )
    for index in range(count):
        _bind_one(handle, stmt, index + 1, params[index])


# --------------------------------------------------------------------------
# Arrow assembly


def _declared_type(decltype: str | None) -> pa.DataType:
    """Return the Arrow type of a column SQLite declares as *decltype*.

    SQLite's affinity rules, in their order
    (https://www.sqlite.org/datatype3.html#determination_of_column_affinity).
    """
    if not decltype:
        return pa.null()
    upper = decltype.upper()
    if "INT" in upper:
        return pa.int64()
    if "CHAR" in upper or "CLOB" in upper or "TEXT" in upper:
        return pa.string()
    if "BLOB" in upper:
        return pa.binary()
    if "REAL" in upper or "FLOA" in upper or "DOUB" in upper:
        return pa.float64()
    return pa.null()  # NUMERIC affinity: integer or real, undecidable without values


def _column_info(stmt: int) -> tuple[list[str], list[str | None]]:
    """Return the names and declared types of *stmt*'s result columns.

    Calls ``sqlite3_column_count``, ``sqlite3_column_name`` and
    ``sqlite3_column_decltype``.
    """
    lib = _capi.lib
    names, decltypes = [], []
    for c in range(lib.sqlite3_column_count(stmt)):
        name = lib.sqlite3_column_name(stmt, c)
        if not name:
            raise MemoryError()
        names.append(ctypes.string_at(name).decode("utf-8", "replace"))
        decl = lib.sqlite3_column_decltype(stmt, c)
        decltypes.append(ctypes.string_at(decl).decode("utf-8", "replace") if decl else None)
    return names, decltypes


_NUMBERS = (1 << SQLITE_INTEGER) | (1 << SQLITE_FLOAT)
_BYTES = (1 << SQLITE_TEXT) | (1 << SQLITE_BLOB)


def _validity(tags: np.ndarray, seen: int) -> tuple[pa.Buffer | None, int]:
    """Return the validity bitmap (None when no NULL) and the NULL count."""
    if not seen & (1 << SQLITE_NULL):
        return None, 0
    valid = tags != SQLITE_NULL
    return pa.py_buffer(np.packbits(valid, bitorder="little")), int(valid.size - np.count_nonzero(valid))


def _byte_array(kind: str, n: int, offsets: np.ndarray, data: np.ndarray, validity, nulls: int, name: str):
    """Wrap int64 *offsets* and *data* as a string or binary array."""
    large = data.size > _INT32_MAX
    if kind == "string":
        arrow_type = pa.large_string() if large else pa.string()
    else:
        arrow_type = pa.large_binary() if large else pa.binary()
    if not large:
        offsets = offsets.astype(np.int32)
    array = pa.Array.from_buffers(
        arrow_type, n, [validity, pa.py_buffer(offsets), pa.py_buffer(data)], null_count=nulls
    )
    if kind == "string":
        try:
            array.validate(full=True)
        except pa.ArrowInvalid:
            raise sqlite3.OperationalError(
                f"Could not decode to UTF-8 column '{name}': it holds text that is "
                f"not valid UTF-8; select CAST({name} AS BLOB) to read the bytes"
            ) from None
    return array


def _build_column(handle, name, decltype, n, slots, tags, seen, data):
    """Return column *name* as an Arrow array; *slots* are its ``n + 1`` slots."""
    values = slots[1:]
    if seen & ~(1 << SQLITE_NULL) == 0:
        return pa.nulls(n, _declared_type(decltype))
    validity, nulls = _validity(tags, seen)
    if seen & _BYTES == 0:
        if seen & (1 << SQLITE_FLOAT):
            reals = values.view(np.float64)
            if seen & (1 << SQLITE_INTEGER):
                ints = tags == SQLITE_INTEGER
                reals[ints] = values[ints].astype(np.float64)  # right side is a copy
            return pa.Array.from_buffers(pa.float64(), n, [validity, pa.py_buffer(reals)], null_count=nulls)
        return pa.Array.from_buffers(pa.int64(), n, [validity, pa.py_buffer(values)], null_count=nulls)
    kind = "binary" if seen & (1 << SQLITE_BLOB) else "string"
    offsets = slots
    if seen & _NUMBERS:
        numbers_count = int(np.count_nonzero((tags == SQLITE_INTEGER) | (tags == SQLITE_FLOAT)))
        offsets, data = _format_numbers(handle, slots, tags, data, n, data.size + 24 * numbers_count)
    return _byte_array(kind, n, offsets, data, validity, nulls, name)


_FORMAT_SQL = b"SELECT CAST(?1 AS TEXT)"


def _format_numbers(handle, slots, tags, data, n, capacity):
    """Return offsets and bytes of a column with numbers turned into SQLite text.

    Calls ``sqlite3_prepare_v2`` and ``sqlite3_finalize`` for the helper
    statement that :func:`_format_mixed` steps.
    """
    fmt = ctypes.c_void_p()
    rc = _capi.lib.sqlite3_prepare_v2(handle, _FORMAT_SQL, len(_FORMAT_SQL), ctypes.byref(fmt), None)
    if rc != SQLITE_OK:
        raise _capi.last_error(handle, rc)
    try:
        (rc, offsets, out), _ = _run_interruptibly(
            handle, _format_mixed, fmt.value, slots, tags, data, n, capacity
        )
        if rc != SQLITE_OK:
            raise _capi.last_error(handle, rc)
    finally:
        _capi.lib.sqlite3_finalize(fmt.value)
    return offsets, out


def _empty_table(names, decltypes) -> pa.Table:
    arrays = [pa.array([], _declared_type(d)) for d in decltypes]
    return pa.Table.from_arrays(arrays, names=names)


def read_query(con: sqlite3.Connection, sql: str, params=None) -> pa.Table:
    """Run one SQL statement on *con* and return its result as a pyarrow Table.

    Rows are stepped and copied by compiled code on a worker thread (GIL
    released); the columns' native buffers become the Arrow arrays. Column
    types follow the rules of this module's docstring. Duplicate column names
    are kept. A statement without result columns (``CREATE``, ``INSERT``)
    runs and gives an empty table. Unlike ``sqlite3``'s legacy transaction
    control, no implicit ``BEGIN`` is issued before DML.

    Parameters
    ----------
    con : sqlite3.Connection
    sql : str
        Exactly one statement; trailing whitespace, comments and ``;`` are fine.
    params : sequence or mapping, optional
        Values for ``?`` (a sequence) or ``:name`` (a mapping) parameters:
        int, float, str, bytes-like, None, bool, numpy scalars, or anything a
        registered ``sqlite3`` adapter turns into one of those.

    Returns
    -------
    pyarrow.Table

    Raises
    ------
    sqlite3.ProgrammingError
        More than one statement, wrong parameters, a closed connection.
    sqlite3.OperationalError
        SQLite's own errors (syntax, unknown table, ...), with its message;
        other ``sqlite3.Error`` subclasses where ``sqlite3`` would use them.
    fastagg.AggregateError
        A compiled aggregate raised; ``__cause__`` is the original exception.
    KeyboardInterrupt
        The query was interrupted; the connection stays usable.

    Examples
    --------
    >>> import sqlite3
    >>> con = sqlite3.connect(":memory:")
    >>> read_query(con, "SELECT 1 AS a, 'x' AS b UNION ALL SELECT 2.5, NULL").to_pydict()
    {'a': [1.0, 2.5], 'b': ['x', None]}

    Calls ``sqlite3_prepare_v2``, ``sqlite3_bind_*``, ``sqlite3_step``,
    ``sqlite3_column_*`` and ``sqlite3_finalize``.
    """
    handle = _capi.connection_handle(con)
    (encoding,) = con.execute("PRAGMA encoding").fetchone()
    utf8 = encoding == "UTF-8"
    stmt = _prepare(handle, sql)
    if not stmt:
        return pa.table({})
    try:
        _bind(handle, stmt, params)
        names, decltypes = _column_info(stmt)
        ((rc, n, slots, tags, seen, data, dstart), error), callback_error = _run_interruptibly(
            handle, _read_rows, stmt, len(names), utf8
        )
        if rc != SQLITE_DONE:
            raise _step_error(rc, error, callback_error)
    finally:
        # The statement's only owner; finalizing after an error returns that
        # error's code again, which has already been turned into an exception.
        _capi.lib.sqlite3_finalize(stmt)
    if not names:
        return pa.table({})
    if n == 0:
        return _empty_table(names, decltypes)
    arrays = [
        _build_column(
            handle,
            names[c],
            decltypes[c],
            n,
            slots[c, : n + 1],
            tags[c, :n],
            int(seen[c]),
            data[dstart[c] : dstart[c + 1]],
        )
        for c in range(len(names))
    ]
    return pa.Table.from_arrays(arrays, names=names)
