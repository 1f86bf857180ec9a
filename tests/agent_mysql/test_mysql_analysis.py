"""The MySQL analyser on its own: statement kinds, guardrails, where each column flows,
and the normalised text the decision cache is keyed by."""

from __future__ import annotations

import pytest

from agent.analysis import DERIVED, OUTPUT, PREDICATE, TARGET, WRITE, Relation, SqlError
from agent.mysql.analysis import analyze
from agent.mysql.text import normalize

SHOP = Relation("shop", "customers")


def _flows(sql: str) -> set[tuple[str | None, str, int | None]]:
    return {
        (u.column, u.context, u.position) for s in analyze(sql, "shop").statements for u in s.uses
    }


def test_bare_columns_are_outputs_and_expressions_derived_at_their_position():
    flows = _flows("SELECT name, UPPER(email) AS e FROM customers WHERE phone = 'x'")
    assert flows == {("name", OUTPUT, 0), ("email", DERIVED, 1), ("phone", PREDICATE, None)}


def test_unqualified_tables_resolve_in_the_current_database_and_use_moves_it():
    analysis = analyze("SELECT 1 FROM customers; USE other; SELECT 1 FROM customers", "shop")
    assert [s.relations for s in analysis.statements] == [
        {SHOP},
        set(),
        {Relation("other", "customers")},
    ]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT @x := email FROM customers",
        "SELECT email INTO @v FROM customers",
        "SET @v = (SELECT email FROM customers)",
        "INSERT INTO scratch (v) SELECT email FROM customers",
        "CREATE TABLE t2 AS SELECT email FROM customers",
    ],
)
def test_stored_values_are_writes(sql: str):
    assert ("email", WRITE, None) in _flows(sql)


def test_update_targets_and_sources():
    flows = _flows("UPDATE scratch SET v = (SELECT email FROM customers LIMIT 1) WHERE id = 1")
    assert {("v", TARGET, None), ("email", WRITE, None), ("id", PREDICATE, None)} <= flows


def test_derived_tables_and_unions_have_no_output_position():
    assert ("email", DERIVED, None) in _flows("SELECT * FROM (SELECT email FROM customers) s")
    assert ("email", DERIVED, None) in _flows(
        "SELECT name FROM t UNION ALL SELECT email FROM customers"
    )


def _clauses(sql: str) -> set[tuple[str | None, str, bool]]:
    return {
        (u.column, u.clause, u.lookup)
        for s in analyze(sql, "shop").statements
        for u in s.uses
        if u.context == PREDICATE
    }


@pytest.mark.parametrize(
    ("sql", "clause"),
    [
        ("SELECT id FROM customers WHERE email LIKE 'a%'", "WHERE"),
        ("SELECT id FROM customers ORDER BY email", "ORDER BY"),
        ("SELECT count(*) FROM customers GROUP BY email", "GROUP BY"),
        ("SELECT 1 FROM customers GROUP BY id HAVING max(email) > 'm'", "HAVING"),
        ("SELECT a.id FROM customers a JOIN customers b ON a.email = b.name", "JOIN ON"),
        ("SELECT a.id FROM customers a JOIN archive b USING (email)", "JOIN USING"),
        ("SELECT DISTINCT email FROM customers", "DISTINCT"),
        ("SELECT name FROM t UNION SELECT email FROM customers", "UNION"),
        (
            "SELECT rank() OVER (PARTITION BY email ORDER BY id) FROM customers",
            "a window definition (OVER)",
        ),
        ("SELECT (SELECT 1 FROM customers WHERE email < 'm' LIMIT 1)", "WHERE"),
        ("SELECT * FROM (SELECT id FROM customers ORDER BY email LIMIT 1) s", "ORDER BY"),
        ("UPDATE customers SET name = 'x' WHERE email <> 'a'", "WHERE"),
        ("DELETE FROM customers WHERE email > 'm'", "WHERE"),
    ],
)
def test_predicates_name_the_clause_that_decides_rows(sql: str, clause: str):
    assert ("email", clause, False) in _clauses(sql)


def test_only_equality_with_constants_is_an_exact_lookup():
    clauses = _clauses(
        "SELECT id FROM customers WHERE email = ? AND card IN ('a', 'b') AND ssn LIKE 'x%' "
        "AND phone = name"
    )
    assert {("email", "WHERE", True), ("card", "WHERE", True)} <= clauses
    assert ("ssn", "WHERE", False) in clauses and ("phone", "WHERE", False) in clauses
    assert ("email", "WHERE", False) in _clauses(
        "SELECT id FROM customers WHERE email = 'a' OR id = 1"
    )


@pytest.mark.parametrize(
    ("sql", "guardrail"),
    [
        ("DELETE FROM t WHERE 1 = 1", "delete_without_where"),
        ("UPDATE t SET a = 1", "update_without_where"),
        ("RENAME TABLE a TO b", "alter"),
        ("DROP USER bob", "role"),
        ("REVOKE ALL ON *.* FROM bob", "grant_revoke"),
        ("SELECT * FROM t INTO DUMPFILE '/tmp/x'", "server_file_functions"),
        ("SELECT 1; DELETE FROM t WHERE id = 1", "mixed_multi_statement"),
    ],
)
def test_guardrail_kinds(sql: str, guardrail: str):
    assert guardrail in analyze(sql, "shop").guardrails


@pytest.mark.parametrize(
    "sql",
    [
        "SHOW WARNINGS",
        "CALL p()",
        "SELECT shop.f(1)",
    ],
)
def test_statements_the_agent_cannot_see_into_are_opaque(sql: str):
    assert any(s.opaque for s in analyze(sql, "shop").statements)


@pytest.mark.parametrize(
    ("sql", "catalog"),
    [
        ("SHOW PROCESSLIST", ("information_schema", "processlist")),
        ("SELECT INFO FROM information_schema.PROCESSLIST", ("information_schema", "processlist")),
        (
            "USE information_schema; SELECT INFO FROM PROCESSLIST",
            ("information_schema", "processlist"),
        ),
        ("SELECT * FROM mysql.user", ("mysql", "user")),
        ("SELECT * FROM performance_schema.threads", ("performance_schema", "threads")),
    ],
)
def test_private_catalogs_are_named_for_the_policy(sql: str, catalog: tuple[str, str]):
    assert catalog in analyze(sql, "shop").private_catalogs


def test_normalised_text_replaces_only_literals():
    assert normalize("SELECT a FROM t WHERE id = 42 AND b = 'x' AND c = 0x1F") == (
        "SELECT a FROM t WHERE id = $1 AND b = $2 AND c = $3"
    )


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT /*M!100000 email, */ 2 FROM customers",  # MariaDB executable comment
        "XA START 'x'",
    ],
)
def test_text_the_agent_might_read_differently_is_refused(sql: str):
    with pytest.raises(SqlError):
        analyze(sql, "shop")


def test_a_long_or_chain_is_analysed_in_time_linear_in_its_length():
    # sqlglot nests ``a OR b OR …`` one level a term; each column's walk to its clause went
    # through every level above it (10,000 terms: about 40 s, with the agent's event loop stalled).
    import time

    sql = "SELECT id FROM customers WHERE " + " OR ".join(f"email = 'x{i}'" for i in range(10000))
    started = time.perf_counter()
    flows = {(u.column, u.context) for s in analyze(sql, "shop").statements for u in s.uses}
    assert time.perf_counter() - started < 15
    assert flows == {("id", OUTPUT), ("email", PREDICATE)}
