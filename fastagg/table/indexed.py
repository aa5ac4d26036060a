"""The virtual table's index machinery: a second native image, built on first need.

A plain scan or GROUP BY never prices, builds or probes an index, and this
code (the cost model of index plans, the index probe of xFilter, the top-k
of ORDER BY ... LIMIT) was about 40 % of the virtual table's compile from an
empty cache. So it is compiled into an image of its own
(:data:`fastagg.table.callbacks.INDEX_IMAGE`), which the base image
(:mod:`.module`) reaches through the slots after the ``sqlite3_module``
(:mod:`.indirect`): when xBestIndex sees a constraint or an ORDER BY an
index could serve and the slots are empty, it calls the loader's hook, which
loads (or builds, once) the image and fills them. If that fails the base
plans a scan, which is always correct.

Every entry is ``int32(int64 x 5)`` (see :mod:`.indirect`).
"""

from __future__ import annotations

import numpy as np
from numba import carray, cfunc, njit, types

from ..native.intrinsics import as_voidptr, is_null
from ..sqlite import capi as _capi
from ..sqlite.declarations import sqlite3_vtab_collation, sqlite3_vtab_rhs_value
from ..sqlite.structs import CURSOR, INDEX_CONSTRAINT, INDEX_INFO, INDEX_ORDERBY, TABLE, TOKEN, VTAB
from ..sqlite.structs import MAX_INDEX_COLUMNS
from .columns import K_NULL
from .filtering import OP_EQ, OP_GE, OP_GT, OP_LE, OP_LT
from .index import C_TEXT, OP_IS, build_index, column_class, estimate_distinct, find_index, index_entries, probe
from .ordering import order_rows, top_rows
from .plan import PLAN_INDEX, PLAN_SCAN, plan_filters, plan_keys, plan_order
from .records import columns_of as _columns
from .records import record as _record
from .records import set_rows as _set_rows

__all__ = ["CALLBACKS", "OUT_HEAD", "candidate_words"]

SQLITE_OK = _capi.SQLITE_OK
SQLITE_NOMEM = 7
PROBE_COST = 20.0

_BINARY = np.frombuffer(b"BINARY\0", np.uint8).copy()

#: int64 words of :func:`index_candidate`'s result before the keys and picks:
#: kind, nkey, npick, cost (float64 bits), rows (float64 bits), unique.
OUT_HEAD = 6


@njit(cache=True)
def candidate_words(ncons):
    """Words of the result buffer xBestIndex hands :func:`index_candidate`."""
    return OUT_HEAD + MAX_INDEX_COLUMNS + max(ncons, 1)


@njit(cache=True)
def _binary(info, i, kind):
    """Whether constraint *i* compares under BINARY (always so for numbers)."""
    if column_class(kind) < C_TEXT:
        return True
    p = sqlite3_vtab_collation(info, i)
    if is_null(p):
        return True
    name = carray(p, 7, np.uint8)
    for j in range(7):
        c = name[j]
        if c >= 97 and c <= 122:
            c -= 32
        if c != _BINARY[j]:
            return False
        if c == 0:
            break
    return True


@njit(cache=True, inline="always")
def _usable_on(info, cons, cols, i, op_wanted):
    """Whether constraint *i* (of a wanted operator) is usable on a column an index can key, under BINARY."""
    col = cons[i].iColumn
    if cons[i].usable == 0 or col < 0 or not op_wanted:
        return False
    return cols[col].kind != K_NULL and _binary(info, i, cols[col].kind)


@njit(cache=True, inline="always")
def _among(keys, n, col):
    """Whether *col* is one of the first *n* of *keys*."""
    for j in range(n):
        if keys[j] == col:
            return True
    return False


@njit(cache=True)
def _probe_rows(dir_addr, cols, nrows, keys, neq, rdiv):
    """(rows, unique) a probe by equality on ``keys[:neq]`` returns, a range dividing by *rdiv*.

    Exact from an index on exactly those columns once built (unique when
    every non-NULL key is distinct), else from the per-column estimates.
    """
    n = max(nrows, 1)
    rows = np.float64(n)
    unique = False
    if neq > 0:
        e = find_index(dir_addr, keys, neq)
        head, entries = index_entries(dir_addr)
        if e >= 0 and entries[e].ncols == neq:
            nd = max(np.float64(entries[e].ndistinct), 1.0)
            unique = rdiv == 1.0 and entries[e].ndistinct == entries[e].nrows - entries[e].nnull
        else:
            nd = 1.0
            for j in range(neq):
                nd = min(nd * estimate_distinct(dir_addr, cols, nrows, keys[j]), np.float64(n))
        rows = n / nd
    return rows / rdiv, unique


