"""Whether a MySQL DELETE/UPDATE may change every row of a table it writes.

"Without WHERE" guardrails judge what a condition means, not whether one is written, as on
PostgreSQL (``agent/postgres/guardrail_meaning.py``, with the same policy, folded here over
sqlglot's MySQL tree): ``WHERE 1``, ``WHERE id = id``, ``WHERE id <=> id``, ``WHERE name
LIKE '%'``, ``WHERE TRUE OR id = 5``, ``WHERE EXISTS (SELECT 1)`` all reach every row.

Each condition on a target table folds to one of three values:

``EVERY``   may hold for every row: it does not read the target row (a constant, a user
            variable, a sub-select about other tables), or it is a tautology over it
            (``x = x``, ``x IS NULL OR x IS NOT NULL``, ``P OR NOT P``).  A condition that
            does not depend on the row holds for all rows or for none, so unless it is proved
            false it counts as no condition at all.
``NONE``    proved false (``id <> id``, ``0``): the statement changes nothing.
``SOME``    depends on the row in a way this folding cannot settle: a real condition.

Comparisons with a NULL side are treated as their non-NULL reading (``id = id`` is not true
for a NULL id, but a guardrail that accepted it would accept a statement written to hit all
rows).  Constant conditions are folded by sqlglot's ``simplify``, trusted only over exact
numbers, TRUE/FALSE/NULL, AND and comparisons (compared with MariaDB's answers in the
tests): it compares strings by code point where MySQL uses the collation (``'A' = 'a'`` and
``'a ' = 'a'`` are true) and folds ``1e16 + 1 = 1e16`` exactly where MySQL uses doubles.
A constant it cannot settle (``'abc'``, ``NOT 0``, ``@v = 1``, ``?``) counts as possibly
true: fail closed.  sqlglot's tree does not tell ``NOT a < b`` from how HIGH_NOT_PRECEDENCE
groups it, ``(NOT a) < b``, so a statement with such a NOT is judged in both readings
(``agent/mysql/vocabulary.py`` refuses setting that mode and PIPES_AS_CONCAT).

Multi-table statements: an inner join's ON (and USING next to the target) restricts the
target like a WHERE (``UPDATE t1 JOIN t2 ON t1.id = t2.id SET …`` changes only t1 rows with
a partner, as PostgreSQL's ``UPDATE t1 … FROM t2 WHERE t1.id = t2.id``); a comma or CROSS
join, NATURAL join and an outer join's ON do not.  An unqualified column there may belong
to any of the tables, so it does not count as reading the target.  LIMIT and ORDER BY are
not conditions (``rows_over_limit`` judges the size).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sqlglot import exp
from sqlglot.optimizer.simplify import simplify

EVERY, NONE, SOME = "every", "none", "some"

# Names MySQL reads as functions without parentheses where sqlglot sees a column.
_NILADIC = frozenset({"utc_date", "utc_time", "utc_timestamp", "current_role"})
_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
_SAME_TRUE = (exp.EQ, exp.GTE, exp.LTE, exp.NullSafeEQ)
_SAME_FALSE = (exp.NEQ, exp.GT, exp.LT)
# The comparison that holds exactly when another does not (non-NULL reading), either way round.
_OPPOSITE: dict[type[exp.Expr], type[exp.Expr]] = {
    exp.EQ: exp.NEQ,
    exp.NEQ: exp.EQ,
    exp.LT: exp.GTE,
    exp.GTE: exp.LT,
    exp.GT: exp.LTE,
    exp.LTE: exp.GT,
}
_MIRROR: dict[type[exp.Expr], type[exp.Expr]] = {
    exp.EQ: exp.EQ,
    exp.NEQ: exp.NEQ,
    exp.LT: exp.GT,
    exp.GT: exp.LT,
    exp.LTE: exp.GTE,
    exp.GTE: exp.LTE,
}
# An unanchored search with a pattern matching the empty string matches every text.
_MATCH_ALL_REGEXPS = frozenset({"", ".*", "^", "$", "^.*", ".*$"})
# Where simplify's folding is MySQL's (tests/agent_mysql/test_mysql_guardrail_meaning.py
# compares it with MariaDB's over random expressions).
_FOLDABLE = (exp.Boolean, exp.Null, exp.Literal, exp.Paren, exp.And, *_COMPARISONS)
_EXACT_NUMBER_DIGITS = 18


@dataclass(frozen=True)
class _Target:
    """How a condition names the target table: ``(database, table)`` qualifiers, and whether
    an unqualified column is the target's (the only table of the statement)."""

    qualifiers: frozenset[tuple[str | None, str]]
    bare: bool

    def shadowed(self, names: set[str]) -> _Target:
        """Inside a sub-select that names ``names`` in its FROM, those names are its own."""
        kept = frozenset(q for q in self.qualifiers if q[1] not in names)
        return _Target(kept, bare=False)


