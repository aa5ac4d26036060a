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
    sqlite3_vtab_config,
    sqlite3_vtab_rhs_value,
)
from ..sqlite.structs import (
    COLUMN, CURSOR, INDEX_CONSTRAINT, INDEX_CONSTRAINT_USAGE, INDEX_INFO, INDEX_ORDERBY, INDEXES,
    MAX_INDEX_COLUMNS, TABLE, TOKEN, VTAB,
)
from .columns import K_BOOLBITS, K_DATE32, K_DATETIME, K_F32, K_F64, K_I8, K_I16, K_I32, K_I64, K_U8, K_U16, K_U32
from .filtering import DATE_MIN_ROWS, OP_EQ, OP_GE, OP_GT, OP_LE, OP_LT, select_rows
from .gather import CHUNK, alloc_block, fill_block
from .index import OP_IS
from .indirect import (
    PRICE_COST, PRICE_KEYS, PRICE_KIND, PRICE_NKEY, PRICE_NPICK, PRICE_PICKS, PRICE_ROWS, PRICE_UNIQUE, SLOT_FILTER,
    SLOT_DATES, SLOT_HOOK, SLOT_PRICE, SLOT_TEXT, SLOT_TOP, call5, index_slots,
)
from .ordering import order_rows, plain_kind
from .plan import PLAN_INDEX, PLAN_SCAN, new_plan, plan_filters, plan_header, plan_keys, plan_order
from .records import columns_of as _columns
from .records import record as _record
from .records import set_rows as _set_rows
from .values import SQLITE_FLOAT, SQLITE_INTEGER, result_cell

__all__ = ["CALLBACKS", "module_destroy"]

SQLITE_OK = _capi.SQLITE_OK
SQLITE_ERROR = _capi.SQLITE_ERROR
SQLITE_NOMEM = 7
SQLITE_VTAB_INNOCUOUS = 2
SQLITE_INDEX_SCAN_UNIQUE = 1
OP_LIMIT, OP_OFFSET = 73, 74  # SQLITE_INDEX_CONSTRAINT_LIMIT / _OFFSET (3.38)
OP_MATCH, OP_LIKE, OP_GLOB, OP_REGEXP = 64, 65, 66, 67  # SQLITE_INDEX_CONSTRAINT_*

_SCRATCH = CURSOR.fields["scratch"][1]  # offset of the cursor's scratch bytes

_MSG_DEAD = np.frombuffer(b"fastagg: this table was unregistered\0", np.uint8).copy()
_MSG_NOMEM = np.frombuffer(b"fastagg: out of memory\0", np.uint8).copy()
_VTAB_SIZE = VTAB.itemsize
_CURSOR_SIZE = CURSOR.itemsize
_COLUMN_SIZE = COLUMN.itemsize


@njit(cache=True)
def _set_error(vtab_addr, msg):
    """Set ``sqlite3_vtab.zErrMsg`` to a sqlite3_malloc'd copy of *msg* (SQLite frees it)."""
    p = sqlite3_malloc64(len(msg))
    if is_null(p):
        return
    dst = carray(p, len(msg), np.uint8)
    for i in range(len(msg)):  # not dst[:] = msg (see records.set_rows)
        dst[i] = msg[i]
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
def _index_entry(module_addr, slot):
    """The lazily loaded entry in *slot*, loading its image first (once) if needed; 0 if unavailable."""
    fns = index_slots(module_addr)
    if fns[slot] == 0 and fns[SLOT_HOOK] != 0:
        call5(fns[SLOT_HOOK], slot, 0, 0, 0, 0)  # the loader fills the slots (or leaves them 0)
        fns = index_slots(module_addr)
    return fns[slot]


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


