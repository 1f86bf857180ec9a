"""Decisions on MySQL: guardrails, denials naming the rule, masking of derived outputs in
text and binary rows, holds approved by a reviewer, and audit events."""

from __future__ import annotations

import threading
import time
from typing import Any

import mariadb
import pymysql
import pytest

from agent.mysql.state import PIN_SQL_MODE
from agent.mysql.vocabulary import UNSAFE_SQL_MODES
from tests.agent_mysql.conftest import assert_legitimate_work_runs, root_connection

HELD_SQL = "SELECT id, email FROM customers ORDER BY id LIMIT 3"


def _refusal(agent: Any, user: str, sql: str) -> tuple[int, str]:
    with (
        agent.connect(user) as conn,
        conn.cursor() as cursor,
        pytest.raises(pymysql.err.MySQLError) as refused,
    ):
        cursor.execute(sql)
    return refused.value.args[0], refused.value.args[1]


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("DROP TABLE scratch", "drop"),
        ("TRUNCATE TABLE scratch", "truncate"),
        ("DELETE FROM scratch", "delete_without_where"),
        ("DELETE FROM scratch WHERE 1 = 1", "delete_without_where"),
        ("UPDATE scratch SET v = 'x'", "update_without_where"),
        ("GRANT SELECT ON *.* TO 'x'@'%'", "grant_revoke"),
        ("CREATE USER 'mallory'@'%' IDENTIFIED BY 'pw'", "role"),
        ("SET PASSWORD = PASSWORD('pw')", "role"),
        ("SELECT LOAD_FILE('/etc/passwd')", "server_file_functions"),
        ("SELECT name FROM customers INTO OUTFILE '/tmp/warden-out.txt'", "server_file_functions"),
        ("LOAD DATA INFILE '/etc/passwd' INTO TABLE scratch", "server_file_functions"),
        ("LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE scratch", "server_file_functions"),
    ],
)
def test_guardrails_block_with_1142_naming_the_guardrail(agent: Any, sql: str, kind: str):
    code, message = _refusal(agent, "alice", sql)
    assert code == 1142
    assert kind in message
    assert "rule: guardrail:1:no destructive statements" in message


def test_alter_needs_approval_and_names_the_request(agent: Any, control_plane: Any):
    code, message = _refusal(agent, "alice", "ALTER TABLE scratch ADD COLUMN w int")
    assert code == 1142
    assert "held for approval: request 1" in message
    assert control_plane.access_requests[1]["level"] == "write"


@pytest.mark.parametrize(
    ("sql", "why"),
    [
        ("SET GLOBAL max_connections = 5", "global server settings"),
        ("SET SESSION sql_mode = 'ANSI_QUOTES'", "ANSI_QUOTES"),
        ("SET @@sql_mode = 'NO_BACKSLASH_ESCAPES'", "NO_BACKSLASH_ESCAPES"),
        ("SET sql_mode = CONCAT(@@sql_mode, ',ANSI')", "literal"),
        ("SET NAMES gbk", "character set gbk"),
        ("SET character_set_client = big5", "character set big5"),
        ("SELECT /*!50000 email, */ name FROM customers", "executable comments"),
        ("HANDLER customers OPEN", "could not be parsed"),
        ("SET STATEMENT sql_mode='ANSI_QUOTES' FOR SELECT \"email\" FROM customers", "SET"),
        ("PREPARE s FROM 'SELECT email FROM customers'", "PREPARE"),
    ],
)
def test_statements_that_would_desynchronise_the_parser_are_refused(agent: Any, sql: str, why: str):
    code, message = _refusal(agent, "root", sql)  # refused even for the unrestricted admin
    assert code in (1064, 1142)
    assert why in message


def test_a_denied_column_is_refused_naming_the_rule(agent: Any):
    code, message = _refusal(agent, "alice", "SELECT ssn FROM customers")
    assert code == 1142
    assert "ssn is blocked by policy" in message
    assert "rule:2:nobody reads SSNs" in message


