"""Red-team probes of result masking: derived output the analysis could misread, values
carried out through side effects (settings, large objects, locks, sequences), objects made
through the agent that expose data later, field notation, COPY, and masking-method edges.

Every test asserts the *secure* behaviour (no masked or denied value reaches the client in
clear, or the statement is refused), so a failing test is a finding.  Probes found in three
rounds of red-teaming, grouped by subject.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agent.postgres import codec
from tests.agent.conftest import email_grant
from tests.agent.corpus import (
    FIELD_NOTATION,
    OUTPUT_LEAKS,
    OUTPUT_PROBES_EXPECTED_SAFE,
    SAFE_OUTPUT,
    SHADOWED_FIELD_NOTATION,
)
from tests.agent.wire import (
    CARD,
    DOB,
    EMAIL,
    LEGITIMATE_SQL,
    SECRETS,
    SSN,
    Attack,
    Outcome,
    WireClient,
    assert_attack_controlled,
    assert_legitimate_work_runs,
    assert_no_leak,
    assert_reads_secret_unmasked,
    assert_reads_secret_unmasked_by,
    assert_refused,
    assert_withheld,
    copies,
    parse,
    reads,
    rolled_back,
    rows,
    run,
    stores_then_reads,
)
from tests.agent.wire import secret_in as _secret_in


@pytest.fixture
def agent(agent_on_both_paths: Any) -> Any:
    """Every test here runs on the native data path and on the pure-Python one."""
    return agent_on_both_paths


def _dob_from_number(rows: list[Any] | None) -> list[str]:
    """YYYYMMDD numbers (a lock key, a sequence value) spelled as dates."""
    found = []
    for row in rows or ():
        for value in row:
            text = str(value)
            if len(text) == 8 and text.isdigit():
                date = f"{text[:4]}-{text[4:6]}-{text[6:]}"
                if DOB.fullmatch(date):
                    found.append(date)
    return found


def _both_protocols(conn: psycopg.Connection[Any], sql: str) -> list[Outcome]:
    return [run(conn, sql), run(conn, sql, prepare=True), run(conn, sql, binary=True)]


# ----------------------------------------------------------------------------------------
# Derived output that static analysis classifies wrongly (simple and extended protocol)
# ----------------------------------------------------------------------------------------

# Probes whose unmasked answer carries pieces of a secret (words, hashes, parts) that the
# secret patterns do not match whole: their control only has to run and return rows.
FRAGMENT_PROBES = {
    "SELECT word FROM ts_stat('SELECT to_tsvector(''simple'', ssn) FROM customers')",
    "SELECT word FROM ts_stat('SELECT to_tsvector(''simple'', card) FROM customers')",
    "SELECT hashtext(email), md5(email) FROM customers",
    "SELECT * FROM ROWS FROM (string_to_array((SELECT email FROM customers LIMIT 1), '@'))",
    "SELECT x FROM customers, LATERAL unnest(string_to_array(email, '.')) x",
}


def _reads_unmasked(admin: Any, sql: str, **kwargs: Any) -> None:
    """The probe's control: unmasked, it runs and reads the secret (or pieces of it)."""
    if sql in FRAGMENT_PROBES:
        control = run(admin, sql, **kwargs)
        assert control.error is None and control.rows, f"the probe reads nothing: {control!r}"
    else:
        assert_reads_secret_unmasked(admin, sql, **kwargs)


@pytest.mark.parametrize("sql", OUTPUT_LEAKS + OUTPUT_PROBES_EXPECTED_SAFE)
def test_select_output_simple_protocol(both: Any, admin: Any, sql: str) -> None:
    _reads_unmasked(admin, sql)
    with both.connect("alice") as conn:
        assert_withheld(run(conn, sql), sql)


@pytest.mark.parametrize("sql", OUTPUT_LEAKS + OUTPUT_PROBES_EXPECTED_SAFE)
def test_select_output_extended_protocol(agent: Any, admin: Any, sql: str) -> None:
    _reads_unmasked(admin, sql, prepare=True)
    with agent.connect("alice") as conn:
        assert_withheld(run(conn, sql, prepare=True), sql)
        assert_withheld(run(conn, sql, prepare=False, binary=True), sql)


def test_row_to_json_field_notation_reaches_the_denied_ssn(agent: Any, admin: Any) -> None:
    """SSN is denied everywhere for everyone; field notation still reads it."""
    sql = "SELECT c.row_to_json FROM customers c ORDER BY id LIMIT 1"
    assert_attack_controlled(admin, agent, reads(sql), secret=SSN)


def test_copy_of_field_notation_whole_row(agent: Any, admin: Any) -> None:
    assert_attack_controlled(
        admin, agent, copies("COPY (SELECT c.row_to_json FROM customers c) TO STDOUT")
    )


def test_create_table_as_from_field_notation_then_read(agent: Any, admin: Any) -> None:
    attack = stores_then_reads(
        "CREATE TEMP TABLE rt_loot1 AS SELECT c.row_to_json AS j FROM customers c",
        read="SELECT j FROM rt_loot1",
    )
    assert_attack_controlled(admin, agent, attack)


