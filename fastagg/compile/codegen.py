"""Compile an aggregate or scalar-function spec into SQLite C callbacks.

An aggregate becomes ``numba.cfunc`` callbacks with SQLite's signatures:
``xStep`` and ``xFinal``; ``xValue`` and ``xInverse`` for a window function;
and, when the class defines ``merge``, an ``xFinal`` that writes the state
as a BLOB and an ``xStep`` that merges such BLOBs (the ``f_partial``,
``f_combine`` and ``f_merge`` SQL functions). A scalar function becomes one
``xFunc``. Their source is generated per spec into a small module in
fastagg's cache directory so that numba's on-disk cache serves a second
process; the module's name carries a fingerprint of the user's code, of
what it calls and of fastagg's runtime, so changed code never reuses a
stale compilation.

State. SQLite allocates a zeroed blob per aggregate context
(``sqlite3_aggregate_context``); fastagg asks for ``state.itemsize`` bytes,
plus one byte that records whether ``__init__`` has run when the class has an
``__init__``. The state record is a ``numba.carray`` view of that blob, so
each context (every group, every use in the query, every window partition)
has its own state, initialised exactly once.

Errors. User code runs inside a *trap*: a call with numba's internal calling
convention whose error status is inspected instead of propagated. On error
the trap takes the GIL, turns numba's exception into a Python one, and calls
:func:`report_callback_error`, which sets the message on the SQLite context
(``sqlite3_result_error``), failing the statement. The hot path never touches
the GIL.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import operator
import os
import re
import sys
import tempfile
import threading
from pathlib import Path

import llvmlite.ir as llir
import numba
import numpy as np
from numba import carray, cfunc, njit, types
from numba.core import cgutils, typing
from numba.cpython.unicode import PY_UNICODE_1BYTE_KIND
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, overload, overload_method

from ..errors import CompileError
from ..native.intrinsics import address_of, as_voidptr, is_null, record_address, unwrap
from ..native.utf8 import str_to_utf8, utf8_to_str
from ..sqlite import capi as _capi
from .spec import AggregateSpec, FunctionSpec

__all__ = ["compile_spec", "CompiledCallbacks", "report_callback_error", "last_callback_error"]

SQLITE_TRANSIENT = _capi.SQLITE_TRANSIENT

def make_trap(body, where: str):
    """Return an intrinsic ``trap(ctx, (args...)) -> bool`` that calls *body*.

    *body* is a Python function compiled as a nopython subroutine. If it
    raises, the exception becomes the SQL error of SQLite context *ctx*
    (via :func:`report_callback_error`) and the trap returns False.
    """
    report = functools.partial(report_callback_error, where)

    @intrinsic
    def trap(typingctx, ctx, args):
        if ctx != types.voidptr or not isinstance(args, types.BaseTuple):
            return None

        def codegen(context, builder, sig, llargs):
            ctx_value, packed = llargs
            items = cgutils.unpack_tuple(builder, packed, len(args.types))
            callee_sig = typing.signature(types.none, *args.types)
            # caching=False: bodies of different aggregates can share code
            # objects that compare equal while their globals differ.
            cres = context.compile_subroutine(builder, body, callee_sig, caching=False)
            status, _ = context.call_internal_no_propagate(
                builder, cres.fndesc, callee_sig, items
            )
            with builder.if_then(status.is_error, likely=False):
                _emit_report(context, builder, status, ctx_value, report)
            return builder.not_(status.is_error)

        return types.boolean(ctx, args), codegen

    return trap


def _emit_report(context, builder, status, ctx_value, report) -> None:
    """Emit: with the GIL, raise numba's error as Python's, hand it to *report*."""
    pyapi = context.get_python_api(builder)
    gil = pyapi.gil_ensure()
    context.call_conv.raise_error(builder, pyapi, status)
    slots = [cgutils.alloca_once(builder, pyapi.pyobj) for _ in range(3)]
    pyapi.err_fetch(*slots)
    normalize = pyapi._get_function(
        llir.FunctionType(llir.VoidType(), [pyapi.pyobj.as_pointer()] * 3),
        name="PyErr_NormalizeException",
    )
    builder.call(normalize, slots)
    exc_type, exc_value, exc_tb = (builder.load(s) for s in slots)
    exc_or_none = builder.select(
        cgutils.is_null(builder, exc_value), pyapi.borrow_none(), exc_value
    )
    callback = pyapi.unserialize(pyapi.serialize_object(report))
    ctx_int = pyapi.long_from_ssize_t(
        builder.ptrtoint(ctx_value, context.get_value_type(types.intp))
    )
    result = pyapi.call_function_objargs(callback, [ctx_int, exc_or_none])
    for obj in (result, callback, ctx_int, exc_type, exc_value, exc_tb):
        pyapi.decref(obj)  # Py_DecRef: NULL-safe
    pyapi.err_clear()
    pyapi.gil_release(gil)


_last_error = threading.local()


def report_callback_error(where: str, ctx: int, exc: BaseException | None) -> None:
    """Fail the SQLite statement running context *ctx* with *exc*'s message.

    Called, with the GIL held, by compiled callbacks whose user code raised.
    The message reads ``"WAvg.step: ValueError: negative weight"``. The
    exception is also kept for :func:`last_callback_error` so that the front
    end can raise :class:`fastagg.AggregateError` from it. Never raises.
    """
    try:
        if exc is None:
            text = f"{where}: unknown error"
        else:
            detail = str(exc)
            text = f"{where}: {type(exc).__name__}" + (f": {detail}" if detail else "")
        _last_error.value = (text, exc)
        message = text.encode("utf-8", "replace")
    except BaseException:  # noqa: BLE001 - must not propagate into SQLite
        message = f"{where}: error".encode()
    _capi.lib.sqlite3_result_error(ctx, message, len(message))


def last_callback_error() -> tuple[str, BaseException | None] | None:
    """Return and forget this thread's latest ``(message, exception)`` from a callback."""
    value = getattr(_last_error, "value", None)
    _last_error.value = None
    return value


