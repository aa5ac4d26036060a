"""Is a statement in the native engine's shape? Parse it with sqlglot and say why not.

The native engine (:mod:`.grouped`) runs ``SELECT keys, aggregates FROM
frame [WHERE ...] [GROUP BY keys]`` in compiled code over the frame's column
buffers, then lets SQLite finish whatever comes after grouping (``HAVING``,
``ORDER BY``, ``LIMIT``, expressions over aggregates, aliases) over the small
grouped result registered as a table. :func:`analyse` decides, from the
statement alone and the registered frames' columns, whether that applies; it
returns a :class:`Plan` or the first construct it does not handle, which
:func:`fastagg.explain` reports. Imports no numba.

In the shape:

- one ``SELECT`` (no ``DISTINCT``, CTE, join, subquery, window, compound)
  over one frame registered in the session;
- ``GROUP BY`` plain columns of the frame (or none), of integer, real, bool,
  text, blob, date or datetime columns;
- the select list, ``HAVING`` and ``ORDER BY``: key columns, literals,
  arithmetic / comparisons / a few scalar functions, and aggregate calls
  whose arguments are numeric columns, constants or ``+ - * /`` of them
  (:mod:`.expr`), or ``*`` for ``count``: fastagg aggregates given to the
  query or built in (numeric arguments and results, or a numeric plain
  form, see :func:`plain_form`; an integer argument takes only an integer
  column or literal), and SQLite's
  ``count``, ``sum``, ``total``, ``avg``, ``min``, ``max`` (``min``/``max``
  also of a text or blob column), each with an optional ``FILTER (WHERE
  ...)`` of the WHERE forms; parameters only in ``WHERE`` and ``FILTER``;
- ``WHERE``: comparisons of a column with a literal, a parameter or a
  constant expression, ``AND``, ``OR``, ``NOT``, ``IS [NOT] NULL``,
  ``BETWEEN``, ``IN (constants)`` (checked against the column's type by
  :mod:`.predicate`).

When the rest of the statement is a plain projection of keys and
aggregates in the groups' order (no ``HAVING``, ``ORDER BY`` only the GROUP
BY keys ascending, an optional constant ``LIMIT``/``OFFSET``), the plan is
*direct*: the engine builds the result itself instead of handing the
grouped table to SQLite.
"""

from __future__ import annotations

import dataclasses
import sqlite3

from .kinds import FLOAT_KINDS, KEY_KINDS, NUMERIC_KINDS, TEXT_KINDS, NotInShape  # noqa: F401 - re-exported

__all__ = ["Aggregate", "Plan", "analyse", "SQLITE_AGGREGATES"]

#: SQLite's aggregates the engine runs itself (name -> accepted argument counts).
SQLITE_AGGREGATES = {"count": (0, 1), "sum": (1,), "total": (1,), "avg": (1,), "min": (1,), "max": (1,)}

#: SQLite >= 3.43 sums with Kahan-Babuska-Neumaier compensation (and an
#: all-integer sum exactly): the engine then sums as :mod:`.kbn` does, before
#: in plain row order as SQLite does (:mod:`.kernels`).
KBN_SUMMATION = sqlite3.sqlite_version_info >= (3, 43, 0)

#: Scalar functions SQLite evaluates over the grouped result (deterministic,
#: not aggregates in any arity).
_OUTER_FUNCTIONS = {"round", "abs", "coalesce", "ifnull", "nullif", "iif", "typeof", "sqrt", "length",
                    "upper", "lower", "cast", "max", "min"}



@dataclasses.dataclass(frozen=True)
class Aggregate:
    """One aggregate call: ``name`` is SQLite's (``count``...) or a spec's; ``args`` column indices."""

    name: str
    args: tuple  # column indices or expr.Expr; () for count(*)
    spec: object = None  # AggregateSpec, or None for SQLite's own
    filter: str | None = None  # SQL text of FILTER (WHERE ...), a key of Plan.filters


@dataclasses.dataclass
class Plan:
    """A statement the native engine runs: what to compute and the SQL that finishes it."""

    table: str  # registered name, as in the session
    keys: tuple[int, ...]  # column indices, GROUP BY order
    aggregates: list[Aggregate]
    where: object  # sqlglot expression or None
    outer: object  # sqlglot Select over the grouped table (FROM filled in by the engine)
    grouped: bool
    filters: dict = dataclasses.field(default_factory=dict)  # FILTER SQL text -> sqlglot condition
    constants: list = dataclasses.field(default_factory=list)  # SQL texts SQLite evaluates once
    direct: list | None = None  # [("key", column index) | ("agg", slot)] when the engine builds the result
    limit: int | None = None  # direct plans: LIMIT / OFFSET
    offset: int = 0


