"""Static analysis of SQL with PostgreSQL's own parser (pglast).

For each statement it finds: the statement kind, guardrail kinds, relations read and
written, and every column reference together with *where* its value can flow:

``output``     a bare column (or ``*``) in the top-level select list: RowDescription will
               name its origin (table OID + attnum), so it is masked per column at runtime.
``derived``    inside an expression of an output column (or RETURNING, set operations,
               subqueries/CTEs in FROM): the output has no direct origin, so it is fully
               redacted.  ``position`` is the output index when known, else ``None`` (any).
``predicate``  WHERE/JOIN/GROUP/ORDER/HAVING/LIMIT/DISTINCT/window, a compared set operation,
               or a select-list expression that can fail or branch on the value (see
               ``agent/postgres/inference.py``); ``clause`` names which.
``plan``       named in EXPLAIN without ANALYZE.
``write``      flows into stored data (INSERT…SELECT, UPDATE SET, CREATE TABLE AS,
               PREPARE, DECLARE CURSOR): cannot be masked, so masked columns are denied.
``copy``       flows into COPY … TO a server file: cannot be masked, so masked columns are
               denied.  COPY … TO STDOUT is read like a SELECT (output, derived, predicate)
               and its rows are masked (agent/postgres/copy.py).

Name resolution is deliberately over-approximate: an unqualified column may belong to any
relation in scope, and a reference through a subquery/CTE alias may belong to any relation
in the statement.  Over-approximation only ever masks or denies more, never less.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pglast
from pglast import ast
from pglast.enums import CmdType, VariableSetKind

from agent.analysis import (
    COPY,
    DERIVED,
    OUTPUT,
    PLAN,
    TARGET,
    WRITE,
    Analysis,
    ColumnUse,
    CreatedRelation,
    Relation,
    SqlError,
    StatementInfo,
)
from agent.postgres import guardrail_meaning, inference, sql_created
from agent.postgres.copy import copy_format
from agent.postgres.sql_vocabulary import (
    FOREIGN_DATA_NODES,
    GRANT_NODES,
    PINNED_SETTINGS,
    ROLE_NODES,
    SERVER_FILE_RELATIONS,
    STATISTICS_RELATIONS,
    WRITE_KINDS,
    is_pinned_value,
    pinned_value,
    search_path_values,
)
from agent.postgres.sql_walk import QueryWalker, Scope, children, demote, node_name, target_columns
from agent.private_catalogs import private_catalog_reads
from agent.verdicts import ROWS_OVER_LIMIT

# Read by the session (pinned settings) through this module, the analyser's public face.
__all__ = ["PINNED_SETTINGS", "analyze", "fingerprint", "is_pinned_value", "normalize"]


def normalize(sql: str) -> str:
    """Statement text with literals replaced by $n; raises SqlError when unparseable."""
    try:
        return pglast.parser.normalize(sql)
    except pglast.parser.ParseError as exc:
        raise SqlError(str(exc)) from exc


def fingerprint(sql: str) -> str:
    try:
        return pglast.parser.fingerprint(sql)
    except pglast.parser.ParseError as exc:
        raise SqlError(str(exc)) from exc


def analyze(sql: str) -> Analysis:
    try:
        raw_statements = pglast.parse_sql(sql)
    except pglast.parser.ParseError as exc:
        raise SqlError(str(exc)) from exc
    statements = [_Analyzer().statement(raw.stmt) for raw in raw_statements]
    for statement in statements:
        if any(relation.name == "pg_settings" for relation in statement.written):
            statement.refusal = "changing settings through pg_settings is not allowed by Warden"
        elif any(_is_system_catalog(relation) for relation in statement.written):
            # UPDATE pg_attribute SET attname = ... is DDL (a rename, a drop) behind the
            # guardrails' back, and makes the bundle's names stale.
            statement.refusal = "writing to system catalogs is not allowed by Warden"
        names = {relation.name for relation in statement.relations}
        statement.private_catalogs = {
            ("pg_catalog", name) for name in private_catalog_reads(names, statement.functions)
        }
        if names & STATISTICS_RELATIONS:
            statement.opaque = True  # histograms and common values are other tables' data
        if names & SERVER_FILE_RELATIONS:
            statement.guardrails.add("server_file_functions")
    guardrails = {g for s in statements for g in s.guardrails}
    writes = [_writes(s) for s in statements]
    if len(statements) > 1 and any(writes) and not all(writes):
        guardrails.add("mixed_multi_statement")
    return Analysis(statements, guardrails)


def defining_uses(query: Any) -> tuple[tuple[ColumnUse, ...], frozenset[Relation]]:
    """The column uses of a created relation's defining query, read as a top-level SELECT
    (output uses carry their position, predicates their clause), and the relations it names
    (``sql_created``)."""
    analyzer = _defining(query)
    return tuple(analyzer.info.uses), frozenset(analyzer.all_relations)


def _defining(query: Any) -> _Analyzer:
    analyzer = _Analyzer()
    analyzer._collect_ctes(query)
    analyzer._collect_relations(query)
    analyzer.select(query, top=True, context=DERIVED)
    return analyzer


def stored_view(relation: Relation, definition: str) -> CreatedRelation:
    """A view or materialized view of the database (``pg_get_viewdef``) read as the session
    reads the views it creates: by its defining query (agent/relations.py)."""
    try:
        statements = pglast.parse_sql(definition)
    except pglast.parser.ParseError as exc:
        return CreatedRelation(relation, unknown=f"its definition could not be parsed: {exc}")
    if len(statements) != 1 or not isinstance(statements[0].stmt, ast.SelectStmt):
        return CreatedRelation(relation, unknown="its definition is not one SELECT")
    query = statements[0].stmt
    analyzer = _defining(query)
    found = (tuple(analyzer.info.uses), frozenset(analyzer.all_relations))
    view = sql_created.defined(relation, query, None, lambda _: found)
    return replace(view, functions=frozenset(analyzer.info.functions))


def _is_system_catalog(relation: Relation) -> bool:
    """pg_catalog's tables; an unqualified pg_* name resolves there first."""
    return relation.schema == "pg_catalog" or (
        relation.schema is None and relation.name.startswith("pg_")
    )


