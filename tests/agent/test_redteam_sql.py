"""Red-team probes at the SQL level: every test asserts the *secure* behaviour, so a
failing test is a finding (a masked/denied value reached the client, or a guardrail-blocked
kind of statement ran).

Complements test_leaks.py / test_guardrails.py; it does not repeat their statements.
"""

from __future__ import annotations

import re
import time
from typing import Any

import psycopg
import pytest

from tests.agent.conftest import email_grant, test_bundle
from tests.agent.wire import (
    EMAIL,
    SSN,
    Outcome,
    assert_no_leak,
    assert_refused,
    run,
)
from tests.agent.wire import error_text as _error_text
from tests.agent.wire import leaks as _leaks
from tests.agent.wire import secret_in as _secret_in


@pytest.fixture
def admin(pg_database: str) -> Any:
    with psycopg.connect(
        host="127.0.0.1", user="postgres", dbname=pg_database, autocommit=True
    ) as conn:
        yield conn


# ----------------------------------------------------------------------------------------
# 1. Derived output that static analysis classifies wrongly (simple and extended protocol)
# ----------------------------------------------------------------------------------------

OUTPUT_LEAKS = [
    # Field notation for a function of the whole row: `c.row_to_json` == row_to_json(c).
    # The analyser sees a column "row_to_json" of customers that the bundle does not know.
    "SELECT c.row_to_json FROM customers c",
    "SELECT c.to_jsonb FROM customers c",
    "SELECT customers.to_json FROM customers",
    "SELECT c.json_build_array FROM customers c",
    "SELECT a.row_to_json FROM archive.customers a",
    "SELECT public.customers.to_jsonb FROM public.customers",
    # FULL JOIN USING: the merged column is COALESCE(l.email, r.email): bare in the select
    # list (so "output", left to the origin check) but RowDescription names no origin.
    "SELECT email FROM customers a FULL JOIN customers b USING (email)",
    "SELECT email FROM customers NATURAL FULL JOIN archive.customers",
    "SELECT email, id FROM customers FULL OUTER JOIN archive.customers USING (id, email)",
    # Output positions shifted by a composite expansion that is not a ColumnRef star.
    "SELECT (pg_control_system()).*, upper(email) FROM customers",
    "SELECT (NULL::scratch).*, upper(email) FROM customers",
    "SELECT (NULL::scratch).*, email || '' FROM customers",
    # RETURNING positions of a data-modifying CTE reused for the outer select list.
    "WITH u AS (UPDATE customers SET score = score WHERE id = 1 RETURNING id, upper(email) AS e)"
    " SELECT e, id FROM u",
    "WITH u AS (UPDATE customers SET score = score WHERE id < 5 RETURNING 1 AS one, "
    "email AS e) SELECT e || '' FROM u",
    # Built-in functions that run SQL given as text (ts_stat) are not in OPAQUE_FUNCTIONS.
    "SELECT word FROM ts_stat('SELECT to_tsvector(''simple'', email) FROM customers')",
    "SELECT word FROM ts_stat('SELECT to_tsvector(''simple'', ssn) FROM customers')",
    "SELECT word FROM ts_stat('SELECT to_tsvector(''simple'', card) FROM customers')",
]

