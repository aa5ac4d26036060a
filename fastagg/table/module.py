"""The virtual table's callbacks (``numba.cfunc``) and the process's one ``sqlite3_module``.

The callbacks are compiled once per process (``cache=True``) and shared by
every registered frame; each table's data reaches them through ``pAux``,
the registration's :data:`TOKEN`, which points to its :data:`TABLE`. No
Python runs per row. Every struct is read by field name through
:mod:`fastagg.sqlite.structs`.

Memory: each ``sqlite3_vtab`` (xConnect) and cursor (xOpen) is allocated
with ``sqlite3_malloc64`` and freed in xDisconnect / xClose; a cursor's row
permutation and gathered block likewise, in xFilter (replaced) and xClose.
The ``sqlite3_module`` is built from :data:`CALLBACKS` by :mod:`.callbacks`,
which loads them from a native image when it can (no numba).
"""

from __future__ import annotations


import numpy as np
from numba import carray, cfunc, njit, types

from ..native.intrinsics import address_of, as_voidptr, is_null
from ..sqlite import capi as _capi
from ..sqlite.declarations import (
    sqlite3_declare_vtab,
    sqlite3_free,
    sqlite3_malloc64,
    sqlite3_value_int64,
    sqlite3_value_type,
    sqlite3_vtab_collation,
    sqlite3_vtab_config,
    sqlite3_vtab_rhs_value,
)
from ..sqlite.structs import (
    COLUMN, CURSOR, INDEX_CONSTRAINT, INDEX_CONSTRAINT_USAGE, INDEX_INFO, INDEX_ORDERBY, TABLE,
    TOKEN, VTAB,
)
from ..sqlite.structs import MAX_INDEX_COLUMNS
from .columns import K_BOOLBITS, K_F32, K_F64, K_I8, K_I16, K_I32, K_I64, K_NULL, K_U8, K_U16, K_U32
from .filtering import OP_EQ, OP_GE, OP_GT, OP_LE, OP_LT, select_rows
from .gather import CHUNK, alloc_block, fill_block
from .index import C_TEXT, OP_IS, build_index, column_class, estimate_distinct, find_index, index_entries, probe
from .ordering import order_rows, top_rows
from .plan import PLAN_INDEX, PLAN_SCAN, new_plan, plan_filters, plan_header, plan_keys, plan_order
from .values import SQLITE_FLOAT, SQLITE_INTEGER, result_cell

__all__ = ["CALLBACKS", "module_destroy"]

SQLITE_OK = _capi.SQLITE_OK
SQLITE_ERROR = _capi.SQLITE_ERROR
SQLITE_NOMEM = 7
SQLITE_VTAB_INNOCUOUS = 2
SQLITE_INDEX_SCAN_UNIQUE = 1
OP_LIMIT, OP_OFFSET = 73, 74  # SQLITE_INDEX_CONSTRAINT_LIMIT / _OFFSET (3.38)
OP_MATCH, OP_LIKE, OP_GLOB, OP_REGEXP = 64, 65, 66, 67  # SQLITE_INDEX_CONSTRAINT_*
PROBE_COST = 20.0

_SCRATCH = CURSOR.fields["scratch"][1]  # offset of the cursor's scratch bytes

_BINARY = np.frombuffer(b"BINARY\0", np.uint8).copy()

_MSG_DEAD = np.frombuffer(b"fastagg: this table was unregistered\0", np.uint8).copy()
_MSG_NOMEM = np.frombuffer(b"fastagg: out of memory\0", np.uint8).copy()
_VTAB_SIZE = VTAB.itemsize
_CURSOR_SIZE = CURSOR.itemsize
_COLUMN_SIZE = COLUMN.itemsize


@njit(cache=True)
def _record(addr, dtype):
    """The struct *dtype* at integer address *addr*, as a one-element array."""
    return carray(as_voidptr(addr), 1, dtype)


@njit(cache=True)
def _columns(table_addr):
    """The :data:`COLUMN` array of the table at *table_addr*."""
    tab = carray(as_voidptr(table_addr), 1, TABLE)[0]
    return carray(as_voidptr(tab.columns), tab.ncols, COLUMN)


