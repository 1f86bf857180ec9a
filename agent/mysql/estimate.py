"""The optimizer's estimate of the rows a MySQL/MariaDB UPDATE or DELETE changes, for the
"affects more than N rows" guardrail (``agent/row_limits.py``).

``EXPLAIN FORMAT=JSON`` of each changing statement runs on a side connection with the
datasource's credentials in the session's current database; EXPLAIN never runs the
statement.  The estimate of a table the statement changes (``"update": 1`` /
``"delete": 1``) is its ``rows`` (MariaDB) or ``rows_examined_per_scan`` (MySQL), scaled by
``filtered`` where the server gives it: rows examined, so at least the rows changed.  A
statement with ``?`` parameters cannot be explained without values, and the server's
guess for a comparison with NULL would be 0 rows: it fails closed, like every estimate the
server cannot give.
"""

from __future__ import annotations

import json
from typing import Any

import sqlglot
from sqlglot import exp

_CHANGING = (exp.Update, exp.Delete)


class EstimateUnavailable(Exception):
    """The statement cannot be explained (parameters, no text)."""


def changing_statements(text: str) -> list[str]:
    """Each statement of ``text`` that updates or deletes rows, as text to explain."""
    parsed = [node for node in sqlglot.parse(text, read="mysql") if node is not None]
    changing = [node for node in parsed if isinstance(node, _CHANGING)]
    if any(node.find(exp.Placeholder) is not None for node in changing):
        raise EstimateUnavailable("a statement with ? parameters has no estimate before its values")
    if len(parsed) == 1:
        return [text] if changing else []
    return [node.sql(dialect="mysql") for node in changing]


def changed_rows(plan_json: str) -> int:
    """Rows the plan's changing tables are expected to have examined (see module doc)."""
    tables = list(_tables(json.loads(plan_json)))
    changed = [t for t in tables if t.get("update") or t.get("delete")]
    if changed:
        return sum(_rows(t) for t in changed)
    # A plan that marks no table (multi-table forms): the largest table, to fail safe.
    return max((_rows(t) for t in tables), default=0)


def _tables(node: Any) -> Any:
    if isinstance(node, dict):
        table = node.get("table")
        if isinstance(table, dict):
            yield table
        for value in node.values():
            yield from _tables(value)
    elif isinstance(node, list):
        for value in node:
            yield from _tables(value)


def _rows(table: dict[str, Any]) -> int:
    rows = float(table.get("rows", table.get("rows_examined_per_scan", 0)) or 0)
    filtered = float(table.get("filtered", 100) or 100)
    return round(rows * filtered / 100)