# Probes that held when tried (kept: the existing suite does not cover them).
OUTPUT_PROBES_EXPECTED_SAFE = [
    "SELECT email FROM customers GROUP BY GROUPING SETS ((email), ())",
    "SELECT upper(email) FROM customers GROUP BY ROLLUP (email)",
    "SELECT email FROM customers a LEFT JOIN archive.customers b USING (email)",
    "SELECT email FROM customers a RIGHT JOIN archive.customers b USING (email)",
    "SELECT upper(email) FROM customers a JOIN archive.customers b USING (email)",
    "SELECT first_value(email) OVER w FROM customers WINDOW w AS (ORDER BY id)",
    "SELECT nth_value(upper(email), 2) OVER (ORDER BY id) FROM customers",
    "SELECT x FROM customers c CROSS JOIN LATERAL (SELECT c.email AS x) l",
    "SELECT * FROM customers c CROSS JOIN LATERAL jsonb_each_text(to_jsonb(c.email)) j",
    "SELECT (SELECT string_agg(e, ',') FROM (SELECT email AS e FROM customers) s)",
    "SELECT greatest(email, '') FROM customers",
    "SELECT nullif(email, 'x') FROM customers",
    "SELECT ROW(email) = ROW('x') , ROW(id, email)::text FROM customers",
    "SELECT to_json(ARRAY[email]) FROM customers",
    "SELECT jsonb_agg(jsonb_build_array(id, email)) FROM customers",
    "SELECT xmlagg(xmlelement(name e, email)) FROM customers",
    "SELECT xmlforest(email) FROM customers",
    "SELECT format('%I', email) FROM customers",
    "SELECT quote_literal(email) FROM customers",
    'SELECT U&"\\0065mail" FROM customers',
    'SELECT upper(U&"\\0065mail") FROM customers',
    "SELECT /* comment */ upper(/* x */ email) FROM customers -- trailing",
    "SELECT $q$x$q$ || email FROM customers",
    'SELECT upper("customers"."email") FROM "public"."customers"',
    "SELECT email FROM customers* ",
    "SELECT e FROM (TABLE archive.customers) t(i, e)",
    "SELECT (c).email || '' FROM archive.customers c",
    "SELECT (t.c).email FROM (SELECT c FROM archive.customers c) t",
    "WITH RECURSIVE r(n, e) AS (SELECT 1, email FROM archive.customers UNION ALL "
    "SELECT n + 1, e FROM r WHERE n < 2) SELECT e FROM r",
    "WITH x AS MATERIALIZED (SELECT id, email FROM archive.customers) SELECT email FROM x",
    "SELECT * FROM ROWS FROM (unnest(ARRAY(SELECT email FROM customers)))",
    "SELECT 'x' AS a, email FROM customers UNION ALL SELECT 'y', 'z' ORDER BY 2",
    "SELECT string_agg(email, ',' ORDER BY email) FILTER (WHERE id > 0) FROM customers",
    "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY email) FROM customers",
    "SELECT mode() WITHIN GROUP (ORDER BY email) FROM customers",
    "SELECT (SELECT max(e) FROM unnest(ARRAY[c.email]) e) FROM customers c",
    "SELECT array_to_string(array_agg(email), ',') FROM customers",
    "SELECT ARRAY[id::text, email] FROM customers",
    "SELECT email FROM customers INTERSECT SELECT email FROM archive.customers",
    "SELECT hashtext(email), md5(email) FROM customers",
    "SELECT * FROM (VALUES (1)) v(x), LATERAL (SELECT email FROM customers LIMIT 1) s",
    "SELECT json_object_agg(id, email) FROM customers",
    "SELECT c.email FROM customers c WHERE c.id = 1 FOR UPDATE",
    "SELECT * FROM archive.customers",
    "SELECT archive.customers.* FROM archive.customers",
]


@pytest.fixture
def both(agent_on_both_paths: Any) -> Any:
    return agent_on_both_paths


@pytest.mark.parametrize("sql", OUTPUT_LEAKS + OUTPUT_PROBES_EXPECTED_SAFE)
def test_select_output_simple_protocol(both: Any, sql: str) -> None:
    with both.connect("alice") as conn:
        assert_no_leak(run(conn, sql), sql)


@pytest.mark.parametrize("sql", OUTPUT_LEAKS + OUTPUT_PROBES_EXPECTED_SAFE)
def test_select_output_extended_protocol(agent: Any, sql: str) -> None:
    with agent.connect("alice") as conn:
        assert_no_leak(run(conn, sql, prepare=True), sql)
        assert_no_leak(run(conn, sql, prepare=False, binary=True), sql)


def test_row_to_json_field_notation_reaches_the_denied_ssn(agent: Any) -> None:
    """SSN is denied everywhere for everyone; field notation still reads it."""
    sql = "SELECT c.row_to_json FROM customers c ORDER BY id LIMIT 1"
    with agent.connect("alice") as conn:
        outcome = run(conn, sql)
    assert not (outcome.rows and SSN.search(str(outcome.rows))), f"SSN leaked: {outcome!r}"


def test_copy_of_field_notation_whole_row(agent: Any) -> None:
    sql = "COPY (SELECT c.row_to_json FROM customers c) TO STDOUT"
    with agent.connect("alice") as conn:
        try:
            with conn.cursor().copy(sql) as copy:
                data = b"".join(bytes(chunk) for chunk in copy)
        except psycopg.Error as exc:
            assert exc.sqlstate == "42501"
            return
    assert not _secret_in(data), f"COPY leaked {_secret_in(data)}"


def test_create_table_as_from_field_notation_then_read(agent: Any) -> None:
    with agent.connect("alice") as conn:
        created = run(
            conn, "CREATE TEMP TABLE rt_loot1 AS SELECT c.row_to_json AS j FROM customers c"
        )
        if created.error is not None:
            assert created.sqlstate == "42501"
            return
        assert_no_leak(run(conn, "SELECT j FROM rt_loot1"), "SELECT j FROM rt_loot1")


# ----------------------------------------------------------------------------------------
# 2. Error-message oracles: the upstream ErrorResponse is relayed unchanged
# ----------------------------------------------------------------------------------------

