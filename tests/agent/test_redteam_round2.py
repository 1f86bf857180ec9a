"""Red-team probes, round two: bypasses of the fixes made after round one.

Every test asserts the *secure* behaviour (no masked/denied value reaches the client, or
a refusal with a clear SQLSTATE), so a failing test is a finding.
"""

from __future__ import annotations

import re
import time
from typing import Any

import psycopg
import pytest

from agent import codec
from tests.agent.conftest import email_grant
from tests.agent.wire import (
    CARD,
    DOB,
    EMAIL,
    SSN,
    Outcome,
    WireClient,
    assert_no_leak,
    bind,
    execute,
    parse,
    rows,
    run,
)
from tests.agent.wire import error_text as _error_text
from tests.agent.wire import secret_in as _secret_in


@pytest.fixture
def admin(pg_database: str) -> Any:
    with psycopg.connect(
        host="127.0.0.1", user="postgres", dbname=pg_database, autocommit=True
    ) as conn:
        yield conn


@pytest.fixture
def both(agent_on_both_paths: Any) -> Any:
    return agent_on_both_paths


def _real(pg_database: str, sql: str) -> list[Any]:
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=pg_database) as conn:
        return conn.execute(sql).fetchall()


def _notices(conn: psycopg.Connection[Any]) -> list[str]:
    seen: list[str] = []
    conn.add_notice_handler(
        lambda d: seen.append(
            " ".join(x or "" for x in (d.message_primary, d.message_detail, d.context))
        )
    )
    return seen


# ----------------------------------------------------------------------------------------
# 1. NoticeResponse / WARNING texts carry values: they are relayed unchanged
# ----------------------------------------------------------------------------------------

_PID = re.compile(r"PID (\d+) is not a PostgreSQL")


def _decode_pids(notices: list[str], base: int = 1_000_000_000) -> list[int]:
    return [int(m.group(1)) - base for n in notices for m in [_PID.search(n)] if m]


def test_warning_from_pg_cancel_backend_spells_out_a_masked_email(
    both: Any, pg_database: str
) -> None:
    """pg_cancel_backend(pid) WARNs 'PID <n> is not a PostgreSQL backend process' for a
    pid that is no backend: one character of the email per statement, rebuilt."""
    with both.connect("alice") as conn:
        notices = _notices(conn)
        for k in range(1, 20):
            run(
                conn,
                f"SELECT pg_cancel_backend(1000000000 + ascii(substr(email, {k}, 1))) "
                "FROM customers WHERE id = 1",
            )
    rebuilt = "".join(chr(c) for c in _decode_pids(notices) if 0 < c < 0x110000)
    real = _real(pg_database, "SELECT email FROM customers WHERE id = 1")[0][0]
    assert rebuilt != real and not EMAIL.search(rebuilt), (
        f"email rebuilt from WARNING texts: {rebuilt!r}"
    )


def test_warning_from_pg_cancel_backend_carries_the_full_birth_date(
    both: Any, pg_database: str
) -> None:
    """birth_date is masked to the year; the day number travels in a WARNING."""
    sql = (
        "SELECT pg_cancel_backend(1000000000 + (birth_date - date '1900-01-01')) "
        "FROM customers WHERE id = 1"
    )
    with both.connect("alice") as conn:
        notices = _notices(conn)
        run(conn, sql)
    real = _real(pg_database, "SELECT birth_date - date '1900-01-01' FROM customers WHERE id = 1")
    assert real[0][0] not in _decode_pids(notices), f"birth date leaked via WARNING: {notices}"


def test_warning_leak_via_extended_protocol(agent: Any) -> None:
    with agent.connect("alice") as conn:
        notices = _notices(conn)
        for k in range(1, 20):
            sql = (
                "SELECT pg_log_backend_memory_contexts(1000000000 + ascii(substr(card, %s, 1)))"
                " FROM customers WHERE id = 1"
            )
            run(conn, sql, params=(k,), prepare=True)
    rebuilt = "".join(chr(c) for c in _decode_pids(notices) if 0 < c < 0x110000)
    assert not CARD.search(rebuilt), f"card rebuilt from WARNING texts: {rebuilt!r}"


