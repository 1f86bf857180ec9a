"""The MySQL protocol through the agent with real clients: login with the Warden token,
queries, masking in text and binary rows, prepared statements, commands."""

from __future__ import annotations

from typing import Any


def test_pymysql_logs_in_with_the_token_and_reads_masked_rows(agent: Any):
    with agent.connect("alice") as conn, conn.cursor() as cursor:
        cursor.execute("SELECT id, name, email, phone FROM customers ORDER BY id LIMIT 2")
        rows = cursor.fetchall()
    assert rows[0][1] == "Grace Doe1"
    assert rows[0][2] == "****@example.com"
    assert rows[0][3].endswith("1001") and rows[0][3].startswith("*")