def test_unparseable_sql_is_refused_with_1064(agent: Any):
    code, message = _refusal(agent, "alice", "SELEC name FROM customers")
    assert code == 1064
    assert "could not be parsed" in message


def test_a_statement_that_is_not_utf8_is_refused_and_the_session_goes_on(agent: Any):
    with agent.connect("alice") as conn:
        with pytest.raises(pymysql.err.MySQLError) as refused:
            conn.query(b"SELECT name FROM customers WHERE name = 'caf\xe9'")  # latin-1 bytes
        assert refused.value.args[0] == 1064
        assert "not valid UTF-8" in refused.value.args[1]
        assert_legitimate_work_runs(conn)  # before, the agent ended the session


def test_a_catalog_that_fails_while_a_result_is_masked_redacts_and_the_session_goes_on(
    agent: Any,
):
    with agent.connect("alice") as conn, conn.cursor() as cursor:
        cursor.execute("SELECT id, email FROM customers WHERE id = 1")
        assert cursor.fetchone() == (1, "****@example.com")  # decided and shaped

        async def unavailable(schema: str, table: str) -> bool:
            raise pymysql.err.OperationalError(2013, "Lost connection to server during query")

        agent.agent.mysql_catalog.is_view = unavailable  # the side connection fails from now
        cursor.execute("SELECT id, name, email FROM customers WHERE id = 2")  # a new shape
        assert cursor.fetchone() == (None, "****", "****")  # every column redacted (NULL: INT)
        assert_legitimate_work_runs(conn)


def test_everyday_statements_keep_working(agent: Any):
    with agent.connect("alice") as conn, conn.cursor() as cursor:
        cursor.execute("SELECT COUNT(*), MAX(score) FROM customers")
        assert cursor.fetchone() == (20, 200)
        cursor.execute(
            "SELECT c.name, o.amount FROM customers c JOIN orders o ON o.customer_id = c.id "
            "WHERE c.id = 2"
        )
        assert cursor.fetchone()[0] == "Linus Doe2"
        cursor.execute("INSERT INTO scratch (id, v) VALUES (1, 'a'), (2, 'b')")
        assert cursor.rowcount == 2
        cursor.execute("UPDATE scratch SET v = 'c' WHERE id = 1")
        cursor.execute("DELETE FROM scratch WHERE id IN (1, 2)")
        cursor.execute("SHOW TABLES")
        assert ("customers",) in cursor.fetchall()
        cursor.execute("SHOW COLUMNS FROM customers")
        cursor.execute("SELECT @@sql_mode, DATABASE(), VERSION()")
        cursor.execute("SET autocommit = 0")
        cursor.execute("START TRANSACTION")
        cursor.execute("ROLLBACK")
        cursor.execute("SET NAMES utf8mb4")
        cursor.execute("SET SESSION sql_mode = 'STRICT_TRANS_TABLES'")
        cursor.execute("SELECT name FROM customers WHERE name LIKE %s", ("grace%",))
        assert cursor.fetchall() == (("Grace Doe1",), ("Grace Doe9",), ("Grace Doe17",))
        cursor.execute("SELECT id FROM customers ORDER BY name LIMIT 1")
        cursor.execute("EXPLAIN SELECT * FROM customers WHERE id = 1")


# Each probe, run directly, answers a question about customer 1's e-mail (grace.1@...)
# that the masked output does not: which rows, how many, in which order.
INFERENCE_PROBES = [
    ("SELECT id FROM customers WHERE email LIKE 'grace.1@%'", "WHERE", ((1,),)),
    ("SELECT id FROM customers ORDER BY email LIMIT 1", "ORDER BY", None),
    ("SELECT count(*) FROM customers GROUP BY email HAVING email < 'b'", "GROUP BY", None),
    ("SELECT DISTINCT email FROM customers WHERE id IN (1, 9)", "DISTINCT", None),
    ("SELECT id FROM customers WHERE id = 1 UNION SELECT email FROM customers", "UNION", None),
    (
        "SELECT c.id FROM customers c JOIN customers d ON d.email LIKE 'grace.1@%' AND d.id = c.id",
        "JOIN ON",
        ((1,),),
    ),
    (
        "SELECT id, rank() OVER (ORDER BY email) FROM customers WHERE id = 1",
        "a window definition (OVER)",
        None,
    ),
    ("SELECT (SELECT 1 FROM customers WHERE email LIKE 'grace.1@%')", "WHERE", ((1,),)),
]