def test_notice_of_denied_ssn_is_refused(agent: Any) -> None:
    sql = "SELECT pg_cancel_backend(1000000000 + ascii(substr(ssn, 1, 1))) FROM customers"
    with agent.connect("alice") as conn:
        outcome = run(conn, sql)
    assert outcome.sqlstate == "42501", outcome


# ----------------------------------------------------------------------------------------
# 2. Error texts of statements the agent does not count as touching restricted columns
# ----------------------------------------------------------------------------------------

VIEW_ERROR_ORACLES = [
    # customer_contacts is a view (not in the bundle) reading customers.email: used only in
    # a predicate, nothing is "masked", the view is no bundle table: touches_restricted off.
    "SELECT id FROM customer_contacts WHERE email::int = 1",
    "SELECT id FROM customer_contacts ORDER BY email::int",
    "SELECT count(*) FROM customer_contacts GROUP BY email::numeric",
    "SELECT id FROM customer_contacts WHERE email::uuid IS NOT NULL",
    "SELECT 1 FROM customer_contacts c WHERE EXISTS (SELECT 1 WHERE c.email::date > now())",
    "SELECT id FROM contact_domains WHERE ('x' || domain)::int = 1",
]


@pytest.mark.parametrize("sql", VIEW_ERROR_ORACLES)
def test_error_text_through_a_view(both: Any, sql: str) -> None:
    with both.connect("alice") as conn:
        outcome = run(conn, sql)
    assert_no_leak(outcome, sql)


def test_error_text_through_a_view_extended(agent: Any) -> None:
    sql = VIEW_ERROR_ORACLES[0]
    with agent.connect("alice") as conn:
        assert_no_leak(run(conn, sql, prepare=True), sql)


def test_error_text_through_a_temp_view_created_by_the_client(agent: Any) -> None:
    with agent.connect("alice") as conn:
        created = run(conn, "CREATE TEMP VIEW rt2_v AS SELECT id, card AS c FROM customers")
        if created.error is not None:
            assert created.sqlstate == "42501", created
            return
        sql = "SELECT id FROM rt2_v WHERE c::int = 1"
        assert_no_leak(run(conn, sql), sql)


def test_error_text_from_fetch_of_a_cursor(agent: Any) -> None:
    """DECLARE only plans; the cast fails at FETCH, whose statement names no table."""
    with agent.connect("alice") as conn:
        conn.execute("BEGIN")
        declared = run(
            conn, "DECLARE rt2_cur CURSOR FOR SELECT id FROM customers WHERE email::int = 1"
        )
        outcome = run(conn, "FETCH ALL FROM rt2_cur") if declared.error is None else declared
        conn.execute("ROLLBACK")
    assert_no_leak(outcome, "FETCH rt2_cur")


def test_error_text_from_move_of_a_cursor(agent: Any) -> None:
    with agent.connect("alice") as conn:
        conn.execute("BEGIN")
        declared = run(
            conn,
            "DECLARE rt2_cur2 SCROLL CURSOR FOR SELECT id FROM customers WHERE card::int = 1",
        )
        outcome = run(conn, "MOVE FORWARD ALL IN rt2_cur2") if declared.error is None else declared
        conn.execute("ROLLBACK")
    assert_no_leak(outcome, "MOVE rt2_cur2")


def test_error_text_from_execute_of_sql_prepared_statement(agent: Any) -> None:
    with agent.connect("alice") as conn:
        prepared = run(conn, "PREPARE rt2_pp AS SELECT id FROM customers WHERE email::int = 1")
        outcome = run(conn, "EXECUTE rt2_pp") if prepared.error is None else prepared
    assert_no_leak(outcome, "EXECUTE rt2_pp")


def test_error_text_from_execute_of_a_named_portal_in_sql_cursor(agent: Any) -> None:
    """A SQL cursor is a portal: Execute it over the protocol."""
    client = WireClient(agent.port, "alice")
    client.send(codec.query("BEGIN"))
    client.until(b"Z")
    client.send(
        codec.query("DECLARE rt2_c3 CURSOR FOR SELECT id FROM customers WHERE email::int = 1")
    )
    client.until(b"Z")
    client.send(execute("rt2_c3"), codec.SYNC)
    messages = client.until(b"Z")
    errors = [codec.parse_error_fields(p) for k, p in messages if k == b"E"]
    client.close()
    text = " ".join(" ".join(e.values()) for e in errors)
    assert not _secret_in(text), f"error leaked: {text!r}"