# ----------------------------------------------------------------------------------------
# Side channels that carry a value out of the statement
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("read", ["SELECT current_setting('rt.x')", "SHOW rt.x"])
def test_set_config_then_current_setting(agent: Any, admin: Any, read: str) -> None:
    store = "SELECT set_config('rt.x', email, false) FROM customers WHERE id = 1"
    assert_attack_controlled(admin, agent, stores_then_reads(store, read=read), secret=EMAIL)


def test_set_config_application_name_parameter_status(agent: Any, admin: Any) -> None:
    """application_name is GUC_REPORT: the server sends ParameterStatus with its value."""

    def attack(conn: psycopg.Connection[Any]) -> Any:
        conn.execute(
            "SELECT set_config('application_name', email, false) FROM customers WHERE id = 1"
        )
        return conn.info.parameter_status("application_name") or ""

    assert_attack_controlled(admin, agent, attack, secret=EMAIL)


def _notified(column: str) -> Attack:
    """An attack by NOTIFY: the payloads of pg_notify(channel, column) for two customers."""

    def attack(conn: psycopg.Connection[Any]) -> Any:
        payloads: list[str] = []
        conn.add_notify_handler(lambda n: payloads.append(n.payload))
        conn.execute("LISTEN rt_chan")
        conn.execute(f"SELECT pg_notify('rt_chan', {column}) FROM customers WHERE id < 3")
        deadline = time.monotonic() + 2
        while not payloads and time.monotonic() < deadline:
            conn.execute("SELECT 1")
            time.sleep(0.05)
        return payloads

    return attack


def test_pg_notify_payload(agent: Any, admin: Any) -> None:
    assert_attack_controlled(admin, agent, _notified("email"), secret=EMAIL)


def test_pg_notify_payload_of_denied_ssn_is_refused(agent: Any, admin: Any) -> None:
    assert_attack_controlled(admin, agent, _notified("ssn"), secret=SSN, reason="ssn")


_HISTOGRAMS = [
    (
        "email",
        "SELECT histogram_bounds::text FROM pg_stats WHERE tablename = 'customers' "
        "AND attname = 'email'",
        EMAIL,
    ),
    (
        "ssn",
        "SELECT histogram_bounds::text FROM pg_stats WHERE tablename = 'customers' "
        "AND attname = 'ssn'",
        SSN,
    ),
    (
        "card",
        "SELECT most_common_vals::text, histogram_bounds::text FROM pg_stats "
        "WHERE tablename = 'customers' AND attname = 'card'",
        CARD,
    ),
    (
        "pg_statistic",
        "SELECT stavalues1::text FROM pg_statistic WHERE starelid = 'customers'::regclass",
        SECRETS,
    ),
]


@pytest.mark.parametrize(
    ("read", "secret"), [h[1:] for h in _HISTOGRAMS], ids=[h[0] for h in _HISTOGRAMS]
)
def test_pg_stats_histogram_after_analyze(agent: Any, admin: Any, read: str, secret: Any) -> None:
    assert_attack_controlled(
        admin, agent, stores_then_reads("ANALYZE customers", read=read), secret=secret
    )


def test_pg_stats_of_denied_column_via_extended_protocol(agent: Any, admin: Any) -> None:
    sql = "SELECT histogram_bounds::text FROM pg_stats WHERE tablename = %s AND attname = %s"

    def attack(conn: psycopg.Connection[Any]) -> Any:
        conn.execute("ANALYZE customers (ssn)")
        return conn.execute(sql, ("customers", "ssn"), prepare=True).fetchall()

    assert_attack_controlled(admin, agent, attack, secret=SSN)


# ----------------------------------------------------------------------------------------
# Objects created through the agent that later expose data
# ----------------------------------------------------------------------------------------


def _view_reads(view: str) -> list[Any]:
    params = []
    for in_transaction in (False, True):
        for read in (f"SELECT upper(email) FROM {view}", f"SELECT email FROM {view}"):
            for prepare in (False, True):
                params.append(
                    pytest.param(
                        read,
                        prepare,
                        in_transaction,
                        id=f"{'tx' if in_transaction else 'autocommit'}-"
                        f"{'extended' if prepare else 'simple'}-{read.split()[1]}",
                    )
                )
    return params


def _view_attack(create: tuple[str, ...], read: str, prepare: bool, in_transaction: bool) -> Any:
    def attack(conn: psycopg.Connection[Any]) -> Any:
        with rolled_back(conn) if in_transaction else contextlib.nullcontext(conn):
            for statement in create:
                conn.execute(statement)
            return conn.execute(read, prepare=prepare).fetchall()

    return attack


@pytest.mark.parametrize(("read", "prepare", "in_transaction"), _view_reads("pg_temp.customers"))
def test_temp_view_named_like_a_bundle_table_in_pg_temp(
    agent: Any, admin: Any, read: str, prepare: bool, in_transaction: bool
) -> None:
    """pg_temp.customers, a view over the masked email, is resolved as a view."""
    create = ("CREATE TEMP VIEW customers AS SELECT id, email FROM public.customers",)
    attack = _view_attack(create, read, prepare, in_transaction)
    try:
        assert_attack_controlled(admin, agent, attack, secret=EMAIL)
    finally:
        admin.execute("DROP VIEW IF EXISTS pg_temp.customers")


