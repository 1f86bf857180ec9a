"""Which select-list expressions let a masked MySQL value decide what the caller observes.

The same rule as PostgreSQL's (``agent/postgres/inference.py``): a value that reaches the
output is redacted there, so in the select list it may only flow through expressions that
are total in it (never raise, never branch, return one value): bare columns, comparisons,
casts to text, and the functions listed here.  ``IF(email LIKE 'a%', 1, 0)`` and
``CASE``, ``IFNULL``/``COALESCE``/``NULLIF``, AND/OR/NOT/XOR, arithmetic, other casts, other
functions and window functions decide something (an error, a row count, which branch
runs) and make the column a predicate, refused for a masked identity with the clause named.
"""

from __future__ import annotations

from sqlglot import exp

ALL_ARGUMENTS = frozenset({"*"})
# Functions (sqlglot's SQL names) that never raise and return one value whatever the value
# in the listed arguments (sqlglot argument keys; ALL_ARGUMENTS = every one).
TOTAL_FUNCTIONS: dict[str, frozenset[str]] = {
    **dict.fromkeys(
        (
            "COUNT",
            "MIN",
            "MAX",
            "GROUP_CONCAT",
            "UPPER",
            "LOWER",
            "LENGTH",
            "CHAR_LENGTH",
            "CHARACTER_LENGTH",
            "OCTET_LENGTH",
            "BIT_LENGTH",
            "MD5",
            "SHA",
            "SHA1",
            "HEX",
            "CONCAT",
            "CONCAT_WS",
            "REVERSE",
            "TRIM",
            "LTRIM",
            "RTRIM",
            "REPLACE",
            "STR_POSITION",
            "JSON_ARRAY",
        ),
        ALL_ARGUMENTS,
    ),
    "SUBSTRING": frozenset({"this"}),
    "LEFT": frozenset({"this"}),
    "RIGHT": frozenset({"this"}),
    "PAD": frozenset({"this", "fill_pattern"}),
    "SHA2": frozenset({"this"}),
}
TEXT_TYPES = frozenset({"CHAR", "VARCHAR", "TEXT", "NCHAR", "NVARCHAR"})
# Nodes that only carry values along or compare them (a comparison never raises on a value).
_CARRIERS = (
    exp.Column,
    exp.Alias,
    exp.Paren,
    exp.Literal,
    exp.Placeholder,
    exp.Null,
    exp.Boolean,
    exp.Identifier,
    exp.Star,
    exp.Tuple,
    exp.Subquery,
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.NullSafeEQ,
    exp.NullSafeNEQ,
    exp.Is,
    exp.In,
    exp.DataType,
)
_NAMED = {
    exp.Case: "CASE",
    exp.If: "CASE/IF",
    exp.Coalesce: "COALESCE/IFNULL",
    exp.Nullif: "NULLIF",
    exp.Window: "a window definition (OVER)",
    exp.Distinct: "DISTINCT",
}
_SHORT_CIRCUIT = (exp.And, exp.Or, exp.Not, exp.Xor)


def branching(parent: exp.Expr, key: str | None) -> str:
    """Why a value reaching ``parent`` (as its argument ``key``) in a select list could
    decide the outcome (the clause the refusal names), or "" when it is passed along."""
    if isinstance(parent, _CARRIERS):
        return ""
    for kind, name in _NAMED.items():
        if isinstance(parent, kind):
            return name
    if isinstance(parent, _SHORT_CIRCUIT):
        return "AND/OR/NOT in the select list (short-circuit evaluation)"
    if isinstance(parent, exp.Cast):
        target = parent.to.this.name if isinstance(parent.to, exp.DataType) else ""
        return "" if target in TEXT_TYPES else f"a cast to {target or 'another type'}"
    if isinstance(parent, exp.Func):
        name = parent.name.upper() if isinstance(parent, exp.Anonymous) else parent.sql_name()
        total = TOTAL_FUNCTIONS.get(name, frozenset())
        if total == ALL_ARGUMENTS or key in total:
            return ""
        return f"an argument of {name.lower()}() (it can fail or branch on some values)"
    if isinstance(parent, exp.Binary):
        return f"the expression {parent.key.upper()} (it can fail on some values)"
    return f"{type(parent).__name__} in the select list"


# Clauses of a SELECT (sqlglot's argument names) in which a value decides the result's rows.
_SELECT_CLAUSES = {
    "where": "WHERE",
    "group": "GROUP BY",
    "having": "HAVING",
    "qualify": "QUALIFY",
    "order": "ORDER BY",
    "limit": "LIMIT",
    "offset": "OFFSET",
    "distinct": "DISTINCT",
    "windows": "a window definition (WINDOW)",
}
_MODIFY_CLAUSES = {"where": "WHERE", "order": "ORDER BY", "limit": "LIMIT"}
_JOIN_CLAUSES = {"on": "JOIN ON", "using": "JOIN USING"}
_WINDOW_CLAUSES = frozenset({"partition_by", "order", "spec"})


