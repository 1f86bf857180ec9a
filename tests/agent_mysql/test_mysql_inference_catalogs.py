"""MySQL: select-list expressions that can fail or branch on a masked value are refused
(not just redacted), and the server's private catalogs (other sessions' statements,
credentials) are refused unless a rule allows them.

Every probe is first run through the agent as root, whom a datasource rule allows
everything: it must answer there (and show the secret where one exists), so a refusal for
alice is the policy's, not a broken probe's.
"""

from __future__ import annotations

from typing import Any

import pymysql
import pytest

from tests.agent_mysql.conftest import assert_legitimate_work_runs, mysql_bundle

EMAIL = "grace.1@example.com"
# (probe, clause named in the refusal); each reveals something about email by its result.
BRANCHING = [
    ("SELECT IF(email = 'grace.1@example.com', 1, 0) FROM customers WHERE id = 1", "IF"),
    ("SELECT IF(email LIKE 'grace%', 1, 0) FROM customers WHERE id = 1", "LIKE"),
    (
        "SELECT CASE WHEN email > 'g' THEN 1 WHEN email > 'a' THEN 2 ELSE 0 END "
        "FROM customers WHERE id = 1",
        "CASE",
    ),
    ("SELECT IFNULL(NULLIF(email, 'grace.1@example.com'), 'hit') FROM customers", "NULLIF"),
    ("SELECT COALESCE(email, 'x') FROM customers WHERE id = 1", "COALESCE"),
    ("SELECT email + 0 FROM customers WHERE id = 1", "ADD"),
    ("SELECT CAST(email AS SIGNED) FROM customers WHERE id = 1", "a cast to"),
    ("SELECT email > 'g' OR id = 0 FROM customers WHERE id = 1", "AND/OR/NOT"),
    ("SELECT LAG(email) OVER (ORDER BY id) FROM customers", "lag()"),
    ("SELECT x FROM (SELECT IF(email > 'g', 1, 0) AS x FROM customers) t", "IF"),
    ("SELECT COUNT(DISTINCT email) FROM customers", "DISTINCT"),
    ("SELECT SUBSTRING(name, LENGTH(email)) FROM customers WHERE id = 1", "substring()"),
]
# Select-list uses that cannot fail or branch: the value reaches only the (redacted) output.
PASSING = [
    "SELECT UPPER(email) FROM customers WHERE id = 1",
    "SELECT CONCAT(name, ' <', email, '>') FROM customers WHERE id = 1",
    "SELECT COUNT(email), MIN(email) FROM customers",
    "SELECT CAST(email AS CHAR) FROM customers WHERE id = 1",
    "SELECT email = 'x' FROM customers WHERE id = 1",
    "SELECT LENGTH(email), MD5(email) FROM customers WHERE id = 1",
]


def _run(agent: Any, user: str, sql: str) -> tuple[Any, ...]:
    with agent.connect(user) as conn, conn.cursor() as cursor:
        cursor.execute(sql)
        return tuple(cursor.fetchall())


def _refused(agent: Any, user: str, sql: str) -> str:
    """The agent's refusal (1142) of ``sql``; the same identity's legitimate work runs."""
    with agent.connect(user) as conn:
        with pytest.raises(pymysql.err.MySQLError) as refused, conn.cursor() as cursor:
            cursor.execute(sql)
        assert_legitimate_work_runs(conn)
    assert refused.value.args[0] == 1142, refused.value.args
    return str(refused.value.args[1])


@pytest.mark.parametrize(("sql", "clause"), BRANCHING)
def test_a_select_list_expression_branching_on_a_masked_value_is_refused(
    agent: Any, sql: str, clause: str
) -> None:
    assert _run(agent, "root", sql)  # control: the probe answers for an unmasked identity
    message = _refused(agent, "alice", sql)
    assert "masked column" in message and "email" in message and clause in message, message


