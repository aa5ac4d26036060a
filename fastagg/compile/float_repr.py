"""``str``, ``repr`` and f-strings of floats in compiled code, as Python writes them.

numba has no text form of a float: ``str(x)`` and ``f"{x}"`` give
``'<object type:float64>'``. Importing this module gives numba floats a
``__repr__`` that numba's generic ``str`` and ``repr`` call, so compiled
code writes Python's shortest round-trip text (``str(0.1) == '0.1'``,
``'1e-05'``, ``'inf'``, ``'-0.0'``); a float32 gets the fewest digits that
round-trip as a float32, laid out the same way. It must be imported
before user code compiles (:mod:`.cache` does).

The digits come from the C library: ``snprintf("%.*e")`` with the fewest
significant digits that ``strtod`` reads back as the same value. The
correctly rounded p-digit decimal is the p-digit decimal nearest the value,
so the first p that round-trips gives Python's digits (David Gay's
shortest, nearest). Layout follows ``float.__repr__``: positional for
decimal exponents -4 to 15, otherwise ``d.ddde+XX``.
"""

from __future__ import annotations

import llvmlite.ir as llir
import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload_method

from ..native.intrinsics import as_voidptr
from ..native.utf8 import utf8_to_str

__all__ = ["float_repr"]

_BUFFER = 48  # "-d.dddddddddddddddde-308" and a NUL fit with room to spare


@intrinsic
def _format_e(typingctx, buf, digits, x):
    """``snprintf(buf, 48, "%.*e", digits - 1, x)``: *digits* significant digits."""
    if buf != types.voidptr or not isinstance(digits, types.Integer) or x != types.float64:
        return None

    def codegen(context, builder, sig, args):
        ptr, ndigits, value = args
        char_p = llir.IntType(8).as_pointer()
        size_t = context.get_value_type(types.uintp)
        # snprintf is variadic: numba's ExternalFunction cannot declare it.
        fnty = llir.FunctionType(llir.IntType(32), [char_p, size_t, char_p], var_arg=True)
        fn = cgutils.get_or_insert_function(builder.module, fnty, "snprintf")
        fmt = context.insert_const_string(builder.module, "%.*e")
        precision = context.cast(builder, builder.sub(ndigits, ndigits.type(1)), sig.args[1], types.int32)
        return builder.call(
            fn, [builder.bitcast(ptr, char_p), size_t(_BUFFER), fmt, precision, value]
        )

    return types.int32(buf, digits, x), codegen


@intrinsic
def _strtod(typingctx, buf):
    """``strtod(buf, NULL)``."""
    if buf != types.voidptr:
        return None

    def codegen(context, builder, sig, args):
        char_p = llir.IntType(8).as_pointer()
        fnty = llir.FunctionType(llir.DoubleType(), [char_p, char_p.as_pointer()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "strtod")
        return builder.call(fn, [builder.bitcast(args[0], char_p), char_p.as_pointer()(None)])

    return types.float64(buf), codegen


@njit(cache=True)
def _round_trips(buf, digits, x, single):
    _format_e(as_voidptr(buf.ctypes.data), digits, x)
    back = _strtod(as_voidptr(buf.ctypes.data))
    if single:
        return np.float32(back) == np.float32(x)
    return back == x


@njit(cache=True)
def _shortest_digits(x, single):
    """Return (ASCII digits without trailing zeros, decimal exponent of the first) of finite *x*."""
    buf = np.zeros(_BUFFER, np.uint8)
    # Round-tripping is monotone in the digit count: bisect 1..17 (9 for float32).
    lo, hi = 1, 9 if single else 17
    while lo < hi:
        mid = (lo + hi) // 2
        if _round_trips(buf, mid, x, single):
            hi = mid
        else:
            lo = mid + 1
    _format_e(as_voidptr(buf.ctypes.data), lo, x)
    digits = np.zeros(20, np.uint8)
    n = 0
    i = 0
    # "-d.ddde+XX"; the decimal point is the locale's, so skip any non-digit.
    while buf[i] != 101 and buf[i] != 69 and buf[i] != 0:  # 'e', 'E'
        if 48 <= buf[i] <= 57:
            digits[n] = buf[i]
            n += 1
        i += 1
    exponent = 0
    negative = False
    i += 1
    if buf[i] == 45:  # '-'
        negative = True
        i += 1
    elif buf[i] == 43:  # '+'
        i += 1
    while 48 <= buf[i] <= 57:
        exponent = exponent * 10 + (buf[i] - 48)
        i += 1
    while n > 1 and digits[n - 1] == 48:
        n -= 1
    return digits[:n], -exponent if negative else exponent


@njit(cache=True)
def put_fixed(out, p, digits, nd, e):
    """Write ``d.ddd * 10**e`` (``digits[:nd]``, ASCII) at ``out[p:]`` positionally; return the end.

    ``0.00ddd`` for ``e < 0``; otherwise the integer part (zero-padded), a
    point, and the rest or a ``0`` ("1.0", "100.0"). Python's ``repr`` and
    SQLite's ``%!.15g`` both write their fixed-notation case so.
    """
    if e < 0:
        out[p] = 48
        out[p + 1] = 46  # "0."
        p += 2
        for _ in range(-e - 1):
            out[p] = 48
            p += 1
        for j in range(nd):
            out[p] = digits[j]
            p += 1
        return p
    for j in range(e + 1):
        out[p] = digits[j] if j < nd else 48
        p += 1
    out[p] = 46  # '.'
    p += 1
    if nd <= e + 1:
        out[p] = 48
        return p + 1
    for j in range(e + 1, nd):
        out[p] = digits[j]
        p += 1
    return p


@njit(cache=True)
def float_repr(x, single=False):
    """Return Python's ``repr`` of float *x* (``single``: shortest float32 text)."""
    if x != x:
        return "nan"
    if x == np.inf:
        return "inf"
    if x == -np.inf:
        return "-inf"
    digits, exponent = _shortest_digits(x, single)
    n = len(digits)
    out = np.zeros(n + 32, np.uint8)
    k = 0
    if x < 0 or (x == 0 and np.signbit(x)):
        out[k] = 45  # '-'
        k += 1
    if -4 <= exponent < 16:
        k = put_fixed(out, k, digits, n, exponent)
    else:
        out[k] = digits[0]
        k += 1
        if n > 1:
            out[k] = 46
            k += 1
            for j in range(1, n):
                out[k] = digits[j]
                k += 1
        out[k] = 101  # 'e'
        out[k + 1] = 45 if exponent < 0 else 43
        k += 2
        e = -exponent if exponent < 0 else exponent
        width = 3 if e >= 100 else 2
        for j in range(width - 1, -1, -1):
            out[k + j] = 48 + e % 10
            e //= 10
        k += width
    return utf8_to_str(as_voidptr(out.ctypes.data), k)


# numba's generic str() and repr() call __repr__ when the type has one.
@overload_method(types.Float, "__repr__", target="cpu", jit_options={"cache": True})
def _float_dunder_repr(x):
    if x.bitwidth == 32:
        return lambda x: float_repr(np.float64(x), True)
    return lambda x: float_repr(np.float64(x), False)
