"""The "affects more than N rows" guardrail: an UPDATE/DELETE/MERGE the upstream planner
expects to change more rows than the guardrail's limit is refused (block) or held (require
approval) before it runs; small writes pass; without an estimate it fails closed.

The table holds 20,000 analysed rows, so the planner's estimates are meaningful; each probe
is first run directly (rolled back) to show how many rows it really changes.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

from tests.agent.conftest import bundle_document
from tests.agent.wire import rolled_back

ROWS = 20_000
LIMIT = 1_000


@pytest.fixture
def big_table(admin: psycopg.Connection[Any]) -> Any:
    admin.execute("DROP TABLE IF EXISTS big_writes")
    admin.execute("CREATE TABLE big_writes (id int PRIMARY KEY, v text)")
    admin.execute(f"INSERT INTO big_writes SELECT g, 'v' || g FROM generate_series(1, {ROWS}) g")
    admin.execute("ANALYZE big_writes")
    yield admin
    admin.execute("DROP TABLE IF EXISTS big_writes")


def _bundle(action: str = "block", users: list[str] | None = None) -> dict[str, Any]:
    bundle = bundle_document()
    subjects = {"everyone": users is None, "users": users or [], "groups": []}
    bundle["guardrails"].append(
        {
            "id": 9,
            "name": "large writes",
            "kinds": ["rows_over_limit"],
            "subjects": subjects,
            "action": action,
            "max_rows": LIMIT,
        }
    )
    return bundle


@pytest.fixture(params=[True, False], ids=["native", "python"])
def limited(request: Any, big_table: Any, control_plane: Any, agent_factory: Any) -> Any:
    """An agent (native data path, then pure Python) started with the guardrail in force."""
    control_plane.set_bundle(_bundle())
    return agent_factory(native=request.param)


def _changed_directly(admin: psycopg.Connection[Any], sql: str) -> int:
    """Rows ``sql`` changes when run directly (rolled back); a CTE write counts them itself."""
    with rolled_back(admin):
        cursor = admin.execute(sql)
        return int(cursor.fetchone()[0]) if cursor.description else cursor.rowcount


LARGE = [
    "DELETE FROM big_writes WHERE id <= 5000",
    "UPDATE big_writes SET v = 'x' WHERE id > 2000",
    "UPDATE big_writes SET v = 'x' WHERE v LIKE 'v%'",
    "WITH d AS (DELETE FROM big_writes WHERE id > 100 RETURNING id) SELECT count(*) FROM d",
    "MERGE INTO big_writes t USING (SELECT g AS id FROM generate_series(1, 5000) g) s "
    "ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = 'm'",
    "UPDATE big_writes SET v = 'a' WHERE id = 1; DELETE FROM big_writes WHERE id > 10",
    "EXPLAIN ANALYZE DELETE FROM big_writes WHERE id > 10",
]


@pytest.mark.parametrize("sql", LARGE)
def test_a_write_estimated_above_the_limit_is_blocked_naming_guardrail_and_estimate(
    limited: Any, big_table: Any, sql: str
) -> None:
    last = sql.split(";")[-1].removeprefix("EXPLAIN ANALYZE ")
    assert _changed_directly(big_table, last) > LIMIT  # control: it is large
    with limited.connect("root") as conn, pytest.raises(psycopg.Error) as info:
        conn.execute(sql)
    assert info.value.sqlstate == "42501"
    message = str(info.value)
    assert 'rows_over_limit blocked by guardrail "large writes"' in message
    estimate = int(message.split("estimates ")[1].split(" rows")[0])
    assert estimate > LIMIT and f"limit of {LIMIT}" in message
    assert (
        big_table.execute("SELECT count(*) FROM big_writes WHERE v LIKE 'v%'").fetchone()[0] == ROWS
    )


def test_the_estimate_is_the_planners_own(limited: Any, big_table: Any) -> None:
    direct = big_table.execute(
        "EXPLAIN (FORMAT JSON) DELETE FROM big_writes WHERE id <= 5000"
    ).fetchone()[0]
    planned = direct[0]["Plan"]["Plans"][0]["Plan Rows"]
    with limited.connect("root") as conn, pytest.raises(psycopg.Error) as info:
        conn.execute("DELETE FROM big_writes WHERE id <= 5000")
    assert f"estimates {planned} rows" in str(info.value)


SMALL = [
    "UPDATE big_writes SET v = 'small' WHERE id <= 10",
    "DELETE FROM big_writes WHERE id = 20000",
    "UPDATE big_writes SET v = 'small' WHERE id BETWEEN 100 AND 300",
    "INSERT INTO big_writes SELECT g, 'n' FROM generate_series(30001, 35000) g",
]


@pytest.mark.parametrize("sql", SMALL)
def test_a_write_within_the_limit_runs(limited: Any, big_table: Any, sql: str) -> None:
    with limited.connect("root") as conn, rolled_back(conn):
        changed = conn.execute(sql).rowcount
    assert changed == _changed_directly(big_table, sql)


def test_parameters_are_estimated_with_a_generic_plan(limited: Any) -> None:
    with limited.connect("root") as conn:
        with rolled_back(conn):  # id = $1 on a primary key: one row
            assert conn.execute("UPDATE big_writes SET v = 'p' WHERE id = %s", (7,)).rowcount == 1
        # id > $1: the generic plan cannot know the value; the default selectivity (1/3 of
        # 20,000) is above the limit, so a range by parameter is refused even for a small one
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="large writes"):
            conn.execute("DELETE FROM big_writes WHERE id > %s", (19_990,), prepare=True)


def test_sql_prepare_of_a_large_write_is_refused_at_prepare(limited: Any) -> None:
    with limited.connect("root") as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="large writes"):
            conn.execute("PREPARE wipe AS DELETE FROM big_writes WHERE id > 10")
        conn.execute("PREPARE fix(int) AS UPDATE big_writes SET v = 'f' WHERE id = $1")
        with rolled_back(conn):
            assert conn.execute("EXECUTE fix(3)").rowcount == 1


def test_without_an_estimate_the_guardrail_fails_closed(limited: Any, admin: Any) -> None:
    """A temporary table only the session sees cannot be planned on the agent's side
    connection: the write is refused, not waved through."""
    with limited.connect("root") as conn:
        conn.execute("CREATE TEMP TABLE mine AS SELECT g AS id FROM generate_series(1, 5) g")
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            conn.execute("DELETE FROM mine WHERE id = 1")
        assert "could not be taken" in str(info.value) and "42P01" in str(info.value)
        assert conn.execute("SELECT count(*) FROM mine").fetchone()[0] == 5


def test_the_guardrail_binds_only_its_subjects(
    big_table: Any, control_plane: Any, agent_factory: Any
) -> None:
    control_plane.set_bundle(_bundle(users=["alice"]))
    agent = agent_factory()
    with agent.connect("root") as conn, rolled_back(conn):
        assert conn.execute("DELETE FROM big_writes WHERE id <= 5000").rowcount == 5000


def test_require_approval_holds_the_write_and_an_approval_lets_it_run(
    big_table: Any, control_plane: Any, agent_factory: Any
) -> None:
    control_plane.set_bundle(_bundle(action="require_approval"))
    agent = agent_factory()
    sql = "UPDATE big_writes SET v = 'approved' WHERE id <= 4000"
    with agent.connect("root") as conn, pytest.raises(psycopg.Error) as info:
        conn.execute(sql)
    assert info.value.sqlstate == "42501" and "requires approval" in str(info.value)
    (request_id,) = control_plane.access_requests
    filed = control_plane.access_requests[request_id]
    assert filed["level"] == "write" and "guardrail:9:large writes" in filed["reason"]
    control_plane.review(request_id, "approved", level="write")
    deadline = time.monotonic() + 10
    while True:
        try:
            with agent.connect("root") as conn:
                assert conn.execute(sql).rowcount == 4000
            break
        except psycopg.errors.InsufficientPrivilege:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