@pytest.mark.parametrize(("read", "prepare", "in_transaction"), _view_reads("rt_shadow.customers"))
def test_view_in_new_schema_named_like_a_bundle_table(
    agent: Any, admin: Any, read: str, prepare: bool, in_transaction: bool
) -> None:
    create = (
        "CREATE SCHEMA IF NOT EXISTS rt_shadow",
        "CREATE OR REPLACE VIEW rt_shadow.customers AS SELECT id, email FROM public.customers",
    )
    attack = _view_attack(create, read, prepare, in_transaction)
    try:
        assert_attack_controlled(admin, agent, attack, secret=EMAIL)
    finally:
        admin.execute("DROP SCHEMA IF EXISTS rt_shadow CASCADE")


def test_rule_do_instead_select_returns_masked_data(agent: Any, admin: Any) -> None:
    """CREATE RULE's action is walked as a predicate; the UPDATE it rewrites is allowed."""

    def attack(conn: psycopg.Connection[Any]) -> Any:
        with rolled_back(conn):
            conn.execute("CREATE TEMP TABLE rt_r (id int, v text)")
            conn.execute("INSERT INTO rt_r VALUES (1, 'x')")
            conn.execute(
                "CREATE RULE rt_rule AS ON UPDATE TO rt_r DO INSTEAD "
                "SELECT email, upper(email) AS u FROM customers"
            )
            simple = conn.execute("UPDATE rt_r SET v = 'y' WHERE id = 1")
            extended = conn.execute("UPDATE rt_r SET v = %s WHERE id = 1", ("z",))
            return [
                *(simple.fetchall() if simple.description else []),
                *(extended.fetchall() if extended.description else []),
            ]

    assert_attack_controlled(admin, agent, attack, secret=EMAIL)


@pytest.mark.parametrize(
    "store",
    [
        "CREATE RULE rt_rule2 AS ON INSERT TO rt_r2 DO ALSO "
        "INSERT INTO rt_loot2 SELECT id, email FROM customers",
        # EXPLAIN demotes every inner use to a predicate, but ANALYZE runs the write.
        "EXPLAIN ANALYZE CREATE TEMP TABLE rt_loot2b AS SELECT id, email AS v FROM customers",
        "EXPLAIN (ANALYZE, VERBOSE) INSERT INTO rt_loot2 SELECT id, email FROM customers",
        "EXPLAIN ANALYZE SELECT id, email AS v INTO TEMP rt_loot2b FROM customers",
    ],
    ids=["rule_do_also", "explain_create_table_as", "explain_insert_select", "explain_select_into"],
)
def test_a_write_hidden_in_a_rule_or_explain_analyze_stores_no_masked_data(
    agent: Any, admin: Any, store: str
) -> None:
    refused = "CREATE RULE" in store  # a rule copying masked data is refused outright
    read = "SELECT v FROM rt_loot2" if "rt_loot2b" not in store else "SELECT v FROM rt_loot2b"
    attack = stores_then_reads(
        "CREATE TEMP TABLE rt_r2 (id int, v text)",
        "CREATE TEMP TABLE rt_loot2 (id int, v text)",
        store,
        "INSERT INTO rt_r2 VALUES (1, 'x')",
        read=read,
    )
    assert_attack_controlled(admin, agent, attack, secret=EMAIL, refused=refused)


def test_explain_verbose_output_has_no_values(agent: Any) -> None:
    with agent.connect("alice") as conn:
        for sql in (
            "EXPLAIN (ANALYZE, VERBOSE, COSTS OFF) SELECT upper(email) FROM customers",
            "EXPLAIN (VERBOSE, FORMAT JSON) SELECT email FROM customers WHERE email > 'a'",
            "EXPLAIN (ANALYZE, VERBOSE) WITH x AS (SELECT email FROM customers) SELECT * FROM x",
        ):
            assert_no_leak(run(conn, sql), sql)


# The store, then the read that shows what it stored.  scratch gets one row per customer
# first, so the MERGE ... WHEN MATCHED and UPDATE ... FROM probes have rows to overwrite.
STORES = [
    (
        "CREATE TEMP TABLE rt_l6 AS WITH x AS (SELECT email FROM customers) SELECT * FROM x",
        "SELECT * FROM rt_l6",
    ),
    ("CREATE MATERIALIZED VIEW rt_mv AS SELECT upper(email) FROM customers", "TABLE rt_mv"),
    (
        "WITH i AS (INSERT INTO scratch SELECT id, email FROM customers RETURNING 1) SELECT 1",
        "SELECT v FROM scratch",
    ),
    (
        "MERGE INTO scratch s USING customers c ON s.id = c.id + 1000 WHEN NOT MATCHED THEN "
        "INSERT VALUES (c.id, c.email)",
        "SELECT v FROM scratch",
    ),
    (
        "MERGE INTO scratch s USING customers c ON s.id = c.id WHEN MATCHED THEN "
        "UPDATE SET v = c.email",
        "SELECT v FROM scratch",
    ),
    (
        "INSERT INTO scratch VALUES (1, (SELECT email FROM customers LIMIT 1))",
        "SELECT v FROM scratch",
    ),
    ("INSERT INTO scratch SELECT id, e FROM customers c(id, n, e)", "SELECT v FROM scratch"),
    (
        "UPDATE scratch s SET v = c.email FROM customers c WHERE s.id = c.id",
        "SELECT v FROM scratch",
    ),
    (
        "INSERT INTO scratch (id, v) SELECT 1, string_agg(email, ',') FROM customers",
        "SELECT v FROM scratch",
    ),
    (
        "INSERT INTO scratch SELECT 1, v FROM (SELECT email AS v FROM customers) q",
        "SELECT v FROM scratch",
    ),
    ("PREPARE rt_p1 AS SELECT c.* FROM archive.customers c", "EXECUTE rt_p1"),
]


