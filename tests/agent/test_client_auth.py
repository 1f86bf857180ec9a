"""No token in clear: clients prove their token with SCRAM-SHA-256(-PLUS) against the
control plane's verifiers; the token as a cleartext password only over TLS; an agent that
would take tokens in clear beyond loopback refuses to start."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import psycopg
import pytest
from scramp import ScramClient

from agent.postgres import codec
from agent.server import InsecureListen
from agent.testing import self_signed_certificate
from tests.agent.conftest import REPO_ROOT, free_port
from tests.agent.wire import CapturingRelay, WireClient


def _mechanisms(control_plane: Any) -> list[str]:
    return [login["mechanism"] for login in control_plane.logins]


def test_psql_logs_in_with_scram_and_the_agent_never_gets_the_token(
    agent: Any, control_plane: Any
) -> None:
    env = {**os.environ, "PGPASSWORD": "wdn_alice", "PGSSLMODE": "disable"}
    psql = ["psql", "-h", "127.0.0.1", "-p", str(agent.port), "-U", "alice", "-d", "shop"]
    result = subprocess.run(
        [*psql, "-At", "-c", "SELECT email FROM customers WHERE id = 1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "****@example.com"
    assert _mechanisms(control_plane) == ["SCRAM-SHA-256"]
    assert control_plane.logins[0]["token_id"] is not None
    assert control_plane.logins[0]["application"] == "psql"


def test_a_wrong_token_is_refused_with_28P01_by_psycopg_and_on_the_wire(
    agent: Any, control_plane: Any
) -> None:
    with pytest.raises(psycopg.OperationalError, match="unknown or revoked access token"):
        psycopg.connect(agent.dsn("alice", token="wdn_bob"))
    client = WireClient(agent.port, "alice", login=False)
    client.send(codec.startup_message({"user": "alice", "database": "shop"}))
    [(kind, error)] = client.login("alice", "wdn_wrong")
    client.close()
    assert kind == b"E" and codec.parse_error_fields(error)["C"] == "28P01"
    # Both failures reached the control plane's audit trail, naming no token.
    assert [login["token_id"] for login in control_plane.logins] == [None, None]


def test_asyncpg_logs_in_with_scram(agent: Any, control_plane: Any) -> None:
    async def read() -> Any:
        conn = await asyncpg.connect(
            host="127.0.0.1",
            port=agent.port,
            user="dave",
            password="wdn_dave",
            database="shop",
            ssl=False,
        )
        try:
            return await conn.fetchval("SELECT name FROM customers WHERE id = 2")
        finally:
            await conn.close()

    assert asyncio.run(read()) == "Linus Torvalds"
    assert _mechanisms(control_plane) == ["SCRAM-SHA-256"]


def test_over_tls_libpq_binds_the_channel_with_scram_sha_256_plus(
    agent_factory: Any, control_plane: Any, tmp_path: Path
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    running = agent_factory(tls_cert=cert, tls_key=key)
    dsn = running.dsn("alice").replace("sslmode=disable", "sslmode=require")
    with psycopg.connect(dsn + " channel_binding=require", autocommit=True) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert _mechanisms(control_plane) == ["SCRAM-SHA-256-PLUS"]


def _tls_client(port: int, user: str) -> tuple[ssl.SSLSocket, WireClient]:
    client = WireClient(port, user, login=False)
    client.send(codec.ssl_request())
    assert client.sock.recv(1) == b"S"
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    client.sock = context.wrap_socket(client.sock)
    client.send(codec.startup_message({"user": user, "database": "shop"}))
    return client.sock, client


def _sasl_error(client: WireClient, mechanism: str, first: str) -> dict[str, str]:
    kind, offer = client.read()
    assert kind == b"R" and b"SCRAM-SHA-256-PLUS" in offer
    client.send(codec.sasl_initial_response(mechanism, first.encode()))
    kind, payload = client.read()
    if kind == b"R":  # server-first: answer with the client-final the caller prepared
        return {"server_first": payload[4:].decode()}
    assert kind == b"E"
    return codec.parse_error_fields(payload)


def test_a_client_claiming_the_agent_cannot_bind_over_tls_is_refused_as_a_downgrade(
    agent_factory: Any, tmp_path: Path
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    running = agent_factory(tls_cert=cert, tls_key=key)
    _sock, client = _tls_client(running.port, "alice")
    error = _sasl_error(client, "SCRAM-SHA-256", "y,,n=alice,r=abcdefgh")
    client.close()
    assert error["C"] == "28000" and "downgrade" in error["M"]


def test_a_proof_bound_to_another_certificate_is_refused(
    agent_factory: Any, control_plane: Any, tmp_path: Path
) -> None:
    """A man in the middle terminating TLS with his own certificate cannot relay a
    SCRAM-SHA-256-PLUS login: the client's binding names the certificate it saw."""
    cert, key = self_signed_certificate(tmp_path)
    running = agent_factory(tls_cert=cert, tls_key=key)
    _sock, client = _tls_client(running.port, "alice")
    scram = ScramClient(
        ["SCRAM-SHA-256-PLUS"],
        "alice",
        "wdn_alice",
        channel_binding=("tls-server-end-point", b"\x00" * 32),  # the attacker's cert hash
    )
    answer = _sasl_error(client, "SCRAM-SHA-256-PLUS", scram.get_client_first())
    scram.set_server_first(answer["server_first"])
    client.send(codec.password_message(scram.get_client_final().encode()))
    kind, payload = client.read()
    client.close()
    assert kind == b"E"
    assert "channel binding does not match" in codec.parse_error_fields(payload)["M"]
    # Audited as a failed login that matched no token.
    assert [login["token_id"] for login in control_plane.logins] == [None]


