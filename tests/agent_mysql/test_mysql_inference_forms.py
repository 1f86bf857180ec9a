"""MySQL statement forms that let a masked column decide rows or their order without
naming it in the clause: ORDER BY / GROUP BY a select-list position or alias, HAVING an
alias (MySQL resolves select-list aliases there), a set operation's ORDER BY position, and a
derived table's or CTE's column standing for the masked one (in WHERE, JOIN USING, NATURAL).

Each probe first runs directly as root, where its answer depends on customer 1's e-mail
(grace.1@example.com), then through the agent as alice, who sees email masked: refused with
1142 naming the column, and her legitimate work (the same forms on plain columns) runs.
"""

from __future__ import annotations

from typing import Any

import pymysql
import pytest

from tests.agent_mysql.conftest import assert_legitimate_work_runs

# (probe, what root gets directly: None = any non-empty answer)
PROBES = [
    ("SELECT id, email AS e FROM customers ORDER BY e LIMIT 1", None),
    ("SELECT id, email FROM customers ORDER BY 2 LIMIT 1", None),
    ("SELECT id, email AS e FROM customers ORDER BY 1 + 0, e LIMIT 1", None),
    ("SELECT * FROM customer_contacts ORDER BY 3 LIMIT 1", None),
    ("SELECT c.* FROM customer_contacts c ORDER BY 3 LIMIT 1", None),
    ("SELECT id, UPPER(email) AS e FROM customers ORDER BY e LIMIT 1", None),
    ("SELECT id, (SELECT email) AS e FROM customers ORDER BY e LIMIT 1", None),
    ("SELECT LEFT(email, 1) AS e, count(*) FROM customers GROUP BY e", None),
    ("SELECT LEFT(email, 1), count(*) FROM customers GROUP BY 1", None),
    (
        "SELECT id, email AS e FROM customers HAVING e LIKE 'grace.1@%'",
        ((1, "grace.1@example.com"),),
    ),
    ("SELECT id, email FROM customers UNION ALL SELECT 0, 'x' ORDER BY 2 LIMIT 1", None),
    (
        "SELECT t.id FROM (SELECT id, email AS e FROM customers) t WHERE t.e LIKE 'grace.1@%'",
        ((1,),),
    ),
    ("SELECT id FROM (SELECT id, email FROM customers) t ORDER BY email LIMIT 1", None),
    (
        "WITH t AS (SELECT id, email AS e FROM customers) "
        "SELECT count(*) FROM t JOIN (SELECT 'grace.1@example.com' AS e) k USING (e)",
        ((1,),),
    ),
    (
        "SELECT count(*) FROM (SELECT email AS e FROM customers) t "
        "JOIN (SELECT 'grace.1@example.com' AS e) k USING (e)",
        ((1,),),
    ),
    (
        "SELECT count(*) FROM (SELECT email AS e FROM customers) t "
        "NATURAL JOIN (SELECT 'grace.1@example.com' AS e) k",
        ((1,),),
    ),
    (
        "WITH t AS (SELECT id, email AS e FROM customers) "
        "SELECT id FROM t WHERE e LIKE 'grace.1@%'",
        ((1,),),
    ),
]
# The same forms on plain columns: alice's everyday work.
LEGITIMATE = [
    "SELECT id, name AS n FROM customers ORDER BY n LIMIT 1",
    "SELECT id, name FROM customers ORDER BY 2 LIMIT 1",
    "SELECT score DIV 100 AS s, count(*) FROM customers GROUP BY s",
    "SELECT score DIV 100, count(*) FROM customers GROUP BY 1",
    "SELECT id, name AS n FROM customers HAVING n LIKE 'Grace%'",
    "SELECT id, name FROM customers UNION ALL SELECT 0, 'x' ORDER BY 2 LIMIT 1",
    "SELECT t.id FROM (SELECT id, name AS n FROM customers) t WHERE t.n LIKE 'Grace%'",
    "WITH t AS (SELECT id, name AS n FROM customers) SELECT id FROM t WHERE n LIKE 'Grace%'",
    "WITH t AS (SELECT id, name AS n FROM customers) "
    "SELECT count(*) FROM t JOIN (SELECT 'Grace Doe1' AS n) k USING (n)",
    "SELECT id, email FROM customers ORDER BY 1 LIMIT 1",
    "SELECT id, email AS e FROM customers ORDER BY id LIMIT 1",
]


def _rows(conn: Any, sql: str) -> tuple[Any, ...]:
    with conn.cursor() as cursor:
        cursor.execute(sql)
        return tuple(cursor.fetchall())


@pytest.mark.parametrize(("sql", "direct"), PROBES)
def test_a_masked_column_deciding_rows_through_a_name_or_position_is_refused(
    agent: Any, root: Any, sql: str, direct: Any
) -> None:
    answer = _rows(root, sql)
    assert answer and (direct is None or answer == direct), answer
    with agent.connect("alice") as conn:
        with pytest.raises(pymysql.err.MySQLError) as refused:
            _rows(conn, sql)
        assert_legitimate_work_runs(conn)
    code, message = refused.value.args[0], str(refused.value.args[1])
    assert code == 1142 and "masked column" in message and ".email" in message, message


@pytest.mark.parametrize("sql", LEGITIMATE)
def test_the_same_forms_on_plain_columns_run(agent: Any, sql: str) -> None:
    with agent.connect("alice") as conn:
        assert _rows(conn, sql)


def test_a_cte_over_a_masked_column_is_read_masked_not_refused(agent: Any, root: Any) -> None:
    """A CTE's select list only carries values: its rows are decided where it is read (its
    columns have no direct origin, so all come back redacted)."""
    sql = "WITH x AS (SELECT id, email FROM customers) SELECT * FROM x WHERE id = 1"
    assert _rows(root, sql) == ((1, "grace.1@example.com"),)
    with agent.connect("alice") as conn:
        rows = _rows(conn, sql)
    assert len(rows) == 1 and "grace.1" not in str(rows), rows
