"""WHERE for the native engine: SQLite's three-valued logic over Arrow columns.

:func:`check_where` accepts comparisons of a column with a literal or a
parameter (``=``, ``==``, ``!=``, ``<>``, ``<``, ``<=``, ``>``, ``>=``),
``AND``, ``OR``, ``NOT``, ``IS [NOT] NULL``, ``BETWEEN`` and ``IN (literals)``
over integer, real and text columns. :func:`where_mask` evaluates it with
pyarrow's Kleene kernels: NULL (and NaN, which SQLite reads as NULL) compares
as NULL, ``NOT NULL`` is NULL, and a row passes only when the whole term is
true. Values are taken only where SQLite's comparison is exact and needs no
affinity conversion: integers with integral numbers, reals with numbers
exactly representable as doubles, text with text (BINARY: byte order, which
for UTF-8 is Arrow's order). Anything else raises :class:`NotInShape` and
the statement runs on SQLite.
"""

from __future__ import annotations

import numpy as np

from .kinds import FLOAT_KINDS, NUMERIC_KINDS, TEXT_KINDS, NotInShape

__all__ = ["check_where", "where_mask"]
_FLIP = {"EQ": "EQ", "NEQ": "NEQ", "LT": "GT", "LTE": "GTE", "GT": "LT", "GTE": "LTE"}
_PC = {"EQ": "equal", "NEQ": "not_equal", "LT": "less", "LTE": "less_equal", "GT": "greater", "GTE": "greater_equal"}


def _unparen(node):
    from sqlglot import exp

    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _is_value(node) -> bool:
    from sqlglot import exp

    node = _unparen(node)
    if isinstance(node, exp.Neg):
        node = _unparen(node.this)
        return isinstance(node, exp.Literal) and not node.is_string
    return isinstance(node, (exp.Literal, exp.Placeholder, exp.Null, exp.Boolean))


def check_where(node, columns, index) -> str | None:
    """Return why the engine cannot evaluate WHERE term *node*, or None."""
    try:
        _walk(node, columns, index, None)
    except NotInShape as exc:
        return str(exc)
    return None


def where_mask(node, columns, index, column_array, params) -> np.ndarray:
    """Boolean numpy mask of the rows WHERE term *node* keeps.

    *column_array(i)* returns column *i* as a pyarrow array; *params* are
    the statement's parameters. Raises :class:`NotInShape` for a value whose
    comparison the engine does not reproduce exactly.
    """
    import pyarrow.compute as pc

    env = {"array": column_array, "params": params, "positional": [0], "cache": {}}
    mask = _walk(node, columns, index, env)
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _column(node, columns, index) -> int:
    from sqlglot import exp

    node = _unparen(node)
    if not isinstance(node, exp.Column):
        raise NotInShape(f"{node.sql()} is not a column")
    i = index.get(node.name.lower())
    if i is None:
        raise NotInShape(f"no column {node.name!r}")
    kind = columns[i].kind
    if kind not in NUMERIC_KINDS and kind not in TEXT_KINDS:
        raise NotInShape(f"column {columns[i].name!r} is neither numeric nor text")
    return i