@pytest.mark.parametrize(("sql", "clause", "direct_rows"), INFERENCE_PROBES)
def test_masked_column_cannot_decide_rows_or_order(
    agent: Any, root: Any, sql: str, clause: str, direct_rows: Any
):
    with root.cursor() as cursor:  # unrestricted, the probe runs and answers
        cursor.execute(sql)
        rows = cursor.fetchall()
        assert rows and (direct_rows is None or tuple(rows) == direct_rows), rows
    code, message = _refusal(agent, "alice", sql)
    assert code == 1142 and "email" in message and clause in message, message


def test_exact_lookups_allowed_by_the_rule_pass_and_nothing_else(
    agent_factory: Any, control_plane: Any
):
    for rule in control_plane.bundle["rules"]:
        if rule["name"] == "analysts see email domains":
            rule["allow_exact_lookups"] = True
    control_plane.set_bundle(control_plane.bundle)
    agent = agent_factory()
    with agent.connect("alice") as conn, conn.cursor() as cursor:
        cursor.execute("SELECT id FROM customers WHERE email = %s", ("grace.1@example.com",))
        assert cursor.fetchall() == ((1,),)
        cursor.execute("SELECT id FROM customers WHERE email IN ('grace.1@example.com', 'x')")
        assert cursor.fetchall() == ((1,),)
    for sql in (
        "SELECT id FROM customers WHERE email <> 'grace.1@example.com'",
        "SELECT id FROM customers WHERE email = 'grace.1@example.com' OR id = 2",
        "SELECT id FROM customers WHERE email > 'm'",
        "SELECT id FROM customers WHERE email = 'grace.1@example.com' ORDER BY email",
    ):
        code, message = _refusal(agent, "alice", sql)
        assert code == 1142 and "email" in message, (sql, message)


def test_binary_protocol_masks_prepared_statement_rows(agent: Any, mysql_database: str):
    conn = mariadb.connect(
        host="127.0.0.1",
        port=agent.port,
        user="alice",
        password="wdn_alice",
        database=mysql_database,
        ssl=False,
    )
    cursor = conn.cursor(prepared=True)
    cursor.execute(
        "SELECT id, name, email, phone, birth_date, UPPER(email), score FROM customers "
        "WHERE id = ?",
        (4,),
    )
    row = cursor.fetchone()
    with pytest.raises(mariadb.Error) as refused:
        conn.cursor(prepared=True).execute("SELECT ssn FROM customers WHERE id = ?", (4,))
    conn.close()
    assert row[:4] == (4, "Barbara Doe4", "****@example.com", "*" * 12 + "1004")
    assert str(row[4]) == "1964-01-01"
    assert row[5] == "****"  # derived from a masked column: redacted
    assert row[6] == 40
    assert "ssn is blocked" in str(refused.value)


def _review_when_filed(plane: Any, database: str) -> threading.Thread:
    def review() -> None:
        deadline = time.monotonic() + 10
        while 1 not in plane.access_requests and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)
        plane.review(1, "approved")
        with plane.lock:  # the suite's reviewer scopes grants to public.customers
            for grant in plane.bundle["grants"]:
                grant["scope"]["tables"] = [f"{database}.customers"]

    thread = threading.Thread(target=review, daemon=True)
    thread.start()
    return thread


