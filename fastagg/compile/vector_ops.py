"""numba methods of :func:`fastagg.vector` state fields.

A vector field is a nested ``(data, size, capacity)`` int64 record inside the
state (see :mod:`.vector`); here it gains ``append``, ``extend``, ``remove``,
``clear``, ``as_array``, ``len()`` and indexing in compiled code. The
elements live in ``sqlite3_realloc64`` memory that the generated callbacks
free after ``finalize`` (:func:`free_vector`); partial states serialise them
after the record (:func:`vector_bytes`, :func:`load_vector`).

Importing this module registers the methods with numba: it must happen
before any user method is compiled (:mod:`.cache` imports it).
"""

from __future__ import annotations

import operator

import numpy as np
from numba import carray, njit, types
from numba.extending import overload, overload_method

from ..native.intrinsics import address_of, as_voidptr, is_null, record_address
from ..sqlite.declarations import sqlite3_free, sqlite3_realloc64
from .vector import vector_element

__all__ = ["free_vector", "forget_vector_memory", "load_vector", "vector_bytes"]

def _vector_element(rec):
    if not isinstance(rec, types.Record):
        return None
    return vector_element(np.dtype([(name, np.int64) for name in rec.fields]))


@njit(cache=True)
def _vector_slots(rec):
    # [0] element address, [1] size, [2] capacity (see .vector.vector_dtype).
    return carray(as_voidptr(record_address(rec)), 3, np.int64)


@njit(cache=True)
def _vector_reserve(slots, needed, itemsize):
    if needed <= slots[2]:
        return
    capacity = max(16, slots[2] * 2, needed)
    grown = sqlite3_realloc64(as_voidptr(slots[0]), capacity * itemsize)
    if is_null(grown):
        raise MemoryError("fastagg.vector: out of memory")
    slots[0] = address_of(grown)
    slots[2] = capacity


@njit(cache=True)
def free_vector(rec):
    """Free a vector field's elements (called after ``finalize``). Calls ``sqlite3_free``."""
    slots = _vector_slots(rec)
    sqlite3_free(as_voidptr(slots[0]))
    slots[0] = 0
    slots[1] = 0
    slots[2] = 0


@njit(cache=True)
def vector_bytes(rec):
    """Return a vector field's elements as a uint8 view."""
    slots = _vector_slots(rec)
    return carray(as_voidptr(slots[0]), slots[1] * _vector_itemsize(rec), np.uint8)


@njit(cache=True)
def forget_vector_memory(rec):
    """Clear a vector's address and capacity, keeping its element count."""
    slots = _vector_slots(rec)
    slots[0] = 0
    slots[2] = 0


@njit(cache=True)
def load_vector(rec, data, at):
    """Fill an empty vector field from serialised *data* at offset *at*.

    The element count is the one recorded in the serialised record; returns
    the offset after the elements, or -1 if *data* is too short.
    """
    slots = _vector_slots(rec)
    count = slots[1]
    nbytes = count * _vector_itemsize(rec)
    slots[1] = 0
    if count < 0 or at + nbytes > len(data):
        return -1
    _vector_reserve(slots, count, _vector_itemsize(rec))
    carray(as_voidptr(slots[0]), nbytes, np.uint8)[:] = data[at : at + nbytes]
    slots[1] = count
    return at + nbytes


def _vector_itemsize(rec):
    raise NotImplementedError("nopython only")


@overload(_vector_itemsize, jit_options={"cache": True})
def _vector_itemsize_impl(rec):
    element = _vector_element(rec)
    if element is None:
        return None
    itemsize = element.itemsize
    return lambda rec: itemsize


def _vector_elements(rec, extra):
    raise NotImplementedError("nopython only")


@overload(_vector_elements, jit_options={"cache": True})
def _vector_elements_impl(rec, extra):
    """``(elements, old_size)``: the vector grown by *extra* elements, as an array view."""
    element = _vector_element(rec)
    if element is None:
        return None
    itemsize = element.itemsize

    def elements(rec, extra):
        slots = _vector_slots(rec)
        size = slots[1]
        _vector_reserve(slots, size + extra, itemsize)
        slots[1] = size + extra
        return carray(as_voidptr(slots[0]), size + extra, element), size

    return elements


# target="cpu": numba tries target-specific templates before its generic
# record-field lookup, which raises KeyError for a name that is not a field
# when it was loaded first (any numba compile before fastagg.compile.vector_ops).
@overload_method(types.Record, "append", target="cpu", jit_options={"cache": True})
def _vector_append(rec, x):
    if _vector_element(rec) is None:
        return None

    def append(rec, x):
        out, size = _vector_elements(rec, 1)
        out[size] = x

    return append


@overload_method(types.Record, "extend", target="cpu", jit_options={"cache": True})
def _vector_extend(rec, values):
    if _vector_element(rec) is None:
        return None

    def extend(rec, values):
        out, size = _vector_elements(rec, len(values))
        for i in range(len(values)):
            out[size + i] = values[i]

    return extend


@overload_method(types.Record, "as_array", target="cpu", jit_options={"cache": True})
def _vector_as_array(rec):
    if _vector_element(rec) is None:
        return None
    return lambda rec: _vector_elements(rec, 0)[0]


@overload_method(types.Record, "clear", target="cpu", jit_options={"cache": True})
def _vector_clear(rec):
    if _vector_element(rec) is None:
        return None

    def clear(rec):
        _vector_slots(rec)[1] = 0

    return clear


@overload_method(types.Record, "remove", target="cpu", jit_options={"cache": True})
def _vector_remove(rec, x):
    if _vector_element(rec) is None:
        return None

    def remove(rec, x):
        data, size = _vector_elements(rec, 0)
        for i in range(size):
            if data[i] == x:
                data[i] = data[size - 1]
                _vector_slots(rec)[1] = size - 1
                return True
        return False

    return remove


@overload(len, jit_options={"cache": True})
def _vector_len(rec):
    if _vector_element(rec) is None:
        return None
    return lambda rec: _vector_slots(rec)[1]


@overload(operator.getitem, jit_options={"cache": True})
def _vector_getitem(rec, i):
    if _vector_element(rec) is None or not isinstance(i, types.Integer):
        return None
    return lambda rec, i: _vector_elements(rec, 0)[0][i]
