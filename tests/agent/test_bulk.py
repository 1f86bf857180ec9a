"""Large results through the agent: SQL cursors (DECLARE … FETCH n, psycopg's named cursors)
masked on every batch like the SELECT they declare, and portal row limits across many
suspensions."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from agent.postgres import codec
from tests.agent.wire import WireClient, bind, execute, kinds, parse, rows

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


def _audited(agent: Any, control_plane: Any, *fields: str) -> list[Any]:
    agent.flush_audit()
    events = sorted(control_plane.events.values(), key=lambda e: e["time"])
    return [
        tuple(e.get(f) for f in fields) if len(fields) > 1 else e[fields[0]]
        for e in events
        if e["identity"] == "bot" and e["decision"] == "mask"
    ]


def _rows_audited(agent: Any, control_plane: Any) -> list[Any]:
    return _audited(agent, control_plane, "rows")


def _payload_bytes(messages: list[tuple[bytes, bytes]], kind: bytes = b"D") -> int:
    return sum(len(payload) for message_kind, payload in messages if message_kind == kind)


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


def test_audit_counts_the_bytes_each_statement_sent_as_the_client_received_them(
    agent: Any, control_plane: Any
) -> None:
    client = WireClient(agent.port, "bot")
    client.send(codec.query(QUERY))
    simple = client.until(b"Z")
    client.send(parse("", QUERY), bind("", ""), execute("", 0), codec.SYNC)
    extended = client.until(b"Z")
    client.send(codec.query(f"COPY ({QUERY}) TO STDOUT (FORMAT csv, HEADER)"))
    copied = client.until(b"Z")
    client.close()
    sent = b"".join(payload for _, payload in simple + extended + copied)
    assert b"@example.com" not in sent and sent.count(b"h_") == 150  # bot's emails: hashed
    assert _audited(agent, control_plane, "rows", "bytes") == [
        (50, _payload_bytes(simple)),
        (50, _payload_bytes(extended)),
        (50, _payload_bytes(copied, b"d")),  # the header line's bytes went out too
    ]


@pytest.mark.parametrize("protocol", ["simple", "extended"])
def test_rows_and_bytes_sent_before_an_error_are_audited(
    agent: Any, control_plane: Any, protocol: str
) -> None:
    """A division by zero at row 30: the 29 rows before it went to the client, and the
    audit says so (not "no count")."""
    failing = (
        "SELECT id, email, 1 / (30 - id) AS inverse"
        " FROM (SELECT id, email FROM customers ORDER BY id OFFSET 0) ordered"
    )
    client = WireClient(agent.port, "bot")
    if protocol == "simple":
        client.send(codec.query(failing))
    else:
        client.send(parse("", failing), bind("", ""), execute("", 0), codec.SYNC)
    messages = client.until(b"Z")
    client.close()
    assert kinds(messages).count(b"D") == 29 and b"E" in kinds(messages)
    assert all(row[1].startswith(b"h_") for row in rows(messages))  # masked (hashed)
    agent.flush_audit()
    (event,) = [e for e in control_plane.events.values() if e["identity"] == "bot"]
    assert (event["rows"], event["bytes"], event.get("error")) == (
        29,
        _payload_bytes(messages),
        True,
    )
