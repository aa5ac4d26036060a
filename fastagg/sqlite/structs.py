"""The native structs compiled code reads and writes, as numpy structured dtypes.

Compiled code views a struct at an address with ``carray(ptr, 1, DTYPE)[0]``
(or ``carray(ptr, n, DTYPE)`` for an array of them) and reads its fields by
name. Every dtype is ``align=True`` so that numpy lays it out as the C
compiler does, and each is checked once, at import, against a
:mod:`ctypes` mirror (size and every field offset): a wrong layout fails
loudly here instead of corrupting memory later.

SQLite's structs keep SQLite's field names (``sqlite3.h``;
https://www.sqlite.org/c3ref/index_info.html,
https://www.sqlite.org/c3ref/vtab.html,
https://www.sqlite.org/c3ref/vtab_cursor.html). Pointers are ``intp``
fields holding addresses. fastagg's own structs (the table descriptor, its
column descriptors, the registration token) are documented field by field
below.

Importing this module does not import numba.
"""

from __future__ import annotations

import ctypes

import numpy as np

__all__ = [
    "INDEX_CONSTRAINT",
    "INDEX_ORDERBY",
    "INDEX_CONSTRAINT_USAGE",
    "INDEX_INFO",
    "VTAB",
    "CURSOR",
    "COLUMN",
    "TABLE",
    "TOKEN",
    "PLAN",
    "PLAN_TERM",
    "INDEX",
    "INDEXES",
    "MAX_INDEXES",
    "MAX_INDEX_COLUMNS",
    "SCRATCH_BYTES",
    "check_layout",
]

_PTR = np.intp
_C_PTR = ctypes.c_void_p

# ---- SQLite's structs (sqlite3.h) -------------------------------------------

#: ``struct sqlite3_index_constraint``: one WHERE term offered to xBestIndex.
INDEX_CONSTRAINT = np.dtype(
    [("iColumn", np.int32), ("op", np.uint8), ("usable", np.uint8), ("iTermOffset", np.int32)],
    align=True,
)

#: ``struct sqlite3_index_orderby``: one ORDER BY / GROUP BY term.
INDEX_ORDERBY = np.dtype([("iColumn", np.int32), ("desc", np.uint8)], align=True)

#: ``struct sqlite3_index_constraint_usage``: xBestIndex's answer per constraint.
INDEX_CONSTRAINT_USAGE = np.dtype([("argvIndex", np.int32), ("omit", np.uint8)], align=True)

#: ``struct sqlite3_index_info``. ``colUsed`` is ``sqlite3_uint64``; it is
#: read as int64 here (the same bits) so that shifts stay integer in numba.
INDEX_INFO = np.dtype(
    [
        ("nConstraint", np.int32),
        ("aConstraint", _PTR),
        ("nOrderBy", np.int32),
        ("aOrderBy", _PTR),
        ("aConstraintUsage", _PTR),
        ("idxNum", np.int32),
        ("idxStr", _PTR),
        ("needToFreeIdxStr", np.int32),
        ("orderByConsumed", np.int32),
        ("estimatedCost", np.float64),
        ("estimatedRows", np.int64),
        ("idxFlags", np.int32),
        ("colUsed", np.int64),
    ],
    align=True,
)

# ---- fastagg's virtual table ------------------------------------------------

#: ``sqlite3_vtab`` (``pModule``, ``nRef``, ``zErrMsg``, which SQLite owns)
#: followed by fastagg's ``token``: the address of the registration's
#: :data:`TOKEN`. Allocated in xConnect, freed in xDisconnect.
VTAB = np.dtype(
    [("pModule", _PTR), ("nRef", np.int32), ("zErrMsg", _PTR), ("token", _PTR)],
    align=True,
)

#: Bytes of a cursor's scratch buffer (datetime text is formatted there).
SCRATCH_BYTES = 64