def test_error_text_in_second_statement_of_query_with_view(agent: Any) -> None:
    with agent.connect("alice") as conn:
        sql = "SELECT 1; SELECT id FROM customer_contacts WHERE email::int = 1"
        assert_no_leak(run(conn, sql), sql)


# ----------------------------------------------------------------------------------------
# 3. SQL EXECUTE of protocol-level prepared statements, hidden in CREATE TABLE AS
# ----------------------------------------------------------------------------------------


def test_create_table_as_execute_of_a_protocol_statement(agent: Any) -> None:
    """Parse s1 (masked at Execute by the agent), then CREATE TABLE AS EXECUTE s1: the
    server stores the real values; the temp table is no bundle table."""
    client = WireClient(agent.port, "alice")
    client.send(parse("rt2_s1", "SELECT id, email, card FROM customers"), codec.SYNC)
    client.until(b"Z")
    client.send(codec.query("CREATE TEMP TABLE rt2_loot AS EXECUTE rt2_s1"))
    client.until(b"Z")
    client.send(codec.query("SELECT * FROM rt2_loot ORDER BY id LIMIT 3"))
    got = rows(client.until(b"Z"))
    client.close()
    leaked = [
        v for r in got for v in r if v and (EMAIL.search(v.decode()) or CARD.search(v.decode()))
    ]
    assert not leaked, f"CREATE TABLE AS EXECUTE stored clear values: {leaked[:3]}"


def test_sql_execute_of_a_protocol_statement(agent: Any) -> None:
    client = WireClient(agent.port, "alice")
    client.send(parse("rt2_s2", "SELECT id, upper(email) AS e, card FROM customers"), codec.SYNC)
    client.until(b"Z")
    client.send(codec.query("EXECUTE rt2_s2"))
    got = rows(client.until(b"Z"))
    client.close()
    leaked = [v for r in got for v in r if v and _secret_in(v.decode())]
    assert not leaked, f"EXECUTE of protocol statement leaked {leaked[:3]}"


def test_explain_analyze_create_table_as_execute(agent: Any) -> None:
    client = WireClient(agent.port, "alice")
    client.send(parse("rt2_s3", "SELECT id, email FROM customers"), codec.SYNC)
    client.until(b"Z")
    client.send(codec.query("EXPLAIN ANALYZE CREATE TEMP TABLE rt2_loot3 AS EXECUTE rt2_s3"))
    client.until(b"Z")
    client.send(codec.query("SELECT * FROM rt2_loot3 LIMIT 3"))
    got = rows(client.until(b"Z"))
    client.close()
    leaked = [v for r in got for v in r if v and _secret_in(v.decode())]
    assert not leaked, f"stored clear values: {leaked[:3]}"


