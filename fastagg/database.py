"""The front end: register compiled aggregates on connections, run queries.

Calls into SQLite go through :mod:`fastagg._capi`.
"""

from __future__ import annotations

import sqlite3

from . import _capi
from ._spec import spec_of

__all__ = ["register"]


def register(con: sqlite3.Connection, *aggregates: type) -> None:
    """Register compiled aggregates on any :class:`sqlite3.Connection`.

    Each aggregate compiles once per process, at its first registration. The
    compiled code lives for the rest of the process, so the connection may
    use it for as long as it is open.

    Parameters
    ----------
    con : sqlite3.Connection
    *aggregates : classes decorated with :func:`fastagg.aggregate`

    Raises
    ------
    fastagg.CompileError
        A class is not decorated, or numba cannot compile it.
    sqlite3.ProgrammingError
        The connection is closed.

    Examples
    --------
    >>> import sqlite3, fastagg
    >>> @fastagg.aggregate
    ... class Span:
    ...     lo: float
    ...     hi: float
    ...     seen: bool
    ...     def step(self, x: float):
    ...         if not self.seen or x < self.lo:
    ...             self.lo = x
    ...         if not self.seen or x > self.hi:
    ...             self.hi = x
    ...         self.seen = True
    ...     def finalize(self) -> float | None:
    ...         return self.hi - self.lo if self.seen else None
    >>> con = sqlite3.connect(":memory:")
    >>> fastagg.register(con, Span)
    >>> con.execute("SELECT span(value) FROM (SELECT 3 AS value UNION SELECT 10)").fetchone()
    (7.0,)
    """
    from ._compile import compile_aggregate  # numba loads here, not at import

    specs = [spec_of(agg) for agg in aggregates]
    handle = _capi.connection_handle(con)
    for spec in specs:
        compiled = compile_aggregate(spec)
        _capi.create_aggregate(
            handle,
            spec.name,
            spec.narg,
            compiled.address("step"),
            compiled.address("finalize"),
            compiled.address("value"),
            compiled.address("inverse"),
        )
