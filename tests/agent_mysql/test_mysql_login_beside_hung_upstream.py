"""One MySQL client's login that waits on an upstream that never answers holds up nobody
else's, as on PostgreSQL (tests/agent/test_login_beside_hung_upstream.py): while it waits,
other clients of the same agent log in (their token checked with the control plane) and
run statements at once.  The upstream is the real MariaDB server behind a relay that
leaves the connections it is told to hold unanswered, as a hung server would."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from agent.mysql import session as session_module
from agent.upstream import UpstreamConfig
from tests.agent_mysql.conftest import MY_HOST, MY_PORT
from tests.relays import HangingRelay, assert_logins_beside_hung_ones


@pytest.fixture
def relay() -> Iterator[HangingRelay]:
    hanging = HangingRelay(MY_HOST, MY_PORT)
    yield hanging
    hanging.close()


def test_a_mysql_login_hung_on_its_upstream_does_not_hold_up_other_logins(
    agent_factory: Any,
    control_plane: Any,
    relay: HangingRelay,
    mysql_database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(session_module, "LOGIN_TIMEOUT", 30.0)
    agent = agent_factory(
        upstream=UpstreamConfig(MY_HOST, relay.port, "root", "", mysql_database, sslmode="disable")
    )
    with agent.connect("bob") as conn, conn.cursor() as cursor:  # the upstream's version known
        cursor.execute("SELECT 1")

    def hang(user: str) -> None:
        with pytest.raises(pymysql.err.OperationalError):
            agent.connect(user, connect_timeout=20, read_timeout=20)

    def log_in(user: str) -> None:
        with agent.connect(user) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT CURRENT_USER()")
            assert cursor.fetchone()[0].startswith("root@")

    assert_logins_beside_hung_ones(relay, control_plane, hang, log_in, agent.agent.forget_logins)
