"""Logins through the real agent against the real control plane: SCRAM-SHA-256 against
the verifiers Warden made when the token was created, and tokens older than verifiers."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agent.testing import self_signed_certificate
from tests.integration.conftest import person_token, wait_until


def test_psql_logs_in_with_scram_and_the_login_is_audited(start_agent: Any, requester: Any):
    from audit.models import AuditEvent

    agent = start_agent()
    token = person_token(requester)
    psql = ["psql", "-h", "127.0.0.1", "-p", str(agent.port), "-U", requester.username]
    result = subprocess.run(
        [*psql, "-d", "shop", "-At", "-c", "SELECT count(*) FROM customers"],
        env={**os.environ, "PGPASSWORD": token, "PGSSLMODE": "disable"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    login = wait_until(
        lambda: AuditEvent.objects.filter(action="auth.agent_login").first(), 10, "the login"
    )
    assert login.details["mechanism"] == "SCRAM-SHA-256"
    assert login.details["identity"] == requester.username


def test_a_token_older_than_verifiers_logs_in_with_scram_after_one_login_over_tls(
    start_agent: Any, requester: Any, tmp_path: Path
):
    from governance.models import TokenVerifier

    token = person_token(requester, "old")
    TokenVerifier.objects.all().delete()  # as a token made before verifiers existed
    scram = start_agent()
    with pytest.raises(psycopg.OperationalError, match="unknown or revoked access token"):
        scram.connect(requester.username, token)

    cert, key = self_signed_certificate(tmp_path)
    password = start_agent("--client-auth", "password", "--tls-cert", cert, "--tls-key", key)
    dsn = password.dsn(requester.username, token).replace("sslmode=disable", "sslmode=require")
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)

    fresh = start_agent()  # a new agent: no cached verifiers
    with fresh.connect(requester.username, token) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