@njit(cache=True)
def _set_error(vtab_addr, msg):
    """Set ``sqlite3_vtab.zErrMsg`` to a sqlite3_malloc'd copy of *msg* (SQLite frees it)."""
    p = sqlite3_malloc64(len(msg))
    if is_null(p):
        return
    carray(p, len(msg), np.uint8)[:] = msg
    vt = _record(vtab_addr, VTAB)[0]
    if vt.zErrMsg != 0:
        sqlite3_free(as_voidptr(vt.zErrMsg))
    vt.zErrMsg = address_of(p)


_I32 = types.int32
_VP = types.voidptr


@cfunc(_I32(_VP, _VP, _I32, _VP, _VP, _VP), cache=True)
def x_connect(db, aux, argc, argv, pp_vtab, pz_err):
    """xConnect: declare the schema, allocate the sqlite3_vtab (freed in xDisconnect)."""
    tok = carray(aux, 1, TOKEN)[0]
    if tok.dead != 0:
        return SQLITE_ERROR
    rc = sqlite3_declare_vtab(db, as_voidptr(_record(tok.table, TABLE)[0].schema))
    if rc != SQLITE_OK:
        return rc
    sqlite3_vtab_config(db, SQLITE_VTAB_INNOCUOUS)
    p = sqlite3_malloc64(_VTAB_SIZE)
    if is_null(p):
        return SQLITE_NOMEM
    carray(p, _VTAB_SIZE, np.uint8)[:] = 0
    carray(p, 1, VTAB)[0].token = address_of(aux)
    carray(pp_vtab, 1, np.intp)[0] = address_of(p)
    return SQLITE_OK


@cfunc(_I32(_VP), cache=True)
def x_disconnect(vtab):
    sqlite3_free(vtab)
    return SQLITE_OK


@njit(cache=True)
def _exact_rhs(info, i, is_float):
    """Whether constraint *i*'s right-hand side is a literal our test decides exactly.

    Numeric, and for float columns a double or an integer within 2**53
    (``sqlite3_vtab_rhs_value``); then SQLite may omit its own test.
    """
    slot = np.zeros(1, np.intp)
    if sqlite3_vtab_rhs_value(info, i, as_voidptr(slot.ctypes.data)) != SQLITE_OK or slot[0] == 0:
        return False
    t = sqlite3_value_type(as_voidptr(slot[0]))
    if t == SQLITE_FLOAT or (t == SQLITE_INTEGER and not is_float):
        return True
    if t == SQLITE_INTEGER:
        iv = sqlite3_value_int64(as_voidptr(slot[0]))
        return -9007199254740992 <= iv <= 9007199254740992
    return False

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
    neq = 0
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
        if find_index(dir_addr, keys, norder) < 0:
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
        bm = 0
        brows = np.float64(n) + 1.0
        for e in range(head[0].count):
            m = 0
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
def _pattern_selectivity(cons, ncons):
    """Fraction of rows SQLite's own LIKE / GLOB / REGEXP / MATCH tests are taken to keep: 1/10 each.

    These stay SQLite's to evaluate, but the planner only knows the rows
    xBestIndex reports: without this, a table filtered by ``p_name LIKE
    '%green%'`` looks as big as it is, and TPC-H q09 starts from another
    table (SQLite's own guess for such a term on a real table is similar).
    """
    f = 1.0
    for i in range(ncons):
        op = cons[i].op
        if cons[i].usable != 0 and cons[i].iColumn >= 0 and (op == OP_MATCH or op == OP_LIKE
                                                             or op == OP_GLOB or op == OP_REGEXP):
            f = f * 0.1
    return max(f, 1e-4)