ERROR_ORACLES = [
    "SELECT email::int FROM customers",
    "SELECT id FROM customers WHERE email::int = 1",
    "SELECT id FROM customers WHERE id = 1 AND email::numeric > 0",
    "SELECT count(*) FROM customers GROUP BY email::bigint",
    "SELECT id FROM customers ORDER BY email::int",
    "SELECT card::int FROM customers",
    "SELECT phone::int FROM customers",
    'SELECT "Secret Note"::int FROM customers',
    "SELECT email::uuid FROM customers",
    "SELECT email::inet FROM customers",
    "SELECT email::date FROM customers",
    "SELECT email::jsonb FROM customers",
    "SELECT xmlparse(document email) FROM customers",
    "SELECT email::regclass FROM customers",
    "SELECT to_timestamp(email, 'YYYY') FROM customers",
    "SELECT id FROM customers WHERE email::bool",
    "SELECT nextval(email) FROM customers",
    "EXPLAIN ANALYZE SELECT email::int FROM customers",
    "SELECT email::int FROM archive.customers",
    "SELECT id FROM customers c WHERE EXISTS (SELECT 1 WHERE c.card::int > 0)",
    # The NOT NULL violation's DETAIL "Failing row contains (...)" prints the whole row,
    # SSN and card included; the statement only names the unrestricted column "name".
    "UPDATE customers SET name = NULL WHERE id = 1",
    "UPDATE customers SET name = NULL WHERE id = 2 RETURNING id",
    "INSERT INTO customers (id, name) SELECT id, NULL FROM customers WHERE id = 3",
    "SELECT birth_date::text::int FROM customers",
]


@pytest.mark.parametrize("sql", ERROR_ORACLES)
def test_error_text_does_not_carry_a_masked_value(agent: Any, sql: str) -> None:
    with agent.connect("alice") as conn:
        outcome = run(conn, sql)
    assert_no_leak(outcome, sql)


@pytest.mark.parametrize("sql", ERROR_ORACLES[:3])
def test_error_oracle_extended_protocol(agent: Any, sql: str) -> None:
    with agent.connect("alice") as conn:
        assert_no_leak(run(conn, sql, prepare=True), sql)


def test_unique_index_error_detail_prints_masked_values(agent: Any, admin: Any) -> None:
    """CREATE UNIQUE INDEX over an expression of masked columns fails with DETAIL
    'Key (...)=(...) is duplicated', printing the value (a partial index WHERE id IN (a, b)
    picks the rows).  Here: the first 17 characters of a card and a first name."""
    sql = "CREATE UNIQUE INDEX rt_uq ON customers ((substr(card, 1, 17)), (id > 0))"
    try:
        with agent.connect("alice") as conn:
            outcome = run(conn, sql)
    finally:
        admin.execute("DROP INDEX IF EXISTS rt_uq")
    text = _error_text(outcome.error) if outcome.error else ""
    assert not re.search(r"4111-1111-1111-\d", text), f"index error leaked: {text[:300]!r}"


def test_ssn_error_oracles_are_denied(agent: Any) -> None:
    with agent.connect("alice") as conn:
        for sql in (
            "SELECT ssn::int FROM customers",
            "SELECT id FROM customers WHERE ssn::int = 1",
            "CREATE UNIQUE INDEX rt_uq2 ON customers ((substr(ssn, 1, 2)))",
        ):
            assert_refused(run(conn, sql), sql)


# ----------------------------------------------------------------------------------------
# 3. Side channels that carry a value out of the statement
# ----------------------------------------------------------------------------------------


def test_set_config_then_current_setting(agent: Any) -> None:
    with agent.connect("alice") as conn:
        first = run(conn, "SELECT set_config('rt.x', email, false) FROM customers WHERE id = 1")
        assert_no_leak(first, "set_config")
        second = run(conn, "SELECT current_setting('rt.x')")
        assert_no_leak(second, "current_setting")
        third = run(conn, "SHOW rt.x")
        assert_no_leak(third, "SHOW")


def test_set_config_application_name_parameter_status(agent: Any) -> None:
    """application_name is GUC_REPORT: the server sends ParameterStatus with its value."""
    with agent.connect("alice") as conn:
        outcome = run(
            conn, "SELECT set_config('application_name', email, false) FROM customers WHERE id = 1"
        )
        assert_no_leak(outcome, "set_config(application_name)")
        reported = conn.info.parameter_status("application_name") or ""
    assert not _secret_in(reported), f"ParameterStatus leaked {reported!r}"


def test_pg_notify_payload(agent: Any) -> None:
    payloads: list[str] = []
    with agent.connect("alice") as conn:
        conn.add_notify_handler(lambda n: payloads.append(n.payload))
        run(conn, "LISTEN rt_chan")
        outcome = run(conn, "SELECT pg_notify('rt_chan', email) FROM customers WHERE id < 3")
        assert_no_leak(outcome, "pg_notify")
        run(conn, "SELECT 1")
        time.sleep(0.2)
        run(conn, "SELECT 1")
    assert not _leaks([payloads]), f"NOTIFY payload leaked: {payloads[:2]}"


def test_pg_notify_payload_of_denied_ssn_is_refused(agent: Any) -> None:
    with agent.connect("alice") as conn:
        sql = "SELECT pg_notify('rt_chan', ssn) FROM customers"
        assert_refused(run(conn, sql), sql)