@njit(cache=True)
def _may_index(info, cons, ncons, dir_addr):
    """Whether the cost model (:func:`fastagg.table.pricing.index_candidate`) can choose an index plan.

    Not when the table has no index built and every usable comparison's
    right-hand side is a constant (``sqlite3_vtab_rhs_value``): the model
    then charges building the index, n log2 n + ..., more than the scan's
    cost (at most n), and without key constraints an index plan needs an
    index that exists (an ORDER BY its leading columns). So the base image
    plans that scan itself, and loads the index image (the model, sampling
    the table) only for a join's probes or a table with indexes. Checking
    more comparisons than the model keys on only loads it more often.
    """
    if _record(dir_addr, INDEXES)[0].count > 0:
        return True
    slot = np.zeros(1, np.intp)
    for i in range(ncons):
        op = cons[i].op
        if cons[i].usable == 0 or cons[i].iColumn < 0 or not (
            op == OP_EQ or op == OP_IS or op == OP_GT or op == OP_GE or op == OP_LT or op == OP_LE
        ):
            continue
        slot[0] = 0
        if sqlite3_vtab_rhs_value(info, i, as_voidptr(slot.ctypes.data)) != SQLITE_OK or slot[0] == 0:
            return True
    return False


@cfunc(_I32(_VP, _VP), cache=True)
def x_best_index(vtab, info):
    """xBestIndex: an index probe or a scan with pushed-down numeric comparisons; any ORDER BY.

    Date and datetime columns compared with text are pushed as well when
    :mod:`fastagg.table.dates` (asked through the dates slot) says so:
    BINARY, a TEXT or unknown right-hand side; SQLite omits its own test
    only when that module proves the scan's test exact.

    The plan goes to xFilter as idxStr (:mod:`fastagg.table.plan`). The cost
    model steers SQLite's planner: a scan costs n rows (a rowid equality is
    one row and unique, each other pushed comparison narrows the estimate);
    an index probe costs log2(n) per key column plus the rows it returns
    (see :func:`fastagg.table.pricing.index_candidate`, in the index image:
    asked only when it can choose an index, :func:`_may_index`), so that
    SQLite probes the inner table of a join by key instead of rescanning it
    per outer row.
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
    # An order on anything but a plain int64 / float64 column is keyed by
    # the keys image (loaded now if need be); without it the plan takes no
    # order and SQLite sorts.
    for i in range(norder):
        c = orderby[i].iColumn
        if c >= 0 and not plain_kind(cols[c]):
            if _index_entry(vt.pModule, np.int64(SLOT_TEXT)) == 0:
                norder = 0
            break

    pushed = np.zeros(max(ncons, 1), np.int64)  # constraints in plan order
    exact_date = np.zeros(max(ncons, 1), np.int64)  # omitted date comparisons: xFilter must test them
    nargs = np.int64(0)  # not 0: a literal start types a call with it once more (a second specialisation)
    rows = np.float64(max(nrows, 1))
    cost = np.float64(max(nrows, 1))
    unique = False
    for i in range(ncons):
        col = cons[i].iColumn
        op = cons[i].op
        if cons[i].usable == 0 or not (op == OP_EQ or op == OP_GT or op == OP_LE or op == OP_LT or op == OP_GE):
            continue
        is_float = False
        date = 0  # a date column against text: 1 pushed (RHS unknown), 2 (TEXT constant), 3 (and exact)
        if col >= 0:
            k = cols[col].kind
            if k == K_F32 or k == K_F64:
                is_float = True
            elif k == K_DATE32 or k == K_DATETIME:
                fn = index_slots(vt.pModule)[SLOT_DATES]
                if nrows >= DATE_MIN_ROWS and fn != 0:  # fastagg.table.dates: BINARY, a TEXT or unknown RHS?
                    date = call5(fn, 0, address_of(info), i, vt.token, col * 256 + op)
                if date == 0:
                    continue
            elif not (k == K_I8 or k == K_I16 or k == K_I32 or k == K_I64 or k == K_U8
                      or k == K_U16 or k == K_U32 or k == K_BOOLBITS):
                continue
        pushed[nargs] = i
        nargs += 1
        usage[i].argvIndex = nargs
        usage[i].omit = 1 if (date == 0 and _exact_rhs(info, i, is_float)) or date == 3 else 0
        exact_date[i] = 1 if date == 3 else 0
        if date == 1:
            continue  # unknown right-hand side (a join's column?): the estimate as if not pushed
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
    # The cost model is the index image's (loaded now if need be), asked
    # only when it can choose an index (see _may_index); without the image, a scan.
    kind = PLAN_SCAN
    nkey = -1
    npick = 0
    icost = cost
    irows = rows
    iunique = False
    keys = np.full(MAX_INDEX_COLUMNS, -1, np.int64)
    picks = np.zeros(max(ncons, 1), np.int64)
    if _may_index(info, cons, ncons, tok.indexes):
        price = _index_entry(vt.pModule, np.int64(SLOT_PRICE))
        if price != 0:
            out = np.zeros(PRICE_PICKS + max(ncons, 1), np.int64)
            call5(price, address_of(info), vt.token, norder, nargs, out.ctypes.data)
            fout = out.view(np.float64)
            kind = out[PRICE_KIND]
            nkey = out[PRICE_NKEY]
            npick = out[PRICE_NPICK]
            iunique = out[PRICE_UNIQUE] != 0
            icost = fout[PRICE_COST]
            irows = fout[PRICE_ROWS]
            for j in range(MAX_INDEX_COLUMNS):
                keys[j] = out[PRICE_KEYS + j]
            for j in range(max(ncons, 1)):
                picks[j] = out[PRICE_PICKS + j]
    # An index plan is the index image's to run (loaded with its cost model).
    if kind == PLAN_INDEX and icost < cost and _index_entry(vt.pModule, np.int64(SLOT_FILTER)) != 0:
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
        # With an ORDER BY the top-k is the index image's (loaded now if need
        # be); never with an order left to SQLite (norder set to 0 above).
        if exact_all and nlim > 0 and (
            ii.nOrderBy == 0 or (norder > 0 and _index_entry(vt.pModule, np.int64(SLOT_TOP)) != 0)
        ):
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
        if kind == PLAN_SCAN:
            filters[f].desc = exact_date[pushed[f]]  # select_rows fails rather than skip it
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
        fn = index_slots(_record(cur.pVtab, VTAB)[0].pModule)[SLOT_FILTER]
        if fn != 0:  # always so: xBestIndex plans an index only when the image is loaded
            rc = call5(fn, address_of(cursor), plan, argc, address_of(argv), 0)
        else:  # every row; SQLite tests the constraints (omit = 0 for index plans)
            rows = np.arange(nrows)
            if len(order) > 0:
                rows = order_rows(cols, rows, order, index_slots(_record(cur.pVtab, VTAB)[0].pModule))
            rc = SQLITE_OK if _set_rows(cur, rows) else SQLITE_NOMEM
        if rc != SQLITE_OK:
            _set_error(cur.pVtab, _MSG_NOMEM)
            return rc
    else:
        if len(filters) == 0 and len(order) == 0:
            return SQLITE_OK
        av = carray(argv, max(argc, 1), np.intp)
        k = _limit(filters, av, argc)
        if len(filters) > 0:
            dates = index_slots(_record(cur.pVtab, VTAB)[0].pModule)[SLOT_DATES]  # .dates' callback
            failed = np.zeros(1, np.int64)
            rows = select_rows(cols, nrows, filters, av, argc, dates, failed)
            if failed[0] != 0:  # an omitted date comparison it could not test
                _set_error(cur.pVtab, _MSG_NOMEM)
                return SQLITE_NOMEM
        else:
            rows = np.arange(nrows)
        top = 0
        if len(order) > 0 and k >= 0:
            top = index_slots(_record(cur.pVtab, VTAB)[0].pModule)[SLOT_TOP]
        if top != 0:  # xBestIndex pushed LIMIT with an ORDER BY: the image is loaded
            ok = call5(top, address_of(cursor), plan, rows.ctypes.data, len(rows), k) == SQLITE_OK
        else:
            if len(order) > 0:
                rows = order_rows(cols, rows, order, index_slots(_record(cur.pVtab, VTAB)[0].pModule))
            if k >= 0 and k < len(rows):
                rows = rows[:k]
            ok = _set_rows(cur, rows)
        if not ok:
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