def covers_every_row(statement: exp.Delete | exp.Update, database: str | None) -> bool:
    """True when ``statement`` may change every row of one of the tables it writes (one
    that cannot be told apart: assumed so, the guardrail fails closed)."""
    try:
        return any(_reaches_every_row(r, database) for r in _readings(statement))
    except RecursionError:  # nested past what is folded here: not proved to be a filter
        return True


def _reaches_every_row(statement: exp.Expression, database: str | None) -> bool:
    sources = _source_tables(statement)
    targets = _targets(statement, sources)
    if not targets:
        return True
    bare = len(sources) == 1
    for table in targets:
        target = _Target(_qualifiers(table, database), bare)
        if _conjunction(_restrictions(statement, table, sources, target)) == EVERY:
            return True
    return False


def _readings(statement: exp.Expression) -> list[exp.Expression]:
    """The statement, and how HIGH_NOT_PRECEDENCE reads it when that differs: ``NOT a < b``
    as ``(NOT a) < b`` (sqlglot's tree does not tell ``NOT a LIKE b`` from ``a NOT LIKE b``,
    so both are read both ways)."""
    if not any(_ambiguous_not(n) for n in statement.find_all(exp.Not)):
        return [statement]

    def high(node: exp.Expression) -> exp.Expression:
        if not _ambiguous_not(node):
            return node
        operator = node.this.copy()
        operator.set("this", exp.Not(this=operator.this))
        return operator

    return [statement, statement.transform(high)]


def _ambiguous_not(node: exp.Expression) -> bool:
    """NOT over an unparenthesized operator: the operator's left side alone under
    HIGH_NOT_PRECEDENCE."""
    operand = node.this if isinstance(node, exp.Not) else None
    return isinstance(operand, exp.Binary | exp.Predicate) and not isinstance(
        operand, exp.Connector | exp.Xor
    )


def fold(condition: exp.Expression | None, target: _Target) -> str:
    """EVERY, NONE or SOME (module docstring) for ``condition`` over ``target``."""
    node = _unwrap(condition)
    if node is None:
        return EVERY
    if not _reads(node, target):
        return NONE if constant_truth(node) is False else EVERY
    if isinstance(node, exp.Not):
        return _flip(fold(node.this, target))
    if node.args.get("negate"):  # a NOT LIKE b, a NOT REGEXP b
        positive = node.copy()
        positive.set("negate", None)
        return _flip(fold(positive, target))
    if isinstance(node, exp.And):
        return _conjunction([fold(part, target) for part in _operands(node, exp.And)])
    if isinstance(node, exp.Or):
        parts = _operands(node, exp.Or)
        folded = [fold(part, target) for part in parts]
        if EVERY in folded or _complementary(parts, target):
            return EVERY
        return NONE if all(f == NONE for f in folded) else SOME
    if isinstance(node, exp.Xor):
        return _fold_xor(node, target)
    if isinstance(node, exp.Is) and isinstance(node.expression, exp.Boolean):
        inner = fold(node.this, target)
        return _flip(inner) if node.expression.this is False else inner
    if isinstance(node, exp.Escape):  # LIKE … ESCAPE 'c': the pattern's % still matches all
        escape = _unwrap(node.expression)
        plain = isinstance(escape, exp.Literal) and escape.is_string and escape.this != "%"
        return fold(node.this, target) if plain else SOME
    if isinstance(node, exp.Case | exp.If | exp.Coalesce):
        return _fold_branches(node, target)
    return _fold_comparison(node, target)


def constant_truth(node: exp.Expression) -> bool | None:
    """Whether MySQL reads a condition that does not depend on the row as true (False for
    false or NULL), or None when that is not settled here."""
    if not all(isinstance(n, _FOLDABLE) for n in node.walk()):
        return None
    if any(isinstance(n, exp.Literal) and not _exact_number(n) for n in node.walk()):
        return None
    return _truth(simplify(node.copy(), dialect="mysql"))


def _truth(node: exp.Expression) -> bool | None:
    node = _unwrap(node) or node
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Null):
        return False  # NULL selects nothing
    if isinstance(node, exp.Literal) and _exact_number(node):
        return Decimal(node.this) != 0
    return None


def _exact_number(literal: exp.Literal) -> bool:
    """An integer or fixed-point literal MySQL reads as an exact value (not a double)."""
    text = literal.this
    if literal.is_string or not isinstance(text, str) or "e" in text.lower():
        return False
    try:
        Decimal(text)
    except InvalidOperation:
        return False
    return sum(c.isdigit() for c in text) <= _EXACT_NUMBER_DIGITS


