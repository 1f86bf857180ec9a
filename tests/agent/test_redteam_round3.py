"""Red-team probes, round three: side-effect sinks, catalog writes, masking-method edges.

Every test asserts the *secure* behaviour (no masked/denied value reaches the client in
clear, or the statement is refused), so a failing test is a finding.  Everything runs in
rolled-back transactions or on temporary objects: shared tables keep their rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.agent.wire import (
    DOB,
    EMAIL,
    SSN,
    Outcome,
    assert_no_leak,
    assert_refused,
    run,
)


@pytest.fixture
def both(agent_on_both_paths: Any) -> Any:
    return agent_on_both_paths


@contextlib.contextmanager
def rolled_back(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.execute("ROLLBACK")


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
# 1. Functions with side effects that store their argument where a later read finds it
#    (like set_config / pg_notify, which the agent treats as writes)
# ----------------------------------------------------------------------------------------


def test_large_object_written_from_email_then_read_from_pg_largeobject(both: Any) -> None:
    store = (
        "SELECT lo_from_bytea(0, convert_to(string_agg(email, ','), 'UTF8')) "
        "FROM customers WHERE id < 4"
    )
    with both.connect("alice") as conn, rolled_back(conn):
        stored = run(conn, store)
        if stored.error is not None:
            assert_refused(stored, store)
            return
        read = "SELECT convert_from(data, 'UTF8') FROM pg_largeobject"
        assert_no_leak(run(conn, read), f"{store}; {read}")


def test_large_object_lo_put_from_email_then_read_from_pg_largeobject(both: Any) -> None:
    store = "SELECT lo_put(lo_create(0), 0, convert_to(email, 'UTF8')) FROM customers WHERE id = 1"
    with both.connect("alice") as conn, rolled_back(conn):
        stored = run(conn, store)
        if stored.error is not None:
            assert_refused(stored, store)
            return
        read = "SELECT encode(data, 'escape') FROM pg_largeobject"
        assert_no_leak(run(conn, read), f"{store}; {read}")


def test_large_object_oid_chosen_from_birth_date(both: Any) -> None:
    store = "SELECT lo_create(to_char(birth_date, 'YYYYMMDD')::oid) FROM customers WHERE id = 1"
    with both.connect("alice") as conn, rolled_back(conn):
        stored = run(conn, store)
        if stored.error is not None:
            assert_refused(stored, store)
            return
        read = "SELECT oid::text FROM pg_largeobject_metadata"
        outcome = run(conn, read)
    assert not _dob_from_number(outcome.rows), f"DOB leaked via {store}: {outcome!r}"


def test_advisory_lock_key_from_birth_date_read_from_pg_locks(both: Any) -> None:
    store = (
        "SELECT pg_advisory_xact_lock(to_char(birth_date, 'YYYYMMDD')::bigint) "
        "FROM customers WHERE id = 1"
    )
    read = "SELECT objid::text FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
    with both.connect("alice") as conn, rolled_back(conn):
        stored = run(conn, store)
        if stored.error is not None:
            assert_refused(stored, store)
            return
        outcome = run(conn, read)
    assert not _dob_from_number(outcome.rows), f"DOB leaked via {store}: {outcome!r}"


def test_advisory_lock_two_keys_from_email_characters(both: Any) -> None:
    """Two int4 keys carry eight bytes of the email's local part per lock."""
    store = (
        "SELECT pg_advisory_xact_lock(('x' || encode(substr(convert_to(email, 'UTF8'), 1, 4),"
        " 'hex'))::bit(32)::int, ('x' || encode(substr(convert_to(email, 'UTF8'), 5, 4), "
        "'hex'))::bit(32)::int) FROM customers WHERE id = 1"
    )
    read = (
        "SELECT classid::int, objid::int FROM pg_locks WHERE locktype = 'advisory' "
        "AND pid = pg_backend_pid()"
    )
    with both.connect("alice") as conn, rolled_back(conn):
        stored = run(conn, store)
        if stored.error is not None:
            assert_refused(stored, store)
            return
        outcome = run(conn, read)
    decoded = [
        b"".join(int(v).to_bytes(4, "big", signed=False) for v in row).decode(errors="replace")
        for row in outcome.rows or ()
    ]
    real_prefix = "grace.1@"  # customers.id = 1 is "Grace Hopper", grace.1@example.com
    assert real_prefix not in decoded, f"email prefix leaked via advisory lock keys: {decoded}"