# --------------------------------------------------------------------------
# Runtime helpers called by generated code (nopython).

_value_text = _capi.native("sqlite3_value_text")
_value_blob = _capi.native("sqlite3_value_blob")
_value_bytes = _capi.native("sqlite3_value_bytes")
_result_text = _capi.native("sqlite3_result_text")
_result_blob = _capi.native("sqlite3_result_blob")
_result_error_toobig = _capi.native("sqlite3_result_error_toobig")


@njit(cache=True)
def read_text(value):
    """Return SQL value *value* (``sqlite3_value*``) as a str."""
    ptr = _value_text(value)  # text before bytes: the byte count is of the UTF-8 form
    return utf8_to_str(ptr, _value_bytes(value))


@njit(cache=True)
def read_blob(value):
    """Return SQL value *value* as a uint8 array view (valid during the call)."""
    ptr = _value_blob(value)
    return carray(ptr, _value_bytes(value), np.uint8)


_result_null = _capi.native("sqlite3_result_null")
_result_double = _capi.native("sqlite3_result_double")
_result_int64 = _capi.native("sqlite3_result_int64")


def _result_writer(write_value, name: str):
    """Return a nopython function ``(ctx, r)`` setting *r* as the SQL result.

    Accepts whatever type numba inferred for the user's return value:
    ``None`` (a method that only raises or returns None) becomes NULL, an
    ``Optional`` is narrowed, anything else goes to *write_value*.
    """

    def write(ctx, r):
        raise NotImplementedError("nopython only")

    write.__name__ = write.__qualname__ = name

    @overload(write, jit_options={"cache": True})
    def typed_write(ctx, r):
        if isinstance(r, types.NoneType):
            return lambda ctx, r: _result_null(ctx)
        if isinstance(r, types.Optional):

            def write_optional(ctx, r):
                if r is None:
                    _result_null(ctx)
                else:
                    write_value(ctx, unwrap(r))

            return write_optional
        return lambda ctx, r: write_value(ctx, r)

    return write


@njit(cache=True)
def _is_ascii(s):
    # Not s._is_ascii: numba sets it on some Latin-1 strings (chr(0x80) * 3).
    if s._kind != PY_UNICODE_1BYTE_KIND:
        return False
    for b in carray(s._data, len(s), np.uint8):
        if b >= 128:
            return False
    return True