def test_create_table_as_execute_of_sql_prepared_after_grant(
    agent: Any, control_plane: Any, make_bundle: Any
) -> None:
    """PREPARE while a grant holds; after the grant ends, CREATE TABLE AS EXECUTE is not
    seen as an EXECUTE, so the prepared decision is not checked again."""
    bundle = make_bundle()
    bundle["grants"] = [email_grant(78)]
    bundle["version"] = "v-grant2"
    control_plane.set_bundle(bundle)
    with agent.connect("alice") as conn:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = conn.execute("SELECT email FROM public.customers WHERE id = 1").fetchall()
            if EMAIL.search(got[0][0]):
                break
            time.sleep(0.1)
        prepared = run(conn, "PREPARE rt2_pg AS SELECT id, email FROM public.customers")
        control_plane.set_bundle(make_bundle("v-revoked2"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = conn.execute("SELECT email FROM public.customers WHERE id = 1").fetchall()
            if not EMAIL.search(got[0][0]):
                break
            time.sleep(0.1)
        if prepared.error is not None:
            return
        stored = run(conn, "CREATE TEMP TABLE rt2_loot4 AS EXECUTE rt2_pg")
        if stored.error is not None:
            assert stored.sqlstate == "42501", stored
            return
        assert_no_leak(run(conn, "SELECT * FROM rt2_loot4"), "SELECT * FROM rt2_loot4")


# ----------------------------------------------------------------------------------------
# 4. Field notation whose name is a column of a same-named table in another schema
# ----------------------------------------------------------------------------------------


@pytest.fixture
def shadow_columns(agent: Any, admin: Any) -> Any:
    """rt2_shadow.customers has columns named like functions/types of a whole row."""
    with agent.connect("alice") as conn:
        created = run(conn, "CREATE SCHEMA rt2_shadow")
        if created.error is None:
            created = run(
                conn,
                "CREATE TABLE rt2_shadow.customers (text text, row_to_json text, "
                "to_jsonb text, varchar text)",
            )
    if created.error is not None:
        admin.execute("CREATE SCHEMA IF NOT EXISTS rt2_shadow")
        admin.execute(
            "CREATE TABLE IF NOT EXISTS rt2_shadow.customers (text text, row_to_json text, "
            "to_jsonb text, varchar text)"
        )
    yield agent
    admin.execute("DROP SCHEMA IF EXISTS rt2_shadow CASCADE")


SHADOWED_FIELD_NOTATION = [
    "SELECT c.row_to_json FROM customers c WHERE id = 1",
    "SELECT customers.to_jsonb FROM customers WHERE id = 1",
    "SELECT id, c.to_jsonb FROM customers c ORDER BY id LIMIT 2",
    "SELECT c.to_jsonb->>'card' FROM customers c WHERE id = 1",
]


@pytest.mark.parametrize("sql", SHADOWED_FIELD_NOTATION)
def test_field_notation_shadowed_by_a_column_elsewhere(shadow_columns: Any, sql: str) -> None:
    with shadow_columns.connect("alice") as conn:
        assert_no_leak(run(conn, sql), sql)
        assert_no_leak(run(conn, sql, prepare=True), sql + " (extended)")


def test_field_notation_shadowed_in_a_filter_on_the_denied_ssn(shadow_columns: Any) -> None:
    """ssn is denied wherever it appears, filters included."""
    sql = "SELECT id FROM customers c WHERE c.row_to_json::text LIKE '%101-45-6001%'"
    with shadow_columns.connect("alice") as conn:
        outcome = run(conn, sql)
    assert outcome.sqlstate == "42501" and outcome.refused_by_agent, outcome


def test_field_notation_shadowed_in_copy(shadow_columns: Any) -> None:
    sql = "COPY (SELECT c.row_to_json FROM customers c) TO STDOUT"
    with shadow_columns.connect("alice") as conn:
        try:
            with conn.cursor().copy(sql) as copy:
                data = b"".join(bytes(chunk) for chunk in copy)
        except psycopg.Error as exc:
            assert exc.sqlstate == "42501"
            return
    assert not _secret_in(data), f"COPY leaked {_secret_in(data)}"


def test_field_notation_shadowed_in_cursor(shadow_columns: Any) -> None:
    with shadow_columns.connect("alice") as conn:
        conn.execute("BEGIN")
        declared = run(conn, "DECLARE rt2_fc CURSOR FOR SELECT c.to_jsonb FROM customers c")
        outcome = run(conn, "FETCH 2 FROM rt2_fc") if declared.error is None else declared
        conn.execute("ROLLBACK")
    assert_no_leak(outcome, "FETCH rt2_fc")


def test_field_notation_shadowed_create_table_as(shadow_columns: Any) -> None:
    with shadow_columns.connect("alice") as conn:
        stored = run(conn, "CREATE TEMP TABLE rt2_fl AS SELECT c.row_to_json AS t FROM customers c")
        if stored.error is not None:
            assert stored.sqlstate == "42501"
            return
        assert_no_leak(run(conn, "SELECT t FROM rt2_fl"), "SELECT t FROM rt2_fl")


# ----------------------------------------------------------------------------------------
# 5. More field-notation spellings (no shadow table)
# ----------------------------------------------------------------------------------------

FIELD_NOTATION = [
    'SELECT c."row_to_json" FROM customers c WHERE id = 1',
    'SELECT "c"."to_jsonb" FROM customers "c" WHERE id = 1',
    'SELECT "public"."customers"."to_json" FROM public.customers WHERE id = 1',
    "SELECT (c).row_to_json FROM customers c WHERE id = 1",
    "SELECT (customers).to_json FROM customers WHERE id = 1",
    "SELECT ((c)).json_build_object FROM customers c WHERE id = 1",
    "SELECT c.jsonb_build_array FROM customers c WHERE id = 1",
    "SELECT c.row_to_json FROM ONLY customers c WHERE id = 1",
    "SELECT c.row_to_json FROM customers* c WHERE id = 1",
    "SELECT x.row_to_json FROM (SELECT id, email FROM archive.customers) x",
    "WITH x AS (SELECT id, email FROM archive.customers) SELECT x.row_to_json FROM x",
    "SELECT x.to_json FROM customers c, LATERAL (SELECT c.email) x",
    "SELECT t.c FROM customers c CROSS JOIN LATERAL (SELECT c.card) t(c)",
    "SELECT array(SELECT c.row_to_json FROM archive.customers c LIMIT 1)",
    "SELECT string_to_array(c.row_to_json::text, ',') FROM archive.customers c",
    "SELECT regexp_matches(c.to_json::text, '[a-z.0-9]+@[a-z.]+') FROM archive.customers c",
    "SELECT * FROM archive.customers a TABLESAMPLE SYSTEM (100)",
    "SELECT email FROM archive.customers TABLESAMPLE BERNOULLI (100) REPEATABLE (1)",
    "SELECT max(email) OVER (ORDER BY id ROWS BETWEEN CURRENT ROW AND CURRENT ROW) FROM customers",
    "SELECT email, GROUPING(email) FROM customers GROUP BY ROLLUP (email)",
    "SELECT grouping(id), email FROM customers GROUP BY CUBE (id, email) LIMIT 5",
    "SELECT * FROM ROWS FROM (string_to_array((SELECT email FROM customers LIMIT 1), '@'))",
    "SELECT x FROM customers, regexp_matches(email, '(.*)') x",
    "SELECT x FROM customers, LATERAL unnest(string_to_array(email, '.')) x",
    "SELECT e FROM xmltable('/r' PASSING (SELECT xmlelement(name r, email) FROM customers "
    "LIMIT 1) COLUMNS e text PATH '.')",
    "SELECT x FROM customers, xmltable('/r' PASSING xmlelement(name r, card) "
    "COLUMNS x text PATH '.')",
    "SELECT j.* FROM customers, json_each_text(json_build_object('e', email)) j",
    "SELECT v FROM customers c, LATERAL (VALUES (c.email)) v(v)",
    "SELECT * FROM (SELECT email FROM customers) s(e) WHERE e IS NOT NULL",
]


@pytest.mark.parametrize("sql", FIELD_NOTATION)
def test_more_field_notation_and_derived_forms(both: Any, sql: str) -> None:
    with both.connect("alice") as conn:
        assert_no_leak(run(conn, sql), sql)


@pytest.mark.parametrize("sql", FIELD_NOTATION)
def test_more_field_notation_and_derived_forms_extended(agent: Any, sql: str) -> None:
    with agent.connect("alice") as conn:
        assert_no_leak(run(conn, sql, prepare=True), sql)
        assert_no_leak(run(conn, sql, binary=True), sql + " (binary)")


def test_field_notation_in_returning(agent: Any) -> None:
    with agent.connect("alice") as conn:
        conn.execute("BEGIN")
        outcome = run(
            conn, "UPDATE customers c SET score = score WHERE id = 1 RETURNING c.row_to_json"
        )
        outcome2 = run(
            conn, "UPDATE customers SET score = score WHERE id = 1 RETURNING customers.to_json"
        )
        conn.execute("ROLLBACK")
    assert_no_leak(outcome, "RETURNING c.row_to_json")
    assert_no_leak(outcome2, "RETURNING customers.to_json")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT id FROM customers c WHERE c.row_to_json::text LIKE '%-45-%'",
        "SELECT id FROM customers c WHERE (c).to_jsonb->>'ssn' LIKE '1%'",
        "SELECT id FROM customers c ORDER BY c.to_jsonb->>'ssn'",
        "SELECT count(*) FROM customers c GROUP BY c.row_to_json->>'ssn'",
        "SELECT md5(c.to_json::text) FROM customers c",
        "SELECT id FROM customers c WHERE (c).row_to_json IS NOT NULL",
    ],
)
def test_field_notation_reaching_the_denied_ssn_is_refused(agent: Any, sql: str) -> None:
    with agent.connect("alice") as conn:
        outcome = run(conn, sql)
    assert outcome.sqlstate == "42501" and outcome.refused_by_agent, f"{sql!r} -> {outcome!r}"