def _login_through_relay(running: Any, token: str, **extra: Any) -> bytes:
    relay = CapturingRelay(running.port)
    try:
        dsn = running.dsn("alice", token=token).replace(
            f"port={running.port}", f"port={relay.port}"
        )
        with psycopg.connect(dsn, autocommit=True, **extra) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        relay.close()
    return bytes(relay.sent)


def test_the_token_never_crosses_the_network_with_scram(agent_factory: Any) -> None:
    # Control: with a cleartext password (explicitly allowed without TLS) the relay sees it.
    insecure = agent_factory(client_auth="password", allow_insecure_listen=True)
    assert b"wdn_alice" in _login_through_relay(insecure, "wdn_alice")
    scram = agent_factory()
    captured = _login_through_relay(scram, "wdn_alice")
    assert b"SCRAM-SHA-256" in captured and b"alice" in captured
    assert b"wdn_alice" not in captured


def test_cleartext_passwords_are_refused_without_tls_and_accepted_over_it(
    agent_factory: Any, tmp_path: Path
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    running = agent_factory(client_auth="password", tls_cert=cert, tls_key=key)
    with pytest.raises(psycopg.OperationalError, match="cleartext passwords only over TLS"):
        psycopg.connect(running.dsn("alice"))
    dsn = running.dsn("alice").replace("sslmode=disable", "sslmode=require")
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("SELECT 1").fetchone() == (1,)


def _agent_command(*extra: str) -> subprocess.CompletedProcess[str]:
    args = ["--control-plane", "http://127.0.0.1:9", "--datasource", "shop", *extra]
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_listening_beyond_loopback_with_cleartext_and_no_tls_refuses_to_start(
    agent_factory: Any,
) -> None:
    refused = _agent_command("--listen", f"0.0.0.0:{free_port()}", "--client-auth", "password")
    assert refused.returncode == 2
    assert "refusing to listen on 0.0.0.0 with --client-auth password and no TLS" in (
        refused.stderr
    )
    with pytest.raises(InsecureListen, match="--allow-insecure-listen"):
        agent_factory(listen_host="0.0.0.0", client_auth="password")
    # Explicitly allowed, it starts (and takes the token in clear, as the operator chose).
    allowed = agent_factory(
        listen_host="0.0.0.0", client_auth="password", allow_insecure_listen=True
    )
    with psycopg.connect(allowed.dsn("alice"), autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_scram_listens_beyond_loopback_without_tls(agent_factory: Any) -> None:
    running = agent_factory(listen_host="0.0.0.0")
    assert running.agent.server is not None
    bound = {sock.getsockname()[0] for sock in running.agent.server.sockets}
    assert bound == {"0.0.0.0"}
    with socket.create_connection(("127.0.0.1", running.port), timeout=5):
        pass
    with psycopg.connect(running.dsn("alice"), autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
