"""Constant SQL expressions in the native engine's shape, evaluated once by SQLite itself.

A WHERE / FILTER operand or a term of an aggregate's argument that names
no column (``0.06 - 0.01``, ``date('1998-12-01', '-90 days')``, a literal)
is a constant: SQLite computes it once per statement too. The engine asks
SQLite for all of a statement's constants in one ``SELECT`` on the
session's connection (:func:`evaluate`), so literals are parsed and
functions computed by the very SQLite that answers the statement.
Parameters are not constants here (they are bound values, read from
``params``).
"""

from __future__ import annotations

__all__ = ["CONSTANT_FUNCTIONS", "is_constant", "evaluate", "constant_nodes"]

#: Deterministic scalar functions a constant may call (no ``min``/``max``:
#: with one argument they are aggregates).
CONSTANT_FUNCTIONS = frozenset({
    "date", "time", "datetime", "julianday", "strftime", "unixepoch", "abs", "round", "lower", "upper",
    "substr", "substring", "length", "coalesce", "ifnull", "nullif", "trim", "ltrim", "rtrim", "replace",
    "hex", "iif", "instr", "printf", "format", "sign",
})


def is_constant(node) -> bool:
    """Whether sqlglot expression *node* is a constant the engine hands to SQLite to evaluate."""
    from sqlglot import exp

    if isinstance(node, (exp.Literal, exp.Null, exp.Boolean)):
        return True
    if isinstance(node, (exp.Paren, exp.Neg)):
        return is_constant(node.this)
    if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.DPipe)):
        return is_constant(node.this) and is_constant(node.expression)
    if isinstance(node, exp.Anonymous) and node.name.lower() in CONSTANT_FUNCTIONS:
        for arg in node.expressions:
            if not is_constant(arg):
                return False
            if isinstance(arg, exp.Literal) and arg.is_string and arg.this.strip().lower() in ("now", "localtime", "utc"):
                return False  # the time of the statement, or the session's time zone: SQLite's alone
        return True
    return False


def constant_nodes(tree) -> list:
    """The outermost constant sub-expressions of *tree* (without descending into them)."""
    found = []

    def walk(node):
        from sqlglot import exp

        if not isinstance(node, exp.Expression):
            return
        if is_constant(node):
            found.append(node)
            return
        for child in node.iter_expressions():
            walk(child)

    walk(tree)
    return found


def evaluate(con, texts) -> dict:
    """SQL text -> Python value of each constant (SQL texts *texts*), from one ``SELECT`` on *con*.

    Raises
    ------
    NotInShape
        SQLite refused one of them (the statement then runs on SQLite,
        which reports it).
    """
    import sqlite3

    from .kinds import NotInShape

    texts = list(dict.fromkeys(texts))
    if not texts:
        return {}
    try:
        row = con.execute("SELECT " + ", ".join(f"({t}), typeof({t})" for t in texts)).fetchone()
    except (sqlite3.Error, OverflowError, ValueError) as exc:
        raise NotInShape(f"SQLite does not evaluate a constant ({exc})") from None
    values = {}
    for k, text in enumerate(texts):
        value, kind = row[2 * k], row[2 * k + 1]
        if kind == "text" and not isinstance(value, str):
            # A caller's connection with another text_factory: SQLite's text is UTF-8.
            try:
                value = bytes(value).decode("utf-8")
            except (TypeError, UnicodeDecodeError):
                raise NotInShape("a constant's text is not UTF-8") from None
        elif kind == "blob":
            value = bytes(value)
        values[text] = value
    return values