@pytest.mark.parametrize(("store", "read"), STORES)
def test_storing_masked_data_is_denied(agent: Any, admin: Any, store: str, read: str) -> None:
    attack = stores_then_reads(
        "INSERT INTO scratch SELECT id, 'plain' FROM customers", store, read=read
    )
    assert_attack_controlled(admin, agent, attack, secret=EMAIL, refused=True)


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
def test_whole_row_reference_in_a_write_context(
    agent: Any, admin: Any, sql: str, read: str
) -> None:
    assert_attack_controlled(admin, agent, stores_then_reads(sql, read=read), secret=EMAIL)


@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT (a).email FROM archive.customers a) TO STDOUT",
        "COPY (SELECT row_to_json(a) FROM archive.customers a) TO STDOUT",
        "COPY (SELECT a FROM archive.customers a) TO STDOUT",
    ],
)
def test_copy_of_whole_row_reference(agent: Any, admin: Any, sql: str) -> None:
    assert_attack_controlled(admin, agent, copies(sql), secret=EMAIL)


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
# Odd corners that held (kept as regression probes)
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
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
        "SELECT i FROM customers c(i, n, e, p, ca, b, s)",
        "WITH w AS (SELECT * FROM customers) SELECT id FROM w",
        "SELECT id FROM customers GROUP BY CUBE (id, ssn)",
    ],
)
def test_denied_ssn_is_refused_wherever_it_is_reachable(agent: Any, admin: Any, sql: str) -> None:
    control = run(admin, sql)
    assert control.error is None, f"the probe does not run unmasked: {control!r}"
    with agent.connect("alice") as conn:
        outcome = run(conn, sql)
    assert_withheld(outcome, sql, reason="customers.")  # the SSN, or a masked column first
    assert outcome.error is not None, f"a statement reaching the denied SSN ran: {sql!r}"


@pytest.mark.parametrize(
    "read", ["SELECT upper(email) FROM customers", "SELECT email FROM customers"]
)
@pytest.mark.parametrize("prepare", [False, True], ids=["simple", "extended"])
def test_search_path_set_config_does_not_unmask(
    agent: Any, admin: Any, read: str, prepare: bool
) -> None:
    def attack(conn: psycopg.Connection[Any]) -> Any:
        conn.execute("SELECT set_config('search_path', 'archive, public', false)")
        try:
            return conn.execute(read, prepare=prepare).fetchall()
        finally:
            conn.execute("RESET search_path")

    assert_attack_controlled(admin, agent, attack, secret=EMAIL)


@pytest.mark.parametrize(
    "read", ["SELECT upper(email) FROM customers", "SELECT email FROM customers"]
)
def test_startup_search_path_option_does_not_unmask(
    agent: Any, pg_database: str, read: str
) -> None:
    options = "-csearch_path=archive"
    direct = f"host=127.0.0.1 port=5432 user=postgres dbname={pg_database} options={options}"
    with psycopg.connect(direct, autocommit=True) as unrestricted:
        assert_reads_secret_unmasked(unrestricted, read)
    with psycopg.connect(agent.dsn("alice", options=options), autocommit=True) as conn:
        assert_no_leak(run(conn, read), read)
        assert_legitimate_work_runs(conn)


def test_bot_hash_is_not_reversible_by_comparing_hashes(agent: Any, admin: Any) -> None:
    """The hash mask is keyed: md5/sha of the plain text computed by the client must not
    match what the agent returns (else a dictionary attack on emails works)."""
    import hashlib

    sql = "SELECT email, md5(email) FROM customers WHERE id = 1"
    ((real_email, real_md5),) = admin.execute(sql).fetchall()  # the control: the real pair
    assert EMAIL.fullmatch(real_email) and real_md5 == hashlib.md5(real_email.encode()).hexdigest()
    with agent.connect("bot") as conn:
        rows = conn.execute(sql).fetchall()
        assert_legitimate_work_runs(conn)
    for email_mask, md5 in rows:
        assert md5 != real_md5 and (
            md5 is None or md5 == "****" or not re.fullmatch(r"[0-9a-f]{32}", md5)
        )
        assert email_mask not in {real_email, hashlib.sha256(real_email.encode()).hexdigest()}


