"""The front end: sessions and one-shot queries (registration itself is :mod:`fastagg.registry`).

Data path: frames are exposed to SQLite by :mod:`fastagg.table` (a
zero-copy virtual table, or a bulk load into a real table), aggregates are
compiled by :mod:`fastagg.compile`, and results are read into Arrow by
:mod:`fastagg.reader`. Those modules import numba; this one does not, so
``import fastagg`` stays cheap.
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import Error
from .options import QueryOptions, ReadOnlyAuthorizer, check_sql
from .output import convert
from .registry import acquire, register, release

__all__ = ["Database", "connect", "explain", "query", "register", "sql"]

def _is_frame(obj) -> bool:
    pd = sys.modules.get("pandas")
    pa = sys.modules.get("pyarrow")
    return (
        (pd is not None and isinstance(obj, pd.DataFrame))
        or (pa is not None and isinstance(obj, (pa.Table, pa.RecordBatch)))
        or hasattr(obj, "__arrow_c_stream__")
    )


class Database:
    """A SQLite session: frames registered as tables, aggregates, queries.

    Use :func:`connect` to open one. A session owns its connection unless it
    wraps a caller's (``Database(connection=con)``), which it then never
    closes.

    Parameters
    ----------
    path : str or os.PathLike, default ":memory:"
        SQLite database to open.
    connection : sqlite3.Connection, optional
        Wrap an existing connection instead of opening one.
    read_only : bool, default False
        Deny every statement that writes (see :class:`fastagg.options.ReadOnlyAuthorizer`)
        for the session's lifetime, through ``Connection.set_authorizer``;
        on a wrapped connection this replaces its authorizer until
        :meth:`close`, which removes it. :meth:`load` is then refused.

    Notes
    -----
    A session may be used from several threads. :meth:`close` from another
    thread while a query runs interrupts the query, which raises
    :class:`fastagg.Error` ("closed during the query"), waits for it to
    stop, then closes: the connection is never freed under a running query.

    Examples
    --------
    >>> import pandas as pd, fastagg
    >>> with fastagg.connect() as db:
    ...     db.register("trades", pd.DataFrame({"sym": ["a", "b", "a"], "px": [1.0, 2.0, 3.0]}))
    ...     out = db.query("SELECT sym, avg(px) AS px FROM trades GROUP BY sym ORDER BY sym")
    >>> out["px"].tolist()
    [2.0, 2.0]
    """

    def __init__(self, path: str | os.PathLike = ":memory:", *, connection: sqlite3.Connection | None = None,
                 read_only: bool = False):
        if not isinstance(read_only, bool):
            raise Error(f"read_only must be True or False; got {read_only!r}")
        if connection is not None:
            if not isinstance(connection, sqlite3.Connection):
                raise TypeError(f"connection must be a sqlite3.Connection, got {type(connection).__name__}")
            self._con = connection
            self._owns_connection = False
        else:
            # check_same_thread=False: the reader steps statements on a worker
            # thread so that Ctrl-C can interrupt them.
            self._con = sqlite3.connect(path, check_same_thread=False)
            self._owns_connection = True
        self._tables: dict[str, Any] = {}
        self._frames: dict[str, Any] = {}  # name -> frame as given (every engine reads self._tables' buffers)
        # Queries running now (thread ids); close() waits for them.
        self._state = threading.Condition()
        self._running: list[int] = []
        self._closing = False
        self._read_only = read_only
        self._authorizer = None
        if read_only:
            self._authorizer = ReadOnlyAuthorizer()
            self._query_only_before = ReadOnlyAuthorizer.install(self._con, self._authorizer)

    # -- lifetime ---------------------------------------------------------

    @property
    def connection(self) -> sqlite3.Connection:
        """The underlying :class:`sqlite3.Connection`."""
        self._check_open()
        return self._con

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._con is None

    def close(self) -> None:
        """Drop registered frames and close the connection if this session opened it.

        Safe from any thread: queries running on other threads are
        interrupted (they raise :class:`fastagg.Error`) and waited for first.

        Raises
        ------
        fastagg.Error
            Called by the thread of a running query of this session (from a
            callback of that query).
        """
        with self._state:
            if self._con is None:
                return
            if threading.get_ident() in self._running:
                raise Error("cannot close this fastagg.Database from inside one of its own queries")
            self._closing = True
            while self._running:
                self._con.interrupt()  # thread-safe; stops the running statement
                self._state.wait(0.05)
            if self._con is None:
                return  # another thread's close() finished first
            for name in list(self._tables):
                self._frames.pop(name, None)
                self._tables.pop(name).close()
            if self._read_only and not self._owns_connection:
                ReadOnlyAuthorizer.uninstall(self._con, self._query_only_before)
            if self._owns_connection:
                self._con.close()
            self._con = None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"tables={sorted(self._tables)}"
        return f"<fastagg.Database {state}>"

    def _check_open(self) -> None:
        if self._con is None or self._closing:
            raise Error("this fastagg.Database is closed")

    def _enter(self) -> None:
        """Count a query as running (close() waits for it); raise if the session is closed."""
        with self._state:
            self._check_open()
            self._running.append(threading.get_ident())

    def _leave(self) -> None:
        with self._state:
            self._running.remove(threading.get_ident())
            self._state.notify_all()

    # -- tables -----------------------------------------------------------

    def register(self, name: str, frame, *, decimals: str = "real") -> None:
        """Expose *frame* as table *name* without copying its data.

        *frame* is a pandas DataFrame, a pyarrow Table, or any object with
        ``__arrow_c_stream__``. The frame's buffers stay pinned until
        :meth:`unregister` or :meth:`close`; the frame itself is not modified.
        Registering again under the same name replaces the table.
        *decimals* (``"real"`` or ``"text"``): Arrow decimal columns as the
        nearest double, or as their exact digits (docs: "Column types").
        """
        self._check_open()
        _check_table_name(name)
        _check_frame(frame, "register")
        from .table import register_frame

        if name in self._tables:
            self.unregister(name)
        self._tables[name] = register_frame(self._con, name, frame, decimals=decimals)
        self._frames[name] = frame

    def unregister(self, name: str) -> None:
        """Remove table *name* registered with :meth:`register`; release its buffers."""
        self._check_open()
        registration = self._tables.pop(name, None)
        self._frames.pop(name, None)
        if registration is None:
            raise Error(f"no frame is registered as {name!r}")
        registration.close()

    def load(self, name: str, frame, *, if_exists: str = "fail") -> None:
        """Copy *frame* into a real SQLite table *name*, in one transaction.

        Column types become INTEGER, REAL, TEXT or BLOB. *if_exists* is
        ``"fail"``, ``"replace"`` or ``"append"``. On failure the database is
        left as it was.
        """
        self._check_open()
        _check_table_name(name)
        _check_frame(frame, "load")
        if name.lower() in {n.lower() for n in self._tables} or self._con.execute(
            "SELECT 1 FROM pragma_module_list WHERE lower(name) = lower(?)", (name,)
        ).fetchone():
            # A real table would hide the frame (or the frame the table) without a word.
            raise Error(f"cannot load {name!r}: a frame is registered under that name; unregister it first")
        if self._read_only:
            raise Error(f"cannot load {name!r}: this fastagg.Database is read-only")
        from .table import load_frame

        load_frame(self._con, name, frame, if_exists=if_exists)

    @property
    def tables(self) -> list[str]:
        """Names of the frames registered with :meth:`register`."""
        return sorted(self._tables)

    @property
    def table_info(self) -> dict[str, dict]:
        """Per registered frame: its rows, columns, and the indexes built for its joins.

        Returns
        -------
        dict
            ``{name: {"rows": int, "columns": [str, ...], "indexes": [...]}}``;
            each index is ``{"columns": [str, ...], "bytes": int,
            "distinct": int, "nulls": int}`` (``bytes``: its row permutation),
            ``"index_bytes"``: all the memory of the indexes (permutations,
            and for dense integer keys a table of where each key starts,
            8 bytes per key value), and ``"indexes_kept"``: whether they
            outlive the registration. An index is built in compiled
            code the first time a query probes the frame by those columns (a
            join, ``IN``, or a lookup once the index exists) and costs 8 to
            16 bytes a row. It is kept until the frame is unregistered; for a
            pyarrow Table (immutable) it is kept with the table itself and
            reused by every later registration of the same table object
            (each ``fastagg.query`` call registers its frames), until the
            table is garbage collected. pandas frames can change in place,
            so their indexes go with the registration.

        Examples
        --------
        >>> import pandas as pd, fastagg
        >>> with fastagg.connect() as db:
        ...     db.register("a", pd.DataFrame({"k": [1, 2, 2]}))
        ...     db.register("b", pd.DataFrame({"k": [2, 3]}))
        ...     n = db.query("SELECT count(*) AS n FROM a JOIN b USING (k)")["n"][0]
        ...     info = db.table_info
        >>> int(n), info["a"]["rows"], info["a"]["columns"]
        (2, 3, ['k'])
        """
        self._check_open()
        return {
            name: {"rows": reg.nrows, "columns": [c.name for c in reg.columns], "indexes": reg.indexes,
                   "index_bytes": reg.index_bytes, "indexes_kept": reg.indexes_kept}
            for name, reg in sorted(self._tables.items())
        }

    # -- queries ----------------------------------------------------------

    def query(self, sql: str, aggregates: Iterable[type] = (), *, functions: Iterable = (), params=None,
              output: str = "pandas", builtins: bool = True, workers: int | None = None,
              read_only: bool = False, engine: str = "auto"):
        """Run *sql* and return its result as a DataFrame, an Arrow table or a polars DataFrame.

        The keyword arguments build one :class:`fastagg.options.QueryOptions`,
        which checks them.

        Parameters
        ----------
        sql : str
            One SQL statement.
        aggregates : iterable of aggregate classes
            Registered for this query only.
        functions : iterable of scalar functions
            Decorated with :func:`fastagg.function`; registered for this query only.
        params : sequence or mapping, optional
            SQL parameters, as :mod:`sqlite3` takes them.
        output : {"pandas", "arrow", "polars"}
            ``"pandas"``: a DataFrame with ``pd.ArrowDtype`` columns;
            ``"arrow"``: a ``pyarrow.Table``; ``"polars"``: a
            ``polars.DataFrame`` over the same Arrow buffers, without a copy
            (``pip install polars``).
        builtins : bool, default True
            Make fastagg's built-in aggregates (``var_samp``, ``median``, ...)
            available.
        workers : int or None, default None
            Threads (each with its own connection) for a grouped query over
            one registered frame: ``SELECT keys, aggregates FROM frame [WHERE]
            GROUP BY keys [HAVING] [ORDER BY] [LIMIT]`` whose aggregates are
            SQLite's ``count``/``sum``/``total``/``min``/``max``/``avg`` or
            define ``merge``. Other statements run on one connection, with
            the same result. ``None``: 1 below a million rows, else
            ``min(os.cpu_count(), 4)``. See :mod:`fastagg.engine.parallel`.
        read_only : bool, default False
            Deny writes, ``ATTACH`` (and ``VACUUM INTO``) and ``PRAGMA``
            writes for this statement (:class:`fastagg.options.ReadOnlyAuthorizer`,
            installed with ``Connection.set_authorizer`` for the query and
            removed after it); a denied statement raises :class:`fastagg.Error`.
            A session opened with ``read_only=True`` is read-only whatever
            this says.
        engine : {"auto", "sqlite", "native"}, default "auto"
            ``"auto"``: statements in the native grouped engine's shape run
            in compiled code over the frame's buffers (the same answers);
            ``"sqlite"`` forces SQLite. See :meth:`explain`.
        """
        self._check_open()
        options = QueryOptions(
            aggregates, functions, params=params, output=output, builtins=builtins, workers=workers,
            read_only=read_only, engine=engine,
        )
        return self._run(sql, options)

    def explain(self, sql: str, aggregates: Iterable[type] = (), *, functions: Iterable = (),
                builtins: bool = True, engine: str = "auto"):
        """Say which engine runs *sql* and, for SQLite, the first construct the native engine does not handle.

        Returns
        -------
        fastagg.engine.native.Explanation
            ``engine`` (``"native"`` or ``"sqlite"``) and ``reason``.
        """
        self._check_open()
        check_sql(sql)
        options = QueryOptions(aggregates, functions, builtins=builtins, engine=engine)
        from .engine.native import explain_statement

        return explain_statement(self, sql, options.specs(sql), options.engine)

    def _run(self, sql: str, options: QueryOptions, remember: str | None = None, numba_loaded: bool | None = None):
        """Run *sql* with *options*: register, read into Arrow, unregister, convert.

        *remember*: the ``decimals`` of a one-shot session's frames (this
        session is :func:`query`'s own, on a fresh in-memory connection): a
        result the native engine builds itself is remembered for the next
        :func:`query` of the same statement (:func:`fastagg.engine.native.run_remembered`).
        *numba_loaded*: whether numba was imported before this statement
        compiled anything (default: whether it is now).
        """
        check_sql(sql)
        # Before this statement's aggregates are compiled (which imports numba):
        # the native engine's small-frame rule asks whether numba was already there.
        if numba_loaded is None:
            numba_loaded = "numba" in sys.modules
        given, builtins = options.spec_groups(sql)
        from .reader import read_query

        self._enter()
        con = self._con
        authorizer = self._authorizer
        query_only_before = None
        guard = None
        try:
            guard = _Guard(con)
            if options.read_only and authorizer is None:
                authorizer = ReadOnlyAuthorizer()
                query_only_before = ReadOnlyAuthorizer.install(con, authorizer)  # for this query only
            if authorizer is not None:
                authorizer.denied = None
            try:
                functions = acquire(con, given, builtins)
                try:
                    table = None
                    # The native grouped engine: None when it does not apply.
                    if options.engine != "sqlite" and self._tables:
                        from .engine.native import native_query

                        table = native_query(self, sql, functions.usable, options, numba_loaded,
                                             None if remember is None else (given + builtins, remember))
                    if table is None and (options.workers is None or options.workers > 1):
                        from .engine.parallel import query_parallel

                        # None: the statement is not splittable, or too small to split.
                        table = query_parallel(
                            con, sql, dict(self._tables), functions.usable, options.params, options.workers
                        )
                    if table is None:
                        table = read_query(con, sql, options.params)
                finally:
                    # What fastagg registered serves this query only; never
                    # raises, so a KeyboardInterrupt stays what is raised.
                    release(functions)
            finally:
                if query_only_before is not None:
                    ReadOnlyAuthorizer.uninstall(con, query_only_before)
            if guard.connection_closed():
                raise Error("the connection was closed during the query (from another thread)")
        except Exception as exc:
            if self._closing or (guard is not None and guard.connection_closed()):
                raise Error("the connection was closed during the query (from another thread)") from exc
            if authorizer is not None and authorizer.denied and isinstance(exc, sqlite3.DatabaseError):
                # "not authorized", or "authorization denied" from VACUUM INTO's own ATTACH
                raise Error(
                    f"read_only=True: the statement may not {authorizer.denied} (a read-only query "
                    f"only reads; open the database without read_only to write)"
                ) from exc
            if authorizer is not None and "readonly database" in str(exc):
                # PRAGMA query_only refused what the authorizer is not asked about.
                raise Error(f"read_only=True: the statement may not write to the database ({exc})") from exc
            raise
        finally:
            if guard is not None:
                guard.finalize()
            self._leave()
        return convert(table, options.output)


class _Guard:
    """A prepared, never-run statement held for one query: the connection cannot be freed under it.

    ``Connection.close()`` from another thread (on a caller's connection,
    which :meth:`Database.close` cannot wait for) calls
    ``sqlite3_close_v2``, which, while any statement of the connection is
    unfinalized, only marks it a zombie and frees it when the last one is
    finalized. With this statement held, every SQLite call of the query
    gets a valid handle (a zombie answers SQLITE_MISUSE) until
    :meth:`finalize`. Calls ``sqlite3_prepare_v2`` and ``sqlite3_finalize``.
    """

    __slots__ = ("_con", "_stmt")

    def __init__(self, con: sqlite3.Connection):
        import ctypes

        from .sqlite import capi

        self._con = con
        self._stmt = ctypes.c_void_p()
        handle = capi.connection_handle(con)
        rc = capi.lib.sqlite3_prepare_v2(handle, b"SELECT 1", -1, ctypes.byref(self._stmt), None)
        if rc != capi.SQLITE_OK:
            raise capi.last_error(handle, rc)

    def connection_closed(self) -> bool:
        """Whether the connection was closed (no SQL is run to tell)."""
        try:
            self._con.total_changes  # noqa: B018 - raises ProgrammingError once closed
        except sqlite3.Error:
            return True
        return False

    def finalize(self) -> None:
        from .sqlite import capi

        if self._stmt.value:
            capi.lib.sqlite3_finalize(self._stmt.value)  # frees a zombie connection, if it is one
            self._stmt = type(self._stmt)()


def _check_table_name(name) -> None:
    if not isinstance(name, str) or not name:
        raise Error(f"table name must be a non-empty str, got {name!r}")
    if name.lower().startswith("sqlite_"):
        # SQLite's own tables (sqlite_master, sqlite_sequence, ...) would hide the frame.
        raise Error(f"table name {name!r} is reserved: SQLite keeps names starting with 'sqlite_' for itself")


def _check_frame(frame, method: str) -> None:
    """Raise :class:`fastagg.Error` naming what is accepted unless *frame* is a table-like object."""
    pd = sys.modules.get("pandas")
    pa = sys.modules.get("pyarrow")
    hint = ""
    if pd is not None and isinstance(frame, pd.Series):
        hint = ": a Series is one column; pass series.to_frame()"
    elif pa is not None and isinstance(frame, (pa.Array, pa.ChunkedArray)):
        hint = ": an array is one column; pass pa.table({'name': array})"
    elif _is_frame(frame):
        return
    raise Error(
        f"{method} expects a pandas DataFrame, a pyarrow Table or RecordBatch, or an object with "
        f"__arrow_c_stream__ giving a table (a pyarrow RecordBatchReader, a polars DataFrame); "
        f"got {type(frame).__module__}.{type(frame).__qualname__}{hint}"
    )


def connect(path: str | os.PathLike = ":memory:", *, read_only: bool = False) -> Database:
    """Open a :class:`Database` session on *path* (in memory by default).

    ``read_only=True``: every statement of the session is read-only (see
    :class:`Database`).

    Examples
    --------
    >>> import fastagg
    >>> with fastagg.connect() as db:
    ...     db.query("SELECT 1 + 1 AS two", output="arrow").to_pylist()
    [{'two': 2}]
    """
    return Database(path, read_only=read_only)


def query(data, sql: str, aggregates: Iterable[type] = (), *, functions: Iterable = (), params=None,
          output: str = "pandas", builtins: bool = True, workers: int | None = None, read_only: bool = False,
          decimals: str = "real", engine: str = "auto"):
    """Run one SQL statement over *data* with compiled aggregates.

    Parameters
    ----------
    data
        A pandas DataFrame or pyarrow Table (the table ``df``), any object
        with ``__arrow_c_stream__`` (also ``df``), a dict ``{name: frame}``,
        a :class:`sqlite3.Connection`, a path to a SQLite file, or a
        :class:`Database`.
    sql : str
        One SQL statement.
    aggregates : iterable of aggregate classes
        Registered for this call only.
    functions, params, output, builtins, workers, read_only, engine
        As for :meth:`Database.query` (and :class:`fastagg.options.QueryOptions`):
        ``output="pandas"`` (default), ``"arrow"`` or ``"polars"``;
        ``read_only=True`` denies writes, ``ATTACH`` and ``PRAGMA`` writes
        (on a caller's connection it replaces, for the query, any authorizer
        the connection had: ``sqlite3`` cannot read the current one).
    decimals : {"real", "text"}
        Arrow decimal columns of the frames in *data* as REAL (default) or
        as exact text; as for :meth:`Database.register`.

    Returns
    -------
    pandas.DataFrame (``pd.ArrowDtype`` columns), pyarrow.Table or polars.DataFrame

    Examples
    --------
    >>> import numpy as np, pandas as pd, fastagg
    >>> @fastagg.aggregate
    ... class Spread:
    ...     lo: float
    ...     hi: float
    ...     def __init__(self):
    ...         self.lo = np.inf
    ...         self.hi = -np.inf
    ...     def step(self, x: float):
    ...         self.lo = min(self.lo, x)
    ...         self.hi = max(self.hi, x)
    ...     def finalize(self) -> float:
    ...         return self.hi - self.lo
    >>> df = pd.DataFrame({"g": [1, 1, 2], "x": [1.0, 4.0, 2.0]})
    >>> fastagg.query(df, "SELECT g, spread(x) AS s FROM df GROUP BY g", [Spread])["s"].tolist()
    [3.0, 0.0]
    >>> df.pipe(fastagg.query, "SELECT count(*) AS n FROM df")["n"].tolist()
    [3]
    """
    options = QueryOptions(
        aggregates, functions, params=params, output=output, builtins=builtins, workers=workers,
        read_only=read_only, engine=engine,
    )
    if isinstance(data, Database):
        return data._run(sql, options)
    if isinstance(data, sqlite3.Connection):
        return Database(connection=data)._run(sql, options)
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        if not os.path.exists(path):
            raise Error(f"no such SQLite database file: {path!r}")
        with Database(path) as db:
            return db._run(sql, options)
    if isinstance(data, Mapping):
        frames = dict(data)
    elif _is_frame(data):
        frames = {"df": data}
    else:
        raise TypeError(
            f"fastagg.query: data must be a DataFrame, a pyarrow Table, an Arrow stream, "
            f"a dict of them, a sqlite3.Connection, a database path or a fastagg.Database; "
            f"got {type(data).__name__}"
        )
    if options.engine != "sqlite" and options.params is None and not options.read_only:
        from .engine.native import run_remembered

        # A statement the native engine answered before over frames of the
        # same names and column types: no connection, registration or prepare.
        table = run_remembered(frames, sql, options, decimals)
        if table is not None:
            return convert(table, options.output)
    numba_loaded = "numba" in sys.modules
    with Database() as db:
        _compile_while_images_build(sql, options, frames, decimals, numba_loaded)
        for name, frame in frames.items():
            db.register(name, frame, decimals=decimals)
        return db._run(sql, options, remember=decimals, numba_loaded=numba_loaded)


def _compile_while_images_build(sql: str, options: QueryOptions, frames: dict | None = None,
                                decimals: str = "real", numba_loaded: bool = True) -> None:
    """From an empty cache: start building the fixed native images, then compile the statement's specs meanwhile.

    Registering the first frame waits for the images of the virtual table
    and the reader (built by child processes, :mod:`fastagg.native.loader`);
    this process used to wait idle and compile the statement's aggregates
    and functions (given and built-in) only afterwards. Now the children
    start first and the specs compile while they build, then the native
    engine's kernels (:func:`fastagg.engine.native.warm_native`, given
    *frames*, their *decimals* and whether numba was loaded before the
    statement). Nothing happens
    when the images exist (the warm case) or children are not used. A spec
    that fails to compile here fails again, with the same error, where it
    always did (:func:`fastagg.registry.acquire`).
    """
    from .native.loader import prefetch_fixed_images

    try:
        if not prefetch_fixed_images():
            return
        given, builtins = options.spec_groups(sql)
        from .compile.cache import compile_spec

        for spec in (*given, *builtins):
            compile_spec(spec)
        if frames:
            # The native engine's kernels too (seconds from an empty cache), by a run over the buffers.
            from .engine.native import warm_native

            warm_native(frames, sql, options, decimals, numba_loaded)
    except Exception:  # noqa: BLE001 - an early start only: the statement's own path reports errors
        pass


def explain(data, sql: str, aggregates: Iterable[type] = (), **kw):
    """Say which engine :func:`query` would use for *sql* over *data*, and why.

    *data* and the keywords are those of :func:`query` (``functions``,
    ``builtins``, ``engine``). Returns a
    :class:`fastagg.engine.native.Explanation`.

    Examples
    --------
    >>> import pandas as pd, fastagg
    >>> df = pd.DataFrame({"g": [1, 2], "x": [1.0, 2.0]})
    >>> fastagg.explain(df, "SELECT g, sum(x) FROM df GROUP BY g").engine
    'native'
    >>> print(fastagg.explain(df, "SELECT count(DISTINCT g) FROM df"))
    sqlite: DISTINCT aggregate
    """
    if isinstance(data, Database):
        return data.explain(sql, aggregates, **kw)
    frames = dict(data) if isinstance(data, Mapping) else {"df": data} if _is_frame(data) else None
    if frames is None:
        from .engine.native import Explanation

        return Explanation("sqlite", "the data is not a frame: no frame is registered")
    with Database() as db:
        for name, frame in frames.items():
            db.register(name, frame)
        return db.explain(sql, aggregates, **kw)


_NO_SUCH_TABLE = re.compile(r"no such table: (?:main\.)?(\S+)")


def sql(sql_text: str, aggregates: Iterable[type] = (), *, tables: Mapping | None = None, **kw):
    """Run *sql_text*, finding each table it names among the caller's variables.

    Like DuckDB's replacement scans: a table the statement uses that is not
    in *tables* is looked up among the calling function's local, then global,
    variables (DataFrames, Arrow tables, objects with ``__arrow_c_stream__``).
    SQLite's own parser decides what is a table, so CTE names and aliases
    are never mistaken for one. Other keywords are those of :func:`query`.

    Examples
    --------
    >>> import pandas as pd, fastagg
    >>> trades = pd.DataFrame({"px": [1.0, 2.0, 6.0]})
    >>> fastagg.sql("SELECT avg(px) AS px FROM trades")["px"].tolist()
    [3.0]
    """
    caller = sys._getframe(1)
    try:
        scopes = (caller.f_locals, caller.f_globals)
    finally:
        del caller
    with Database() as db:
        for name, frame in (tables or {}).items():
            db.register(name, frame)
        attempted = set()
        while True:
            missing = _missing_table(db.connection, sql_text)
            if missing is None:
                break
            if missing in attempted:
                raise Error(f"table {missing!r} is still missing after registering it")
            attempted.add(missing)
            frame = _find_frame(missing, scopes)
            if frame is None:
                raise Error(
                    f"no such table: {missing} (and no DataFrame, Arrow table or Arrow "
                    f"stream named {missing!r} among the caller's variables)"
                )
            db.register(missing, frame)
        return db.query(sql_text, aggregates, **kw)


def _missing_table(con: sqlite3.Connection, sql_text: str) -> str | None:
    """Return the first table SQLite cannot find in *sql_text*, preparing only."""
    try:
        # EXPLAIN prepares the statement without running it.
        con.execute("EXPLAIN " + sql_text.strip().rstrip(";")).close()
    except sqlite3.OperationalError as exc:
        match = _NO_SUCH_TABLE.search(str(exc))
        if match:
            return match.group(1)
    except sqlite3.Error:
        pass  # the real run reports other errors
    return None


def _find_frame(name: str, scopes):
    for scope in scopes:
        for key in (name, name.lower()):
            obj = scope.get(key)
            if obj is not None and _is_frame(obj):
                return obj
        # SQLite names are case-insensitive; variables are not.
        for key, obj in scope.items():
            if key.lower() == name.lower() and _is_frame(obj):
                return obj
    return None
