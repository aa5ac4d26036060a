"""Registration: a frame's buffers exposed as an eponymous virtual table, and their lifetime.

Memory ownership and lifetime
-----------------------------
* The *token* (``sqlite3_malloc64``, :data:`fastagg.sqlite.structs.TOKEN`)
  is shared by SQLite and Python with a reference count of two: the
  module's destructor (``xDestroy`` of ``sqlite3_create_module_v2``, run when
  the module is dropped and the last ``sqlite3_vtab`` using it is
  disconnected) drops one, :meth:`Registration._try_release` the other;
  whoever is last frees it. The token never points into Python memory after
  the pins are released (``dead`` is set first and every callback checks it).
* The *pins* (numpy arrays, Arrow arrays, the descriptor, the schema bytes)
  belong to the :class:`Registration`, which a process-wide registry keeps
  alive until :meth:`Registration.close`. Text goes to SQLite zero-copy
  (``SQLITE_STATIC``): SQLite may keep such a pointer in a register until
  the statement is reset, so ``close`` releases the pins only when no
  statement of the connection is mid-run (``sqlite3_stmt_busy``); otherwise
  the release waits, and is retried by every later ``register_frame``,
  ``close`` and :func:`release_pending`.
* The *indexes* (:mod:`fastagg.table.index`) live in a directory the token
  points to (``sqlite3_malloc64``); compiled code builds them on first use.
  The registration lets go of the directory when the buffers are released
  (after ``dead`` is set, with no cursor open: cursors may read an index's
  permutation in place): it is freed then, unless it is kept with its
  source (a pyarrow Table, :mod:`fastagg.table.directory`) for the next
  registration of the same table, until the table is garbage collected.
"""

from __future__ import annotations

import atexit
import ctypes
import sqlite3
import threading

import numpy as np

from ..errors import Error
from ..sqlite import capi as _capi
from ..sqlite.structs import MIRRORS
from .callbacks import module_address, module_destroy_address
from .columns import build_table, check_schema, frame_columns, quote, schema_text
from .directory import acquire_directory, directory_entries, entry_bytes, is_kept, release_directory

__all__ = ["Registration", "register_frame", "registry_lock", "release_pending", "unregister_frame"]

SQLITE_OK = _capi.SQLITE_OK
SQLITE_DBCONFIG_TRIGGER_EQP = 1008

_Token = MIRRORS["TOKEN"][1]  # the token as ctypes sees it

_registry: dict[int, "Registration"] = {}  # token address -> live or pending registration
registry_lock = threading.RLock()  # guards _registry; load_frame takes it too


def _busy(handle: int) -> bool:
    """Whether any statement of connection *handle* is mid-run (sqlite3_stmt_busy)."""
    stmt = _capi.lib.sqlite3_next_stmt(handle, None)
    while stmt:
        if _capi.lib.sqlite3_stmt_busy(stmt):
            return True
        stmt = _capi.lib.sqlite3_next_stmt(handle, stmt)
    return False


def _expire_statements(handle: int) -> None:
    """Make every prepared statement of *handle* re-prepare before its next run.

    Cached statements (Python's sqlite3 keeps up to 128) still refer to a
    dropped table; re-preparing binds them to the current registration or
    fails with "no such table". Toggling a boolean db option is how SQLite's
    public API expires statements (``sqlite3_db_config``); the option
    (TRIGGER_EQP, EXPLAIN output of triggers) is restored at once.
    """
    old = ctypes.c_int(0)
    lib = _capi.lib
    lib.sqlite3_db_config(handle, SQLITE_DBCONFIG_TRIGGER_EQP, -1, ctypes.addressof(old))
    lib.sqlite3_db_config(handle, SQLITE_DBCONFIG_TRIGGER_EQP, 1 - old.value, None)
    lib.sqlite3_db_config(handle, SQLITE_DBCONFIG_TRIGGER_EQP, old.value, None)