def test_unrestricted_bundle_query_to_xml_guardrail(
    agent: Any, admin: Any, control_plane: Any, make_bundle: Any
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
        assert_legitimate_work_runs(conn)
    control = run(admin, sql)  # unguarded, the statement reads the server's file
    hostname = Path("/etc/hostname").read_text().strip()
    assert control.error is None and hostname in str(control.rows), control
    assert outcome.refused_by_agent, f"pg_read_file ran inside query_to_xml: {outcome!r}"


# ----------------------------------------------------------------------------------------
# SQL EXECUTE of protocol-level prepared statements, hidden in CREATE TABLE AS
# ----------------------------------------------------------------------------------------


PROTOCOL_STATEMENT_ATTACKS = [
    pytest.param(
        "SELECT id, email, card FROM customers",
        ("CREATE TEMP TABLE rt2_loot AS EXECUTE {name}",),
        "SELECT * FROM rt2_loot ORDER BY id LIMIT 3",
        id="create_table_as_execute",
    ),
    pytest.param(
        "SELECT id, upper(email) AS e, card FROM customers",
        (),
        "EXECUTE {name}",
        id="sql_execute",
    ),
    pytest.param(
        "SELECT id, email FROM customers",
        ("EXPLAIN ANALYZE CREATE TEMP TABLE rt2_loot3 AS EXECUTE {name}",),
        "SELECT * FROM rt2_loot3 LIMIT 3",
        id="explain_analyze_create_table_as_execute",
    ),
]


@pytest.mark.parametrize(("statement", "steps", "read"), PROTOCOL_STATEMENT_ATTACKS)
def test_sql_use_of_a_protocol_statement_reads_no_clear_values(
    agent: Any, admin: Any, statement: str, steps: tuple[str, ...], read: str
) -> None:
    """Parse a statement over the protocol (masked at Execute by the agent), then use it
    from SQL (EXECUTE, CREATE TABLE AS EXECUTE): the server runs it unmasked.  The control
    prepares the same statement with SQL PREPARE directly on the server."""
    control = stores_then_reads(
        f"PREPARE rt2_ctl AS {statement}",
        *(step.format(name="rt2_ctl") for step in steps),
        read=read.format(name="rt2_ctl"),
    )
    assert_reads_secret_unmasked_by(admin, control)
    client = WireClient(agent.port, "alice")
    client.send(parse("rt2_s", statement), codec.SYNC)
    client.until(b"Z")
    for step in steps:
        client.send(codec.query(step.format(name="rt2_s")))
        client.until(b"Z")
    client.send(codec.query(read.format(name="rt2_s")))
    messages = client.until(b"Z")
    client.send(codec.query(LEGITIMATE_SQL))
    legitimate = rows(client.until(b"Z"))
    client.close()
    leaked = [v for r in rows(messages) for v in r if v and _secret_in(v.decode())]
    assert not leaked, f"SQL use of a protocol statement leaked {leaked[:3]}"
    assert len(legitimate) == 3, "alice's legitimate work broke"


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
# Field notation whose name is a column of a same-named table in another schema
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


@pytest.mark.parametrize("sql", SHADOWED_FIELD_NOTATION)
@pytest.mark.parametrize("prepare", [False, True], ids=["simple", "extended"])
def test_field_notation_shadowed_by_a_column_elsewhere(
    shadow_columns: Any, admin: Any, sql: str, prepare: bool
) -> None:
    assert_attack_controlled(admin, shadow_columns, reads(sql, prepare=prepare))


def test_field_notation_shadowed_in_a_filter_on_the_denied_ssn(
    shadow_columns: Any, admin: Any
) -> None:
    """ssn is denied wherever it appears, filters included."""
    sql = "SELECT id FROM customers c WHERE c.row_to_json::text LIKE '%101-45-6001%'"
    assert run(admin, sql).rows == [(1,)], "the filter does not find the SSN unrestricted"
    with shadow_columns.connect("alice") as conn:
        assert_refused(run(conn, sql), sql)
        assert_legitimate_work_runs(conn)


def test_field_notation_shadowed_in_copy(shadow_columns: Any, admin: Any) -> None:
    attack = copies("COPY (SELECT c.row_to_json FROM customers c) TO STDOUT")
    assert_attack_controlled(admin, shadow_columns, attack)


def test_field_notation_shadowed_in_cursor(shadow_columns: Any, admin: Any) -> None:
    attack = stores_then_reads(
        "DECLARE rt2_fc CURSOR FOR SELECT c.to_jsonb FROM customers c", read="FETCH 2 FROM rt2_fc"
    )
    assert_attack_controlled(admin, shadow_columns, attack)


def test_field_notation_shadowed_create_table_as(shadow_columns: Any, admin: Any) -> None:
    attack = stores_then_reads(
        "CREATE TEMP TABLE rt2_fl AS SELECT c.row_to_json AS t FROM customers c",
        read="SELECT t FROM rt2_fl",
    )
    assert_attack_controlled(admin, shadow_columns, attack)


# ----------------------------------------------------------------------------------------
# More field-notation spellings (no shadow table)
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sql", FIELD_NOTATION)
def test_more_field_notation_and_derived_forms(both: Any, admin: Any, sql: str) -> None:
    _reads_unmasked(admin, sql)
    with both.connect("alice") as conn:
        assert_withheld(run(conn, sql), sql)


@pytest.mark.parametrize("sql", FIELD_NOTATION)
@pytest.mark.parametrize("form", ["prepare", "binary"])
def test_more_field_notation_and_derived_forms_extended(
    agent: Any, admin: Any, sql: str, form: str
) -> None:
    kwargs = {form: True}
    _reads_unmasked(admin, sql, **kwargs)
    with agent.connect("alice") as conn:
        assert_withheld(run(conn, sql, **kwargs), sql)
        assert_legitimate_work_runs(conn)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE customers c SET score = score WHERE id = 1 RETURNING c.row_to_json",
        "UPDATE customers SET score = score WHERE id = 1 RETURNING customers.to_json",
    ],
)
def test_field_notation_in_returning(agent: Any, admin: Any, sql: str) -> None:
    assert_attack_controlled(admin, agent, stores_then_reads(read=sql))


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT id FROM customers c WHERE c.row_to_json::text LIKE '%-45-%'",
        "SELECT id FROM customers c WHERE (c).to_jsonb->>'ssn' LIKE '1%'",
        "SELECT id FROM customers c ORDER BY c.to_jsonb->>'ssn'",
        "SELECT count(*) FROM customers c GROUP BY c.row_to_json->>'ssn'",
        "SELECT md5(c.to_json::text) FROM customers c",
        # was `(c).row_to_json IS NOT NULL`: true whatever the SSN, so it asked nothing
        "SELECT id FROM customers c WHERE (c).row_to_json->>'ssn' IS NOT NULL",
    ],
)
def test_field_notation_reaching_the_denied_ssn_is_refused(
    agent: Any, admin: Any, sql: str
) -> None:
    """Each question depends on the SSN: unrestricted, its answer changes when the SSNs do."""
    with rolled_back(admin):
        before = run(admin, sql).rows
        admin.execute("UPDATE customers SET ssn = NULL WHERE id % 2 = 0")
        after = run(admin, sql).rows
    assert before != after, f"the probe's answer does not depend on the SSN: {sql!r}"
    with agent.connect("alice") as conn:
        assert_refused(run(conn, sql), sql)
        assert_legitimate_work_runs(conn)


