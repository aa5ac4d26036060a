"""Date and datetime comparisons with text, pushed into the scan as integer intervals (pure Python).

A date32 or datetime column reaches SQLite as text (``'YYYY-MM-DD'``,
``'YYYY-MM-DD HH:MM:SS[.ffffff]'``, :func:`fastagg.table.values.format_datetime`),
declared ``TEXT``: SQLite compares it with a TEXT right-hand side *L* by
memcmp (BINARY). For values whose year is 0000-9999 that text is fixed-width
up to the fraction and non-decreasing in the stored integer, so the values
whose text satisfies ``text OP L`` form an interval of integers, whatever *L*
is ('1995-09', 'abc', ''): :func:`bounds` finds its ends by binary search,
formatting candidates exactly as xColumn does and comparing them with *L*.

The compiled scan (:func:`fastagg.table.filtering.select_rows`) calls
:func:`bounds` through a ctypes callback in a slot after the ``sqlite3_module``
(:data:`fastagg.table.indirect.SLOT_DATES`) once per xFilter and constraint,
then compares integers; a value outside the domain is kept (SQLite, which
re-checks every row, decides). No numba here: the callback costs the base
image no compile.
"""

from __future__ import annotations

import ctypes
import sys
import weakref

import numpy as np

from ..sqlite import capi as _capi

__all__ = ["DATES_CALLBACK", "bounds", "domain", "set_pushdown", "text_of"]

K_DATETIME, K_DATE32 = 16, 17  # fastagg.table.columns (which imports numba)
SQLITE_TEXT = 3
OP_EQ, OP_GT, OP_LE, OP_LT, OP_GE = 2, 4, 8, 16, 32
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
US_PER_DAY = 86_400_000_000
#: Day numbers (since 1970-01-01) of 0000-01-01 and 9999-12-31: the 4-digit years.
DAY_MIN, DAY_MAX = -719_528, 2_932_896


def _civil(days: int) -> tuple:
    """(year, month, day) of a day count since 1970-01-01, as :func:`fastagg.table.values.civil`."""
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    if month <= 2:
        y += 1
    return y, month, day


def _micros(kind: int, unit: int, v: int) -> int:
    if kind == K_DATE32:
        return v * US_PER_DAY
    return v * unit if unit > 0 else v // (-unit)


