"""Red-team probes of errors and notices: the server's error, warning and notice texts
quote values (a failed cast, a constraint's DETAIL, pg_cancel_backend's warning), so for
statements touching restricted columns the agent withholds them, also through views,
cursors, prepared statements and Parse/Bind errors.

Every test asserts the *secure* behaviour, so a failing test is a finding.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import psycopg
import pytest

from agent.postgres import codec
from tests.agent.corpus import ERROR_ORACLES, VIEW_ERROR_ORACLES
from tests.agent.wire import (
    CARD,
    DOB,
    EMAIL,
    LEGITIMATE_SQL,
    SECRETS,
    SSN,
    WireClient,
    assert_attack_controlled,
    assert_no_leak,
    assert_reads_secret_unmasked_by,
    bind,
    error_of,
    execute,
    named_attack,
    parse,
    rows,
    run,
)
from tests.agent.wire import error_text as _error_text
from tests.agent.wire import secret_in as _secret_in


@pytest.fixture
def agent(agent_on_both_paths: Any) -> Any:
    """Every test here runs on the native data path and on the pure-Python one."""
    return agent_on_both_paths


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


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT ssn::int FROM customers",
        "SELECT id FROM customers WHERE ssn::int = 1",
        # was substr(ssn, 1, 2): a duplicate two-digit prefix quotes no SSN
        "CREATE UNIQUE INDEX rt_uq2 ON customers ((ssn::int))",
    ],
)
def test_ssn_error_oracles_are_denied(agent: Any, admin: Any, sql: str) -> None:
    assert_attack_controlled(admin, agent, error_of(sql), secret=SSN, refused=True)


# ----------------------------------------------------------------------------------------
# NoticeResponse / WARNING texts carry values: they are relayed unchanged
# ----------------------------------------------------------------------------------------

_PID = re.compile(r"PID (\d+) is not a PostgreSQL")


def _decode_pids(notices: list[str], base: int = 1_000_000_000) -> list[int]:
    return [int(m.group(1)) - base for n in notices for m in [_PID.search(n)] if m]


def _spelled_by_warnings(template: str, **kwargs: Any) -> Any:
    """An attack spelling a value one character per statement, as the pid of a WARNING
    ('PID <n> is not a PostgreSQL backend process')."""

    def attack(conn: psycopg.Connection[Any]) -> Any:
        notices = _notices(conn)
        for k in range(1, 20):
            outcome = run(conn, template.format(k=k), **kwargs)
            if outcome.refused_by_agent:
                raise outcome.error  # type: ignore[misc]
        return "".join(chr(c) for c in _decode_pids(notices) if 0 < c < 0x110000)

    attack.__name__ = template
    return attack


def test_warning_from_pg_cancel_backend_spells_out_a_masked_email(both: Any, admin: Any) -> None:
    """pg_cancel_backend(pid) WARNs 'PID <n> is not a PostgreSQL backend process' for a
    pid that is no backend: one character of the email per statement, rebuilt."""
    attack = _spelled_by_warnings(
        "SELECT pg_cancel_backend(1000000000 + ascii(substr(email, {k}, 1))) "
        "FROM customers WHERE id = 1"
    )
    assert_attack_controlled(admin, both, attack, secret=EMAIL)


def test_warning_from_pg_cancel_backend_carries_the_full_birth_date(both: Any, admin: Any) -> None:
    """birth_date is masked to the year; the day number travels in a WARNING."""
    sql = (
        "SELECT pg_cancel_backend(1000000000 + (birth_date - date '1900-01-01')) "
        "FROM customers WHERE id = 1"
    )

    def attack(conn: psycopg.Connection[Any]) -> Any:
        notices = _notices(conn)
        outcome = run(conn, sql)
        if outcome.refused_by_agent:
            raise outcome.error  # type: ignore[misc]
        days = _decode_pids(notices)
        return [str(date(1900, 1, 1) + timedelta(days=d)) for d in days]

    assert_attack_controlled(admin, both, named_attack(attack, sql), secret=DOB)


def test_warning_leak_via_extended_protocol(agent: Any, admin: Any) -> None:
    attack = _spelled_by_warnings(
        "SELECT pg_log_backend_memory_contexts(1000000000 + ascii(substr(card, {k}, 1)))"
        " FROM customers WHERE id = 1",
        prepare=True,
    )
    assert_attack_controlled(admin, agent, attack, secret=CARD)


def test_notice_of_denied_ssn_is_refused(agent: Any, admin: Any) -> None:
    attack = _spelled_by_warnings(
        "SELECT pg_cancel_backend(1000000000 + ascii(substr(ssn, {k}, 1))) "
        "FROM customers WHERE id = 1"
    )
    assert_attack_controlled(admin, agent, attack, secret=SSN, refused=True)


# ----------------------------------------------------------------------------------------
# Error texts of statements the agent does not count as touching restricted columns
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sql", VIEW_ERROR_ORACLES)
def test_error_text_through_a_view(both: Any, admin: Any, sql: str) -> None:
    assert_attack_controlled(admin, both, error_of(sql), secret=(*SECRETS, PARTIAL_EMAIL))


def test_error_text_through_a_view_extended(agent: Any, admin: Any) -> None:
    attack = error_of(VIEW_ERROR_ORACLES[0], prepare=True)
    assert_attack_controlled(admin, agent, attack, secret=EMAIL)


TEMP_VIEW = (
    "CREATE TEMP VIEW rt2_v AS SELECT id, card AS c FROM customers",
    "SELECT id FROM rt2_v WHERE c::int = 1",
)


@pytest.mark.parametrize("transaction", [False, True], ids=["autocommit", "in_transaction"])
def test_error_text_through_a_temp_view_created_by_the_client(
    agent: Any, admin: Any, transaction: bool
) -> None:
    attack = error_of(*TEMP_VIEW, transaction=transaction)
    assert_attack_controlled(admin, agent, attack, secret=CARD)


ERRORS_OF_STATEMENTS_NAMING_NO_TABLE = [
    # DECLARE only plans; the cast fails at FETCH, whose statement names no table.
    pytest.param(
        (
            "DECLARE rt2_cur CURSOR FOR SELECT id FROM customers WHERE email::int = 1",
            "FETCH ALL FROM rt2_cur",
        ),
        id="fetch_of_a_cursor",
    ),
    pytest.param(
        (
            "DECLARE rt2_cur2 SCROLL CURSOR FOR SELECT id FROM customers WHERE card::int = 1",
            "MOVE FORWARD ALL IN rt2_cur2",
        ),
        id="move_of_a_cursor",
    ),
    pytest.param(
        ("PREPARE rt2_pp AS SELECT id FROM customers WHERE email::int = 1", "EXECUTE rt2_pp"),
        id="execute_of_sql_prepared_statement",
    ),
    pytest.param(
        ("SELECT 1; SELECT id FROM customer_contacts WHERE email::int = 1",),
        id="second_statement_of_query_with_view",
    ),
    # Class 23 messages are kept (they name constraints): copying a masked column into a
    # unique temp table is denied anyway (a write flow).  The copy inserts one e-mail twice
    # (the e-mails are unique, so the old probe raised nothing to quote).
    pytest.param(
        (
            "CREATE TEMP TABLE rt2_u (v text UNIQUE)",
            "INSERT INTO rt2_u SELECT email FROM customers UNION ALL "
            "SELECT email FROM customers WHERE id = 1",
        ),
        id="unique_violation_of_temp_table_from_masked_values",
    ),
    # Through a view joined to customers, the birth date in an error (the old probe raised
    # no error at all).
    pytest.param(
        (
            "SELECT id FROM customer_contacts v JOIN customers c USING (id) "
            "WHERE to_char(c.birth_date, 'YYYY-MM-DD')::int = 1",
        ),
        id="view_error_for_dob",
    ),
]


@pytest.mark.parametrize("statements", ERRORS_OF_STATEMENTS_NAMING_NO_TABLE)
def test_error_text_of_statements_naming_no_restricted_table(
    agent: Any, admin: Any, statements: tuple[str, ...]
) -> None:
    assert_attack_controlled(admin, agent, error_of(*statements))


def _wire_error_text(client: WireClient, *messages: bytes) -> str:
    client.send(*messages)
    replies = client.until(b"Z")
    errors = [codec.parse_error_fields(p) for k, p in replies if k == b"E"]
    return " ".join(" ".join(e.values()) for e in errors)


def test_error_text_from_execute_of_a_named_portal_in_sql_cursor(agent: Any, admin: Any) -> None:
    """A SQL cursor is a portal: Execute it over the protocol.  The control FETCHes it."""
    declare = "DECLARE rt2_c3 CURSOR FOR SELECT id FROM customers WHERE email::int = 1"
    assert_reads_secret_unmasked_by(admin, error_of(declare, "FETCH ALL FROM rt2_c3"), EMAIL)
    client = WireClient(agent.port, "alice")
    _wire_error_text(client, codec.query("BEGIN"))
    _wire_error_text(client, codec.query(declare))
    text = _wire_error_text(client, execute("rt2_c3"), codec.SYNC)
    _wire_error_text(client, codec.query("ROLLBACK"))
    client.send(codec.query(LEGITIMATE_SQL))
    legitimate = rows(client.until(b"Z"))
    client.close()
    assert not _secret_in(text), f"error leaked: {text!r}"
    assert len(legitimate) == 3, "alice's legitimate work broke"


def test_parse_error_with_values_from_constant_folding(agent: Any, admin: Any) -> None:
    """Errors raised while planning (Parse) of a statement reading a masked column."""
    # was `email = $1 AND ...`: no e-mail equals 'x', so the cast never ran (no error)
    sql = "SELECT id FROM customers WHERE email <> $1 AND email::int = 0"
    control = run(admin, sql.replace("$1", "%s"), params=("x",))
    assert control.leaked((EMAIL,)), f"the probe raises no e-mail unrestricted: {control!r}"
    client = WireClient(agent.port, "alice")
    text = _wire_error_text(client, parse("", sql), bind("", "", (b"x",)), execute(""), codec.SYNC)
    client.send(codec.query(LEGITIMATE_SQL))
    legitimate = rows(client.until(b"Z"))
    client.close()
    assert not _secret_in(text), f"error leaked: {text!r}"
    assert len(legitimate) == 3, "alice's legitimate work broke"