# ----------------------------------------------------------------------------------------
# COPY variants
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
def test_copy_variants(agent: Any, admin: Any, sql: str) -> None:
    assert_attack_controlled(admin, agent, copies(sql), secret=(EMAIL, CARD))


# ----------------------------------------------------------------------------------------
# Functions with side effects that store their argument where a later read finds it
#    (like set_config / pg_notify, which the agent treats as writes)
# ----------------------------------------------------------------------------------------


def _dob_numbers(attack: Attack) -> Attack:
    """The attack's rows with YYYYMMDD numbers spelled as dates."""

    def decoded(conn: psycopg.Connection[Any]) -> Any:
        return _dob_from_number(attack(conn))

    decoded.__name__ = getattr(attack, "__name__", "attack")
    return decoded


def _email_from_lock_keys(attack: Attack) -> Attack:
    """Two int4 lock keys per row, spelled as the eight bytes they carry."""

    def decoded(conn: psycopg.Connection[Any]) -> Any:
        return [
            b"".join(int(v).to_bytes(4, "big", signed=True) for v in row).decode(errors="replace")
            for row in attack(conn)
        ]

    decoded.__name__ = getattr(attack, "__name__", "attack")
    return decoded


# Eight bytes of an email, as a lock key spells them (the local part and the "@").
EMAIL_PREFIX = re.compile(r"(ada|grace|linus|edsger|barbara|ken|margaret|alan)\.\d+@?")
EMAIL_AS_SLOT = re.compile(r"[a-z]+\.\d+\.example\.com")

SIDE_EFFECT_ATTACKS = [
    pytest.param(
        stores_then_reads(
            "SELECT lo_from_bytea(0, convert_to(string_agg(email, ','), 'UTF8')) "
            "FROM customers WHERE id < 4",
            read="SELECT convert_from(data, 'UTF8') FROM pg_largeobject",
        ),
        EMAIL,
        id="lo_from_bytea",
    ),
    pytest.param(
        stores_then_reads(
            "SELECT lo_put(lo_create(0), 0, convert_to(email, 'UTF8')) FROM customers WHERE id = 1",
            read="SELECT encode(data, 'escape') FROM pg_largeobject",
        ),
        EMAIL,
        id="lo_put",
    ),
    pytest.param(
        _dob_numbers(
            stores_then_reads(
                "SELECT lo_create(to_char(birth_date, 'YYYYMMDD')::oid) FROM customers "
                "WHERE id = 1",
                read="SELECT oid::text FROM pg_largeobject_metadata",
            )
        ),
        DOB,
        id="large_object_oid",
    ),
    pytest.param(
        _dob_numbers(
            stores_then_reads(
                "SELECT pg_advisory_xact_lock(to_char(birth_date, 'YYYYMMDD')::bigint) "
                "FROM customers WHERE id = 1",
                read="SELECT objid::text FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid()",
            )
        ),
        DOB,
        id="advisory_lock_key",
    ),
    pytest.param(
        # Two int4 keys carry eight bytes of the email's local part per lock.
        _email_from_lock_keys(
            stores_then_reads(
                "SELECT pg_advisory_xact_lock(('x' || encode(substr(convert_to(email, 'UTF8'), "
                "1, 4), 'hex'))::bit(32)::int, ('x' || encode(substr(convert_to(email, 'UTF8'),"
                " 5, 4), 'hex'))::bit(32)::int) FROM customers WHERE id = 1",
                read="SELECT classid::int, objid::int FROM pg_locks "
                "WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
            )
        ),
        EMAIL_PREFIX,
        id="advisory_lock_two_keys",
    ),
    pytest.param(
        _dob_numbers(
            stores_then_reads(
                "CREATE TEMP SEQUENCE rt3_seq",
                "SELECT setval('rt3_seq', to_char(birth_date, 'YYYYMMDD')::bigint) "
                "FROM customers WHERE id = 1",
                read="SELECT last_value::text FROM rt3_seq",
            )
        ),
        DOB,
        id="temp_sequence_setval",
    ),
    pytest.param(
        stores_then_reads(
            "SELECT pg_replication_origin_create(email) FROM customers WHERE id = 1",
            read="SELECT roname FROM pg_replication_origin",
        ),
        EMAIL,
        id="replication_origin",
    ),
]