@njit(cache=True)
def _index_candidate(info, cons, ncons, cols, dir_addr, nrows, orderby, norder, nscan):
    """The best index plan for the usable constraints, priced.

    Key columns: every column with a usable ``=`` / ``IS`` (in column order,
    so that queries share indexes), then one column with usable ranges.
    A probe costs log2(n) per key column plus the rows it returns,
    n / ndistinct (exact once the index is built, estimated from a sample
    before); building the index (n log n) is charged only when every
    right-hand side is a constant (one probe: a scan is cheaper), not in a
    join, where the index serves every outer row. With no such constraint,
    an ORDER BY on the leading columns of an index already built reads the
    index in order. Returns (kind, nkey, keys, constraints in plan order,
    how many, cost, rows, unique).
    """
    n = max(nrows, 1)
    lg = np.log2(np.float64(n)) + 1.0
    keys = np.full(MAX_INDEX_COLUMNS, -1, np.int64)
    eqi = np.full(MAX_INDEX_COLUMNS, -1, np.int64)
    picks = np.zeros(max(ncons, 1), np.int64)
    neq = np.int64(0)  # not a literal: one specialisation of its callees
    for i in range(ncons):
        col = cons[i].iColumn
        op = cons[i].op
        if neq >= MAX_INDEX_COLUMNS or not _usable_on(info, cons, cols, i, op == OP_EQ or op == OP_IS):
            continue
        if _among(keys, neq, col):
            continue
        # insertion in column order
        j = neq
        while j > 0 and keys[j - 1] > col:
            keys[j] = keys[j - 1]
            eqi[j] = eqi[j - 1]
            j -= 1
        keys[j] = col
        eqi[j] = i
        neq += 1
    rcol = -1
    rlo = -1
    rhi = -1
    if neq < MAX_INDEX_COLUMNS:
        for i in range(ncons):
            col = cons[i].iColumn
            op = cons[i].op
            if not _usable_on(info, cons, cols, i, op == OP_GT or op == OP_GE or op == OP_LT or op == OP_LE):
                continue
            if _among(keys, neq, col) or (rcol >= 0 and col != rcol):
                continue
            if (op == OP_GT or op == OP_GE) and rlo < 0:
                rcol = col
                rlo = i
            elif (op == OP_LT or op == OP_LE) and rhi < 0:
                rcol = col
                rhi = i
    npick = 0
    for j in range(neq):
        picks[npick] = eqi[j]
        npick += 1
    nk = neq
    if rcol >= 0:
        keys[nk] = rcol
        nk += 1
        if rlo >= 0:
            picks[npick] = rlo
            npick += 1
        if rhi >= 0:
            picks[npick] = rhi
            npick += 1
    if nk == 0:
        # ORDER BY the leading columns of an existing index (ascending).
        if norder == 0 or nscan > 0 or norder > MAX_INDEX_COLUMNS:
            return PLAN_SCAN, -1, keys, picks, 0, 0.0, 0.0, False
        for t in range(norder):
            if orderby[t].iColumn < 0 or orderby[t].desc != 0:
                return PLAN_SCAN, -1, keys, picks, 0, 0.0, 0.0, False
            keys[t] = orderby[t].iColumn
        if find_index(dir_addr, keys, np.int64(norder)) < 0:
            return PLAN_SCAN, -1, keys, picks, 0, 0.0, 0.0, False
        return PLAN_INDEX, norder, keys, picks, 0, 0.5 * n, np.float64(n), False
    rdiv = 1.0 if rcol < 0 else (4.0 if (rlo >= 0 and rhi >= 0) else 3.0)
    have = find_index(dir_addr, keys, nk) >= 0
    if not have and rcol >= 0 and neq > 0:
        # A new index: when the equalities alone leave a few rows per probe,
        # leave the range to SQLite and key the index on the equalities
        # only: one column sorts several times faster than two, and later
        # queries joining on the same key reuse it (q03's (l_orderkey,
        # l_shipdate) would serve nothing else).
        erows, _ = _probe_rows(dir_addr, cols, nrows, keys, neq, 1.0)
        if erows <= 32.0:
            keys[neq] = -1
            nk = neq
            npick = neq
            rcol = -1
            rdiv = 1.0
            have = find_index(dir_addr, keys, nk) >= 0
    rows, unique = _probe_rows(dir_addr, cols, nrows, keys, neq, rdiv)
    constant = True
    slot = np.zeros(1, np.intp)
    for f in range(npick):
        slot[0] = 0
        if sqlite3_vtab_rhs_value(info, picks[f], as_voidptr(slot.ctypes.data)) != SQLITE_OK or slot[0] == 0:
            constant = False
    if not have and neq > 0:
        # An index already built whose leading columns all have an equality
        # here answers a superset (SQLite tests every constraint anyway):
        # reading up to 32 more rows per probe is cheaper than sorting the
        # table again for another index (q17 / q19 / q20 would otherwise
        # build a second index on lineitem). Not more: q07 reading all of a
        # supplier's lineitems (600) for the quarter its date range keeps
        # costs more than the (l_suppkey, l_shipdate) index, once.
        head, entries = index_entries(dir_addr)
        best = -1
        bm = np.int64(0)
        brows = np.float64(n) + 1.0
        for e in range(head[0].count):
            m = np.int64(0)
            while m < entries[e].ncols and m < neq and _among(keys, neq, entries[e].cols[m]):
                m += 1
            if m > 0:
                # The one returning the fewest rows (l_partkey, not l_suppkey, for q20).
                er, _ = _probe_rows(dir_addr, cols, nrows, entries[e].cols, m, 1.0)
                if er < brows:
                    best = e
                    bm = m
                    brows = er
        if best >= 0:
            akeys = np.full(MAX_INDEX_COLUMNS, -1, np.int64)
            apicks = np.zeros(max(ncons, 1), np.int64)
            for j in range(bm):
                akeys[j] = entries[best].cols[j]
                for q in range(neq):
                    if keys[q] == akeys[j]:
                        apicks[j] = eqi[q]
            anp = bm
            ank = bm
            ardiv = 1.0
            if rcol >= 0 and entries[best].ncols > bm and entries[best].cols[bm] == rcol:
                akeys[bm] = rcol
                ank += 1
                ardiv = rdiv
                if rlo >= 0:
                    apicks[anp] = rlo
                    anp += 1
                if rhi >= 0:
                    apicks[anp] = rhi
                    anp += 1
            arows, aunique = _probe_rows(dir_addr, cols, nrows, akeys, bm, ardiv)
            if arows <= rows + 32.0:
                keys = akeys
                picks = apicks
                npick = anp
                nk = ank
                neq = bm
                rows = arows
                unique = aunique and ank == bm and bm == entries[best].ncols
                have = True
    # PROBE_COST: an xFilter call's fixed work (arrays, the search's cell
    # reads) is worth tens of scanned rows.
    cost = PROBE_COST + lg * (1 + neq) + rows
    if not have and constant:
        cost += n * lg
    return PLAN_INDEX, nk, keys, picks, npick, cost, max(rows, 1.0), unique


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
            rows = order_rows(cols, rows, order)
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
        rows = order_rows(cols, rows, order)
        if not _set_rows(cur, rows):
            return SQLITE_NOMEM
    return SQLITE_OK


