"""The query half of the PostgreSQL analyser (``agent/postgres/sql.py``): SELECTs, FROM
items, expressions and column references, with the scopes that resolve names.  Each column
reference is recorded with the context its value flows to and, for a predicate, the clause
(see ``agent/postgres/inference.py``).  ``QueryWalker`` is the base of ``sql._Analyzer``,
which adds the statement forms (utility statements, writes, COPY, EXPLAIN)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from pglast import ast

from agent.analysis import (
    COPY,
    DERIVED,
    OUTPUT,
    PREDICATE,
    WRITE,
    ColumnUse,
    Relation,
    SqlError,
    StatementInfo,
)
from agent.postgres import inference
from agent.postgres.sql_vocabulary import (
    OPAQUE_FUNCTIONS,
    SERVER_FILE_FUNCTIONS,
    SQL_TEXT_FUNCTIONS,
    VALUE_SINK_FUNCTIONS,
    constant_text,
    set_config_is_safe,
)


def node_name(node: Any) -> str:
    return (node.sval or "") if isinstance(node, ast.String) else ""


def children(node: Any) -> Iterator[Any]:
    for attr in type(node).__slots__:
        yield from nodes(getattr(node, attr, None))


def nodes(value: Any) -> Iterator[Any]:
    if isinstance(value, ast.Node):
        yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from nodes(item)


@dataclass
class Scope:
    """Relations visible in one SELECT level: alias → Relation, or None when derived."""

    entries: dict[str, Relation | None] = field(default_factory=dict)
    # Relations given new column names (FROM customers AS c(i, n, e)): a reference to any
    # of their columns may be any real column, so it counts as a whole-row reference.
    renamed: dict[str, Relation] = field(default_factory=dict)
    # Derived tables and CTE references by alias: (query, column names or None) each.
    sources: dict[str, list[tuple[Any, Any]]] = field(default_factory=dict)

    def add(self, alias: str, relation: Relation | None) -> None:
        self.entries[alias] = relation


class QueryWalker:
    """Walks queries for one statement; the state lives on the statement analyser."""

    info: StatementInfo
    scopes: list[Scope]
    ctes: set[str]
    cte_queries: dict[str, list[tuple[Any, Any]]]
    all_relations: set[Relation]
    clause: str
    lookup_refs: set[int]
    compared_by: str
    ordered_positions: frozenset[int]

    def modify(self, node: Any, *, top: bool = True, context: str = DERIVED) -> None:
        raise NotImplementedError  # the statement analyser's (data-modifying CTEs)

    def select(self, node: Any, *, top: bool, context: str) -> None:
        """Walk a SELECT; ``context`` is where its select list flows when not top-level."""
        if isinstance(node, ast.InsertStmt | ast.UpdateStmt | ast.DeleteStmt | ast.MergeStmt):
            saved_kind = self.info.kind
            self.modify(node, top=False, context=context)  # data-modifying CTE, COPY (...)
            self.info.kind = saved_kind
            return
        if not isinstance(node, ast.SelectStmt):
            self._walk(node, context, None)
            return
        # Rows compared by an enclosing UNION/INTERSECT/EXCEPT: its select list decides.
        compared_by, self.compared_by = self.compared_by, ""
        ordered, self.ordered_positions = self.ordered_positions, frozenset()
        self._with(node.withClause)
        if node.op is not None and int(node.op) != 0:
            branch_context = DERIVED if top else context
            # ORDER BY 1 / an output name sorts on that output of every branch.
            ordered |= inference.set_operation_order_positions(node)
            for branch in (node.larg, node.rarg):
                self.compared_by = inference.set_operation_clause(node) or compared_by
                self.ordered_positions = ordered
                self.select(branch, top=False, context=branch_context)
            self.compared_by = ""
            self.ordered_positions = frozenset()
            self._predicate(node.sortClause, "ORDER BY")
            self._predicate(node.limitCount, "LIMIT")
            self._predicate(node.limitOffset, "OFFSET")
            return
        scope = Scope()
        self.scopes.append(scope)
        for item in node.fromClause or ():
            self._from_item(item, scope, DERIVED if top else context)
        if top:
            self._target_list(node.targetList or (), OUTPUT)
        else:
            for entry in node.targetList or ():
                self._walk(entry.val, context, None)
        self._walk(node.valuesLists, DERIVED if top else context, None)
        self.lookup_refs |= inference.exact_lookup_refs(node.whereClause)
        for attr, clause in inference.SELECT_CLAUSES:
            self._predicate(getattr(node, attr), clause)
        if inference.plain_distinct(node) or compared_by:
            clause = "DISTINCT" if inference.plain_distinct(node) else compared_by
            self._predicate([entry.val for entry in node.targetList or ()], clause)
            self._predicate(node.valuesLists, clause)
        self._order_by_output(node)
        if ordered:
            values = [entry.val for entry in node.targetList or ()]
            self._predicate(inference.ordered_values(values, ordered), "ORDER BY")
            for row in node.valuesLists or ():  # a VALUES branch: its column at each position
                self._predicate(inference.ordered_values(list(row), ordered), "ORDER BY")
        self.scopes.pop()

    def _predicate(self, node: Any, clause: str) -> None:
        """Walk ``node`` as a predicate of ``clause`` (named when a masked column is refused)."""
        if node is None:
            return
        outer, self.clause = self.clause, clause
        self._walk(node, PREDICATE, None)
        self.clause = outer

    def _order_by_output(self, node: ast.SelectStmt) -> None:
        """ORDER BY / GROUP BY 2 or an output alias sort on that select-list expression: its
        columns are used as predicates too (what strict mode refuses for masked ones)."""
        values = [entry.val for entry in node.targetList or ()]
        aliases = {entry.name: entry.val for entry in node.targetList or () if entry.name}
        keys = [getattr(item, "node", item) for item in node.sortClause or ()]
        keys += list(node.groupClause or ())
        for key in keys:
            if isinstance(key, ast.A_Const) and isinstance(key.val, ast.Integer):
                # A star before it shifts the position: every expression it may be.
                index = frozenset({key.val.ival - 1})  # type: ignore[operator]  # ival is set
                self._predicate(inference.ordered_values(values, index), "ORDER BY / GROUP BY")
            elif isinstance(key, ast.ColumnRef) and len(key.fields or ()) == 1:
                # A name given by a star is also the input column's: the clause walk has it.
                self._predicate(aliases.get(node_name(key.fields[0])), "ORDER BY / GROUP BY")  # type: ignore[index]

    def _with(self, with_clause: Any) -> None:
        if with_clause is None:
            return
        for cte in with_clause.ctes or ():
            self.select(cte.ctequery, top=False, context=DERIVED)

    def _target_list(self, entries: Any, context: str, *, all_derived: bool = False) -> None:
        has_star = any(inference.is_star(e.val) for e in entries)
        for index, entry in enumerate(entries):
            position = None if has_star else index
            value = entry.val
            if context == OUTPUT and isinstance(value, ast.ColumnRef) and not all_derived:
                # Bare columns and stars keep their origin; whole-row references come back
                # from _column_ref already marked derived (SELECT c FROM customers c).
                for use in self._column_ref(value, OUTPUT, position):
                    self._add(use)
            else:
                self._walk(value, DERIVED, position)

    def _from_item(self, item: Any, scope: Scope, context: str) -> None:
        if isinstance(item, ast.RangeVar):
            if item.schemaname is None and item.relname in self.ctes:
                scope.add(alias_of(item), None)
                queries = self.cte_queries.get(item.relname or "", [])
                names = item.alias.colnames if item.alias is not None else None
                scope.sources[alias_of(item)] = [(q, names or cols) for q, cols in queries]
                return
            relation = self._relation(item)
            scope.add(alias_of(item), relation)
            if item.alias is not None and item.alias.colnames:
                scope.renamed[alias_of(item)] = relation
        elif isinstance(item, ast.JoinExpr):
            self._from_item(item.larg, scope, context)
            self._from_item(item.rarg, scope, context)
            self._predicate(item.quals, "JOIN ON")
            joined = self._candidates_in_scope()
            outer = self.clause
            for name in item.usingClause or ():  # USING (email): compared, not referenced
                self._add(ColumnUse(joined, node_name(name), PREDICATE, clause="JOIN USING"))
                self.clause = "JOIN USING"
                self._derived_predicates(None, node_name(name))
            if item.isNatural:  # every column both sides share is compared
                self._add(ColumnUse(joined, None, PREDICATE, clause="NATURAL JOIN"))
                self.clause = "NATURAL JOIN"
                self._derived_predicates(None, None)
            self.clause = outer
            if item.alias is not None:
                scope.add(item.alias.aliasname or "", None)
        elif isinstance(item, ast.RangeSubselect):
            self.select(item.subquery, top=False, context=context)
            if item.alias is not None:
                scope.add(item.alias.aliasname or "", None)
                scope.sources[item.alias.aliasname or ""] = [(item.subquery, item.alias.colnames)]
        else:
            # Table functions (RangeFunction, XMLTABLE, JSON_TABLE): arguments flow to output,
            # and decide how many rows there are, like a filter.
            if context != DERIVED:  # derived is weaker than the predicate it also is
                self._walk(item, context, None)
            self._predicate(item, "a table function in FROM")
            alias = getattr(item, "alias", None)
            if alias is not None:
                scope.add(alias.aliasname, None)

    # ------------------------------------------------------------ expressions

    def _walk(self, node: Any, context: str, position: int | None) -> None:
        if node is None:
            return
        if isinstance(node, tuple | list):
            for item in node:
                self._walk(item, context, position)
            return
        if context == DERIVED:
            clause = inference.deciding_node(node)
            if clause is not None:  # the value could decide an error or the row count
                outer, self.clause = self.clause, clause
                self._walk(node, PREDICATE, position)
                self.clause = outer
                return
        if isinstance(node, ast.ColumnRef):
            lookup = id(node) in self.lookup_refs
            for use in self._column_ref(node, context, position):
                self._add(replace(use, lookup=lookup) if lookup else use)
            return
        if isinstance(node, ast.SubLink):
            self._walk(node.testexpr, context, position)
            self.select(node.subselect, top=False, context=context)
            return
        if isinstance(node, ast.SelectStmt | ast.InsertStmt | ast.UpdateStmt | ast.DeleteStmt):
            self.select(node, top=False, context=context)
            return
        if isinstance(node, ast.FuncCall):
            function = node_name((node.funcname or (None,))[-1]).lower()
            self.info.functions.add(function)
            if function == "set_config":
                self.info.depends_on_literals = True
                if not set_config_is_safe(node.args):
                    self.info.refusal = (
                        "set_config() may not change client_encoding or "
                        "standard_conforming_strings (or a setting named at run time) "
                        "behind the Warden agent"
                    )
            if function in VALUE_SINK_FUNCTIONS:
                # Their arguments are stored for later reads (settings, notification payloads,
                # large objects, lock keys): like storing into a table, also inside a filter.
                self._walk(node.args, WRITE, None)
                return
            if function in SERVER_FILE_FUNCTIONS:
                self.info.guardrails.add("server_file_functions")
            if function in OPAQUE_FUNCTIONS:
                self.info.opaque = True
            # ts_rewrite(tsquery, tsquery, tsquery) takes no SQL; ts_rewrite(tsquery, text) does.
            three_queries = function == "ts_rewrite" and len(node.args or ()) == 3
            if function in SQL_TEXT_FUNCTIONS and not three_queries:
                self._sql_text_arguments(node.args)
            if context == DERIVED:
                self._derived_call(node, function, position)
                return
        if isinstance(node, ast.RangeVar):
            return
        for child in children(node):
            self._walk(child, context, position)

    def _derived_call(self, node: ast.FuncCall, function: str, position: int | None) -> None:
        """A call in the select list: its value is redacted, but an argument it is not total
        in could make it fail or return several rows, and OVER decides the frame."""
        total = inference.total_arguments(function)
        for index, arg in enumerate(node.args or ()):
            if total == inference.ALL_ARGUMENTS or index in total:
                self._walk(arg, DERIVED, position)
            else:
                self._predicate(arg, inference.function_argument_clause(function, index))
        self._walk(node.agg_order, DERIVED, position)
        self._walk(node.agg_filter, DERIVED, position)
        self._predicate(node.over, "a window definition (OVER)")

    def _sql_text_arguments(self, args: Any) -> None:
        """Guardrails hold inside SQL given as text (query_to_xml('...'), dblink): parse the
        constant ones; SQL computed at run time could be anything, file access included."""
        from agent.postgres.sql import analyze  # the whole analyser (it imports this module)

        parsed = False
        for arg in args or ():
            text = constant_text(arg)
            if not text:
                continue
            try:
                inner = analyze(text)
            except SqlError:
                continue  # not SQL (a connection string, a config name)
            parsed = True
            for statement in inner.statements:
                self.info.guardrails |= statement.guardrails
                self.info.written |= statement.written
                self.info.refusal = self.info.refusal or statement.refusal
        if not parsed:
            self.info.guardrails.add("server_file_functions")

    def _column_ref(
        self, node: ast.ColumnRef, context: str, position: int | None
    ) -> list[ColumnUse]:
        fields = node.fields or ()
        star = isinstance(fields[-1], ast.A_Star)
        names = [node_name(f) for f in fields if isinstance(f, ast.String)]
        if star and not names:
            return [ColumnUse(self._candidates_in_scope(), None, context, position)]
        if star:
            return [ColumnUse(self._qualified(names), None, context, position)]
        if context == PREDICATE and names:  # a derived table's column: what it stands for
            qualifier = names[-2] if len(names) == 2 else None
            self._derived_predicates(qualifier, names[-1])
        if len(names) == 1:
            column = names[0]
            uses = [ColumnUse(self._candidates_in_scope(), column, context, position)]
            whole_row = self._lookup_alias(column)
            if whole_row is not MISSING:
                # Stored, exported or compared whole, a row is no safer than its columns.
                row_context = context if context in (WRITE, COPY, PREDICATE) else DERIVED
                uses.append(ColumnUse(self._resolve(whole_row), None, row_context, position))
            renamed = tuple(r for scope in self.scopes for r in scope.renamed.values())
            if renamed:
                uses.append(ColumnUse(renamed, None, context, position))
            return uses
        if len(names) == 2 and any(names[0] in scope.renamed for scope in self.scopes):
            return [ColumnUse(self._qualified(names[:-1]), None, context, position)]
        table = len(names) >= 3 or isinstance(self._lookup_alias(names[0]), Relation)
        return [ColumnUse(self._qualified(names[:-1]), names[-1], context, position, table)]

    def _derived_predicates(self, qualifier: str | None, name: str | None) -> None:
        """A predicate on column ``name`` of a derived table or CTE in scope (``qualifier``
        None: any of them) decides on the select-list expressions behind it: their columns
        are predicates of the same clause (resolved among all the statement's relations)."""
        sources = [
            source
            for scope in self.scopes
            for alias, found in scope.sources.items()
            if qualifier in (None, alias)
            for source in found
        ]
        for query, names in sources:
            for ref in inference.derived_column_refs(query, names, name, self.cte_queries):
                last = (ref.fields or (None,))[-1]
                column = node_name(last) if isinstance(last, ast.String) else None  # *: all
                self._add(
                    ColumnUse(tuple(self.all_relations), column, PREDICATE, clause=self.clause)
                )

    def _qualified(self, qualifier: list[str]) -> tuple[Relation, ...]:
        if len(qualifier) >= 2:
            return (Relation(qualifier[-2], qualifier[-1]),)
        found = self._lookup_alias(qualifier[0])
        if found is MISSING:
            # Unknown qualifier (e.g. an outer reference PostgreSQL would reject): any table.
            return tuple(self.all_relations)
        return self._resolve(found)

    def _lookup_alias(self, alias: str) -> Relation | object | None:
        for scope in reversed(self.scopes):
            if alias in scope.entries:
                return scope.entries[alias]
        return MISSING

    def _resolve(self, entry: Relation | object | None) -> tuple[Relation, ...]:
        if isinstance(entry, Relation):
            return (entry,)
        return tuple(self.all_relations)

    def _candidates_in_scope(self) -> tuple[Relation, ...]:
        found: set[Relation] = set()
        for scope in self.scopes:
            for entry in scope.entries.values():
                if entry is None:
                    return tuple(self.all_relations)
                found.add(entry)
        return tuple(found) if found else tuple(self.all_relations)

    def _relation(self, node: Any) -> Relation:
        return Relation(node.schemaname, node.relname)

    def _add(self, use: ColumnUse) -> None:
        if not use.candidates:
            return
        if use.context == PREDICATE and not use.clause:
            use = replace(use, clause=self.clause or "a filter")
        self.info.uses.append(use)


MISSING = object()


def target_columns(node: Any) -> list[str]:
    """Columns written by INSERT (its column list) or UPDATE (its SET list)."""
    if isinstance(node, ast.InsertStmt):
        return [entry.name for entry in node.cols or () if entry.name]
    if isinstance(node, ast.UpdateStmt):
        return [entry.name for entry in node.targetList or () if entry.name]
    return []


def alias_of(item: Any) -> str:
    return str(item.alias.aliasname if item.alias else item.relname)


def demote(use: ColumnUse, context: str) -> ColumnUse:
    if use.context == PREDICATE:
        return use
    return replace(use, context=context, position=None)