def _walk(node, columns, index, env):
    from sqlglot import exp

    node = _unparen(node)
    if isinstance(node, exp.Or) and env is None:
        # SQLite turns an OR of equalities on one column into IN (below).
        for term in node.find_all(exp.EQ):
            for side in (term.this, term.expression):
                side = _unparen(side)
                if isinstance(side, exp.Column) and index.get(side.name.lower()) is not None \
                        and columns[index[side.name.lower()]].kind in NUMERIC_KINDS:
                    raise NotInShape(f"{node.sql()}: OR over an equality on a numeric column (SQLite may scan it as IN)")
    if isinstance(node, (exp.And, exp.Or)):
        left = _walk(node.this, columns, index, env)
        right = _walk(node.expression, columns, index, env)
        if env is None:
            return None
        import pyarrow.compute as pc

        return (pc.and_kleene if isinstance(node, exp.And) else pc.or_kleene)(left, right)
    if isinstance(node, exp.Not):
        inner = _walk(node.this, columns, index, env)
        if env is None:
            return None
        import pyarrow.compute as pc

        return pc.invert(inner)
    if isinstance(node, exp.Is):
        if not isinstance(_unparen(node.expression), exp.Null):
            raise NotInShape(f"{node.sql()}: IS with a value other than NULL")
        i = _column(node.this, columns, index)
        if env is None:
            return None
        import pyarrow.compute as pc

        return pc.is_null(_array(env, i, columns))
    name = type(node).__name__.upper()
    if name in _PC:
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
        import pyarrow.compute as pc

        kind = columns[i].kind
        low = _compare(env, i, columns, "GTE", _value(env, node.args["low"], kind))
        high = _compare(env, i, columns, "LTE", _value(env, node.args["high"], kind))
        return pc.and_kleene(low, high)
    if isinstance(node, exp.In):
        if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
            raise NotInShape(f"{node.sql()}: IN over a subquery")
        i = _column(node.this, columns, index)
        if columns[i].kind in NUMERIC_KINDS:
            # The virtual table takes IN on a number as one scan per value: SQLite's
            # sums then see rows in another order than the frame's.
            raise NotInShape(f"{node.sql()}: IN on a numeric column")
        items = node.expressions
        if not items:
            raise NotInShape(f"{node.sql()}: empty IN list")
        for item in items:
            if not isinstance(_unparen(item), exp.Literal) and not (
                isinstance(_unparen(item), exp.Neg) and _is_value(item)
            ):
                raise NotInShape(f"{node.sql()}: IN list items must be non-NULL literals")
        if env is None:
            return None
        import pyarrow as pa
        import pyarrow.compute as pc

        kind = columns[i].kind
        values = [_value(env, item, kind) for item in items]
        column = _array(env, i, columns)
        found = pc.is_in(column, value_set=pa.array(values, type=column.type))
        return pc.if_else(pc.is_null(column), pa.scalar(None, pa.bool_()), found)
    raise NotInShape(f"{node.sql()} ({type(node).__name__})")


def _array(env, i, columns):
    cache = env["cache"]
    if i not in cache:
        import pyarrow as pa
        import pyarrow.compute as pc

        arr = env["array"](i)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        kind = columns[i].kind
        if kind in FLOAT_KINDS:
            arr = arr.cast(pa.float64())
            arr = pc.if_else(pc.is_nan(arr), pa.scalar(None, pa.float64()), arr)
        elif kind in NUMERIC_KINDS:
            arr = arr.cast(pa.int64())
        elif pa.types.is_large_string(arr.type):
            pass
        else:
            arr = arr.cast(pa.string())
        cache[i] = arr
    return cache[i]


def _value(env, node, kind):
    """The Python value of literal / parameter *node*, checked against a column of *kind*."""
    from sqlglot import exp

    node = _unparen(node)
    negate = False
    if isinstance(node, exp.Neg):
        negate, node = True, _unparen(node.this)
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Boolean):
        value = 1 if node.this else 0
    elif isinstance(node, exp.Literal):
        text = node.this
        if node.is_string:
            value = text
        else:
            try:
                value = int(text, 0) if text.lower().startswith("0x") else int(text)
            except ValueError:
                value = float(text)
    else:
        value = _param(env, node)
    if negate:
        value = -value
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        value = int(value)
    if isinstance(value, np.integer):
        value = int(value)
    if isinstance(value, np.floating):
        value = float(value)
    if kind in TEXT_KINDS:
        if not isinstance(value, str):
            raise NotInShape(f"a text column compared with {value!r}")
        return value
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


def _compare(env, i, columns, op, value):
    import pyarrow as pa
    import pyarrow.compute as pc

    column = _array(env, i, columns)
    if value is None:
        return pa.nulls(len(column), pa.bool_())
    return getattr(pc, _PC[op])(column, pa.scalar(value, type=column.type))
