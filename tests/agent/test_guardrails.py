"""Guardrails block or hold statement kinds before anything reaches the database."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest


@pytest.fixture
def agent(agent_on_both_paths: Any) -> Any:
    """Every test here runs on the native data path and on the pure-Python one."""
    return agent_on_both_paths


BLOCKED = [
    ("DROP TABLE scratch", "drop"),
    ("TRUNCATE scratch", "truncate"),
    ("GRANT SELECT ON scratch TO PUBLIC", "grant_revoke"),
    ("REVOKE SELECT ON scratch FROM PUBLIC", "grant_revoke"),
    ("CREATE ROLE mallory", "role"),
    ("ALTER USER postgres WITH PASSWORD 'x'", "role"),
    ("DROP ROLE IF EXISTS mallory", "role"),
    ("COPY scratch TO PROGRAM 'cat > /tmp/x'", "copy_program"),
    ("COPY scratch FROM PROGRAM 'echo 1'", "copy_program"),
    ("COPY scratch TO '/tmp/warden-x'", "server_file_functions"),
    ("SELECT pg_read_file('/etc/passwd')", "server_file_functions"),
    ("SELECT pg_ls_dir('.')", "server_file_functions"),
    ("SELECT lo_import('/etc/passwd')", "server_file_functions"),
    ("SELECT * FROM pg_stat_file('postgresql.conf')", "server_file_functions"),
    ("DO $$ BEGIN PERFORM 1; END $$", "do_block"),
    ("DELETE FROM scratch", "delete_without_where"),
    ("UPDATE scratch SET v = 'x'", "update_without_where"),
    ("SELECT 1; DELETE FROM scratch WHERE id = 1", "mixed_multi_statement"),
    ("EXPLAIN ANALYZE DELETE FROM scratch", "delete_without_where"),
    ("WITH d AS (DELETE FROM scratch RETURNING *) SELECT * FROM d", "delete_without_where"),
]


@pytest.mark.parametrize(("sql", "kind"), BLOCKED)
def test_guardrail_blocks_statement_kind(agent: Any, pg_database: str, sql: str, kind: str) -> None:
    with psycopg.connect(
        host="127.0.0.1", user="postgres", dbname=pg_database, autocommit=True
    ) as admin:
        admin.execute("INSERT INTO scratch VALUES (7, 'keep')")
        with agent.connect("root") as conn, pytest.raises(psycopg.Error) as info:
            conn.execute(sql)
        assert info.value.sqlstate == "42501"
        assert kind in str(info.value) and "no destructive statements" in str(info.value)
        assert admin.execute("SELECT count(*) FROM scratch WHERE id = 7").fetchone()[0] >= 1
        admin.execute("DELETE FROM scratch WHERE id = 7")


def test_guardrail_blocks_in_extended_protocol_too(agent: Any) -> None:
    with agent.connect("root") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM scratch WHERE %s", (True,), prepare=True)
        conn.execute("DELETE FROM scratch", prepare=True)


def test_alter_is_held_for_approval_with_a_notice(agent: Any) -> None:
    notices: list[str] = []
    with agent.connect("root") as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            conn.execute("ALTER TABLE scratch ADD COLUMN extra int")
    assert "requires approval" in str(info.value)
    assert any("held for approval" in n for n in notices)


def test_require_approval_rule_holds_reads_of_tagged_columns(agent: Any) -> None:
    with agent.connect("carol") as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="access request"):
            conn.execute("SELECT email FROM customers")
        assert conn.execute("SELECT count(*) FROM customers").fetchone()[0] >= 50


def test_plain_statements_pass(agent: Any) -> None:
    with agent.connect("root") as conn:
        conn.execute("INSERT INTO scratch VALUES (9, 'x')")
        conn.execute("UPDATE scratch SET v = 'y' WHERE id = 9")
        conn.execute("DELETE FROM scratch WHERE id = 9")
        conn.execute("BEGIN; SELECT 1; COMMIT")
