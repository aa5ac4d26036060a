"""The SQLite C API as compiled code sees it: one numba declaration per function.

Every C function of :mod:`.capi` that the loaded SQLite exports is a module
attribute of the same name (``sqlite3_step``, ``sqlite3_value_type``, ...),
an :class:`numba.types.ExternalFunction` callable in nopython code::

    from fastagg.sqlite.declarations import sqlite3_step

Importing this module also tells LLVM where the symbols live, which a
function loaded from numba's on-disk cache needs before it first runs; so a
module whose compiled code calls SQLite imports its functions from here
rather than declaring its own. Imports numba: ``import fastagg`` must not
import this module.
"""

from __future__ import annotations

from .capi import _SIGNATURES, has, native

__all__ = [name for name in _SIGNATURES if has(name)]

globals().update({name: native(name) for name in __all__})