def analyse(sql: str, tables: dict, specs) -> Plan | str:
    """Return a :class:`Plan` for *sql*, or the reason it runs on SQLite.

    Parameters
    ----------
    sql : str
    tables : dict
        Registered name -> list of :class:`fastagg.table.Column` (their
        ``name`` and ``kind``).
    specs : list
        The specs registered for the query (aggregates and functions).
    """
    try:
        return _analyse(sql, tables, specs)
    except NotInShape as exc:
        return str(exc)


def _fail(reason: str):
    raise NotInShape(reason)


def _literal_number(node):
    """The int or float of a numeric literal node (``0.9``, ``-1``), else None."""
    from sqlglot import exp

    sign = 1
    if isinstance(node, exp.Neg):
        node, sign = node.this, -1
    if not isinstance(node, exp.Literal) or node.is_string:
        return None
    text = node.this
    try:
        if text.isdigit():
            value = int(text)
            return sign * value if value < 2**63 else None
        return sign * float(text)
    except ValueError:
        return None


def plain_form(spec, kinds):
    """The spec the engine runs for *spec* called with arguments of *kinds* ("int", "float" or None).

    An aggregate class may name a plain form of itself,
    ``cls.__fastagg_plain_form__(kinds) -> class or None``: a class with
    numeric arguments and result that gives the same answers over such
    arguments without the window form's state (the built-ins taking
    ``fastagg.Value`` have one). SQLite keeps running *spec* itself.
    """
    from ..compile.spec import spec_of

    hook = getattr(spec.cls, "__fastagg_plain_form__", None)
    if hook is None or None in kinds:
        return spec
    cls = hook(tuple(kinds))
    return spec if cls is None else spec_of(cls)


