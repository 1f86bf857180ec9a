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

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pglast
from pglast import ast
from pglast.enums import CmdType, VariableSetKind

from agent.analysis import (
    COPY,
    DERIVED,
    OUTPUT,
    PLAN,
    PREDICATE,
    TARGET,
    WRITE,
    Analysis,
    ColumnUse,
    Relation,
    SqlError,
    StatementInfo,
)
from agent.postgres import guardrail_meaning, inference
from agent.postgres.copy import copy_format

SERVER_FILE_FUNCTIONS = frozenset(
    {
        "pg_read_file",
        "pg_read_binary_file",
        "pg_ls_dir",
        "lo_import",
        "lo_export",
        "pg_stat_file",
        "pg_ls_logdir",
        "pg_ls_waldir",
        "pg_ls_tmpdir",
        "pg_ls_archive_statusdir",
        "pg_file_write",
        "pg_file_rename",
        "pg_file_unlink",
        "pg_ls_logicalsnapdir",
        "pg_ls_logicalmapdir",
        "pg_ls_replslotdir",
    }
)
# Functions that run SQL given as a string or dump whole tables: their reads are invisible.
OPAQUE_FUNCTIONS = frozenset(
    {
        "query_to_xml",
        "query_to_xmlschema",
        "query_to_xml_and_xmlschema",
        "cursor_to_xml",
        "cursor_to_xmlschema",
        "table_to_xml",
        "table_to_xmlschema",
        "table_to_xml_and_xmlschema",
        "schema_to_xml",
        "schema_to_xmlschema",
        "schema_to_xml_and_xmlschema",
        "database_to_xml",
        "database_to_xmlschema",
        "database_to_xml_and_xmlschema",
        "dblink",
        "dblink_exec",
        "dblink_open",
        "dblink_fetch",
        "dblink_send_query",
        "dblink_get_result",
        "lo_get",
        "lo_open",
        "loread",
        "ts_stat",  # runs the query text it is given
        "ts_rewrite",
    }
)
# Functions that run SQL given to them as text.
SQL_TEXT_FUNCTIONS = frozenset(
    {
        "query_to_xml",
        "query_to_xmlschema",
        "query_to_xml_and_xmlschema",
        "ts_stat",
        "ts_rewrite",
        "dblink",
        "dblink_exec",
        "dblink_open",
        "dblink_send_query",
    }
)
# Relations whose rows carry other tables' values (planner statistics): opaque reads.
STATISTICS_RELATIONS = frozenset(
    {
        "pg_stats",
        "pg_statistic",
        "pg_stats_ext",
        "pg_stats_ext_exprs",
        "pg_statistic_ext_data",
        "pg_largeobject",  # large objects hold whatever was written into them
    }
)
# Views that read server files.
SERVER_FILE_RELATIONS = frozenset(
    {"pg_file_settings", "pg_hba_file_rules", "pg_ident_file_mappings"}
)
# Functions whose arguments end up stored where a later statement reads them back (settings,
# notifications, large objects, lock keys, sequences, replication origins and slots).
VALUE_SINK_FUNCTIONS = frozenset(
    {
        "set_config",
        "pg_notify",
        "lo_from_bytea",
        "lo_put",
        "lo_create",
        "lo_creat",
        "lowrite",
        "lo_truncate",
        "setval",
        "pg_advisory_lock",
        "pg_advisory_lock_shared",
        "pg_advisory_xact_lock",
        "pg_advisory_xact_lock_shared",
        "pg_try_advisory_lock",
        "pg_try_advisory_lock_shared",
        "pg_try_advisory_xact_lock",
        "pg_try_advisory_xact_lock_shared",
        "pg_replication_origin_create",
        "pg_replication_origin_session_setup",
        "pg_create_physical_replication_slot",
        "pg_create_logical_replication_slot",
        "pg_copy_physical_replication_slot",
        "pg_copy_logical_replication_slot",
        "pg_logical_emit_message",
        "pg_stat_reset_single_table_counters",
    }
)
# Foreign data wrappers (file_fdw: files and programs on the server) and extensions.
FOREIGN_DATA_NODES = (
    ast.CreateExtensionStmt,
    ast.CreateFdwStmt,
    ast.CreateForeignServerStmt,
    ast.CreateForeignTableStmt,
    ast.CreateUserMappingStmt,
    ast.ImportForeignSchemaStmt,
    ast.AlterExtensionStmt,
    ast.AlterExtensionContentsStmt,
)
# Settings that change how the server splits statement text into tokens. The agent parses as
# PostgreSQL does with these values (pinned on every upstream connection); a session that
# changed them would read strings the agent reads as literals as SQL, and vice versa.
PINNED_SETTINGS = {"client_encoding": "UTF8", "standard_conforming_strings": "on"}
_PINNED_EQUIVALENTS = {
    "client_encoding": frozenset({"utf8", "utf-8", "unicode"}),
    "standard_conforming_strings": frozenset({"on", "true", "yes", "1"}),
}
ROLE_NODES = (
    ast.CreateRoleStmt,
    ast.AlterRoleStmt,
    ast.AlterRoleSetStmt,
    ast.DropRoleStmt,
    ast.ReassignOwnedStmt,
)
GRANT_NODES = (ast.GrantStmt, ast.GrantRoleStmt, ast.AlterDefaultPrivilegesStmt)
WRITE_KINDS = frozenset({"insert", "update", "delete", "merge", "copy_from", "ddl", "create_as"})


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
        if names & STATISTICS_RELATIONS:
            statement.opaque = True  # histograms and common values are other tables' data
        if names & SERVER_FILE_RELATIONS:
            statement.guardrails.add("server_file_functions")
    guardrails = {g for s in statements for g in s.guardrails}
    writes = [_writes(s) for s in statements]
    if len(statements) > 1 and any(writes) and not all(writes):
        guardrails.add("mixed_multi_statement")
    return Analysis(statements, guardrails)


