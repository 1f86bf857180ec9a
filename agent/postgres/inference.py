"""Which uses of a column can let a caller infer its value without seeing it.

A masked column's value must not decide anything the caller can observe: which rows come
back, how many, in which order, or whether the statement fails.  The analyser (``sql.py``)
marks every such use as a *predicate* with the clause that makes it one; the policy engine
refuses predicates on masked columns (42501, naming column and clause) unless the rule allows
exact lookups and the use is one (``exact_lookup_refs``).

Clauses are predicates by position (WHERE, JOIN, GROUP BY, ORDER BY, DISTINCT, window
definitions, LIMIT, set operations that compare rows).  In the select list a value reaches
the output, which is redacted as a whole, so only what can *fail or branch* on it decides
anything: ``CASE WHEN email LIKE 'a%' THEN 1/0 END`` errors exactly when some e-mail starts
with ``a``, ``generate_series(1, length(email))`` returns as many rows as the e-mail is long.
So in the select list a masked value may only flow through expressions that are total in
that argument (they never raise and return one value): bare columns, comparisons,
concatenation, text casts and the few functions listed below.  Anything else (CASE, COALESCE,
AND/OR, arithmetic, other casts, other functions, window definitions) is a predicate too.
"""

from __future__ import annotations

from typing import Any

from pglast import ast
from pglast.enums import A_Expr_Kind, BoolExprType

ALL_ARGUMENTS = frozenset({-1})

# Functions that never raise and return one row whatever the value in the listed argument
# positions (0-based; ALL_ARGUMENTS = every one).  split_part's field number, substr's
# length, lpad's length can raise (zero, negative, too large), so only the text is listed.
TOTAL_FUNCTIONS: dict[str, frozenset[int]] = {
    **dict.fromkeys(
        (
            "count",
            "min",
            "max",
            "string_agg",
            "array_agg",
            "json_agg",
            "jsonb_agg",
            "upper",
            "lower",
            "initcap",
            "length",
            "char_length",
            "character_length",
            "octet_length",
            "bit_length",
            "md5",
            "concat",
            "concat_ws",
            "reverse",
            "btrim",
            "ltrim",
            "rtrim",
            "replace",
            "strpos",
            "to_json",
            "to_jsonb",
            "row_to_json",
            "json_build_array",
            "jsonb_build_array",
            "num_nonnulls",
            "num_nulls",
        ),
        ALL_ARGUMENTS,
    ),
    "split_part": frozenset({0, 1}),
    "left": frozenset({0}),
    "right": frozenset({0}),
    "substr": frozenset({0}),
    "substring": frozenset({0}),
    "lpad": frozenset({0, 2}),
    "rpad": frozenset({0, 2}),
    "date_part": frozenset({1}),
    "extract": frozenset({1}),
    "date_trunc": frozenset({1}),
    "to_char": frozenset({0}),
}
# Casts that accept every value of every type.
TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "char", "name", "character varying"})
# Operators that compare or concatenate: they never raise on a value (a LIKE or regular
# expression pattern can be invalid; arithmetic can overflow or divide by zero).
TOTAL_OPERATORS = frozenset({"=", "<>", "!=", "<", ">", "<=", ">=", "||"})
_TOTAL_EXPR_KINDS = frozenset(
    {A_Expr_Kind.AEXPR_DISTINCT, A_Expr_Kind.AEXPR_NOT_DISTINCT, A_Expr_Kind.AEXPR_IN}
)
# Nodes that only carry their children's values along (or are constants).
_CARRIERS = (
    ast.ColumnRef,
    ast.ResTarget,
    ast.A_Const,
    ast.ParamRef,
    ast.A_Star,
    ast.String,
    ast.TypeName,
    ast.RowExpr,
    ast.A_ArrayExpr,
    ast.A_Indirection,
    ast.A_Indices,
    ast.NullTest,
    ast.BooleanTest,
    ast.SubLink,
    ast.SQLValueFunction,
    ast.CollateClause,
    ast.MinMaxExpr,
    ast.SortBy,
    ast.GroupingFunc,
    ast.Integer,
    ast.Float,
    ast.Boolean,
)
# Clauses of SELECT whose expressions are predicates, with the name the refusal gives them.
SELECT_CLAUSES = (
    ("whereClause", "WHERE"),
    ("groupClause", "GROUP BY"),
    ("havingClause", "HAVING"),
    ("sortClause", "ORDER BY"),
    ("windowClause", "WINDOW"),
    ("distinctClause", "DISTINCT ON"),
    ("limitCount", "LIMIT"),
    ("limitOffset", "OFFSET"),
)
_SET_OPERATIONS = {1: "UNION", 2: "INTERSECT", 3: "EXCEPT"}


