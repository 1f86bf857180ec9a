"""Whether a DELETE/UPDATE condition (or MERGE ... ON) can hold for every row of its target.

"Without WHERE" guardrails judge what a condition means, not whether one is written:
``WHERE 1 = 1``, ``WHERE id = id``, ``WHERE true OR id = 5``, ``WHERE email LIKE '%'``,
``WHERE EXISTS (SELECT 1 FROM orders)`` and ``WHERE (SELECT true)`` all reach every row.

The condition is folded on the parse tree into one of three values:

``EVERY``   may hold for every row: it does not read the target row (a constant, a
            sub-select about other tables, ``now() > '2000-01-01'``), or it is a tautology
            over it (``x = x``, ``x IS NULL OR x IS NOT NULL``, ``P OR NOT P``).  A condition
            that does not depend on the row holds for all rows or for none, so unless it
            folds to false it counts as no condition at all.
``NONE``    folds to false (``1 = 0``, ``id <> id``): the statement changes nothing.
``SOME``    depends on the row in a way this folding cannot settle: a real condition.

Comparisons with a NULL side are treated as their non-NULL reading: ``x = x`` is not true
for NULL x, but a guardrail that accepted it would accept a statement written to hit all rows.
"""

from __future__ import annotations

from typing import Any

from pglast import ast
from pglast.enums import A_Expr_Kind, BoolExprType, BoolTestType, NullTestType

from agent.postgres.inference import cast_type_names

EVERY, NONE, SOME = "every", "none", "some"

_SAME_TRUE = frozenset({"=", ">=", "<="})
_SAME_FALSE = frozenset({"<>", "!=", "<", ">"})
_MATCH_ALL_PATTERNS = frozenset({"%", "%%", ".*", ""})
_BETWEEN = (A_Expr_Kind.AEXPR_BETWEEN, A_Expr_Kind.AEXPR_BETWEEN_SYM)
# LIKE '%', ILIKE '%', ~ '' and ~ '.*' match every non-NULL text.
_PATTERN_OPERATORS = frozenset({"~~", "~~*", "~", "~*"})
_PATTERN_KINDS = (A_Expr_Kind.AEXPR_LIKE, A_Expr_Kind.AEXPR_ILIKE, A_Expr_Kind.AEXPR_OP)
_TRUE_WORDS = frozenset({"t", "true", "y", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"f", "false", "n", "no", "off", "0"})
_COMPARE = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}


def covers_every_row(condition: Any, target: ast.RangeVar | None) -> bool:
    """True when ``condition`` (None = no condition) may select every row of ``target``
    (an unknown target: assumed so, the guardrail fails closed)."""
    if condition is None or target is None:
        return True
    names = {target.relname or ""}
    if target.alias is not None:
        names = {target.alias.aliasname or ""}
    return _fold(condition, names) == EVERY


def _fold(node: Any, target: set[str]) -> str:
    if not _reads_target(node, target, top=True):
        return NONE if _constant_value(node) is False else EVERY
    if isinstance(node, ast.BoolExpr):
        return _fold_bool(node, target)
    if isinstance(node, ast.A_Expr):
        return _fold_comparison(node)
    if isinstance(node, ast.TypeCast):
        return _fold(node.arg, target)
    if isinstance(node, ast.BooleanTest):
        inner = _fold(node.arg, target)
        if inner == SOME:
            return SOME
        holds = (
            {
                BoolTestType.IS_TRUE: inner == EVERY,
                BoolTestType.IS_NOT_FALSE: inner == EVERY,
                BoolTestType.IS_FALSE: inner == NONE,
                BoolTestType.IS_NOT_TRUE: inner == NONE,
            }.get(node.booltesttype)
            if node.booltesttype is not None
            else None
        )
        return SOME if holds is None else (EVERY if holds else NONE)
    if isinstance(node, ast.CaseExpr):
        results = [_fold(when.result, target) for when in node.args or ()]
        results.append(_fold(node.defresult, target) if node.defresult is not None else NONE)
        return EVERY if all(r == EVERY for r in results) else SOME
    if isinstance(node, ast.CoalesceExpr):
        folded = [_fold(arg, target) for arg in node.args or ()]
        return EVERY if folded and all(f == EVERY for f in folded) else SOME
    return SOME


def _fold_bool(node: ast.BoolExpr, target: set[str]) -> str:
    folded = [_fold(arg, target) for arg in node.args or ()]
    if node.boolop == BoolExprType.NOT_EXPR:
        return {EVERY: NONE, NONE: EVERY}.get(folded[0], SOME)
    if node.boolop == BoolExprType.AND_EXPR:
        if NONE in folded:
            return NONE
        return EVERY if all(f == EVERY for f in folded) else SOME
    if EVERY in folded or _complementary(list(node.args or ())):
        return EVERY
    return NONE if all(f == NONE for f in folded) else SOME


def _fold_comparison(node: ast.A_Expr) -> str:
    operator = node.name[-1].sval if node.name else ""
    left, right = node.lexpr, node.rexpr
    if node.kind == A_Expr_Kind.AEXPR_OP and _same(left, right):
        if operator in _SAME_TRUE:
            return EVERY
        if operator in _SAME_FALSE:
            return NONE
    if node.kind == A_Expr_Kind.AEXPR_NOT_DISTINCT and _same(left, right):
        return EVERY
    if node.kind == A_Expr_Kind.AEXPR_DISTINCT and _same(left, right):
        return NONE
    in_list = node.kind == A_Expr_Kind.AEXPR_IN and operator == "="
    if in_list and any(_same(left, item) for item in right or ()):
        return EVERY
    bounds = list(right or ()) if node.kind in _BETWEEN else []
    if len(bounds) == 2 and _same(left, bounds[0]) and _same(left, bounds[1]):
        return EVERY
    matches_all = operator in _PATTERN_OPERATORS and _constant_value(right) in _MATCH_ALL_PATTERNS
    if matches_all and node.kind in _PATTERN_KINDS:
        return EVERY
    return SOME