def test_held_statement_runs_once_approved_while_the_client_waits(
    agent_factory: Any, control_plane: Any, mysql_database: str
):
    agent = agent_factory(hold_wait=10)
    reviewer = _review_when_filed(control_plane, mysql_database)
    with agent.connect("carol") as conn, conn.cursor() as cursor:
        cursor.execute(HELD_SQL)
        rows = cursor.fetchall()
    reviewer.join(5)
    assert [r[0] for r in rows] == [1, 2, 3]
    assert rows[0][1] == "****"  # a "read" grant lifts the hold; the default mask stays
    filed = control_plane.access_requests[1]
    assert (filed["identity"], filed["statement"], filed["level"]) == ("carol", HELD_SQL, "read")


def test_held_statement_is_refused_at_once_without_hold_wait(agent: Any, control_plane: Any):
    code, message = _refusal(agent, "carol", HELD_SQL)
    assert code == 1142
    assert f"held for approval: request 1 (review at {control_plane.url}/approvals/1/)" in message


def test_each_statement_is_audited_with_its_decision(agent: Any, control_plane: Any, wait: Any):
    with agent.connect("alice") as conn, conn.cursor() as cursor:
        cursor.execute("SELECT email FROM customers WHERE id = 1")
        with pytest.raises(pymysql.err.MySQLError):
            cursor.execute("SELECT ssn FROM customers")

    def audited() -> list[dict[str, Any]]:
        agent.flush_audit()
        return [e for e in control_plane.events.values() if e["identity"] == "alice"]

    wait(lambda: len(audited()) >= 2)
    by_decision = {e["decision"]: e for e in audited()}
    assert by_decision["mask"]["rows"] == 1
    assert by_decision["mask"]["masked_columns"] == [f"{agent.database}.customers.email"]
    assert by_decision["deny"]["rule"] == "rule:2:nobody reads SSNs"
    assert by_decision["mask"]["datasource"] == "shop"


def test_the_audit_counts_the_bytes_of_the_rows_sent_after_masking(
    agent: Any, control_plane: Any, wait: Any
):
    with agent.connect("alice") as conn, conn.cursor() as cursor:
        cursor.execute("SELECT id, email FROM customers WHERE id <= 3 ORDER BY id")
        sent = cursor.fetchall()

    def audited() -> list[dict[str, Any]]:
        agent.flush_audit()
        events = control_plane.events.values()
        return [e for e in events if e["identity"] == "alice" and "customers" in e["statement"]]

    wait(lambda: len(audited()) >= 1)
    assert [email for _, email in sent] == ["****@example.com"] * 3
    # a text row: each value as a length byte and its text, as the client received it
    expected = sum(1 + len(str(id_)) + 1 + len(email) for id_, email in sent)
    assert [(e["rows"], e["bytes"]) for e in audited()] == [(3, expected)]


@pytest.mark.parametrize(
    "server_mode", ["ORACLE", "POSTGRESQL", "ANSI", "MSSQL,HIGH_NOT_PRECEDENCE"]
)
def test_the_login_pin_removes_every_mode_the_analyser_refuses(
    mysql_database: str, server_mode: str
):
    """A server whose default sql_mode is a combination mode: the pin must not leave a word
    that brings ANSI_QUOTES (or another refused flag) back."""
    conn = root_connection(mysql_database)
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"SET SESSION sql_mode = '{server_mode}'")  # as the global default would
            cursor.execute("SELECT @@sql_mode")
            before = set(cursor.fetchone()[0].split(","))
            assert before & UNSAFE_SQL_MODES  # the probe really starts from a refused mode
            cursor.execute(PIN_SQL_MODE)
            cursor.execute("SELECT @@sql_mode")
            after = set(cursor.fetchone()[0].split(","))
            cursor.execute("SELECT \"quoted\" = 'quoted', 'a' || 'b'")
            quoted_is_text, pipes = cursor.fetchone()
    finally:
        conn.close()
    assert not after & UNSAFE_SQL_MODES, after
    # "…" is a string and || is OR (two false strings: 0), as the agent reads them.
    assert (quoted_is_text, pipes) == (1, 0)
