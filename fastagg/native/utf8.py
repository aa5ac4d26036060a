"""The one UTF-8 codec of compiled code: SQLite's bytes to numba str and back.

Invalid input bytes decode to U+FFFD, as Python's ``errors="replace"`` does.
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit
from numba.cpython.unicode import (
    PY_UNICODE_1BYTE_KIND,
    PY_UNICODE_2BYTE_KIND,
    PY_UNICODE_4BYTE_KIND,
    _empty_string,
    _get_code_point,
    _set_code_point,
)

from .intrinsics import as_voidptr

__all__ = ["str_to_utf8", "utf8_array_to_str", "utf8_to_str"]


@njit(cache=True)
def utf8_to_str(ptr, nbytes):
    """Decode *nbytes* of UTF-8 at *ptr* into a new str (invalid bytes -> U+FFFD)."""
    raw = carray(ptr, nbytes, np.uint8)
    ascii_only = True
    for b in raw:
        if b >= 128:
            ascii_only = False
            break
    if ascii_only:
        s = _empty_string(PY_UNICODE_1BYTE_KIND, nbytes, 1)
        carray(s._data, nbytes, np.uint8)[:] = raw
        return s
    points = np.empty(nbytes, np.int32)
    count = 0
    widest = 0
    i = 0
    while i < nbytes:
        b = raw[i]
        cp = 0xFFFD
        width = 1
        if b < 0x80:
            cp = b
        elif 0xC2 <= b < 0xE0 and i + 1 < nbytes and (raw[i + 1] & 0xC0) == 0x80:
            cp = ((b & 0x1F) << 6) | (raw[i + 1] & 0x3F)
            width = 2
        elif 0xE0 <= b < 0xF0 and i + 2 < nbytes and (raw[i + 1] & 0xC0) == 0x80 and (raw[i + 2] & 0xC0) == 0x80:
            cp = ((b & 0x0F) << 12) | ((raw[i + 1] & 0x3F) << 6) | (raw[i + 2] & 0x3F)
            width = 3
            if cp < 0x800 or 0xD800 <= cp < 0xE000:
                cp = 0xFFFD
        elif (
            0xF0 <= b < 0xF5
            and i + 3 < nbytes
            and (raw[i + 1] & 0xC0) == 0x80
            and (raw[i + 2] & 0xC0) == 0x80
            and (raw[i + 3] & 0xC0) == 0x80
        ):
            cp = ((b & 0x07) << 18) | ((raw[i + 1] & 0x3F) << 12) | ((raw[i + 2] & 0x3F) << 6) | (raw[i + 3] & 0x3F)
            width = 4
            if cp < 0x10000 or cp > 0x10FFFF:
                cp = 0xFFFD
        points[count] = cp
        widest = max(widest, cp)
        count += 1
        i += width
    kind = PY_UNICODE_1BYTE_KIND
    if widest > 0xFFFF:
        kind = PY_UNICODE_4BYTE_KIND
    elif widest > 0xFF:
        kind = PY_UNICODE_2BYTE_KIND
    s = _empty_string(kind, count, 0)
    for j in range(count):
        _set_code_point(s, j, points[j])
    return s


@njit(cache=True)
def str_to_utf8(s):
    """Encode *s* as UTF-8 into a new uint8 array."""
    out = np.empty(4 * len(s), np.uint8)
    n = 0
    for i in range(len(s)):
        cp = _get_code_point(s, i)
        if cp < 0x80:
            out[n] = cp
            n += 1
        elif cp < 0x800:
            out[n] = 0xC0 | (cp >> 6)
            out[n + 1] = 0x80 | (cp & 0x3F)
            n += 2
        elif cp < 0x10000:
            out[n] = 0xE0 | (cp >> 12)
            out[n + 1] = 0x80 | ((cp >> 6) & 0x3F)
            out[n + 2] = 0x80 | (cp & 0x3F)
            n += 3
        else:
            out[n] = 0xF0 | (cp >> 18)
            out[n + 1] = 0x80 | ((cp >> 12) & 0x3F)
            out[n + 2] = 0x80 | ((cp >> 6) & 0x3F)
            out[n + 3] = 0x80 | (cp & 0x3F)
            n += 4
    return out[:n]


@njit(cache=True)
def utf8_array_to_str(buf):
    """Decode a uint8 array of UTF-8 into a new str (invalid bytes -> U+FFFD)."""
    if len(buf) == 0:
        return ""
    return utf8_to_str(as_voidptr(buf.ctypes.data), len(buf))