@cfunc(_I32(_VP, _VP), cache=True)
def x_best_index(vtab, info):
    """xBestIndex: an index probe or a scan with pushed-down numeric comparisons; any ORDER BY.

    The plan goes to xFilter as idxStr (:mod:`fastagg.table.plan`). The cost
    model steers SQLite's planner: a scan costs n rows (a rowid equality is
    one row and unique, each other pushed comparison narrows the estimate);
    an index probe costs log2(n) per key column plus the rows it returns
    (see :func:`_index_candidate`), so that SQLite probes the inner table of
    a join by key instead of rescanning it per outer row.
    """
    vt = carray(vtab, 1, VTAB)[0]
    tok = _record(vt.token, TOKEN)[0]
    if tok.dead != 0:
        _set_error(address_of(vtab), _MSG_DEAD)
        return SQLITE_ERROR
    cols = _columns(tok.table)
    nrows = _record(tok.table, TABLE)[0].nrows
    ii = carray(info, 1, INDEX_INFO)[0]
    ncons = ii.nConstraint
    norder = ii.nOrderBy
    cons = carray(as_voidptr(ii.aConstraint), max(ncons, 1), INDEX_CONSTRAINT)
    usage = carray(as_voidptr(ii.aConstraintUsage), max(ncons, 1), INDEX_CONSTRAINT_USAGE)
    orderby = carray(as_voidptr(ii.aOrderBy), max(norder, 1), INDEX_ORDERBY)

    pushed = np.zeros(max(ncons, 1), np.int64)  # constraints in plan order
    nargs = 0
    rows = np.float64(max(nrows, 1))
    cost = np.float64(max(nrows, 1))
    unique = False
    for i in range(ncons):
        col = cons[i].iColumn
        op = cons[i].op
        if cons[i].usable == 0 or not (op == OP_EQ or op == OP_GT or op == OP_LE or op == OP_LT or op == OP_GE):
            continue
        is_float = False
        if col >= 0:
            k = cols[col].kind
            if k == K_F32 or k == K_F64:
                is_float = True
            elif not (k == K_I8 or k == K_I16 or k == K_I32 or k == K_I64 or k == K_U8
                      or k == K_U16 or k == K_U32 or k == K_BOOLBITS):
                continue
        pushed[nargs] = i
        nargs += 1
        usage[i].argvIndex = nargs
        usage[i].omit = 1 if _exact_rhs(info, i, is_float) else 0
        if col < 0:
            if op == OP_EQ:
                unique = True
                rows = 1.0
                cost = 1.0
            else:
                rows = rows / 4.0
                cost = cost / 4.0
        else:
            rows = rows / (10.0 if op == OP_EQ else 3.0)
            cost = cost * 0.9
    kind, nkey, keys, picks, npick, icost, irows, iunique = _index_candidate(
        info, cons, ncons, cols, tok.indexes, nrows, orderby, norder, nargs
    )
    if kind == PLAN_INDEX and icost < cost:
        for i in range(ncons):
            usage[i].argvIndex = 0
            usage[i].omit = 0
        nargs = npick
        for f in range(npick):
            pushed[f] = picks[f]
            usage[picks[f]].argvIndex = f + 1  # omit = 0: SQLite re-checks (affinity, see index.py)
        cost = icost
        rows = irows
        unique = iunique
    else:
        kind = PLAN_SCAN
        nkey = -1
        # LIMIT / OFFSET (SQLite offers them for a single-table query): a
        # top-k instead of a full sort, only when every other constraint is
        # tested exactly here (SQLite will not re-filter the k rows).
        exact_all = True
        nlim = 0
        for i in range(ncons):
            if cons[i].op == OP_LIMIT or cons[i].op == OP_OFFSET:
                nlim += 1
            elif usage[i].argvIndex == 0 or usage[i].omit == 0:
                exact_all = False
        if exact_all and nlim > 0:
            for i in range(ncons):
                if (cons[i].op == OP_LIMIT or cons[i].op == OP_OFFSET) and cons[i].usable != 0:
                    pushed[nargs] = i
                    nargs += 1
                    usage[i].argvIndex = nargs
                    usage[i].omit = 0  # SQLite still skips OFFSET rows and stops at LIMIT
    plan = new_plan(kind, ii.colUsed, nargs, norder, nkey)
    if plan == 0:
        return SQLITE_NOMEM
    filters = plan_filters(plan)
    for f in range(nargs):
        filters[f].column = cons[pushed[f]].iColumn
        filters[f].op = cons[pushed[f]].op
        filters[f].argv = f
    order = plan_order(plan)
    for i in range(norder):
        order[i].column = orderby[i].iColumn
        order[i].desc = orderby[i].desc
    kt = plan_keys(plan)
    for j in range(len(kt)):
        kt[j].column = keys[j]
    if norder > 0:
        ii.orderByConsumed = 1  # xFilter produces exactly this order
    ii.idxNum = kind
    ii.idxStr = plan
    ii.needToFreeIdxStr = 1  # SQLite frees it with sqlite3_free
    ii.estimatedCost = max(cost, 1.0)
    ii.estimatedRows = np.int64(max(rows * _pattern_selectivity(cons, ncons), 1.0))
    if unique:
        ii.idxFlags = ii.idxFlags | SQLITE_INDEX_SCAN_UNIQUE
    return SQLITE_OK


