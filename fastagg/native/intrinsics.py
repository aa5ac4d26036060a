"""Intrinsics shared by every stage's compiled code: pointers and optionals.

All of fastagg's hand-written LLVM for pointer handling lives here.
"""

from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic

__all__ = ["address_of", "as_voidptr", "is_null", "record_address", "unwrap"]


@intrinsic
def is_null(typingctx, ptr):
    """Return whether a ``voidptr`` is NULL."""
    if ptr != types.voidptr:
        return None

    def codegen(context, builder, sig, args):
        return cgutils.is_null(builder, args[0])

    return types.boolean(ptr), codegen


@intrinsic
def as_voidptr(typingctx, address):
    """Reinterpret an integer address (``arr.ctypes.data``) as ``voidptr``."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], context.get_value_type(types.voidptr))

    return types.voidptr(address), codegen


@intrinsic
def address_of(typingctx, ptr):
    """Return the address held by a ``voidptr`` as ``intp`` (inverse of :func:`as_voidptr`).

    Used by the virtual table to store pointers from ``sqlite3_malloc64`` in
    int64 slots of SQLite-owned structs (``sqlite3_vtab``, cursors).
    """
    if ptr != types.voidptr:
        return None

    def codegen(context, builder, sig, args):
        return builder.ptrtoint(args[0], context.get_value_type(types.intp))

    return types.intp(ptr), codegen


@intrinsic
def record_address(typingctx, rec):
    """Return the address of a state record (records are passed by reference)."""
    if not isinstance(rec, types.Record):
        return None

    def codegen(context, builder, sig, args):
        return builder.ptrtoint(args[0], context.get_value_type(types.intp))

    return types.intp(rec), codegen


@intrinsic
def unwrap(typingctx, value):
    """Narrow an ``Optional(T)`` known not to be None to ``T``."""
    if not isinstance(value, types.Optional):
        return None

    def codegen(context, builder, sig, args):
        payload = context.cast(builder, args[0], value, value.type)
        return impl_ret_borrowed(context, builder, value.type, payload)

    return value.type(value), codegen
