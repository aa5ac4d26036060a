"""Arithmetic in aggregate arguments: ``sum(price * (1 - discount))`` with SQLite's semantics.

An argument is a numeric column, a constant (:mod:`.constants`) or ``+``,
``-``, ``*``, ``/`` and unary minus over arguments. :func:`parse` turns a
sqlglot argument into an :class:`Expr` (or a plain column index);
:func:`evaluate` computes it over the statement's rows as SQLite's VDBE
does (``OP_Add`` ... in vdbe.c):

- NULL in either operand gives NULL;
- INTEGER op INTEGER stays INTEGER; ``/`` truncates toward zero, division
  by zero is NULL; an overflow of ``+ - *`` (or ``MIN / -1``) would make that
  row REAL: the engine does not reproduce mixed rows and gives up
  (:class:`NotInShape`, the statement runs on SQLite);
- anything with a REAL is computed in doubles, one IEEE operation per
  operator, as SQLite does; division by zero and a NaN result are NULL;
- unary minus of a non-literal is ``0 - x`` (so ``-(0.0)`` is ``0.0``), as
  SQLite codes it.

Values are float64 with NaN for NULL (REAL) or int64 with a NULL mask
(INTEGER).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .constants import is_constant
from .kinds import FLOAT_KINDS, NUMERIC_KINDS, NotInShape

__all__ = ["Expr", "parse", "evaluate", "constants_of"]

INT64_MIN = np.int64(np.iinfo(np.int64).min)


@dataclasses.dataclass(frozen=True)
class Expr:
    """An argument expression: ``op`` is "const" (``args`` = (SQL text,)), "neg", "add", "sub", "mul", "div"
    (``args`` = operand Exprs or column indices)."""

    op: str
    args: tuple

    def columns(self):
        for a in self.args:
            if isinstance(a, Expr):
                yield from a.columns()
            elif self.op != "const":
                yield a


_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div"}


def parse(node, column_of, columns, where: str):
    """Column index or :class:`Expr` of argument *node*; raises NotInShape outside the arithmetic shape."""
    from sqlglot import exp

    from ..registry import dialect

    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Column):
        i = column_of(node)
        if columns[i].kind not in NUMERIC_KINDS:
            raise NotInShape(f"argument {columns[i].name!r} of {where} is not a numeric column")
        return i
    if is_constant(node):
        if isinstance(node, exp.Literal) and node.is_string:
            raise NotInShape(f"text {node.sql()} in {where}'s arithmetic (SQLite converts it)")
        return Expr("const", (node.sql(dialect=dialect()),))
    if isinstance(node, exp.Neg):
        return Expr("neg", (parse(node.this, column_of, columns, where),))
    op = _BINARY.get(type(node).__name__)
    if op is None:
        raise NotInShape(f"argument {node.sql()} of {where} is not a column or arithmetic (+ - * /) of columns")
    return Expr(op, (parse(node.this, column_of, columns, where), parse(node.expression, column_of, columns, where)))


def constants_of(expr, out: list) -> None:
    """Append the SQL texts of *expr*'s constants to *out*."""
    if isinstance(expr, Expr):
        if expr.op == "const":
            out.append(expr.args[0])
        else:
            for a in expr.args:
                constants_of(a, out)


# A value: ("int", int64 array, NULL mask) | ("real", float64 array, NaN = NULL) | ("null",)
# | ("cint", int) | ("creal", float) -- the last two constants, not yet broadcast.


#: Rows per block: numpy's temporaries stay in cache instead of costing a fresh array per operator.
BLOCK = 1 << 16


def evaluate(expr, n, load, constants):
    """*expr* over *n* rows: ("int", values, null) or ("real", values with NaN for NULL) or ("null",).

    *load(i)* gives column *i* at the rows (``("int", values, null)`` or
    ``("real", values)``); *constants* maps a constant's SQL text to its value.
    Evaluated a block of rows at a time (the operators are row-wise).
    """
    if n <= BLOCK:
        return _evaluate(expr, n, load, constants)
    fused = _evaluate_real(expr, n, load, constants)
    if fused is not None:
        return fused
    columns = {}

    def column(i):
        if i not in columns:
            columns[i] = load(i)
        return columns[i]

    first = None
    for lo in range(0, n, BLOCK):
        hi = min(n, lo + BLOCK)
        part = _evaluate(expr, hi - lo, lambda i: tuple(a if isinstance(a, str) else a[lo:hi] for a in column(i)),
                         constants)
        if first is None:
            first = part
            if part[0] == "null":
                return part
            out = tuple(np.empty(n, a.dtype) if not isinstance(a, str) else a for a in part)
        for o, a in zip(out[1:], part[1:]):
            o[lo:hi] = a
    return out


def _evaluate(expr, n, load, constants):
    v = _eval(expr, load, constants)
    if v[0] == "cint":
        return "int", np.full(n, v[1], np.int64), np.zeros(n, bool)
    if v[0] == "creal":
        return "real", np.full(n, v[1], np.float64)
    return v


def _eval(expr, load, constants):
    if not isinstance(expr, Expr):
        return load(expr)
    if expr.op == "const":
        value = constants[expr.args[0]]
        if value is None:
            return ("null",)
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, int):
            return "cint", value
        if isinstance(value, float):
            return ("null",) if np.isnan(value) else ("creal", value)
        raise NotInShape(f"a {type(value).__name__} constant in arithmetic (SQLite would convert it)")
    if expr.op == "neg":
        return _binary("sub", ("cint", 0), _eval(expr.args[0], load, constants))
    return _binary(expr.op, _eval(expr.args[0], load, constants), _eval(expr.args[1], load, constants))


