"""Rows read through a server-side cursor (COM_STMT_EXECUTE opens it, COM_STMT_FETCH reads
it) are masked like any other binary rows and count in their statement's audit event.

MariaDB Connector/Python issues COM_STMT_FETCH for a READ_ONLY cursor: one fetch of every
row when buffered, one fetch per row when not.  PyMySQL and mysqlclient never do (they
have no server-side prepared statements)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from mariadb.constants import CURSOR

from tests.agent.conftest import AgentProcess, ControlPlane
from tests.agent_mysql.conftest import connector_connection

SQL = "SELECT id, email FROM customers WHERE id <= ? ORDER BY id"


def _fetches(root: Any) -> int:
    with root.cursor() as cursor:
        cursor.execute("SHOW GLOBAL STATUS LIKE 'Com_stmt_fetch'")
        return int(cursor.fetchone()[1])


def _binary_row_bytes(id_: int, email: str) -> int:
    """A binary row as sent: header, null bitmap, INT as 4 bytes, the e-mail lenenc."""
    return 1 + 1 + 4 + 1 + len(email.encode())


@pytest.fixture
def alice(agent_process: AgentProcess, mysql_database: str) -> Iterator[Any]:
    """Alice on an agent in a subprocess: Connector/C holds the GIL while it waits."""
    conn = connector_connection(agent_process.port, mysql_database)
    yield conn
    conn.close()


def _audited(control_plane: ControlPlane) -> list[dict[str, Any]]:
    events = list(control_plane.events.values())
    return [e for e in events if e["identity"] == "alice" and e["statement"] == SQL]


@pytest.mark.parametrize("buffered", [True, False])
def test_rows_fetched_from_a_cursor_are_masked_and_counted_in_the_statement_event(
    control_plane: ControlPlane,
    mysql_database: str,
    root: Any,
    alice: Any,
    wait: Any,
    buffered: bool,
) -> None:
    with root.cursor() as direct:
        direct.execute(SQL.replace("?", "3"))
        assert "@example.com" in direct.fetchone()[1]  # the control: the secret is there
    fetches_before = _fetches(root)
    cursor = alice.cursor(cursor_type=CURSOR.READ_ONLY, buffered=buffered)
    cursor.execute(SQL, (3,))
    rows = []
    while (row := cursor.fetchone()) is not None:
        rows.append(row)
    cursor.close()
    assert rows == [(i, "****@example.com") for i in (1, 2, 3)]
    assert _fetches(root) - fetches_before >= (1 if buffered else 3)  # the rows came by FETCH
    wait(lambda: _audited(control_plane))
    expected_bytes = sum(_binary_row_bytes(*row) for row in rows)
    events = _audited(control_plane)
    audited = [(e["rows"], e["bytes"], e.get("error", False)) for e in events]
    assert audited == [(3, expected_bytes, False)]
    assert events[0]["masked_columns"] == [f"{mysql_database}.customers.email"]


def test_a_cursor_closed_before_its_end_is_audited_with_the_rows_it_sent(
    control_plane: ControlPlane, alice: Any, wait: Any
) -> None:
    cursor = alice.cursor(cursor_type=CURSOR.READ_ONLY, buffered=False)
    cursor.execute(SQL, (10,))
    taken = [cursor.fetchone(), cursor.fetchone()]
    cursor.close()  # COM_STMT_CLOSE with rows left on the cursor
    assert [email for _, email in taken] == ["****@example.com"] * 2
    wait(lambda: _audited(control_plane))
    expected_bytes = sum(_binary_row_bytes(*row) for row in taken)
    events = _audited(control_plane)
    assert [(e["rows"], e["bytes"]) for e in events] == [(2, expected_bytes)]


def test_a_connection_that_ends_with_a_cursor_open_is_audited_with_the_rows_it_sent(
    agent_process: AgentProcess, control_plane: ControlPlane, alice: Any, wait: Any
) -> None:
    cursor = alice.cursor(cursor_type=CURSOR.READ_ONLY, buffered=False)
    cursor.execute(SQL, (10,))
    taken = [cursor.fetchone(), cursor.fetchone()]
    with (
        pymysql.connect(
            host="127.0.0.1", port=agent_process.port, user="alice", password="wdn_alice"
        ) as other,
        other.cursor() as killing,
    ):
        killing.execute(f"KILL {alice.connection_id}")  # its upstream thread: the session ends
    wait(lambda: _audited(control_plane))
    expected_bytes = sum(_binary_row_bytes(*row) for row in taken)
    assert [(e["rows"], e["bytes"]) for e in _audited(control_plane)] == [(2, expected_bytes)]