def test_pg_stats_histogram_after_analyze(agent: Any) -> None:
    with agent.connect("alice") as conn:
        run(conn, "ANALYZE customers")
        for sql in (
            "SELECT histogram_bounds::text FROM pg_stats WHERE tablename = 'customers' "
            "AND attname = 'email'",
            "SELECT histogram_bounds::text FROM pg_stats WHERE tablename = 'customers' "
            "AND attname = 'ssn'",
            "SELECT most_common_vals::text, histogram_bounds::text FROM pg_stats "
            "WHERE tablename = 'customers' AND attname = 'card'",
            "SELECT stavalues1::text FROM pg_statistic WHERE starelid = 'customers'::regclass",
        ):
            assert_no_leak(run(conn, sql), sql)


def test_pg_stats_of_denied_column_via_extended_protocol(agent: Any) -> None:
    with agent.connect("alice") as conn:
        run(conn, "ANALYZE customers (ssn)")
        sql = "SELECT histogram_bounds::text FROM pg_stats WHERE tablename = %s AND attname = %s"
        assert_no_leak(run(conn, sql, params=("customers", "ssn")), sql)


# ----------------------------------------------------------------------------------------
# 4. Objects created through the agent that later expose data
# ----------------------------------------------------------------------------------------


def test_temp_view_named_like_a_bundle_table_in_pg_temp(agent: Any) -> None:
    """The bundle knows the name 'customers', so a relation of that name is never looked
    up as a view, and pg_temp.customers is treated as an unrestricted table."""
    with agent.connect("alice") as conn:
        created = run(conn, "CREATE TEMP VIEW customers AS SELECT id, email FROM public.customers")
        assert created.error is None or created.sqlstate == "42501", created
        if created.error is not None:
            return
        for sql in (
            "SELECT upper(email) FROM pg_temp.customers",
            "SELECT email FROM pg_temp.customers",
        ):
            assert_no_leak(run(conn, sql), sql)
            assert_no_leak(run(conn, sql, prepare=True), sql + " (extended)")


def test_view_in_new_schema_named_like_a_bundle_table(agent: Any, admin: Any) -> None:
    try:
        with agent.connect("alice") as conn:
            run(conn, "CREATE SCHEMA rt_shadow")
            created = run(
                conn, "CREATE VIEW rt_shadow.customers AS SELECT id, email FROM public.customers"
            )
            if created.error is not None:
                assert created.sqlstate == "42501"
                return
            for sql in (
                "SELECT upper(email) FROM rt_shadow.customers",
                "SELECT email FROM rt_shadow.customers",
            ):
                assert_no_leak(run(conn, sql), sql)
                assert_no_leak(run(conn, sql, prepare=True), sql + " (extended)")
    finally:
        admin.execute("DROP SCHEMA IF EXISTS rt_shadow CASCADE")


def test_rule_do_instead_select_returns_masked_data(agent: Any) -> None:
    """CREATE RULE's action is walked as a predicate; the UPDATE it rewrites is allowed."""
    with agent.connect("alice") as conn:
        run(conn, "CREATE TEMP TABLE rt_r (id int, v text)")
        run(conn, "INSERT INTO rt_r VALUES (1, 'x')")
        created = run(
            conn,
            "CREATE RULE rt_rule AS ON UPDATE TO rt_r DO INSTEAD "
            "SELECT email, upper(email) AS u FROM customers",
        )
        if created.error is not None:
            assert created.sqlstate == "42501"
            return
        sql = "UPDATE rt_r SET v = 'y' WHERE id = 1"
        assert_no_leak(run(conn, sql), sql)
        assert_no_leak(run(conn, "UPDATE rt_r SET v = %s WHERE id = 1", params=("z",)), sql)


def test_rule_do_also_insert_copy_is_denied(agent: Any) -> None:
    with agent.connect("alice") as conn:
        run(conn, "CREATE TEMP TABLE rt_r2 (id int, v text)")
        run(conn, "CREATE TEMP TABLE rt_loot2 (id int, v text)")
        sql = (
            "CREATE RULE rt_rule2 AS ON INSERT TO rt_r2 DO ALSO "
            "INSERT INTO rt_loot2 SELECT id, email FROM customers"
        )
        assert_refused(run(conn, sql), sql)


def test_explain_analyze_create_table_as_copies_masked_data(agent: Any) -> None:
    """EXPLAIN demotes every inner use to a predicate, but ANALYZE runs the write."""
    with agent.connect("alice") as conn:
        sql = "EXPLAIN ANALYZE CREATE TEMP TABLE rt_loot3 AS SELECT id, email FROM customers"
        ran = run(conn, sql)
        if ran.error is not None:
            assert ran.sqlstate == "42501"
            return
        assert_no_leak(run(conn, "SELECT upper(email) FROM rt_loot3"), "read rt_loot3")