#: ``sqlite3_vtab_cursor`` (``pVtab``) followed by fastagg's cursor state.
#: Allocated in xOpen, freed in xClose.
#:
#: pos, end
#:     Current position and end of the scan (positions, not rows).
#: rows
#:     Address of the int64 row permutation or 0 for the identity (a plain
#:     scan).
#: own_rows
#:     1 if ``rows`` is the cursor's (sqlite3_malloc64, freed in xFilter and
#:     xClose); 0 if it points into a registration's index (a slice of its
#:     permutation, which lives until the registration is released, and that
#:     waits for every cursor to close).
#: token, table
#:     Addresses of the registration's :data:`TOKEN` and :data:`TABLE`.
#: block, chunk
#:     Address of the gathered block (see ``fastagg.table.gather``; owned by
#:     the cursor) or 0, and the position of its first row.
#: scratch
#:     Room for one formatted value handed to SQLite as SQLITE_TRANSIENT.
CURSOR = np.dtype(
    [
        ("pVtab", _PTR),
        ("pos", np.int64),
        ("end", np.int64),
        ("rows", _PTR),
        ("own_rows", np.int64),
        ("token", _PTR),
        ("table", _PTR),
        ("block", _PTR),
        ("chunk", np.int64),
        ("scratch", np.uint8, (SCRATCH_BYTES,)),
    ],
    align=True,
)

#: One column of a registered table, as the compiled callbacks read it.
#: Every field is int64; addresses are 0 when absent.
#:
#: kind
#:     A ``K_*`` code of :mod:`fastagg.table.columns`.
#: data, offsets
#:     Value buffer; offsets of variable-width values (Arrow layout).
#: validity, validity_kind, validity_offset
#:     NULL mask: ``V_BITMAP`` (Arrow, bit set = valid, from bit
#:     ``validity_offset``) or ``V_BYTEMASK`` (pandas, 1 = missing).
#: codes, codes_width, codes_validity, codes_validity_offset
#:     Dictionary / categorical indirection: integer codes of
#:     ``codes_width`` bytes, negative or invalid = NULL.
#: unit
#:     Datetimes: multiply (> 0) or floor-divide by ``-unit`` (< 0) to get
#:     microseconds; Arrow booleans: the bit offset.
#: nvalues
#:     Length of the value buffers (categories when ``codes``).
#: gathered
#:     In a cursor's gathered block only: 1 if this column was gathered.
COLUMN = np.dtype(
    [
        (name, np.int64)
        for name in (
            "kind", "data", "validity", "validity_kind", "validity_offset", "offsets",
            "codes", "codes_width", "codes_validity", "codes_validity_offset",
            "unit", "nvalues", "gathered",
        )
    ],
    align=True,
)

#: A registered table: ``nrows`` rows, ``ncols`` :data:`COLUMN` s at address
#: ``columns``, and the NUL-terminated ``CREATE TABLE`` text xConnect
#: declares at ``schema``. Owned (pinned) by the Python ``Registration``.
TABLE = np.dtype(
    [("nrows", np.int64), ("ncols", np.int64), ("schema", _PTR), ("columns", _PTR)],
    align=True,
)

#: The registration token: the ``pAux`` of ``sqlite3_create_module_v2``,
#: shared by SQLite and Python (sqlite3_malloc64).
#:
#: refs
#:     References: 2 at registration (the module destructor's and the
#:     ``Registration``'s); whoever drops the last frees the token.
#: alive
#:     1 until SQLite destroys the module (connection closed or module dropped).
#: dead
#:     Set by Python before it lets go of the buffers; every callback checks it.
#: cursors
#:     Open cursors; the buffers are not released while any is open.
#: table
#:     Address of the :data:`TABLE`.
#: indexes
#:     Address of the registration's :data:`INDEXES` directory
#:     (sqlite3_malloc64 at registration, freed with every index when the
#:     registration releases its buffers), 0 after that.
TOKEN = np.dtype(
    [
        ("refs", np.int64),
        ("alive", np.int64),
        ("dead", np.int64),
        ("cursors", np.int64),
        ("table", _PTR),
        ("indexes", _PTR),
    ],
    align=True,
)

#: The query plan's header, handed from xBestIndex to xFilter as idxStr;
#: the format is documented in :mod:`fastagg.table.plan`.
PLAN = np.dtype(
    [
        ("tag", np.uint8, (8,)),
        ("kind", np.int32),
        ("nfilter", np.int32),
        ("norder", np.int32),
        ("index", np.int32),
        ("colUsed", np.int64),
    ],
    align=True,
)