@njit(cache=True)
def result_str(ctx, s):
    """Set the result of *ctx* to str *s* (SQLite copies it)."""
    if _is_ascii(s):
        _result_text(ctx, s._data, len(s), SQLITE_TRANSIENT)
    else:
        encoded = str_to_utf8(s)
        if len(encoded) > 2147483647:
            _result_error_toobig(ctx)
            return
        _result_text(ctx, as_voidptr(encoded.ctypes.data), len(encoded), SQLITE_TRANSIENT)


@njit(cache=True)
def result_bytes(ctx, data):
    """Set the result of *ctx* to the bytes of uint8 array *data* (SQLite copies them)."""
    flat = np.ascontiguousarray(data)
    if flat.size > 2147483647:
        _result_error_toobig(ctx)
        return
    _result_blob(ctx, as_voidptr(flat.ctypes.data), flat.size, SQLITE_TRANSIENT)


# --------------------------------------------------------------------------
# fastagg.vector fields: methods of the nested (data, size, capacity) record.

_realloc = _capi.native("sqlite3_realloc64")
_free = _capi.native("sqlite3_free")


def _vector_element(rec):
    if not isinstance(rec, types.Record):
        return None
    from .vector import vector_element

    return vector_element(np.dtype([(name, np.int64) for name in rec.fields]))


@njit(cache=True)
def _vector_slots(rec):
    # [0] element address, [1] size, [2] capacity (see _vector.vector_dtype).
    return carray(as_voidptr(record_address(rec)), 3, np.int64)


@njit(cache=True)
def _vector_reserve(slots, needed, itemsize):
    if needed <= slots[2]:
        return
    capacity = max(16, slots[2] * 2, needed)
    grown = _realloc(as_voidptr(slots[0]), capacity * itemsize)
    if is_null(grown):
        raise MemoryError("fastagg.vector: out of memory")
    slots[0] = address_of(grown)
    slots[2] = capacity


@njit(cache=True)
def free_vector(rec):
    """Free a vector field's elements (called after ``finalize``)."""
    slots = _vector_slots(rec)
    _free(as_voidptr(slots[0]))
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


# target="cpu": numba tries target-specific templates before its generic
# record-field lookup, which raises KeyError for a name that is not a field
# when it was loaded first (any numba compile before fastagg.compile.codegen).
@overload_method(types.Record, "append", target="cpu", jit_options={"cache": True})
def _vector_append(rec, x):
    element = _vector_element(rec)
    if element is None:
        return None
    itemsize = element.itemsize

    def append(rec, x):
        slots = _vector_slots(rec)
        size = slots[1]
        _vector_reserve(slots, size + 1, itemsize)
        carray(as_voidptr(slots[0]), size + 1, element)[size] = x
        slots[1] = size + 1

    return append


@overload_method(types.Record, "extend", target="cpu", jit_options={"cache": True})
def _vector_extend(rec, values):
    element = _vector_element(rec)
    if element is None:
        return None
    itemsize = element.itemsize

    def extend(rec, values):
        slots = _vector_slots(rec)
        size = slots[1]
        _vector_reserve(slots, size + len(values), itemsize)
        out = carray(as_voidptr(slots[0]), size + len(values), element)
        for i in range(len(values)):
            out[size + i] = values[i]
        slots[1] = size + len(values)

    return extend


@overload_method(types.Record, "as_array", target="cpu", jit_options={"cache": True})
def _vector_as_array(rec):
    element = _vector_element(rec)
    if element is None:
        return None

    def as_array(rec):
        slots = _vector_slots(rec)
        return carray(as_voidptr(slots[0]), slots[1], element)

    return as_array


@overload_method(types.Record, "clear", target="cpu", jit_options={"cache": True})
def _vector_clear(rec):
    if _vector_element(rec) is None:
        return None

    def clear(rec):
        _vector_slots(rec)[1] = 0

    return clear