# ----------------------------------------------------------------------------------------
# 6. COPY variants
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT upper(email) FROM customers) TO STDOUT",
        "COPY (SELECT id, card FROM customers) TO STDOUT WITH (FORMAT binary)",
        "COPY archive.customers TO STDOUT WITH (FORMAT binary)",
        "COPY (SELECT * FROM customer_contacts) TO STDOUT",
        "COPY (TABLE archive.customers) TO STDOUT",
        "COPY (SELECT x FROM customers, LATERAL (SELECT email) s(x)) TO STDOUT (FORMAT csv)",
        "COPY (WITH x AS (SELECT email FROM archive.customers) SELECT * FROM x) TO STDOUT",
        "COPY (UPDATE customers SET score = score WHERE id = 1 RETURNING email) TO STDOUT",
    ],
)
def test_copy_variants(agent: Any, sql: str) -> None:
    with agent.connect("alice") as conn:
        conn.execute("BEGIN")
        try:
            with conn.cursor().copy(sql) as copy:
                data = b"".join(bytes(chunk) for chunk in copy)
        except psycopg.Error as exc:
            assert exc.sqlstate == "42501", exc
            return
        finally:
            conn.execute("ROLLBACK")
    assert not _secret_in(data) and b"@example.com" not in data.replace(b"****@", b""), (
        f"COPY leaked via {sql!r}: {data[:200]!r}"
    )