@pytest.mark.parametrize(("attack", "secret"), SIDE_EFFECT_ATTACKS)
def test_a_value_stored_by_a_side_effect_function_is_not_read_back(
    both: Any, admin: Any, attack: Attack, secret: re.Pattern[str]
) -> None:
    """Large objects, advisory locks, sequences and replication origins keep the argument
    where a later read of a catalog finds it."""
    assert_attack_controlled(admin, both, attack, secret=secret)


@pytest.mark.parametrize(
    "store",
    [
        "SELECT id FROM customers WHERE id = 1 AND set_config('rt3.x', email, false) <> ''",
        "SELECT id FROM customers ORDER BY set_config('rt3.x', email, false) LIMIT 1",
        "SELECT c.id FROM customers c JOIN orders o ON o.customer_id = c.id "
        "AND set_config('rt3.x', c.email, false) <> '' WHERE c.id = 1",
        "SELECT count(*) FROM customers GROUP BY set_config('rt3.x', email, false) "
        "HAVING min(id) = 1",
    ],
    ids=["where", "order_by", "join_on", "group_by"],
)
@pytest.mark.parametrize("read", ["SELECT current_setting('rt3.x', true)", "SHOW rt3.x"])
def test_set_config_in_a_filter_stores_the_email(
    both: Any, admin: Any, store: str, read: str
) -> None:
    """set_config() is a value sink in the select list; in WHERE / ORDER BY / JOIN ON /
    GROUP BY it stores just the same."""
    assert_attack_controlled(admin, both, stores_then_reads(store, read=read), secret=EMAIL)


