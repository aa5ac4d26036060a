"""Split a grouped statement into partial, combine and final statements (sqlglot, dialect ``sqlite``).

A query of the shape ::

    SELECT keys, aggregates FROM one_registered_frame [WHERE ...]
    [GROUP BY keys] [HAVING ...] [ORDER BY ...] [LIMIT ... [OFFSET ...]]

is rewritten (with sqlglot, dialect ``sqlite``) into two statements:

* the *partial* statement, run once per rowid range on its own connection
  and thread: ``SELECT key AS __fa_k0, ..., f_partial(x) AS __fa_a0, ...
  FROM t WHERE rowid BETWEEN lo AND hi AND (where) GROUP BY key, ...``;
* the *final* statement over the union of the partial rows:
  ``SELECT __fa_k0 AS "g", f_merge(__fa_a0) AS "f(x)", ... GROUP BY
  __fa_k0 HAVING ... ORDER BY ... LIMIT ...``, every result column named as
  SQLite names it in the original statement.

Two-phase forms: a mergeable aggregate ``f`` uses ``f_partial`` / ``f_merge``
(``f_combine`` for a tree reduction, see :mod:`fastagg.dask`); SQLite's own
``count`` -> ``sum`` of counts, ``sum`` -> ``sum`` (NULL when every value is
NULL), ``total`` -> ``total``, ``min``/``max`` -> ``min``/``max``, ``avg`` ->
``total(total) / sum(count)`` (NULL when the count is 0). Anything else
(joins, subqueries, CTEs, compound selects, window functions, DISTINCT or
ordered aggregates, non-mergeable or unknown aggregates, COLLATE, bare
columns, non-deterministic functions, parameters sqlglot cannot place) makes
:func:`plan_query` return None, and the caller runs the statement unchanged
on one connection.

:mod:`fastagg.engine.parallel` runs the partial statement on threads, and
:mod:`fastagg.dask` on dask partitions.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any

import pyarrow as pa

from ..compile.spec import AggregateSpec, FunctionSpec

__all__ = ["PARTS", "Plan", "match_types", "plan_query"]

PARTS = "__fa_parts"
_KEY = "__fa_k{}"
_AGG = "__fa_a{}"
_PARAM = "__fa_p{}"

# SQLite built-ins whose two-phase forms are known: partial -> (merge, combine).
_TWO_PHASE = {"count": "sum", "sum": "sum", "total": "total", "min": "min", "max": "max"}
# Same answer on every connection and every run? Not these.
_VOLATILE = {"random", "randomblob", "changes", "total_changes", "last_insert_rowid", "sqlite_offset"}


# Clauses of a SELECT that the rewrite handles; any other one set falls back.
_SELECT_ARGS = {"expressions", "from", "from_", "where", "group", "having", "order", "limit", "offset"}
_FROM = "from_"  # sqlglot >= 26 names it so; "from" before (set in _dialect)


class _Unsupported(Exception):
    """The statement is outside the shape this module can split."""


@dataclasses.dataclass
class Plan:
    """A statement split into partial and final statements.

    Attributes
    ----------
    table : str
        The frame the statement reads, as the statement names it.
    partial : sqlglot Select
        The partial statement over *table*, without a row range.
    final : sqlglot Select
        The final statement over table ``__fa_parts`` (keys ``__fa_k<i>``,
        partial states ``__fa_a<j>``).
    combine : sqlglot Select
        Partial rows -> partial rows of the same columns (a tree reduction step).
    params : dict or None
        Named parameters for every derived statement (positional ``?``
        become ``:__fa_p<i>``).
    names, decltypes : list
        Result column names and declared types of the original statement.
    rowid : str
        A name of the rowid that no frame column hides.
    specs : list of AggregateSpec
        The mergeable aggregates the derived statements call.
    reads_rowid : bool
        The statement names the rowid (``rowid``, ``_rowid_``, ``oid``).
        Row ranges of one frame keep it (workers of
        :mod:`fastagg.engine.parallel`); partitions of a dask frame number
        their rows from 1 each, so :mod:`fastagg.dask` does not split such
        a statement.
    sum_args : list
        The argument of every SQLite ``sum`` the plan splits: a frame
        column's name, or None for an expression. SQLite raises "integer
        overflow" when the running sum *in row order* leaves int64, which
        partial sums of row ranges cannot tell; a runner that promises
        SQLite's answer splits only where no overflow is possible (see
        :func:`fastagg.engine.parallel.query_parallel`).
    """

    table: str
    partial: Any
    final: Any
    combine: Any
    params: dict | None
    names: list
    decltypes: list
    rowid: str
    specs: list
    reads_rowid: bool = False
    sum_args: list = dataclasses.field(default_factory=list)

    def partial_sql(self, lo: int | None = None, hi: int | None = None) -> str:
        """Return the partial statement, restricted to rowids *lo*..*hi* if given."""
        from sqlglot import exp

        stmt = self.partial.copy()
        if lo is not None:
            rowid = exp.column(self.rowid)
            bounds = exp.and_(
                exp.GTE(this=rowid.copy(), expression=exp.Literal.number(lo)),
                exp.LTE(this=rowid.copy(), expression=exp.Literal.number(hi)),
            )
            where = stmt.args.get("where")
            cond = bounds if where is None else exp.and_(bounds, exp.Paren(this=where.this.copy()))
            stmt.set("where", exp.Where(this=cond))
        return stmt.sql(dialect=_dialect())

    def final_sql(self, source=None) -> str:
        """Return the final statement reading partial rows from *source* (default ``__fa_parts``)."""
        return _with_source(self.final, source)

    def combine_sql(self, source=None) -> str:
        """Return the combine statement reading partial rows from *source*."""
        return _with_source(self.combine, source)


def _with_source(stmt, source) -> str:
    from sqlglot import exp

    if source is not None:
        stmt = stmt.copy()
        stmt.set(_FROM, exp.From(this=source))
    return stmt.sql(dialect=_dialect())


def _dialect():
    """Return fastagg's sqlglot dialect of SQLite (calls parsed as written: :func:`fastagg.registry.dialect`)."""
    global _FROM
    from sqlglot import exp

    from ..registry import dialect

    # sqlglot >= 26 names the FROM clause "from_", "from" before.
    _FROM = "from_" if "from_" in exp.Select.arg_types else "from"
    return dialect()


