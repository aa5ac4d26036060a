"""WHERE and FILTER for the native engine: SQLite's three-valued logic over the column descriptors.

:func:`check_where` accepts comparisons of a column with a value (a
literal, a parameter, or a constant expression SQLite evaluates once, see
:mod:`.constants`): ``=``, ``==``, ``!=``, ``<>``, ``<``, ``<=``, ``>``,
``>=``; ``AND``, ``OR``, ``NOT``, ``IS [NOT] NULL``, ``BETWEEN`` and ``IN
(values)`` over integer, real, text, date and datetime columns.
:func:`where_mask` evaluates it over the registration's column
descriptors (:mod:`.columnar`, the buffers SQLite reads): each term is a
pair of masks (true, false); a row whose term is neither is NULL (NULL, and
NaN, which SQLite reads as NULL, compare as NULL; ``NOT NULL`` is NULL); a
row passes when the whole term is true. Values are taken only where
SQLite's comparison is exact and needs no affinity conversion: integers
with integral numbers, reals with numbers exactly representable as
doubles, text with text (BINARY: memcmp), dates and datetimes with text
(their text, ``YYYY-MM-DD[ HH:MM:SS[.ffffff]]``, sorts as their
microseconds for years 0000-9999, so a text bound becomes a microsecond
bound). Anything else raises :class:`NotInShape` and the statement runs on
SQLite.
"""

from __future__ import annotations

import numpy as np

from .constants import is_constant
from .kinds import FLOAT_KINDS, NUMERIC_KINDS, TEXT_KINDS, TIME_KINDS, NotInShape

__all__ = ["check_where", "where_mask", "where_values"]
_FLIP = {"EQ": "EQ", "NEQ": "NEQ", "LT": "GT", "LTE": "GTE", "GT": "LT", "GTE": "LTE"}
_OPS = {"EQ": np.equal, "NEQ": np.not_equal, "LT": np.less, "LTE": np.less_equal, "GT": np.greater,
        "GTE": np.greater_equal}


def _unparen(node):
    from sqlglot import exp

    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _is_value(node) -> bool:
    from sqlglot import exp

    node = _unparen(node)
    return isinstance(node, exp.Placeholder) or is_constant(node)


def check_where(node, columns, index, pushdown: bool = True) -> str | None:
    """Return why the engine cannot evaluate WHERE term *node*, or None.

    *pushdown*: a WHERE (the virtual table sees it and may scan an ``IN``
    one value at a time); False for a FILTER clause (SQLite evaluates it).
    """
    try:
        _walk(node, columns, index, None, pushdown)
    except NotInShape as exc:
        return str(exc)
    return None


def where_values(node) -> list:
    """The constant sub-expressions of term *node* (for :func:`.constants.evaluate`)."""
    from .constants import constant_nodes

    return constant_nodes(node)


def where_mask(node, columns, index, cols, nrows, params, constants) -> np.ndarray:
    """Boolean numpy mask of the table rows term *node* keeps.

    *cols* are the registration's column descriptors, *params* the
    statement's parameters, *constants* the values of its constants (SQL
    text -> value). Raises :class:`NotInShape` for a value whose comparison
    the engine does not reproduce exactly.
    """
    env = {"cols": cols, "n": nrows, "params": params, "positional": [0], "cache": {}, "constants": constants}
    true, _ = _walk(node, columns, index, env, False)
    return true


def _column(node, columns, index) -> int:
    from sqlglot import exp

    node = _unparen(node)
    if not isinstance(node, exp.Column):
        raise NotInShape(f"{node.sql()} is not a column")
    i = index.get(node.name.lower())
    if i is None:
        raise NotInShape(f"no column {node.name!r}")
    kind = columns[i].kind
    if kind not in NUMERIC_KINDS and kind not in TEXT_KINDS and kind not in TIME_KINDS:
        raise NotInShape(f"column {columns[i].name!r} is neither numeric, text, date nor datetime")
    return i


def _unknown(env):
    z = np.zeros(env["n"], bool)
    return z, z


