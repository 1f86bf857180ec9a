"""A MySQL client sends its SSLRequest and, without waiting (the protocol has no answer to
it), its TLS ClientHello.  When both reach the agent in one read, the hello must still
reach the TLS layer: before, it stayed in the login reader's buffer and the handshake hung
until its 60 s timeout (seen with pymysql on a loaded machine).  Checked on the in-process
agent (asyncio's loop) and on ``python -m agent`` (uvloop, as in production)."""

from __future__ import annotations

import socket
import ssl
import struct
from pathlib import Path
from typing import Any

import pymysql
import pytest

from agent.mysql import packets as p
from agent.testing import self_signed_certificate


@pytest.fixture(params=["asyncio", "uvloop"])
def tls_agent_port(request: Any, tmp_path: Path) -> int:
    cert, key = self_signed_certificate(tmp_path)
    if request.param == "asyncio":
        return int(request.getfixturevalue("agent_factory")(tls_cert=cert, tls_key=key).port)
    start = request.getfixturevalue("agent_process_factory")
    return int(start("--tls-cert", str(cert), "--tls-key", str(key)).port)


def _packet(seq: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


def _read_packet(sock: socket.socket) -> bytes:
    header = sock.recv(4, socket.MSG_WAITALL)
    return sock.recv(int.from_bytes(header[:3], "little"), socket.MSG_WAITALL)


def test_a_client_hello_in_the_same_read_as_the_ssl_request_starts_tls(
    tls_agent_port: int,
) -> None:
    sock = socket.create_connection(("127.0.0.1", tls_agent_port), timeout=10)
    assert _read_packet(sock)[0] == 10  # the server's handshake, protocol 10
    caps = p.CLIENT_PROTOCOL_41 | p.CLIENT_SSL | p.CLIENT_SECURE_CONNECTION | p.CLIENT_PLUGIN_AUTH
    ssl_request = _packet(1, struct.pack("<IIB", caps, 1 << 24, 45) + bytes(23))
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    sock.sendall(ssl_request + outgoing.read())  # one write: one read for the agent
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            sock.sendall(outgoing.read())
            data = sock.recv(65536)  # timed out (10 s) while the hello sat in a buffer
            assert data, "the agent closed the connection"
            incoming.write(data)
    assert tls.version() is not None
    sock.close()


def test_pymysql_logs_in_over_tls_when_its_writes_are_coalesced(
    tls_agent_port: int, mysql_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real client whose writes the kernel holds back and joins (TCP_CORK: up to 200 ms),
    as a busy machine does: it logs in over TLS and reads its rows."""
    connect = socket.create_connection

    def corked(*args: Any, **kwargs: Any) -> socket.socket:
        sock = connect(*args, **kwargs)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        return sock

    monkeypatch.setattr(pymysql.connections.socket, "create_connection", corked)
    conn = pymysql.connect(
        host="127.0.0.1",
        port=tls_agent_port,
        user="alice",
        password="wdn_alice",
        database=mysql_database,
        ssl={"check_hostname": False, "verify_mode": ssl.CERT_NONE},
        connect_timeout=10,
        read_timeout=10,
    )
    with conn, conn.cursor() as cursor:
        assert conn._sock.version() is not None  # TLS in use
        cursor.execute("SELECT id FROM customers WHERE id = 1")
        assert cursor.fetchall() == ((1,),)