def test_temp_sequence_setval_from_birth_date(both: Any) -> None:
    store = "SELECT setval('rt3_seq', to_char(birth_date, 'YYYYMMDD')::bigint) FROM customers "
    store += "WHERE id = 1"
    with both.connect("alice") as conn, rolled_back(conn):
        created = run(conn, "CREATE TEMP SEQUENCE rt3_seq")
        assert created.error is None, created
        stored = run(conn, store)
        if stored.error is not None:
            assert_refused(stored, store)
            return
        outcome = run(conn, "SELECT last_value::text FROM rt3_seq")
    assert not _dob_from_number(outcome.rows), f"DOB leaked via {store}: {outcome!r}"


def test_replication_origin_named_after_email(both: Any) -> None:
    store = "SELECT pg_replication_origin_create(email) FROM customers WHERE id = 1"
    with both.connect("alice") as conn, rolled_back(conn):
        stored = run(conn, store)
        if stored.error is not None:
            assert_refused(stored, store)
            return
        read = "SELECT roname FROM pg_replication_origin"
        assert_no_leak(run(conn, read), f"{store}; {read}")


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
def test_set_config_in_a_filter_stores_the_email(both: Any, store: str) -> None:
    """set_config() is a value sink in the select list; in WHERE / ORDER BY / JOIN ON /
    GROUP BY it stores just the same."""
    with both.connect("alice") as conn:
        stored = run(conn, store)
        if stored.error is not None:
            assert_refused(stored, store)
            return
        for read in ("SELECT current_setting('rt3.x', true)", "SHOW rt3.x"):
            assert_no_leak(run(conn, read), f"{store}; {read}")


def test_temporary_replication_slot_named_after_email(both: Any) -> None:
    """Slot names allow [a-z0-9_]: translate() keeps the email readable. A temporary slot
    (not transactional) goes away with the session."""
    store = (
        "SELECT pg_create_physical_replication_slot(translate(email, '@.', '__'), false, true) "
        "FROM customers WHERE id = 1"
    )
    with both.connect("alice") as conn:
        stored = run(conn, store)
        if stored.error is not None:
            assert stored.sqlstate == "42501", stored
            return
        outcome = run(conn, "SELECT translate(slot_name, '_', '.') FROM pg_replication_slots")
    spelled = [str(r[0]) for r in outcome.rows or ()]
    assert "grace.1.example.com" not in spelled, f"email leaked as a slot name: {spelled}"


def test_denied_ssn_through_an_advisory_lock_is_refused(both: Any) -> None:
    store = (
        "SELECT pg_advisory_xact_lock(replace(ssn, '-', '')::bigint) FROM customers WHERE id = 1"
    )
    with both.connect("alice") as conn, rolled_back(conn):
        outcome = run(conn, store)
    assert_refused(outcome, store)


# ----------------------------------------------------------------------------------------
# 2. DML on system catalogs: DDL (rename, drop) without the DDL statement, and a rename the
#    static analysis (all the extended protocol has) does not know
# ----------------------------------------------------------------------------------------


def test_catalog_update_renaming_a_masked_column_is_not_allowed_silently(agent: Any) -> None:
    rename = (
        "UPDATE pg_attribute SET attname = 'rt3_e' "
        "WHERE attrelid = 'public.customers'::regclass AND attname = 'email'"
    )
    with agent.connect("alice") as conn, rolled_back(conn):
        outcome = run(conn, rename)
        if outcome.error is None:
            read = "SELECT rt3_e, upper(rt3_e) FROM customers ORDER BY id LIMIT 3"
            simple, extended = run(conn, read), run(conn, read, prepare=True)
            assert_no_leak(simple, f"{rename}; {read} (simple)")
            assert_no_leak(extended, f"{rename}; {read} (extended)")
    assert_refused(outcome, rename)


def test_catalog_update_renaming_customers_table_then_extended_read(agent: Any) -> None:
    rename = "UPDATE pg_class SET relname = 'rt3_c' WHERE oid = 'public.customers'::regclass"
    with agent.connect("alice") as conn, rolled_back(conn):
        outcome = run(conn, rename)
        if outcome.error is None:
            read = "SELECT email, birth_date::text, upper(email) FROM rt3_c ORDER BY id LIMIT 3"
            simple, extended = run(conn, read), run(conn, read, prepare=True)
            assert_no_leak(simple, f"{rename}; {read} (simple)")
            assert_no_leak(extended, f"{rename}; {read} (extended)")
    assert_refused(outcome, rename)


def test_catalog_delete_is_a_drop(agent: Any) -> None:
    """Deleting a relation's pg_class row drops it: the blocking 'drop' guardrail."""
    with agent.connect("alice") as conn:
        assert run(conn, "CREATE TEMP TABLE rt3_victim (id int)").error is None
        sql = "DELETE FROM pg_class WHERE relname = 'rt3_victim' AND relpersistence = 't'"
        with rolled_back(conn):
            outcome = run(conn, sql)
            gone = run(conn, "SELECT count(*) FROM pg_class WHERE relname = 'rt3_victim'")
    assert_refused(outcome, sql)
    assert gone.rows == [(1,)], gone