@pytest.mark.parametrize("sql", PASSING)
def test_total_select_list_expressions_pass_and_are_redacted(agent: Any, sql: str) -> None:
    assert any(
        EMAIL.upper() in str(v).upper() for row in _run(agent, "root", sql) for v in row
    ) or ("email =" in sql or "COUNT" in sql or "LENGTH" in sql)
    rows = _run(agent, "alice", sql)
    assert rows and not any(EMAIL in str(value) for row in rows for value in row)
    with agent.connect("alice") as conn:
        assert_legitimate_work_runs(conn)


# Catalogs showing other sessions' running statements: root reads the e-mail another
# session's statement quotes (see ``running_statement``).
PROCESS_LISTS = [
    ("SELECT INFO FROM information_schema.PROCESSLIST", "information_schema.processlist"),
    ("SHOW FULL PROCESSLIST", "information_schema.processlist"),
]
# Catalogs whose secrets this server may not hold (performance_schema is off by default on
# MariaDB; mysql.user's hashes have their own test below): root must read them, no more.
PRIVATE = [
    ("SELECT User, Password FROM mysql.user", "mysql.user"),
    (
        "SELECT SQL_TEXT FROM performance_schema.events_statements_history",
        "performance_schema.events_statements_history",
    ),
    ("SELECT PROCESSLIST_INFO FROM performance_schema.threads", "performance_schema.threads"),
]


@pytest.mark.parametrize(("sql", "catalog"), PROCESS_LISTS)
def test_other_sessions_statements_are_readable_unmasked_and_refused_governed(
    agent: Any, running_statement: str, sql: str, catalog: str
) -> None:
    rows = _run(agent, "root", sql)
    assert running_statement in str(rows), f"root reads no other session's e-mail: {rows}"
    message = _refused(agent, "alice", sql)
    assert catalog in message and "needs a Warden rule allowing it" in message


@pytest.mark.parametrize(("sql", "catalog"), PRIVATE)
def test_private_catalogs_answer_root_and_are_refused_to_alice(
    agent: Any, sql: str, catalog: str
) -> None:
    _run(agent, "root", sql)  # control: the upstream role reads it through the agent
    message = _refused(agent, "alice", sql)
    assert catalog in message and "needs a Warden rule allowing it" in message


def test_password_hashes_are_readable_directly_and_refused_governed(root: Any, agent: Any) -> None:
    with root.cursor() as cursor:
        cursor.execute("CREATE USER IF NOT EXISTS 'warden_probe'@'%' IDENTIFIED BY 'probe-pw'")
    try:
        hashes = _run(agent, "root", "SELECT authentication_string FROM mysql.user")
        assert any(str(row[0]).startswith("*") for row in hashes)  # control: hashes readable
        assert "mysql.user" in _refused(agent, "alice", "SELECT * FROM mysql.user")
    finally:
        with root.cursor() as cursor:
            cursor.execute("DROP USER IF EXISTS 'warden_probe'@'%'")


def test_a_rule_allowing_the_catalog_lets_an_identity_read_it(
    agent_factory: Any, control_plane: Any, mysql_database: str
) -> None:
    bundle = mysql_bundle(mysql_database)
    bundle["rules"].append(
        {
            "id": 99,
            "name": "dba reads processes",
            "priority": 100,
            "subjects": {"everyone": False, "users": ["bob"], "groups": []},
            "resource": {"kind": "table", "schema": "information_schema", "table": "processlist"},
            "action": "allow",
            "mask_method": None,
            "mask_param": None,
        }
    )
    control_plane.set_bundle(bundle)
    agent = agent_factory()
    assert _run(agent, "bob", "SHOW PROCESSLIST")
    assert "processlist" in _refused(agent, "alice", "SHOW PROCESSLIST")


def test_schema_metadata_stays_readable(agent: Any, mysql_database: str) -> None:
    for sql in (
        f"SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{mysql_database}'",
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_NAME = 'customers'",
        "SHOW TABLES",
        "SHOW COLUMNS FROM customers",
    ):
        assert _run(agent, "alice", sql), sql
