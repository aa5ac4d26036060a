"""The options of a query, shared by :func:`fastagg.query`, :meth:`fastagg.Database.query` and :func:`fastagg.dask.query`.

The public calls keep their keyword arguments; each builds one
:class:`QueryOptions`, which checks every value here, once, with a message
that names the option and the fix.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any

from .compile.spec import spec_of
from .errors import Error
from .output import OUTPUTS

__all__ = ["QueryOptions", "ReadOnlyAuthorizer", "check_sql"]


def check_sql(sql) -> None:
    """Raise :class:`TypeError` unless *sql* is a str."""
    if not isinstance(sql, str):
        raise TypeError(f"sql must be a str, got {type(sql).__name__}")


def _as_tuple(value, option: str) -> tuple:
    if isinstance(value, (type, str, bytes)) or callable(value) or not hasattr(value, "__iter__"):
        raise Error(
            f"{option} must be an iterable (a list or tuple) of decorated classes or functions; "
            f"got {getattr(value, '__name__', None) or type(value).__name__}: wrap it in a list"
        )
    return tuple(value)


@dataclasses.dataclass(frozen=True)
class QueryOptions:
    """What a query registers and returns, checked once.

    The fields are the keyword arguments of :meth:`fastagg.Database.query`,
    documented there: ``aggregates`` and ``functions`` (kept as tuples),
    ``params``, ``output`` (one of :data:`fastagg.output.OUTPUTS`),
    ``builtins``, ``workers``, ``read_only`` (see
    :class:`ReadOnlyAuthorizer`) and ``engine`` (``"auto"``: the native
    grouped engine, :mod:`fastagg.engine.native`, when the statement is in
    its shape; ``"sqlite"`` forces SQLite; ``"native"`` fails outside the
    shape). :func:`fastagg.dask.query` runs its
    partial statements with ``workers=1``.

    Raises
    ------
    fastagg.Error
        A value is out of range or of the wrong kind.

    Examples
    --------
    >>> QueryOptions(output="arrow", workers=2).workers
    2
    >>> QueryOptions(output="excel")
    Traceback (most recent call last):
    ...
    fastagg.errors.Error: output must be one of 'pandas', 'arrow', 'polars'; got 'excel'
    """

    aggregates: tuple = ()
    functions: tuple = ()
    params: Any = None
    output: str = "pandas"
    builtins: bool = True
    workers: int | None = None
    read_only: bool = False
    engine: str = "auto"  # "auto": native grouped engine when in its shape; "sqlite"; "native" (must apply)

    def __post_init__(self):
        # frozen: the normalised tuples are set past the dataclass guard.
        object.__setattr__(self, "aggregates", _as_tuple(self.aggregates, "aggregates"))
        object.__setattr__(self, "functions", _as_tuple(self.functions, "functions"))
        if not isinstance(self.output, str) or self.output not in OUTPUTS:
            raise Error(f"output must be one of {', '.join(map(repr, OUTPUTS))}; got {self.output!r}")
        if not isinstance(self.builtins, bool):
            raise Error(f"builtins must be True or False; got {self.builtins!r}")
        if not isinstance(self.read_only, bool):
            raise Error(f"read_only must be True or False; got {self.read_only!r}")
        w = self.workers
        if w is not None and (isinstance(w, bool) or not isinstance(w, int) or w < 1):
            raise Error(f"workers must be a positive int or None; got {w!r}")
        if self.engine not in ("auto", "sqlite", "native"):
            raise Error(f"engine must be one of 'auto', 'sqlite', 'native'; got {self.engine!r}")

    def replace(self, **changes) -> QueryOptions:
        """Return a copy with *changes* applied (and checked)."""
        return dataclasses.replace(self, **changes)

    def specs(self, sql: str) -> list:
        """Return the specs to register for *sql*: the given ones, then the built-ins it calls.

        A given aggregate hides a built-in of the same name.

        Raises
        ------
        fastagg.CompileError
            An aggregate or function is not decorated.
        """
        given, builtins = self.spec_groups(sql)
        return given + builtins

    def spec_groups(self, sql: str) -> tuple[list, list]:
        """Return ``(given, builtins)``: the specs of the given aggregates and functions, and of
        the built-ins *sql* calls that no given one hides (see :func:`fastagg.registry.acquire`,
        which treats the two differently when a name is taken)."""
        given = [spec_of(obj) for obj in (*self.aggregates, *self.functions)]
        builtins = []
        if self.builtins:
            from .registry import builtins_used

            names = {s.name.lower() for s in given}
            builtins = [s for s in builtins_used(sql) if s.name.lower() not in names]
        return given, builtins


# --------------------------------------------------------------------------
# read_only=True: what a read-only statement may do (an authorizer)

#: PRAGMAs that only read, though they take an argument (``PRAGMA table_info(t)``).
_READING_PRAGMAS = frozenset({
    "collation_list", "compile_options", "database_list", "foreign_key_check", "foreign_key_list",
    "function_list", "index_info", "index_list", "index_xinfo", "integrity_check", "module_list",
    "pragma_list", "quick_check", "table_info", "table_list", "table_xinfo",
})
#: PRAGMAs that change the database or its file though they take no argument.
_WRITING_PRAGMAS = frozenset({"incremental_vacuum", "optimize", "shrink_memory", "wal_checkpoint"})
#: SQLite's schema tables: it reads and updates them itself while preparing
#: (making a virtual table's schema, loading the schema); a statement of the
#: user's cannot write them without ``PRAGMA writable_schema``, a PRAGMA write.
_SCHEMA_TABLES = frozenset({"sqlite_master", "sqlite_temp_master", "sqlite_schema", "sqlite_temp_schema"})


class ReadOnlyAuthorizer:
    """The authorizer of ``read_only=True`` (``sqlite3.Connection.set_authorizer``).

    Allows reading (SELECT, reading tables, views, virtual tables, calling
    functions, recursive CTEs, transactions and reading PRAGMAs) and denies
    everything that writes: INSERT, UPDATE, DELETE, CREATE, DROP, ALTER,
    ``ATTACH`` (and so ``VACUUM INTO``, which attaches its target), DETACH,
    REINDEX, ANALYZE, PRAGMA writes (``PRAGMA x = v``) and the PRAGMAs that
    change the file without an argument (``optimize``, ``wal_checkpoint``,
    ``incremental_vacuum``, ``shrink_memory``); :meth:`install` also sets
    ``PRAGMA query_only``, for the writes SQLite asks no authorizer about
    (``REINDEX`` of everything). fastagg's own work is not
    affected: functions and frames are registered through SQLite's C API,
    which no authorizer sees. The authorizer runs when a statement is
    prepared, never per row. ``denied`` keeps the last refusal, for the
    error message.

    Examples
    --------
    >>> import sqlite3
    >>> con = sqlite3.connect(":memory:")
    >>> con.set_authorizer(ReadOnlyAuthorizer())
    >>> con.execute("SELECT 1").fetchone()
    (1,)
    >>> con.execute("CREATE TABLE t(x)")
    Traceback (most recent call last):
    ...
    sqlite3.DatabaseError: not authorized
    """

    _ALLOW = frozenset({
        sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE,
        sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT,
    })
    _NAMES = {
        getattr(sqlite3, n): n[len("SQLITE_"):].replace("_", " ")
        for n in dir(sqlite3)
        if n.startswith("SQLITE_") and n[7:].split("_")[0] in {
            "ALTER", "ANALYZE", "ATTACH", "COPY", "CREATE", "DELETE", "DETACH", "DROP", "INSERT",
            "PRAGMA", "REINDEX", "UPDATE",
        }
    }

    def __init__(self):
        self.denied: str | None = None

    def __call__(self, action, arg1, arg2, database, source):
        if action in self._ALLOW:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA:
            name = (arg1 or "").lower()
            if name not in _WRITING_PRAGMAS and (arg2 is None or name in _READING_PRAGMAS):
                return sqlite3.SQLITE_OK
            self._deny(f"PRAGMA {arg1}" + (f" = {arg2}" if arg2 is not None else ""))
            return sqlite3.SQLITE_DENY
        if action in (sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_INSERT) and (arg1 or "").lower() in _SCHEMA_TABLES:
            return sqlite3.SQLITE_OK  # SQLite's own bookkeeping (see _SCHEMA_TABLES)
        what = self._NAMES.get(action, f"action {action}")
        what = {"DELETE": "DELETE FROM", "INSERT": "INSERT INTO"}.get(what, what)
        self._deny(f"{what} {arg1}" if arg1 else what)
        return sqlite3.SQLITE_DENY

    def _deny(self, what: str) -> None:
        # The first refusal names the statement (DROP TABLE t); SQLite then
        # asks about the steps it implies (DELETE FROM sqlite_master).
        if self.denied is None:
            self.denied = what

    @staticmethod
    def install(con: sqlite3.Connection, authorizer: ReadOnlyAuthorizer) -> bool:
        """Make *con* read-only with *authorizer*; return whether ``query_only`` was on before.

        Read-only is the authorizer plus ``PRAGMA query_only = 1``, which
        refuses writes no authorizer is asked about (``REINDEX`` without a
        name, for one). :meth:`uninstall` undoes both.
        """
        (was,) = con.execute("PRAGMA query_only").fetchone()
        con.execute("PRAGMA query_only = 1")
        con.set_authorizer(authorizer)
        return bool(was)

    @staticmethod
    def uninstall(con: sqlite3.Connection, query_only_before: bool) -> None:
        """Undo :meth:`install`: no authorizer, ``query_only`` as it was. Never raises."""
        try:
            con.set_authorizer(None)
            if not query_only_before:
                con.execute("PRAGMA query_only = 0")
        except sqlite3.Error:
            pass  # closed, or interrupted (Ctrl-C with a statement of the caller's active)