def _functions(con: sqlite3.Connection) -> dict:
    """Map lower-case name -> {narg: (type, builtin)} of the functions on *con*."""
    out: dict = {}
    for name, builtin, kind, narg in con.execute("SELECT name, builtin, type, narg FROM pragma_function_list"):
        out.setdefault(name.lower(), {})[narg] = (kind, bool(builtin))
    return out


def _statement_info(con: sqlite3.Connection, sql: str):
    """Prepare *sql* on *con* (without running it); return names, decltypes, parameter names.

    Calls ``sqlite3_prepare_v2``, ``sqlite3_column_name``,
    ``sqlite3_column_decltype``, ``sqlite3_bind_parameter_name`` and
    ``sqlite3_finalize``. Raises what preparing raises.
    """
    import ctypes

    from ..sqlite import capi as _capi
    from ..reader import _column_info, _prepare

    handle = _capi.connection_handle(con)
    stmt = _prepare(handle, sql)
    if not stmt:
        raise _Unsupported("empty statement")
    try:
        names, decltypes = _column_info(stmt)
        lib = _capi.lib
        params = []
        for i in range(1, lib.sqlite3_bind_parameter_count(stmt) + 1):
            p = lib.sqlite3_bind_parameter_name(stmt, i)
            params.append(ctypes.string_at(p).decode() if p else None)
    finally:
        _capi.lib.sqlite3_finalize(stmt)
    return names, decltypes, params


def plan_query(
    con: sqlite3.Connection,
    sql: str,
    frames: dict[str, list[str]],
    specs,
    params=None,
) -> Plan | None:
    """Split *sql* into partial and final statements, or return None.

    Parameters
    ----------
    con : sqlite3.Connection
        Where the statement would run single-threaded, with *specs*
        registered: SQLite prepares it there (names, declared types, errors)
        and lists its functions.
    sql : str
    frames : dict
        Registered frame name -> its column names; only these tables qualify.
    specs : iterable of AggregateSpec or FunctionSpec
        What is registered for the query; worker connections get the same.
    params : sequence, mapping or None

    Returns
    -------
    Plan or None
        None when the statement is not of the supported shape (or does not
        prepare): run it unchanged.
    """
    try:
        names, decltypes, param_names = _statement_info(con, sql)
    except (sqlite3.Error, _Unsupported):
        return None  # the single-connection run reports the error
    try:
        return _Planner(con, sql, frames, list(specs), params, names, decltypes, param_names).plan()
    except _Unsupported:
        return None