def test_explain_analyze_insert_select_copies_masked_data(agent: Any) -> None:
    with agent.connect("alice") as conn:
        run(conn, "CREATE TEMP TABLE rt_loot4 (id int, v text)")
        sql = "EXPLAIN (ANALYZE, VERBOSE) INSERT INTO rt_loot4 SELECT id, email FROM customers"
        ran = run(conn, sql)
        if ran.error is not None:
            assert ran.sqlstate == "42501"
            return
        assert_no_leak(run(conn, "SELECT v FROM rt_loot4"), "read rt_loot4")


def test_explain_analyze_select_into(agent: Any) -> None:
    with agent.connect("alice") as conn:
        ran = run(conn, "EXPLAIN ANALYZE SELECT email INTO TEMP rt_loot5 FROM customers")
        if ran.error is not None:
            return
        assert_no_leak(run(conn, "SELECT * FROM rt_loot5"), "read rt_loot5")


def test_explain_verbose_output_has_no_values(agent: Any) -> None:
    with agent.connect("alice") as conn:
        for sql in (
            "EXPLAIN (ANALYZE, VERBOSE, COSTS OFF) SELECT upper(email) FROM customers",
            "EXPLAIN (VERBOSE, FORMAT JSON) SELECT email FROM customers WHERE email > 'a'",
            "EXPLAIN (ANALYZE, VERBOSE) WITH x AS (SELECT email FROM customers) SELECT * FROM x",
        ):
            assert_no_leak(run(conn, sql), sql)


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TEMP TABLE rt_l6 AS WITH x AS (SELECT email FROM customers) SELECT * FROM x",
        "CREATE MATERIALIZED VIEW rt_mv AS SELECT upper(email) FROM customers",
        "WITH i AS (INSERT INTO scratch SELECT id, email FROM customers RETURNING 1) SELECT 1",
        "MERGE INTO scratch s USING customers c ON s.id = c.id WHEN NOT MATCHED THEN "
        "INSERT VALUES (c.id, c.email)",
        "MERGE INTO scratch s USING customers c ON s.id = c.id WHEN MATCHED THEN "
        "UPDATE SET v = c.email",
        "INSERT INTO scratch VALUES (1, (SELECT email FROM customers LIMIT 1))",
        "INSERT INTO scratch SELECT id, e FROM customers c(id, n, e)",
        "DECLARE rt_cur CURSOR FOR SELECT upper(email) FROM customers",
        "UPDATE scratch s SET v = c.email FROM customers c WHERE s.id = c.id",
        "INSERT INTO scratch (id, v) SELECT 1, string_agg(email, ',') FROM customers",
        "INSERT INTO scratch SELECT 1, v FROM (SELECT email AS v FROM customers) q",
        "PREPARE rt_p1 AS SELECT c.* FROM archive.customers c",
    ],
)
def test_storing_masked_data_is_denied(agent: Any, sql: str) -> None:
    with agent.connect("alice") as conn:
        outcome = run(conn, sql)
    assert_refused(outcome, sql)


@pytest.mark.parametrize(
    ("sql", "read"),
    [
        # A whole-row reference is always classified "derived", even in a write context.
        ("CREATE TEMP TABLE rt_l7 AS SELECT c FROM archive.customers c", "SELECT * FROM rt_l7"),
        (
            "CREATE TEMP TABLE rt_l8 AS SELECT (c).email FROM archive.customers c",
            "SELECT * FROM rt_l8",
        ),
        ("SELECT to_jsonb(c) AS j INTO TEMP rt_l9 FROM archive.customers c", "SELECT j FROM rt_l9"),
        ("PREPARE rt_p2 AS SELECT (c).email FROM archive.customers c", "EXECUTE rt_p2"),
        ("PREPARE rt_p3 AS SELECT row_to_json(c) FROM archive.customers c", "EXECUTE rt_p3"),
    ],
)
def test_whole_row_reference_in_a_write_context(agent: Any, sql: str, read: str) -> None:
    with agent.connect("alice") as conn:
        stored = run(conn, sql)
        if stored.error is not None:
            assert stored.sqlstate == "42501", stored
            return
        assert_no_leak(run(conn, read), f"{sql} ; {read}")


@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT (a).email FROM archive.customers a) TO STDOUT",
        "COPY (SELECT row_to_json(a) FROM archive.customers a) TO STDOUT",
        "COPY (SELECT a FROM archive.customers a) TO STDOUT",
    ],
)
def test_copy_of_whole_row_reference(agent: Any, sql: str) -> None:
    with agent.connect("alice") as conn:
        try:
            with conn.cursor().copy(sql) as copy:
                data = b"".join(bytes(chunk) for chunk in copy)
        except psycopg.Error as exc:
            assert exc.sqlstate == "42501"
            return
    assert not _secret_in(data), f"COPY leaked {_secret_in(data)} via {sql!r}"


