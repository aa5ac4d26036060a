"""The virtual table's index machinery: a second native image, built on first need.

A plain scan, a WHERE filter or a GROUP BY never builds or probes an index
nor takes a top-k, and this code (building and probing indexes for xFilter,
the top-k of ORDER BY ... LIMIT) was about 40 % of the virtual table's
compile from an empty cache. So it is compiled into an image of its own
(:data:`fastagg.table.callbacks.INDEX_IMAGE`), which the base image
(:mod:`.module`) reaches through the slots after the ``sqlite3_module``
(:mod:`.indirect`): when xBestIndex would choose an index plan or a top-k
and the slots are empty, it calls the loader's hook, which loads (or builds,
once) the image and fills them. If that fails the base plans a scan, which
is always correct. The cost model (:mod:`.pricing`, its distinct estimates
sampling the table) is here too, behind its own entry (:func:`price_entry`):
the base prices nothing when pricing cannot choose an index (no index built
on the table and every usable comparison against a constant: building one
always costs more than the scan), and loads this image to price otherwise
(a join's probes, an index that exists).

Every entry is ``int32(int64 x 5)`` (see :mod:`.indirect`).
"""

from __future__ import annotations

import numpy as np
from numba import carray, cfunc, njit, types

from ..native.intrinsics import as_voidptr
from ..sqlite import capi as _capi
from ..sqlite.structs import CURSOR, INDEX_CONSTRAINT, INDEX_INFO, INDEX_ORDERBY, MAX_INDEX_COLUMNS, TABLE, TOKEN
from .filtering import OP_EQ
from .indirect import PRICE_COST, PRICE_KEYS, PRICE_KIND, PRICE_NKEY, PRICE_NPICK, PRICE_PICKS, PRICE_ROWS, PRICE_UNIQUE
from .index import OP_IS, build_index, find_index, index_entries, probe
from .ordering import order_rows, top_rows
from .plan import plan_filters, plan_keys, plan_order
from .pricing import index_candidate
from .records import columns_of as _columns
from .records import record as _record
from .records import set_rows as _set_rows

__all__ = ["CALLBACKS"]

SQLITE_OK = _capi.SQLITE_OK
SQLITE_NOMEM = 7


@njit(cache=True)
def _in_key_order(order, keys, nk, neq):
    """Whether an index slice with its first *neq* keys fixed is already in the order terms' order."""
    for t in range(len(order)):
        col = order[t].column
        if col < 0:
            # Rowid ascending after every remaining key: the stable sort kept
            # row order among equal keys.
            return order[t].desc == 0 and neq + t == nk
        if order[t].desc != 0 or neq + t >= nk or keys[neq + t] != col:
            return False
    return True


@njit(cache=True)
def _index_filter(cur, plan, cols, nrows, argv, argc):
    """xFilter of an index plan: the matching slice of the index, built on first use.

    Returns an SQLite result code. The cursor reads the slice in place when
    it is in the requested order; otherwise a sorted copy.
    """
    tok = _record(cur.token, TOKEN)[0]
    kt = plan_keys(plan)
    nk = len(kt)
    keys = np.empty(nk, np.int64)
    for j in range(nk):
        keys[j] = kt[j].column
    filters = plan_filters(plan)
    order = plan_order(plan)
    e = find_index(tok.indexes, keys, nk)
    if e < 0:
        e = build_index(tok.indexes, cols, nrows, keys, nk)
        if e == -1:
            return SQLITE_NOMEM
    if e < 0:
        # No room for another index: every row, SQLite tests the constraints.
        rows = np.arange(nrows)
        if len(order) > 0:
            rows = order_rows(cols, rows, order, None)  # None: this image's own text ranking
        return SQLITE_OK if _set_rows(cur, rows) else SQLITE_NOMEM
    ent = index_entries(tok.indexes)[1][e]
    perm = carray(as_voidptr(ent.perm), max(nrows, 1), np.int64)
    neq = np.int64(0)  # not a literal: one specialisation of its callees
    for f in range(len(filters)):
        if filters[f].op == OP_EQ or filters[f].op == OP_IS:
            neq += 1
    av = carray(argv, max(argc, 1), np.intp)
    span = ent.span if ent.starts != 0 else 0
    starts = carray(as_voidptr(ent.starts if span > 0 else ent.perm), max(span + 1, 1), np.int64)
    lo, hi, exact = probe(cols, perm, nrows, keys, nk, neq, filters, av, starts, ent.base, span)
    m = hi - lo
    # The index found may have more columns than the plan's keys: its own
    # columns decide the slice's order.
    ikeys = np.empty(ent.ncols, np.int64)
    for j in range(ent.ncols):
        ikeys[j] = ent.cols[j]
    if len(order) == 0 or (exact and _in_key_order(order, ikeys, ent.ncols, neq)):
        cur.end = m
        if m > 0:
            cur.rows = ent.perm + 8 * lo  # the index's own memory: read in place
            cur.own_rows = 0
    else:
        rows = np.sort(perm[lo:hi])  # order_rows wants rows ascending
        rows = order_rows(cols, rows, order, None)  # None: this image's own text ranking
        if not _set_rows(cur, rows):
            return SQLITE_NOMEM
    return SQLITE_OK


