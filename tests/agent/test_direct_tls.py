"""PostgreSQL 17's direct TLS (libpq ``sslnegotiation=direct``): the client opens with a TLS
ClientHello instead of an SSLRequest.  The client here is psycopg's own libpq (18), so the
negotiation is the real one; raw sockets play the clients libpq would never be."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agent.postgres import session as session_module
from agent.testing import self_signed_certificate
from tests.agent.conftest import wait_for

STARTUP_PARAMS = b"user\0alice\0database\0shop\0\0"
STARTUP = struct.pack("!ii", 8 + len(STARTUP_PARAMS), 196608) + STARTUP_PARAMS
SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def direct(dsn: str, **extra: str) -> str:
    dsn = dsn.replace("sslmode=disable", "sslmode=require sslnegotiation=direct")
    return dsn + "".join(f" {k}={v}" for k, v in extra.items())


def test_libpq_direct_tls_is_libpq_18() -> None:
    """The tests below mean something only with a libpq that speaks direct TLS."""
    assert psycopg.pq.version() >= 170000, psycopg.pq.version()


@pytest.mark.parametrize("channel_binding", ["disable", "require"])
def test_a_direct_tls_client_logs_in_and_is_governed(
    agent_factory: Any, tmp_path: Path, channel_binding: str
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    running = agent_factory(tls_cert=cert, tls_key=key)
    dsn = direct(running.dsn("alice"), channel_binding=channel_binding)
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.pgconn.ssl_in_use
        # alice's policy masks e-mails: the session is the agent's, not a pass-through.
        assert conn.execute("SELECT email FROM customers ORDER BY id LIMIT 1").fetchone() == (
            "****@example.com",
        )
    with psycopg.connect(direct(running.dsn("root")), autocommit=True) as conn:
        email = conn.execute("SELECT email FROM customers ORDER BY id LIMIT 1").fetchone()
        assert email is not None and email[0] != "****@example.com"


def test_direct_tls_through_the_agent_process(agent_process_factory: Any, tmp_path: Path) -> None:
    """``python -m agent`` (uvloop): the ClientHello's first bytes, read to tell it from a
    startup packet, reach the TLS layer there too."""
    cert, key = self_signed_certificate(tmp_path)
    running = agent_process_factory("--tls-cert", str(cert), "--tls-key", str(key))
    with psycopg.connect(direct(running.dsn("alice")), autocommit=True) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("SELECT count(*) FROM customers").fetchone()[0] > 0  # type: ignore[index]


def tls_client(port: int, alpn: list[str] | None) -> ssl.SSLSocket:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    return context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10))


def read_all(sock: socket.socket) -> bytes:
    answer = b""
    try:
        while chunk := sock.recv(4096):
            answer += chunk
    except (ssl.SSLError, ConnectionResetError):
        pass
    return answer


@pytest.mark.parametrize("alpn", [None, ["http/1.1"]], ids=["no-alpn", "http"])
def test_direct_tls_without_the_postgresql_alpn_is_refused(
    agent_factory: Any, tmp_path: Path, alpn: list[str] | None
) -> None:
    """As PostgreSQL 17: a TLS connection that did not negotiate ALPN "postgresql" (an HTTPS
    client, say) is refused with 08P01 before its bytes are read as a startup packet; the
    same connection with the ALPN logs in (so the refusal is the rule, not a broken TLS)."""
    cert, key = self_signed_certificate(tmp_path)
    running = agent_factory(tls_cert=cert, tls_key=key)
    with tls_client(running.port, alpn) as sock:
        assert sock.selected_alpn_protocol() is None
        sock.sendall(STARTUP)
        answer = read_all(sock)
    assert answer[:1] == b"E" and b"C08P01\0" in answer, answer
    assert b"without ALPN protocol negotiation extension" in answer
    with tls_client(running.port, ["postgresql"]) as sock:
        assert sock.selected_alpn_protocol() == "postgresql"
        sock.sendall(STARTUP)
        answer = sock.recv(4096)
    assert answer[:1] == b"R", answer  # an authentication request: the login goes on


def test_direct_tls_to_an_agent_without_a_certificate_is_closed(agent: Any) -> None:
    """No certificate, no TLS: PostgreSQL closes such a connection without an answer (the
    client reads TLS records); the client gets an error at once, not a hang, and plaintext
    clients are unaffected."""
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(direct(agent.dsn("alice")), autocommit=True)
    with socket.create_connection(("127.0.0.1", agent.port), timeout=10) as raw:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
            context.wrap_socket(raw)
    with psycopg.connect(agent.dsn("alice"), autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize("how", ["ssl-request", "direct"])
def test_a_second_ssl_request_inside_tls_is_refused(
    agent_factory: Any, tmp_path: Path, how: str
) -> None:
    """Once TLS is up, another SSLRequest is not a request for TLS (PostgreSQL answers it as
    an unsupported protocol): before, the agent started TLS a second time over the first."""
    cert, key = self_signed_certificate(tmp_path)
    running = agent_factory(tls_cert=cert, tls_key=key)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["postgresql"])
    raw = socket.create_connection(("127.0.0.1", running.port), timeout=10)
    if how == "ssl-request":
        raw.sendall(SSL_REQUEST)
        assert raw.recv(1) == b"S"
    with context.wrap_socket(raw) as sock:
        if how == "direct":  # PostgreSQL 17 answers the first one inside direct TLS with N
            sock.sendall(SSL_REQUEST)
            assert sock.recv(1) == b"N"
        sock.sendall(SSL_REQUEST)
        answer = read_all(sock)
    assert answer[:1] == b"E" and b"C0A000\0" in answer, answer
    assert b"unsupported frontend protocol 1234.5679" in answer


def test_an_ssl_request_inside_direct_tls_gets_n_and_the_login_goes_on(
    agent_factory: Any, tmp_path: Path
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    running = agent_factory(tls_cert=cert, tls_key=key)
    with tls_client(running.port, ["postgresql"]) as sock:
        sock.sendall(SSL_REQUEST)
        assert sock.recv(1) == b"N"
        sock.sendall(STARTUP)
        assert sock.recv(4096)[:1] == b"R"  # an authentication request: the login goes on


def rejected(running: Any) -> float:
    return float(running.agent.metrics.connections_total.labels("rejected")._value.get())


def test_a_failed_tls_handshake_is_a_rejected_connection(
    agent_factory: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A TLS record that is no ClientHello (a scanner): the handshake fails, the connection
    closes and counts as rejected; before, the error escaped the session unhandled."""
    cert, key = self_signed_certificate(tmp_path)
    running = agent_factory(tls_cert=cert, tls_key=key)
    before = rejected(running)
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        sock.sendall(b"\x16\x03\x01\x00\x08notahelo")
        assert read_all(sock)[:1] != b"E"  # closed (a TLS alert at most), never a session
    wait_for(lambda: rejected(running) == before + 1)
    assert "Unhandled exception" not in caplog.text
    assert "Task exception was never retrieved" not in caplog.text


