"""Where the MySQL native path's writes go (agent/fastpath/mysql_session.c, sink_write in
sink.c): a repeat and its answer are sent on a plain TCP socket by the C code itself
while the transport holds nothing, never on the socket under a TLS transport, and a client
that reads slowly (the transport holding bytes when C has more) still gets every byte in
order."""

from __future__ import annotations

import random
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.agent.conftest import wait_for
from tests.agent_mysql.conftest import MySqlAgentRunner, session_of

SQL = "SELECT id, name FROM customers WHERE id = {}"
# ~6 kB to ~30 kB answers (card masked for everyone, partial: masked in C), more than the
# slow client's socket buffers hold
BIG_SQL = "SELECT id, REPEAT(name, 500), card FROM customers WHERE id <= {} ORDER BY id"


def _repeats(conn: Any) -> None:
    """Eight point selects: decided, remembered, then six repeats."""
    with conn.cursor() as cursor:
        for id_ in range(1, 9):
            cursor.execute(SQL.format(id_))
            assert cursor.fetchall()[0][0] == id_


def test_a_plain_tcp_sessions_repeats_are_sent_on_its_sockets_by_the_native_path(
    agent_factory: Any,
) -> None:
    agent = agent_factory(native=True)
    with agent.connect("alice") as conn:
        _repeats(conn)
        stats = session_of(agent).native_path.stats
    assert stats["upstream"] == 6, stats  # the repeats ran in C
    # each query and each answer one send on its socket: the transports held nothing
    assert stats["sent_upstream"] == stats["client"] == 6, stats
    assert stats["sent_client"] == stats["upstream"], stats
    assert stats["queued_upstream"] == stats["queued_client"] == 0, stats


def test_a_tls_clients_repeats_go_through_its_transport(agent_factory: Any, tmp_path: Path) -> None:
    """The socket under a TLS transport carries ciphertext: the native path never writes it."""
    from agent.testing import self_signed_certificate

    cert, key = self_signed_certificate(tmp_path)
    agent = agent_factory(native=True, tls_cert=cert, tls_key=key)
    with agent.connect("alice", ssl={"check_hostname": False}) as conn:
        assert conn._sock.version() is not None  # TLS in use
        _repeats(conn)
        stats = session_of(agent).native_path.stats
    assert stats["upstream"] == 6, stats  # the repeats ran in C, over TLS
    assert stats["sent_client"] == stats["queued_client"] == 0, stats
    assert stats["sent_upstream"] == 6, stats  # the upstream connection is plain TCP


def _packet(sql: str) -> bytes:
    payload = b"\x03" + sql.encode()
    return len(payload).to_bytes(3, "little") + b"\x00" + payload


def _read_now(sock: socket.socket, into: bytearray) -> None:
    """What the socket holds now, into ``into``."""
    try:
        while chunk := sock.recv(65536):
            into += chunk
    except BlockingIOError:
        pass


def _conversation(agent: MySqlAgentRunner, seed: int, slow: bool) -> tuple[bytes, Any]:
    """30 big repeats, each sent once the one before went to the client's transport (so C
    takes it); ``slow``: the client's socket buffers small and read only now and then.  The
    bytes the client got after login, to the end (COM_QUIT), and the native path's stats."""
    rng = random.Random(seed)
    reads = random.Random(seed + 1)  # when a slow client reads (not part of the script)
    conn = agent.connect("alice")
    with conn.cursor() as cursor:
        for _ in range(2):  # decided, then remembered
            cursor.execute(BIG_SQL.format(5))
            cursor.fetchall()
    session = session_of(agent)
    path = session.native_path
    sock = conn._sock
    if slow:
        # less than two answers between them (not the kernel's minimum: a window that small
        # drains at the pace of the ACK timers)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        agent_end = session.client.get_extra_info("socket")
        agent_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)  # the kernel's minimum
    sock.setblocking(False)
    data = bytearray()
    for done in range(1, 31):
        sock.sendall(_packet(BIG_SQL.format(rng.randint(1, 5))))
        # C took it and its answer went to the transport (or back to Python, then done)
        wait_for(
            lambda done=done: (
                path.stats["upstream"] + path.stats["handed_back"] == done
                and not session.to_upstream.busy
            )
        )
        if not slow or reads.random() < 0.3:
            _read_now(sock, data)
        if slow and done % 10 == 0:  # caught up: the transport empties, C sends itself again
            wait_for(lambda: _read_now(sock, data) or not session.client.get_write_buffer_size())
    sock.sendall(b"\x01\x00\x00\x00\x01")  # COM_QUIT: the agent ends the session
    sock.settimeout(30)
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    return bytes(data), dict(path.stats)


@pytest.mark.parametrize("seed", range(2))
def test_a_slow_reading_client_gets_every_byte_of_the_native_sends_in_order(
    agent_factory: Any, seed: int
) -> None:
    expected, _ = _conversation(agent_factory(native=True), seed, slow=False)
    got, stats = _conversation(agent_factory(native=True), seed, slow=True)
    assert b"4111-1111-1111-1001" not in got and b"XXXX-XXXX-XXXX-1001" in got  # masked
    assert len(got) == len(expected) and got == expected, "other bytes, or out of order"
    assert stats["sent_client"] > 0, stats  # written on the socket here
    assert stats["queued_client"] > 0, stats  # and behind bytes the transport held
