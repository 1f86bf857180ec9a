"""Guardrails judge meaning: a WHERE that holds for every row counts as no WHERE.

Each probe first runs directly on PostgreSQL (in a rolled-back transaction) and must change
every row of the table there, so it really is an unfiltered write; through the agent it
must then be refused with 42501 naming the guardrail kind. Real conditions still pass.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from agent.postgres import codec
from tests.agent.corpus import EVERY_ROW
from tests.agent.wire import (
    Outcome,
    WireClient,
    assert_attack_controlled,
    assert_legitimate_work_runs,
    assert_refused,
    bind,
    execute,
    named_attack,
    parse,
    rolled_back,
    rows,
    run,
)


@pytest.fixture
def agent(agent_on_both_paths: Any) -> Any:
    """Every test here runs on the native data path and on the pure-Python one."""
    return agent_on_both_paths


ROWS = 5
REAL_CONDITIONS = [
    "id = 3",
    "id > 3",
    "v = 'a' OR id = 5",
    "id IN (SELECT customer_id FROM orders WHERE amount < 3)",
    "scratch.v LIKE 'a%'",
    "id = 1 AND 1 = 1",
    "NOT (id = id)",
]


@pytest.fixture
def admin_tx(pg_database: str) -> Any:
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=pg_database) as conn:
        yield conn


def _fill(admin_tx: Any) -> None:
    admin_tx.execute("DELETE FROM scratch")
    admin_tx.execute(
        "INSERT INTO scratch SELECT i, chr(96 + i) FROM generate_series(1, %s) i", (ROWS,)
    )
    admin_tx.commit()


def _rows_changed_directly(admin_tx: Any, sql: str) -> int:
    try:
        return admin_tx.execute(sql).rowcount
    finally:
        admin_tx.rollback()


@pytest.mark.parametrize("verb", ["DELETE FROM scratch", "UPDATE scratch SET v = 'gone'"])
def test_a_condition_true_for_every_row_counts_as_no_where(
    agent: Any, admin_tx: Any, verb: str
) -> None:
    _fill(admin_tx)
    kind = "delete_without_where" if verb.startswith("DELETE") else "update_without_where"
    failures = []
    with agent.connect("root") as conn:
        for condition in EVERY_ROW:
            sql = f"{verb} WHERE {condition}"
            changed = _rows_changed_directly(admin_tx, sql)
            assert changed == ROWS, f"the probe does not hit every row directly: {sql!r}"
            outcome = run(conn, sql)
            if outcome.sqlstate != "42501" or kind not in str(outcome.error):
                failures.append(f"{sql!r} -> {outcome!r}")
    left = admin_tx.execute("SELECT count(*) FROM scratch WHERE v <> 'gone'").fetchone()[0]
    assert left == ROWS, "a probe changed rows through the agent"
    assert not failures, f"{len(failures)} of {len(EVERY_ROW)} ran:\n" + "\n".join(failures)


def test_real_conditions_still_run(agent: Any, admin_tx: Any) -> None:
    _fill(admin_tx)
    with agent.connect("root") as conn:
        for condition in REAL_CONDITIONS:
            for verb in ("UPDATE scratch SET v = v", "DELETE FROM scratch"):
                conn.execute("BEGIN")
                outcome = run(conn, f"{verb} WHERE {condition}")
                conn.execute("ROLLBACK")
                assert outcome.error is None, (condition, outcome)


def test_delete_using_another_table_without_reading_the_target_is_unfiltered(
    agent: Any, admin_tx: Any
) -> None:
    _fill(admin_tx)
    sql = "DELETE FROM scratch USING orders o WHERE o.amount > 0"
    assert _rows_changed_directly(admin_tx, sql) == ROWS
    with agent.connect("root") as conn:
        outcome = run(conn, sql)
    assert outcome.sqlstate == "42501" and "delete_without_where" in str(outcome.error)


@pytest.mark.parametrize(
    "on",
    ["s.one = s.one", "1 = 1 OR t.id = s.one"],
)
def test_merge_on_a_condition_true_for_every_row_is_unfiltered(
    agent: Any, admin_tx: Any, on: str
) -> None:
    _fill(admin_tx)
    sql = f"MERGE INTO scratch t USING (SELECT 1 AS one) s ON {on} WHEN MATCHED THEN DELETE"
    assert _rows_changed_directly(admin_tx, sql) == ROWS
    with agent.connect("root") as conn:
        outcome = run(conn, sql)
    assert outcome.sqlstate == "42501" and "delete_without_where" in str(outcome.error)


# ----------------------------------------------------------------------------------------
# Guardrails
# ----------------------------------------------------------------------------------------


def _runs_directly(
    admin: Any, sql: str, *setup: str, check: str | None = None, **kwargs: Any
) -> Any:
    """The control of a guardrail probe: directly on PostgreSQL (rolled back) the statement
    runs, so the agent's refusal is what stops it; ``check``'s answer shows what it did."""
    with rolled_back(admin):
        for statement in setup:
            admin.execute(statement)
        if sql.startswith("COPY") and "STDOUT" in sql:
            with admin.cursor().copy(sql) as copy:
                outcome = Outcome([bytes(chunk) for chunk in copy], None)
        else:
            outcome = run(admin, sql, **kwargs)
        assert outcome.error is None, f"the probe does not run directly: {sql!r} {outcome!r}"
        if check is None:
            return None
        *before, last = check.split("; ")  # statements to run first, then the answer
        for statement in before:
            admin.execute(statement)
        return admin.execute(last).fetchone()[0]


@pytest.mark.parametrize(
    "sql",
    [
        "MERGE INTO rt_g USING (SELECT 1) s ON true WHEN MATCHED THEN DELETE",
        "MERGE INTO rt_g t USING (SELECT 1) s ON true WHEN MATCHED THEN UPDATE SET v = 'gone'",
    ],
)
def test_merge_deleting_or_updating_every_row(agent: Any, admin: Any, sql: str) -> None:
    setup = (
        "CREATE TEMP TABLE rt_g (id int, v text)",
        "INSERT INTO rt_g VALUES (1, 'keep'), (2, 'keep')",
    )
    check = "SELECT count(*) FROM rt_g WHERE v = 'keep'"
    assert _runs_directly(admin, sql, *setup, check=check) == 0
    with agent.connect("root") as conn:
        for statement in setup:
            conn.execute(statement)
        outcome = run(conn, sql)
        left = conn.execute(check).fetchone()[0]
        assert_legitimate_work_runs(conn)
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
def test_mixed_read_write_multi_statement(agent: Any, admin: Any, sql: str) -> None:
    setup = (
        "CREATE TEMP TABLE rt_m (id int, v text)",
        "INSERT INTO rt_m VALUES (1, 'keep'), (2, 'keep')",
        "PREPARE rt_del AS DELETE FROM rt_m WHERE id = 1",
    )
    check = "SELECT count(*) FROM rt_m WHERE v = 'keep'"
    try:
        assert _runs_directly(admin, sql, *setup, check=check) == 1
    finally:
        admin.execute("DEALLOCATE ALL")
    with agent.connect("root") as conn:
        for statement in setup:
            conn.execute(statement)
        outcome = run(conn, sql)
        left = conn.execute(check).fetchone()[0]
        assert_legitimate_work_runs(conn)
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
def test_server_file_access_variants(agent: Any, admin: Any, sql: str) -> None:
    _runs_directly(admin, sql)
    with agent.connect("root") as conn:
        outcome = run(conn, sql)
        assert_legitimate_work_runs(conn)
    assert outcome.refused_by_agent, f"server file access not blocked: {sql!r} -> {outcome!r}"


def test_file_fdw_reads_server_files_and_runs_programs(agent: Any, admin: Any) -> None:
    """CREATE EXTENSION / SERVER / FOREIGN TABLE are plain DDL to the agent: file_fdw with
    `program` is COPY FROM PROGRAM, with `filename` a server file read."""
    assert (
        _runs_directly(
            admin,
            "SELECT line FROM rt_prog0",
            "CREATE EXTENSION IF NOT EXISTS file_fdw",
            "CREATE SERVER rt_files0 FOREIGN DATA WRAPPER file_fdw",
            "CREATE FOREIGN TABLE rt_prog0 (line text) SERVER rt_files0 "
            "OPTIONS (program 'echo rt-program-ran-$((6*7))')",
            check="SELECT line FROM rt_prog0",
        )
        == "rt-program-ran-42"
    ), "file_fdw runs no program directly"
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
        # was `ALTER GROUP pg_monitor ...`: a reserved role, it failed directly
        "ALTER GROUP rt_group ADD USER rt_nobody_role",
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
        # `cat`, not `true`: a program that exits unread breaks the pipe (XX000) directly.
        "COPY (SELECT 1) TO PROGRAM 'cat > /dev/null'",
        # was `COPY scratch FROM ...`: the host name is no integer id, it failed directly
        "COPY scratch (v) FROM '/etc/hostname'",
        "SELECT pg_catalog.pg_read_file('/etc/hostname')",
        "SELECT \"pg_read_file\"('/etc/hostname')",
        "SELECT * FROM ROWS FROM (pg_read_binary_file('/etc/hostname'))",
        # was lo_export(0, ...): large object 0 does not exist, it failed directly
        "SELECT lo_export(4242, '/tmp/rt-lo')",
        "EXPLAIN ANALYZE SELECT pg_read_file('/etc/hostname')",
        "WITH x AS (SELECT pg_ls_dir('.')) SELECT * FROM x",
        # was postgresql.conf: not in this cluster's data directory, it failed directly
        "SELECT (SELECT pg_stat_file('PG_VERSION'))",
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
def test_guardrail_variants_are_blocked(agent: Any, admin: Any, sql: str) -> None:
    setup = (
        "CREATE ROLE rt_nobody_role",
        "CREATE ROLE rt_group",
        "SELECT lo_from_bytea(4242, 'x')",
    )
    _runs_directly(admin, sql, *setup)
    with agent.connect("root") as conn:
        outcome = run(conn, sql)
        assert_legitimate_work_runs(conn)
    assert outcome.sqlstate == "42501" and outcome.refused_by_agent, (
        f"guardrail-blocked kind reached the server: {sql!r} -> {outcome!r}"
    )


@pytest.mark.parametrize(
    ("sql", "check", "done"),
    [
        (
            "WITH d AS (DELETE FROM rt_e RETURNING 1) SELECT * FROM d",
            "SELECT count(*) FROM rt_e",
            0,
        ),
        ("SELECT pg_read_file('/etc/hostname')", "SELECT 1", 1),
        (
            "MERGE INTO rt_e USING (SELECT 1) s ON true WHEN MATCHED THEN DELETE",
            "SELECT count(*) FROM rt_e",
            0,
        ),
    ],
)
def test_guardrails_extended_protocol(
    agent: Any, admin: Any, sql: str, check: str, done: int
) -> None:
    setup = ("CREATE TEMP TABLE rt_e (id int, v text)", "INSERT INTO rt_e VALUES (1, 'keep')")
    assert _runs_directly(admin, sql, *setup, check=check, prepare=True) == done
    with agent.connect("root") as conn:
        for statement in setup:
            conn.execute(statement)
        outcome = run(conn, sql, prepare=True)
        left = conn.execute("SELECT count(*) FROM rt_e").fetchone()[0]
        assert_legitimate_work_runs(conn)
    assert outcome.sqlstate == "42501" and left == 1, f"{sql!r} -> {outcome!r}, left {left}"


# ----------------------------------------------------------------------------------------
# Guardrails hidden in other statements
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


HIDDEN_SETUP = (
    "CREATE TEMP TABLE rt2_t (id int, v text)",
    "INSERT INTO rt2_t VALUES (1, 'keep'), (2, 'keep')",
)


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
        # was `SELECT 1 \\; DELETE ...`: psql's separator is a syntax error to the server
        "SELECT 1; DELETE FROM rt2_t",
        # `DELETE ... WHERE CURRENT OF rt2_none` is gone: no such cursor (an error directly),
        # and with one it deletes a single row, which no guardrail forbids.
    ],
)
def test_guardrail_hidden_in_other_statements(agent: Any, admin: Any, sql: str) -> None:
    check = "SELECT count(*) FROM rt2_t WHERE v = 'keep'"
    then = "EXECUTE rt2_del" if sql.startswith("PREPARE") else "SELECT 1"
    try:
        assert _runs_directly(admin, sql, *HIDDEN_SETUP, check=f"{then}; {check}") < 2
    finally:
        admin.execute("DEALLOCATE ALL")
    with agent.connect("root") as conn:
        for statement in HIDDEN_SETUP:
            conn.execute(statement)
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
        left = conn.execute(check).fetchone()[0]
        assert_legitimate_work_runs(conn)
    assert left == 2, f"rows lost via {sql!r} -> {outcome!r}, left {left}"


def test_guardrail_statements_over_extended_named_statements(agent: Any, admin: Any) -> None:
    """The control runs the same statement directly with SQL PREPARE / EXECUTE."""
    setup = ("CREATE TEMP TABLE rt2_e (id int)", "INSERT INTO rt2_e VALUES (1)")
    try:
        left = _runs_directly(
            admin,
            "PREPARE rt2_d AS DELETE FROM rt2_e",
            *setup,
            check="EXECUTE rt2_d; SELECT count(*) FROM rt2_e",
        )
    finally:
        admin.execute("DEALLOCATE ALL")
    assert left == 0, "the DELETE removes nothing directly"
    client = WireClient(agent.port, "root")
    client.send(codec.query("; ".join(setup)))
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
# DML on system catalogs: DDL (rename, drop) without the DDL statement, and a rename the
#    static analysis (all the extended protocol has) does not know
# ----------------------------------------------------------------------------------------


CATALOG_RENAMES = [
    pytest.param(
        "UPDATE pg_attribute SET attname = 'rt3_e' "
        "WHERE attrelid = 'public.customers'::regclass AND attname = 'email'",
        "SELECT rt3_e, upper(rt3_e) FROM customers ORDER BY id LIMIT 3",
        id="masked_column",
    ),
    pytest.param(
        "UPDATE pg_class SET relname = 'rt3_c' WHERE oid = 'public.customers'::regclass",
        "SELECT email, birth_date::text, upper(email) FROM rt3_c ORDER BY id LIMIT 3",
        id="customers_table",
    ),
]


@pytest.mark.parametrize(("rename", "read"), CATALOG_RENAMES)
def test_catalog_update_renaming_is_not_allowed_silently(
    agent: Any, admin: Any, rename: str, read: str
) -> None:
    """Directly, the rename lets the read spell the e-mails under another name; through the
    agent the rename is refused (or the read stays masked, simple and extended)."""

    def attack(conn: psycopg.Connection[Any]) -> Any:
        with rolled_back(conn):
            conn.execute(rename)
            return [*conn.execute(read).fetchall(), *conn.execute(read, prepare=True).fetchall()]

    assert_attack_controlled(admin, agent, named_attack(attack, rename), refused=True)


def test_catalog_delete_is_a_drop(agent: Any, admin: Any) -> None:
    """Deleting a relation's pg_class row drops it: the blocking 'drop' guardrail."""
    sql = "DELETE FROM pg_class WHERE relname = 'rt3_victim' AND relpersistence = 't'"
    check = "SELECT count(*) FROM pg_class WHERE relname = 'rt3_victim'"
    admin.execute("CREATE TEMP TABLE rt3_victim (id int)")  # committed, as alice's is
    try:
        assert _runs_directly(admin, sql, check=check) == 0
    finally:
        admin.execute("DROP TABLE IF EXISTS pg_temp.rt3_victim")
    with agent.connect("alice") as conn:
        assert run(conn, "CREATE TEMP TABLE rt3_victim (id int)").error is None
        with rolled_back(conn):
            outcome = run(conn, sql)
            gone = run(conn, check)
        assert_legitimate_work_runs(conn)
    assert_refused(outcome, sql)
    assert gone.rows == [(1,)], gone