def _analyse(sql, tables, specs) -> Plan:
    import sqlglot
    from sqlglot import exp

    from ..compile.spec import AggregateSpec, FunctionSpec
    from ..registry import dialect

    try:
        trees = [t for t in sqlglot.parse(sql, read=dialect()) if t is not None]
    except sqlglot.errors.SqlglotError as exc:
        _fail(f"sqlglot cannot parse the statement ({str(exc).splitlines()[0]})")
    if len(trees) != 1:
        _fail("not exactly one statement")
    tree = trees[0]
    if not isinstance(tree, exp.Select):
        _fail(f"{type(tree).__name__.upper()} statement, not a single SELECT")
    for key, what in (("with_", "WITH (CTE)"), ("with", "WITH (CTE)"), ("joins", "JOIN"), ("distinct", "SELECT DISTINCT"),
                      ("laterals", "LATERAL"), ("windows", "WINDOW clause"), ("qualify", "QUALIFY")):
        if tree.args.get(key):
            _fail(what)
    for node in tree.find_all(exp.Subquery, exp.Window, exp.Distinct, exp.Collate, exp.Star):
        if isinstance(node, exp.Star) and isinstance(node.parent, exp.Anonymous) and node.parent.name.lower() == "count":
            continue
        what = {exp.Subquery: "subquery", exp.Window: "window function", exp.Distinct: "DISTINCT aggregate",
                exp.Collate: "COLLATE", exp.Star: "SELECT *"}[type(node)]
        _fail(what)
    if any(isinstance(n, exp.Select) and n is not tree for n in tree.find_all(exp.Select)):
        _fail("subquery")
    source = tree.args.get("from_") or tree.args.get("from")
    if source is None:
        _fail("no FROM clause")
    table = source.this
    if not isinstance(table, exp.Table) or table.args.get("db") or table.args.get("catalog"):
        _fail("FROM is not one registered frame")
    if table.args.get("joins"):
        _fail("JOIN")
    matches = [name for name in tables if name.lower() == table.name.lower()]
    if not matches:
        _fail(f"{table.name!r} is not a frame registered in this session")
    name = matches[0]
    columns = tables[name]
    index = {c.name.lower(): i for i, c in enumerate(columns)}

    def column_of(node) -> int:
        if not isinstance(node, exp.Column) or node.args.get("db"):
            _fail(f"{node.sql()} is not a plain column")
        i = index.get(node.name.lower())
        if i is None:
            _fail(f"no column {node.name!r} in {name!r}")
        return i

    keys = []
    group = tree.args.get("group")
    if group is not None:
        for node in group.expressions:
            i = column_of(node) if isinstance(node, exp.Column) else _fail(f"GROUP BY term {node.sql()} is not a column")
            if columns[i].kind not in KEY_KINDS:
                _fail(f"GROUP BY column {columns[i].name!r} has a column kind the engine does not group ({columns[i].kind})")
            keys.append(i)
        for key in ("rollup", "cube", "grouping_sets"):
            if group.args.get(key):
                _fail("GROUP BY ROLLUP / CUBE / GROUPING SETS")
    user = {s.name.lower(): s for s in specs if isinstance(s, AggregateSpec)}
    scalars = {s.name.lower() for s in specs if isinstance(s, FunctionSpec)}

    aggregates: list[Aggregate] = []
    slot: dict[Aggregate, int] = {}

    def aggregate_call(node, filt=None):
        """Aggregate of an Anonymous call node, or None if it is a scalar call."""
        fname = node.name.lower()
        args = node.expressions
        spec = user.get(fname)
        if spec is not None:
            if len(args) != spec.narg:
                _fail(f"{fname}() takes {spec.narg} arguments")
            spec = plain_form(spec, [argument_kind(a) for a in args])
            for a in spec.args:
                if a.kind not in ("float", "int", "bool"):
                    _fail(f"{fname}() takes a {a.kind} argument (the engine passes numbers only)")
            if spec.result.kind not in ("float", "int", "bool"):
                _fail(f"{fname}() returns {spec.result.kind} (the engine returns numbers only)")
            for a, node in zip(spec.args, args):
                # A REAL (or an expression that may be one) for an integer argument
                # stays on SQLite: its conversion is the callback's, not the engine's.
                if a.kind != "float" and not isinstance(node, exp.Column) \
                        and not isinstance(_literal_number(node), int):
                    _fail(f"{node.sql()} for an integer argument of {fname}()")
            return Aggregate(fname, tuple(numeric_arg(fname, a) for a in args), spec, filt)
        if fname in SQLITE_AGGREGATES and len(args) in SQLITE_AGGREGATES[fname]:
            if fname == "count":
                if not args or isinstance(args[0], exp.Star):
                    return Aggregate("count", (), None, filt)
                if not isinstance(args[0], exp.Column):
                    return Aggregate("count", (numeric_arg(fname, args[0]),), None, filt)
                i = column_of(args[0])
                if columns[i].kind not in KEY_KINDS:
                    _fail(f"count() of column kind {columns[i].kind}")
                return Aggregate("count", (i,), None, filt)
            if fname in ("min", "max") and isinstance(args[0], exp.Column):
                i = column_of(args[0])
                if columns[i].kind in TEXT_KINDS or columns[i].kind in (14, 15):  # text, blob: BINARY
                    return Aggregate(fname, (i,), None, filt)
            return Aggregate(fname, (numeric_arg(fname, args[0]),), None, filt)
        return None

    def argument_kind(node):
        """"int" or "float": how the engine reads the argument (a numeric column or literal); else None."""
        number = _literal_number(node)
        if number is not None:
            return "float" if isinstance(number, float) else "int"
        if isinstance(node, exp.Column):
            i = index.get(node.name.lower())
            if i is not None and columns[i].kind in NUMERIC_KINDS:
                return "float" if columns[i].kind in FLOAT_KINDS else "int"
        return None

    def numeric_arg(fname, node):
        from .expr import parse

        return parse(node, column_of, columns, f"{fname}()")

    filters: dict = {}

    def filter_of(node):
        """The SQL text of FILTER node *node*'s condition, checked."""
        from .predicate import check_where

        cond = node.expression.this if isinstance(node.expression, exp.Where) else node.expression
        if any(p.this is None for p in cond.find_all(exp.Placeholder)):
            _fail("an anonymous parameter (?) in FILTER (its number depends on the text order)")
        reason = check_where(cond, columns, index, pushdown=False)
        if reason:
            _fail(f"FILTER: {reason}")
        text = cond.sql(dialect=dialect())
        filters[text] = cond
        return text

    def rewrite(node, where: str):
        """Replace aggregate calls by grouped-result columns; check what remains."""
        def visit(n):
            if isinstance(n, exp.Filter):
                if not isinstance(n.this, exp.Anonymous) or aggregate_call(n.this) is None:
                    _fail(f"FILTER on {n.this.sql()}")
                agg = aggregate_call(n.this, filter_of(n))
                if agg not in slot:
                    slot[agg] = len(aggregates)
                    aggregates.append(agg)
                return exp.column(f"__fa{slot[agg]}", quoted=True)
            if isinstance(n, exp.Anonymous):
                agg = aggregate_call(n)
                if agg is not None:
                    if agg not in slot:
                        slot[agg] = len(aggregates)
                        aggregates.append(agg)
                    return exp.column(f"__fa{slot[agg]}", quoted=True)
                if n.name.lower() not in _OUTER_FUNCTIONS and n.name.lower() not in scalars:
                    _fail(f"function {n.name}() in {where}")
                return n
            if isinstance(n, exp.Column):
                if n.name.startswith("__fa"):
                    return n
                if where == "ORDER BY" and n.name.lower() in aliases and not n.table:
                    return n
                i = column_of(n)
                if i not in keys:
                    _fail(f"column {n.name!r} in {where} is neither a GROUP BY key nor an aggregate's argument")
                return exp.column(columns[i].name, quoted=True)
            if isinstance(n, exp.Placeholder):
                _fail(f"parameter in {where} (the engine binds parameters in WHERE only)")
            if isinstance(n, exp.Func) and not isinstance(n, (exp.Cast, exp.Anonymous, exp.Coalesce, exp.Abs,
                                                               exp.Round, exp.If, exp.Nullif)):
                _fail(f"{n.sql()} in {where}")
            return n

        return node.transform(visit)

    aliases = {e.alias.lower() for e in tree.expressions if isinstance(e, exp.Alias)}
    outer = tree.copy()
    outer.set("where", None)
    outer.set("group", None)
    outer.set("expressions", [rewrite(e, "the select list") for e in outer.expressions])
    having = outer.args.get("having")
    if having is not None:
        outer.set("having", None)
        outer.set("where", exp.Where(this=rewrite(having.this, "HAVING")))
    order = outer.args.get("order")
    if order is not None:
        outer.set("order", rewrite(order, "ORDER BY"))
    for key in ("limit", "offset"):
        part = outer.args.get(key)
        if part is not None and any(isinstance(n, (exp.Placeholder, exp.Column)) for n in part.find_all(exp.Expression)):
            _fail(f"{key.upper()} with a parameter or column")
    if not aggregates and group is None:
        _fail("no aggregate and no GROUP BY")
    where = tree.args.get("where")
    if where is not None:
        from .predicate import check_where

        reason = check_where(where.this, columns, index)
        if reason:
            _fail(f"WHERE: {reason}")
        if group is None and any(where.this.find_all(exp.Placeholder, exp.Anonymous, exp.Add, exp.Sub, exp.Mul,
                                                     exp.Div, exp.DPipe)):
            # A right-hand side SQLite does not know when planning makes an index
            # plan cheap for the virtual table: rows in key order, sums in another order.
            _fail("WHERE with a parameter or an expression and no GROUP BY (SQLite may read through an index)")
    from .constants import constant_nodes
    from .expr import constants_of

    d = dialect()
    constants = [n.sql(dialect=d) for n in constant_nodes(where.this)] if where is not None else []
    for cond in filters.values():
        constants += [n.sql(dialect=d) for n in constant_nodes(cond)]
    for agg in aggregates:
        for a in agg.args:
            constants_of(a, constants)
    plan = Plan(name, tuple(keys), aggregates, None if where is None else where.this, outer, group is not None,
                filters, list(dict.fromkeys(constants)))
    _direct(plan, columns)
    return plan