_I64 = types.int64
_ENTRY = types.int32(_I64, _I64, _I64, _I64, _I64)


@cfunc(_ENTRY, cache=True)
def index_filter(cursor_addr, plan, argc, argv_addr, _unused):
    """xFilter of an index plan (:func:`_index_filter`); an SQLite result code."""
    cur = _record(cursor_addr, CURSOR)[0]
    cols = _columns(cur.table)
    nrows = _record(cur.table, TABLE)[0].nrows
    return _index_filter(cur, plan, cols, nrows, as_voidptr(argv_addr), np.int32(argc))


@cfunc(_ENTRY, cache=True)
def top_filter(cursor_addr, plan, rows_addr, n, k):
    """Hand the cursor the first *k* of the *n* rows at *rows_addr* in the plan's order (top-k)."""
    cur = _record(cursor_addr, CURSOR)[0]
    cols = _columns(cur.table)
    rows = carray(as_voidptr(rows_addr), n, np.int64)
    return SQLITE_OK if _set_rows(cur, top_rows(cols, rows, plan_order(plan), k, None)) else SQLITE_NOMEM


@cfunc(_ENTRY, cache=True)
def price_entry(info_addr, token_addr, norder, nscan, out_addr):
    """The priced index candidate of xBestIndex's *info* (:func:`.pricing.index_candidate`) into *out_addr*.

    *norder*: the order terms xBestIndex plans (0 when SQLite sorts);
    *nscan*: the comparisons its scan pushes. *out_addr* holds
    ``PRICE_PICKS + max(nConstraint, 1)`` int64 words (layout ``PRICE_*``).
    Returns SQLITE_OK.
    """
    ii = carray(as_voidptr(info_addr), 1, INDEX_INFO)[0]
    ncons = ii.nConstraint
    cons = carray(as_voidptr(ii.aConstraint), max(ncons, 1), INDEX_CONSTRAINT)
    orderby = carray(as_voidptr(ii.aOrderBy), max(ii.nOrderBy, 1), INDEX_ORDERBY)
    tok = _record(token_addr, TOKEN)[0]
    cols = _columns(tok.table)
    nrows = _record(tok.table, TABLE)[0].nrows
    kind, nkey, keys, picks, npick, cost, rows, unique = index_candidate(
        as_voidptr(info_addr), cons, ncons, cols, tok.indexes, nrows, orderby, norder, nscan
    )
    out = carray(as_voidptr(out_addr), PRICE_PICKS + max(ncons, 1), np.int64)
    fout = carray(as_voidptr(out_addr), PRICE_PICKS + max(ncons, 1), np.float64)
    out[PRICE_KIND] = kind
    out[PRICE_NKEY] = nkey
    out[PRICE_NPICK] = npick
    out[PRICE_UNIQUE] = 1 if unique else 0
    fout[PRICE_COST] = cost
    fout[PRICE_ROWS] = rows
    for j in range(MAX_INDEX_COLUMNS):
        out[PRICE_KEYS + j] = keys[j]
    for j in range(max(ncons, 1)):
        out[PRICE_PICKS + j] = picks[j]
    return SQLITE_OK


#: The index image's entries, by slot name (:mod:`.indirect`; loaded by :mod:`.callbacks`).
CALLBACKS = {"filter": index_filter, "top": top_filter, "price": price_entry}