def test_execute_of_prepared_statement_after_grant_ends(
    agent: Any, control_plane: Any, make_bundle: Any
) -> None:
    """SQL PREPARE is checked only when prepared; a grant that ends later is not rechecked
    at EXECUTE (upper() has no origin for the runtime check to catch)."""
    bundle = make_bundle()
    bundle["grants"] = [email_grant(77)]
    bundle["version"] = "v-grant"
    control_plane.set_bundle(bundle)
    with agent.connect("alice") as conn:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = conn.execute("SELECT email FROM public.customers WHERE id = 1").fetchall()
            if EMAIL.search(rows[0][0]):
                break
            time.sleep(0.1)
        assert EMAIL.search(rows[0][0]), "grant never applied"
        prepared = run(conn, "PREPARE rt_p AS SELECT upper(email) FROM public.customers")
        assert prepared.error is None, prepared
        control_plane.set_bundle(make_bundle("v-revoked"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = conn.execute("SELECT email FROM public.customers WHERE id = 1").fetchall()
            if not EMAIL.search(rows[0][0]):
                break
            time.sleep(0.1)
        assert not EMAIL.search(rows[0][0]), "new bundle never applied"
        assert_no_leak(run(conn, "EXECUTE rt_p"), "EXECUTE rt_p after the grant ended")


# ----------------------------------------------------------------------------------------
# 5. Guardrails
# ----------------------------------------------------------------------------------------


def _temp_rows(conn: psycopg.Connection[Any], table: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]


@pytest.mark.parametrize(
    "sql",
    [
        "MERGE INTO rt_g USING (SELECT 1) s ON true WHEN MATCHED THEN DELETE",
        "MERGE INTO rt_g t USING (SELECT 1) s ON true WHEN MATCHED THEN UPDATE SET v = 'gone'",
    ],
)
def test_merge_deleting_or_updating_every_row(agent: Any, sql: str) -> None:
    with agent.connect("root") as conn:
        conn.execute("CREATE TEMP TABLE rt_g (id int, v text)")
        conn.execute("INSERT INTO rt_g VALUES (1, 'keep'), (2, 'keep')")
        outcome = run(conn, sql)
        left = conn.execute("SELECT count(*) FROM rt_g WHERE v = 'keep'").fetchone()[0]
    assert outcome.sqlstate == "42501" and left == 2, (
        f"MERGE without a condition changed every row: {sql!r} -> {outcome!r}, left {left}"
    )


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; WITH d AS (DELETE FROM rt_m WHERE id = 1 RETURNING id) SELECT * FROM d",
        "SELECT * FROM rt_m; EXPLAIN ANALYZE DELETE FROM rt_m WHERE id = 1",
        "SELECT * FROM rt_m; EXECUTE rt_del",
        "VALUES (1); WITH u AS (UPDATE rt_m SET v = 'y' WHERE id = 1 RETURNING 1) SELECT 1",
    ],
)
def test_mixed_read_write_multi_statement(agent: Any, sql: str) -> None:
    with agent.connect("root") as conn:
        conn.execute("CREATE TEMP TABLE rt_m (id int, v text)")
        conn.execute("INSERT INTO rt_m VALUES (1, 'keep'), (2, 'keep')")
        conn.execute("PREPARE rt_del AS DELETE FROM rt_m WHERE id = 1")
        outcome = run(conn, sql)
        left = conn.execute("SELECT count(*) FROM rt_m WHERE v = 'keep'").fetchone()[0]
    assert outcome.sqlstate == "42501" and left == 2, (
        f"mixed read+write multi-statement ran: {sql!r} -> {outcome!r}, left {left}"
    )


@pytest.mark.parametrize(
    "sql",
    [
        # ts_stat / ts_rewrite run SQL given as text: pg_read_file inside is not seen.
        "SELECT word FROM ts_stat($$SELECT to_tsvector('simple', pg_read_file('/etc/passwd'))$$)",
        "SELECT ts_rewrite('a'::tsquery, $$SELECT 'a'::tsquery, "
        "plainto_tsquery('simple', pg_read_file('/etc/hostname'))$$)",
        # Other server-file readers not in SERVER_FILE_FUNCTIONS.
        "SELECT sourcefile, name, setting FROM pg_file_settings",
        "SELECT * FROM pg_hba_file_rules",
        "SELECT * FROM pg_ls_logicalsnapdir()",
        "SELECT * FROM pg_ls_logicalmapdir()",
    ],
)
def test_server_file_access_variants(agent: Any, sql: str) -> None:
    with agent.connect("root") as conn:
        outcome = run(conn, sql)
    assert outcome.refused_by_agent, f"server file access not blocked: {sql!r} -> {outcome!r}"


