"""Hostile suite: every way we could think of to read a masked column unmasked."""

from __future__ import annotations

import re
from typing import Any

import psycopg
import pytest

from tests.agent.corpus import LEAK_ATTEMPTS


@pytest.fixture
def agent(agent_on_both_paths: Any) -> Any:
    """Every test here runs on the native data path and on the pure-Python one."""
    return agent_on_both_paths


EMAIL = re.compile(r"[a-z]+\.\d+@example\.com", re.IGNORECASE)


def _leaks(rows: list[tuple[Any, ...]]) -> list[str]:
    found = []
    for row in rows:
        for value in row:
            text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            if EMAIL.search(text) or EMAIL.search(
                bytes.fromhex(text).decode(errors="replace") if _is_hex(text) else ""
            ):
                found.append(text)
    return found


def _is_hex(text: str) -> bool:
    return len(text) % 2 == 0 and bool(re.fullmatch(r"[0-9a-f]+", text))


def _run(conn: psycopg.Connection[Any], sql: str, **kwargs: Any) -> list[tuple[Any, ...]] | str:
    """Rows, or the SQLSTATE when the agent refused the statement."""
    try:
        cur = conn.execute(sql, **kwargs)
        return cur.fetchall() if cur.description else []
    except psycopg.Error as exc:
        return str(exc.sqlstate)


@pytest.mark.parametrize("sql", LEAK_ATTEMPTS)
def test_derived_output_never_leaks_an_email(agent: Any, sql: str) -> None:
    with agent.connect("alice") as conn:
        result = _run(conn, sql)
    assert isinstance(result, str) or not _leaks(result), f"leaked via {sql!r}: {result[:3]}"
    if isinstance(result, str):
        assert result in ("42501", "42601")


def test_direct_email_column_is_masked_with_the_rule_method(agent: Any) -> None:
    with agent.connect("alice") as conn:
        rows = conn.execute("SELECT email, name FROM customers ORDER BY id").fetchall()
    assert all(row[0] == "****@example.com" for row in rows)
    assert rows[0][1] and "*" not in rows[0][1]


def test_star_select_masks_each_column_by_its_own_rule(agent: Any) -> None:
    with agent.connect("alice") as conn:
        cur = conn.execute(
            "SELECT id, name, email, phone, card, birth_date FROM customers ORDER BY id LIMIT 1"
        )
        row = cur.fetchone()
    assert row is not None
    _, _name, email, phone, card, birth_date = row
    assert email == "****@example.com"
    assert phone.endswith(phone[-4:]) and phone.count("*") == len(phone) - 4
    assert re.fullmatch(r"XXXX-XXXX-XXXX-\d{4}", card)
    assert birth_date.month == 1 and birth_date.day == 1


def test_ssn_is_denied_even_in_a_filter(agent: Any) -> None:
    with agent.connect("alice") as conn:
        assert _run(conn, "SELECT ssn FROM customers") == "42501"
        assert _run(conn, "SELECT id FROM customers WHERE ssn LIKE '1%'") == "42501"
        assert _run(conn, "SELECT * FROM customers") == "42501"


def test_filtering_on_a_masked_column_is_refused_by_default(agent: Any) -> None:
    """The inference rules hold on both data paths (test_redteam_inference.py has them all)."""
    with agent.connect("alice") as conn:
        assert _run(conn, "SELECT id FROM customers WHERE email LIKE 'ada%'") == "42501"
        assert _run(conn, "SELECT id FROM customers WHERE id < 3 ORDER BY 1") != "42501"


@pytest.mark.parametrize(
    "sql",
    [
        "COPY customers (email) TO STDOUT",
        "COPY (SELECT email FROM customers) TO STDOUT",
        "COPY (SELECT upper(email) FROM customers) TO STDOUT WITH (FORMAT csv)",
        "COPY (SELECT * FROM customer_contacts) TO STDOUT (FORMAT csv, HEADER)",
    ],
)
def test_copy_out_of_masked_columns_gives_masked_rows(agent: Any, admin: Any, sql: str) -> None:
    with admin.cursor().copy(sql) as copy:  # the control: the real addresses are there
        assert b".1@example.com" in b"".join(bytes(chunk) for chunk in copy).lower()
    with agent.connect("alice") as conn, conn.cursor().copy(sql) as copy:
        data = b"".join(bytes(chunk) for chunk in copy)
    assert data.count(b"\n") in (50, 51)  # with the header line
    assert b".1@example.com" not in data.lower() and b"ada" not in data.lower()


def test_copy_of_a_table_with_a_denied_column_is_refused(agent: Any) -> None:
    with (
        agent.connect("alice") as conn,
        pytest.raises(psycopg.Error, match="ssn") as info,
        conn.cursor().copy("COPY customers TO STDOUT") as copy,
    ):
        for _ in copy:
            pass
    assert info.value.sqlstate == "42501"


