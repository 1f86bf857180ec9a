"""Client authentication with Warden tokens, fail-closed startup and upstream auth methods."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from agent.upstream import UpstreamConfig


def test_unknown_token_is_rejected_with_28P01(agent: Any) -> None:
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(agent.dsn("alice", token="wdn_wrong"))
    assert "28P01" in str(info.value) or "authentication failed" in str(info.value)
    assert "unknown or revoked" in str(info.value)


def test_token_of_another_identity_is_rejected(agent: Any) -> None:
    with pytest.raises(psycopg.OperationalError, match="authentication failed"):
        psycopg.connect(agent.dsn("alice", token="wdn_bob"))


def test_revoked_token_stops_working_after_the_cache_expires(
    agent: Any, control_plane: Any
) -> None:
    with agent.connect("bob"):
        pass
    control_plane.revoked.add("wdn_bob")
    agent.agent.forget_logins()  # stands in for the 30 s cache expiring
    with pytest.raises(psycopg.OperationalError, match="unknown or revoked"):
        psycopg.connect(agent.dsn("bob"))


def test_token_checks_are_cached(agent: Any, control_plane: Any) -> None:
    for _ in range(3):
        with agent.connect("dave"):
            pass
    assert control_plane.auth_calls == 1


def test_agent_without_any_valid_bundle_refuses_connections(
    agent_factory: Any, control_plane: Any, tmp_path: Path
) -> None:
    control_plane.down = True
    running = agent_factory(
        state_dir=tmp_path / "empty-state", bundle_public_key=control_plane.public_key_b64
    )
    with pytest.raises(psycopg.OperationalError, match="no valid policy bundle"):
        psycopg.connect(running.dsn("alice"))


def test_client_database_name_is_ignored_upstream_uses_datasource_credentials(agent: Any) -> None:
    with psycopg.connect(
        agent.dsn("root").replace("dbname=shop", "dbname=whatever"), autocommit=True
    ) as conn:
        user, db = conn.execute("SELECT current_user, current_database()").fetchone()
    assert user == "postgres" and db.startswith("warden_agent_test_")


@pytest.mark.parametrize(
    ("user", "password"),
    [("scramuser", "scram-secret"), ("md5user", "md5-secret"), ("postgres", "superpw")],
)
def test_upstream_password_authentication_methods(
    agent_factory: Any, auth_cluster: dict[str, Any], user: str, password: str
) -> None:
    running = agent_factory(
        upstream=UpstreamConfig("127.0.0.1", auth_cluster["port"], user, password, "postgres")
    )
    with running.connect("root") as conn:
        assert conn.execute("SELECT current_user").fetchone() == (user,)
        assert conn.execute("SELECT email FROM t").fetchone() == ("x@example.com",)


def test_wrong_upstream_password_gives_a_clear_error(
    agent_factory: Any, auth_cluster: dict[str, Any]
) -> None:
    running = agent_factory(
        upstream=UpstreamConfig("127.0.0.1", auth_cluster["port"], "scramuser", "nope", "postgres")
    )
    with pytest.raises(psycopg.OperationalError, match="could not connect to the upstream"):
        psycopg.connect(running.dsn("root"))
