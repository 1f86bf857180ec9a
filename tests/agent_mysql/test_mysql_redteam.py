"""Red team for MySQL: each probe first proves it reads a secret through an unrestricted
path (root, directly on MariaDB), then shows it does not through the agent, where the
identity sees ``email`` masked.  Everything the agent returns is searched for the
secret: rows, error messages, warnings."""

from __future__ import annotations

from typing import Any

import pymysql
import pytest

from tests.agent_mysql.conftest import assert_legitimate_work_runs

SECRET = "grace.1@example.com"

PROBES: dict[str, list[str]] = {
    "user variable assignment": ["SELECT @x := email FROM customers WHERE id = 1", "SELECT @x"],
    "select into a user variable": [
        "SELECT email INTO @v FROM customers WHERE id = 1",
        "SELECT @v",
    ],
    "set a user variable from a subquery": [
        "SET @v = (SELECT email FROM customers WHERE id = 1)",
        "SELECT @v",
    ],
    "group_concat": ["SELECT GROUP_CONCAT(email) FROM customers"],
    "json_object": ["SELECT JSON_OBJECT('e', email) FROM customers WHERE id = 1"],
    "json_arrayagg": ["SELECT JSON_ARRAYAGG(email) FROM customers"],
    "json path round trip": [
        "SELECT JSON_UNQUOTE(JSON_EXTRACT(JSON_OBJECT('e', email), '$.e')) FROM customers"
    ],
    "concat": ["SELECT CONCAT(email, '') AS name FROM customers WHERE id = 1"],
    "hex": ["SELECT UNHEX(HEX(email)) FROM customers WHERE id = 1"],
    "collate": ["SELECT email COLLATE utf8mb4_bin FROM customers WHERE id = 1"],
    "derived table": ["SELECT * FROM (SELECT email FROM customers) s"],
    "derived table named like an allowed table": [
        "SELECT orders.email FROM (SELECT email FROM customers) orders"
    ],
    "cte": ["WITH x AS (SELECT email FROM customers) SELECT * FROM x"],
    "union": ["SELECT name FROM customers WHERE id = 0 UNION SELECT email FROM customers"],
    "scalar subquery": ["SELECT (SELECT email FROM customers WHERE id = 1)"],
    "view": ["SELECT * FROM customer_contacts WHERE id = 1"],
    "alias to an allowed name": ["SELECT c.email AS name FROM customers c WHERE c.id = 1"],
    "upper-case column name": ["SELECT EMAIL FROM customers WHERE id = 1"],
    "error message quoting a value": [
        "INSERT INTO scratch (id, v) VALUES (77, 'x')",
        "UPDATE scratch SET v = 'y' WHERE id = (SELECT email FROM customers WHERE id = 1)",
    ],
    "warnings quoting values": [
        "SELECT CAST(email AS DECIMAL) FROM customers WHERE id = 1",
        "SHOW WARNINGS",
    ],
    "procedure analyse": ["SELECT email FROM customers PROCEDURE ANALYSE()"],
    "handler": ["HANDLER customers OPEN", "HANDLER customers READ `PRIMARY` FIRST"],
    "create table as": [
        "CREATE TABLE leak_copy AS SELECT email FROM customers",
        "SELECT * FROM leak_copy",
    ],
    "insert select": [
        "INSERT INTO scratch (id, v) SELECT id, email FROM customers WHERE id = 1",
        "SELECT v FROM scratch WHERE id = 1",
    ],
    "update from a subquery": [
        "INSERT INTO scratch (id, v) VALUES (77, 'x')",
        "UPDATE scratch SET v = (SELECT email FROM customers WHERE id = 1) WHERE id = 77",
        "SELECT v FROM scratch WHERE id = 77",
    ],
    "multi-statement use": ["USE information_schema; SELECT 1", "SELECT @@hostname"],
    "prepare from a string": [
        "PREPARE s FROM 'SELECT email FROM customers WHERE id = 1'",
        "EXECUTE s",
    ],
    "ansi_quotes": [
        "SET SESSION sql_mode = 'ANSI_QUOTES'",
        'SELECT "email" FROM customers WHERE id = 1',
    ],
    "executable comment": ["SELECT /*!50000 email, */ name FROM customers WHERE id = 1"],
}
# Probes whose direct run needs no second step to show the secret elsewhere.
_SKIP_DIRECT: frozenset[str] = frozenset({"multi-statement use"})