@contextlib.contextmanager
def _cluster_wide_turn(name: str) -> Iterator[None]:
    """Replication slots belong to the whole cluster, not to a test's database: two
    workers running this probe at once (its native and Python runs) would take the same
    slot name.  A file lock in the temp directory gives each its turn."""
    with open(Path(tempfile.gettempdir()) / f"warden-test-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def test_temporary_replication_slot_named_after_email(both: Any, admin: Any) -> None:
    """Slot names allow [a-z0-9_]: translate() keeps the email readable. A temporary slot
    (not transactional) goes away with the session."""

    def attack(conn: psycopg.Connection[Any]) -> Any:
        conn.execute(
            "SELECT pg_create_physical_replication_slot(translate(email, '@.', '__'), false, "
            "true) FROM customers WHERE id = 1"
        )
        try:
            return conn.execute(
                "SELECT translate(slot_name, '_', '.') FROM pg_replication_slots"
            ).fetchall()
        finally:
            conn.execute("SELECT pg_drop_replication_slot('grace_1_example_com')")

    with _cluster_wide_turn("replication-slot"):
        assert_attack_controlled(admin, both, attack, secret=EMAIL_AS_SLOT)


def test_denied_ssn_through_an_advisory_lock_is_refused(both: Any, admin: Any) -> None:
    attack = stores_then_reads(
        "SELECT pg_advisory_xact_lock(replace(ssn, '-', '')::bigint) FROM customers WHERE id = 1",
        read="SELECT substr(objid::text, 1, 3) || '-45-' || substr(objid::text, 6) "
        "FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
    )
    assert_attack_controlled(admin, both, attack, secret=SSN, refused=True)


# ----------------------------------------------------------------------------------------
# Probes that held when tried (kept as regression tests)
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sql", SAFE_OUTPUT)
def test_masked_output_spellings(both: Any, sql: str) -> None:
    with both.connect("alice") as conn:
        for outcome in _both_protocols(conn, sql):
            assert_no_leak(outcome, sql)


def test_binary_and_text_formats_in_one_result(both: Any) -> None:
    """psycopg binary=True asks binary for every column: masked ones must become NULL (or a
    masked text), never the raw value in binary form."""
    sql = 'SELECT id, email, card, birth_date, "Secret Note", name FROM customers ORDER BY id'
    with both.connect("alice") as conn:
        binary = conn.execute(sql, binary=True).fetchall()
        text = conn.execute(sql).fetchall()
    for row in binary + text:
        assert not EMAIL.search(str(row[1] or "")), row
        assert not DOB.search(str(row[3] or "")), row
        assert row[4] is None or "note" not in str(row[4]), row
        assert row[5], row  # unmasked columns still come back


def test_year_mask_under_other_datestyles(both: Any) -> None:
    with both.connect("alice") as conn:
        for style in ("SQL, DMY", "German", "Postgres, MDY", "ISO, YMD"):
            conn.execute(f"SET DateStyle = '{style}'")
            for outcome in _both_protocols(conn, "SELECT birth_date FROM customers"):
                assert outcome.error is None, outcome
                for (value,) in outcome.rows or ():
                    text = str(value or "")
                    assert (
                        value is None
                        or text.endswith(("01-01", "01/01"))
                        or ("-01-01" in text or "01.01." in text)
                    ), (style, value)


@pytest.mark.parametrize(
    ("value", "forbidden"),
    [
        ("a@b@secretpart.example.org", "b@"),
        ("@only-domain.example", "only-domain"),
        ("no-at-sign-secret", "secret"),
        ("ünïcødé.ßecret@exämple.com", "ßecret"),
        ("", None),
    ],
)
def test_email_mask_on_odd_values(both: Any, value: str, forbidden: str | None) -> None:
    """The alice's own row inserted in a rolled-back transaction: the email method shows the
    domain only (the part after the last @), nothing of the local part."""
    with both.connect("alice") as conn, rolled_back(conn):
        conn.execute("INSERT INTO customers (name, email) VALUES ('rt3', %s)", (value,))
        for outcome in _both_protocols(conn, "SELECT email FROM customers WHERE name = 'rt3'"):
            assert outcome.error is None, outcome
            (masked,) = outcome.rows[0] if outcome.rows else (None,)
            if forbidden is not None:
                assert forbidden not in str(masked), (value, masked)
            assert masked != value or value == "", (value, masked)


# Card digits as FULLWIDTH DIGIT characters (decimal digits to Python and to the C path).
FULLWIDTH_CARD = "".join(chr(0xFF10 + int(c)) if c.isdigit() else c for c in "1234-5678-9012-3456")


@pytest.mark.parametrize(
    "card",
    ["4111-1111-1111-1234", "4111111111111234", "x", FULLWIDTH_CARD, "12"],
)
def test_partial_card_mask_on_odd_values(both: Any, card: str) -> None:
    with both.connect("alice") as conn, rolled_back(conn):
        conn.execute("INSERT INTO customers (name, card) VALUES ('rt3', %s)", (card,))
        for outcome in _both_protocols(conn, "SELECT card FROM customers WHERE name = 'rt3'"):
            assert outcome.error is None, outcome
            masked = str(outcome.rows[0][0]) if outcome.rows else ""
            digits = [c for c in card if c.isdecimal()]
            shown = [c for c in masked if c.isdecimal()]
            assert len(shown) <= 4, (card, masked)
            if len(digits) > 4:
                assert masked != card, (card, masked)


@pytest.mark.parametrize(
    "read",
    ["SELECT email, birth_date FROM customers", "SELECT email, birth_date FROM ONLY customers"],
)
def test_temp_child_table_of_customers(both: Any, admin: Any, read: str) -> None:
    """A temporary child of customers does not change how its parent's rows are masked
    (copying rows into the child: COPIES_INTO_OWN_TABLES)."""
    attack = stores_then_reads("CREATE TEMP TABLE rt3_kid () INHERITS (customers)", read=read)
    assert_attack_controlled(admin, both, attack, secret=(EMAIL, DOB))


COPIES_INTO_OWN_TABLES = [
    pytest.param(
        (
            "CREATE TEMP TABLE rt3_kid () INHERITS (customers)",
            "INSERT INTO rt3_kid SELECT * FROM ONLY customers",
        ),
        "SELECT email FROM rt3_kid",
        id="temp_child_table",
    ),
    pytest.param(
        (
            "CREATE TEMP TABLE rt3_like (LIKE customers INCLUDING ALL)",
            "INSERT INTO rt3_like SELECT * FROM customers",
        ),
        "SELECT email FROM rt3_like",
        id="like_including_all",
    ),
    pytest.param(
        (
            "INSERT INTO customers (id, name) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE "
            "SET name = customers.email RETURNING name",
        ),
        "SELECT name FROM customers WHERE id = 1",
        id="on_conflict_do_update_copying_email",
    ),
    pytest.param(
        (
            "CREATE FUNCTION pg_temp.rt3_f() RETURNS text LANGUAGE sql AS "
            "$$ SELECT string_agg(email, ',') FROM customers $$",
        ),
        "SELECT pg_temp.rt3_f()",
        id="temp_function_reading_emails",
    ),
    pytest.param(
        (
            "CREATE OR REPLACE FUNCTION pg_temp.upper(text) RETURNS text LANGUAGE sql AS "
            "$$ SELECT $1 $$",
        ),
        "SELECT pg_temp.upper(email) FROM customers",
        id="temp_function_shadowing_upper",
    ),
]


@pytest.mark.parametrize(("statements", "read"), COPIES_INTO_OWN_TABLES)
def test_copying_masked_data_into_own_tables_or_functions_is_refused(
    both: Any, admin: Any, statements: tuple[str, ...], read: str
) -> None:
    attack = stores_then_reads(*statements, read=read)
    assert_attack_controlled(admin, both, attack, secret=EMAIL, refused=True)


def test_on_conflict_do_update_returning_masked_columns(both: Any, admin: Any) -> None:
    sql = (
        "INSERT INTO customers (id, name) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE "
        "SET score = customers.score RETURNING email, birth_date, card, customers.*"
    )
    assert_attack_controlled(admin, both, stores_then_reads(read=sql), secret=(EMAIL, CARD))


def test_denied_ssn_in_group_key_and_set_returning_function(both: Any) -> None:
    with both.connect("alice") as conn:
        for sql in (
            "SELECT count(*) FROM customers GROUP BY ssn",
            "SELECT regexp_split_to_table(ssn, '-') FROM customers",
            "SELECT DISTINCT ON (ssn) id FROM customers",
        ):
            outcome = run(conn, sql)
            assert not SSN.search(str(outcome.rows)), outcome
            assert_refused(outcome, sql)
