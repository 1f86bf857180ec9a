"""No token in clear for MySQL clients: mysql_native_password against the control plane's
verifiers by default; the token as a cleartext password only over TLS."""

from __future__ import annotations

import subprocess
from typing import Any

import MySQLdb
import pytest

from tests.agent.wire import CapturingRelay


def _cli(port: int, database: str, token: str, *extra: str) -> subprocess.CompletedProcess[str]:
    cli = ["mariadb", "-h127.0.0.1", f"-P{port}", "-ualice", f"-p{token}", "-N", "-B", *extra]
    return subprocess.run(
        [*cli, database, "-e", "SELECT email FROM customers WHERE id = 1"],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_mariadb_cli_logs_in_with_native_password_without_sending_the_token(
    agent_factory: Any, control_plane: Any, mysql_database: str
) -> None:
    # Control: with the token as a cleartext password (allowed for loopback peers) the
    # relay sees it.
    cleartext = agent_factory(client_auth="password", mysql_cleartext_loopback=True)
    relay = CapturingRelay(cleartext.port)
    result = _cli(relay.port, mysql_database, "wdn_alice")
    relay.close()
    assert result.returncode == 0, result.stderr
    assert b"wdn_alice" in relay.sent

    agent = agent_factory()
    relay = CapturingRelay(agent.port)
    result = _cli(relay.port, mysql_database, "wdn_alice")
    relay.close()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "****@example.com"
    assert b"alice" in relay.sent and b"wdn_alice" not in relay.sent
    assert [login["mechanism"] for login in control_plane.logins] == ["mysql_native_password"]
    assert control_plane.logins[0]["token_id"] is not None


def test_a_wrong_token_is_refused_with_1045(agent: Any, mysql_database: str) -> None:
    refused = _cli(agent.port, mysql_database, "wdn_bob")
    assert refused.returncode == 1
    assert "ERROR 1045" in refused.stderr and "unknown or revoked token" in refused.stderr
    with pytest.raises(MySQLdb.OperationalError) as info:
        MySQLdb.connect(host="127.0.0.1", port=agent.port, user="alice", password="wdn_wrong")
    assert info.value.args[0] == 1045


def test_mysqlclient_logs_in_and_reads_masked_rows(
    agent: Any, control_plane: Any, mysql_database: str
) -> None:
    conn = MySQLdb.connect(
        host="127.0.0.1",
        port=agent.port,
        user="dave",
        password="wdn_dave",
        database=mysql_database,
    )
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT email FROM customers WHERE id = 2")
        assert cursor.fetchall() == (("****@example.com",),)
    finally:
        conn.close()
    assert [login["mechanism"] for login in control_plane.logins] == ["mysql_native_password"]


def test_mysql_clear_password_is_refused_without_tls(agent: Any, mysql_database: str) -> None:
    refused = _cli(agent.port, mysql_database, "wdn_alice", "--default-auth=mysql_clear_password")
    assert refused.returncode == 1
    assert "ERROR 1045" in refused.stderr
    assert "cleartext password only over TLS" in refused.stderr
