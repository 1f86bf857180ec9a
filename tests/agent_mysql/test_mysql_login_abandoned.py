"""The MySQL agent follows up a mysql_native_password login the control plane audited as
accepted whose session then never starts, as the PostgreSQL agent does a SCRAM one
(tests/agent/test_login_abandoned.py): by the ``login_sequence`` the control plane answered
that login with, so of two logins of one token from two addresses only the abandoned one is
followed up; a token sent as a cleartext password is followed up the same way."""

from __future__ import annotations

import subprocess
from typing import Any

import pymysql
import pytest

from tests.agent.conftest import wait_for


def test_a_login_whose_upstream_refuses_is_followed_up_as_abandoned(
    agent: Any, control_plane: Any
) -> None:
    with pytest.raises(pymysql.err.OperationalError, match="cannot log in to the database"):
        agent.connect(database="warden_no_such_database")
    (login,) = control_plane.logins
    assert login["mechanism"] == "mysql_native_password" and login["token_id"] == 1
    wait_for(lambda: len(control_plane.abandoned_logins) == 1)
    (abandoned,) = control_plane.abandoned_logins
    assert abandoned["reason"].startswith("Warden: cannot log in to the database")
    for field in ("identity", "token_id", "mechanism", "source_address"):
        assert abandoned[field] == login[field], field
    assert list(control_plane.accepted_logins) == [abandoned["login_sequence"]]
    with agent.connect() as conn, conn.cursor() as cursor:  # a session: no follow-up
        cursor.execute("SELECT 1")
    assert len(control_plane.abandoned_logins) == 1
    assert control_plane.refused_follow_ups == []


def test_of_two_logins_of_one_token_from_two_addresses_only_the_abandoned_one_is_followed_up(
    agent: Any, control_plane: Any
) -> None:
    """A session of alice's token from 127.0.0.2 is open when a login of the same token
    from 127.0.0.1 is abandoned (the cached answer forgotten, as another worker would not
    have it): the follow-up names the 127.0.0.1 login, the open session is left alone."""
    with agent.connect(bind_address="127.0.0.2") as session:
        agent.agent.forget_logins()
        with pytest.raises(pymysql.err.OperationalError, match="cannot log in to the database"):
            agent.connect(database="warden_no_such_database", bind_address="127.0.0.1")
        wait_for(lambda: len(control_plane.abandoned_logins) == 1)
        with session.cursor() as cursor:
            cursor.execute("SELECT 1")
    by_address = {
        login["source_address"]: sequence
        for sequence, login in control_plane.accepted_logins.items()
    }
    assert sorted(by_address) == ["127.0.0.1", "127.0.0.2"]
    (abandoned,) = control_plane.abandoned_logins
    assert abandoned["login_sequence"] == by_address["127.0.0.1"]
    assert abandoned["source_address"] == "127.0.0.1"
    assert control_plane.refused_follow_ups == []


def test_a_password_login_whose_upstream_refuses_is_followed_up_as_abandoned(
    agent_factory: Any, control_plane: Any
) -> None:
    agent = agent_factory(client_auth="password", mysql_cleartext_loopback=True)
    # The mariadb CLI answers caching_sha2 full authentication with the token in clear
    # (allowed here for loopback peers); PyMySQL and Connector/Python ask for an RSA key.
    cli = ["mariadb", "-h127.0.0.1", f"-P{agent.port}", "-ualice", "-pwdn_alice"]
    refused = subprocess.run(
        [*cli, "warden_no_such_database", "-e", "SELECT 1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 1 and "cannot log in to the database" in refused.stderr
    assert control_plane.logins == []  # checked as a password (agent/authenticate)
    ((sequence, login),) = control_plane.accepted_logins.items()
    assert (login["mechanism"], login["source_address"]) == ("password", "127.0.0.1")
    wait_for(lambda: len(control_plane.abandoned_logins) == 1)
    (abandoned,) = control_plane.abandoned_logins
    assert abandoned["login_sequence"] == sequence
    assert (abandoned["mechanism"], abandoned["token_id"]) == ("password", 1)
    assert abandoned["reason"].startswith("Warden: cannot log in to the database")
    assert control_plane.refused_follow_ups == []