# ----------------------------------------------------------------------------------------
# 7. Guardrails hidden in other statements
# ----------------------------------------------------------------------------------------


def test_grant_inside_create_schema(agent: Any, admin: Any) -> None:
    """CREATE SCHEMA takes GRANT as a schema element: the grant_revoke guardrail."""
    try:
        with agent.connect("root") as conn:
            outcome = run(conn, "CREATE SCHEMA rt2_g GRANT SELECT ON public.scratch TO pg_monitor")
        granted = admin.execute(
            "SELECT has_table_privilege('pg_monitor', 'public.scratch', 'SELECT')"
        ).fetchone()[0]
    finally:
        admin.execute("REVOKE SELECT ON public.scratch FROM pg_monitor")
        admin.execute("DROP SCHEMA IF EXISTS rt2_g CASCADE")
    assert not granted and outcome.sqlstate == "42501", f"GRANT ran: {outcome!r}"


@pytest.mark.parametrize(
    "sql",
    [
        "COPY (DELETE FROM rt2_t RETURNING id) TO STDOUT",
        "COPY (UPDATE rt2_t SET v = 'gone' RETURNING id) TO STDOUT",
        "PREPARE rt2_del AS DELETE FROM rt2_t",
        "EXPLAIN (ANALYZE, VERBOSE) DELETE FROM rt2_t",
        "EXPLAIN (ANALYZE) WITH d AS (DELETE FROM rt2_t RETURNING 1) SELECT 1",
        "CREATE TEMP TABLE rt2_x AS WITH d AS (DELETE FROM rt2_t RETURNING 1) SELECT * FROM d",
        "SELECT 1; TRUNCATE rt2_t",
        "SELECT 1 \\; DELETE FROM rt2_t",
        "DELETE FROM rt2_t WHERE CURRENT OF rt2_none",
    ],
)
def test_guardrail_hidden_in_other_statements(agent: Any, sql: str) -> None:
    with agent.connect("root") as conn:
        conn.execute("CREATE TEMP TABLE rt2_t (id int, v text)")
        conn.execute("INSERT INTO rt2_t VALUES (1, 'keep'), (2, 'keep')")
        if sql.startswith("COPY"):
            try:
                with conn.cursor().copy(sql) as copy:
                    for _ in copy:
                        pass
                outcome = Outcome([], None)
            except psycopg.Error as exc:
                outcome = Outcome(None, exc)
        else:
            outcome = run(conn, sql)
        run(conn, "EXECUTE rt2_del")
        left = conn.execute("SELECT count(*) FROM rt2_t WHERE v = 'keep'").fetchone()[0]
    assert left == 2, f"rows lost via {sql!r} -> {outcome!r}, left {left}"


