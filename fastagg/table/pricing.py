"""The cost model of index plans, for xBestIndex (njit helpers, no callbacks).

Part of the lazily loaded index image (:mod:`.indexed`, entry
``price_entry``), not of the base (:mod:`.module`): its distinct estimates
sample the table (hashing, counting), about a third of the base image's
compile from an empty cache. The base asks it only when it can choose an
index (:func:`fastagg.table.module._may_index`: a join's non-constant
right-hand side, or a table with an index built); otherwise it always
chooses the scan, which the base plans itself.
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit

from ..native.intrinsics import as_voidptr, is_null
from ..sqlite import capi as _capi
from ..sqlite.declarations import sqlite3_vtab_collation, sqlite3_vtab_rhs_value
from ..sqlite.structs import MAX_INDEX_COLUMNS
from .columns import K_NULL
from .filtering import OP_EQ, OP_GE, OP_GT, OP_LE, OP_LT
from .index import C_TEXT, OP_IS, column_class, estimate_distinct, find_index, index_entries
from .plan import PLAN_INDEX, PLAN_SCAN

__all__ = ["index_candidate"]

SQLITE_OK = _capi.SQLITE_OK
PROBE_COST = 20.0

_BINARY = np.frombuffer(b"BINARY\0", np.uint8).copy()


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
def index_candidate(info, cons, ncons, cols, dir_addr, nrows, orderby, norder, nscan):
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