@pytest.mark.parametrize("sent", [b"", b"\x16", b"\x00\x00\x00\x08\x04"])
def test_a_client_that_stalls_before_its_session_starts_is_closed(
    agent_factory: Any, monkeypatch: pytest.MonkeyPatch, sent: bytes
) -> None:
    """PostgreSQL's authentication_timeout: nothing, a lone TLS byte, half a startup packet,
    then silence; the agent closes the connection when the time is up (0.5 s here)."""
    monkeypatch.setattr(session_module, "AUTHENTICATION_TIMEOUT", 0.5)
    running = agent_factory()
    before = rejected(running)
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        sock.sendall(sent)
        started = time.monotonic()
        answer = read_all(sock)  # closed by the agent, not by this client's 10 s timeout
        assert time.monotonic() - started < 5
    assert answer[:1] == b"E" and b"C08P01\0" in answer, answer
    assert b"the login did not finish within" in answer
    wait_for(lambda: rejected(running) == before + 1)


def test_a_login_that_fails_at_its_last_write_leaves_no_cancel_key(agent_factory: Any) -> None:
    """Review finding: the cancel key is issued before the login's last write; a client that
    resets meanwhile (its control plane answering in 300 ms here) left a key pointing at a
    closed backend in agent.cancel_keys, one per such login."""
    running = agent_factory(client_auth="password", allow_insecure_listen=True)
    issued: list[Any] = []
    issue, check_password = running.agent.issue_cancel_key, running.agent.logins.check_password

    def spy(*args: Any) -> Any:
        issued.append(issue(*args))
        return issued[-1]

    async def slow_check(*args: Any, **details: Any) -> Any:
        await asyncio.sleep(0.3)
        return await check_password(*args, **details)

    running.agent.issue_cancel_key = spy
    running.agent.logins.check_password = slow_check  # type: ignore[method-assign]
    token = b"wdn_alice\0"
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
            sock.sendall(STARTUP)
            assert sock.recv(1) == b"R"
            sock.recv(100)
            sock.sendall(b"p" + struct.pack("!i", len(token) + 4) + token)
            time.sleep(0.05)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # closed with a reset while the agent waits on the control plane
    wait_for(lambda: rejected(running) >= 3)
    assert issued, "the logins did not reach the cancel key: the probe proves nothing"
    assert not set(issued) & set(running.agent.cancel_keys)
    assert not set(issued) & set(running.agent.results)
    with psycopg.connect(running.dsn("alice"), autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