# ------------------------------------------------------------------ folding


def _flip(folded: str) -> str:
    return {EVERY: NONE, NONE: EVERY}.get(folded, SOME)


def _conjunction(parts: list[str]) -> str:
    if NONE in parts:
        return NONE
    return EVERY if all(p == EVERY for p in parts) else SOME


def _fold_xor(node: exp.Xor, target: _Target) -> str:
    parts = _operands(node, exp.Xor)
    folded = [fold(part, target) for part in parts]
    if len(parts) == 2 and _complementary(parts, target):
        return EVERY
    if SOME in folded:
        return SOME
    return EVERY if folded.count(EVERY) % 2 else NONE


def _fold_branches(node: exp.Expression, target: _Target) -> str:
    """CASE / IF: every result holds for every row; COALESCE / IFNULL: every argument does."""
    if isinstance(node, exp.Case):
        results = [branch.args.get("true") for branch in node.args.get("ifs") or ()]
        results.append(node.args.get("default"))
    elif isinstance(node, exp.If):
        results = [node.args.get("true"), node.args.get("false")]
    else:
        results = [node.this, *node.expressions]
    folded = [fold(r, target) if r is not None else NONE for r in results]
    return EVERY if folded and all(f == EVERY for f in folded) else SOME


def _fold_comparison(node: exp.Expression, target: _Target) -> str:
    if isinstance(node, exp.Binary) and _same(node.this, node.expression, target):
        if isinstance(node, _SAME_TRUE):
            return EVERY
        if isinstance(node, _SAME_FALSE):
            return NONE
    if isinstance(node, exp.In) and not node.args.get("query"):
        tested = _shape(node.this, target)
        if any(_shape(item, target) == tested for item in node.expressions):
            return EVERY
    if isinstance(node, exp.Between):
        low, high = node.args.get("low"), node.args.get("high")
        if _same(node.this, low, target) and _same(node.this, high, target):
            return EVERY
    pattern = _match_pattern(node)
    if isinstance(node, exp.Like | exp.ILike) and pattern is not None:
        return EVERY if pattern and set(pattern) == {"%"} else SOME
    if isinstance(node, exp.RegexpLike) and pattern in _MATCH_ALL_REGEXPS:
        return EVERY
    return SOME


def _match_pattern(node: exp.Expression) -> str | None:
    pattern = _unwrap(node.args.get("expression"))
    if isinstance(pattern, exp.Literal) and pattern.is_string:
        return str(pattern.this)
    return None


def _complementary(parts: list[exp.Expression], target: _Target) -> bool:
    """``P OR NOT P``, ``x IS NULL OR x IS NOT NULL``, ``id = 3 OR id <> 3`` (linear: an
    OR of thousands of terms is an ordinary statement)."""
    shapes = {_shape(part, target) for part in parts}
    return any(negation in shapes for part in parts for negation in _negations(part, target))


def _negations(node: exp.Expression, target: _Target) -> list[object]:
    """Shapes of what holds exactly when ``node`` does not (non-NULL reading)."""
    node = _unwrap(node) or node
    if isinstance(node, exp.Not):
        return [_shape(node.this, target)]
    kind: type[exp.Expr] = type(node)
    opposite = _OPPOSITE.get(kind)
    if opposite is None:
        return []
    left, right = _shape(node.this, target), _shape(node.expression, target)
    mirror = _MIRROR[opposite]
    return [_comparison_shape(opposite, left, right), _comparison_shape(mirror, right, left)]


def _comparison_shape(kind: type[exp.Expr], left: object, right: object) -> object:
    return (kind.__name__, (("expression", right), ("this", left)))


# ------------------------------------------------------------------ structure


def _unwrap(node: exp.Expression | None) -> exp.Expression | None:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _operands(node: exp.Expression, kind: type[exp.Expr]) -> list[exp.Expression]:
    """The operands of a chain of ``kind`` (AND, OR, XOR), parentheses looked through."""
    operands: list[exp.Expression] = []
    pending = [node]
    while pending:
        current = pending.pop()
        for child in (current.this, current.expression, *current.expressions):
            child = _unwrap(child)
            if isinstance(child, kind):
                pending.append(child)
            elif child is not None:
                operands.append(child)
    return operands


def _same(a: exp.Expression | None, b: exp.Expression | None, target: _Target) -> bool:
    """Structurally equal expressions: column names compared as MySQL does (in any case,
    quoted or not, the target's qualified or not); literals exactly."""
    if a is None or b is None:
        return False
    return _shape(a, target) == _shape(b, target)


