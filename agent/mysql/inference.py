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