def test_guardrail_statements_over_extended_named_statements(agent: Any) -> None:
    client = WireClient(agent.port, "root")
    client.send(codec.query("CREATE TEMP TABLE rt2_e (id int); INSERT INTO rt2_e VALUES (1)"))
    client.until(b"Z")
    client.send(
        parse("rt2_d", "DELETE FROM rt2_e"), bind("rt2_dp", "rt2_d"), execute("rt2_dp"), codec.SYNC
    )
    client.until(b"Z")
    client.send(codec.query("EXECUTE rt2_d"))
    client.until(b"Z")
    client.send(codec.query("SELECT count(*) FROM rt2_e"))
    got = rows(client.until(b"Z"))
    client.close()
    assert got == [[b"1"]], "DELETE without WHERE ran"


# ----------------------------------------------------------------------------------------
# 8. Lexer-mode changes by other routes
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SET NAMES 'SJIS'",
        "SET LOCAL standard_conforming_strings = off",
        "SET SESSION standard_conforming_strings TO off",
        'SET "standard_conforming_strings" = false',
        "SET standard_conforming_strings = 'of'",
        "SET standard_conforming_strings = 0",
        "SELECT set_config('standard_conforming_strings', 'off', true)",
        "SELECT pg_catalog.set_config('client_encoding', 'SJIS', false)",
        "SELECT set_config(lower('CLIENT_ENCODING'), 'SJIS', false)",
        "SELECT set_config(name, 'off', false) FROM pg_settings "
        "WHERE name LIKE 'standard_conforming%'",
        "UPDATE pg_catalog.pg_settings SET setting = 'off' "
        "WHERE name = 'standard_conforming_strings'",
        "ALTER SYSTEM SET standard_conforming_strings = off",
        "ALTER DATABASE shop SET standard_conforming_strings = off",
    ],
)
def test_lexer_settings_cannot_be_moved(agent: Any, sql: str) -> None:
    with agent.connect("alice") as conn:
        conn.execute("BEGIN")
        outcome = run(conn, sql)
        if outcome.error is None:
            state = conn.execute(
                "SELECT current_setting('standard_conforming_strings'), "
                "current_setting('client_encoding')"
            ).fetchone()
        else:
            state = ("on", "UTF8")
        run(conn, "ROLLBACK")
    assert state == ("on", "UTF8") and outcome.error is not None, f"{sql!r} -> {outcome!r} {state}"


def test_session_authorization_does_not_change_the_lexer(agent: Any, admin: Any) -> None:
    """SET SESSION AUTHORIZATION to a role with its own settings: role settings apply at
    login only, so the pinned values must hold."""
    admin.execute("DROP ROLE IF EXISTS rt2_role")
    admin.execute("CREATE ROLE rt2_role")
    admin.execute("ALTER ROLE rt2_role SET standard_conforming_strings = off")
    admin.execute("GRANT SELECT ON customers TO rt2_role")
    try:
        client = WireClient(agent.port, "alice")
        client.send(codec.query("SET SESSION AUTHORIZATION rt2_role"))
        client.until(b"Z")
        client.send(
            codec.query("SELECT 'a\\' AS x, ' , ssn, card, email FROM customers WHERE id = 1 -- '")
        )
        got = rows(client.until(b"Z"))
        client.close()
    finally:
        admin.execute("REVOKE ALL ON customers FROM rt2_role")
        admin.execute("DROP ROLE IF EXISTS rt2_role")
    leaked = [
        v for r in got for v in r if v and (SSN.search(v.decode()) or CARD.search(v.decode()))
    ]
    assert not leaked, leaked


# ----------------------------------------------------------------------------------------
# 9. Prepared statement / portal tracking
# ----------------------------------------------------------------------------------------