# Nodes between a query and the query or statement around it: they carry its rows as they
# are (a CTE's rows are decided where it is read: ``stand_ins``).
_QUERY_PARTS = (exp.SetOperation, exp.Query, exp.From, exp.CTE, exp.With)


class Clauses:
    """The upward walks of one statement's tree, remembered per node: every column of a
    left-deep ``a OR b OR …`` of n terms walks through up to n parents, n² in all without it
    (a 5,000-term OR took the agent 12 s to analyse)."""

    def __init__(self) -> None:
        # id(node) -> (the clause found above it, the innermost branching reason above it)
        self._deciding: dict[int, tuple[str, str]] = {}
        self._query: dict[int, tuple[str, exp.Select | exp.SetOperation | None]] = {}

    def deciding(self, column: exp.Expr) -> str:
        """``deciding_clause`` of ``column``."""
        path: list[tuple[exp.Expr, str]] = []
        node, found = column, ("", "")
        while node.parent is not None:
            known = self._deciding.get(id(node))
            if known is not None:
                found = known
                break
            clause, branch = _step(node)
            if clause:
                found = (clause, "")
                self._deciding[id(node)] = found
                break
            path.append((node, branch))
            node = node.parent
        for node, branch in reversed(path):  # the innermost branching reason wins
            found = (found[0], branch or found[1])
            self._deciding[id(node)] = found
        return found[0] or found[1]

    def query_of(self, node: exp.Expr) -> tuple[str, exp.Select | exp.SetOperation | None]:
        """The argument of the nearest enclosing query that holds ``node`` (``where``,
        ``order`` …; "expressions" for its select list), with that query."""
        path: list[exp.Expr] = []
        child = node
        found: tuple[str, exp.Select | exp.SetOperation | None] = ("", None)
        while child.parent is not None:
            known = self._query.get(id(child))
            if known is not None:
                found = known
                break
            if isinstance(child.parent, exp.Select | exp.SetOperation):
                found = (child.arg_key or "", child.parent)
                break
            path.append(child)
            child = child.parent
        for child in path:
            self._query[id(child)] = found
        return found


def deciding_clause(column: exp.Expr, clauses: Clauses | None = None) -> str:
    """The innermost clause in which the value of ``column`` decides which rows come back,
    how many or in which order (named in the refusal), or "" when it only flows to output:
    WHERE, JOIN, GROUP BY, HAVING, ORDER BY, LIMIT, window definitions, the select list
    of a SELECT DISTINCT and of a set operation that compares rows (all but UNION ALL), and
    a select-list expression that can fail or branch on it (``inference.branching``)."""
    return (clauses or Clauses()).deciding(column)


def _step(node: exp.Expr) -> tuple[str, str]:
    """What ``node``'s place in its parent says: the clause it decides (the walk stops
    there), or why a select-list value there could decide the outcome."""
    parent, key = node.parent, node.arg_key
    assert parent is not None
    if isinstance(parent, exp.Select):
        if key in _SELECT_CLAUSES:
            return _SELECT_CLAUSES[key], ""
        if key == "expressions":
            if parent.args.get("distinct") is not None:
                return "DISTINCT", ""
            compared = _compared_by(parent)
            if compared:
                return compared, ""
    elif isinstance(parent, exp.SetOperation) and key in _SELECT_CLAUSES:
        return _SELECT_CLAUSES[key], ""
    elif isinstance(parent, exp.Update | exp.Delete) and key in _MODIFY_CLAUSES:
        return _MODIFY_CLAUSES[key], ""
    elif isinstance(parent, exp.Join) and key in _JOIN_CLAUSES:
        return _JOIN_CLAUSES[key], ""
    elif isinstance(parent, exp.Window) and key in _WINDOW_CLAUSES:
        return "a window definition (OVER)", ""
    elif not isinstance(parent, _QUERY_PARTS):
        return "", branching(parent, key)
    return "", ""


def _compared_by(select: exp.Select) -> str:
    """UNION / INTERSECT / EXCEPT when ``select`` is a branch of one that compares rows."""
    branch: exp.Expr = select
    while isinstance(branch.parent, exp.Subquery | exp.Paren):
        branch = branch.parent
    operation = branch.parent
    if not isinstance(operation, exp.SetOperation) or branch.arg_key not in ("this", "expression"):
        return ""
    if not operation.args.get("distinct"):
        return ""
    return type(operation).__name__.upper()


def exact_lookup_columns(where: exp.Expression) -> set[int]:
    """ids of the columns that a top-level conjunct of ``where`` compares for equality with
    constants or parameters (``email = ?``, ``email IN ('a', 'b')``): what a rule allowing
    exact lookups permits, and nothing else."""
    found: set[int] = set()
    for conjunct in where.flatten() if isinstance(where, exp.And) else [where]:
        if isinstance(conjunct, exp.EQ):
            left, right = conjunct.this, conjunct.expression
            if isinstance(left, exp.Column) and _constant(right):
                found.add(id(left))
            elif isinstance(right, exp.Column) and _constant(left):
                found.add(id(right))
        elif isinstance(conjunct, exp.In) and isinstance(conjunct.this, exp.Column):
            items = conjunct.expressions
            if items and not conjunct.args.get("query") and all(_constant(i) for i in items):
                found.add(id(conjunct.this))
    return found