def _is_system_catalog(relation: Relation) -> bool:
    """pg_catalog's tables; an unqualified pg_* name resolves there first."""
    return relation.schema == "pg_catalog" or (
        relation.schema is None and relation.name.startswith("pg_")
    )


def _writes(statement: StatementInfo) -> bool:
    """Whether a statement changes data or may (EXECUTE of a prepared one, ANALYZE'd writes,
    data-modifying CTEs): what mixes badly with reads in one multi-statement string."""
    return bool(statement.kind in WRITE_KINDS or statement.written or statement.kind == "execute")


def _name(node: Any) -> str:
    return (node.sval or "") if isinstance(node, ast.String) else ""


def _children(node: Any) -> Iterator[Any]:
    for attr in type(node).__slots__:
        yield from _nodes(getattr(node, attr, None))


def _nodes(value: Any) -> Iterator[Any]:
    if isinstance(value, ast.Node):
        yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _nodes(item)


@dataclass
class _Scope:
    """Relations visible in one SELECT level: alias → Relation, or None when derived."""

    entries: dict[str, Relation | None] = field(default_factory=dict)
    # Relations given new column names (FROM customers AS c(i, n, e)): a reference to any
    # of their columns may be any real column, so it counts as a whole-row reference.
    renamed: dict[str, Relation] = field(default_factory=dict)

    def add(self, alias: str, relation: Relation | None) -> None:
        self.entries[alias] = relation


