"""The MySQL protocol through the agent with real clients: login with the Warden token,
queries, masking in text and binary rows, prepared statements, commands."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pymysql
import pytest
import sqlalchemy

from agent.mysql import packets
from agent.testing import self_signed_certificate


def test_pymysql_logs_in_with_the_token_and_reads_masked_rows(agent: Any):
    with agent.connect("alice") as conn, conn.cursor() as cursor:
        cursor.execute("SELECT id, name, email, phone FROM customers ORDER BY id LIMIT 2")
        rows = cursor.fetchall()
    assert rows[0][1] == "Grace Doe1"
    assert rows[0][2] == "****@example.com"
    assert rows[0][3] == "*" * 12 + "1001"


def test_a_wrong_token_is_refused_with_access_denied(agent: Any):
    with pytest.raises(pymysql.err.OperationalError) as refused:
        agent.connect("alice", password="wdn_bob")
    assert refused.value.args[0] == 1045
    assert "unknown or revoked token" in refused.value.args[1]


def test_sqlalchemy_with_pymysql_reads_masked_rows(agent: Any, mysql_database: str):
    url = f"mysql+pymysql://alice:wdn_alice@127.0.0.1:{agent.port}/{mysql_database}"
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            sqlalchemy.text("SELECT name, email, birth_date FROM customers WHERE id = :id"),
            {"id": 3},
        ).all()
    engine.dispose()
    assert rows == [("Edsger Doe3", "****@example.com", rows[0][2])]
    assert str(rows[0][2]) == "1963-01-01"


def _cli(port: int, database: str, sql: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "mariadb",
            "-h127.0.0.1",
            f"-P{port}",
            "-ualice",
            "-pwdn_alice",
            "-N",
            "-B",
            *extra,
            database,
            "-e",
            sql,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_mariadb_cli_reads_masked_rows_over_tls(
    agent_factory: Any, mysql_database: str, tmp_path: Path
):
    cert, key = self_signed_certificate(tmp_path)
    agent = agent_factory(tls_cert=cert, tls_key=key)
    result = _cli(agent.port, mysql_database, "SELECT email, card FROM customers WHERE id = 1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().split("\t") == ["****@example.com", "XXXX-XXXX-XXXX-1001"]


def test_a_token_sent_in_clear_over_plain_tcp_is_refused_unless_loopback_is_allowed(
    agent_factory: Any, mysql_database: str
):
    # With --client-auth password, MariaDB Connector/C answers caching_sha2 full
    # authentication with the password in clear when there is no TLS: the agent refuses it.
    plain = agent_factory(client_auth="password")
    refused = _cli(plain.port, mysql_database, "SELECT 1")
    assert refused.returncode == 1
    assert "cleartext password only over TLS" in refused.stderr
    loopback = agent_factory(client_auth="password", mysql_cleartext_loopback=True)
    accepted = _cli(loopback.port, mysql_database, "SELECT name FROM customers WHERE id = 1")
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.strip() == "Grace Doe1"


def _two_results(agent: Any, batch: str) -> tuple[Any, Any]:
    """Both results of a two-statement batch run by alice through the agent."""
    multi = pymysql.constants.CLIENT.MULTI_STATEMENTS
    with agent.connect("alice", client_flag=multi) as conn, conn.cursor() as cursor:
        cursor.execute(batch)
        first = cursor.fetchall()
        assert cursor.nextset()
        return first, cursor.fetchall()


def test_multi_statements_return_every_result_masked(agent: Any):
    first, second = _two_results(
        agent, "SELECT email FROM customers WHERE id = 1; SELECT name FROM customers WHERE id = 1"
    )
    assert first == (("****@example.com",),)
    assert second == (("Grace Doe1",),)


def test_ping_init_db_and_use_switch_the_database(agent: Any, mysql_database: str):
    with agent.connect("alice") as conn:
        conn.ping()
        conn.select_db(f"{mysql_database}_archive")
        with conn.cursor() as cursor:
            cursor.execute("SELECT email FROM customers WHERE id = 2")
            assert cursor.fetchone() == ("****@example.com",)  # archive.customers.email masked
            cursor.execute(f"USE `{mysql_database}`")
            cursor.execute("SELECT name FROM customers WHERE id = 2")
            assert cursor.fetchone() == ("Linus Doe2",)


def test_packets_split_at_16_mib_travel_both_ways(agent: Any, root: Any):
    """A command of exactly 16 MiB - 1 bytes (a full packet and an empty one) and a row of
    16.8 MB (two packets) pass intact; the server's max_allowed_packet is 16 MiB."""
    prefix = "SELECT LENGTH('"
    query = prefix + "x" * (packets.MAX_PACKET - 1 - len(prefix) - 2) + "')"
    assert len(query) + 1 == packets.MAX_PACKET
    wide = "SELECT REPEAT('a', 8400000), REPEAT('b', 8400000)"
    with root.cursor() as direct:
        direct.execute(query)
        expected = direct.fetchone()
    with agent.connect("alice", max_allowed_packet=64 << 20) as conn, conn.cursor() as cursor:
        cursor.execute(query)
        assert cursor.fetchone() == expected == (packets.MAX_PACKET - 1 - len(prefix) - 2,)
        cursor.execute(wide)
        row = cursor.fetchone()
    assert (len(row[0]), len(row[1]), row[1][-1]) == (8400000, 8400000, "b")


