"""The process's one ``sqlite3_module``, built from the virtual table's callbacks.

The callbacks (:mod:`.module`, numba cfuncs) are the same machine code in
every process, so they come from a native image
(:class:`fastagg.native.loader.NativeImage`) when one is cached: building
the module then imports no numba. Otherwise :mod:`.module` is imported
(numba compiles the callbacks or loads them from its cache) and the image is
written for the next process.
"""

from __future__ import annotations

import ctypes
import threading

from ..native.loader import NativeImage
from ..sqlite import capi as _capi

__all__ = ["IMAGE", "module_address", "module_destroy_address"]


def _build() -> dict:
    from .module import CALLBACKS

    return dict(CALLBACKS)


#: The virtual table's callbacks as a native image.
IMAGE = NativeImage("vtab", _build, stages=("table", "native", "sqlite"))

# sqlite3_module (sqlite3.h): int iVersion; then 23 function pointers
# (xCreate .. xRename, xSavepoint, xRelease, xRollbackTo, xShadowName).
_MODULE_FIELDS = [
    "iVersion", "xCreate", "xConnect", "xBestIndex", "xDisconnect", "xDestroy",
    "xOpen", "xClose", "xFilter", "xNext", "xEof", "xColumn", "xRowid",
    "xUpdate", "xBegin", "xSync", "xCommit", "xRollback", "xFindFunction",
    "xRename", "xSavepoint", "xRelease", "xRollbackTo", "xShadowName",
]
_module_address = None
_module_lock = threading.Lock()


def module_destroy_address() -> int:
    """Address of the destructor given to ``sqlite3_create_module_v2``."""
    return IMAGE.addresses()["module_destroy"]


def module_address() -> int:
    """Address of the process's one sqlite3_module, built on first use.

    Allocated with sqlite3_malloc64 and never freed: connections call through
    it until they close, possibly during interpreter shutdown.
    """
    global _module_address
    with _module_lock:
        if _module_address is None:
            fns = IMAGE.addresses()
            size = 8 * len(_MODULE_FIELDS)
            addr = _capi.lib.sqlite3_malloc64(size)
            if not addr:
                raise MemoryError("sqlite3_malloc64 failed")
            slots = (ctypes.c_uint64 * len(_MODULE_FIELDS)).from_address(addr)
            ctypes.memset(addr, 0, size)
            slots[0] = 1  # iVersion; xCreate = xDestroy = NULL: eponymous-only
            for name, fn in fns.items():
                if name in _MODULE_FIELDS:
                    slots[_MODULE_FIELDS.index(name)] = fn
            _module_address = addr
        return _module_address