def _walk(node, columns, index, env, pushdown):
    from sqlglot import exp

    node = _unparen(node)
    if isinstance(node, exp.Or) and env is None and pushdown:
        # SQLite turns an OR of equalities on one column into IN (below).
        seen = set()
        for term in node.find_all(exp.EQ):
            for side in (term.this, term.expression):
                side = _unparen(side)
                i = index.get(side.name.lower()) if isinstance(side, exp.Column) else None
                if i is not None and (columns[i].kind in NUMERIC_KINDS or i in seen):
                    raise NotInShape(f"{node.sql()}: OR over equalities on one column (SQLite may scan it as IN)")
                if i is not None:
                    seen.add(i)
    if isinstance(node, (exp.And, exp.Or)):
        lt, lf = _walk(node.this, columns, index, env, pushdown) or (None, None)
        rt, rf = _walk(node.expression, columns, index, env, pushdown) or (None, None)
        if env is None:
            return None
        if isinstance(node, exp.And):
            return lt & rt, lf | rf
        return lt | rt, lf & rf
    if isinstance(node, exp.Not):
        inner = _walk(node.this, columns, index, env, pushdown)
        if env is None:
            return None
        return inner[1], inner[0]
    if isinstance(node, exp.Is):
        if not isinstance(_unparen(node.expression), exp.Null):
            raise NotInShape(f"{node.sql()}: IS with a value other than NULL")
        i = _column(node.this, columns, index)
        if env is None:
            return None
        null = _null(env, i)
        return null, ~null
    name = type(node).__name__.upper()
    if name in _OPS:
        left, right = node.this, node.expression
        op = name
        if _is_value(left) and not _is_value(right):
            left, right, op = right, left, _FLIP[op]
        if not _is_value(right):
            raise NotInShape(f"{node.sql()} does not compare a column with a value")
        i = _column(left, columns, index)
        if env is None:
            return None
        return _compare(env, i, columns, op, _value(env, right, columns[i].kind))
    if isinstance(node, exp.Between):
        i = _column(node.this, columns, index)
        for bound in (node.args["low"], node.args["high"]):
            if not _is_value(bound):
                raise NotInShape(f"{node.sql()}: a BETWEEN bound is not a value")
        if env is None:
            return None
        kind = columns[i].kind
        lt, lf = _compare(env, i, columns, "GTE", _value(env, node.args["low"], kind))
        ht, hf = _compare(env, i, columns, "LTE", _value(env, node.args["high"], kind))
        return lt & ht, lf | hf
    if isinstance(node, exp.In):
        if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
            raise NotInShape(f"{node.sql()}: IN over a subquery")
        i = _column(node.this, columns, index)
        if pushdown:
            # The virtual table answers IN by one probe (or scan) per value: SQLite's
            # sums then see rows in another order than the frame's.
            raise NotInShape(f"{node.sql()}: IN in WHERE (the virtual table probes it one value at a time)")
        items = node.expressions
        if not items:
            raise NotInShape(f"{node.sql()}: empty IN list")
        for item in items:
            if not is_constant(_unparen(item)) or isinstance(_unparen(item), exp.Null):
                raise NotInShape(f"{node.sql()}: IN list items must be non-NULL constants")
        if env is None:
            return None
        kind = columns[i].kind
        true = np.zeros(env["n"], bool)
        have_null = False
        for item in items:
            value = _value(env, item, kind)
            if value is None:
                have_null = True
                continue
            t, _ = _compare(env, i, columns, "EQ", value)
            true |= t
        null = _null(env, i)
        false = ~true & ~null
        if have_null:
            false[:] = False
        return true, false
    raise NotInShape(f"{node.sql()} ({type(node).__name__})")


def _null(env, i):
    key = ("null", i)
    cache = env["cache"]
    if key not in cache:
        from .columnar import null_mask

        cache[key] = null_mask(env["cols"][i], env["n"]).view(bool)
    return cache[key]


def _numbers(env, i, columns):
    """Column *i* as (int64 or float64 values, NULL mask) over all rows."""
    key = ("num", i)
    cache = env["cache"]
    if key not in cache:
        from . import kernels

        rows = np.arange(env["n"], dtype=np.int64)
        fn = kernels.column_f64 if columns[i].kind in FLOAT_KINDS else kernels.column_i64
        values, null = fn(env["cols"][i], rows)
        cache[key] = values, null.view(bool)
    return cache[key]


def _micros(env, i, columns):
    """Column *i* (date / datetime) as (values, NULL mask, microseconds per unit of the values)."""
    key = ("us", i)
    cache = env["cache"]
    if key not in cache:
        c = columns[i]
        if c.kind == TIME_KINDS_DATE and c.validity_kind == 0 and c.codes == 0 and c.data and c.nrows:
            # A plain date32 buffer: its day counts, zero-copy.
            import ctypes

            days = np.frombuffer((ctypes.c_char * (4 * c.nrows)).from_address(c.data), np.int32)
            cache[key] = days, np.zeros(len(days), bool), 86400000000
        else:
            from .columnar import column_micros

            values, null = column_micros(env["cols"][i], env["n"])
            cache[key] = values, null.view(bool), 1
    return cache[key]


