"""Methods of a ``fastagg.Value`` state field in compiled code: set, get, is_null.

The field is the nested record of :func:`fastagg.compile.value.value_dtype`;
its bytes live in a ``fastagg.vector`` (SQLite's allocator, freed after
``finalize`` with the state's other vectors).
"""

from __future__ import annotations

from numba import types
from numba.extending import overload_method

from ..native.anyvalue import NULL, AnyValue, is_anyvalue
from . import vector_ops  # noqa: F401 - the vector methods the bytes field uses
from .value import VALUE_FIELD_NAMES

__all__: list[str] = []


def _is_value_field(rec) -> bool:
    if not isinstance(rec, types.Record):
        return False
    return list(rec.fields) == list(VALUE_FIELD_NAMES)


@overload_method(types.Record, "set", target="cpu", jit_options={"cache": True})
def _value_set(rec, x):
    if not _is_value_field(rec):
        return None
    if is_anyvalue(x):

        def set_value(rec, x):
            rec.anyvalue_tag = x.tag
            rec.anyvalue_ival = x.ival
            rec.anyvalue_fval = x.fval
            rec.bytes.clear()
            rec.bytes.extend(x.data)

        return set_value
    if isinstance(x, types.NoneType):

        def set_null(rec, x):
            rec.anyvalue_tag = NULL
            rec.bytes.clear()

        return set_null
    return None


@overload_method(types.Record, "get", target="cpu", jit_options={"cache": True})
def _value_get(rec):
    if not _is_value_field(rec):
        return None

    def get_value(rec):
        tag = rec.anyvalue_tag
        if tag == 0:
            tag = NULL  # a zeroed state: nothing stored yet
        return AnyValue(tag, rec.anyvalue_ival, rec.anyvalue_fval, rec.bytes.as_array())

    return get_value


@overload_method(types.Record, "is_null", target="cpu", jit_options={"cache": True})
def _value_is_null(rec):
    if not _is_value_field(rec):
        return None
    return lambda rec: rec.anyvalue_tag == 0 or rec.anyvalue_tag == NULL