def test_file_fdw_reads_server_files_and_runs_programs(agent: Any, admin: Any) -> None:
    """CREATE EXTENSION / SERVER / FOREIGN TABLE are plain DDL to the agent: file_fdw with
    `program` is COPY FROM PROGRAM, with `filename` a server file read."""
    results: dict[str, Outcome] = {}
    try:
        with agent.connect("root") as conn:
            for sql in (
                "CREATE EXTENSION IF NOT EXISTS file_fdw",
                "CREATE SERVER rt_files FOREIGN DATA WRAPPER file_fdw",
                "CREATE FOREIGN TABLE rt_passwd (line text) SERVER rt_files "
                "OPTIONS (filename '/etc/passwd')",
                "CREATE FOREIGN TABLE rt_prog (line text) SERVER rt_files "
                "OPTIONS (program 'echo rt-program-ran-$((6*7))')",
                "SELECT line FROM rt_passwd LIMIT 1",
                "SELECT line FROM rt_prog",
            ):
                results[sql] = run(conn, sql)
    finally:
        admin.execute("DROP EXTENSION IF EXISTS file_fdw CASCADE")
    prog = results["SELECT line FROM rt_prog"]
    passwd = results["SELECT line FROM rt_passwd LIMIT 1"]
    assert not (prog.rows and "rt-program-ran-42" in str(prog.rows)), (
        f"a server program ran through file_fdw: {prog!r}"
    )
    assert not (passwd.rows and "root:" in str(passwd.rows)), (
        f"a server file was read through file_fdw: {passwd!r}"
    )


@pytest.mark.parametrize(
    "sql",
    [
        "REASSIGN OWNED BY rt_nobody_role TO postgres",
        "CREATE USER rt_mallory",
        "CREATE GROUP rt_mallory_group",
        "ALTER GROUP pg_monitor ADD USER rt_nobody_role",
        "GRANT pg_read_server_files TO rt_nobody_role",
        "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC",
        "DROP OWNED BY rt_nobody_role",
        "DROP SCHEMA IF EXISTS rt_none CASCADE",
        "DROP INDEX IF EXISTS rt_none",
        "DROP VIEW IF EXISTS rt_none",
        "DROP FUNCTION IF EXISTS rt_none()",
        "DROP EXTENSION IF EXISTS rt_none",
        "TRUNCATE ONLY scratch",
        "TRUNCATE TABLE scratch, orders CASCADE",
        "COPY (SELECT 1) TO PROGRAM 'true'",
        "COPY scratch FROM '/etc/hostname'",
        "SELECT pg_catalog.pg_read_file('/etc/hostname')",
        "SELECT \"pg_read_file\"('/etc/hostname')",
        "SELECT * FROM ROWS FROM (pg_read_binary_file('/etc/hostname'))",
        "SELECT lo_export(0, '/tmp/rt-lo')",
        "EXPLAIN ANALYZE SELECT pg_read_file('/etc/hostname')",
        "WITH x AS (SELECT pg_ls_dir('.')) SELECT * FROM x",
        "SELECT (SELECT pg_stat_file('postgresql.conf'))",
        "DO LANGUAGE plpgsql $$ BEGIN PERFORM 1; END $$",
        "SELECT 1; DO $$ BEGIN PERFORM 1; END $$",
        "WITH d AS (UPDATE scratch SET v = v RETURNING 1) SELECT count(*) FROM d",
        "EXPLAIN (ANALYZE true) UPDATE scratch SET v = v",
        "DELETE FROM ONLY scratch",
        "DELETE FROM scratch USING orders",
        "UPDATE scratch SET v = 'x' FROM orders",
        "SELECT 1; SELECT 2; INSERT INTO scratch VALUES (1, 'x')",
        "INSERT INTO scratch VALUES (1, 'x'); TABLE scratch",
        "CREATE RULE rt_rule3 AS ON INSERT TO scratch DO ALSO DELETE FROM orders",
    ],
)
def test_guardrail_variants_are_blocked(agent: Any, sql: str) -> None:
    with agent.connect("root") as conn:
        outcome = run(conn, sql)
    assert outcome.sqlstate == "42501" and outcome.refused_by_agent, (
        f"guardrail-blocked kind reached the server: {sql!r} -> {outcome!r}"
    )


@pytest.mark.parametrize(
    "sql",
    [
        "WITH d AS (DELETE FROM rt_e RETURNING 1) SELECT * FROM d",
        "SELECT pg_read_file('/etc/hostname')",
        "MERGE INTO rt_e USING (SELECT 1) s ON true WHEN MATCHED THEN DELETE",
    ],
)
def test_guardrails_extended_protocol(agent: Any, sql: str) -> None:
    with agent.connect("root") as conn:
        conn.execute("CREATE TEMP TABLE rt_e (id int, v text)")
        conn.execute("INSERT INTO rt_e VALUES (1, 'keep')")
        outcome = run(conn, sql, prepare=True)
        left = conn.execute("SELECT count(*) FROM rt_e").fetchone()[0]
    assert outcome.sqlstate == "42501" and left == 1, f"{sql!r} -> {outcome!r}, left {left}"


# ----------------------------------------------------------------------------------------
# 6. Lexical differentials between pglast (PostgreSQL 18 grammar) and the PG15 server
# ----------------------------------------------------------------------------------------