#: Microseconds of 0000-01-01 and of the end of 9999-12-31: the years whose text has four digits.
_MIN_US = -719528 * 86400000000
_MAX_US = (2932896 + 1) * 86400000000 - 1


def _first_over(text: bytes, with_time: bool, strict: bool) -> int:
    """The least microsecond count whose text is > *text* (*strict*) or >= *text*, in [_MIN_US, _MAX_US + 1]."""
    from .columnar import render_micros

    lo, hi = _MIN_US, _MAX_US + 1
    while lo < hi:
        mid = (lo + hi) // 2
        shown = bytes(render_micros(mid, with_time))
        if shown > text or (not strict and shown == text):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _compare(env, i, columns, op, value):
    if value is None:
        return _unknown(env)
    kind = columns[i].kind
    if kind in TEXT_KINDS:
        from .columnar import compare_text

        cmp, null = compare_text(env["cols"][i], env["n"], np.frombuffer(value, np.uint8))
        c = _OPS[op](cmp, 0)
        valid = null == 0
        return c & valid, ~c & valid
    if kind in TIME_KINDS:
        with_time = kind != TIME_KINDS_DATE
        below = _first_over(value, with_time, False)  # text(m) < value  <=>  m < below
        upto = _first_over(value, with_time, True)  # text(m) <= value  <=>  m < upto
        micros, null, scale = _micros(env, i, columns)
        if scale != 1:
            # Plain days: compare days with the bounds' day counts (m < b  <=>  days < ceil(b / scale)).
            below, upto = -(-below // scale), -(-upto // scale)
        from .columnar import compare_bounds

        # One pass: both masks and the valid values' range (bounds clamped to int64: the values are).
        clamp = lambda b: max(-(2**63), min(2**63 - 1, int(b)))  # noqa: E731
        true, false, lo, hi, have = compare_bounds(micros, null.view(np.uint8), clamp(below), clamp(upto),
                                                   _BOUND_OPS[op])
        if have and (lo < _MIN_US // scale or hi > _MAX_US // scale):
            raise NotInShape(f"column {columns[i].name!r} holds a year outside 0000-9999")
        return true.view(bool), false.view(bool)
    values, null = _numbers(env, i, columns)
    c = _OPS[op](values, value)
    valid = ~null
    return c & valid, ~c & valid


TIME_KINDS_DATE = 17  # K_DATE32: rendered without a time

#: Opcodes of :func:`.columnar.compare_bounds`.
_BOUND_OPS = {"EQ": 0, "NEQ": 1, "LT": 2, "LTE": 3, "GT": 4, "GTE": 5}


def _value(env, node, kind):
    """The Python value of value *node* (a parameter or a constant), checked against a column of *kind*.

    Text and time columns get UTF-8 bytes; numeric columns an int or a float.
    """
    from sqlglot import exp

    node = _unparen(node)
    if isinstance(node, exp.Placeholder):
        value = _param(env, node)
    else:
        from ..registry import dialect

        value = env["constants"][node.sql(dialect=dialect())]
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        value = int(value)
    if isinstance(value, np.integer):
        value = int(value)
    if isinstance(value, np.floating):
        value = float(value)
    if kind in TEXT_KINDS or kind in TIME_KINDS:
        if not isinstance(value, str):
            raise NotInShape(f"a text column compared with {value!r}")
        try:
            return value.encode("utf-8")
        except UnicodeError:
            raise NotInShape("text that is not valid UTF-8") from None
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise NotInShape(f"{value} is outside int64")
        if kind in FLOAT_KINDS:
            if abs(value) > 2**53:
                raise NotInShape(f"{value} has no exact double")
            return float(value)
        return value
    if isinstance(value, float):
        if kind in FLOAT_KINDS:
            return value
        if value.is_integer() and -(2.0**63) <= value < 2.0**63:
            return int(value)
        raise NotInShape(f"an integer column compared with the real {value!r}")
    raise NotInShape(f"a numeric column compared with {type(value).__name__}")


def _param(env, node):
    params = env["params"]
    name = node.name if node.this is not None else ""
    if isinstance(params, dict) or hasattr(params, "keys"):
        if not name or name.isdigit() or name not in params:
            raise NotInShape(f"parameter {node.sql()} is not in the mapping")
        return params[name]
    if params is None:
        raise NotInShape("a parameter without params")
    if name and not name.isdigit():
        raise NotInShape(f"named parameter {node.sql()} with positional params")
    if name:
        position = int(name) - 1
    else:
        position = env["positional"][0]
        env["positional"][0] += 1
    if not 0 <= position < len(params):
        raise NotInShape("fewer params than parameters")
    return params[position]
