"""The index directory of a registration, as Python sees it (no numba).

A registration allocates one directory (``TOKEN.indexes``) when it is
created: an :data:`~fastagg.sqlite.structs.INDEXES` header, room for
``MAX_INDEXES`` :data:`~fastagg.sqlite.structs.INDEX` entries and one
distinct-count estimate per column. Compiled code fills it
(:mod:`fastagg.table.index`); this module lays it out, lists it and frees
it, so that registering a frame needs no numba.
"""

from __future__ import annotations

import ctypes

from ..sqlite import capi as _capi
from ..sqlite.structs import INDEX, INDEXES, MAX_INDEXES, MIRRORS

__all__ = ["DIRECTORY_BYTES", "directory_entries", "free_directory", "init_directory"]

_HEAD = INDEXES.itemsize
_ENTRY = INDEX.itemsize


def DIRECTORY_BYTES(ncols: int) -> int:  # noqa: N802 - a size, named like one
    """Bytes of the index directory of a table with *ncols* columns."""
    return _HEAD + MAX_INDEXES * _ENTRY + 8 * ncols


def init_directory(addr: int, ncols: int) -> None:
    """Lay out a directory of :func:`DIRECTORY_BYTES` bytes at *addr* (Python side)."""
    ctypes.memset(addr, 0, DIRECTORY_BYTES(ncols))
    head = MIRRORS["INDEXES"][1].from_address(addr)
    head.ncols = ncols
    head.estimates = addr + _HEAD + MAX_INDEXES * _ENTRY


def directory_entries(addr: int) -> list:
    """The built indexes of the directory at *addr* (ctypes ``INDEX`` mirrors; Python side)."""
    head = MIRRORS["INDEXES"][1].from_address(addr)
    mirror = MIRRORS["INDEX"][1]
    return [mirror.from_address(addr + _HEAD + e * _ENTRY) for e in range(head.count)]


def free_directory(addr: int) -> None:
    """Free every index of the directory at *addr*, then the directory (Python side)."""
    for ent in directory_entries(addr):
        if ent.perm:
            _capi.lib.sqlite3_free(ent.perm)
    _capi.lib.sqlite3_free(addr)