def deciding_node(node: Any) -> str | None:
    """Why a value reaching this node in the select list could decide the outcome (the
    clause name the refusal gives), or None when the node passes values along untouched.
    Function calls are judged per argument by ``total_arguments``."""
    if isinstance(node, (*_CARRIERS, ast.FuncCall)):
        return None
    if isinstance(node, ast.TypeCast):
        names = cast_type_names(node)
        if names and names[-1] in TEXT_TYPES:
            return None
        return f"a cast to {names[-1]}" if names else "a cast"
    if isinstance(node, ast.A_Expr):
        operator = node.name[-1].sval if node.name else ""
        if node.kind == A_Expr_Kind.AEXPR_OP and operator in TOTAL_OPERATORS:
            return None
        if node.kind in _TOTAL_EXPR_KINDS:
            return None
        kind = node.kind.name if node.kind is not None else "operator"
        return f"the expression {operator or kind} (it can fail on some values)"
    if isinstance(node, ast.CaseExpr | ast.CaseWhen):
        return "CASE"
    if isinstance(node, ast.CoalesceExpr):
        return "COALESCE"
    if isinstance(node, ast.BoolExpr):
        return "AND/OR/NOT in the select list (short-circuit evaluation)"
    if isinstance(node, ast.WindowDef):
        return "a window definition (OVER)"
    return f"{type(node).__name__} in the select list"


def total_arguments(function: str) -> frozenset[int]:
    """Argument positions in which ``function`` is total (ALL_ARGUMENTS for every one)."""
    return TOTAL_FUNCTIONS.get(function, frozenset())


def function_argument_clause(function: str, index: int) -> str:
    return f"argument {index + 1} of {function}() (it can fail or return several rows)"


def set_operation_clause(node: ast.SelectStmt) -> str:
    """The clause name when a set operation compares its rows (all but UNION ALL), else ""."""
    operation = _SET_OPERATIONS.get(int(node.op or 0), "")
    if not operation or (operation == "UNION" and node.all):
        return ""
    return f"{operation}{' ALL' if node.all else ''}"


def set_operation_order_positions(node: ast.SelectStmt) -> frozenset[int]:
    """The output positions (0-based) a set operation's ORDER BY sorts on: a number, or a
    name of the first branch's outputs (PostgreSQL allows nothing else there).  A name not
    given before the first branch's first star may be any output the star gives: every
    position from the star's on (``ordered_values`` widens them to every entry from there)."""
    branches = _branches(node)
    first = [e.val for e in _outputs(branches[0])] if branches else []
    star = _first_star(first)
    names = [_entry_name(e) for e in _outputs(branches[0])][:star] if branches else []
    widest = max((len(list(_outputs(b))) for b in branches), default=0)
    positions: set[int] = set()
    for item in node.sortClause or ():
        key = getattr(item, "node", item)
        if isinstance(key, ast.A_Const) and isinstance(key.val, ast.Integer):
            positions.add(int(key.val.ival or 0) - 1)
        elif isinstance(key, ast.ColumnRef) and len(key.fields or ()) == 1:
            name = _string(key.fields[0])  # type: ignore[index]
            given = {index for index, found in enumerate(names) if found == name}
            if not given and star < len(first):
                given = set(range(star, max(widest, star + 1)))
            positions |= given
    return frozenset(p for p in positions if p >= 0)


def ordered_values(values: list[Any], positions: frozenset[int]) -> list[Any]:
    """The select-list (or VALUES row) expressions that can give output ``positions``: one
    output each until the first star; a star gives an unknown number of outputs (the
    analyser has no catalog; a table may even have none), so a position at or past it may
    be any expression from the star on: all of them are taken (fail closed)."""
    star = _first_star(values)
    chosen = {p for p in positions if 0 <= p < star}
    if any(p >= star for p in positions):
        chosen |= set(range(star, len(values)))
    return [values[index] for index in sorted(chosen) if index < len(values)]


def is_star(node: Any) -> bool:
    """``*``, ``t.*`` or ``(expr).*``: as many outputs as the relation or type has."""
    if isinstance(node, ast.A_Indirection):
        return bool(node.indirection) and isinstance(node.indirection[-1], ast.A_Star)  # type: ignore[index]
    if not isinstance(node, ast.ColumnRef):
        return False
    fields: Any = node.fields or ()
    return bool(fields) and isinstance(fields[-1], ast.A_Star)


def _first_star(values: list[Any]) -> int:
    return next((index for index, value in enumerate(values) if is_star(value)), len(values))


def plain_distinct(node: ast.SelectStmt) -> bool:
    """``SELECT DISTINCT`` (not DISTINCT ON): the whole select list decides the row count."""
    clause = node.distinctClause
    return bool(clause) and all(item is None for item in clause or ())


