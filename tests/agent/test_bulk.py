"""Large results through the agent: SQL cursors (DECLARE … FETCH n, psycopg's named cursors)
masked on every batch like the SELECT they declare, and portal row limits across many
suspensions."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from agent.postgres import codec
from tests.agent.wire import WireClient, bind, execute, parse, rows

QUERY = "SELECT id, name, email, phone, upper(email) AS shout FROM customers ORDER BY id"


@pytest.fixture
def agent(agent_on_both_paths: Any) -> Any:
    return agent_on_both_paths


def _text_rows(cursor: Any) -> list[list[bytes | None]]:
    result = cursor.pgresult
    return [[result.get_value(r, c) for c in range(result.nfields)] for r in range(result.ntuples)]


def test_a_sql_cursor_is_masked_on_every_fetch_like_its_select(agent: Any, admin: Any) -> None:
    admin.execute("BEGIN")
    admin.execute(f"DECLARE direct_cursor CURSOR FOR {QUERY}")
    direct = _text_rows(admin.execute("FETCH 50 FROM direct_cursor"))
    admin.execute("ROLLBACK")
    assert direct[0][2] == b"grace.1@example.com"  # the control: the cursor reads the secret
    with agent.connect("alice") as conn:
        selected = _text_rows(conn.execute(QUERY))
        fetched: list[list[bytes | None]] = []
        with conn.transaction():
            conn.execute(f"DECLARE masked_cursor CURSOR FOR {QUERY}")
            while batch := _text_rows(conn.execute("FETCH 7 FROM masked_cursor")):
                fetched += batch
    assert len(fetched) == 50 and fetched == selected
    assert all(row[2] == b"****@example.com" and row[4] == b"****" for row in fetched)


def test_a_psycopg_named_cursor_is_masked_on_every_batch(agent: Any) -> None:
    with agent.connect("bot") as conn, conn.transaction(), conn.cursor(name="pipeline") as named:
        named.execute(QUERY)
        batches = []
        while batch := named.fetchmany(8):
            batches.append(batch)
    assert len(batches) == 7 and sum(map(len, batches)) == 50
    emails = [row[2] for batch in batches for row in batch]
    assert all(e.startswith("h_") and len(e) == 26 for e in emails), emails[:3]
    assert all(row[4] == "****" for batch in batches for row in batch)


def test_a_cursor_filtering_on_a_masked_column_is_still_refused(agent: Any) -> None:
    with agent.connect("alice") as conn, pytest.raises(psycopg.Error, match="WHERE") as info:
        conn.execute("BEGIN")
        conn.execute("DECLARE c CURSOR FOR SELECT id FROM customers WHERE email LIKE 'ada%'")
    assert info.value.sqlstate == "42501"


def test_portal_row_limits_are_masked_across_many_suspensions(agent: Any) -> None:
    client = WireClient(agent.port, "alice")
    client.send(codec.query("BEGIN"))  # the portal lives until the transaction ends
    client.until(b"Z")
    client.send(parse("bulk", QUERY), bind("bulk_portal", "bulk"), codec.SYNC)
    client.until(b"Z")
    fetched: list[list[bytes | None]] = []
    suspensions = 0
    while True:
        client.send(execute("bulk_portal", 6), codec.SYNC)
        messages = client.until(b"Z")
        fetched += rows(messages)
        assert b"E" not in [kind for kind, _ in messages], messages
        if any(kind == b"C" for kind, _ in messages):
            break
        suspensions += 1
    client.close()
    assert suspensions == 8 and len(fetched) == 50
    assert all(row[2] == b"****@example.com" and row[4] == b"****" for row in fetched)


def _rows_audited(agent: Any, control_plane: Any, kind: str | None = None) -> list[Any]:
    agent.flush_audit()
    events = sorted(control_plane.events.values(), key=lambda e: e["time"])
    return [e["rows"] for e in events if e["identity"] == "bot" and e["decision"] == "mask"]


def test_audit_counts_the_rows_of_every_portal_batch_cursor_fetch_and_copy(
    agent: Any, control_plane: Any
) -> None:
    client = WireClient(agent.port, "bot")
    client.send(codec.query("BEGIN"))
    client.until(b"Z")
    client.send(parse("audited", QUERY), bind("audited_portal", "audited"), codec.SYNC)
    client.until(b"Z")
    for _ in range(3):  # two full batches of 20, then the last 10 and CommandComplete
        client.send(execute("audited_portal", 20), codec.SYNC)
        client.until(b"Z")
    client.send(codec.query("COMMIT"))
    client.until(b"Z")
    client.close()
    assert _rows_audited(agent, control_plane) == [20, 20, 10]
    control_plane.events.clear()
    with agent.connect("bot") as conn:
        with conn.transaction():
            conn.execute(f"DECLARE audited_cursor CURSOR FOR {QUERY}")
            conn.execute("FETCH 30 FROM audited_cursor")
            conn.execute("FETCH 30 FROM audited_cursor")
        with conn.cursor().copy(f"COPY ({QUERY}) TO STDOUT") as copy:
            exported = b"".join(bytes(chunk) for chunk in copy)
    assert exported.count(b"\n") == 50
    assert _rows_audited(agent, control_plane)[-3:] == [30, 20, 50]