@overload_method(types.Record, "remove", target="cpu", jit_options={"cache": True})
def _vector_remove(rec, x):
    element = _vector_element(rec)
    if element is None:
        return None

    def remove(rec, x):
        slots = _vector_slots(rec)
        size = slots[1]
        data = carray(as_voidptr(slots[0]), size, element)
        for i in range(size):
            if data[i] == x:
                data[i] = data[size - 1]
                slots[1] = size - 1
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
    element = _vector_element(rec)
    if element is None or not isinstance(i, types.Integer):
        return None

    def getitem(rec, i):
        slots = _vector_slots(rec)
        return carray(as_voidptr(slots[0]), slots[1], element)[i]

    return getitem


write_float = _result_writer(_result_double, "write_float")
write_int = _result_writer(_result_int64, "write_int")
write_str = _result_writer(result_str, "write_str")
write_bytes = _result_writer(result_bytes, "write_bytes")

# --------------------------------------------------------------------------
# Code generation

STEP_SIG = types.void(types.voidptr, types.int32, types.CPointer(types.voidptr))
FINAL_SIG = types.void(types.voidptr)

_READERS = {
    "float": "value_double(v{i})",
    "int": "value_int64(v{i})",
    "bool": "value_double(v{i}) != 0.0",
    "str": "read_text(v{i})",
    "bytes": "read_blob(v{i})",
}

_WRITERS = {
    "float": "write_float",
    "int": "write_int",
    "bool": "write_int",
    "str": "write_str",
    "bytes": "write_bytes",
}

_HEADER = '''\
# Generated by fastagg for {qualname} (SQL name {name}); do not edit.
# Callbacks for sqlite3_create_window_function; see fastagg/compile/codegen.py.
import numpy as np
from numba import carray
from fastagg.compile.codegen import (
    is_null, as_voidptr, read_text, read_blob, write_float, write_int, write_str, write_bytes,
    free_vector, forget_vector_memory, vector_bytes, load_vector,
)
from fastagg.sqlite.capi import native

aggregate_context = native("sqlite3_aggregate_context")
value_type = native("sqlite3_value_type")
value_double = native("sqlite3_value_double")
value_int64 = native("sqlite3_value_int64")
result_error_nomem = native("sqlite3_result_error_nomem")
result_null = native("sqlite3_result_null")

NBYTES = {nbytes}
ITEMSIZE = {itemsize}
MAGIC = np.uint64({magic})
HEADER = {header}
# Set after import by fastagg: STATE (dtype), user_* (jitted methods), trap_*.
'''


def _state_block(has_init: bool) -> str:
    lines = [
        "    blob = aggregate_context(ctx, NBYTES)",
        "    if is_null(blob):",
        "        result_error_nomem(ctx)",
        "        return",
    ]
    if has_init:
        lines += [
            "    initialised = carray(blob, NBYTES, np.uint8)",
            "    if initialised[ITEMSIZE] == 0:",
            "        if not trap_init(ctx, (blob,)):",
            "            return",
            "        initialised[ITEMSIZE] = 1",
        ]
    return "\n".join(lines)


def _argument_lines(args, on_null: list[str]) -> tuple[list[str], list[str]]:
    """Source lines reading SQL arguments ``argv[i]`` into ``a0, a1, ...``.

    A NULL in an optional argument becomes None; in any other argument it
    runs *on_null* (skip the row, or return NULL from a scalar function).
    """
    lines, names = [], []
    for i, arg in enumerate(args):
        read = _READERS[arg.kind].format(i=i)
        if arg.kind in ("float", "int") and arg.dtype is not None and arg.dtype not in (
            np.dtype(np.float64),
            np.dtype(np.int64),
        ):
            read = f"np.{arg.dtype.name}({read})"
        lines.append(f"    v{i} = argv[{i}]")
        if arg.optional:
            lines += [
                f"    if value_type(v{i}) == 5:",
                f"        a{i} = None",
                "    else:",
                f"        a{i} = {read}",
            ]
        else:
            lines += [f"    if value_type(v{i}) == 5:", *[f"        {line}" for line in on_null], f"    a{i} = {read}"]
        names.append(f"a{i}")
    return lines, names