@cfunc(_I32(_VP, _VP), cache=True)
def x_open(vtab, pp_cursor):
    """xOpen: allocate a cursor (sqlite3_malloc64; freed in xClose)."""
    vt = carray(vtab, 1, VTAB)[0]
    p = sqlite3_malloc64(_CURSOR_SIZE)
    if is_null(p):
        return SQLITE_NOMEM
    carray(p, _CURSOR_SIZE, np.uint8)[:] = 0
    cur = carray(p, 1, CURSOR)[0]
    cur.pVtab = address_of(vtab)
    cur.token = vt.token
    tok = _record(vt.token, TOKEN)[0]
    tok.cursors += 1
    cur.table = tok.table  # pinned while any cursor is open (see Registration._try_release)
    carray(pp_cursor, 1, np.intp)[0] = address_of(p)
    return SQLITE_OK


@njit(cache=True)
def _drop_buffers(cur):
    """Free the cursor's row permutation and gathered block."""
    if cur.rows != 0:
        if cur.own_rows != 0:
            sqlite3_free(as_voidptr(cur.rows))
        cur.rows = 0
        cur.own_rows = 0
    if cur.block != 0:
        sqlite3_free(as_voidptr(cur.block))
        cur.block = 0


@njit(cache=True)
def _refill(cur):
    """Gather the chunk starting at the cursor's position."""
    pos = cur.pos
    cur.chunk = pos
    cols = _columns(cur.table)
    fill_block(cols, carray(as_voidptr(cur.block), len(cols), COLUMN), cur.rows, pos, min(CHUNK, cur.end - pos))


@cfunc(_I32(_VP), cache=True)
def x_close(cursor):
    cur = carray(cursor, 1, CURSOR)[0]
    _record(cur.token, TOKEN)[0].cursors -= 1
    _drop_buffers(cur)
    sqlite3_free(cursor)
    return SQLITE_OK


@njit(cache=True)
def _set_rows(cur, rows):
    """Hand the cursor a copy of *rows* (sqlite3_malloc64, its own); False on NOMEM."""
    m = len(rows)
    cur.end = m
    if m == 0:
        return True
    p = sqlite3_malloc64(8 * m)
    if is_null(p):
        return False
    carray(p, m, np.int64)[:] = rows
    cur.rows = address_of(p)
    cur.own_rows = 1
    return True


@njit(cache=True)
def _limit(filters, argv, argc):
    """Rows the scan must produce for its LIMIT / OFFSET terms (LIMIT + OFFSET), -1 for all."""
    lim = np.int64(-1)
    off = np.int64(0)
    for f in range(len(filters)):
        op = filters[f].op
        a = filters[f].argv
        if (op != OP_LIMIT and op != OP_OFFSET) or a < 0 or a >= argc:
            continue
        v = argv[a]
        if sqlite3_value_type(as_voidptr(v)) != SQLITE_INTEGER:
            return np.int64(-1)  # not an integer: SQLite decides
        x = sqlite3_value_int64(as_voidptr(v))
        if op == OP_LIMIT:
            lim = x
        elif x > 0:
            off = x
    if lim < 0 or lim > (np.int64(1) << 61) or off > (np.int64(1) << 61):
        return np.int64(-1)
    return lim + off


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
    neq = 0
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


