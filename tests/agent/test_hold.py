"""Statements that need approval: the agent files an access request with the control plane,
tells the client which, and refuses at once or waits (``--hold-wait``) for the review."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

HELD_SQL = "SELECT id, email FROM public.customers ORDER BY id LIMIT 3"


def _review_when_filed(plane: Any, state: str, *, delay: float = 0.3) -> threading.Thread:
    """A reviewer in another thread: decide request 1 as soon as the agent has filed it."""

    def review() -> None:
        deadline = time.monotonic() + 10
        while 1 not in plane.access_requests and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(delay)
        plane.review(1, state)

    thread = threading.Thread(target=review, daemon=True)
    thread.start()
    return thread


def _notices(conn: psycopg.Connection[Any]) -> list[str]:
    seen: list[str] = []
    conn.add_notice_handler(lambda diag: seen.append(diag.message_primary or ""))
    return seen


def test_held_statement_files_a_request_and_is_refused_naming_it(agent: Any, control_plane: Any):
    with agent.connect("carol") as conn:
        notices = _notices(conn)
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
            conn.execute(HELD_SQL)
    message = str(refused.value)
    review_url = f"{control_plane.url}/approvals/1/"
    assert "held for approval: request 1" in message
    assert review_url in message
    assert notices == [f"Warden: held for approval: request 1 (review at {review_url})"]
    filed = control_plane.access_requests[1]
    assert filed["identity"] == "carol"
    assert filed["datasource"] == "shop"
    assert filed["statement"] == HELD_SQL
    assert filed["fingerprint"]
    assert filed["level"] == "read"
    assert filed["scope"] == {}
    assert filed["reason"].startswith("held by the Warden agent: ")


def test_holding_the_same_statement_again_reuses_the_pending_request(
    agent: Any, control_plane: Any
):
    for _ in range(2):
        with agent.connect("carol") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(HELD_SQL)
    assert list(control_plane.access_requests) == [1]


def test_a_write_is_filed_as_write_access(agent: Any, control_plane: Any):
    with agent.connect("carol") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("UPDATE customers SET name = 'x' WHERE email = 'ada.1@example.com'")
    assert control_plane.access_requests[1]["level"] == "write"


def test_held_statement_runs_once_approved_while_the_client_waits(
    agent_factory: Any, control_plane: Any
):
    agent = agent_factory(hold_wait=10)
    reviewer = _review_when_filed(control_plane, "approved")
    with agent.connect("carol") as conn:
        notices = _notices(conn)
        started = time.monotonic()
        rows = conn.execute(HELD_SQL).fetchall()
    reviewer.join()
    assert time.monotonic() - started < 5
    assert notices and "held for approval: request 1" in notices[0]
    # A read grant lifts the approval requirement; the email stays masked by default.
    assert [row[0] for row in rows] == [1, 2, 3]
    assert all(row[1] and "@example.com" not in row[1] for row in rows)
    with agent.connect("carol") as conn:  # a retry from a new connection needs no new review
        assert len(conn.execute(HELD_SQL).fetchall()) == 3
    assert list(control_plane.access_requests) == [1]


def test_held_parse_runs_once_approved_over_the_extended_protocol(
    agent_factory: Any, control_plane: Any
):
    agent = agent_factory(hold_wait=10)
    _review_when_filed(control_plane, "approved")
    with agent.connect("carol") as conn:
        rows = conn.execute("SELECT id, email FROM public.customers WHERE id = %s", [2]).fetchall()
    assert [row[0] for row in rows] == [2]
    assert "@example.com" not in rows[0][1]


def test_denied_request_refuses_the_waiting_statement(agent_factory: Any, control_plane: Any):
    agent = agent_factory(hold_wait=10)
    _review_when_filed(control_plane, "denied")
    with agent.connect("carol") as conn:
        refused = r"request 1 .* was rejected"
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=refused):
            conn.execute(HELD_SQL)
        assert conn.execute("SELECT 1").fetchone() == (1,)  # the session goes on


def test_waiting_ends_with_a_clear_error_when_nobody_reviews(
    agent_factory: Any, control_plane: Any
):
    agent = agent_factory(hold_wait=0.6)
    with agent.connect("carol") as conn:
        started = time.monotonic()
        with pytest.raises(
            psycopg.errors.InsufficientPrivilege, match=r"still pending after 0\.6 s"
        ):
            conn.execute(HELD_SQL)
    assert 0.5 < time.monotonic() - started < 3


def test_unreachable_control_plane_fails_closed_without_running_the_statement(
    agent_factory: Any, control_plane: Any, pg_database: str
):
    agent = agent_factory(hold_wait=10)
    with agent.connect("carol") as conn:
        control_plane.down = True
        try:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="unreachable"):
                conn.execute("UPDATE customers SET name = 'held' WHERE id = 4 AND email <> ''")
        finally:
            control_plane.down = False
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=pg_database) as direct:
        name = direct.execute("SELECT name FROM customers WHERE id = 4").fetchone()
    assert name is not None and name[0] != "held"


def test_control_plane_lost_while_waiting_fails_closed(agent_factory: Any, control_plane: Any):
    agent = agent_factory(hold_wait=10)

    def go_down() -> None:
        while 1 not in control_plane.access_requests:
            time.sleep(0.02)
        control_plane.down = True
        control_plane.review(1, "pending")  # wake the long-poll so the next one fails

    threading.Thread(target=go_down, daemon=True).start()
    try:
        with (
            agent.connect("carol") as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege, match="lost contact"),
        ):
            conn.execute(HELD_SQL)
    finally:
        control_plane.down = False


def test_cancel_request_stops_waiting_for_the_review(agent_process_factory: Any):
    agent = agent_process_factory("--hold-wait", "30")
    with psycopg.connect(agent.dsn("carol"), autocommit=True) as conn:
        threading.Timer(0.5, conn.cancel).start()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute(HELD_SQL)
        assert time.monotonic() - started < 5
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_other_sessions_keep_working_while_statements_wait(agent_factory: Any, control_plane: Any):
    agent = agent_factory(hold_wait=5)
    waiting: list[str] = []

    def held_client() -> None:
        with agent.connect("carol") as conn:
            try:
                conn.execute(HELD_SQL)
            except psycopg.errors.InsufficientPrivilege as exc:
                waiting.append(str(exc))

    clients = [threading.Thread(target=held_client) for _ in range(3)]
    for client in clients:
        client.start()
    deadline = time.monotonic() + 10
    while control_plane.filings < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    with agent.connect("alice") as conn:  # a new login, a query: not queued behind the holds
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (50,)
    assert time.monotonic() - started < 1
    control_plane.review(1, "denied")
    for client in clients:
        client.join(10)
    assert len(waiting) == 3 and all("was rejected" in message for message in waiting)
    assert list(control_plane.access_requests) == [1]  # one request for the three holds
