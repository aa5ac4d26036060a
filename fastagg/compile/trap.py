"""Run user code inside a *trap*: its exceptions become the statement's SQL error.

A trap calls the user's compiled method with numba's internal calling
convention and inspects the error status instead of propagating it. On error
it takes the GIL, turns numba's exception into a Python one, and calls
:func:`report_callback_error`, which sets the message on the SQLite context
(``sqlite3_result_error``), failing the statement. The hot path never touches
the GIL. The front end raises :class:`fastagg.AggregateError` from
:func:`last_callback_error`.
"""

from __future__ import annotations

import functools
import threading

import llvmlite.ir as llir
from numba import types
from numba.core import cgutils, typing
from numba.extending import intrinsic

from ..sqlite import capi as _capi

__all__ = ["make_trap", "report_callback_error", "last_callback_error"]


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
    Calls ``sqlite3_result_error``.
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