def _direct(plan: Plan, columns) -> None:
    """Set ``plan.direct`` when what follows the grouping is a plain projection in group order."""
    from sqlglot import exp

    outer = plan.outer
    if outer.args.get("where") is not None:
        return
    names = {columns[i].name: i for i in plan.keys}
    items = []
    for e in outer.expressions:
        e = e.this if isinstance(e, exp.Alias) else e
        if not isinstance(e, exp.Column) or e.table:
            return
        if e.name.startswith("__fa") and e.name[4:].isdigit():
            items.append(("agg", int(e.name[4:])))
        elif e.name in names:
            if columns[names[e.name]].kind in (16, 17):
                return  # dates / datetimes: SQLite renders their text
            items.append(("key", names[e.name]))
        else:
            return
    order = outer.args.get("order")
    if order is not None:
        terms = order.expressions
        if len(terms) != len(plan.keys):
            return
        for term, key in zip(terms, plan.keys):
            col = term.this
            if term.args.get("desc") or term.args.get("nulls_first") is False:
                return
            if not isinstance(col, exp.Column) or col.table or col.name != columns[key].name:
                return
    limit, offset = None, 0
    for part, what in ((outer.args.get("limit"), "limit"), (outer.args.get("offset"), "offset")):
        if part is None:
            continue
        value = part.expression if what == "limit" else part.expression
        if not isinstance(value, exp.Literal) or value.is_string or not value.this.isdigit():
            return
        if what == "limit":
            limit = int(value.this)
        else:
            offset = int(value.this)
    plan.direct, plan.limit, plan.offset = items, limit, offset