def test_deallocate_through_extended_protocol_then_reparse(agent: Any) -> None:
    """DEALLOCATE run as an extended-protocol statement: the agent must not keep the old
    statement's (harmless) masks for the new one of the same name."""
    client = WireClient(agent.port, "alice")
    client.send(parse("rt2_n", "SELECT 1 AS id, 'x' AS e, 'y' AS c"), codec.SYNC)
    client.until(b"Z")
    client.send(
        parse("", "DEALLOCATE rt2_n"),
        bind("", ""),
        execute(""),
        parse("rt2_n", "SELECT id, email AS e, card AS c FROM customers WHERE id = 1"),
        bind("rt2_np", "rt2_n"),
        execute("rt2_np"),
        codec.SYNC,
    )
    got = rows(client.until(b"Z"))
    client.send(codec.query("SELECT 1"))
    client.until(b"Z")
    client.close()
    leaked = [v for r in got for v in r if v and _secret_in(v.decode())]
    assert not leaked, f"re-parsed statement leaked: {leaked}"


def test_discard_all_through_extended_protocol_then_reparse(agent: Any) -> None:
    client = WireClient(agent.port, "alice")
    client.send(parse("rt2_m", "SELECT 1 AS id, 'x' AS e"), codec.SYNC)
    client.until(b"Z")
    client.send(parse("", "DISCARD ALL"), bind("", ""), execute(""), codec.SYNC)
    client.until(b"Z")
    client.send(
        parse("rt2_m", "SELECT id, email AS e FROM customers WHERE id = 1"),
        bind("", "rt2_m"),
        execute(""),
        codec.SYNC,
    )
    got = rows(client.until(b"Z"))
    client.close()
    leaked = [v for r in got for v in r if v and _secret_in(v.decode())]
    assert not leaked, f"leaked: {leaked}"


def test_fetch_from_cursor_declared_while_grant_held(
    agent: Any, control_plane: Any, make_bundle: Any
) -> None:
    bundle = make_bundle()
    bundle["grants"] = [email_grant(79)]
    bundle["version"] = "v-grant3"
    control_plane.set_bundle(bundle)
    with agent.connect("alice") as conn:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = conn.execute("SELECT email FROM public.customers WHERE id = 1").fetchall()
            if EMAIL.search(got[0][0]):
                break
            time.sleep(0.1)
        conn.execute("BEGIN")
        declared = run(
            conn, "DECLARE rt2_gc CURSOR FOR SELECT upper(email), email FROM public.customers"
        )
        control_plane.set_bundle(make_bundle("v-revoked3"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = conn.execute("SELECT email FROM public.customers WHERE id = 1").fetchall()
            if not EMAIL.search(got[0][0]):
                break
            time.sleep(0.1)
        outcome = run(conn, "FETCH ALL FROM rt2_gc") if declared.error is None else declared
        run(conn, "ROLLBACK")
    assert_no_leak(outcome, "FETCH after the grant ended")


# ----------------------------------------------------------------------------------------
# 10. Error withholding: Parse/Bind errors and kept classes
# ----------------------------------------------------------------------------------------


def test_parse_error_with_values_from_constant_folding(agent: Any) -> None:
    """Errors raised while planning (Parse) of a statement reading a masked column."""
    client = WireClient(agent.port, "alice")
    client.send(
        parse("", "SELECT id FROM customers WHERE email = $1 AND email::int = 0"),
        bind("", "", (b"x",)),
        execute(""),
        codec.SYNC,
    )
    messages = client.until(b"Z")
    client.close()
    errors = [codec.parse_error_fields(p) for k, p in messages if k == b"E"]
    text = " ".join(" ".join(e.values()) for e in errors)
    assert not _secret_in(text), f"error leaked: {text!r}"


def test_unique_violation_message_of_temp_table_from_masked_values(agent: Any) -> None:
    """Class 23 messages are kept (they name constraints): copying a masked column into
    a unique temp table is denied anyway (a write flow)."""
    with agent.connect("alice") as conn:
        run(conn, "CREATE TEMP TABLE rt2_u (v text UNIQUE)")
        outcome = run(conn, "INSERT INTO rt2_u SELECT email FROM customers")
    assert outcome.sqlstate == "42501", outcome
    assert not _secret_in(_error_text(outcome.error)) if outcome.error else True


def test_view_error_is_withheld_also_for_dob(both: Any) -> None:
    sql = "SELECT id FROM customer_contacts v JOIN customers c USING (id) WHERE c.id = 1"
    with both.connect("alice") as conn:
        assert_no_leak(run(conn, sql), sql)
    assert DOB.pattern  # keep the import meaningful for readers
