"""A full disk when a server-side cursor's audit event is written (at COM_STMT_CLOSE, or as
the session ends with cursors open): the agent in a subprocess, its state directory on a
real, filled tmpfs, MariaDB Connector/Python opening READ_ONLY cursors (COM_STMT_FETCH).

COM_STMT_CLOSE has no answer: the session ends without an ERR (one would be read as the
answer to the client's next command).  A session's end audits every open cursor whatever
the journal does, and still closes its sockets and leaves the agent's connections."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mariadb
import pytest
from mariadb.constants import CURSOR

from tests.agent.conftest import ControlPlane
from tests.agent.disks import fill, mounted_small_disk
from tests.agent_mysql.conftest import connector_connection

SQL = "SELECT id, email FROM customers WHERE id <= ? ORDER BY id"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_small_disk(tmp_path) as mount:
        yield mount


@pytest.fixture
def process(agent_process_factory: Any, small_disk: Path) -> Any:
    """The agent in a subprocess, its state directory on ``small_disk``."""
    return agent_process_factory("--state-dir", str(small_disk / "state"))


def _cursor_events(plane: ControlPlane, marker: str) -> list[tuple[int, bool]]:
    with plane.lock:
        events = list(plane.events.values())
    return sorted(
        (e["rows"], bool(e.get("error"))) for e in events if marker in e.get("statement", "")
    )


def _open_cursor(conn: Any, marker: str, rows: int) -> Any:
    """A READ_ONLY cursor that read ``rows`` rows by COM_STMT_FETCH, the rest left."""
    cursor = conn.cursor(cursor_type=CURSOR.READ_ONLY, buffered=False)
    cursor.execute(SQL.replace("email", f"email AS {marker}"), (10,))
    for _ in range(rows):
        assert cursor.fetchone() is not None
    return cursor


def _upstream_threads(root: Any, thread_id: int) -> int:
    with root.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM information_schema.processlist WHERE id = %s", (thread_id,)
        )
        return int(cursor.fetchone()[0])


def test_a_cursor_closed_on_a_full_disk_ends_the_session_without_an_err(
    process: Any, control_plane: ControlPlane, mysql_database: str, small_disk: Path, wait: Any
) -> None:
    conn = connector_connection(process.port, mysql_database)
    cursor = _open_cursor(conn, "closed_marker", 2)
    time.sleep(0.6)  # flushed: the journal's file released, the next record needs a page
    filler = fill(small_disk)
    cursor.close()  # COM_STMT_CLOSE: no answer
    with pytest.raises(mariadb.Error) as ended, conn.cursor() as after:
        after.execute("SELECT 1")
        after.fetchall()
    # Not the ERR of the close read as this statement's answer: the connection is gone.
    assert "audit_journal" not in str(ended.value), ended.value
    assert ended.value.errno in (2006, 2013, 2026, 2055), ended.value
    wait(lambda: _cursor_events(control_plane, "closed_marker") == [(2, False)])
    assert "audit_journal" in process.output() and "ended" in process.output()
    filler.unlink()


def test_a_session_ending_on_a_full_disk_audits_every_open_cursor_and_closes_its_sockets(
    process: Any, control_plane: ControlPlane, root: Any, small_disk: Path, wait: Any
) -> None:
    mysql_database = root.db.decode()
    conn = connector_connection(process.port, mysql_database)
    with conn.cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID()")  # the upstream's (the client's is the agent's)
        thread_id = cursor.fetchone()[0]
    cursors = [_open_cursor(conn, f"open_marker_{n}", n + 1) for n in range(3)]
    assert _upstream_threads(root, thread_id) == 1
    time.sleep(0.6)
    filler = fill(small_disk)
    conn.close()  # COM_QUIT with three cursors open
    # Every cursor's event reaches the control plane (the disk still full: they failed
    # closed, so the flush takes them), and the upstream connection is closed.
    wait(
        lambda: (
            [_cursor_events(control_plane, f"open_marker_{n}") for n in range(3)]
            == [[(1, False)], [(2, False)], [(3, False)]]
        )
    )
    wait(lambda: _upstream_threads(root, thread_id) == 0)
    assert "ended with cursors open" in process.output()
    assert "Traceback" not in process.output()
    del cursors
    filler.unlink()
