"""One client's login that waits on an upstream that never answers holds up nobody else's:
while it waits, other clients of the same agent log in (their token checked with the
control plane, scram and password alike) and run statements at once.  The upstream here is
the real PostgreSQL server behind a relay that leaves the connections it is told to hold
unanswered, as a hung server or a stalled network path would."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from agent.postgres import session as session_module
from agent.upstream import UpstreamConfig
from tests.agent.conftest import PG_HOST, PG_PORT, wait_for

PROMPTLY = 10.0  # seconds; a login here takes milliseconds, a held one the 30 s deadline


class HangingRelay:
    """A TCP relay to PostgreSQL that accepts the connections it is told to hold and never
    answers them; every other connection is relayed to the server both ways."""

    def __init__(self) -> None:
        self.hold = 0  # how many of the next connections to leave unanswered
        self.held: list[socket.socket] = []
        self.relayed = 0
        self._sockets: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            if self.hold:
                self.hold -= 1
                self.held.append(client)
                continue
            server = socket.create_connection((PG_HOST, PG_PORT))
            self._sockets += (client, server)
            self.relayed += 1
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()
        for sock in self.held + self._sockets:
            sock.close()


@pytest.fixture
def relay() -> Iterator[HangingRelay]:
    hanging = HangingRelay()
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
    hung: list[threading.Thread] = []

    def hang(user: str) -> None:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(agent.dsn(user, connect_timeout=20))

    # Each round: one more login waits on its upstream (they pile up), then a login of
    # another user and one of the hung user's own token (its cached answer forgotten, as
    # another worker would not have it) each reach the control plane and run a statement.
    rounds = [("alice", "bob"), ("carol", "dave"), ("root", "bot")]
    for hung_user, other in rounds:
        relay.hold += 1
        hung.append(threading.Thread(target=hang, args=(hung_user,), daemon=True))
        hung[-1].start()
        wait_for(lambda: len(relay.held) == len(hung))
        agent.agent.forget_logins()  # the hung login's answer is cached by now: it is past it
        for user in (other, hung_user):
            checked = control_plane.auth_calls
            started = time.monotonic()
            with psycopg.connect(agent.dsn(user), autocommit=True) as conn:
                assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
            took = time.monotonic() - started
            assert took < PROMPTLY, f"{user}'s login beside {hung_user}'s took {took:.1f} s"
            assert control_plane.auth_calls == checked + 1, user  # not a cached answer
            agent.agent.forget_logins()
    assert all(thread.is_alive() for thread in hung)  # still waiting on their upstream
    assert relay.relayed == 2 * len(rounds)


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
