"""The process's one ``sqlite3_module``, built from the virtual table's callbacks.

The callbacks (:mod:`.module`, numba cfuncs) are the same machine code in
every process, so they come from a native image
(:class:`fastagg.native.loader.NativeImage`) when one is cached: building
the module then imports no numba. Otherwise :mod:`.module` is imported
(numba compiles the callbacks or loads them from its cache) and the image is
written for the next process.

The index machinery (:mod:`.indexed`: building and probing indexes, the
top-k, and the cost model that prices index plans) is a second image,
:data:`INDEX_IMAGE`, and the sort keys of every column but plain int64 /
float64 ones (text and blobs in BINARY order, validity, codes, dates;
:mod:`.texted`) a third, :data:`TEXT_IMAGE`, each loaded on first need: the
module's allocation has :data:`~.indirect.NSLOTS` more slots after the
``sqlite3_module``'s own, the first holding the address of a ctypes
callback (:func:`_hook`: it loads the image of the slot asked for) and the
others 0 until it has loaded the image and filled them. A process that only
scans, filters on constants or orders plain int64 / float64 columns (a
plain GROUP BY on a numpy integer key) never builds or loads either.
"""

from __future__ import annotations

import ctypes
import sys
import threading

from ..native.loader import NativeImage
from ..sqlite import capi as _capi
from .dates import DATES_CALLBACK

__all__ = [
    "IMAGE", "INDEX_IMAGE", "TEXT_IMAGE", "index_loaded", "load_index", "load_text", "module_address",
    "module_destroy_address", "text_loaded",
]


def _build() -> dict:
    from .module import CALLBACKS

    return dict(CALLBACKS)


def _build_index() -> dict:
    from .indexed import CALLBACKS

    return dict(CALLBACKS)


def _build_text() -> dict:
    from .texted import CALLBACKS

    return dict(CALLBACKS)


#: The virtual table's callbacks as a native image.
IMAGE = NativeImage("vtab", _build, stages=("table", "native", "sqlite"))
#: The index machinery (:mod:`.indexed`): built and loaded on first need.
INDEX_IMAGE = NativeImage("vtab-index", _build_index, stages=("table", "native", "sqlite"))
#: Sort keys of non-plain columns (:mod:`.texted`): built and loaded on first need.
TEXT_IMAGE = NativeImage("vtab-text", _build_text, stages=("table", "native", "sqlite"))

# Mirrors fastagg.table.indirect (which imports numba): the slots after the module's.
_MODULE_SLOTS = 24
_SLOT_HOOK, _SLOT_DATES, _NSLOTS = 0, 5, 6
_INDEX_SLOTS = {"filter": 1, "top": 2, "price": 4}
_TEXT_SLOTS = {"keys": 3}

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
_image_lock = threading.Lock()
_failed: set = set()  # images that could not be had in this process


def _slots():
    return (ctypes.c_int64 * (_MODULE_SLOTS + _NSLOTS)).from_address(module_address())


def _load(image: NativeImage, wanted: dict) -> bool:
    """Load (building once if need be) *image* and fill its *wanted* slots; whether they are filled.

    A failure is remembered: the process then plans without it (scans,
    SQLite's sorter), never retries per statement.
    """
    slots = _slots()
    with _image_lock:
        if all(slots[_MODULE_SLOTS + i] for i in wanted.values()):
            return True
        if image.name in _failed:
            return False
        try:
            fns = image.addresses()
        except Exception as exc:  # noqa: BLE001 - a failed build must not fail the statement
            _failed.add(image.name)
            print(f"fastagg: {image.name} code unavailable, planning without it: {exc}", file=sys.stderr)
            return False
        for name, i in wanted.items():
            slots[_MODULE_SLOTS + i] = fns[name]
        return True


def load_index() -> bool:
    """Load (building once if need be) the index image and fill the module's slots; whether it is loaded.

    Called by xBestIndex through the hook slot (any thread; it holds no
    lock of fastagg's then), or ahead of time by :func:`fastagg.warmup`. A
    failure is remembered: the process then plans scans, never retries per statement.
    """
    return _load(INDEX_IMAGE, _INDEX_SLOTS)


def load_text() -> bool:
    """Load (building once if need be) the text image and fill its slot; whether it is loaded.

    Called by xBestIndex before it plans an order on a column that is not a
    plain int64 / float64 buffer (without it, SQLite sorts), or by
    :func:`fastagg.warmup`.
    """
    return _load(TEXT_IMAGE, _TEXT_SLOTS)


def _loaded(wanted: dict) -> bool:
    addr = _module_address
    if addr is None:
        return False
    slots = (ctypes.c_int64 * (_MODULE_SLOTS + _NSLOTS)).from_address(addr)
    return all(slots[_MODULE_SLOTS + i] for i in wanted.values())


def index_loaded() -> bool:
    """Whether this process has loaded the index image."""
    return _loaded(_INDEX_SLOTS)


def text_loaded() -> bool:
    """Whether this process has loaded the text image."""
    return _loaded(_TEXT_SLOTS)


def _hook(slot, b, c, d, e):
    try:
        ok = load_text() if slot in _TEXT_SLOTS.values() else load_index()
        return 0 if ok else 1
    except BaseException:  # noqa: BLE001 - nothing may unwind into SQLite's C frames
        return 1


_HOOK = ctypes.CFUNCTYPE(ctypes.c_int32, *[ctypes.c_int64] * 5)(_hook)  # kept alive: the module points to it


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
            size = 8 * (len(_MODULE_FIELDS) + _NSLOTS)
            addr = _capi.lib.sqlite3_malloc64(size)
            if not addr:
                raise MemoryError("sqlite3_malloc64 failed")
            slots = (ctypes.c_uint64 * len(_MODULE_FIELDS)).from_address(addr)
            ctypes.memset(addr, 0, size)
            slots[0] = 1  # iVersion; xCreate = xDestroy = NULL: eponymous-only
            for name, fn in fns.items():
                if name in _MODULE_FIELDS:
                    slots[_MODULE_FIELDS.index(name)] = fn
            extra = (ctypes.c_uint64 * _NSLOTS).from_address(addr + 8 * _MODULE_SLOTS)
            extra[_SLOT_HOOK] = ctypes.cast(_HOOK, ctypes.c_void_p).value
            extra[_SLOT_DATES] = ctypes.cast(DATES_CALLBACK, ctypes.c_void_p).value  # .dates: no numba
            _module_address = addr
        return _module_address