def _shape(node: object, target: _Target) -> object:
    if isinstance(node, list):
        return tuple(_shape(item, target) for item in node)
    if not isinstance(node, exp.Expression):
        return node
    node = _unwrap(node) or node
    if isinstance(node, exp.Column):
        owner = "target" if _column_reads(node, target) else (node.db, node.table)
        return ("column", owner, node.name.lower())
    if type(node) in _OPPOSITE and set(node.args) <= {"this", "expression"}:
        left, right = _shape(node.this, target), _shape(node.expression, target)
        return _comparison_shape(type(node), left, right)
    args = tuple(sorted((key, _shape(value, target)) for key, value in node.args.items()))
    return (type(node).__name__, args)


def _reads(node: exp.Expression, target: _Target) -> bool:
    """Whether ``node`` reads the target row (iterative: OR chains nest one level a term)."""
    pending = [(node, target)]
    while pending:
        current, scope = pending.pop()
        if isinstance(current, exp.Column):
            if _column_reads(current, scope):
                return True
            continue
        if isinstance(current, exp.Query):
            scope = scope.shadowed(_names_introduced(current))
        pending.extend((child, scope) for child in current.iter_expressions())
    return False


def _column_reads(column: exp.Column, target: _Target) -> bool:
    name = column.this
    if isinstance(name, exp.Identifier) and not name.quoted and name.name.lower() in _NILADIC:
        return False
    if not column.table:
        return target.bare
    return (column.db or None, column.table) in target.qualifiers


def _names_introduced(query: exp.Expression) -> set[str]:
    """The table names and aliases a sub-select's FROM/JOIN make its own."""
    names: set[str] = set()
    for source in query.find_all(exp.Table, exp.Subquery):
        if isinstance(source, exp.Subquery) and not source.alias:
            continue
        names.add(source.alias_or_name)
    return names


# ------------------------------------------------------------------ targets and conditions


def _source_tables(statement: exp.Expression) -> list[exp.Expression]:
    """The tables and derived tables of the statement's FROM / USING, joins included."""
    roots = statement.args.get("using") or [statement.this]
    if not isinstance(roots, list):
        roots = [statement.this]
    sources: list[exp.Expression] = []
    for root in roots:
        if root is None:
            continue
        sources.append(root)
        for join in root.args.get("joins") or ():
            sources.append(join.this)
    return sources


def _targets(statement: exp.Expression, sources: list[exp.Expression]) -> list[exp.Expression]:
    """The source tables the statement writes (those it cannot tell apart: all of them)."""
    if isinstance(statement, exp.Delete):
        named = statement.args.get("tables") or []
        if not named and isinstance(statement.args.get("using"), list):
            named = [statement.this]
        if not named:
            return sources[:1]
        return [_resolve(table, sources) for table in named]
    if len(sources) == 1:
        return sources
    qualifiers = {
        assignment.this.table if isinstance(assignment.this, exp.Column) else ""
        for assignment in statement.expressions
    }
    if "" in qualifiers:  # an unqualified SET column may belong to any of them
        return sources
    return [s for s in sources if s.alias_or_name in qualifiers]


def _resolve(named: exp.Expression, sources: list[exp.Expression]) -> exp.Expression:
    """The source ``DELETE a FROM t1 AS a`` / ``DELETE FROM a USING t1 AS a`` means by ``a``."""
    for source in sources:
        if source.alias and source.alias == named.name and not named.args.get("db"):
            return source
        if not source.alias and source.name == named.name:
            if (source.args.get("db") and source.text("db")) == (named.text("db") or None):
                return source
            if not named.text("db"):
                return source
    return named


def _qualifiers(table: exp.Expression, database: str | None) -> frozenset[tuple[str | None, str]]:
    if table.alias:
        return frozenset({(None, table.alias)})
    db = table.text("db") or database
    forms: set[tuple[str | None, str]] = {(None, table.name)}
    if db:
        forms.add((db, table.name))
    return frozenset(forms)


def _restrictions(
    statement: exp.Expression, table: exp.Expression, sources: list[exp.Expression], target: _Target
) -> list[str]:
    """The folded WHERE and what each inner join adds to the target's condition."""
    where = statement.args.get("where")
    folded = [fold(where.this if where is not None else None, target)]
    for root in [s for s in sources if s.args.get("joins")]:
        joins = root.args["joins"]
        for index, join in enumerate(joins):
            inner = not join.side and str(join.args.get("kind") or "").upper() in ("", "INNER")
            if not inner or join.method:
                continue
            if join.args.get("on") is not None:
                folded.append(fold(join.args["on"], target))
            # USING compares the target's columns when the target is one side of it alone.
            left = [root, *(j.this for j in joins[:index])]
            if join.args.get("using") and (join.this is table or left == [table]):
                folded.append(SOME)
    return folded