def test_framing_splits_and_joins_payloads_at_the_16_mib_boundary():
    payload = bytes(range(256)) * (packets.MAX_PACKET // 256 + 3)
    _data, next_seq = packets.frame(payload, 0)
    assert next_seq == 2
    exact, seq = packets.frame(b"a" * packets.MAX_PACKET, 5)
    assert seq == 7 and exact.endswith(b"\x00\x00\x00\x06")


def test_buffered_rows_are_taken_verbatim_only_in_sequence_and_until_the_result_ends():
    def packet(payload: bytes, seq: int) -> bytes:
        return packets.frame(payload, seq)[0]

    rows = packet(b"\x03abc", 2) + packet(b"\x03def", 3)
    eof = packet(b"\xfe\x00\x00\x02\x00", 8)
    error = packet(b"\xff\x15\x04#28000denied", 3)

    async def scenario() -> None:
        stream = packets.PacketBuffer()
        stream.feed(packet(b"\x01", 1) + rows + packet(b"\x03ghi", 7) + eof)
        stream.feed(packet(b"\x03jkl", 2) + error + packet(b"\x03mno", 4)[:6])
        stream.feed_eof()
        assert await stream.payload() == b"\x01" and stream.seq == 1
        assert stream.verbatim_rows(2) == (rows, 2)
        assert stream.verbatim_rows(4) == (b"", 0)  # the next row is numbered 7: reframed
        assert (stream.ready(), stream.seq) == (b"\x03ghi", 7)
        assert stream.verbatim_rows(8) == (b"", 0)  # the EOF ends the result
        assert stream.ready() == b"\xfe\x00\x00\x02\x00"
        assert stream.verbatim_rows(2) == (packet(b"\x03jkl", 2), 1)
        assert stream.verbatim_rows(3) == (b"", 0)  # an ERR packet ends the result
        assert stream.ready() == b"\xff\x15\x04#28000denied"
        assert stream.verbatim_rows(4) == (b"", 0) and stream.ready() is None  # cut short

    asyncio.run(scenario())


def test_a_large_unmasked_result_passes_intact_and_a_masked_one_after_it_stays_masked(
    agent: Any, root: Any
):
    """Unmasked rows go out as they came (no reframing) across many reads and flushes;
    the next result of the same batch is still masked row by row."""
    with root.cursor() as direct:
        direct.execute(
            "INSERT INTO scratch SELECT seq, REPEAT(CHAR(65 + seq % 26), 300) FROM seq_1_to_4000"
        )
        direct.execute("SELECT id, v FROM scratch ORDER BY id")
        expected = direct.fetchall()
    relayed, masked = _two_results(
        agent, "SELECT id, v FROM scratch ORDER BY id; SELECT email FROM customers WHERE id = 1"
    )
    assert len(relayed) == 4000 and relayed == expected
    assert masked == (("****@example.com",),)


def test_compression_is_refused_at_negotiation(agent: Any):
    with pytest.raises(pymysql.err.OperationalError) as refused:
        agent.connect("alice", client_flag=packets.CLIENT_COMPRESS)
    assert "compression is not supported" in str(refused.value)


def test_kill_query_is_mapped_to_the_upstream_connection(agent: Any):
    with agent.connect("alice") as victim, agent.connect("alice") as killer:
        agent_id = victim.thread_id()
        with killer.cursor() as cursor:
            cursor.execute(f"KILL QUERY {agent_id}")
        with pytest.raises(pymysql.err.OperationalError) as unknown, killer.cursor() as cursor:
            cursor.execute("KILL QUERY 999999")
        assert unknown.value.args[0] == 1094
    with (
        agent.connect("bob") as other,
        pytest.raises(pymysql.err.OperationalError),
        other.cursor() as cursor,
    ):
        cursor.execute(f"KILL QUERY {agent_id}")  # another identity's connection


def test_change_user_is_refused(agent: Any):
    conn = agent.connect("alice")
    with pytest.raises(pymysql.err.MySQLError):
        conn.change_user = None  # PyMySQL has no COM_CHANGE_USER; send it raw
        conn._execute_command(packets.COM_CHANGE_USER, b"bob\x00")
        conn._read_ok_packet()
    conn.close()


def test_without_a_valid_bundle_every_connection_is_refused(agent_factory: Any, control_plane: Any):
    control_plane.tamper = True  # every bundle fails verification: none ever loaded
    agent = agent_factory()
    with pytest.raises(pymysql.err.OperationalError) as refused:
        agent.connect("alice")
    assert refused.value.args[0] == 1045
    assert "no valid policy bundle loaded; connections are refused" in refused.value.args[1]
