"""Static analysis of MySQL/MariaDB SQL with sqlglot's MySQL dialect.

It fills the same protocol-neutral types as the PostgreSQL analyser (``Analysis``,
``StatementInfo``, ``ColumnUse``), so ``PolicyEngine`` decides MySQL statements with the
same rules: ``output`` (a bare column of the top-level select list, masked by the origin
the column definition names), ``derived`` (inside an expression: redacted), ``predicate``,
``write`` (stored where a later statement reads it back: INSERT…SELECT, user variables,
``INTO @var``) and ``target`` (a column an INSERT/UPDATE stores into).

Where the agent's reading of the text could differ from the server's, the statement is
refused instead: executable comments (``/*! … */``), a number glued to a name (``1abc`` is
a name to MySQL), statement kinds sqlglot does not model, and session settings that change
how the server reads text (``sql_mode`` ANSI_QUOTES / NO_BACKSLASH_ESCAPES, character
sets in which a multi-byte character may end in a backslash or a quote).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from agent.analysis import (
    DERIVED,
    OUTPUT,
    PREDICATE,
    TARGET,
    WRITE,
    Analysis,
    ColumnUse,
    CreatedRelation,
    Relation,
    SqlError,
    StatementInfo,
)
from agent.mysql import guardrail_meaning
from agent.mysql.inference import (
    Clauses,
    deciding_clause,
    exact_lookup_columns,
    join_stand_ins,
    stand_ins,
)
from agent.mysql.text import check_glued_numbers, tokenize
from agent.mysql.vocabulary import (
    CALL_STATEMENT,
    CHARSET_SETTINGS,
    EXECUTABLE_COMMENT,
    FILE_TRANSFER,
    GRANT_COMMANDS,
    HARMLESS_COMMANDS,
    RENAME_TABLE,
    REPLACE_STATEMENT,
    ROLE_COMMANDS,
    SAFE_CHARSETS,
    SAFE_SHOW,
    SERVER_FILE_FUNCTIONS,
    UNSAFE_SQL_MODES,
)
from agent.private_catalogs import is_mysql_private_catalog
from agent.verdicts import ROWS_OVER_LIMIT


def analyze(sql: str, database: str | None = None) -> Analysis:
    """Analysis of one COM_QUERY text (or a prepared statement's text), unqualified
    names resolved in ``database``; raises ``SqlError`` for what the agent cannot read
    as the server does."""
    if EXECUTABLE_COMMENT.search(sql):
        raise SqlError("executable comments (/*! … */) are not accepted by Warden")
    tokens = tokenize(sql)
    check_glued_numbers(tokens)
    file_transfer = FILE_TRANSFER.search(sql)
    try:
        parsed = sqlglot.parse(REPLACE_STATEMENT.sub(r"\1INSERT", sql, count=1), read="mysql")
    except ParseError as exc:
        if file_transfer:  # LOAD DATA, INTO OUTFILE: name the guardrail, not the parser
            info = StatementInfo(kind="utility", guardrails={"server_file_functions"})
            info.opaque = True
            return Analysis([info], {"server_file_functions"})
        raise SqlError(str(exc).splitlines()[0]) from exc
    statements: list[StatementInfo] = []
    for node in parsed:
        if not isinstance(node, exp.Expression):
            continue
        statements.append(_statement(node, database))
        if isinstance(node, exp.Use):  # later statements of the batch resolve names there
            database = node.this.name if isinstance(node.this, exp.Expression) else database
    if not statements:
        raise SqlError("empty statement")
    guardrails = {g for s in statements for g in s.guardrails}
    writes = [bool(s.written) or s.kind in ("insert", "update", "delete") for s in statements]
    if len(statements) > 1 and any(writes) and not all(writes):
        guardrails.add("mixed_multi_statement")
    return Analysis(statements, guardrails)


def stored_view(relation: Relation, definition: str) -> CreatedRelation:
    """A view of the database (``information_schema.VIEWS``, names qualified by the server)
    read as PostgreSQL's are (``agent.postgres.sql.stored_view``): by its defining query,
    whose filters, joins, grouping, ordering and limits decide every read of the view
    (agent/relations.py).  Raises ``SqlError`` when the definition cannot be read."""
    statements = analyze(definition, relation.schema).statements
    if len(statements) != 1 or statements[0].kind != "select":
        raise SqlError(f"the definition of view {relation.label()} is not one SELECT")
    info = statements[0]
    query = sqlglot.parse_one(definition, read="mysql")
    names = None
    if isinstance(query, exp.Select) and not any(_is_star(e) for e in query.expressions):
        names = tuple(e.alias_or_name.lower() for e in query.expressions)
    return CreatedRelation(
        relation,
        columns=names,
        uses=tuple(info.uses),
        reads=frozenset(info.relations),
        functions=frozenset(info.functions),
    )


def _statement(node: exp.Expression, database: str | None) -> StatementInfo:
    if isinstance(node, exp.Command):
        return _command(node)
    flow = _Flow(node, database)
    flow.run()
    return flow.info


def _command(node: exp.Command) -> StatementInfo:
    text = f"{node.this} {node.expression or ''}"
    if isinstance(node.expression, exp.Literal):
        text = f"{node.this} {node.expression.this}"
    info = StatementInfo(kind="utility")
    if ROLE_COMMANDS.match(text):
        info.guardrails.add("role")
    elif GRANT_COMMANDS.match(text):
        info.guardrails.add("grant_revoke")
    elif RENAME_TABLE.match(text):
        info.guardrails.add("alter")
        info.kind = "ddl"
    elif CALL_STATEMENT.match(text):
        info.kind = "call"
        info.opaque = True  # a stored procedure reads and returns whatever it likes
    elif not HARMLESS_COMMANDS.match(text):
        raise SqlError(f"{str(node.this).upper()} statements are not supported by Warden")
    return info


class _Flow:
    """Walks one statement, recording relations and where each column's value flows."""

    def __init__(self, root: exp.Expression, database: str | None) -> None:
        self.root = root
        self.database = database
        self.info = StatementInfo(kind="utility")
        self.aliases: dict[str, Relation] = {}
        self.ctes: set[str] = set()
        self.all_relations: tuple[Relation, ...] = ()
        # Column nodes that a WHERE compares for equality with constants (exact lookups).
        self.lookups: set[int] = set()
        # Names and positions already followed to the select-list expressions they stand for.
        self.followed: set[int] = set()
        self.clauses = Clauses()

    def relation(self, table: exp.Table) -> Relation:
        schema = table.db or self.database
        return Relation(schema or None, table.name)

    def run(self) -> None:
        root, info = self.root, self.info
        if isinstance(root, exp.Use):  # names a database, reads nothing
            info.kind = "use"
            return
        for cte in root.find_all(exp.CTE):
            self.ctes.add(cte.alias_or_name)
        for table in root.find_all(exp.Table):
            if not table.name or (table.name in self.ctes and not table.db):
                continue
            if isinstance(table.this, exp.Parameter):  # INTO @var
                continue
            relation = self.relation(table)
            info.relations.add(relation)
            self.aliases[table.alias_or_name] = relation
            self.aliases.setdefault(table.name, relation)
        self.all_relations = tuple(sorted(info.relations, key=lambda r: (r.schema or "", r.name)))
        for where in root.find_all(exp.Where):
            self.lookups |= exact_lookup_columns(where.this)
        self._private_catalogs()
        self._functions()
        self._dispatch(root)
        for literal in root.find_all(exp.Literal):  # ORDER BY 2, GROUP BY 1
            self._stand_ins(literal, deciding_clause(literal, self.clauses))

    # ------------------------------------------------------------ per statement kind

    def _dispatch(self, root: exp.Expression) -> None:
        info = self.info
        if isinstance(root, exp.Select | exp.SetOperation | exp.Values | exp.Subquery):
            info.kind = "select"
            self._query(root)
        elif isinstance(root, exp.Insert):
            self._insert(root)
        elif isinstance(root, exp.Update):
            self._update(root)
        elif isinstance(root, exp.Delete):
            self._delete(root)
        elif isinstance(root, exp.Set):
            info.kind = "set"
            for item in root.expressions:
                self._set_item(item)
        elif isinstance(root, exp.Create):
            self._create(root)
        elif isinstance(root, exp.Drop):
            info.kind = "ddl"
            info.guardrails.add("drop")
            info.written |= info.relations
        elif isinstance(root, exp.TruncateTable):
            info.kind = "ddl"
            info.guardrails.add("truncate")
            info.written |= info.relations
        elif isinstance(root, exp.Alter):
            info.kind = "ddl"
            info.guardrails.add("alter")
            info.written |= info.relations
        elif isinstance(root, exp.Show):
            self._show(root)
        elif isinstance(root, exp.Describe) and _runs_statement(root):
            self._dispatch(root.this)  # MySQL 8's EXPLAIN ANALYZE runs the write it measures
        elif isinstance(root, exp.Describe):
            info.kind = "show"  # a plan or a table's columns, no row values
        elif isinstance(root, exp.Use):
            info.kind = "use"
        elif isinstance(root, exp.Kill):
            info.kind = "kill"
        elif isinstance(root, exp.Transaction | exp.Commit | exp.Rollback):
            info.kind = "transaction"
        elif isinstance(root, exp.Analyze):
            info.kind = "utility"
        else:
            raise SqlError(f"{type(root).__name__} statements are not supported by Warden")

    def _query(self, root: exp.Expression) -> None:
        """A top-level query: its select list is the result; nested queries are derived."""
        if isinstance(root, exp.Subquery):
            root = root.this
        select = root if isinstance(root, exp.Select) else None
        if select is None:  # UNION / VALUES: no output column keeps a direct origin
            self._uses(root, DERIVED, None)
            return
        into = select.args.get("into")
        if into is not None:
            self._uses(select, WRITE, None)  # SELECT … INTO @var stores every value read
            return
        items = select.expressions
        starred = any(_is_star(item) for item in items)
        for index, item in enumerate(items):
            position = None if starred else index
            value = item.this if isinstance(item, exp.Alias) else item
            if isinstance(value, exp.Star):  # the tables of this SELECT, not its subqueries
                for candidate in self._own_relations(select):
                    self._add((candidate,), None, OUTPUT, None)
            elif _is_star(value):
                for candidate in self._candidates(value):
                    self._add((candidate,), None, OUTPUT, None)
            elif isinstance(value, exp.Column):
                self._column(value, OUTPUT, position)
            else:
                self._uses(value, DERIVED, position)
        for key, node in select.args.items():
            if key == "expressions" or node is None:
                continue
            for part in node if isinstance(node, list) else [node]:
                if isinstance(part, exp.Expression):
                    self._clause(key, part)

    def _clause(self, key: str, node: exp.Expression) -> None:
        if key in ("from_", "from", "joins", "with_", "with"):
            # Derived tables and CTEs feed the output without a direct origin; their
            # filters and join conditions are predicates.
            for query in _queries_in(node):
                for item in query.expressions:
                    self._uses(item, DERIVED, None)
            for column in _columns_outside_select_lists(node):
                self._column(column, PREDICATE, None)
            for join in node.find_all(exp.Join) if isinstance(node, exp.Expression) else ():
                self._join_comparisons(join)
            return
        self._uses(node, PREDICATE, None)

    def _join_comparisons(self, join: exp.Join) -> None:
        """``USING (email)`` and NATURAL compare columns that no column reference names."""
        for name in join.args.get("using") or ():
            self._add(self.all_relations, name.name.lower(), PREDICATE, None, "JOIN USING")
        natural = str(join.args.get("method") or "").upper() == "NATURAL"
        if natural:
            self._add(self.all_relations, None, PREDICATE, None, "NATURAL JOIN")
        self._decide(join_stand_ins(join), "NATURAL JOIN" if natural else "JOIN USING")

    def _insert(self, root: exp.Insert) -> None:
        info = self.info
        info.kind = "insert"
        target = root.this
        table = target.this if isinstance(target, exp.Schema) else target
        if isinstance(table, exp.Table):
            relation = self.relation(table)
            info.written.add(relation)
            if isinstance(target, exp.Schema):
                for column in target.expressions:
                    self._add((relation,), column.name.lower(), TARGET, None)
            else:
                self._add((relation,), None, TARGET, None)
        for key in ("expression", "conflict"):
            node = root.args.get(key)
            if node is not None:
                self._uses(node, WRITE, None)

    def _update(self, root: exp.Update) -> None:
        info = self.info
        info.kind = "update"
        info.guardrails.add(ROWS_OVER_LIMIT)  # judged on the optimizer's estimate
        info.written |= {self.relation(t) for t in _tables_of(root.this)}
        for assignment in root.expressions:
            if isinstance(assignment, exp.EQ) and isinstance(assignment.this, exp.Column):
                self._column(assignment.this, TARGET, None)
                self._uses(assignment.expression, WRITE, None)
            else:
                self._uses(assignment, WRITE, None)
        if guardrail_meaning.covers_every_row(root, self.database):
            info.guardrails.add("update_without_where")
        for key in ("where", "order", "limit"):
            if root.args.get(key) is not None:
                self._uses(root.args[key], PREDICATE, None)
        for join in root.this.args.get("joins") or [] if root.this is not None else []:
            self._uses(join, PREDICATE, None)

    def _delete(self, root: exp.Delete) -> None:
        info = self.info
        info.kind = "delete"
        info.guardrails.add(ROWS_OVER_LIMIT)  # judged on the optimizer's estimate
        targets = root.args.get("tables") or [root.this]
        info.written |= {self.relation(t) for target in targets for t in _tables_of(target)}
        if guardrail_meaning.covers_every_row(root, self.database):
            info.guardrails.add("delete_without_where")
        self._uses(root, PREDICATE, None)

    def _create(self, root: exp.Create) -> None:
        info = self.info
        info.kind = "ddl"
        kind = str(root.args.get("kind") or "").upper()
        if kind in ("FUNCTION", "PROCEDURE", "TRIGGER", "EVENT"):
            info.opaque = True  # code that runs later, with whatever it reads
        target = root.this
        table = target.this if isinstance(target, exp.Schema) else target
        if isinstance(table, exp.Table):
            info.written.add(self.relation(table))
        query = root.args.get("expression")
        if query is not None:
            info.kind = "create_as"
            self._uses(query, WRITE, None)

    def _show(self, root: exp.Show) -> None:
        info = self.info
        info.kind = "show"
        form = str(root.this).upper()
        if root.args.get("full") and form == "TABLES":
            form = "FULL TABLES"
        if form in ("PROCESSLIST", "FULL PROCESSLIST"):
            info.private_catalogs.add(("information_schema", "processlist"))
        elif form not in SAFE_SHOW:
            info.opaque = True  # engine status with statement text, value-quoting warnings

    def _set_item(self, item: exp.Expression) -> None:
        info = self.info
        kind = str(item.args.get("kind") or "").upper()
        if kind in ("GLOBAL", "PERSIST", "PERSIST_ONLY"):
            info.refusal = "changing global server settings through Warden is not allowed"
            return
        if kind in ("NAMES", "CHARACTER SET", "CHARSET"):
            self._check_charset(item.this)
            return
        if kind == "TRANSACTION":
            return
        assignment = item.this
        if not isinstance(assignment, exp.EQ | exp.PropertyEQ):
            raise SqlError("SET statement not understood by Warden")
        target, value = assignment.this, assignment.expression
        if isinstance(target, exp.Parameter):  # SET @x = …: stored for later reads
            self._uses(value, WRITE, None)
            return
        if isinstance(target, exp.SessionParameter) and str(
            target.args.get("kind") or ""
        ).lower() in (
            "global",
            "persist",
            "persist_only",
        ):
            info.refusal = "changing global server settings through Warden is not allowed"
            return
        name = target.name.lower()
        if name == "password":
            info.guardrails.add("role")
        elif name == "sql_mode":
            self._check_sql_mode(value)
        elif name in CHARSET_SETTINGS:
            self._check_charset(value)
        self._uses(value, WRITE, None)

    def _check_sql_mode(self, value: exp.Expression) -> None:
        info = self.info
        info.depends_on_literals = True
        if not isinstance(value, exp.Literal) or not value.is_string:
            info.refusal = "sql_mode may only be set to a literal through Warden"
            return
        modes = {m.strip().upper() for m in value.this.split(",")}
        if modes & UNSAFE_SQL_MODES:
            info.refusal = (
                f"sql_mode {', '.join(sorted(modes & UNSAFE_SQL_MODES))} changes how the server "
                "reads statement text and is pinned off by Warden"
            )

    def _check_charset(self, value: exp.Expression | None) -> None:
        info = self.info
        info.depends_on_literals = True
        name = value.name.lower() if isinstance(value, exp.Expression) else ""
        charset = name.split("_", 1)[0] if name not in SAFE_CHARSETS else name
        if charset not in SAFE_CHARSETS:
            info.refusal = (
                f"character set {name or '?'} is refused by Warden: the agent reads statement "
                f"text as the server does only in {', '.join(sorted(SAFE_CHARSETS))}"
            )

    # ------------------------------------------------------------ helpers

    def _private_catalogs(self) -> None:
        """Server tables with other sessions' statements, credentials or value statistics:
        refused unless a rule allows them (agent/private_catalogs.py)."""
        for relation in self.info.relations:
            schema = (relation.schema or "").lower()
            name = relation.name.lower()
            if is_mysql_private_catalog(schema, name):
                self.info.private_catalogs.add((schema, name))

    def _functions(self) -> None:
        info = self.info
        for call in self.root.find_all(exp.Anonymous):
            name = call.name.lower()  # `f`(x) calls f: the quotes are not part of its name
            if name in SERVER_FILE_FUNCTIONS:
                info.guardrails.add("server_file_functions")
            if isinstance(call.parent, exp.Dot):  # db.f(): a stored function
                info.opaque = True
            info.functions.add(name)
        if any(True for _ in self.root.find_all(exp.Dot)):
            info.opaque = info.opaque or any(
                isinstance(dot.expression, exp.Anonymous) for dot in self.root.find_all(exp.Dot)
            )

    def _own_relations(self, select: exp.Select) -> list[Relation]:
        return [
            self.relation(table)
            for table in select.find_all(exp.Table)
            if table.find_ancestor(exp.Select) is select
            and table.name
            and not (table.name in self.ctes and not table.db)
        ]

    def _candidates(self, column: exp.Expression) -> tuple[Relation, ...]:
        qualifier = column.table if isinstance(column, exp.Column) else ""
        if qualifier:
            relation = self.aliases.get(qualifier)
            if relation is not None:
                return (relation,)
        return self.all_relations

    def _column(
        self, column: exp.Column, context: str, position: int | None, via: str = ""
    ) -> None:
        # A value that decides which rows come back, how many or in which order is a
        # predicate wherever the column stands (a subquery's WHERE in the select list);
        # ``via``: the clause of a name or position standing for this column's expression.
        clause = via or deciding_clause(column, self.clauses)
        if clause and (context in (OUTPUT, DERIVED) or via):
            context = PREDICATE
        if clause:
            self._stand_ins(column, clause)
        lookup = clause == "WHERE" and id(column) in self.lookups
        if _is_star(column):
            for candidate in self._candidates(column):
                self._add((candidate,), None, context, position, clause)
            return
        name = column.name.lower()
        self._add(self._candidates(column), name, context, position, clause, lookup=lookup)

    def _stand_ins(self, node: exp.Expression, clause: str) -> None:
        """The columns of the select-list expressions that ``node`` (an alias, a position, a
        derived table's column) stands for in ``clause`` decide it as well."""
        if not clause or id(node) in self.followed:
            return
        self.followed.add(id(node))
        self._decide(stand_ins(node, self.clauses), clause)

    def _decide(self, expressions: list[exp.Expr], clause: str) -> None:
        """Every column of ``expressions`` decides ``clause`` (a star: all its columns)."""
        for expression in expressions:
            if isinstance(expression, exp.Star):
                select = expression.find_ancestor(exp.Select)
                for candidate in self._own_relations(select) if select else self.all_relations:
                    self._add((candidate,), None, PREDICATE, None, clause)
            for column in _columns(expression):
                self._column(column, PREDICATE, None, via=clause)

    def _add(
        self,
        candidates: tuple[Relation, ...],
        column: str | None,
        context: str,
        position: int | None,
        clause: str = "",
        *,
        lookup: bool = False,
    ) -> None:
        if not candidates:
            return
        if context != PREDICATE:
            clause = ""
        use = ColumnUse(candidates, column, context, position, clause=clause, lookup=lookup)
        self.info.uses.append(use)

    def _uses(self, node: exp.Expression, context: str, position: int | None) -> None:
        """Every column under ``node`` in ``context``; a user-variable assignment inside
        (``@x := email``) stores its value: ``write`` wherever it stands."""
        for assignment in node.find_all(exp.PropertyEQ):
            if isinstance(assignment.this, exp.Parameter):
                for column in _columns(assignment.expression):
                    self._column(column, WRITE, None)
        for column in _columns(node):
            self._column(column, context, position)
        for star in node.find_all(exp.Star):
            if not isinstance(star.parent, exp.Column | exp.Count):
                for candidate in self.all_relations:
                    self._add((candidate,), None, context, position)


def _runs_statement(describe: exp.Describe) -> bool:
    analyzed = str(describe.args.get("style") or "").upper() == "ANALYZE"
    return analyzed and isinstance(describe.this, exp.Insert | exp.Update | exp.Delete)


def _is_star(node: exp.Expression) -> bool:
    return isinstance(node, exp.Star) or (
        isinstance(node, exp.Column) and isinstance(node.this, exp.Star)
    )


def _columns(node: exp.Expr) -> Iterator[exp.Column]:
    if isinstance(node, exp.Column):
        yield node
        return
    yield from node.find_all(exp.Column)


def _queries_in(node: exp.Expression) -> Iterable[exp.Select]:
    return node.find_all(exp.Select)


def _columns_outside_select_lists(node: exp.Expression) -> Iterator[exp.Column]:
    for column in node.find_all(exp.Column):
        child: exp.Expr = column
        while child is not node and child.parent is not None:
            if isinstance(child.parent, exp.Select) and child.arg_key == "expressions":
                break
            child = child.parent
        else:
            yield column


def _tables_of(node: exp.Expression | None) -> list[exp.Table]:
    if node is None:
        return []
    if isinstance(node, exp.Table):
        return [node]
    return list(node.find_all(exp.Table))
