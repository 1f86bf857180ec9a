"""A MySQL client that stalls in its login, or whose TLS handshake fails, ends its own
connection only: closed when MySQL's connect_timeout would close it, without an error
escaping the session, while a regular client logs in."""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from agent.mysql import packets as p
from agent.mysql import session as session_module
from agent.testing import self_signed_certificate


def _read_packet(sock: socket.socket) -> bytes:
    header = sock.recv(4, socket.MSG_WAITALL)
    return sock.recv(int.from_bytes(header[:3], "little"), socket.MSG_WAITALL)


def _ssl_request() -> bytes:
    caps = p.CLIENT_PROTOCOL_41 | p.CLIENT_SSL | p.CLIENT_SECURE_CONNECTION | p.CLIENT_PLUGIN_AUTH
    payload = struct.pack("<IIB", caps, 1 << 24, 45) + bytes(23)
    return len(payload).to_bytes(3, "little") + b"\x01" + payload


def _closed_by_agent(sock: socket.socket) -> bool:
    try:
        while sock.recv(4096):
            pass
    except (ConnectionResetError, TimeoutError):
        return False
    return True


@pytest.mark.parametrize("sent", ["nothing", "half a packet", "ssl request"])
def test_a_client_that_stalls_in_its_login_is_closed(
    agent_factory: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sent: str
) -> None:
    monkeypatch.setattr(session_module, "LOGIN_TIMEOUT", 0.5)
    cert, key = self_signed_certificate(tmp_path)
    running = agent_factory(tls_cert=cert, tls_key=key)
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        assert _read_packet(sock)[0] == 10  # the server's handshake
        sock.sendall(
            {"nothing": b"", "half a packet": b"\x20\x00", "ssl request": _ssl_request()}[sent]
        )
        started = time.monotonic()
        assert _closed_by_agent(sock)
        assert time.monotonic() - started < 5  # the agent's timeout, not this client's 10 s
    with running.connect("alice") as connection, connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_a_failed_tls_handshake_ends_only_its_session(
    agent_factory: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    running = agent_factory(tls_cert=cert, tls_key=key)
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        assert _read_packet(sock)[0] == 10
        sock.sendall(_ssl_request() + b"\x16\x03\x01\x00\x08notahelo")
        assert _closed_by_agent(sock)
    time.sleep(0.3)
    assert "Unhandled exception" not in caplog.text
    assert "Task exception was never retrieved" not in caplog.text
    with running.connect("alice") as connection, connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
