"""pgbench in every query mode through the agent, and TLS termination at the agent."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agent.testing import self_signed_certificate


@pytest.fixture(scope="module")
def pgbench_tables(pg_database: str) -> str:
    subprocess.run(
        [
            "/usr/bin/pgbench",
            "-i",
            "-q",
            "-s",
            "1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            pg_database,
        ],
        check=True,
        capture_output=True,
    )
    return pg_database


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench_runs_through_the_agent(agent: Any, pgbench_tables: str, mode: str) -> None:
    env = {**os.environ, "PGPASSWORD": "wdn_root"}
    result = subprocess.run(
        [
            "/usr/bin/pgbench",
            "-n",
            "-S",
            "-c",
            "4",
            "-j",
            "2",
            "-t",
            "200",
            "-M",
            mode,
            "-h",
            "127.0.0.1",
            "-p",
            str(agent.port),
            "-U",
            "root",
            "shop",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"number of transactions actually processed: 800/800", result.stdout)
    agent.flush_audit()


def test_pgbench_tpcb_writes_are_allowed_and_audited(
    agent: Any, pgbench_tables: str, control_plane: Any
) -> None:
    env = {**os.environ, "PGPASSWORD": "wdn_root"}
    result = subprocess.run(
        [
            "/usr/bin/pgbench",
            "-n",
            "-c",
            "2",
            "-t",
            "50",
            "-M",
            "prepared",
            "-h",
            "127.0.0.1",
            "-p",
            str(agent.port),
            "-U",
            "root",
            "shop",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    agent.flush_audit()
    kinds = {e["kind"] for e in control_plane.events.values()}
    assert {"update", "insert", "select"} <= kinds


def test_tls_is_offered_when_a_certificate_is_configured(
    agent_factory: Any, tmp_path: Path
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    running = agent_factory(tls_cert=cert, tls_key=key)
    dsn = running.dsn("alice").replace("sslmode=disable", "sslmode=require")
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("SELECT email FROM customers LIMIT 1").fetchone() == (
            "****@example.com",
        )


def test_plaintext_sent_behind_an_ssl_request_is_refused_not_read_as_tls(
    agent_factory: Any, tmp_path: Path
) -> None:
    """PostgreSQL's rule since CVE-2021-23214: bytes in front of the agent's answer to an
    SSLRequest (libpq waits for it) are a man in the middle's, which would otherwise be read
    as the first bytes of the encrypted stream.  Refused with 08P01; a client that waits,
    as libpq does, still gets TLS."""
    import socket
    import struct

    cert, key = self_signed_certificate(tmp_path)
    running = agent_factory(tls_cert=cert, tls_key=key)
    ssl_request = struct.pack("!ii", 8, 80877103)
    params = b"user\0alice\0database\0shop\0\0"
    startup = struct.pack("!ii", 8 + len(params), 196608) + params
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        sock.sendall(ssl_request + startup)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer[:1] == b"E" and b"C08P01\0" in answer, answer
    assert b"received unencrypted data after SSL request" in answer
    dsn = running.dsn("alice").replace("sslmode=disable", "sslmode=require")
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("SELECT 1").fetchone() == (1,)
