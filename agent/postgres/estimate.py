"""The planner's estimate of the rows a statement's UPDATE/DELETE/MERGE change, for the
"affects more than N rows" guardrail (``agent/row_limits.py``).

Each statement of the text that changes rows is prepared and explained on the agent's side
connection to the upstream (the datasource's own role, the session's search_path), inside
a READ ONLY transaction that is rolled back: EXPLAIN without ANALYZE plans and never runs
it.  Preparing it first lets parameters (``$1``) be explained with a generic plan, whose
estimate does not depend on the values (``plan_cache_mode = force_generic_plan``).  The
estimate is the sum, over every ModifyTable node that updates, deletes or merges (also
inside data-modifying CTEs), of the rows its input is expected to produce.

What it cannot see fails closed (the caller refuses): a table only the session's own
transaction can see (created and not committed, or a temporary table), a statement the
planner rejects.
"""

from __future__ import annotations

import json
from typing import Any

import pglast
from pglast import ast
from pglast.stream import RawStream

from agent.postgres.upstream import quote_ident

_NAME = "warden_row_estimate"
_CHANGING = (ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)
_OPERATIONS = frozenset({"Update", "Delete", "Merge"})
TIMEOUT = "2s"


def changing_statements(text: str) -> list[str]:
    """The statements of ``text`` (one each) that update, delete or merge rows, each as a
    PREPARE of the agent's own name (a SQL PREPARE keeps its parameter types)."""
    prepares = []
    for raw in pglast.parse_sql(text):
        node = raw.stmt
        if isinstance(node, ast.ExplainStmt):  # EXPLAIN ANALYZE runs the statement
            node = node.query
        if isinstance(node, ast.PrepareStmt):
            if _changes_rows(node.query):
                node.name = _NAME
                prepares.append(RawStream()(node))
        elif node is not None and _changes_rows(node):
            prepares.append(f"PREPARE {_NAME} AS {RawStream()(node)}")
    return prepares


def _changes_rows(node: Any) -> bool:
    if isinstance(node, _CHANGING):
        return True
    with_clause = getattr(node, "withClause", None)
    return with_clause is not None and any(
        _changes_rows(cte.ctequery) for cte in with_clause.ctes or ()
    )


def session_settings(search_path: tuple[str, ...] | None) -> str:
    """The settings the estimate runs under, local to its transaction."""
    settings = [
        f"SET LOCAL statement_timeout = '{TIMEOUT}'",
        "SET LOCAL plan_cache_mode = force_generic_plan",
    ]
    if search_path is not None:
        path = ", ".join(quote_ident(item) for item in search_path) or "''"
        settings.append(f"SET LOCAL search_path TO {path}")
    return "; ".join(settings)


def explain_execute(parameter_count: int) -> str:
    arguments = ", ".join(["NULL"] * parameter_count)
    return f"EXPLAIN (FORMAT JSON) EXECUTE {_NAME}" + (f"({arguments})" if arguments else "")


PARAMETER_COUNT = (
    f"SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = '{_NAME}'"
)


def changed_rows(plan_json: str) -> int:
    """The rows the plan's UPDATE/DELETE/MERGE nodes are expected to change."""
    document = json.loads(plan_json)
    return sum(_modified(entry["Plan"]) for entry in document)


def _modified(node: dict[str, Any]) -> int:
    children = node.get("Plans", [])
    own = 0
    if node.get("Node Type") == "ModifyTable" and node.get("Operation") in _OPERATIONS:
        # Its own "Plan Rows" counts returned rows (0 without RETURNING): its input is the
        # rows it changes.
        inputs = [c for c in children if c.get("Parent Relationship") == "Outer"]
        own = int(inputs[0].get("Plan Rows", 0)) if inputs else 0
    return own + sum(_modified(child) for child in children)