def test_copy_of_plain_columns_works(agent: Any) -> None:
    with (
        agent.connect("alice") as conn,
        conn.cursor().copy("COPY (SELECT id, name FROM customers ORDER BY id) TO STDOUT") as copy,
    ):
        data = b"".join(bytes(chunk) for chunk in copy)
    assert data.count(b"\n") == 50


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO scratch (id, v) SELECT id, email FROM customers",
        "CREATE TEMP TABLE stolen AS SELECT email FROM customers",
        "SELECT email INTO TEMP stolen2 FROM customers",
        "UPDATE scratch SET v = (SELECT email FROM customers LIMIT 1) WHERE id = 1",
        "PREPARE p AS SELECT email FROM customers",
        "CREATE VIEW sneaky AS SELECT email FROM customers; SELECT * FROM sneaky",
    ],
)
def test_copying_masked_data_into_storage_is_denied(agent: Any, sql: str) -> None:
    with agent.connect("alice") as conn:
        assert _run(conn, sql) in ("42501",)


def test_a_view_created_through_the_agent_is_masked_afterwards(agent: Any) -> None:
    with agent.connect("alice") as conn:
        conn.execute("CREATE TEMP VIEW sneaky2 AS SELECT id, email AS e FROM customers")
        result = _run(conn, "SELECT e, upper(e) FROM sneaky2")
        assert isinstance(result, str) or not _leaks(result)


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO customers (name, email) VALUES ('Eve', 'eve.1@example.com') RETURNING email",
        "INSERT INTO customers (name, email) VALUES ('Eve', 'eve.2@example.com') RETURNING *",
        "UPDATE customers SET score = score WHERE id = 1 RETURNING email, id",
        "DELETE FROM orders WHERE id = -1 RETURNING *",
    ],
)
def test_returning_never_leaks(agent: Any, sql: str) -> None:
    with agent.connect("alice") as conn:
        result = _run(conn, sql)
    assert isinstance(result, str) or not _leaks(result)


def test_prepared_statements_over_extended_protocol_are_masked(agent: Any) -> None:
    with agent.connect("alice") as conn:
        for _ in range(3):  # psycopg prepares server-side after repeated use
            rows = conn.execute(
                "SELECT email, upper(email) FROM customers WHERE id = %s", (1,), prepare=True
            ).fetchall()
            assert rows[0][0] == "****@example.com"
            assert not _leaks(rows)


def test_binary_result_format_masked_columns_come_back_null(agent: Any) -> None:
    with agent.connect("alice") as conn:
        cur = conn.cursor(binary=True)
        rows = cur.execute(
            "SELECT id, email, upper(email) FROM customers WHERE id < %s", (5,)
        ).fetchall()
    assert rows and all(row[1] is None and row[2] is None for row in rows)
    assert all(isinstance(row[0], int) for row in rows)


def test_search_path_change_does_not_unmask(agent: Any) -> None:
    with agent.connect("alice") as conn:
        conn.execute("SET search_path = archive, public")
        rows = conn.execute("SELECT email, upper(email) FROM customers").fetchall()
    assert not _leaks(rows)


def test_quoted_identifier_column_is_masked(agent: Any) -> None:
    with agent.connect("alice") as conn:
        rows = conn.execute('SELECT "Secret Note", upper("Secret Note") FROM customers').fetchall()
    assert all(row[0] in ("****", None) for row in rows)  # NULL stays NULL
    assert all(row[1] in ("****", None) for row in rows)
    assert any(row[0] == "****" for row in rows)


def test_root_sees_unmasked_data(agent: Any) -> None:
    with agent.connect("root") as conn:
        rows = conn.execute("SELECT email, upper(email) FROM customers").fetchall()
    assert all(EMAIL.search(email) and EMAIL.search(upper) for email, upper in rows if email)


def test_listen_is_refused_while_columns_are_restricted(agent: Any) -> None:
    """Notifications carry what other sessions' triggers put in them, unseen by the agent."""
    with (
        agent.connect("alice") as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="cannot inspect"),
    ):
        conn.execute("LISTEN orders_changed")


def test_non_text_masked_column_becomes_null_not_garbage(agent: Any) -> None:
    with agent.connect("bob") as conn:
        rows = conn.execute("SELECT birth_date, email FROM customers LIMIT 3").fetchall()
    assert all(row[0].month == 1 for row in rows)
    assert all(row[1] == "****" for row in rows)  # default action: redact


def test_user_defined_functions_are_opaque_and_refused(agent: Any, pg_database: str) -> None:
    with psycopg.connect(
        host="127.0.0.1", user="postgres", dbname=pg_database, autocommit=True
    ) as admin:
        admin.execute(
            "CREATE OR REPLACE FUNCTION first_email() RETURNS text LANGUAGE sql AS "
            "'SELECT email FROM customers ORDER BY id LIMIT 1'"
        )
        admin.execute(
            "CREATE OR REPLACE FUNCTION all_customers() RETURNS SETOF customers "
            "LANGUAGE sql AS 'SELECT * FROM customers'"
        )
    with agent.connect("alice") as conn:
        assert _run(conn, "SELECT first_email()") == "42501"
        assert _run(conn, "SELECT email FROM all_customers()") == "42501"
        assert _run(conn, "SELECT upper(name) FROM customers LIMIT 1") != "42501"
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="cannot inspect"):
            conn.execute("SELECT first_email()")