def _run(connection: Any, statements: list[str]) -> str:
    """Everything the statements return (rows, warnings, errors), as one text."""
    seen: list[str] = []
    with connection.cursor() as cursor:
        for sql in statements:
            try:
                cursor.execute(sql)
                while True:
                    seen.append(repr(cursor.fetchall()))
                    if not cursor.nextset():
                        break
            except pymysql.MySQLError as exc:
                seen.append(repr(exc.args))
                break
    return "\n".join(seen)


@pytest.fixture
def cleanup(root: Any) -> Any:
    yield
    with root.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS leak_copy")
        cursor.execute("DELETE FROM scratch")


@pytest.mark.parametrize("name", sorted(PROBES))
def test_probe_leaks_directly_but_not_through_the_agent(
    name: str, agent: Any, root: Any, cleanup: Any
):
    statements = PROBES[name]
    if name == "multi-statement use":
        # Proves nothing directly; through the agent the USE must not hide what follows.
        statements = ["USE information_schema; SELECT INFO FROM PROCESSLIST"]
    else:
        direct = _run(root, statements)
        assert SECRET in direct, f"the probe does not leak directly: {direct[:300]}"
        with root.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS leak_copy")
            cursor.execute("DELETE FROM scratch")
            cursor.execute(f"USE `{agent.database}`")
    multi = pymysql.constants.CLIENT.MULTI_STATEMENTS
    with agent.connect("alice", client_flag=multi) as conn:
        through_agent = _run(conn, statements)
        assert_legitimate_work_runs(conn)
    assert SECRET not in through_agent
    assert "grace.1@" not in through_agent


def test_processlist_is_not_readable_for_governed_identities(
    agent: Any, root: Any, running_statement: str
):
    with root.cursor() as cursor:  # control: directly, another session's e-mail shows
        cursor.execute("SELECT INFO FROM information_schema.PROCESSLIST")
        assert running_statement in str(cursor.fetchall())
    with agent.connect("alice") as conn:
        text = _run(conn, ["SELECT INFO FROM information_schema.PROCESSLIST"])
        assert "1142" in text and "needs a Warden rule allowing it" in text
        text = _run(conn, ["SHOW FULL PROCESSLIST"])
        assert "1142" in text
        assert_legitimate_work_runs(conn)


UTILITY = [
    "SELECT id, name, score FROM customers WHERE id BETWEEN 1 AND 5 ORDER BY score DESC",
    "SELECT COUNT(*) FROM customers WHERE name LIKE '%Doe%'",
    "SELECT o.id, SUM(o.amount) FROM orders o GROUP BY o.id HAVING SUM(o.amount) > 1",
    "SELECT name FROM public_names WHERE id = 3",
    "SELECT DATE_FORMAT(NOW(), '%Y'), CONNECTION_ID(), LAST_INSERT_ID(), FOUND_ROWS()",
    "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS "
    "WHERE TABLE_SCHEMA = DATABASE()",
    "SHOW CREATE TABLE customers",
    "SHOW INDEX FROM customers",
    "SHOW VARIABLES LIKE 'sql_mode'",
    "DESCRIBE customers",
    "INSERT INTO scratch (id, v) VALUES (5, 'five') ON DUPLICATE KEY UPDATE v = VALUES(v)",
    "REPLACE INTO scratch (id, v) VALUES (6, 'six')",
    "SELECT * FROM scratch WHERE id IN (SELECT id FROM customers WHERE score > 10)",
    "SELECT name FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)",
    "BEGIN",
    "SAVEPOINT a",
    "ROLLBACK TO SAVEPOINT a",
    "COMMIT",
    "SET @counter = 1",
    "SELECT @counter + 1",
    "SELECT email FROM customers WHERE id = 1 FOR UPDATE",
]


def test_everyday_statements_work_through_the_agent(agent: Any, cleanup: Any):
    with agent.connect("alice") as conn, conn.cursor() as cursor:
        for sql in UTILITY:
            cursor.execute(sql)
            cursor.fetchall()
        cursor.execute("SELECT @counter + 1")
        assert cursor.fetchone() == (2,)