def _writes(statement: StatementInfo) -> bool:
    """Whether a statement changes data or may (EXECUTE of a prepared one, ANALYZE'd writes,
    data-modifying CTEs): what mixes badly with reads in one multi-statement string."""
    return bool(statement.kind in WRITE_KINDS or statement.written or statement.kind == "execute")


# DDL that stores code run later (see analyse's opaque statements).
STORED_CODE_NODES = (
    ast.DefineStmt,  # CREATE OPERATOR, AGGREGATE, TYPE, COLLATION, TEXT SEARCH …
    ast.CreateCastStmt,
    ast.CreateTrigStmt,
    ast.CreateEventTrigStmt,
    ast.CreateDomainStmt,
    ast.CreateConversionStmt,
    ast.CreateTransformStmt,
    ast.CreateOpClassStmt,
    ast.CreatePLangStmt,
)


class _Analyzer(QueryWalker):
    def __init__(self) -> None:
        self.info = StatementInfo(kind="utility")
        self.scopes: list[Scope] = []
        self.ctes: set[str] = set()
        # Each CTE name's defining queries with their column names (a name may be defined at
        # several levels: a reference may be to any of them).
        self.cte_queries: dict[str, list[tuple[Any, Any]]] = {}
        self.all_relations: set[Relation] = set()
        # The clause being walked (named in refusals) and the exact-lookup column references.
        self.clause = ""
        self.lookup_refs: set[int] = set()
        # Set while walking the branches of a set operation that compares rows, and the
        # output positions an enclosing set operation's ORDER BY sorts on.
        self.compared_by = ""
        self.ordered_positions: frozenset[int] = frozenset()

    # ------------------------------------------------------------ statements

    def statement(self, node: Any) -> StatementInfo:
        self._collect_ctes(node)
        self._collect_relations(node)
        self.info.relations = set(self.all_relations)
        self._dispatch(node)
        return self.info

    def _collect_ctes(self, node: Any) -> None:
        if isinstance(node, ast.CommonTableExpr):
            self.ctes.add(node.ctename or "")
            queries = self.cte_queries.setdefault(node.ctename or "", [])
            queries.append((node.ctequery, node.aliascolnames))
        for child in children(node):
            self._collect_ctes(child)

    def _collect_relations(self, node: Any) -> None:
        for child in children(node):
            self._collect_relations(child)
        if isinstance(node, ast.RangeVar) and not (
            node.schemaname is None and node.relname in self.ctes
        ):
            self.all_relations.add(Relation(node.schemaname, node.relname or ""))

    def _dispatch(self, node: Any) -> None:
        info = self.info
        creates, moves = sql_created.creations(node, defining_uses)
        info.creates += creates
        info.moves |= moves
        if isinstance(node, ast.SelectStmt):
            info.kind = "select" if node.intoClause is None else "create_as"
            if node.intoClause is not None:
                info.written.add(self._relation(node.intoClause.rel))
            self.select(node, top=node.intoClause is None, context=WRITE)
        elif isinstance(node, ast.InsertStmt | ast.UpdateStmt | ast.DeleteStmt | ast.MergeStmt):
            self.modify(node)
        elif isinstance(node, ast.CopyStmt):
            self.copy(node)
        elif isinstance(node, ast.CreateTableAsStmt):
            info.kind = "create_as"
            into: Any = node.into
            info.written.add(self._relation(into.rel))
            if isinstance(node.query, ast.ExecuteStmt):  # CREATE TABLE ... AS EXECUTE name
                info.executes = node.query.name or ""
            self.select(node.query, top=False, context=WRITE)
        elif isinstance(node, ast.ExplainStmt):
            self._explain(node)
        elif isinstance(node, ast.PrepareStmt | ast.DeclareCursorStmt):
            # Results of EXECUTE are not analysed again: treat their reads as writes.  A
            # cursor's are: each FETCH carries its origins (RowDescription) and runs under
            # the DECLARE's decision (frontend._sql_prepared_check), so they stay outputs.
            info.kind = "prepare" if isinstance(node, ast.PrepareStmt) else "declare"
            if isinstance(node, ast.PrepareStmt):
                info.prepares = node.name or ""
            else:
                info.declares = node.portalname or ""
            inner = _Analyzer()
            inner.scopes, inner.ctes = self.scopes, self.ctes
            inner.cte_queries = self.cte_queries
            inner.all_relations = self.all_relations
            inner._dispatch(node.query)
            info.guardrails |= inner.info.guardrails
            info.written |= inner.info.written
            info.opaque |= inner.info.opaque
            info.functions |= inner.info.functions
            if isinstance(node, ast.PrepareStmt):
                info.uses += [demote(u, WRITE) for u in inner.info.uses]
            else:
                info.uses += inner.info.uses
        else:
            self.utility(node)

    def _explain(self, node: ast.ExplainStmt) -> None:
        analyze_option = any(
            isinstance(o, ast.DefElem) and o.defname == "analyze" for o in node.options or ()
        )
        inner = _Analyzer()
        inner.all_relations = self.all_relations
        inner._dispatch(node.query)
        self.info.kind = "explain"
        self.info.executes = inner.info.executes  # EXPLAIN EXECUTE runs it only with ANALYZE,
        self.info.fetches = inner.info.fetches  # but is checked the same either way
        self.info.refusal = inner.info.refusal
        self.info.creates += inner.info.creates  # when ANALYZE runs it (kept either way)
        self.info.moves |= inner.info.moves
        self.info.guardrails |= inner.info.guardrails if analyze_option else set()
        self.info.written |= inner.info.written if analyze_option else set()
        self.info.opaque |= inner.info.opaque
        self.info.functions |= inner.info.functions
        # EXPLAIN output carries plans, not values; ANALYZE side effects keep write uses.
        self.info.uses += [
            u if analyze_option and u.context in (WRITE, COPY, TARGET) else demote(u, PLAN)
            for u in inner.info.uses
        ]

    def utility(self, node: Any) -> None:
        info = self.info
        kind_name = type(node).__name__
        if isinstance(node, ROLE_NODES):
            info.guardrails.add("role")
        elif isinstance(node, GRANT_NODES):
            info.guardrails.add("grant_revoke")
        elif isinstance(
            node,
            ast.DropStmt
            | ast.DropdbStmt
            | ast.DropTableSpaceStmt
            | ast.DropOwnedStmt
            | ast.DropSubscriptionStmt,
        ):
            info.guardrails.add("drop")
        elif isinstance(node, ast.TruncateStmt):
            info.guardrails.add("truncate")
            info.written |= {self._relation(r) for r in node.relations or ()}
        elif kind_name.startswith("Alter") or isinstance(node, ast.RenameStmt):
            info.guardrails.add("alter")
        elif isinstance(node, ast.DoStmt):
            info.guardrails.add("do_block")
            info.opaque = True
        elif isinstance(node, FOREIGN_DATA_NODES):
            # file_fdw and friends read server files and run programs, like COPY PROGRAM.
            info.guardrails |= {"copy_program", "server_file_functions"}
        elif isinstance(node, ast.RuleStmt):
            # A rule's actions run (and return rows) later, on another statement.
            for action in node.actions or ():
                self.select(action, top=False, context=WRITE)
            self._predicate(node.whereClause, "WHERE of a rule")
            info.kind = "ddl"
            return
        elif isinstance(node, ast.ViewStmt):
            # Stored, not run: its output is masked by origin when read, but what its body
            # filters or computes on decides those later reads, as a SELECT's would.
            self.select(node.query, top=False, context=DERIVED)
            info.kind = "ddl"
            return
        elif isinstance(node, ast.ListenStmt):
            # Notifications carry whatever other sessions' code puts in them (a trigger's
            # pg_notify of row data): unseen values, like an opaque function's.
            info.opaque = True
        elif isinstance(node, ast.ExecuteStmt):
            info.kind = "execute"
            info.executes = node.name or ""
        elif isinstance(node, ast.DeallocateStmt):
            info.deallocates = node.name or ""
        elif isinstance(node, ast.FetchStmt):
            info.kind = "fetch"
            info.fetches = node.portalname or ""
        elif isinstance(node, ast.ClosePortalStmt):
            info.closes = node.portalname or ""
        elif isinstance(node, ast.CreateSchemaStmt):
            # CREATE SCHEMA s CREATE TABLE ... GRANT ...: each element is a statement.
            for element in node.schemaElts or ():
                inner = _Analyzer().statement(element)
                info.guardrails |= inner.guardrails
                info.written |= inner.written
                info.uses += inner.uses
                info.opaque |= inner.opaque
                info.refusal = info.refusal or inner.refusal
                info.moves |= inner.moves
                info.creates += [
                    replace(
                        c, relation=Relation(c.relation.schema or node.schemaname, c.relation.name)
                    )
                    for c in inner.creates
                ]
            info.kind = "ddl"
            return
        elif isinstance(node, ast.DiscardStmt):
            info.deallocates = ""  # DISCARD ALL / PLANS drop every prepared statement
        elif isinstance(node, (ast.CreateFunctionStmt, ast.CallStmt, *STORED_CODE_NODES)):
            # Code that runs later, on other statements' values: a trigger on a table, an
            # operator or cast that a comparison or conversion then calls, an aggregate, a
            # domain's CHECK. What it will see cannot be decided now.
            info.opaque = True
        elif isinstance(node, ast.VariableSetStmt) and (node.name or "").lower() in PINNED_SETTINGS:
            setting = (node.name or "").lower()
            info.depends_on_literals = True
            if node.kind == VariableSetKind.VAR_SET_VALUE and not pinned_value(setting, node.args):
                info.refusal = (
                    f"{setting} is pinned to {PINNED_SETTINGS[setting]} behind the Warden agent"
                )
        elif isinstance(node, ast.VariableSetStmt) and (node.name or "").lower() == "search_path":
            info.kind = "set"
            info.search_path = search_path_values(node)
            return
        if isinstance(node, ast.TransactionStmt):
            info.kind = "transaction"
        elif isinstance(node, ast.VariableSetStmt | ast.VariableShowStmt):
            info.kind = "set"
        elif kind_name.startswith(
            (
                "Create",
                "Alter",
                "Drop",
                "Rename",
                "Grant",
                "Comment",
                "Truncate",
                "Index",
                "View",
                "Rule",
                "Cluster",
                "Reindex",
            )
        ):
            info.kind = "ddl"
        self._predicate(node, kind_name.removesuffix("Stmt"))

    def modify(self, node: Any, *, top: bool = True, context: str = DERIVED) -> None:
        info = self.info
        info.kind = type(node).__name__.removesuffix("Stmt").lower()
        target = self._relation(node.relation)
        info.written.add(target)
        every_row = isinstance(node, ast.DeleteStmt | ast.UpdateStmt) and (
            guardrail_meaning.covers_every_row(node.whereClause, node.relation)
        )
        if not isinstance(node, ast.InsertStmt):
            info.guardrails.add(ROWS_OVER_LIMIT)  # judged on the planner's estimate
        if isinstance(node, ast.DeleteStmt) and every_row:
            info.guardrails.add("delete_without_where")
        if isinstance(node, ast.UpdateStmt) and every_row:
            info.guardrails.add("update_without_where")
        if isinstance(node, ast.MergeStmt) and guardrail_meaning.covers_every_row(
            node.joinCondition, node.relation
        ):
            # ON true (or any constant): every matched row is every row.
            for clause in node.mergeWhenClauses or ():
                command = int(clause.commandType)
                if command == CmdType.CMD_DELETE:
                    info.guardrails.add("delete_without_where")
                elif command == CmdType.CMD_UPDATE:
                    info.guardrails.add("update_without_where")
        self._with(node.withClause)
        scope = Scope()
        scope.add(node.relation.alias.aliasname if node.relation.alias else target.name, target)
        self.scopes.append(scope)
        for item in getattr(node, "fromClause", None) or getattr(node, "usingClause", None) or ():
            self._from_item(item, scope, WRITE)
        if isinstance(node, ast.MergeStmt):
            self._from_item(node.sourceRelation, scope, WRITE)
        if isinstance(node, ast.InsertStmt):
            if node.selectStmt is not None:
                self.select(node.selectStmt, top=False, context=WRITE)
            self._walk(node.onConflictClause, WRITE, None)
        for target_entry in getattr(node, "targetList", None) or ():
            self._walk(target_entry.val, WRITE, None)
        for column in target_columns(node):
            self._add(ColumnUse((target,), column, TARGET))
        where = getattr(node, "whereClause", None)
        self.lookup_refs |= inference.exact_lookup_refs(where)
        self._predicate(where, "WHERE")
        self._predicate(getattr(node, "joinCondition", None), "MERGE ON")
        self._walk(getattr(node, "mergeWhenClauses", None), WRITE, None)
        returning = node.returningClause.exprs if node.returningClause is not None else ()
        if top:
            self._target_list(returning or (), DERIVED, all_derived=True)
        else:  # its RETURNING list is not the output's column order; stored or copied out
            self._walk(returning, context if context in (WRITE, COPY) else DERIVED, None)
        self.scopes.pop()

    def copy(self, node: ast.CopyStmt) -> None:
        info = self.info
        if node.is_program:
            info.guardrails.add("copy_program")
        elif node.filename is not None:
            info.guardrails.add("server_file_functions")
        if node.is_from:
            info.kind = "copy_from"
            if node.relation is not None:
                info.written.add(self._relation(node.relation))
            return
        info.kind = "copy"
        if node.filename is not None or node.is_program:  # to a server file: never masked
            if node.relation is not None:
                relation = self._relation(node.relation)
                columns: list[str | None] = [node_name(c) for c in node.attlist or ()] or [None]
                info.uses += [ColumnUse((relation,), c, COPY) for c in columns]
            else:
                self.select(node.query, top=False, context=COPY)
            return
        # COPY … TO STDOUT: its rows are this client's result, masked per column like a
        # SELECT's (agent/postgres/copy.py); its query's filters are checked the same way.
        info.copy_out = copy_format(node)
        if node.relation is not None:
            relation = self._relation(node.relation)
            names = [node_name(c) for c in node.attlist or ()]
            uses = [ColumnUse((relation,), c, OUTPUT, i) for i, c in enumerate(names)]
            info.uses += uses or [ColumnUse((relation,), None, OUTPUT)]
        else:
            self.select(node.query, top=True, context=DERIVED)