@cfunc(_I32(_VP, _I32, _VP, _I32, _VP), cache=True)
def x_filter(cursor, idx_num, idx_str, argc, argv):
    """xFilter: select rows (pushed-down constraints or an index probe), order them, gather.

    An ordered scan keeps its permutation (for xRowid) and gathers the used
    columns CHUNK rows at a time, so that xColumn reads sequentially.
    """
    cur = carray(cursor, 1, CURSOR)[0]
    if _record(cur.token, TOKEN)[0].dead != 0:
        _set_error(cur.pVtab, _MSG_DEAD)
        return SQLITE_ERROR
    cols = _columns(cur.table)
    nrows = _record(cur.table, TABLE)[0].nrows
    _drop_buffers(cur)
    cur.chunk = 0
    cur.pos = 0
    cur.end = nrows
    if is_null(idx_str):
        return SQLITE_OK
    plan = address_of(idx_str)
    filters = plan_filters(plan)
    order = plan_order(plan)
    if plan_header(plan)[0].kind == PLAN_INDEX:
        rc = _index_filter(cur, plan, cols, nrows, argv, argc)
        if rc != SQLITE_OK:
            _set_error(cur.pVtab, _MSG_NOMEM)
            return rc
    else:
        if len(filters) == 0 and len(order) == 0:
            return SQLITE_OK
        av = carray(argv, max(argc, 1), np.intp)
        k = _limit(filters, av, argc)
        if len(filters) > 0:
            rows = select_rows(cols, nrows, filters, av, argc)
        else:
            rows = np.arange(nrows)
        if len(order) > 0:
            rows = order_rows(cols, rows, order) if k < 0 else top_rows(cols, rows, order, k)
        elif k >= 0 and k < len(rows):
            rows = rows[:k]
        if not _set_rows(cur, rows):
            _set_error(cur.pVtab, _MSG_NOMEM)
            return SQLITE_NOMEM
    if len(order) > 0 and cur.end > 0:
        blk = alloc_block(cols, plan_header(plan)[0].colUsed)
        if blk < 0:
            _set_error(cur.pVtab, _MSG_NOMEM)
            return SQLITE_NOMEM
        if blk > 0:
            cur.block = blk
            _refill(cur)
    return SQLITE_OK


@cfunc(_I32(_VP), cache=True)
def x_next(cursor):
    cur = carray(cursor, 1, CURSOR)[0]
    pos = cur.pos + 1
    cur.pos = pos
    if cur.block != 0 and pos - cur.chunk >= CHUNK and pos < cur.end:
        _refill(cur)
    return SQLITE_OK


@cfunc(_I32(_VP), cache=True)
def x_eof(cursor):
    cur = carray(cursor, 1, CURSOR)[0]
    return 1 if cur.pos >= cur.end else 0


@njit(cache=True)
def _current_row(cur):
    if cur.rows != 0:
        return carray(as_voidptr(cur.rows + 8 * cur.pos), 1, np.int64)[0]
    return cur.pos


@cfunc(_I32(_VP, _VP, _I32), cache=True)
def x_column(cursor, ctx, i):
    cur = carray(cursor, 1, CURSOR)[0]
    scratch = as_voidptr(address_of(cursor) + _SCRATCH)
    if cur.block != 0:
        md = _record(cur.block + i * _COLUMN_SIZE, COLUMN)[0]
        if md.gathered != 0:
            result_cell(ctx, md, cur.pos - cur.chunk, scratch)
            return SQLITE_OK
    cd = _record(_record(cur.table, TABLE)[0].columns + i * _COLUMN_SIZE, COLUMN)[0]
    result_cell(ctx, cd, _current_row(cur), scratch)
    return SQLITE_OK


@cfunc(_I32(_VP, _VP), cache=True)
def x_rowid(cursor, p_rowid):
    cur = carray(cursor, 1, CURSOR)[0]
    carray(p_rowid, 1, np.int64)[0] = _current_row(cur) + 1  # 1-based, like to_sql's tables
    return SQLITE_OK


@cfunc(types.void(_VP), cache=True)
def module_destroy(aux):
    """Destructor of sqlite3_create_module_v2: SQLite is done with this table's token."""
    tok = carray(aux, 1, TOKEN)[0]
    tok.alive = 0
    tok.refs -= 1
    if tok.refs == 0:
        sqlite3_free(aux)


#: The callbacks of the sqlite3_module, by field name (built by :mod:`.callbacks`).
CALLBACKS = {
    "xConnect": x_connect, "xBestIndex": x_best_index,
    "xDisconnect": x_disconnect, "xOpen": x_open, "xClose": x_close,
    "xFilter": x_filter, "xNext": x_next, "xEof": x_eof,
    "xColumn": x_column, "xRowid": x_rowid, "module_destroy": module_destroy,
}
