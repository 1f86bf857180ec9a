"""The "affects more than N rows" guardrail on MySQL/MariaDB: the optimizer's estimate
(EXPLAIN FORMAT=JSON on a side connection) decides, before the statement runs.

The table holds 20,000 analysed rows; each probe is first run directly (rolled back) to
show how many rows it really changes.
"""

from __future__ import annotations

from typing import Any

import mariadb
import pymysql
import pytest

from tests.agent_mysql.conftest import changed_directly, mysql_bundle

ROWS = 20_000
LIMIT = 1_000


@pytest.fixture
def big_table(root: Any) -> Any:
    with root.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS big_writes")
        cursor.execute("CREATE TABLE big_writes (id int PRIMARY KEY, v varchar(20))")
        cursor.execute(f"INSERT INTO big_writes SELECT seq, CONCAT('v', seq) FROM seq_1_to_{ROWS}")
        cursor.execute("ANALYZE TABLE big_writes")
        cursor.fetchall()
    yield root
    with root.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS big_writes")


@pytest.fixture
def limited(big_table: Any, mysql_database: str, control_plane: Any, agent_factory: Any) -> Any:
    bundle = mysql_bundle(mysql_database)
    bundle["guardrails"].append(
        {
            "id": 9,
            "name": "large writes",
            "kinds": ["rows_over_limit"],
            "subjects": {"everyone": True, "users": [], "groups": []},
            "action": "block",
            "max_rows": LIMIT,
        }
    )
    control_plane.set_bundle(bundle)
    return agent_factory()


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM big_writes WHERE id <= 5000",
        "UPDATE big_writes SET v = 'x' WHERE id > 2000",
        "UPDATE big_writes SET v = 'x' WHERE v LIKE 'v%'",
        "DELETE FROM big_writes WHERE id > 10 ORDER BY id LIMIT 100000",
    ],
)
def test_a_write_estimated_above_the_limit_is_refused_naming_guardrail_and_estimate(
    limited: Any, big_table: Any, sql: str
) -> None:
    assert changed_directly(big_table, sql) > LIMIT  # control: it really is large
    with (
        limited.connect("root") as conn,
        conn.cursor() as cursor,
        pytest.raises(pymysql.err.MySQLError) as refused,
    ):
        cursor.execute(sql)
    code, message = refused.value.args[0], refused.value.args[1]
    assert code == 1142
    assert 'rows_over_limit blocked by guardrail "large writes"' in message
    assert int(message.split("estimates ")[1].split(" rows")[0]) > LIMIT
    assert "rule: guardrail:9:large writes" in message
    with big_table.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM big_writes WHERE v LIKE 'v%'")
        assert cursor.fetchone()[0] == ROWS


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE big_writes SET v = 'small' WHERE id <= 10",
        "DELETE FROM big_writes WHERE id = 20000",
        "INSERT INTO big_writes SELECT seq, 'n' FROM seq_30001_to_35000",
    ],
)
def test_a_write_within_the_limit_runs(limited: Any, big_table: Any, sql: str) -> None:
    expected = changed_directly(big_table, sql)
    with limited.connect("root", autocommit=False) as conn, conn.cursor() as cursor:
        assert cursor.execute(sql) == expected
        conn.rollback()


def test_a_parameterised_prepared_write_fails_closed(limited: Any, mysql_database: str) -> None:
    """Without its values the server cannot estimate it: refused, never waved through; a
    prepared read still runs."""
    conn = mariadb.connect(
        host="127.0.0.1",
        port=limited.port,
        user="root",
        password="wdn_root",
        database=mysql_database,
        ssl=False,
    )
    try:
        with pytest.raises(mariadb.Error) as refused:
            conn.cursor(prepared=True).execute("DELETE FROM big_writes WHERE id = ?", (5,))
        reader = conn.cursor(prepared=True)
        reader.execute("SELECT v FROM big_writes WHERE id = ?", (5,))
        assert reader.fetchone() == ("v5",)
    finally:
        conn.close()
    assert "could not be taken" in str(refused.value) and "parameters" in str(refused.value)