_I64 = types.int64
_ENTRY = types.int32(_I64, _I64, _I64, _I64, _I64)


@cfunc(_ENTRY, cache=True)
def index_candidate(info_addr, vtab_addr, nscan, out_addr, _unused):
    """xBestIndex's index plan (:func:`_index_candidate`), written to the words at *out_addr*.

    *out_addr* holds :func:`candidate_words` int64 words: :data:`OUT_HEAD`
    of results, then ``MAX_INDEX_COLUMNS`` keys, then the picked constraints.
    """
    tok = _record(_record(vtab_addr, VTAB)[0].token, TOKEN)[0]
    cols = _columns(tok.table)
    nrows = _record(tok.table, TABLE)[0].nrows
    info = as_voidptr(info_addr)
    ii = carray(info, 1, INDEX_INFO)[0]
    ncons = ii.nConstraint
    norder = ii.nOrderBy
    cons = carray(as_voidptr(ii.aConstraint), max(ncons, 1), INDEX_CONSTRAINT)
    orderby = carray(as_voidptr(ii.aOrderBy), max(norder, 1), INDEX_ORDERBY)
    kind, nk, keys, picks, npick, cost, rows, unique = _index_candidate(
        info, cons, ncons, cols, tok.indexes, nrows, orderby, norder, nscan
    )
    out = carray(as_voidptr(out_addr), candidate_words(ncons), np.int64)
    real = carray(as_voidptr(out_addr + 24), 2, np.float64)
    out[0] = kind
    out[1] = nk
    out[2] = npick
    real[0] = cost
    real[1] = rows
    out[5] = 1 if unique else 0
    for j in range(MAX_INDEX_COLUMNS):
        out[OUT_HEAD + j] = keys[j]
    for j in range(npick):
        out[OUT_HEAD + MAX_INDEX_COLUMNS + j] = picks[j]
    return SQLITE_OK


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
    return SQLITE_OK if _set_rows(cur, top_rows(cols, rows, plan_order(plan), k)) else SQLITE_NOMEM


#: The index image's entries, by slot name (:mod:`.indirect`; loaded by :mod:`.callbacks`).
CALLBACKS = {"candidate": index_candidate, "filter": index_filter, "top": top_filter}
