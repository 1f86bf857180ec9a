"""Large results through the MySQL agent: 200,000 masked rows streamed in the text and the
binary protocol with flat memory, and rows wider than one 16 MiB packet (split across
several packets by the protocol) masked like any other."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import pymysql
import pymysql.cursors
import pytest

from tests.agent.conftest import AgentProcess
from tests.agent_mysql.conftest import connector_connection

ROWS = 200_000
BULK = "SELECT c.email, c.name, s.seq FROM customers c CROSS JOIN seq_1_to_10000 s"


def test_200k_masked_rows_stream_in_the_text_protocol(agent: Any, root: Any) -> None:
    with root.cursor() as direct:
        direct.execute(BULK + " LIMIT 1")
        assert "@example.com" in direct.fetchone()[0]  # the control: the secret is there
    with (
        agent.connect("alice", cursorclass=pymysql.cursors.SSCursor) as conn,
        conn.cursor() as cursor,
    ):
        cursor.execute(BULK)
        count = 0
        for email, name, _seq in cursor:
            assert email == "****@example.com" and name
            count += 1
    assert count == ROWS


def test_200k_masked_rows_stream_in_the_binary_protocol(
    agent_process: AgentProcess, mysql_database: str
) -> None:
    conn = connector_connection(agent_process.port, mysql_database)
    try:
        cursor = conn.cursor(binary=True, buffered=False)
        cursor.execute(BULK + " WHERE s.seq > ?", (0,))
        count = 0
        while batch := cursor.fetchmany(5000):
            assert all(row[0] == "****@example.com" for row in batch)
            count += len(batch)
        cursor.close()
    finally:
        conn.close()
    assert count == ROWS


def test_a_masked_value_in_a_row_wider_than_16_mib_is_masked(agent: Any, root: Any) -> None:
    # Each value stays under the server's 16 MiB max_allowed_packet; the row does not.
    wide = "SELECT email, REPEAT('w', 8400000) AS filler, CONCAT(email, REPEAT('y', 8400000))"
    sql = f"{wide} AS padded FROM customers WHERE id = 2"
    with root.cursor() as direct:
        direct.execute(sql)
        secret, _, padded = direct.fetchone()
    assert "@example.com" in secret and padded.startswith(secret)  # the control
    with agent.connect("alice", max_allowed_packet=64 << 20) as conn, conn.cursor() as cursor:
        cursor.execute(sql)
        email, filler, masked = cursor.fetchone()
        assert email == "****@example.com"
        assert len(filler) == 8_400_000 and filler.strip("w") == ""
        assert "@example.com" not in (masked or "")  # derived from email: redacted
        cursor.execute("SELECT email FROM customers WHERE id = 3")  # the stream goes on
        assert cursor.fetchone() == ("****@example.com",)


def test_streaming_a_large_result_keeps_the_agents_memory_flat(agent: Any) -> None:
    """The agent runs in this process: trace what is allocated while a client that reads
    row by row takes 200,000 rows of ~300 bytes (60 MB); the agent must not hold them."""
    sql = BULK.replace("c.name", "REPEAT('z', 250) AS pad")
    gc.collect()
    tracemalloc.start()
    try:
        with (
            agent.connect("alice", cursorclass=pymysql.cursors.SSCursor) as conn,
            conn.cursor() as cursor,
        ):
            cursor.execute(sql)
            count = sum(1 for _ in cursor)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == ROWS
    assert peak < 24 << 20, f"peak {peak / 1e6:.1f} MB for a 60 MB result"


def test_select_into_outfile_stays_refused(agent: Any) -> None:
    with (
        agent.connect("root") as conn,
        conn.cursor() as cursor,
        pytest.raises(pymysql.err.MySQLError) as refused,
    ):
        cursor.execute("SELECT id, name FROM customers INTO OUTFILE '/tmp/warden-bulk-out.txt'")
    assert "server_file_functions" in str(refused.value) or "OUTFILE" in str(refused.value)
