"""MySQL views' own clauses: a view whose definition filters, joins, groups, orders or limits
on a masked column answers a question about the hidden values to whoever reads it, also
through a statement naming none of its columns (``count(*)``) or a view over it.  The agent
reads each view by its definition (``analysis.stored_view``, as PostgreSQL's views are) and
refuses such reads for alice, naming the column, the clause and the view; a view calling a
stored function is code the agent cannot inspect, as the call itself is.

Every probe first runs directly as root (no agent), where it must answer the question, and
through the agent as root, whom no rule on customers' e-mails restricts (a stored function
is refused to root as well: the SSN rule restricts everyone); alice's legitimate reads of views over
the same table (unfiltered, or filtered on plain columns) keep working.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from tests.agent_mysql.conftest import assert_legitimate_work_runs, root_connection

SECRET = "grace.1@example.com"
VIEWS = [
    "CREATE VIEW rv_grace AS SELECT id FROM customers WHERE email LIKE 'grace.1@%'",
    "CREATE VIEW rv_first_email AS SELECT id FROM customers ORDER BY email LIMIT 1",
    "CREATE VIEW rv_groups AS SELECT count(*) AS n FROM customers GROUP BY email "
    "HAVING MIN(email) < 'b'",
    "CREATE VIEW rv_joined AS SELECT c.id FROM customers c "
    "JOIN customers d ON d.email LIKE 'grace.1@%' AND d.id = c.id",
    "CREATE VIEW rv_distinct AS SELECT DISTINCT email FROM customers",
    "CREATE VIEW rv_branch AS SELECT id, IF(email LIKE 'grace.1@%', 1, 0) AS hit FROM customers",
    "CREATE VIEW rv_nested AS SELECT 1 AS one FROM rv_grace",
    "CREATE VIEW rv_low_ids AS SELECT id, name FROM customers WHERE id < 5 ORDER BY name",
    "CREATE FUNCTION rv_email_of(i int) RETURNS varchar(100) READS SQL DATA "
    "RETURN (SELECT email FROM customers WHERE id = i)",
    "CREATE VIEW rv_contacts AS SELECT id, rv_email_of(customer_id) AS contact FROM orders",
]
# (probe, what root gets directly, clause named, view named in alice's refusal)
INFERENCE = [
    ("SELECT id FROM rv_grace", ((1,),), "WHERE", "rv_grace"),
    ("SELECT count(*) FROM rv_grace", ((1,),), "WHERE", "rv_grace"),
    ("SELECT id FROM rv_first_email", None, "ORDER BY", "rv_first_email"),
    ("SELECT count(*) FROM rv_groups", ((4,),), "GROUP BY", "rv_groups"),
    ("SELECT * FROM rv_joined", ((1,),), "JOIN ON", "rv_joined"),
    ("SELECT count(*) FROM rv_distinct", ((20,),), "DISTINCT", "rv_distinct"),
    ("SELECT id FROM rv_branch WHERE hit = 1", ((1,),), "LIKE", "rv_branch"),
    ("SELECT count(*) FROM rv_nested", ((1,),), "WHERE", "rv_grace"),
    ("SELECT (SELECT count(*) FROM rv_grace) AS n", ((1,),), "WHERE", "rv_grace"),
]
# Alice's everyday reads of views over customers: unfiltered, or filtered on plain columns.
LEGITIMATE = [
    ("SELECT count(*) FROM public_names", ((20,),)),
    ("SELECT name FROM public_names WHERE id = 3", (("Edsger Doe3",),)),
    ("SELECT id, name FROM rv_low_ids ORDER BY id", None),
    ("SELECT count(*) FROM customer_contacts", ((20,),)),
]


@pytest.fixture(scope="module")
def views(mysql_database: str) -> Iterator[None]:
    with root_connection(mysql_database) as conn, conn.cursor() as cursor:
        for statement in VIEWS:
            cursor.execute(statement)
    yield
    with root_connection(mysql_database) as conn, conn.cursor() as cursor:
        for statement in reversed(VIEWS):
            kind, name = statement.split()[1], statement.split()[2].split("(")[0]
            cursor.execute(f"DROP {kind} IF EXISTS {name}")


def _rows(conn: Any, sql: str) -> tuple[Any, ...]:
    with conn.cursor() as cursor:
        cursor.execute(sql)
        return tuple(cursor.fetchall())


def _refused(agent: Any, sql: str) -> str:
    with agent.connect("alice") as conn:
        with pytest.raises(pymysql.err.MySQLError) as refused:
            _rows(conn, sql)
        assert_legitimate_work_runs(conn)
    assert refused.value.args[0] == 1142, refused.value.args
    return str(refused.value.args[1])


@pytest.mark.parametrize(("sql", "direct", "clause", "view"), INFERENCE)
def test_a_views_own_clause_on_a_masked_column_is_refused(
    views: None, agent: Any, root: Any, sql: str, direct: Any, clause: str, view: str
) -> None:
    answer = _rows(root, sql)
    assert answer and (direct is None or answer == direct), answer  # the view answers
    with agent.connect("root") as conn:
        assert _rows(conn, sql) == answer  # the agent does not restrict root
    message = _refused(agent, sql)
    column = f"{agent.database}.customers.email"
    assert f"masked column {column} cannot be used in" in message, message
    assert clause in message and f"in the definition of {agent.database}.{view}" in message


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT contact FROM rv_contacts WHERE id = 1",
        "SELECT `rv_email_of`(customer_id) FROM orders WHERE id = 1",
    ],
)
def test_a_stored_function_call_is_opaque_also_quoted_or_in_a_view(
    views: None, agent: Any, root: Any, sql: str
) -> None:
    assert _rows(root, sql) == ((SECRET,),)  # (root through the agent: see below)
    message = _refused(agent, sql)
    assert "code or SQL the agent cannot inspect" in message, message


@pytest.mark.parametrize(("sql", "expected"), LEGITIMATE)
def test_views_without_filters_on_masked_columns_keep_working(
    views: None, agent: Any, sql: str, expected: Any
) -> None:
    with agent.connect("alice") as conn:
        rows = _rows(conn, sql)
    assert rows if expected is None else rows == expected
    if expected is None:
        assert [r[0] for r in rows] == [1, 2, 3, 4]