class Registration:
    """A frame registered as an eponymous virtual table on one connection.

    Keeps the frame's buffers, the descriptor and the schema alive while
    SQLite can read them. Use as a context manager or call :meth:`close`.

    Attributes
    ----------
    name : str
    columns : list of Column
    nrows : int
    """

    def __init__(self, con, name, columns, descriptor, schema, token, handle):
        self.name = name
        self.columns = columns
        self.nrows = int(descriptor[0][0]["nrows"])
        # No reference to the connection: while the token says the module is
        # alive, SQLite has not closed the connection, so the handle is valid.
        self._handle = handle
        self._descriptor = descriptor  # (TABLE, COLUMN arrays) pinned: the token points here
        self._schema = schema  # pinned: xConnect declares it
        self._token = token  # address; shared with SQLite (see module docstring)
        self._closed = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self._closed else "open"
        return f"<fastagg Registration {self.name!r} {self.nrows} rows, {len(self.columns)} columns, {state}>"

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def released(self) -> bool:
        """Whether the buffers have been let go."""
        return self._token is None

    def _slots(self):
        return _Token.from_address(self._token)

    @property
    def indexes_kept(self) -> bool:
        """Whether the indexes outlive this registration, kept with the source for its next one."""
        with registry_lock:
            return self._token is not None and bool(self._slots().indexes) and is_kept(self._slots().indexes)

    @property
    def index_bytes(self) -> int:
        """Memory of every index built so far: permutations plus key-start tables (0 once released)."""
        with registry_lock:
            if self._token is None or not self._slots().indexes:
                return 0
            return sum(entry_bytes(ent) for ent in directory_entries(self._slots().indexes))

    @property
    def indexes(self) -> list[dict]:
        """The indexes built so far: one dict per index.

        Keys: ``columns`` (names, in index order), ``bytes`` (memory of its
        row permutation), ``distinct`` (distinct non-NULL keys), ``nulls``
        (rows with a NULL in a key column). Empty once released.
        """
        with registry_lock:
            if self._token is None or not self._slots().indexes:
                return []
            names = [c.name for c in self.columns]
            return [
                {
                    "columns": [names[ent.cols[j]] for j in range(ent.ncols)],
                    "bytes": int(ent.bytes),
                    "distinct": int(ent.ndistinct),
                    "nulls": int(ent.nnull),
                }
                for ent in directory_entries(self._slots().indexes)
            ]

    def close(self) -> None:
        """Drop the table from its connection and release the buffers.

        Calls ``sqlite3_create_module_v2`` with a NULL module. The buffers are
        released now, or, if a statement of the connection is mid-run (it may
        still hold zero-copy text), as soon as none is (checked on every later
        registration, close and :func:`release_pending`). Idempotent.
        """
        with registry_lock:
            if not self._closed:
                self._closed = True
                if self._slots().alive:
                    _capi.lib.sqlite3_create_module_v2(self._handle, self.name.encode(), None, None, None)
                    _expire_statements(self._handle)
            self._try_release()
            release_pending()

    def _try_release(self) -> bool:
        if self._token is None:
            return True
        tok = self._slots()
        # Not alive: the connection closed, SQLite will not read the buffers again.
        if tok.alive and (tok.cursors > 0 or _busy(self._handle)):
            return False
        tok.dead = 1  # every callback checks this before touching the pins
        if tok.indexes:
            release_directory(tok.indexes)
            tok.indexes = None
        tok.refs -= 1
        if tok.refs == 0:
            _capi.lib.sqlite3_free(self._token)
        _registry.pop(self._token, None)
        self._token = None
        self.columns = []
        self._descriptor = None
        self._schema = None
        return True


def release_pending() -> int:
    """Release the buffers of closed registrations that SQLite no longer reads.

    Also releases registrations whose connection was closed or collected.
    Returns how many are still waiting.
    """
    waiting = 0
    with registry_lock:
        for reg in list(_registry.values()):
            tok = reg._slots()
            if reg._closed or not tok.alive:
                reg._closed = True
                if not reg._try_release():
                    waiting += 1
    return waiting