# ----------------------------------------------------------------------------------------
# 3. Probes that held when tried (kept as regression tests)
# ----------------------------------------------------------------------------------------

SAFE_OUTPUT = [
    # birth_date masked to the year: every other spelling of it is derived (redacted).
    "SELECT birth_date::text FROM customers",
    "SELECT birth_date::varchar FROM customers",
    "SELECT to_char(birth_date, 'YYYY-MM-DD') FROM customers",
    "SELECT extract(doy FROM birth_date), extract(month FROM birth_date) FROM customers",
    "SELECT date_trunc('day', birth_date) FROM customers",
    "SELECT age(birth_date), age(date '2000-01-01', birth_date)::text FROM customers",
    "SELECT birth_date - date '1900-01-01' FROM customers",
    "SELECT birth_date + 0 FROM customers",
    "SELECT birth_date::timestamp FROM customers",
    "SELECT make_date(2000, extract(month FROM birth_date)::int, 1) FROM customers",
    # Aggregates and group keys.
    "SELECT min(birth_date), max(email), min(card) FROM customers",
    "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY birth_date) FROM customers",
    "SELECT mode() WITHIN GROUP (ORDER BY card) FROM customers",
    "SELECT email, count(*) FROM customers GROUP BY email",
    "SELECT birth_date, count(*) FROM customers GROUP BY 1",
    "SELECT DISTINCT ON (email) email, birth_date FROM customers",
    'SELECT "Secret Note", count(*) FROM customers GROUP BY "Secret Note"',
    # Set-returning functions over masked columns.
    "SELECT unnest(ARRAY[email, card]) FROM customers",
    "SELECT regexp_split_to_table(email, '') FROM customers WHERE id = 1",
    "SELECT string_to_table(card, '-') FROM customers WHERE id = 1",
    "SELECT * FROM customers c, regexp_split_to_table(c.email, '@') p",
    "SELECT generate_subscripts(ARRAY[email], 1), ARRAY[email] FROM customers",
    # Inheritance spellings and system columns.
    "SELECT tableoid::regclass, email, birth_date FROM ONLY customers",
    "SELECT ctid, xmin, * FROM customers",
    # CASE as a value: derived, redacted (in a filter it is a known, allowed channel).
    "SELECT CASE WHEN email LIKE 'grace%' THEN email END FROM customers",
    "SELECT CASE id WHEN 1 THEN card ELSE 'x' END FROM customers",
    "SELECT COALESCE(\"Secret Note\", '') FROM customers",
]


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


def test_temp_child_table_of_customers(both: Any) -> None:
    with both.connect("alice") as conn, rolled_back(conn):
        assert run(conn, "CREATE TEMP TABLE rt3_kid () INHERITS (customers)").error is None
        for sql in (
            "SELECT email, birth_date FROM customers",
            "SELECT email, birth_date FROM ONLY customers",
            "SELECT * FROM rt3_kid",
        ):
            assert_no_leak(run(conn, sql), sql)
        copy = "INSERT INTO rt3_kid SELECT * FROM ONLY customers"
        assert_refused(run(conn, copy), copy)


def test_like_including_all_then_insert_select_is_refused(both: Any) -> None:
    with both.connect("alice") as conn, rolled_back(conn):
        created = run(conn, "CREATE TEMP TABLE rt3_like (LIKE customers INCLUDING ALL)")
        assert created.error is None, created
        copy = "INSERT INTO rt3_like SELECT * FROM customers"
        assert_refused(run(conn, copy), copy)


def test_on_conflict_do_update_returning_masked_columns(both: Any) -> None:
    sql = (
        "INSERT INTO customers (id, name) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE "
        "SET score = customers.score RETURNING email, birth_date, card, customers.*"
    )
    with both.connect("alice") as conn, rolled_back(conn):
        assert_no_leak(run(conn, sql), sql)


def test_on_conflict_do_update_copying_email_is_refused(both: Any) -> None:
    sql = (
        "INSERT INTO customers (id, name) VALUES (1, 'x') ON CONFLICT (id) DO UPDATE "
        "SET name = customers.email RETURNING name"
    )
    with both.connect("alice") as conn, rolled_back(conn):
        assert_refused(run(conn, sql), sql)


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE FUNCTION pg_temp.rt3_f() RETURNS text LANGUAGE sql AS "
        "$$ SELECT string_agg(email, ',') FROM customers $$",
        "CREATE OR REPLACE FUNCTION pg_temp.upper(text) RETURNS text LANGUAGE sql AS "
        "$$ SELECT $1 $$",
    ],
)
def test_temp_functions_are_refused(both: Any, sql: str) -> None:
    with both.connect("alice") as conn:
        assert_refused(run(conn, sql), sql)


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