def _constant(node: exp.Expression) -> bool:
    while isinstance(node, exp.Cast | exp.Paren):
        node = node.this
    return isinstance(node, exp.Literal | exp.Placeholder)


# Clauses of a SELECT in which MySQL resolves a bare name to a select-list alias first, and
# those in which a bare integer is a select-list position.
_ALIAS_CLAUSES = frozenset({"order", "group", "having"})
_POSITION_CLAUSES = frozenset({"order", "group"})


def stand_ins(node: exp.Expr, clauses: Clauses | None = None) -> list[exp.Expr]:
    """The select-list expressions a name or position in a clause stands for, whose values
    the clause then compares: ``ORDER BY 2`` / ``GROUP BY e`` / ``HAVING e`` (alias ``e``),
    a set operation's ORDER BY (every branch's expression at that place), and a derived
    table's or CTE's output column (``t.e`` with ``t AS (SELECT email AS e …)``: a star
    there stands for every column).  [] when ``node`` is none of these."""
    clause, query = (clauses or Clauses()).query_of(node)
    if query is None:
        return []
    if isinstance(node, exp.Literal):
        if node.is_string or clause not in _POSITION_CLAUSES or not node.this.isdigit():
            return []
        if not isinstance(node.parent, exp.Ordered | exp.Group):
            return []  # ORDER BY 1 + 0 sorts by a constant
        return _at(query, int(node.this) - 1)
    if not isinstance(node, exp.Column) or _is_star_column(node):
        return []
    found: list[exp.Expr] = []
    if not node.table and clause in _ALIAS_CLAUSES:
        found += _named(query, node.name)
    if isinstance(query, exp.Select):
        for source in _sources(query, node.table):
            found += _named(source, node.name) or _stars(source)
    return found


def _branches(query: exp.Expr) -> list[exp.Select]:
    """The SELECTs whose select lists give ``query``'s output columns."""
    while isinstance(query, exp.Subquery | exp.Paren):
        query = query.this
    if isinstance(query, exp.SetOperation):
        return _branches(query.this) + _branches(query.expression)
    return [query] if isinstance(query, exp.Select) else []


def _at(query: exp.Expr, index: int) -> list[exp.Expr]:
    found = []
    for branch in _branches(query):
        items = branch.expressions
        if any(_is_star_column(item) for item in items):
            found += [i for i in items if _is_star_column(i)]  # which column: any of them
        elif 0 <= index < len(items):
            found.append(items[index])
    return found


def _named(query: exp.Expr, name: str) -> list[exp.Expr]:
    """The select-list expressions called ``name`` (MySQL names are case-insensitive); for
    a set operation, those at the place the first branch gives that name."""
    branches = _branches(query)
    if not branches:
        return []
    first = [item.alias_or_name.lower() for item in branches[0].expressions]
    if name.lower() not in first:
        return []
    return _at(query, first.index(name.lower()))


def _stars(query: exp.Expr) -> list[exp.Expr]:
    return [i for b in _branches(query) for i in b.expressions if _is_star_column(i)]


def _sources(select: exp.Select, qualifier: str) -> list[exp.Expr]:
    """The derived tables and CTEs in ``select``'s FROM and JOINs that a column qualified
    with ``qualifier`` ("" = unqualified: any of them) may read."""
    ctes: dict[str, exp.Expr] = {}
    scope: exp.Expr | None = select
    while scope is not None:  # CTEs of this query and of those around it
        with_ = scope.args.get("with_") or scope.args.get("with")
        for cte in with_.expressions if isinstance(with_, exp.With) else ():
            ctes.setdefault(cte.alias_or_name, cte.this)
        scope = scope.parent
    items = [select.args.get("from_") or select.args.get("from")]
    items += [join for join in select.args.get("joins") or ()]
    found = []
    for item in items:
        source = item.this if isinstance(item, exp.From | exp.Join) else None
        if isinstance(source, exp.Subquery) and qualifier in ("", source.alias_or_name):
            found.append(source.this)
        elif (
            isinstance(source, exp.Table)
            and not source.db
            and source.name in ctes
            and qualifier in ("", source.alias_or_name)
        ):
            found.append(ctes[source.name])
    return found


def _is_star_column(node: exp.Expr) -> bool:
    return isinstance(node, exp.Star) or (
        isinstance(node, exp.Column) and isinstance(node.this, exp.Star)
    )


def join_stand_ins(join: exp.Join) -> list[exp.Expr]:
    """The derived tables' and CTEs' select-list expressions a ``USING (…)`` or NATURAL join
    compares (names no column reference spells)."""
    select = join.parent
    if not isinstance(select, exp.Select):
        return []
    names = [item.name for item in join.args.get("using") or ()]
    natural = str(join.args.get("method") or "").upper() == "NATURAL"
    found: list[exp.Expr] = []
    for source in _sources(select, ""):
        if natural:
            found += [item for branch in _branches(source) for item in branch.expressions]
        for name in names:
            found += _named(source, name) or _stars(source)
    return found