def _row_callback(spec: AggregateSpec, method: str) -> str:
    """Source of xStep / xInverse: read arguments, skip NULL rows, call the user."""
    lines = [f"def {method}(ctx, argc, argv):", _state_block(spec.init is not None)]
    arg_lines, names = _argument_lines(spec.args, ["return"])
    lines += arg_lines
    packed = "".join(f", {n}" for n in names)
    lines.append(f"    trap_{method}(ctx, (blob{packed},))")
    lines.append("")
    lines.append(f"def {method}_body(blob{packed}):")
    lines.append(f"    user_{method}(carray(blob, 1, STATE)[0]{packed})")
    return "\n".join(lines) + "\n"


def _scalar_callback(spec: FunctionSpec) -> str:
    """Source of xFunc: read arguments (any NULL argument gives NULL), call, set the result."""
    lines = ["def call(ctx, argc, argv):"]
    arg_lines, names = _argument_lines(spec.args, ["result_null(ctx)", "return"])
    lines += arg_lines
    packed = "".join(f", {n}" for n in names)
    lines.append(f"    trap_call(ctx, (ctx{packed},))")
    lines.append("")
    lines.append(f"def call_body(ctx{packed}):")
    lines.append(f"    {_WRITERS[spec.result.kind]}(ctx, user_call({packed[2:]}))")
    return "\n".join(lines) + "\n"


def _result_callback(spec: AggregateSpec, method: str) -> str:
    """Source of xFinal / xValue: make sure the state exists, compute, set the result."""
    release = []
    if method == "finalize" and spec.vector_fields:
        # SQLite frees the state blob after xFinal; the vectors' elements are ours.
        release.append("    state = carray(blob, 1, STATE)[0]")
        release += [f"    free_vector(state.{name})" for name in spec.vector_fields]
    return "\n".join(
        [
            f"def {method}(ctx):",
            _state_block(spec.init is not None),
            f"    trap_{method}(ctx, (ctx, blob))",
            *release,
            "",
            f"def {method}_body(ctx, blob):",
            f"    {_WRITERS[spec.result.kind]}(ctx, user_{method}(carray(blob, 1, STATE)[0]))",
        ]
    ) + "\n"


# Serialised partial state: a 16-byte header (magic, record size, layout
# hash), the record's bytes, then each vector field's elements in order.
STATE_MAGIC = 0x46414747  # "FAGG"
STATE_HEADER = 16


def _partial_callbacks(spec: AggregateSpec) -> str:
    """Source of xFinal writing the state as a BLOB, and xStep merging such BLOBs."""
    vectors = spec.vector_fields
    lines = [
        f"LAYOUT = np.uint64({spec.layout_hash()})",
        f"NOT_PARTIAL = {('argument is not a partial state of ' + spec.name + ' (from ' + spec.partial_names[0] + ')')!r}",
        "",
        "def partial_final(ctx):",
        _state_block(spec.init is not None),
        "    state = carray(blob, 1, STATE)[0]",
        "    size = HEADER + ITEMSIZE"
        + "".join(f" + len(state.{v}) * state.{v}.as_array().itemsize" for v in vectors),
        "    out = np.empty(size, np.uint8)",
        "    head = carray(as_voidptr(out.ctypes.data), 2, np.uint64)",
        "    head[0] = MAGIC | (np.uint64(ITEMSIZE) << np.uint64(32))",
        "    head[1] = LAYOUT",
        "    out[HEADER:HEADER + ITEMSIZE] = carray(blob, ITEMSIZE, np.uint8)",
        "    at = HEADER + ITEMSIZE",
    ]
    for v in vectors:
        lines += [
            f"    n = len(state.{v}) * state.{v}.as_array().itemsize",
            f"    out[at:at + n] = vector_bytes(state.{v})",
            "    at += n",
            f"    free_vector(state.{v})",
        ]
    lines += [
        "    write_bytes(ctx, out)",
        "",
        "def merge_step(ctx, argc, argv):",
        _state_block(spec.init is not None),
        "    v0 = argv[0]",
        "    if value_type(v0) == 5:",
        "        return",
        "    other = np.zeros(1, STATE)",
        "    if trap_load(ctx, (read_blob(v0), other)):",
        "        trap_merge(ctx, (blob, other))",
        *[f"    free_vector(other[0].{v})" for v in vectors],
        "",
        "def load_body(data, other):",
        "    if len(data) < HEADER + ITEMSIZE:",
        f"        raise ValueError(NOT_PARTIAL)",
        "    head = np.empty(2, np.uint64)",
        "    carray(as_voidptr(head.ctypes.data), 16, np.uint8)[:] = data[:16]",
        "    if head[0] != (MAGIC | (np.uint64(ITEMSIZE) << np.uint64(32))) or head[1] != LAYOUT:",
        f"        raise ValueError(NOT_PARTIAL)",
        "    carray(as_voidptr(other.ctypes.data), ITEMSIZE, np.uint8)[:] = data[HEADER:HEADER + ITEMSIZE]",
        # The copied record holds another process's pointers: clear them first.
        *[f"    forget_vector_memory(other[0].{v})" for v in vectors],
        "    at = HEADER + ITEMSIZE",
        *[
            line
            for v in vectors
            for line in (
                f"    at = load_vector(other[0].{v}, data, at)",
                "    if at < 0:",
                "        raise ValueError(NOT_PARTIAL)",
            )
        ],
        "",
        "def merge_body(blob, other):",
        "    user_merge(carray(blob, 1, STATE)[0], other[0])",
    ]
    return "\n".join(lines) + "\n"


