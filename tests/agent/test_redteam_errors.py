"""Red-team probes of errors and notices: the server's error, warning and notice texts
quote values (a failed cast, a constraint's DETAIL, pg_cancel_backend's warning), so for
statements touching restricted columns the agent withholds them, also through views,
cursors, prepared statements and Parse/Bind errors.

Every test asserts the *secure* behaviour, so a failing test is a finding.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest

from agent.postgres import codec
from tests.agent.corpus import ERROR_ORACLES, VIEW_ERROR_ORACLES
from tests.agent.wire import (
    CARD,
    DOB,
    EMAIL,
    SECRETS,
    WireClient,
    assert_no_leak,
    assert_refused,
    bind,
    execute,
    parse,
    run,
)
from tests.agent.wire import error_text as _error_text
from tests.agent.wire import secret_in as _secret_in


@pytest.fixture
def agent(agent_on_both_paths: Any) -> Any:
    """Every test here runs on the native data path and on the pure-Python one."""
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
# Error-message oracles: the upstream ErrorResponse is relayed unchanged
# ----------------------------------------------------------------------------------------


# Some errors quote only the start of a value (`invalid value "grac" for "YYYY"`, a JSON
# token): the start of a customer's first name in quotes is as much a leak there
# (the first three letters of the names the test rows' e-mails start with).
PARTIAL_EMAIL = re.compile(r'"(ada|gra|lin|eds|bar|ken|mar|ala)', re.IGNORECASE)


def _error_oracle_control(admin: Any, sql: str, **kwargs: Any) -> None:
    """Directly on the server (the unrestricted path, rolled back), the oracle's error quotes
    a secret: the probe really reads one (it cannot pass for alice by accident)."""
    admin.execute("BEGIN")
    try:
        control = run(admin, sql, **kwargs)
    finally:
        admin.execute("ROLLBACK")
    assert control.error is not None, f"the oracle raises nothing unmasked: {sql!r} {control!r}"
    assert control.leaked((*SECRETS, PARTIAL_EMAIL)), f"no secret unmasked: {sql!r} {control!r}"


@pytest.mark.parametrize("sql", ERROR_ORACLES)
def test_error_text_does_not_carry_a_masked_value(agent: Any, admin: Any, sql: str) -> None:
    _error_oracle_control(admin, sql)
    with agent.connect("alice") as conn:
        outcome = run(conn, sql)
    assert_no_leak(outcome, sql)
    assert not outcome.leaked((PARTIAL_EMAIL,)), f"partial leak via {sql!r}: {outcome!r}"


@pytest.mark.parametrize("sql", ERROR_ORACLES[:3])
def test_error_oracle_extended_protocol(agent: Any, admin: Any, sql: str) -> None:
    _error_oracle_control(admin, sql, prepare=True)
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
# NoticeResponse / WARNING texts carry values: they are relayed unchanged
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
# Error texts of statements the agent does not count as touching restricted columns
# ----------------------------------------------------------------------------------------


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
# Error withholding: Parse/Bind errors and kept classes
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
