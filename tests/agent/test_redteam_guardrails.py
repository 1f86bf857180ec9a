"""Guardrails judge meaning: a WHERE that holds for every row counts as no WHERE.

Each probe first runs directly on PostgreSQL (in a rolled-back transaction) and must change
every row of the table there, so it really is an unfiltered write; through the agent it
must then be refused with 42501 naming the guardrail kind. Real conditions still pass.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.agent.wire import run

ROWS = 5
# Conditions that hold for every row of scratch (ids 1..5, v 'a'..'e').
EVERY_ROW = [
    "1 = 1",
    "true",
    "'t'::boolean",
    "NOT false",
    "2 > 1",
    "'a' = 'a'",
    "1 = 1 AND 2 = 2",
    "id = id",
    "scratch.id >= scratch.id",
    "id IS NOT DISTINCT FROM id",
    "id IN (id)",
    "id BETWEEN id AND id",
    "true OR id = 5",
    "id = 5 OR 1 = 1",
    "id = 5 OR now() > '2000-01-01'",
    "id IS NULL OR id IS NOT NULL",
    "id = 3 OR NOT id = 3",
    "(id = 3) IS TRUE OR (id = 3) IS NOT TRUE",
    "v LIKE '%'",
    "v ~ ''",
    "NOT (id <> id)",
    "CASE WHEN id = 1 THEN true ELSE true END",
    "coalesce(id = id, true)",
    "EXISTS (SELECT 1)",
    "EXISTS (SELECT 1 FROM orders)",
    "(SELECT true)",
    "length('x') > 0",
    "current_user IS NOT NULL",
]
REAL_CONDITIONS = [
    "id = 3",
    "id > 3",
    "v = 'a' OR id = 5",
    "id IN (SELECT customer_id FROM orders WHERE amount < 3)",
    "scratch.v LIKE 'a%'",
    "id = 1 AND 1 = 1",
    "NOT (id = id)",
]
PROBE_COUNT = 2 * len(EVERY_ROW) + 2  # DELETE and UPDATE each, plus the MERGE probes


@pytest.fixture
def admin(pg_database: str) -> Any:
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=pg_database) as conn:
        yield conn


def _fill(admin: Any) -> None:
    admin.execute("DELETE FROM scratch")
    admin.execute(
        "INSERT INTO scratch SELECT i, chr(96 + i) FROM generate_series(1, %s) i", (ROWS,)
    )
    admin.commit()


def _rows_changed_directly(admin: Any, sql: str) -> int:
    try:
        return admin.execute(sql).rowcount
    finally:
        admin.rollback()


@pytest.mark.parametrize("verb", ["DELETE FROM scratch", "UPDATE scratch SET v = 'gone'"])
def test_a_condition_true_for_every_row_counts_as_no_where(
    agent: Any, admin: Any, verb: str
) -> None:
    _fill(admin)
    kind = "delete_without_where" if verb.startswith("DELETE") else "update_without_where"
    failures = []
    with agent.connect("root") as conn:
        for condition in EVERY_ROW:
            sql = f"{verb} WHERE {condition}"
            changed = _rows_changed_directly(admin, sql)
            assert changed == ROWS, f"the probe does not hit every row directly: {sql!r}"
            outcome = run(conn, sql)
            if outcome.sqlstate != "42501" or kind not in str(outcome.error):
                failures.append(f"{sql!r} -> {outcome!r}")
    left = admin.execute("SELECT count(*) FROM scratch WHERE v <> 'gone'").fetchone()[0]
    assert left == ROWS, "a probe changed rows through the agent"
    assert not failures, f"{len(failures)} of {len(EVERY_ROW)} ran:\n" + "\n".join(failures)


def test_real_conditions_still_run(agent: Any, admin: Any) -> None:
    _fill(admin)
    with agent.connect("root") as conn:
        for condition in REAL_CONDITIONS:
            for verb in ("UPDATE scratch SET v = v", "DELETE FROM scratch"):
                conn.execute("BEGIN")
                outcome = run(conn, f"{verb} WHERE {condition}")
                conn.execute("ROLLBACK")
                assert outcome.error is None, (condition, outcome)


def test_delete_using_another_table_without_reading_the_target_is_unfiltered(
    agent: Any, admin: Any
) -> None:
    _fill(admin)
    sql = "DELETE FROM scratch USING orders o WHERE o.amount > 0"
    assert _rows_changed_directly(admin, sql) == ROWS
    with agent.connect("root") as conn:
        outcome = run(conn, sql)
    assert outcome.sqlstate == "42501" and "delete_without_where" in str(outcome.error)


@pytest.mark.parametrize(
    "on",
    ["s.one = s.one", "1 = 1 OR t.id = s.one"],
)
def test_merge_on_a_condition_true_for_every_row_is_unfiltered(
    agent: Any, admin: Any, on: str
) -> None:
    _fill(admin)
    sql = f"MERGE INTO scratch t USING (SELECT 1 AS one) s ON {on} WHEN MATCHED THEN DELETE"
    assert _rows_changed_directly(admin, sql) == ROWS
    with agent.connect("root") as conn:
        outcome = run(conn, sql)
    assert outcome.sqlstate == "42501" and "delete_without_where" in str(outcome.error)