def _header_source(spec, nbytes: int) -> str:
    itemsize = spec.state.itemsize if isinstance(spec, AggregateSpec) else 0
    return _HEADER.format(
        qualname=spec.qualname,
        name=spec.name,
        nbytes=nbytes,
        itemsize=itemsize,
        magic=hex(STATE_MAGIC),
        header=STATE_HEADER,
    )


def generate_source(spec: AggregateSpec | FunctionSpec) -> str:
    """Return the Python source of *spec*'s callback module."""
    if isinstance(spec, FunctionSpec):
        header = _header_source(spec, 0)
        return header + "\n\n" + _scalar_callback(spec)
    nbytes = spec.state.itemsize + (1 if spec.init is not None else 0)
    parts = [_header_source(spec, nbytes)]
    if spec.init is not None:
        parts.append("def init_body(blob):\n    user_init(carray(blob, 1, STATE)[0])\n")
    parts.append(_row_callback(spec, "step"))
    parts.append(_result_callback(spec, "finalize"))
    if spec.is_window:
        parts.append(_row_callback(spec, "inverse"))
        parts.append(_result_callback(spec, "value"))
    if spec.is_mergeable:
        parts.append(_partial_callbacks(spec))
    return "\n\n".join(parts)


# --------------------------------------------------------------------------
# Compilation with numba's on-disk cache


def cache_dir() -> Path | None:
    """Return the directory for generated callback modules, or None if unwritable.

    ``FASTAGG_CACHE_DIR`` overrides the default ``~/.cache/fastagg``.
    """
    base = os.environ.get("FASTAGG_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "fastagg",
    )
    path = Path(base) / f"numba-{numba.__version__}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError:
        return None
    return path


class CompiledCallbacks:
    """The native callbacks of one aggregate or scalar function.

    SQLite holds raw pointers to these functions in every connection they
    are registered on, so they live for the rest of the process.
    """

    def __init__(self, spec: AggregateSpec | FunctionSpec, callbacks: dict):
        self.spec = spec
        self._callbacks = callbacks  # keeps the cfunc objects (and code) alive

    def address(self, method: str) -> int | None:
        """Return the C address of callback *method* or None."""
        cb = self._callbacks.get(method)
        return None if cb is None else cb.address

    @property
    def state_nbytes(self) -> int:
        """Bytes requested from ``sqlite3_aggregate_context`` per context."""
        return self.spec.state.itemsize + (1 if self.spec.init is not None else 0)


_compiled: dict[int, CompiledCallbacks] = {}
_compile_lock = threading.RLock()