class _Analyzer:
    def __init__(self) -> None:
        self.info = StatementInfo(kind="utility")
        self.scopes: list[_Scope] = []
        self.ctes: set[str] = set()
        self.all_relations: set[Relation] = set()
        # The clause being walked (named in refusals) and the exact-lookup column references.
        self.clause = ""
        self.lookup_refs: set[int] = set()
        # Set while walking the branches of a set operation that compares rows.
        self.compared_by = ""

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
        for child in _children(node):
            self._collect_ctes(child)

    def _collect_relations(self, node: Any) -> None:
        for child in _children(node):
            self._collect_relations(child)
        if isinstance(node, ast.RangeVar) and not (
            node.schemaname is None and node.relname in self.ctes
        ):
            self.all_relations.add(Relation(node.schemaname, node.relname or ""))

    def _dispatch(self, node: Any) -> None:
        info = self.info
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
            inner.all_relations = self.all_relations
            inner._dispatch(node.query)
            info.guardrails |= inner.info.guardrails
            info.written |= inner.info.written
            info.opaque |= inner.info.opaque
            info.functions |= inner.info.functions
            if isinstance(node, ast.PrepareStmt):
                info.uses += [_demote(u, WRITE) for u in inner.info.uses]
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
        self.info.guardrails |= inner.info.guardrails if analyze_option else set()
        self.info.written |= inner.info.written if analyze_option else set()
        self.info.opaque |= inner.info.opaque
        self.info.functions |= inner.info.functions
        # EXPLAIN output carries plans, not values; ANALYZE side effects keep write uses.
        self.info.uses += [
            u if analyze_option and u.context in (WRITE, COPY, TARGET) else _demote(u, PLAN)
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
            info.kind = "ddl"
            return
        elif isinstance(node, ast.DiscardStmt):
            info.deallocates = ""  # DISCARD ALL / PLANS drop every prepared statement
        elif isinstance(node, ast.CreateFunctionStmt | ast.CallStmt):
            info.opaque = True
        elif isinstance(node, ast.VariableSetStmt) and (node.name or "").lower() in PINNED_SETTINGS:
            setting = (node.name or "").lower()
            info.depends_on_literals = True
            if node.kind == VariableSetKind.VAR_SET_VALUE and not _pinned_value(setting, node.args):
                info.refusal = (
                    f"{setting} is pinned to {PINNED_SETTINGS[setting]} behind the Warden agent"
                )
        elif isinstance(node, ast.VariableSetStmt) and (node.name or "").lower() == "search_path":
            info.kind = "set"
            info.search_path = _search_path(node)
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
        scope = _Scope()
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
        for column in _target_columns(node):
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
                columns: list[str | None] = [_name(c) for c in node.attlist or ()] or [None]
                info.uses += [ColumnUse((relation,), c, COPY) for c in columns]
            else:
                self.select(node.query, top=False, context=COPY)
            return
        # COPY … TO STDOUT: its rows are this client's result, masked per column like a
        # SELECT's (agent/postgres/copy.py); its query's filters are checked the same way.
        info.copy_out = copy_format(node)
        if node.relation is not None:
            relation = self._relation(node.relation)
            names = [_name(c) for c in node.attlist or ()]
            uses = [ColumnUse((relation,), c, OUTPUT, i) for i, c in enumerate(names)]
            info.uses += uses or [ColumnUse((relation,), None, OUTPUT)]
        else:
            self.select(node.query, top=True, context=DERIVED)

    # ------------------------------------------------------------ queries

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
        self._with(node.withClause)
        if node.op is not None and int(node.op) != 0:
            branch_context = DERIVED if top else context
            for branch in (node.larg, node.rarg):
                self.compared_by = inference.set_operation_clause(node) or compared_by
                self.select(branch, top=False, context=branch_context)
            self.compared_by = ""
            self._predicate(node.sortClause, "ORDER BY")
            self._predicate(node.limitCount, "LIMIT")
            self._predicate(node.limitOffset, "OFFSET")
            return
        scope = _Scope()
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
        entries = list(node.targetList or ())
        aliases = {entry.name: entry for entry in entries if entry.name}
        keys = [getattr(item, "node", item) for item in node.sortClause or ()]
        keys += list(node.groupClause or ())
        for key in keys:
            target = None
            if isinstance(key, ast.A_Const) and isinstance(key.val, ast.Integer):
                index = key.val.ival - 1  # type: ignore[operator]  # ival is set on an Integer
                target = entries[index] if 0 <= index < len(entries) else None
            elif isinstance(key, ast.ColumnRef) and len(key.fields or ()) == 1:
                target = aliases.get(_name(key.fields[0]))  # type: ignore[index]
            if target is not None:
                self._predicate(target.val, "ORDER BY / GROUP BY")

    def _with(self, with_clause: Any) -> None:
        if with_clause is None:
            return
        for cte in with_clause.ctes or ():
            self.select(cte.ctequery, top=False, context=DERIVED)

    def _target_list(self, entries: Any, context: str, *, all_derived: bool = False) -> None:
        has_star = any(_is_star(e.val) for e in entries)
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

    def _from_item(self, item: Any, scope: _Scope, context: str) -> None:
        if isinstance(item, ast.RangeVar):
            if item.schemaname is None and item.relname in self.ctes:
                scope.add(_alias(item), None)
                return
            relation = self._relation(item)
            scope.add(_alias(item), relation)
            if item.alias is not None and item.alias.colnames:
                scope.renamed[_alias(item)] = relation
        elif isinstance(item, ast.JoinExpr):
            self._from_item(item.larg, scope, context)
            self._from_item(item.rarg, scope, context)
            self._predicate(item.quals, "JOIN ON")
            joined = self._candidates_in_scope()
            for name in item.usingClause or ():  # USING (email): compared, not referenced
                self._add(ColumnUse(joined, _name(name), PREDICATE, clause="JOIN USING"))
            if item.isNatural:  # every column both sides share is compared
                self._add(ColumnUse(joined, None, PREDICATE, clause="NATURAL JOIN"))
            if item.alias is not None:
                scope.add(item.alias.aliasname or "", None)
        elif isinstance(item, ast.RangeSubselect):
            self.select(item.subquery, top=False, context=context)
            if item.alias is not None:
                scope.add(item.alias.aliasname or "", None)
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
            function = _name((node.funcname or (None,))[-1]).lower()
            self.info.functions.add(function)
            if function == "set_config":
                self.info.depends_on_literals = True
                if not _set_config_is_safe(node.args):
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
        for child in _children(node):
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
        parsed = False
        for arg in args or ():
            text = _constant_text(arg)
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
        names = [_name(f) for f in fields if isinstance(f, ast.String)]
        if star and not names:
            return [ColumnUse(self._candidates_in_scope(), None, context, position)]
        if star:
            return [ColumnUse(self._qualified(names), None, context, position)]
        if len(names) == 1:
            column = names[0]
            uses = [ColumnUse(self._candidates_in_scope(), column, context, position)]
            whole_row = self._lookup_alias(column)
            if whole_row is not _MISSING:
                # Stored or exported whole, a row is no safer than its columns.
                row_context = context if context in (WRITE, COPY) else DERIVED
                uses.append(ColumnUse(self._resolve(whole_row), None, row_context, position))
            renamed = tuple(r for scope in self.scopes for r in scope.renamed.values())
            if renamed:
                uses.append(ColumnUse(renamed, None, context, position))
            return uses
        if len(names) == 2 and any(names[0] in scope.renamed for scope in self.scopes):
            return [ColumnUse(self._qualified(names[:-1]), None, context, position)]
        table = len(names) >= 3 or isinstance(self._lookup_alias(names[0]), Relation)
        return [ColumnUse(self._qualified(names[:-1]), names[-1], context, position, table)]

    def _qualified(self, qualifier: list[str]) -> tuple[Relation, ...]:
        if len(qualifier) >= 2:
            return (Relation(qualifier[-2], qualifier[-1]),)
        found = self._lookup_alias(qualifier[0])
        if found is _MISSING:
            # Unknown qualifier (e.g. an outer reference PostgreSQL would reject): any table.
            return tuple(self.all_relations)
        return self._resolve(found)

    def _lookup_alias(self, alias: str) -> Relation | object | None:
        for scope in reversed(self.scopes):
            if alias in scope.entries:
                return scope.entries[alias]
        return _MISSING

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


_MISSING = object()


def _target_columns(node: Any) -> list[str]:
    """Columns written by INSERT (its column list) or UPDATE (its SET list)."""
    if isinstance(node, ast.InsertStmt):
        return [entry.name for entry in node.cols or () if entry.name]
    if isinstance(node, ast.UpdateStmt):
        return [entry.name for entry in node.targetList or () if entry.name]
    return []


def _alias(item: Any) -> str:
    return str(item.alias.aliasname if item.alias else item.relname)


def _is_star(node: Any) -> bool:
    if isinstance(node, ast.A_Indirection):  # (expr).*: as many columns as its type has
        return bool(node.indirection) and isinstance(node.indirection[-1], ast.A_Star)  # type: ignore[index]
    if not isinstance(node, ast.ColumnRef):
        return False
    fields: Any = node.fields or ()
    return bool(fields) and isinstance(fields[-1], ast.A_Star)


def _demote(use: ColumnUse, context: str) -> ColumnUse:
    if use.context == PREDICATE:
        return use
    return replace(use, context=context, position=None)


def _constant_text(node: Any) -> str | None:
    """The text of a string or number constant (through casts); None when computed."""
    while isinstance(node, ast.TypeCast):
        node = node.arg
    value = getattr(node, "val", None) if isinstance(node, ast.A_Const) else None
    if isinstance(value, ast.String):
        return value.sval or ""
    if isinstance(value, ast.Integer):
        return str(value.ival)
    if isinstance(value, ast.Boolean):
        return "on" if value.boolval else "off"
    return None


def is_pinned_value(setting: str, value: str) -> bool:
    """Whether ``value`` (any spelling PostgreSQL accepts) is the value the agent pins."""
    return value.strip().lower() in _PINNED_EQUIVALENTS[setting]


def _pinned_value(setting: str, args: Any) -> bool:
    values = [_constant_text(arg) for arg in args or ()]
    return len(values) == 1 and is_pinned_value(setting, values[0] or "")


def _set_config_is_safe(args: Any) -> bool:
    args = list(args or ())
    name = _constant_text(args[0]) if args else None
    if name is None:
        return False  # a name computed at run time could be anything
    setting = name.strip().lower()
    if setting not in PINNED_SETTINGS:
        return True
    return len(args) > 1 and _pinned_value(setting, args[1:2])


def _search_path(node: ast.VariableSetStmt) -> list[str] | None:
    values: list[str] = []
    for arg in node.args or ():
        value = getattr(arg, "val", None)
        if isinstance(value, ast.String):
            values.append(value.sval or "")
    return values or None