#: One plan term (a filter or an order term; see :mod:`fastagg.table.plan`).
PLAN_TERM = np.dtype(
    [("column", np.int32), ("op", np.uint8), ("desc", np.uint8), ("argv", np.int32)], align=True
)


#: Most columns one index orders by, and most indexes a registration keeps.
MAX_INDEX_COLUMNS = 4
MAX_INDEXES = 16

#: One index of a registered table (see :mod:`fastagg.table.index`): the
#: table's rows sorted by ``cols[:ncols]`` in SQLite's order.
#:
#: perm
#:     Address of the int64 row permutation (``nrows`` rows; sqlite3_malloc64).
#: nrows
#:     Rows of the table when it was built.
#: ndistinct
#:     Distinct non-NULL keys (a key with any NULL column is not counted).
#: nnull
#:     Rows whose key has a NULL in any column.
#: bytes
#:     Memory of the permutation (``starts`` adds 8 (span + 1) when set).
#: starts
#:     0, or, when the first column is a plain int64 column whose values span
#:     ``span`` <= 2 n + 1024 integers from ``base``: ``span + 1`` int64
#:     positions, ``starts[v - base]`` the first position of key ``v`` in the
#:     permutation (an equality probe on it is two reads, not a binary search).
INDEX = np.dtype(
    [
        ("ncols", np.int64),
        ("cols", np.int64, (MAX_INDEX_COLUMNS,)),
        ("perm", _PTR),
        ("nrows", np.int64),
        ("ndistinct", np.int64),
        ("nnull", np.int64),
        ("bytes", np.int64),
        ("starts", _PTR),
        ("base", np.int64),
        ("span", np.int64),
    ],
    align=True,
)

#: A registration's index directory (``TOKEN.indexes``): one
#: sqlite3_malloc64 block of this header, then ``MAX_INDEXES`` :data:`INDEX`
#: entries (the first ``count`` in use), then ``ncols`` float64 estimates.
#:
#: count
#:     Indexes built.
#: ncols
#:     Columns of the table.
#: estimates
#:     Address of the float64 per-column estimates of the number of distinct
#:     values (0.0 = not estimated yet), from a sample (xBestIndex).
INDEXES = np.dtype([("count", np.int64), ("ncols", np.int64), ("estimates", _PTR)], align=True)


# ---- ctypes mirrors: the layouts as a C compiler sees them --------------------


class _IndexConstraint(ctypes.Structure):
    _fields_ = [("iColumn", ctypes.c_int), ("op", ctypes.c_ubyte),
                ("usable", ctypes.c_ubyte), ("iTermOffset", ctypes.c_int)]


class _IndexOrderBy(ctypes.Structure):
    _fields_ = [("iColumn", ctypes.c_int), ("desc", ctypes.c_ubyte)]


class _IndexConstraintUsage(ctypes.Structure):
    _fields_ = [("argvIndex", ctypes.c_int), ("omit", ctypes.c_ubyte)]


class _IndexInfo(ctypes.Structure):
    _fields_ = [
        ("nConstraint", ctypes.c_int),
        ("aConstraint", ctypes.POINTER(_IndexConstraint)),
        ("nOrderBy", ctypes.c_int),
        ("aOrderBy", ctypes.POINTER(_IndexOrderBy)),
        ("aConstraintUsage", ctypes.POINTER(_IndexConstraintUsage)),
        ("idxNum", ctypes.c_int),
        ("idxStr", ctypes.c_char_p),
        ("needToFreeIdxStr", ctypes.c_int),
        ("orderByConsumed", ctypes.c_int),
        ("estimatedCost", ctypes.c_double),
        ("estimatedRows", ctypes.c_int64),
        ("idxFlags", ctypes.c_int),
        ("colUsed", ctypes.c_uint64),
    ]


class _Vtab(ctypes.Structure):
    _fields_ = [("pModule", _C_PTR), ("nRef", ctypes.c_int), ("zErrMsg", ctypes.c_char_p),
                ("token", _C_PTR)]