def compile_spec(spec: AggregateSpec | FunctionSpec) -> CompiledCallbacks:
    """Return the compiled callbacks of *spec*, compiling once per process."""
    key = id(spec)
    with _compile_lock:
        done = _compiled.get(key)
        if done is not None and done.spec is spec:
            return done
        try:
            done = _compile(spec)
        except CompileError:
            raise
        except Exception as exc:  # numba raises its own errors and, internally, KeyError & co.
            what = "function" if isinstance(spec, FunctionSpec) else "aggregate"
            detail = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
            raise CompileError(
                f"{spec.qualname}: numba could not compile the {what} (every method "
                f"must be valid nopython code; an aggregate's `self` is the numpy "
                f"state record):\n{detail}"
            ) from exc
        _compiled[key] = done
        return done


def _runtime_fingerprint() -> str:
    """Hash fastagg's own runtime code, which generated callbacks compile in.

    numba keys a cached function on its own file only; without this a
    changed runtime helper would be served stale from the cache.
    """
    package = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for stage in ("compile", "native", "sqlite"):
        for path in sorted((package / stage).glob("*.py")):
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()


_RUNTIME_FINGERPRINT = _runtime_fingerprint()


def _load_module(spec: AggregateSpec | FunctionSpec):
    source = generate_source(spec)
    digest = hashlib.sha256(
        (source + spec.fingerprint() + numba.__version__ + _RUNTIME_FINGERPRINT).encode()
    ).hexdigest()[:20]
    modname = f"fastagg_callbacks_{spec.name.lower()}_{digest}"
    directory = cache_dir()
    cacheable = directory is not None
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="fastagg-"))
    path = directory / f"{modname}.py"
    if not path.exists():
        # Write once, atomically: numba's cache index is keyed on the file's
        # modification time, so rewriting it would invalidate the cache.
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(source)
        os.replace(tmp, path)
    module = sys.modules.get(modname)
    if module is None:
        loader_spec = importlib.util.spec_from_file_location(modname, path)
        module = importlib.util.module_from_spec(loader_spec)
        loader_spec.loader.exec_module(module)
        sys.modules[modname] = module
    return module, cacheable


def _user_methods(spec: AggregateSpec | FunctionSpec) -> dict[str, tuple]:
    """Map each generated body to (user function, name used in error messages)."""
    if isinstance(spec, FunctionSpec):
        return {"call": (spec.func, spec.qualname)}
    methods = {"step": (spec.step, "step"), "finalize": (spec.finalize, "finalize")}
    if spec.init is not None:
        methods["init"] = (spec.init, "__init__")
    if spec.is_window:
        methods["inverse"] = (spec.inverse, "inverse")
        methods["value"] = (spec.value, "value") if spec.value else (spec.finalize, "finalize")
    if spec.is_mergeable:
        methods["merge"] = (spec.merge, "merge")
        methods["load"] = (None, "merge")  # validation of the partial state: no user code
    return {k: (fn, f"{spec.qualname}.{label}") for k, (fn, label) in methods.items()}


def _importable(fn) -> bool:
    """Whether a later process can import *fn*'s module, as numba's cache needs."""
    module = sys.modules.get(getattr(fn, "__module__", None) or "")
    return module is not None and (module.__name__ == "__main__" or getattr(module, "__file__", None) is not None)


def _compile(spec: AggregateSpec | FunctionSpec) -> CompiledCallbacks:
    module, cacheable = _load_module(spec)
    # Code defined by exec() or in a module no later process can import
    # compiles every time: numba could not rebuild it from the cache.
    cacheable = cacheable and all(_importable(fn) for fn, _ in _user_methods(spec).values() if fn is not None)
    ns = module.__dict__
    if isinstance(spec, AggregateSpec):
        ns["STATE"] = spec.state
    jitted = {}
    for method, (fn, where) in _user_methods(spec).items():
        if fn is not None:
            if fn not in jitted:  # value defaults to finalize: one dispatcher
                jitted[fn] = njit(fn)
            ns[f"user_{method}"] = jitted[fn]
        ns[f"trap_{method}"] = make_trap(ns[f"{method}_body"], where)
    callbacks = {}
    for method in ("step", "finalize", "inverse", "value", "call", "partial_final", "merge_step"):
        if callable(ns.get(method)):
            sig = FINAL_SIG if method in ("finalize", "value", "partial_final") else STEP_SIG
            callbacks[method] = cfunc(sig, cache=cacheable)(ns[method])
    return CompiledCallbacks(spec, callbacks)
