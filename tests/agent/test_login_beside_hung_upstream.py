"""One client's login that waits on an upstream that never answers holds up nobody else's:
while it waits, other clients of the same agent log in (their token checked with the
control plane, scram and password alike) and run statements at once.  The upstream here is
the real PostgreSQL server behind a relay that leaves the connections it is told to hold
unanswered, as a hung server or a stalled network path would."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from agent.postgres import session as session_module
from agent.upstream import UpstreamConfig
from tests.agent.conftest import PG_HOST, PG_PORT, wait_for
from tests.relays import HangingRelay, assert_logins_beside_hung_ones


@pytest.fixture
def relay() -> Iterator[HangingRelay]:
    hanging = HangingRelay(PG_HOST, PG_PORT)
    yield hanging
    hanging.close()


@pytest.fixture
def agent_behind(
    relay: HangingRelay, agent_factory: Any, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """Starts an agent whose upstream is the relay, taking tokens as ``client_auth`` says,
    whose logins end after ``timeout`` seconds."""

    def start(client_auth: str, timeout: float) -> Any:
        monkeypatch.setattr(session_module, "AUTHENTICATION_TIMEOUT", timeout)
        return agent_factory(
            upstream=UpstreamConfig(PG_HOST, relay.port, "postgres", "", pg_database),
            client_auth=client_auth,
            allow_insecure_listen=True,
        )

    return start


@pytest.mark.parametrize("client_auth", ["scram", "password"])
def test_a_login_hung_on_its_upstream_does_not_hold_up_other_logins(
    agent_behind: Any, control_plane: Any, relay: HangingRelay, client_auth: str
) -> None:
    agent = agent_behind(client_auth, timeout=30.0)

    def hang(user: str) -> None:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(agent.dsn(user, connect_timeout=20))

    def log_in(user: str) -> None:
        with psycopg.connect(agent.dsn(user), autocommit=True) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("postgres",)

    assert_logins_beside_hung_ones(relay, control_plane, hang, log_in, agent.agent.forget_logins)


@pytest.mark.parametrize("client_auth", ["scram", "password"])
def test_two_logins_of_one_token_hung_at_once_are_each_followed_up_as_themselves(
    agent_behind: Any, control_plane: Any, relay: HangingRelay, client_auth: str
) -> None:
    """Both logins reach the control plane and wait on their upstream at the same time;
    each follow-up names its own login.  The cached answer is forgotten once the first
    login reached its upstream: the control plane counts a login before its answer reaches
    the agent, so forgetting as soon as it counted can come before the agent caches that
    answer, and the second login is then answered from the cache (never reaching the
    control plane, by design) rather than stalled."""
    agent = agent_behind(client_auth, timeout=2.0)
    relay.hold = 2

    def log_in() -> None:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(agent.dsn("alice", connect_timeout=10))

    clients = [threading.Thread(target=log_in, daemon=True) for _ in range(2)]
    for started, client in enumerate(clients, 1):
        client.start()
        wait_for(lambda started=started: len(relay.held) == started)
        agent.agent.forget_logins()
    assert len(control_plane.accepted_logins) == 2
    wait_for(lambda: len(control_plane.abandoned_logins) == 2)
    followed = sorted(abandoned["login_sequence"] for abandoned in control_plane.abandoned_logins)
    assert followed == sorted(control_plane.accepted_logins)
    assert {abandoned["reason"] for abandoned in control_plane.abandoned_logins} == {
        "the login did not finish within 2 s"
    }
    assert control_plane.refused_follow_ups == []
    for client in clients:
        client.join(10)