class _Planner:
    def __init__(self, con, sql, frames, specs, params, names, decltypes, param_names):
        self.con = con
        self.sql = sql
        self.frames = {k.lower(): (k, cols) for k, cols in frames.items()}
        self.specs = specs
        self.params = params
        self.names = names
        self.decltypes = decltypes
        self.param_names = param_names
        self.partials: list = []  # partial expressions, aliased __fa_a<i>
        self.partial_index: dict[str, int] = {}
        self.combiners: list = []  # per partial column: the combine function name
        self.used_specs: dict[str, AggregateSpec] = {}
        self.reads_rowid = False
        self.sum_args: list = []  # Plan.sum_args

    # -- entry ---------------------------------------------------------------

    def plan(self) -> Plan:
        import sqlglot
        from sqlglot import exp

        try:
            tree = sqlglot.parse_one(self.sql, read=_dialect())
        except sqlglot.errors.SqlglotError as e:
            raise _Unsupported(str(e)) from None
        if not isinstance(tree, exp.Select):
            raise _Unsupported("not a simple SELECT")
        for key, value in tree.args.items():
            if value and key not in _SELECT_ARGS:
                raise _Unsupported(key)  # WITH, joins, WINDOW, DISTINCT, ...
        source = tree.args.get(_FROM)
        table = source.this if source is not None else None
        if not isinstance(table, exp.Table) or any(v for k, v in table.args.items() if k not in ("this", "alias")):
            raise _Unsupported("FROM is not one table")
        if table.name.lower() not in self.frames:
            raise _Unsupported("FROM is not a registered frame")
        self.table_name, columns = self.frames[table.name.lower()]
        self.qualifiers = {table.name.lower()}
        if table.alias:
            self.qualifiers = {table.alias.lower()}  # SQLite hides the name behind an alias
        self.columns = {c.lower(): c for c in columns}
        self.rowid = next((r for r in ("rowid", "_rowid_", "oid") if r not in self.columns), None)
        if self.rowid is None:
            raise _Unsupported("every name of the rowid is a column")

        self._check_nodes(tree)
        named = self._name_parameters(tree)

        # Select list (columns only: SQLite does not let items name each other's aliases).
        items = []
        self.aliases: dict[str, Any] = {}
        for item in tree.expressions:
            if isinstance(item, exp.Star) or item.find(exp.Star) and not self._only_count_star(item):
                raise _Unsupported("*")
            inner = item.this if isinstance(item, exp.Alias) else item
            resolved = self._resolve(inner, aliases=False)
            items.append(resolved)
            if isinstance(item, exp.Alias):
                self.aliases.setdefault(item.alias.lower(), resolved)
        if len(items) != len(self.names):
            raise _Unsupported("result columns do not match")

        where = tree.args.get("where")
        where = self._resolve(where.this, aliases=True) if where is not None else None
        if where is not None and self._has_aggregate(where):
            raise _Unsupported("aggregate in WHERE")

        keys = []
        group = tree.args.get("group")
        if group is not None:
            if set(group.args) - {"expressions"} and any(v for k, v in group.args.items() if k != "expressions"):
                raise _Unsupported("GROUP BY extension")
            for term in group.expressions:
                if isinstance(term, exp.Literal) and term.is_int:
                    pos = int(term.this)
                    if not 1 <= pos <= len(items):
                        raise _Unsupported("GROUP BY position out of range")
                    key = self._copy(items[pos - 1])
                else:
                    key = self._resolve(term, aliases=True)
                if self._has_aggregate(key):
                    raise _Unsupported("aggregate in GROUP BY")
                keys.append(key)
        self.keys = keys

        having = tree.args.get("having")
        order = tree.args.get("order")
        has_agg = any(self._has_aggregate(e) for e in items) or (
            having is not None and self._has_aggregate(having.this)
        )
        if group is None and not has_agg:
            raise _Unsupported("not an aggregate query")

        # Final statement: the same select, over the partial rows.
        final_items = [
            exp.alias_(self._finish(e), exp.to_identifier(n, quoted=True)) for e, n in zip(items, self.names)
        ]
        final_having = None
        if having is not None:
            final_having = exp.Having(this=self._finish(self._resolve(having.this, aliases=True)))
        final_order = None
        if order is not None:
            terms = []
            for term in order.expressions:
                if not isinstance(term, exp.Ordered):
                    raise _Unsupported("ORDER BY term")
                e = term.this
                if isinstance(e, exp.Literal) and e.is_int:
                    new = e.copy()  # a result column position, the same in the final select
                elif isinstance(e, exp.Column) and not e.table and e.name.lower() in self.aliases:
                    # An alias names the result column (SQLite's resolveAsName) first.
                    pos = next(i for i, it in enumerate(tree.expressions)
                               if isinstance(it, exp.Alias) and it.alias.lower() == e.name.lower())
                    new = exp.Literal.number(pos + 1)
                else:
                    new = self._finish(self._resolve(e, aliases=True))
                t = term.copy()
                t.set("this", new)
                terms.append(t)
            final_order = exp.Order(expressions=terms)
        for key in ("limit", "offset"):
            clause = tree.args.get(key)
            if clause is not None and (clause.find(exp.Column) or self._has_aggregate(clause)):
                raise _Unsupported(key)

        parts = exp.Table(this=exp.to_identifier(PARTS))
        key_cols = [exp.column(_KEY.format(i)) for i in range(len(keys))]
        final = tree.copy()
        final.set("expressions", final_items)
        final.set(_FROM, exp.From(this=parts.copy()))
        final.set("where", None)
        final.set("group", exp.Group(expressions=[c.copy() for c in key_cols]) if keys else None)
        final.set("having", final_having)
        final.set("order", final_order)

        partial_items = [exp.alias_(k.copy(), _KEY.format(i)) for i, k in enumerate(keys)]
        partial_items += [exp.alias_(p, _AGG.format(i)) for i, p in enumerate(self.partials)]
        if not partial_items:
            raise _Unsupported("nothing to compute")
        partial = exp.Select(expressions=partial_items)
        partial.set(_FROM, exp.From(this=exp.Table(this=exp.to_identifier(self.table_name, quoted=True))))
        if where is not None:
            partial.set("where", exp.Where(this=where))
        if keys:
            partial.set("group", exp.Group(expressions=[k.copy() for k in keys]))

        combine_items = [exp.alias_(c.copy(), c.name) for c in key_cols]
        combine_items += [
            exp.alias_(exp.Anonymous(this=fn, expressions=[exp.column(_AGG.format(i))]), _AGG.format(i))
            for i, fn in enumerate(self.combiners)
        ]
        combine = exp.Select(expressions=combine_items)
        combine.set(_FROM, exp.From(this=parts.copy()))
        if keys:
            combine.set("group", exp.Group(expressions=[c.copy() for c in key_cols]))

        return Plan(
            table=self.table_name,
            partial=partial,
            final=final,
            combine=combine,
            params=named,
            names=self.names,
            decltypes=self.decltypes,
            rowid=self.rowid,
            specs=list(self.used_specs.values()),
            reads_rowid=self.reads_rowid,
            sum_args=self.sum_args,
        )

    # -- checks --------------------------------------------------------------

    @staticmethod
    def _only_count_star(item) -> bool:
        from sqlglot import exp

        return all(
            isinstance(s.parent, exp.Anonymous) and s.parent.name.lower() == "count" for s in item.find_all(exp.Star)
        )

    def _check_nodes(self, tree) -> None:
        """Reject nodes that no rewrite here keeps equal; classify every call."""
        from sqlglot import exp

        funcs = _functions(self.con)
        self.kinds: dict[int, str] = {}  # id(Anonymous) -> "scalar" / "aggregate"
        user_scalars = {s.name.lower() for s in self.specs if isinstance(s, FunctionSpec)}
        for node in tree.walk():
            if node is tree:
                continue
            if isinstance(node, (exp.Select, exp.Subquery, exp.Union, exp.Window, exp.Collate, exp.Distinct,
                                 exp.Parameter, exp.Lambda)) or isinstance(node, exp.AggFunc):
                raise _Unsupported(type(node).__name__)
            if isinstance(node, exp.Filter) and not isinstance(node.this, exp.Anonymous):
                raise _Unsupported("FILTER")
            if isinstance(node, exp.Anonymous):
                name = node.name.lower()
                args = node.expressions
                narg = 0 if (len(args) == 1 and isinstance(args[0], exp.Star)) else len(args)
                entries = funcs.get(name, {})
                entry = entries.get(narg) or entries.get(-1)
                if entry is None:
                    raise _Unsupported(f"unknown function {name}")
                kind, builtin = entry
                if kind == "s":
                    if name in _VOLATILE or not (builtin or name in user_scalars):
                        raise _Unsupported(f"function {name}")
                    self.kinds[id(node)] = "scalar"
                else:
                    self.kinds[id(node)] = "aggregate"
            elif isinstance(node, exp.Func) and not isinstance(
                node, (exp.Cast, exp.Case, exp.If, exp.Trim, exp.Coalesce, exp.Anonymous, exp.Filter)
            ):
                # A typed call from sqlglot's FUNCTION_PARSERS: only the ones known to round-trip.
                if not isinstance(node, exp.Binary | exp.Unary | exp.Connector | exp.Predicate):
                    raise _Unsupported(type(node).__name__)

    def _name_parameters(self, tree) -> dict | None:
        """Give every parameter a name, so that each derived statement binds a mapping."""
        from collections.abc import Mapping

        from sqlglot import exp

        holders = [p for p in tree.walk(bfs=False) if isinstance(p, exp.Placeholder)]
        if not self.param_names:
            if holders:
                raise _Unsupported("parameters not recognised")
            return None
        if self.params is None:
            raise _Unsupported("parameters missing")  # the single run raises
        if isinstance(self.params, Mapping) and not isinstance(self.params, (list, tuple)):
            if any(n is None or not n.startswith(":") for n in self.param_names):
                raise _Unsupported("parameter style")
            if {f":{p.name}" for p in holders} != set(self.param_names) or any(not p.name for p in holders):
                raise _Unsupported("parameters not recognised")
            return dict(self.params)
        if any(n is not None for n in self.param_names) or len(holders) != len(self.param_names):
            raise _Unsupported("parameter style")
        if len(self.params) != len(holders):
            raise _Unsupported("parameter count")  # the single run raises
        for key in ("limit", "offset"):
            clause = tree.args.get(key)
            # sqlglot reads SQLite's `LIMIT a, b` as OFFSET a LIMIT b: text order is lost.
            if clause is not None and clause.find(exp.Placeholder):
                raise _Unsupported("positional parameter in LIMIT")
        # Depth-first pre-order is text order for everything else sqlglot parses here.
        named = {}
        for i, p in enumerate(holders):
            p.replace(exp.Placeholder(this=_PARAM.format(i)))
            named[_PARAM.format(i)] = self.params[i]
        return named

    # -- resolution ----------------------------------------------------------

    def _resolve(self, node, *, aliases: bool):
        """Return *node* with every column spelled as the frame spells it.

        SQLite looks a name up among the table's columns first, then (in
        WHERE, GROUP BY, HAVING and ORDER BY) among the result aliases.
        """
        from sqlglot import exp

        def fix(n):
            if not isinstance(n, exp.Column):
                return n
            if n.args.get("db") or n.args.get("catalog"):
                raise _Unsupported("qualified column")
            if n.table and n.table.lower() not in self.qualifiers:
                raise _Unsupported("unknown qualifier")
            name = n.name.lower()
            if name in self.columns:
                return exp.column(exp.to_identifier(self.columns[name], quoted=True))
            if name in ("rowid", "_rowid_", "oid"):
                self.reads_rowid = True
                return exp.column(name)
            if aliases and not n.table and name in self.aliases:
                return self._copy(self.aliases[name])
            raise _Unsupported(f"unknown column {n.name}")

        return self._copy(node).transform(fix, copy=False)

    def _copy(self, node):
        """Copy *node*, keeping the classification of its calls."""
        out = node.copy()
        for old, new in zip(node.walk(), out.walk()):
            if id(old) in self.kinds:
                self.kinds[id(new)] = self.kinds[id(old)]
        return out

    def _is_aggregate(self, node) -> bool:
        from sqlglot import exp

        if isinstance(node, exp.Filter):
            return self._is_aggregate(node.this)
        return isinstance(node, exp.Anonymous) and self.kinds.get(id(node)) == "aggregate"

    def _has_aggregate(self, node) -> bool:
        return any(self._is_aggregate(n) for n in node.walk())

    # -- the rewrite ---------------------------------------------------------

    def _partial(self, expr, combiner: str) -> Any:
        """Return column ``__fa_a<i>`` computing *expr* in the partial statement."""
        from sqlglot import exp

        text = expr.sql(dialect=_dialect())
        if text not in self.partial_index:
            self.partial_index[text] = len(self.partials)
            self.partials.append(expr)
            self.combiners.append(combiner)
        return exp.column(_AGG.format(self.partial_index[text]))

    def _finish(self, node):
        """Rewrite a resolved expression of the select list, HAVING or ORDER BY over partial rows."""
        from sqlglot import exp

        def fix(n):
            for i, key in enumerate(self.keys):
                if n == key:
                    return exp.column(_KEY.format(i))
            if self._is_aggregate(n):
                return self._merged(n)
            if isinstance(n, exp.Column):
                # A bare column: SQLite takes it from an arbitrary row of the group.
                raise _Unsupported(f"bare column {n.name}")
            return n

        return self._copy(node).transform(fix, copy=False)

    def _merged(self, node):
        """Return the final-statement form of one aggregate call (maybe with FILTER)."""
        from sqlglot import exp

        call = node.this if isinstance(node, exp.Filter) else node
        filt = node.expression if isinstance(node, exp.Filter) else None
        if filt is not None and self._has_aggregate(filt):
            raise _Unsupported("aggregate in FILTER")
        args = call.expressions
        if any(self._has_aggregate(a) for a in args):
            raise _Unsupported("nested aggregate")
        if any(isinstance(a, (exp.Distinct, exp.Order)) or a.find(exp.Order) for a in args):
            raise _Unsupported("DISTINCT or ordered aggregate")
        name = call.name.lower()
        narg = 0 if (len(args) == 1 and isinstance(args[0], exp.Star)) else len(args)

        def partial_call(fn, call_args):
            c = exp.Anonymous(this=fn, expressions=[a.copy() for a in call_args])
            return exp.Filter(this=c, expression=filt.copy()) if filt is not None else c

        def fn(f, col):
            return exp.Anonymous(this=f, expressions=[col])

        spec = next(
            (s for s in self.specs if isinstance(s, AggregateSpec) and s.name.lower() == name and s.narg == narg),
            None,
        )
        if spec is not None:
            if not spec.is_mergeable:
                raise _Unsupported(f"{spec.name} has no merge")
            p_name, c_name, m_name = spec.partial_names
            self.used_specs[spec.name.lower()] = spec
            return fn(m_name, self._partial(partial_call(p_name, args), c_name))
        builtin = _functions_builtin(self.con, name, narg)
        if not builtin:
            raise _Unsupported(f"aggregate {name}")
        if name in _TWO_PHASE and (narg == 1 or (name == "count" and narg in (0, 1))):
            merge = _TWO_PHASE[name]
            if name == "sum":
                arg = args[0]
                column = arg.name.lower() if isinstance(arg, exp.Column) and not arg.table else None
                self.sum_args.append(self.columns.get(column) if column else None)
            return fn(merge, self._partial(partial_call(name, args), merge))
        if name == "avg" and narg == 1:
            total = self._partial(partial_call("total", args), "total")
            count = self._partial(partial_call("count", args), "sum")
            n = fn("sum", count)
            return exp.Paren(this=exp.Case(ifs=[exp.If(
                this=exp.GT(this=n, expression=exp.Literal.number(0)),
                true=exp.Div(this=fn("total", total), expression=n.copy(), typed=True),
            )]))
        raise _Unsupported(f"aggregate {name}")


def _functions_builtin(con, name: str, narg: int) -> bool:
    row = con.execute(
        "SELECT max(builtin) FROM pragma_function_list WHERE name = ? AND narg IN (?, -1) AND type != 's'",
        (name, narg),
    ).fetchone()
    return bool(row and row[0])


def match_types(table: pa.Table, decltypes) -> pa.Table:
    """Give all-NULL columns the type the single-connection run would give them.

    The reader types a column without values from its declared type; the
    final statement's declared types are those of the partial columns.
    """
    from ..reader import _declared_type

    for i, decl in enumerate(decltypes):
        col = table.column(i)
        if col.null_count == len(col):
            want = _declared_type(decl)
            if col.type != want:
                table = table.set_column(i, table.field(i).name, pa.nulls(len(col), want))
    return table