def text_of(kind: int, unit: int, v: int) -> bytes:
    """The text xColumn gives stored value *v* of a column of *kind* and *unit* (within :func:`domain`)."""
    us = _micros(kind, unit, v)
    days, rest = divmod(us, US_PER_DAY)
    y, m, d = _civil(days)
    s = "%04d-%02d-%02d" % (y, m, d)
    if kind == K_DATETIME:
        secs, frac = divmod(rest, 1_000_000)
        s += " %02d:%02d:%02d" % (secs // 3600, (secs // 60) % 60, secs % 60)
        if frac:
            s += ".%06d" % frac
    return s.encode()


def domain(kind: int, unit: int) -> tuple:
    """Stored values [lo, hi] whose text has a year 0000-9999 (NaT, the int64 minimum, excluded)."""
    if kind == K_DATE32:
        return DAY_MIN, DAY_MAX
    us_lo, us_hi = DAY_MIN * US_PER_DAY, (DAY_MAX + 1) * US_PER_DAY - 1
    if unit > 0:
        lo, hi = -(-us_lo // unit), us_hi // unit
    else:
        w = -unit
        lo, hi = us_lo * w, us_hi * w + w - 1
    return max(lo, INT64_MIN + 1), min(hi, INT64_MAX)


def _first(kind: int, unit: int, lo: int, hi: int, pred) -> int:
    """Smallest v in [lo, hi] with pred(text(v)) (pred monotone: false then true); hi + 1 if none."""
    while lo <= hi:
        mid = (lo + hi) // 2
        if pred(text_of(kind, unit, mid)):
            hi = mid - 1
        else:
            lo = mid + 1
    return lo


def bounds(kind: int, unit: int, op: int, rhs: bytes) -> tuple:
    """(lo, hi, dlo, dhi): the values v of :func:`domain` [dlo, dhi] with ``text(v) OP rhs`` are [lo, hi].

    ``lo > hi`` when none. Exact for any *rhs* (memcmp order: Python's bytes
    order), since the text is non-decreasing in v over the domain.
    """
    dlo, dhi = domain(kind, unit)
    if op in (OP_GE, OP_LT, OP_EQ):
        a = _first(kind, unit, dlo, dhi, lambda t: t >= rhs)  # text(v) >= rhs from a on
    if op in (OP_GT, OP_LE, OP_EQ):
        b = _first(kind, unit, dlo, dhi, lambda t: t > rhs)  # text(v) > rhs from b on
    if op == OP_GE:
        lo, hi = a, dhi
    elif op == OP_GT:
        lo, hi = b, dhi
    elif op == OP_LT:
        lo, hi = dlo, a - 1
    elif op == OP_LE:
        lo, hi = dlo, b - 1
    else:
        lo, hi = a, b - 1
    if lo > hi:
        return 1, 0, dlo, dhi  # empty (and within int64: lo may be dhi + 1 = 2**63)
    return lo, hi, dlo, dhi


_cache: dict = {}
_CACHE_MAX = 4096
_enabled = True
_in_domain: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # Registration -> {column: bool}


def set_pushdown(enabled: bool) -> bool:
    """Turn the scan's date filtering on or off (process-wide); return the previous setting.

    Off, xBestIndex pushes no date comparison into statements prepared from
    then on (SQLite tests them all, as before this pushdown existed): for
    benchmarks and bisecting, not needed otherwise.
    """
    global _enabled
    old, _enabled = _enabled, bool(enabled)
    return old


def _column_in_domain(token: int, col: int) -> bool:
    """Whether every stored value of column *col* of the registration with *token* is in :func:`domain`.

    Computed once per registration and column (numpy min and max over the
    value buffer, NULL slots included: conservative), kept while the
    registration lives.
    """
    # The live registrations by token (fastagg.table.registration, loaded
    # since a table is registered); not imported: it imports this module's importer.
    registration = sys.modules.get(__package__ + ".registration")
    reg = registration._registry.get(token) if registration is not None else None
    if reg is None or col >= len(reg.columns):
        return False
    per = _in_domain.setdefault(reg, {})
    got = per.get(col)
    if got is None:
        c = reg.columns[col]
        n = c.nvalues
        if c.data == 0 or n == 0:
            got = n == 0
        else:
            ctype, dtype = (ctypes.c_int32, np.int32) if c.kind == K_DATE32 else (ctypes.c_int64, np.int64)
            v = np.frombuffer((ctype * n).from_address(c.data), dtype)
            if c.kind == K_DATETIME:
                v = v[v != INT64_MIN]  # NaT: NULL
            lo, hi = domain(c.kind, c.unit)
            got = len(v) == 0 or (lo <= int(v.min()) and int(v.max()) <= hi)
        per[col] = got
    return got


def _plan(info: int, i: int, token: int, col: int, op: int) -> int:
    """xBestIndex's question for constraint *i* (column *col*, operator *op*) on a date column.

    0 leave it to SQLite; 1 push it (right-hand side unknown until xFilter);
    2 push it (a TEXT constant); 3 push it and let SQLite omit its test (a
    TEXT constant the scan decides exactly: ASCII, and every value of the
    column within :func:`domain`). Pushed only under BINARY (a collation
    name is case-insensitive) and unless the right-hand side is a constant
    other than TEXT (an integer or real compares otherwise): xFilter filters
    on TEXT values only.
    """
    if not _enabled:
        return 0
    name = _capi.lib.sqlite3_vtab_collation(info, i)
    if not name or ctypes.string_at(name).upper() != b"BINARY":
        return 0
    slot = ctypes.c_void_p(0)
    if _capi.lib.sqlite3_vtab_rhs_value(info, i, ctypes.byref(slot)) != _capi.SQLITE_OK or not slot.value:
        return 1
    if _capi.lib.sqlite3_value_type(slot.value) != SQLITE_TEXT:
        return 0
    if op in (OP_EQ, OP_GT, OP_LE, OP_LT, OP_GE) and _column_in_domain(token, col):
        p = _capi.lib.sqlite3_value_text(slot.value)
        n = _capi.lib.sqlite3_value_bytes(slot.value)
        if p and all(c < 0x80 for c in ctypes.string_at(p, n)):
            return 3
    return 2


def _bounds_of(value, kind, unit, op, out) -> int:
    """:func:`bounds` of ``column OP value`` into int64 out[0:4]; 0 = use them, 1 = do not filter."""
    p = _capi.lib.sqlite3_value_text(value)
    n = _capi.lib.sqlite3_value_bytes(value)
    if not p:
        return 1  # out of memory (NULL is not TEXT)
    rhs = ctypes.string_at(p, n)
    key = (kind, unit, op, rhs)
    got = _cache.get(key)
    if got is None:
        # Text with a byte >= 0x80 is not filtered: in a UTF-16 database
        # SQLite's memcmp of the UTF-16 encodings orders it otherwise than UTF-8.
        if any(c >= 0x80 for c in rhs) or op not in (OP_EQ, OP_GT, OP_LE, OP_LT, OP_GE):
            got = ()
        else:
            got = bounds(kind, unit, op, rhs)
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[key] = got
    if not got:
        return 1
    arr = (ctypes.c_int64 * 4).from_address(out)
    arr[0], arr[1], arr[2], arr[3] = got
    return 0


def _dates(what, a, b, c, d):
    """The callback, ``int32(int64 x 5)``: *what* 0 is xBestIndex's question, 1 xFilter's bounds.

    ``_dates(0, info, i, token, column << 8 | op)``: :func:`_plan`.
    ``_dates(1, value, kind << 8 | op, unit, out)``: :func:`_bounds_of`
    (*value* the ``sqlite3_value *`` of the right-hand side, TEXT). Any error
    answers "leave it to SQLite" (xFilter fails the statement if SQLite omits
    its test of that constraint, see :func:`fastagg.table.filtering.select_rows`).
    """
    try:
        if what == 0:
            return _plan(a, b, c, d >> 8, d & 255)
        return _bounds_of(a, b >> 8, c, b & 255, d)
    except BaseException:  # noqa: BLE001 - nothing may unwind into SQLite's C frames
        return 0 if what == 0 else 1


#: The ctypes callback (``int32(int64 x 5)``, kept alive here) whose address fills the dates slot.
DATES_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int32, *[ctypes.c_int64] * 5)(_dates)
