"""Calls through a function pointer the loader fills: the lazily loaded images.

The virtual table's base image (:mod:`.module`) reaches the index machinery
(:mod:`.indexed`) and the text ranking (:mod:`.texted`), images built on
first need, through the slots after the ``sqlite3_module``'s own
(:mod:`.callbacks` lays them out): each is 0 until loaded, then a C
address. Every entry has the one C signature
``int32(int64, int64, int64, int64, int64)`` so that one intrinsic calls them
all. The hook's first argument is the slot wanted: it loads the image that
fills that slot.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import carray, njit, types
from numba.extending import intrinsic

from ..native.intrinsics import as_voidptr
from ..sqlite.structs import MAX_INDEX_COLUMNS

__all__ = [
    "MODULE_SLOTS", "NSLOTS", "PRICE_COST", "PRICE_KEYS", "PRICE_KIND", "PRICE_NKEY", "PRICE_NPICK",
    "PRICE_PICKS", "PRICE_ROWS", "PRICE_UNIQUE", "SLOT_DATES", "SLOT_FILTER", "SLOT_HOOK", "SLOT_PRICE", "SLOT_TEXT", "SLOT_TOP", "call5", "index_slots",
]

#: Pointer-sized fields of ``sqlite3_module`` (iVersion, then 23 callbacks).
MODULE_SLOTS = 24
#: After them: the loader's hook (``hook(slot, 0, 0, 0, 0)`` loads the image
#: holding *slot* and fills its slots; 0 = loaded), the index image's
#: entries (filter, top-k), the text image's entry, the index image's cost model,
#: then the date-bounds callback (:mod:`.dates`; filled when the module is built).
SLOT_HOOK, SLOT_FILTER, SLOT_TOP, SLOT_TEXT, SLOT_PRICE, SLOT_DATES = 0, 1, 2, 3, 4, 5
NSLOTS = 6

#: Layout of the cost model's output (:func:`fastagg.table.indexed.price_entry`):
#: int64 words, cost and rows as float64 bits, then the key columns, then the
#: constraints in plan order (one word per constraint).
PRICE_KIND, PRICE_NKEY, PRICE_NPICK, PRICE_UNIQUE, PRICE_COST, PRICE_ROWS, PRICE_KEYS = 0, 1, 2, 3, 4, 5, 8
PRICE_PICKS = PRICE_KEYS + MAX_INDEX_COLUMNS


@intrinsic
def call5(typingctx, fn, a, b, c, d, e):
    """Call C function address *fn* as ``int32 (*)(int64 x 5)`` with integer arguments."""
    if not all(isinstance(t, types.Integer) for t in (fn, a, b, c, d, e)):
        return None

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        fnty = ir.FunctionType(ir.IntType(32), [i64] * 5)
        vals = [context.cast(builder, v, t, types.int64) for v, t in zip(args[1:], sig.args[1:])]
        ptr = builder.inttoptr(context.cast(builder, args[0], sig.args[0], types.int64), fnty.as_pointer())
        return builder.call(ptr, vals)

    return types.int32(fn, a, b, c, d, e), codegen


@njit(cache=True)
def index_slots(module_addr):
    """The index slots after the ``sqlite3_module`` at *module_addr* (``sqlite3_vtab.pModule``)."""
    return carray(as_voidptr(module_addr + 8 * MODULE_SLOTS), NSLOTS, np.int64)
