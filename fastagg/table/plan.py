"""The query plan xBestIndex hands to xFilter, encoded and decoded here only.

Format
------
``idxStr`` is one ``sqlite3_malloc64`` block that SQLite frees with
``sqlite3_free`` (xBestIndex sets ``needToFreeIdxStr``)::

    PLAN header                     tag, kind, nfilter, norder, index, colUsed
    PLAN_TERM * nfilter             filters: column, op, argv
    PLAN_TERM * norder              order terms: column, desc
    PLAN_TERM * index               index plans: the index's columns (column)

(:data:`fastagg.sqlite.structs.PLAN` and ``PLAN_TERM``.)

``tag`` is the NUL-terminated text ``fastagg`` so that ``EXPLAIN QUERY
PLAN`` (which prints idxStr with ``%s``) shows ``INDEX 1:fastagg`` instead
of binary. ``idxNum`` repeats ``kind``.

``kind``
    ``PLAN_SCAN``: every row (or the rowid range the filters allow), each
    filter tested in compiled code, then the rows sorted by the order terms.
    ``PLAN_INDEX``: a probe of the index on the key columns (the ``index``
    terms after the order terms; :mod:`fastagg.table.index`, built on first
    use): the filters are ``=`` / ``IS`` on the leading key columns, in key
    order, then ranges on the next; the matching slice is then sorted by
    the order terms unless it is in their order already. With no filters,
    the whole index read in order (an ORDER BY the index serves).
``index``
    Number of key terms of an index plan; -1 for a scan.
``column``
    Column number, -1 for the rowid.
``op``
    An ``SQLITE_INDEX_CONSTRAINT_*`` operator (filters).
``argv``
    0-based index into xFilter's ``argv`` of the right-hand side (filters;
    xBestIndex set its ``argvIndex`` to ``argv + 1``), -1 for none.
``desc``
    1 for a descending order term.
``colUsed``
    ``sqlite3_index_info.colUsed``: the columns xColumn may be asked for (bit
    63 stands for column 63 and every later one).

A NULL ``idxStr`` (never produced by xBestIndex) is a plain scan.
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit

from ..native.intrinsics import address_of, as_voidptr, is_null
from ..sqlite.declarations import sqlite3_malloc64
from ..sqlite.structs import PLAN, PLAN_TERM

__all__ = [
    "PLAN", "PLAN_INDEX", "PLAN_SCAN", "PLAN_TERM", "new_plan", "plan_filters", "plan_header", "plan_keys",
    "plan_order",
]

PLAN_SCAN = 0
PLAN_INDEX = 1

_TAG = np.frombuffer(b"fastagg\0", np.uint8).copy()
_PLAN_SIZE = PLAN.itemsize
_PLAN_TERM_SIZE = PLAN_TERM.itemsize


@njit(cache=True)
def new_plan(kind, col_used, nfilter, norder, nkey=-1):
    """Allocate a plan with *nfilter*, *norder* (and *nkey*) zeroed terms; return its address, 0 on NOMEM.

    The caller fills the terms (:func:`plan_filters`, :func:`plan_order`,
    :func:`plan_keys`) and hands the block to SQLite as ``idxStr`` with
    ``needToFreeIdxStr = 1``. *nkey* -1 (a scan) has no key terms.
    """
    nterm = nfilter + norder + max(nkey, 0)
    size = _PLAN_SIZE + nterm * _PLAN_TERM_SIZE
    p = sqlite3_malloc64(size)
    if is_null(p):
        return 0
    carray(p, size, np.uint8)[:] = 0
    head = carray(p, 1, PLAN)[0]
    for i in range(8):
        head.tag[i] = _TAG[i]
    head.kind = kind
    head.nfilter = nfilter
    head.norder = norder
    head.index = nkey
    head.colUsed = col_used
    terms = carray(as_voidptr(address_of(p) + _PLAN_SIZE), nterm, PLAN_TERM)
    for i in range(nterm):
        terms[i].argv = -1
    return address_of(p)


@njit(cache=True)
def plan_header(addr):
    """The plan's header at *addr*, as a one-element ``PLAN`` array."""
    return carray(as_voidptr(addr), 1, PLAN)


@njit(cache=True)
def plan_filters(addr):
    """The plan's filter terms (``PLAN_TERM`` array viewing the block)."""
    n = carray(as_voidptr(addr), 1, PLAN)[0].nfilter
    return carray(as_voidptr(addr + _PLAN_SIZE), n, PLAN_TERM)


@njit(cache=True)
def plan_order(addr):
    """The plan's order terms (``PLAN_TERM`` array viewing the block)."""
    head = carray(as_voidptr(addr), 1, PLAN)[0]
    return carray(as_voidptr(addr + _PLAN_SIZE + head.nfilter * _PLAN_TERM_SIZE), head.norder, PLAN_TERM)


@njit(cache=True)
def plan_keys(addr):
    """The index plan's key terms (``PLAN_TERM`` array viewing the block; empty for a scan)."""
    head = carray(as_voidptr(addr), 1, PLAN)[0]
    start = addr + _PLAN_SIZE + (head.nfilter + head.norder) * _PLAN_TERM_SIZE
    return carray(as_voidptr(start), max(head.index, 0), PLAN_TERM)