def _real(v):
    kind = v[0]
    if kind == "real":
        return v[1]
    if kind == "creal":
        return np.float64(v[1])
    if kind == "cint":
        return np.float64(v[1])
    values, null = v[1], v[2]
    out = values.astype(np.float64)
    if null.any():
        out[null] = np.nan
    return out


def _binary(op, a, b):
    if a[0] == "null" or b[0] == "null":
        return ("null",)
    ints = a[0] in ("int", "cint") and b[0] in ("int", "cint")
    if ints:
        if a[0] == "cint" and b[0] == "cint":
            return _const_int(op, a[1], b[1])
        return _int_math(op, a, b)
    x, y = _real(a), _real(b)
    with np.errstate(all="ignore"):
        if op == "add":
            r = x + y
        elif op == "sub":
            r = x - y
        elif op == "mul":
            r = x * y
        else:
            r = np.where(y == 0.0, np.nan, x / np.where(y == 0.0, 1.0, y))
    if np.ndim(r) == 0:
        r = float(r)
        return ("null",) if np.isnan(r) else ("creal", r)
    return "real", r


def _const_int(op, x, y):
    if op == "div":
        if y == 0:
            return ("null",)
        q = abs(x) // abs(y)
        r = q if (x >= 0) == (y >= 0) else -q
    else:
        r = x + y if op == "add" else x - y if op == "sub" else x * y
    if not -(2**63) <= r < 2**63:
        raise NotInShape("integer overflow in an argument's arithmetic (SQLite makes it REAL)")
    return "cint", r


def _int_math(op, a, b):
    def parts(v):
        if v[0] == "cint":
            return np.int64(v[1]), False
        return v[1], v[2]

    x, xn = parts(a)
    y, yn = parts(b)
    null = np.logical_or(xn, yn)
    if np.ndim(null) == 0:
        null = np.zeros(len(x) if np.ndim(x) else len(y), bool)
    valid = ~null
    with np.errstate(all="ignore"):
        if op == "add":
            r = np.add(x, y)
            bad = ((x ^ r) & (y ^ r)) < 0
        elif op == "sub":
            r = np.subtract(x, y)
            bad = ((x ^ y) & (x ^ r)) < 0
        elif op == "mul":
            r = np.multiply(x, y)
            safe = np.where(x == 0, 1, x)
            bad = (x != 0) & ((r // safe != y) | ((x == -1) & (y == INT64_MIN)))
        else:
            zero = y == 0
            null = null | zero
            valid = ~null
            safe = np.where(zero, 1, y)
            bad = (x == INT64_MIN) & (safe == -1)
            q = np.floor_divide(x, np.where(bad, 1, safe))
            # numpy floors; SQLite (C) truncates toward zero.
            fix = (np.remainder(x, np.where(bad, 1, safe)) != 0) & ((x < 0) != (safe < 0))
            r = q + fix
    if np.any(bad & valid):
        raise NotInShape("integer overflow in an argument's arithmetic (SQLite makes those rows REAL)")
    r = np.asarray(r, np.int64)
    if r.ndim == 0:
        r = np.full(len(null), r, np.int64)
    return "int", r, null


def kind_of(column_kind) -> str:
    return "real" if column_kind in FLOAT_KINDS else "int"


# --------------------------------------------------------------------------
# All-REAL arithmetic in one compiled pass

# Opcodes of :func:`.kernels.run_real`.
_PUSH, _CONST, _ADD, _SUB, _MUL, _DIV = 0, 1, 2, 3, 4, 5
_OPCODE = {"add": _ADD, "sub": _SUB, "mul": _MUL, "div": _DIV}


def _evaluate_real(expr, n, load, constants):
    """*expr* in one compiled pass when every column in it is REAL (``sum(price * (1 - discount))``), else None.

    Each operator is one IEEE double operation, as in :func:`_binary`'s REAL
    branch (NaN is NULL and propagates; ``x / 0.0`` is NULL); sub-expressions
    without a column are folded by :func:`_eval` first, so integer constant
    arithmetic keeps its own rules. Evaluated 256 rows at a time on a small
    stack of blocks, without numpy temporaries.
    """
    ops, operands, consts, arrays = [], [], [], []
    slots = {}

    def emit(e):
        if not isinstance(e, Expr) or (e.op != "const" and next(e.columns(), None) is not None):
            if not isinstance(e, Expr):
                if e not in slots:
                    v = load(e)
                    if v[0] != "real":
                        return False
                    slots[e] = len(arrays)
                    arrays.append(np.ascontiguousarray(v[1], dtype=np.float64))
                ops.append(_PUSH)
                operands.append(slots[e])
                return True
            if e.op == "neg":  # 0 - x, as SQLite codes it
                ops.append(_CONST)
                operands.append(len(consts))
                consts.append(0.0)
                if not emit(e.args[0]):
                    return False
                ops.append(_SUB)
                operands.append(0)
                return True
            if not (emit(e.args[0]) and emit(e.args[1])):
                return False
            ops.append(_OPCODE[e.op])
            operands.append(0)
            return True
        v = _eval(e, load, constants)  # no column: folded with the general rules
        if v[0] not in ("cint", "creal"):
            return False
        ops.append(_CONST)
        operands.append(len(consts))
        consts.append(float(np.float64(v[1])))
        return True

    if not isinstance(expr, Expr) or not emit(expr) or not arrays:
        return None
    depth = 0
    sp = 0
    for op in ops:
        sp += 1 if op in (_PUSH, _CONST) else -1
        depth = max(depth, sp)
    from .kernels import run_real

    out = np.empty(n, np.float64)
    run_real(np.array(ops, np.int64), np.array(operands, np.int64), np.array(consts, np.float64),
              np.array([a.ctypes.data for a in arrays], np.int64), depth, out)
    return "real", out