def exact_lookup_refs(where: Any) -> set[int]:
    """ids of the column references that a top-level conjunct of ``where`` compares for
    equality with constants or parameters (``email = $1``, ``email IN ('a', 'b')``,
    ``email = ANY($1)``): what a rule allowing exact lookups permits, and nothing else."""
    found: set[int] = set()
    for conjunct in _conjuncts(where):
        if not isinstance(conjunct, ast.A_Expr) or not conjunct.name:
            continue
        if conjunct.name[-1].sval != "=":
            continue
        left, right = conjunct.lexpr, conjunct.rexpr
        if conjunct.kind == A_Expr_Kind.AEXPR_OP:
            if isinstance(left, ast.ColumnRef) and _constant(right):
                found.add(id(left))
            elif isinstance(right, ast.ColumnRef) and _constant(left):
                found.add(id(right))
        elif conjunct.kind == A_Expr_Kind.AEXPR_IN and isinstance(left, ast.ColumnRef):
            if all(_constant(item) for item in right or ()):
                found.add(id(left))
        elif conjunct.kind == A_Expr_Kind.AEXPR_OP_ANY and isinstance(left, ast.ColumnRef):
            elements = right.elements or () if isinstance(right, ast.A_ArrayExpr) else (right,)
            if all(_constant(element) for element in elements):
                found.add(id(left))
    return found


def _conjuncts(node: Any) -> list[Any]:
    if isinstance(node, ast.BoolExpr) and node.boolop == BoolExprType.AND_EXPR:
        return [item for arg in node.args or () for item in _conjuncts(arg)]
    return [] if node is None else [node]


def _constant(node: Any) -> bool:
    while isinstance(node, ast.TypeCast):
        node = node.arg
    return isinstance(node, ast.A_Const | ast.ParamRef)


def cast_type_names(cast: ast.TypeCast) -> list[str]:
    """The name parts of the type ``cast`` casts to (``pg_catalog``, ``int4``)."""
    names = cast.typeName.names if cast.typeName is not None else None
    return [n.sval for n in names or () if isinstance(n, ast.String) and n.sval is not None]


def derived_column_refs(
    query: Any,
    names: Any,
    column: str | None,
    ctes: dict[str, list[tuple[Any, Any]]],
    depth: int = 0,
) -> list[ast.ColumnRef]:
    """The column references behind output ``column`` of a derived table's or CTE's ``query``
    (``names``: the column names its alias gives, else those of its select list; None or a
    name it does not give: every output), through the derived tables and CTEs it reads."""
    found: list[ast.ColumnRef] = []
    if depth > 8:
        return found
    for branch in _branches(query):
        entries = list(_outputs(branch))
        given = [_string(n) for n in names or ()] or [_entry_name(e) for e in entries]
        chosen = [e for i, e in enumerate(entries) if i < len(given) and given[i] == column]
        for entry in chosen or entries:
            for ref in _refs(entry.val):
                found.append(ref)
                last = ref.fields[-1] if ref.fields else None
                inner = _string(last) if isinstance(last, ast.String) else None
                for source, source_names in _sources(branch, ctes):
                    found += derived_column_refs(source, source_names, inner, ctes, depth + 1)
    return found


def _outputs(branch: Any) -> Any:
    """A SELECT's select list, a data-modifying statement's RETURNING list."""
    if isinstance(branch, ast.SelectStmt):
        return branch.targetList or ()
    returning = branch.returningClause
    return returning.exprs or () if returning is not None else ()


def _branches(query: Any) -> list[Any]:
    """The SELECTs (or the data-modifying statement, by its RETURNING list) giving
    ``query``'s output columns."""
    if isinstance(query, ast.InsertStmt | ast.UpdateStmt | ast.DeleteStmt | ast.MergeStmt):
        return [query]
    if not isinstance(query, ast.SelectStmt):
        return []
    if query.op is not None and int(query.op) != 0:
        return _branches(query.larg) + _branches(query.rarg)
    return [query]


def _sources(select: Any, ctes: dict[str, list[tuple[Any, Any]]]) -> list[tuple[Any, Any]]:
    """The derived tables and CTE references in ``select``'s FROM, with their column names."""
    found: list[tuple[Any, Any]] = []
    pending = list(getattr(select, "fromClause", None) or ())
    while pending:
        item = pending.pop()
        if isinstance(item, ast.JoinExpr):
            pending += [item.larg, item.rarg]
        elif isinstance(item, ast.RangeSubselect):
            found.append((item.subquery, item.alias.colnames if item.alias else None))
        elif isinstance(item, ast.RangeVar) and item.schemaname is None:
            given = item.alias.colnames if item.alias is not None else None
            found += [(q, given or cols) for q, cols in ctes.get(item.relname or "", [])]
    return found


def _entry_name(entry: Any) -> str:
    if entry.name:
        return str(entry.name)
    value = entry.val
    if isinstance(value, ast.ColumnRef) and value.fields:
        last = value.fields[-1]
        return _string(last) if isinstance(last, ast.String) else ""
    return ""


def _string(node: Any) -> str:
    return (node.sval or "") if isinstance(node, ast.String) else ""


def _refs(node: Any) -> list[ast.ColumnRef]:
    """Every column reference under ``node`` (sub-selects included: they may be correlated)."""
    if isinstance(node, ast.ColumnRef):
        return [node]
    if isinstance(node, tuple | list):
        return [ref for item in node for ref in _refs(item)]
    if not isinstance(node, ast.Node):
        return []
    slots = getattr(type(node), "__slots__", ())
    return [ref for attr in slots for ref in _refs(getattr(node, attr, None))]
