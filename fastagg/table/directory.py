"""The index directory of a registration, as Python sees it (no numba).

A registration allocates one directory (``TOKEN.indexes``) when it is
created: an :data:`~fastagg.sqlite.structs.INDEXES` header, room for
``MAX_INDEXES`` :data:`~fastagg.sqlite.structs.INDEX` entries and one
distinct-count estimate per column. Compiled code fills it
(:mod:`fastagg.table.index`); this module lays it out, lists it and frees
it, so that registering a frame needs no numba.

Directories kept with their source
----------------------------------
Each ``fastagg.query`` call registers its frames afresh; without more, each
call would rebuild every index its joins probe (a sort of the table per
index). A directory built over an *immutable* source is therefore kept with
that source, not with the registration: :func:`acquire_directory` hands the
same directory (its indexes, distinct / NULL counts and distinct-count
estimates) to the next registration of the same source object, and it is
freed when the source is garbage collected (a weakref callback) and no
registration uses it. The key is the source object (weakly, by identity)
and the decimals option, checked against the signature of its buffers
(every column's kind, addresses and lengths as the descriptor holds them):
a different buffer means a different directory.

Only ``pyarrow.Table`` sources are kept: Arrow data is immutable, so equal
buffer addresses of a live table mean equal contents. pandas frames are
not: a column can be written in place (``df.loc[i, c] = v``) at the same
address, and under copy-on-write a block the registration no longer
references is written without a copy, so an address signature cannot tell
and a content fingerprint would cost a pass over every column per query.
Their directories stay private to the registration (built per query, as
before). A directory in use by a live registration is never shared with a
second one at the same time (compiled code appends indexes to it without a
lock); the second registration gets a private directory.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import weakref

from ..sqlite import capi as _capi
from ..sqlite.structs import INDEX, INDEXES, MAX_INDEXES, MIRRORS

__all__ = [
    "DIRECTORY_BYTES", "acquire_directory", "directory_entries", "free_directory", "init_directory",
    "entry_bytes", "is_kept", "kept_directories", "release_directory",
]

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


def entry_bytes(ent) -> int:
    """All the memory of index entry *ent*: its permutation and its key-start table."""
    return int(ent.bytes) + (8 * (int(ent.span) + 1) if ent.starts else 0)


def free_directory(addr: int) -> None:
    """Free every index of the directory at *addr*, then the directory (Python side)."""
    for ent in directory_entries(addr):
        if ent.perm:
            _capi.lib.sqlite3_free(ent.perm)
        if ent.starts:
            _capi.lib.sqlite3_free(ent.starts)
    _capi.lib.sqlite3_free(addr)


class _Kept:
    """A directory kept with its source object (see the module docstring)."""

    __slots__ = ("addr", "key", "ref", "signature", "in_use", "orphaned")

    def __init__(self, addr, key, signature):
        self.addr, self.key, self.signature = addr, key, signature
        self.ref = None
        self.in_use = True
        self.orphaned = False  # no longer in _kept: freed when the last user lets go


_kept: dict[tuple, _Kept] = {}  # (id(source), decimals) -> directory kept with the source
_by_addr: dict[int, _Kept] = {}  # directory address -> its entry (kept or orphaned)
# Reentrant: the weakref callback can run inside these functions (a gc pass
# triggered there) on the same thread.
_lock = threading.RLock()


def _new_directory(ncols: int) -> int:
    addr = _capi.lib.sqlite3_malloc64(DIRECTORY_BYTES(ncols))
    if not addr:
        raise MemoryError("sqlite3_malloc64 failed")
    init_directory(addr, ncols)
    return addr


def _orphan(entry: _Kept) -> None:
    """Forget *entry* as its source's directory; free it now if no registration uses it."""
    if _kept.get(entry.key) is entry:
        del _kept[entry.key]
    entry.orphaned = True
    if not entry.in_use:
        _by_addr.pop(entry.addr, None)
        free_directory(entry.addr)


def _source_gone(key) -> None:
    with _lock:
        entry = _kept.get(key)
        if entry is not None:
            _orphan(entry)


def _keeps(source) -> bool:
    pa = sys.modules.get("pyarrow")  # not imported here: a pyarrow Table means it is loaded
    return pa is not None and isinstance(source, pa.Table)


def acquire_directory(source, decimals: str, signature: bytes, ncols: int) -> int:
    """An index directory for a registration of *source*: the one kept with it, or a new one.

    *signature* identifies the buffers the registration reads (the column
    descriptor's bytes); a kept directory is reused only for the same live
    source object, decimals option and signature, and only if no other
    registration uses it now. Pair with :func:`release_directory`.
    """
    if source is None or not _keeps(source):
        return _new_directory(ncols)
    key = (id(source), decimals)
    with _lock:
        entry = _kept.get(key)
        if entry is not None and (entry.ref() is not source or entry.signature != signature):
            _orphan(entry)  # another object with a recycled id, or other buffers
            entry = None
        if entry is not None:
            if entry.in_use:
                return _new_directory(ncols)  # private: compiled code appends without a lock
            entry.in_use = True
            return entry.addr
        addr = _new_directory(ncols)
        entry = _Kept(addr, key, signature)
        # The callback runs when the source is freed, before its id can be reused.
        entry.ref = weakref.ref(source, lambda _ref, key=key: _source_gone(key))
        _kept[key] = entry
        _by_addr[addr] = entry
        return addr


def release_directory(addr: int) -> None:
    """Let go of directory *addr* (no cursor reads it any more): free it unless its source keeps it."""
    with _lock:
        entry = _by_addr.get(addr)
        if entry is None:
            free_directory(addr)
            return
        entry.in_use = False
        if entry.orphaned:
            _by_addr.pop(addr, None)
            free_directory(addr)


def is_kept(addr: int) -> bool:
    """Whether directory *addr* is kept with its source (outlives its registration)."""
    with _lock:
        entry = _by_addr.get(addr)
        return entry is not None and not entry.orphaned


def kept_directories() -> dict:
    """Directories kept with live sources: ``{"directories": int, "bytes": int}`` (index memory included)."""
    with _lock:
        entries = [e for e in _by_addr.values() if not e.orphaned]
        nbytes = sum(DIRECTORY_BYTES(MIRRORS["INDEXES"][1].from_address(e.addr).ncols)
                     + sum(entry_bytes(ent) for ent in directory_entries(e.addr)) for e in entries)
        return {"directories": len(entries), "bytes": nbytes}