def _complementary(args: list[Any]) -> bool:
    """``P OR NOT P``, ``x IS NULL OR x IS NOT NULL``, ``P IS TRUE OR P IS NOT TRUE``."""
    for index, first in enumerate(args):
        for second in args[index + 1 :]:
            for a, b in ((first, second), (second, first)):
                if (
                    isinstance(b, ast.BoolExpr)
                    and b.boolop == BoolExprType.NOT_EXPR
                    and b.args
                    and _same(a, b.args[0])
                ):
                    return True
                if (
                    isinstance(a, ast.NullTest)
                    and isinstance(b, ast.NullTest)
                    and a.nulltesttype == NullTestType.IS_NULL
                    and b.nulltesttype == NullTestType.IS_NOT_NULL
                    and _same(a.arg, b.arg)
                ):
                    return True
                if (
                    isinstance(a, ast.BooleanTest)
                    and isinstance(b, ast.BooleanTest)
                    and _same(a.arg, b.arg)
                    and {a.booltesttype, b.booltesttype} in _OPPOSITE_TESTS
                ):
                    return True
    return False


_OPPOSITE_TESTS: list[set[BoolTestType | None]] = [
    {BoolTestType.IS_TRUE, BoolTestType.IS_NOT_TRUE},
    {BoolTestType.IS_FALSE, BoolTestType.IS_NOT_FALSE},
    {BoolTestType.IS_UNKNOWN, BoolTestType.IS_NOT_UNKNOWN},
]


def _same(a: Any, b: Any) -> bool:
    """Structurally equal expressions (source locations aside)."""
    if a is None or b is None:
        return False
    return _shape(a) == _shape(b)


def _shape(node: Any) -> Any:
    if isinstance(node, tuple | list):
        return tuple(_shape(item) for item in node)
    if not isinstance(node, ast.Node):
        return node
    return (
        type(node).__name__,
        tuple(
            (attr, _shape(getattr(node, attr, None)))
            for attr in _slots(node)
            if attr != "location" and not attr.endswith("_location")
        ),
    )


def _reads_target(node: Any, target: set[str], *, top: bool) -> bool:
    """Whether ``node`` reads the target row: a column qualified with the target's name, or
    an unqualified one outside sub-selects (inside, it usually names the sub-select's own)."""
    if isinstance(node, ast.ColumnRef):
        names = [f.sval for f in node.fields or () if isinstance(f, ast.String)]
        if len(names) == 1:
            return top or names[0] in target  # a bare `customers` is the whole target row
        return len(names) >= 2 and names[-2] in target
    if isinstance(node, ast.SelectStmt):
        return any(_reads_target(child, target, top=False) for child in _children(node))
    if isinstance(node, tuple | list):
        return any(_reads_target(item, target, top=top) for item in node)
    if not isinstance(node, ast.Node):
        return False
    return any(_reads_target(child, target, top=top) for child in _children(node))


def _children(node: Any) -> list[Any]:
    return [getattr(node, attr, None) for attr in _slots(node)]


def _slots(node: Any) -> tuple[str, ...]:
    """The attribute names of a pglast node."""
    return tuple(type(node).__slots__)


def _constant_value(node: Any) -> Any:
    """The value of a constant expression (booleans folded), or None when not constant."""
    while isinstance(node, ast.TypeCast):
        cast_to = cast_type_names(node)
        inner = _constant_value(node.arg)
        if cast_to and cast_to[-1] in ("bool", "boolean") and inner is not None:
            word = str(inner).lower()
            return True if word in _TRUE_WORDS else False if word in _FALSE_WORDS else None
        return inner
    if isinstance(node, ast.A_Const):
        if node.isnull:
            return False  # NULL selects nothing
        value = node.val
        if isinstance(value, ast.Boolean):
            return bool(value.boolval)
        if isinstance(value, ast.Integer):
            return value.ival
        if isinstance(value, ast.Float):
            return None if value.fval is None else float(value.fval)
        if isinstance(value, ast.String):
            return value.sval
        return None
    if isinstance(node, ast.BoolExpr):
        values = [_constant_value(arg) for arg in node.args or ()]
        if node.boolop == BoolExprType.NOT_EXPR:
            return None if not isinstance(values[0], bool) else not values[0]
        if node.boolop == BoolExprType.AND_EXPR:
            return False if False in values else (True if all(v is True for v in values) else None)
        return True if True in values else (False if all(v is False for v in values) else None)
    if isinstance(node, ast.A_Expr) and node.kind == A_Expr_Kind.AEXPR_OP and node.name:
        compare = _COMPARE.get(node.name[-1].sval or "")
        left, right = _constant_value(node.lexpr), _constant_value(node.rexpr)
        if compare is None or left is None or right is None:
            return None
        try:
            return bool(compare(left, right))
        except TypeError:  # '1' = 1: PostgreSQL casts the literal; compare as text
            return bool(compare(str(left), str(right)))
    return None