def _existing_names(con) -> set[str]:
    names = set()
    for (schema,) in [(r[1],) for r in con.execute("PRAGMA database_list")]:
        q = f"SELECT lower(name) FROM {quote(schema)}.sqlite_master WHERE type IN ('table', 'view')"
        names.update(r[0] for r in con.execute(q))
    return names


def register_frame(
    con: sqlite3.Connection, name: str, frame, *, replace: bool = False, decimals: str = "real"
) -> Registration:
    """Expose *frame* to SQL on *con* as the read-only table *name*, without copying.

    O(columns): no pass over the rows for numpy and Arrow buffers (see
    :func:`frame_columns` for the columns that are converted once).

    Parameters
    ----------
    con : sqlite3.Connection
    name : str
        Table name; ``SELECT ... FROM name`` works at once (an eponymous-only
        virtual table, no CREATE VIRTUAL TABLE).
    frame : pandas.DataFrame, pyarrow.Table, object with ``__arrow_c_stream__``, or Registration
        A live registration (on any connection) shares its pinned buffers.
    replace : bool
        Drop an earlier fastagg registration of *name* on *con* first.
    decimals : {"real", "text"}
        Arrow decimal columns as REAL (default) or as their exact text
        (:func:`frame_columns`).

    Returns
    -------
    Registration
        Keeps the buffers pinned until ``close()`` (or :func:`unregister_frame`).

    Raises
    ------
    fastagg.UnsupportedDtypeError
        Before anything is registered.
    fastagg.Error
        *name* is taken by a table, a view, a module, or another registration.

    Notes
    -----
    Calls ``sqlite3_create_module_v2``. Rows are numbered from 1 (``rowid``),
    as in a table written by ``DataFrame.to_sql``. ``=``, ``<``, ``<=``,
    ``>``, ``>=`` on integer, float and rowid columns are evaluated in
    compiled code; ORDER BY and GROUP BY on any columns are produced in order
    by compiled code (each key hashed to dense ranks, only the distinct
    values sorted, then a counting sort: O(n + G log G) for G distinct
    values), so SQLite needs no sorter; the columns the query uses are then
    gathered in that order a chunk at a time, so SQLite reads them
    sequentially. ``ORDER BY ... LIMIT k`` selects the top k rows instead
    of sorting them all when SQLite passes the LIMIT down.

    Joins, correlated subqueries, ``IN`` and lookups use indexes inside the
    table: ``=``, ``IS`` and range constraints on any columns (one or
    several, any kind; text compared BINARY) are answered by a binary
    search of a sorted row permutation (8 bytes a row; dense integer keys
    add a table of where each key starts, up to 8 more), built in compiled
    code the first time a plan needs it, kept until the registration is
    closed and reused by every later statement (:attr:`Registration.indexes`);
    over a pyarrow Table (immutable) it is kept with the table object and
    reused by later registrations of it (every ``fastagg.query`` call) until
    the table is garbage collected (docs/joins.md).
    xBestIndex prices a scan at n rows and a probe at log2(n) plus the rows
    it returns (n / distinct keys), so that SQLite probes the inner frame of
    a join by key rather than rescanning it per outer row; a single constant
    lookup on a frame without that index yet scans instead (building the
    index would cost more).

    Examples
    --------
    >>> import sqlite3, pandas as pd
    >>> con = sqlite3.connect(":memory:")
    >>> reg = register_frame(con, "t", pd.DataFrame({"g": ["a", "b", "a"], "x": [1, 2, 3]}))
    >>> con.execute("SELECT g, sum(x) FROM t GROUP BY g").fetchall()
    [('a', 4), ('b', 2)]
    >>> reg.close()
    """
    if not isinstance(name, str) or not name or "\0" in name:
        raise Error(f"table name must be a non-empty string, got {name!r}")
    if isinstance(frame, Registration):
        # Its pinned buffers, shared (the workers of fastagg.engine.parallel):
        # exactly what was registered, whatever the frame became since.
        if frame.released:
            raise Error(f"cannot register {name!r}: that registration was closed")
        columns = list(frame.columns)
    else:
        columns = frame_columns(frame, decimals=decimals)  # raises before anything is registered
    if not columns:
        raise Error(f"cannot register {name!r}: the frame has no columns")
    handle = _capi.connection_handle(con)
    check_schema(name, columns, _capi.lib.sqlite3_limit(handle, _capi.SQLITE_LIMIT_COLUMN, -1))
    nrows = {c.nrows for c in columns}
    if len(nrows) != 1:
        raise Error(f"cannot register {name!r}: columns have different lengths {sorted(nrows)}")
    release_pending()
    with registry_lock:
        for reg in list(_registry.values()):
            if _live_on(reg, handle) and reg.name.lower() == name.lower():
                if not replace:
                    raise Error(
                        f"{name!r} is already registered on this connection; close it "
                        f"first or pass replace=True"
                    )
                reg.close()
        if name.lower() in _existing_names(con):
            raise Error(f"cannot register {name!r}: a table or view of that name exists")
        if _module_exists(con, name):
            raise Error(f"cannot register {name!r}: SQLite already has a module of that name")
        schema_buf = np.frombuffer(schema_text(columns), np.uint8).copy()
        descriptor, column_structs = build_table(columns, schema_buf)
        token = _capi.lib.sqlite3_malloc64(ctypes.sizeof(_Token))
        if not token:
            raise MemoryError("sqlite3_malloc64 failed")
        tok = _Token.from_address(token)
        ctypes.memset(token, 0, ctypes.sizeof(_Token))
        try:
            # Indexes built by earlier registrations of the same immutable source are reused.
            source = None if isinstance(frame, Registration) else frame
            signature = column_structs.tobytes() + descriptor.tobytes()[:8]
            directory = acquire_directory(source, decimals, signature, len(columns))
        except MemoryError:
            _capi.lib.sqlite3_free(token)
            raise
        tok.refs, tok.alive, tok.table, tok.indexes = 2, 1, descriptor.ctypes.data, directory
        reg = Registration(con, name, columns, (descriptor, column_structs), schema_buf, token, handle)
        _registry[token] = reg
        rc = _capi.lib.sqlite3_create_module_v2(
            handle, name.encode(), module_address(), token, module_destroy_address()
        )
        if rc != SQLITE_OK:
            message, _ = _capi.error_message(handle, rc)  # this call's, not another thread's
            # SQLite has called module_destroy (its reference is gone).
            reg._closed = True
            reg._try_release()
            raise Error(f"cannot register {name!r}: {message}")
        _expire_statements(handle)  # statements naming an older table of this name
        return reg


def _live_on(reg, handle) -> bool:
    return not reg._closed and reg._handle == handle and reg._slots().alive != 0


def _module_exists(con, name) -> bool:
    try:
        rows = con.execute("SELECT 1 FROM pragma_module_list WHERE lower(name) = lower(?)", (name,)).fetchall()
    except sqlite3.Error:
        return False
    return bool(rows)


def unregister_frame(con: sqlite3.Connection, name: str) -> None:
    """Close the registration of table *name* on *con* (see :meth:`Registration.close`)."""
    handle = _capi.connection_handle(con)
    with registry_lock:
        for reg in list(_registry.values()):
            if _live_on(reg, handle) and reg.name.lower() == name.lower():
                reg.close()
                return
    raise Error(f"no frame is registered as {name!r} on this connection")


@atexit.register
def _drop_all() -> None:
    """Drop live registrations before the interpreter (and the compiled code) goes."""
    with registry_lock:
        for reg in list(_registry.values()):
            try:
                reg.close()
            except Exception:  # noqa: BLE001 - best effort at exit
                pass
