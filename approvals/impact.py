"""The planner's view of a held statement, for the review screen.

EXPLAIN without ANALYZE never runs the statement; it is still sent inside a READ ONLY
transaction with a short statement timeout, one statement only, PostgreSQL datasources only.
"""

from __future__ import annotations

from typing import Any

import psycopg

from approvals.scope import StatementError, statement_parse
from governance.crypto import decrypt_secret
from governance.models import DataSource, Engine

EXPLAIN_TIMEOUT = "2s"
CONNECT_TIMEOUT_SECONDS = 3
_EXPLAINABLE = {"select", "insert", "update", "delete", "merge"}


def _connect(datasource: DataSource) -> psycopg.Connection:
    return psycopg.connect(
        host=datasource.host or "127.0.0.1",
        port=datasource.port or 5432,
        dbname=datasource.database,
        user=datasource.username or None,
        password=decrypt_secret(datasource.password_encrypted) or None,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        application_name="warden-approvals-explain",
    )


def statement_explain(*, datasource: DataSource, sql: str) -> dict[str, Any]:
    """{"rows": planner estimate, "cost": total cost, "node": top plan node} or {"error": ...}."""
    if datasource.engine != Engine.POSTGRESQL:
        return {"error": "Row estimates are only available for PostgreSQL datasources."}
    try:
        kind = statement_parse(sql).kind
    except StatementError as exc:
        return {"error": str(exc)}
    if kind not in _EXPLAINABLE:
        return {"error": f"A {kind} statement has no plan to estimate."}
    try:
        with _connect(datasource) as connection, connection.transaction():
            connection.execute("SET TRANSACTION READ ONLY")
            connection.execute(f"SET LOCAL statement_timeout = '{EXPLAIN_TIMEOUT}'")
            # The text is one parsed statement of an explainable kind (checked above).
            row = connection.execute(f"EXPLAIN (FORMAT JSON) {sql}").fetchone()
            raise psycopg.Rollback()
    except psycopg.Error as exc:
        return {"error": f"EXPLAIN failed: {str(exc).strip().splitlines()[0]}"}
    plan = row[0][0]["Plan"] if row else {}
    return {
        "rows": int(plan.get("Plan Rows", 0)),
        "cost": plan.get("Total Cost"),
        "node": plan.get("Node Type", ""),
    }