def test_client_encoding_sjis_backslash_smuggling(agent: Any) -> None:
    """In SJIS, 0x95 0x5C is one character; pglast decodes the text as UTF-8 (replacing
    0x95) and so would see ``\\'`` as an escaped quote inside E'...' while the server sees
    the string end there.  The agent pins client_encoding to UTF8, so the SET is refused."""
    with agent.connect("alice") as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="pinned to UTF8"):
            conn.execute("SET client_encoding = 'SJIS'")
        conn.execute("ROLLBACK")
        raw = b"SELECT E'\x95\\' , upper(ssn) AS x, upper(email) AS y FROM customers -- '"
        result = conn.pgconn.exec_(raw)  # simple Query protocol, bytes as they are
        values = [
            result.get_value(r, c) for r in range(result.ntuples) for c in range(result.nfields)
        ]
        message = (result.error_message or b"").decode("sjis", errors="replace")
    text = " ".join(v.decode("sjis", errors="replace") for v in values if v is not None)
    assert not _secret_in(text + message), f"SJIS smuggling leaked: {text[:200]!r} {message!r}"


# ----------------------------------------------------------------------------------------
# 7. Odd corners that held (kept as regression probes)
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT c FROM archive.customers c",
        "SELECT c.* FROM customers c",
        "SELECT (c).* FROM customers c",
        "SELECT row_to_json(c) FROM (SELECT * FROM customers) c",
        "SELECT * FROM customers NATURAL JOIN archive.customers",
        "SELECT json_agg(t) FROM (SELECT id, ssn FROM customers) t",
        "SELECT to_jsonb(c) - 'ssn' FROM customers c",
        "TABLE customers",
        "SELECT x.* FROM customers x(a, b, c, d, e, f, g)",
        "SELECT id FROM customers WHERE (id, ssn) > (0, '')",
        "SELECT id FROM customers WHERE ROW(customers.*) IS NOT NULL",
        "SELECT count(*) FILTER (WHERE ssn LIKE '1%') FROM customers",
        "SELECT id FROM customers ORDER BY ssn",
        "SELECT id FROM customers c(i, n, e, p, ca, b, s)",
        "WITH w AS (SELECT * FROM customers) SELECT id FROM w",
        "SELECT id FROM customers GROUP BY CUBE (id, ssn)",
        "SELECT * FROM json_populate_recordset(null::customers, '[]')",
    ],
)
def test_denied_ssn_is_refused_wherever_it_is_reachable(agent: Any, sql: str) -> None:
    with agent.connect("alice") as conn:
        outcome = run(conn, sql)
    assert_no_leak(outcome, sql)


def test_search_path_set_config_does_not_unmask(agent: Any) -> None:
    with agent.connect("alice") as conn:
        run(conn, "SELECT set_config('search_path', 'archive, public', false)")
        for sql in ("SELECT upper(email) FROM customers", "SELECT email FROM customers"):
            assert_no_leak(run(conn, sql), sql)
            assert_no_leak(run(conn, sql, prepare=True), sql)


def test_startup_search_path_option_does_not_unmask(agent: Any) -> None:
    import psycopg as pg

    with pg.connect(agent.dsn("alice", options="-csearch_path=archive"), autocommit=True) as conn:
        for sql in ("SELECT upper(email) FROM customers", "SELECT email FROM customers"):
            assert_no_leak(run(conn, sql), sql)


def test_bot_hash_is_not_reversible_by_comparing_hashes(agent: Any) -> None:
    """The hash mask is keyed: md5/sha of the plain text computed by the client must not
    match what the agent returns (else a dictionary attack on emails works)."""
    with agent.connect("bot") as conn:
        rows = conn.execute("SELECT email, md5(email) FROM customers WHERE id = 1").fetchall()
    import hashlib

    for email_mask, md5 in rows:
        assert md5 is None or md5 == "****" or not re.fullmatch(r"[0-9a-f]{32}", md5)
        assert email_mask != hashlib.sha256(b"linus.1@example.com").hexdigest()


def test_unrestricted_bundle_query_to_xml_guardrail(
    agent: Any, control_plane: Any, make_bundle: Any
) -> None:
    """With no column restricted for an identity, opaque functions are allowed; the file
    guardrail must still apply inside query_to_xml's SQL text."""
    bundle = make_bundle("v-open")
    bundle["rules"] = [r for r in bundle["rules"] if r["id"] == 1]
    bundle["columns"] = []
    control_plane.set_bundle(bundle)
    with agent.connect("root") as conn:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = run(conn, "SELECT ssn FROM customers WHERE id = 1")
            if probe.error is None and probe.rows and SSN.search(str(probe.rows)):
                break
            time.sleep(0.1)
        sql = "SELECT query_to_xml('SELECT pg_read_file(''/etc/hostname'')', true, false, '')"
        outcome = run(conn, sql)
    assert outcome.refused_by_agent, f"pg_read_file ran inside query_to_xml: {outcome!r}"


_ = test_bundle  # imported for readers: the policy these probes run against
