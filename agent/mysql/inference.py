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


def deciding_clause(column: exp.Expr) -> str:
    """The innermost clause in which the value of ``column`` decides which rows come back,
    how many or in which order (named in the refusal), or "" when it only flows to output:
    WHERE, JOIN, GROUP BY, HAVING, ORDER BY, LIMIT, window definitions, the select list
    of a SELECT DISTINCT and of a set operation that compares rows (all but UNION ALL), and
    a select-list expression that can fail or branch on it (``inference.branching``)."""
    node = column
    branch = ""
    while node.parent is not None:
        parent, key = node.parent, node.arg_key
        if isinstance(parent, exp.Select):
            if key in _SELECT_CLAUSES:
                return _SELECT_CLAUSES[key]
            if key == "expressions":
                if parent.args.get("distinct") is not None:
                    return "DISTINCT"
                compared = _compared_by(parent)
                if compared:
                    return compared
        elif isinstance(parent, exp.SetOperation) and key in _SELECT_CLAUSES:
            return _SELECT_CLAUSES[key]
        elif isinstance(parent, exp.Update | exp.Delete) and key in _MODIFY_CLAUSES:
            return _MODIFY_CLAUSES[key]
        elif isinstance(parent, exp.Join) and key in _JOIN_CLAUSES:
            return _JOIN_CLAUSES[key]
        elif isinstance(parent, exp.Window) and key in _WINDOW_CLAUSES:
            return "a window definition (OVER)"
        elif not branch and not isinstance(parent, exp.SetOperation | exp.Query | exp.From):
            branch = branching(parent, key)
        node = parent
    return branch


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
