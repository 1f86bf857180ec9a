"""MySQL guardrails judge meaning: a WHERE that holds for every row counts as no WHERE.

Each probe first runs directly on MariaDB (in a rolled-back transaction) and must change
every row of the table there, so it really is an unfiltered write; through the agent it must
then be refused with 1142 naming the guardrail kind and rule.  Real conditions still run
through the agent and change exactly the rows they select.  The meaning module's constant
folding is compared with MariaDB's own over random expressions.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
import sqlglot

from agent.mysql.analysis import analyze
from agent.mysql.guardrail_meaning import constant_truth
from tests.agent_mysql.conftest import changed_directly, root_connection
from tests.guardrail_conditions import EVERY_ROW_BOTH_DIALECTS

TABLE = "guard_rows"
ROWS = 5
RULE = "rule: guardrail:1:no destructive statements"
DELETE, UPDATE = f"DELETE FROM {TABLE}", f"UPDATE {TABLE} SET v = 'gone'"

# MySQL's own ways to hold for every row (ids 1..5, v 'a'..'e'), beside the shared ones.
EVERY_ROW_MYSQL = [
    "1",
    "-1",
    "0.5",
    "id <=> id",
    "id >= id",
    f"{TABLE}.id <= `ID`",
    "id = ID",
    "id > 3 OR 3 >= id",
    "NOT id <> id",
    "TRUE IS TRUE",
    "v IS NULL OR v IS NOT NULL",
    "v LIKE '%%' ESCAPE '!'",
    "v REGEXP ''",
    "v RLIKE '.*'",
    "(SELECT 1)",
    "COALESCE(1, 0)",
    "IFNULL(id = id, 1)",
    "IF(id = 1, TRUE, 1)",
    "id = 3 XOR id <> 3",
    "id = 5 || 1",
    "'A' = 'a'",  # collation: sqlglot's simplify alone calls these false
    "'a ' = 'a'",
    "1e16 + 1 = 1e16",  # doubles: exact arithmetic calls it false
    "@warden_unset IS NULL",
    "UTC_DATE",
    "EXISTS (SELECT 1 FROM orders AS guard_rows WHERE guard_rows.id = 1)",
]
EVERY_ROW = [*EVERY_ROW_BOTH_DIALECTS, *EVERY_ROW_MYSQL]
# Multi-table forms and limits that still reach every row of guard_rows.
EVERY_ROW_STATEMENTS = [
    (f"DELETE {TABLE} FROM {TABLE} JOIN orders o ON o.id = 1", "delete"),
    (f"DELETE g FROM {TABLE} AS g, orders WHERE orders.id = 1", "delete"),
    (f"DELETE FROM g USING {TABLE} AS g JOIN orders o WHERE o.amount > 0", "delete"),
    (f"DELETE g FROM {TABLE} g JOIN orders o ON o.customer_id = g.id OR g.id = g.id", "delete"),
    (f"DELETE {TABLE} FROM {TABLE} LEFT JOIN orders o ON o.customer_id = {TABLE}.id", "delete"),
    (f"UPDATE {TABLE} JOIN orders o ON o.id = 1 SET {TABLE}.v = 'gone'", "update"),
    (f"UPDATE {TABLE} g CROSS JOIN orders o SET g.v = 'gone' WHERE o.id = 1", "update"),
    (f"UPDATE {TABLE}, orders SET v = 'gone' WHERE orders.id = 1", "update"),
    (f"DELETE FROM {TABLE} WHERE 1 = 1 LIMIT 100", "delete"),
    (f"UPDATE {TABLE} SET v = 'gone' WHERE id = id ORDER BY id LIMIT 100", "update"),
]
# Real conditions, each with the number of rows it changes.
REAL_CONDITIONS = [
    ("id = 3", 1),
    ("id = id AND id = 3", 1),
    ("v LIKE 'a%'", 1),
    ("id > 3", 2),
    ("id IN (SELECT customer_id FROM orders WHERE amount < 3)", 1),
    ("id = 3 OR id = 3 AND 1 = 1", 1),
    ("id <> id", 0),
    ("NOT (id = id)", 0),
    ("0", 0),
]
REAL_STATEMENTS = [
    (f"DELETE g FROM {TABLE} g JOIN orders o ON g.id = o.customer_id WHERE o.amount < 4", 2),
    (f"UPDATE {TABLE} g JOIN orders o ON o.customer_id = g.id SET g.v = 'x' WHERE o.id = 2", 1),
    (f"UPDATE {TABLE} JOIN orders o ON o.customer_id = {TABLE}.id SET {TABLE}.v = 'x'", ROWS),
    (f"DELETE FROM g USING {TABLE} AS g, orders WHERE g.id = orders.id AND orders.id < 3", 2),
    (f"UPDATE {TABLE} SET v = 'x' WHERE id >= 4 ORDER BY id LIMIT 1", 1),
    (f"REPLACE INTO {TABLE} (id, v) VALUES (3, 'r')", 2),
    (f"INSERT INTO {TABLE} (id, v) VALUES (3, 'x') ON DUPLICATE KEY UPDATE v = 'd'", 2),
]


@pytest.fixture
def direct(mysql_database: str) -> Iterator[Any]:
    connection = root_connection(mysql_database)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id int PRIMARY KEY, v text)")
    _fill(connection)
    yield connection
    connection.close()


def _fill(direct: Any) -> None:
    with direct.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE}")
        rows = [(i, chr(96 + i)) for i in range(1, ROWS + 1)]
        cursor.executemany(f"INSERT INTO {TABLE} (id, v) VALUES (%s, %s)", rows)


def _refusal(conn: Any, sql: str) -> tuple[int, str] | None:
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)
    except pymysql.err.MySQLError as exc:
        return exc.args[0], exc.args[1]
    return None


def _untouched(direct: Any) -> bool:
    with direct.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {TABLE} WHERE v <> 'gone'")
        return bool(cursor.fetchone()[0] == ROWS)


@pytest.mark.parametrize(("verb", "kind"), [(DELETE, "delete"), (UPDATE, "update")])
def test_a_condition_true_for_every_row_counts_as_no_where(
    agent: Any, direct: Any, verb: str, kind: str
) -> None:
    failures = []
    with agent.connect("root") as conn:
        for condition in EVERY_ROW:
            sql = f"{verb} WHERE {condition}"
            assert changed_directly(direct, sql) == ROWS, f"not every row directly: {sql!r}"
            refused = _refusal(conn, sql)
            if refused is None or refused[0] != 1142 or f"{kind}_without_where" not in refused[1]:
                failures.append(f"{sql!r} -> {refused!r}")
            elif RULE not in refused[1]:
                failures.append(f"{sql!r} does not name the rule: {refused[1]!r}")
    assert _untouched(direct), "a probe changed rows through the agent"
    assert not failures, f"{len(failures)} of {len(EVERY_ROW)} ran:\n" + "\n".join(failures)


def test_joins_and_limits_that_reach_every_row_are_refused(agent: Any, direct: Any) -> None:
    failures = []
    with agent.connect("root") as conn:
        for sql, kind in EVERY_ROW_STATEMENTS:
            assert changed_directly(direct, sql) == ROWS, f"not every row directly: {sql!r}"
            refused = _refusal(conn, sql)
            if refused is None or refused[0] != 1142 or f"{kind}_without_where" not in refused[1]:
                failures.append(f"{sql!r} -> {refused!r}")
    assert _untouched(direct), "a probe changed rows through the agent"
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("verb", [DELETE, UPDATE])
def test_real_conditions_run_and_change_exactly_their_rows(
    agent: Any, direct: Any, verb: str
) -> None:
    with agent.connect("root") as conn:
        for condition, expected in REAL_CONDITIONS:
            _fill(direct)
            sql = f"{verb} WHERE {condition}"
            assert changed_directly(direct, sql) == expected, sql
            with conn.cursor() as cursor:
                assert cursor.execute(sql) == expected, sql
            with direct.cursor() as cursor:
                cursor.execute(f"SELECT count(*) FROM {TABLE} WHERE v IN ('a','b','c','d','e')")
                assert cursor.fetchone()[0] == ROWS - expected, sql


def test_real_joins_and_upserts_run_and_change_exactly_their_rows(agent: Any, direct: Any) -> None:
    with agent.connect("root") as conn:
        for sql, expected in REAL_STATEMENTS:
            _fill(direct)
            assert changed_directly(direct, sql) == expected, sql
            with conn.cursor() as cursor:
                assert cursor.execute(sql) == expected, sql


# ---------------------------------------------------------------- the analyser alone

UNIT_CASES = [
    # (statement, unfiltered?)
    ("DELETE FROM t", True),
    ("DELETE FROM t WHERE id = 3", False),
    ("DELETE FROM t WHERE t.id = 3", False),
    ("DELETE FROM t WHERE shop.t.id = shop.t.id", True),
    ("DELETE FROM t WHERE shop.t.id = 3", False),
    ("DELETE FROM t WHERE other.t.id = 3", True),  # not this table's column: fail closed
    ("DELETE FROM t AS x WHERE t.id = 3", True),  # an aliased table is only its alias
    ("DELETE FROM t AS x WHERE x.id = x.ID", True),
    ("DELETE FROM t WHERE `id` = id", True),
    ("DELETE FROM t WHERE id = id + 0", False),  # not proved: a real condition
    ("DELETE FROM t WHERE id + 0 = (id + 0)", True),
    ("DELETE FROM t WHERE (id, v) = (id, v)", True),
    ("DELETE FROM t WHERE id IN (1, id)", True),
    ("DELETE FROM t WHERE id NOT IN (id)", False),
    ("DELETE FROM t WHERE id NOT BETWEEN id AND id", False),
    ("DELETE FROM t WHERE NOT (id NOT BETWEEN id AND id)", True),
    ("DELETE FROM t WHERE v LIKE 'a%'", False),
    ("DELETE FROM t WHERE v LIKE '%' ESCAPE '%'", False),
    ("DELETE FROM t WHERE v LIKE BINARY '%'", False),
    ("DELETE FROM t WHERE v REGEXP 'a'", False),
    ("DELETE FROM t WHERE v NOT LIKE '%'", False),
    ("DELETE FROM t WHERE NOT (v NOT LIKE '%')", True),
    # sqlglot reads it as NOT (v REGEXP ''), which HIGH_NOT_PRECEDENCE groups as
    # (NOT v) REGEXP '': true for every row in that reading.
    ("DELETE FROM t WHERE v NOT REGEXP ''", True),
    ("DELETE FROM t WHERE NOT id IN (id, NOT id)", True),  # (NOT id) IN (…): HIGH_NOT_PRECEDENCE
    ("DELETE FROM t WHERE id IS NULL", False),
    ("DELETE FROM t WHERE ISNULL(id) OR NOT ISNULL(id)", True),
    ("DELETE FROM t WHERE id = 3 OR id = 4", False),
    ("DELETE FROM t WHERE id = 3 AND 1 = 1", False),
    ("DELETE FROM t WHERE id = 3 AND 'abc'", False),
    ("DELETE FROM t WHERE id = 3 OR 'abc'", True),  # a string MySQL may read as true
    ("DELETE FROM t WHERE id = 3 OR 0", False),
    ("DELETE FROM t WHERE id = 3 OR NULL", False),
    ("DELETE FROM t WHERE id = 3 OR ?", True),
    ("DELETE FROM t WHERE id = ?", False),
    ("DELETE FROM t WHERE ? = ?", True),
    ("DELETE FROM t WHERE @x", True),
    ("DELETE FROM t WHERE @@autocommit", True),
    ("DELETE FROM t WHERE `UTC_DATE`", False),  # quoted: a column
    ("DELETE FROM t WHERE CURRENT_ROLE", True),
    ("DELETE FROM t WHERE 1 = 0", False),
    ("DELETE FROM t WHERE NULL", False),
    ("DELETE FROM t WHERE NOT 1", True),  # NOT is not folded: fail closed
    ("DELETE FROM t WHERE 0 OR 0", True),  # nor OR (|| may be concatenation)
    ("DELETE FROM t WHERE 0 AND id = id", False),
    ("DELETE FROM t WHERE NOT id <= id", False),  # (NOT id) <= id under HIGH_NOT_PRECEDENCE
    ("DELETE FROM t WHERE id <> id OR id <> id", False),
    ("DELETE FROM t WHERE NOT (id <> id OR id < id)", True),
    ("DELETE FROM t WHERE CASE WHEN id = 1 THEN 1 END", False),
    ("DELETE FROM t WHERE CASE id WHEN 1 THEN 1 ELSE 1 END", True),
    ("DELETE FROM t WHERE COALESCE(id = 3, TRUE)", False),
    ("DELETE FROM t WHERE id = 3 XOR id = 3", False),
    ("DELETE FROM t WHERE TRUE XOR FALSE", True),
    ("DELETE FROM t WHERE id IN (SELECT id FROM u)", False),
    ("DELETE FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.t_id = t.id)", False),
    ("DELETE FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.t_id = id)", True),
    ("DELETE FROM t WHERE EXISTS (SELECT 1 FROM u AS t WHERE t.id = 1)", True),
    ("DELETE FROM t WHERE id = 3 LIMIT 1", False),
    ("DELETE FROM t ORDER BY id LIMIT 1", True),
    ("DELETE t1 FROM t1 JOIN t2 ON t1.id = t2.id", False),
    ("DELETE t1 FROM t1 JOIN t2 USING (id)", False),
    ("DELETE t1 FROM t1 NATURAL JOIN t2", True),
    ("DELETE t1 FROM t1, t2 WHERE id = t1_id", True),  # whose id? fail closed
    ("DELETE t1, t2 FROM t1 JOIN t2 ON t1.id = 1", True),  # t2: every row
    ("DELETE t1, t2 FROM t1 JOIN t2 ON t1.id = t2.id", False),
    ("DELETE t2 FROM t1 LEFT JOIN t2 ON t1.id = t2.id", True),  # outer ON: not counted
    ("UPDATE t SET v = 1", True),
    ("UPDATE t SET v = 1 WHERE v = v", True),
    ("UPDATE t SET v = 1 WHERE v = 'a'", False),
    ("UPDATE t1 JOIN t2 ON t1.id = t2.id SET t1.v = 1", False),
    ("UPDATE t1 JOIN t2 ON t2.id = 1 SET t1.v = 1", True),
    ("UPDATE t1 JOIN t2 ON t1.id = t2.id SET t2.v = 1 WHERE t2.id = t2.id", False),
    ("UPDATE t1 RIGHT JOIN t2 ON t1.id = t2.id SET t1.v = 1", True),
    ("UPDATE t1, t2 SET v = 1 WHERE t1.id = 3", True),  # v may be t2's
    ("UPDATE t1, t2 SET t1.v = 1 WHERE t1.id = 3", False),
    ("EXPLAIN ANALYZE DELETE FROM t", True),  # MySQL 8 runs it
    ("EXPLAIN DELETE FROM t", False),  # a plan: nothing changes
]


@pytest.mark.parametrize(("sql", "unfiltered"), UNIT_CASES)
def test_the_analyser_reads_what_a_condition_means(sql: str, unfiltered: bool) -> None:
    guardrails = analyze(sql, "shop").guardrails
    assert bool(guardrails & {"delete_without_where", "update_without_where"}) == unfiltered


def test_long_or_chains_are_judged_not_refused_for_their_length() -> None:
    # sqlglot nests an OR chain one level a term: the fold must not recurse per level.
    terms = [f"id = {i}" for i in range(600)]
    real = analyze("DELETE FROM t WHERE " + " OR ".join(terms), "shop").guardrails
    assert "delete_without_where" not in real
    tautology = " OR ".join([*terms, "v IS NULL", "v IS NOT NULL"])
    assert "delete_without_where" in analyze(f"DELETE FROM t WHERE {tautology}", "shop").guardrails


@pytest.mark.parametrize(
    "sql", ["REPLACE INTO t VALUES (1)", "INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE v = 2"]
)
def test_upserts_are_not_judged_as_unfiltered_writes(sql: str) -> None:
    guardrails = analyze(sql, "shop").guardrails
    assert not guardrails & {"delete_without_where", "update_without_where"}


def _random_constant(rng: random.Random, depth: int) -> str:
    atoms = [
        "0",
        "1",
        "2",
        "-1",
        "0.5",
        "0.0",
        "10.25",
        "TRUE",
        "FALSE",
        "NULL",
        "'a'",
        "'A'",
        "'1abc'",
        "1e16",
        "1e16 + 1",
        "0.1 + 0.2",
        "0.3",
        "NOT 0",
        "2 = TRUE",
        "'a ' ",
    ]
    if depth == 0 or rng.random() < 0.3:
        return rng.choice(atoms)
    left, right = _random_constant(rng, depth - 1), _random_constant(rng, depth - 1)
    operator = rng.choice(["AND", "=", "<>", "<", "<=", ">", ">=", "&&", "!=", "OR", "XOR"])
    template = rng.choice(["{} {} {}", "({} {} {})", "({} {} {})", "NOT ({} {} {})"])
    return template.format(left, operator, right)


def test_constant_folding_agrees_with_mariadb(direct: Any) -> None:
    rng = random.Random(13)
    expressions = [_random_constant(rng, 3) for _ in range(2000)]
    settled = []
    for text in expressions:
        node = sqlglot.parse_one(f"SELECT 1 WHERE {text}", read="mysql").args["where"].this
        truth = constant_truth(node)
        if truth is not None:
            settled.append((text, truth))
    assert len(settled) > 200, "too few expressions settled to compare"
    assert {truth for _, truth in settled} == {True, False}
    with direct.cursor() as cursor:
        for start in range(0, len(settled), 100):
            chunk = settled[start : start + 100]
            cursor.execute("SELECT " + ", ".join(f"({text}) IS TRUE" for text, _ in chunk))
            answers = cursor.fetchone()
            for (text, truth), answer in zip(chunk, answers, strict=True):
                assert bool(answer) == truth, f"{text!r}: agent {truth}, MariaDB {answer}"


@pytest.mark.parametrize("mode", ["ORACLE", "POSTGRESQL", "PIPES_AS_CONCAT", "HIGH_NOT_PRECEDENCE"])
def test_sql_modes_that_regroup_operators_are_refused(agent: Any, direct: Any, mode: str) -> None:
    # Directly, the mode changes how the server groups an expression the agent reads.
    with direct.cursor() as cursor:
        cursor.execute(f"SET SESSION sql_mode = '{mode}'")
        cursor.execute("SELECT NOT 1 < 2, CAST('a' || 'b' AS CHAR)")
        regrouped, piped = cursor.fetchone()
        cursor.execute("SET SESSION sql_mode = DEFAULT")
    assert regrouped == 1 or piped == "ab", mode
    with agent.connect("root") as conn:
        refused = _refusal(conn, f"SET SESSION sql_mode = '{mode}'")
        assert refused is not None and mode in refused[1], refused
        with conn.cursor() as cursor:
            cursor.execute("SELECT @@sql_mode")
            assert "PIPES_AS_CONCAT" not in cursor.fetchone()[0]