class _Cursor(ctypes.Structure):
    _fields_ = [
        ("pVtab", _C_PTR),
        ("pos", ctypes.c_int64),
        ("end", ctypes.c_int64),
        ("rows", _C_PTR),
        ("own_rows", ctypes.c_int64),
        ("token", _C_PTR),
        ("table", _C_PTR),
        ("block", _C_PTR),
        ("chunk", ctypes.c_int64),
        ("scratch", ctypes.c_ubyte * SCRATCH_BYTES),
    ]


class _Column(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in COLUMN.names]


class _Table(ctypes.Structure):
    _fields_ = [("nrows", ctypes.c_int64), ("ncols", ctypes.c_int64),
                ("schema", _C_PTR), ("columns", _C_PTR)]


class _Token(ctypes.Structure):
    _fields_ = [("refs", ctypes.c_int64), ("alive", ctypes.c_int64), ("dead", ctypes.c_int64),
                ("cursors", ctypes.c_int64), ("table", _C_PTR), ("indexes", _C_PTR)]


class _Plan(ctypes.Structure):
    _fields_ = [("tag", ctypes.c_ubyte * 8), ("kind", ctypes.c_int), ("nfilter", ctypes.c_int),
                ("norder", ctypes.c_int), ("index", ctypes.c_int), ("colUsed", ctypes.c_int64)]


class _PlanTerm(ctypes.Structure):
    _fields_ = [("column", ctypes.c_int), ("op", ctypes.c_ubyte), ("desc", ctypes.c_ubyte),
                ("argv", ctypes.c_int)]


class _Index(ctypes.Structure):
    _fields_ = [("ncols", ctypes.c_int64), ("cols", ctypes.c_int64 * MAX_INDEX_COLUMNS),
                ("perm", _C_PTR), ("nrows", ctypes.c_int64), ("ndistinct", ctypes.c_int64),
                ("nnull", ctypes.c_int64), ("bytes", ctypes.c_int64),
                ("starts", _C_PTR), ("base", ctypes.c_int64), ("span", ctypes.c_int64)]


class _Indexes(ctypes.Structure):
    _fields_ = [("count", ctypes.c_int64), ("ncols", ctypes.c_int64), ("estimates", _C_PTR)]


#: Each dtype beside its ctypes mirror.
MIRRORS = {
    "INDEX_CONSTRAINT": (INDEX_CONSTRAINT, _IndexConstraint),
    "INDEX_ORDERBY": (INDEX_ORDERBY, _IndexOrderBy),
    "INDEX_CONSTRAINT_USAGE": (INDEX_CONSTRAINT_USAGE, _IndexConstraintUsage),
    "INDEX_INFO": (INDEX_INFO, _IndexInfo),
    "VTAB": (VTAB, _Vtab),
    "CURSOR": (CURSOR, _Cursor),
    "COLUMN": (COLUMN, _Column),
    "TABLE": (TABLE, _Table),
    "TOKEN": (TOKEN, _Token),
    "PLAN": (PLAN, _Plan),
    "PLAN_TERM": (PLAN_TERM, _PlanTerm),
    "INDEX": (INDEX, _Index),
    "INDEXES": (INDEXES, _Indexes),
}


def check_layout(name: str, dtype: np.dtype, mirror: type) -> None:
    """Raise ``AssertionError`` unless *dtype* lays out exactly as ctypes *mirror*.

    Compares the size and, field by field, the names, offsets and sizes.

    Examples
    --------
    >>> check_layout("VTAB", VTAB, MIRRORS["VTAB"][1])
    """
    if dtype.itemsize != ctypes.sizeof(mirror):
        raise AssertionError(f"{name}: numpy size {dtype.itemsize} != C size {ctypes.sizeof(mirror)}")
    cnames = [f[0] for f in mirror._fields_]
    if list(dtype.names) != cnames:
        raise AssertionError(f"{name}: fields {list(dtype.names)} != C fields {cnames}")
    for field in cnames:
        ftype, offset = dtype.fields[field][:2]
        cfield = getattr(mirror, field)
        if offset != cfield.offset or ftype.itemsize != cfield.size:
            raise AssertionError(
                f"{name}.{field}: numpy offset {offset} size {ftype.itemsize} != "
                f"C offset {cfield.offset} size {cfield.size}"
            )


for _name, (_dtype, _mirror) in MIRRORS.items():
    check_layout(_name, _dtype, _mirror)
