"""An agent's follow-up to a login it reported accepted whose session never started: audited
beside exactly that login (the ``login_sequence`` the accepted answer carried) as
``auth.agent_login_abandoned`` (same identity, token, mechanism and address, and why), so
the trail holds no accepted login that stands for a session that did not exist, and the
follow-up of one of two logins of a token in flight at once lands on that one."""

from __future__ import annotations

import asyncio
from typing import Any

from agent.controlplane import ControlPlaneClient
from agent.logins import Logins, ReportedLogin
from audit.models import AuditEvent
from governance.tokens import token_create

LOGINS = "/api/v1/agent/logins"
ABANDONED = "/api/v1/agent/logins/abandoned"
AUTHENTICATE = "/api/v1/agent/authenticate"


def test_an_abandoned_login_is_audited_beside_the_login(agent_client, shop, alice):
    token, _secret = token_create(actor=alice, user=alice, name="psql")
    login = {
        "datasource": "shop",
        "identity": "alice",
        "token_id": token.pk,
        "mechanism": "SCRAM-SHA-256-PLUS",
        "source_address": "10.1.2.3",
        "application": "psql",
    }
    answer = agent_client.post(LOGINS, login, format="json").json()

    reason = "warden agent could not connect to the upstream database: refused"
    follow_up = {**login, "login_sequence": answer["login_sequence"], "reason": reason}
    response = agent_client.post(ABANDONED, follow_up, format="json")

    assert response.status_code == 204
    accepted = AuditEvent.objects.get(action="auth.agent_login")
    abandoned = AuditEvent.objects.get(action="auth.agent_login_abandoned")
    assert abandoned.sequence == accepted.sequence + 1
    assert (abandoned.actor, abandoned.target_id) == (accepted.actor, accepted.target_id)
    assert abandoned.source_address == "10.1.2.3"
    assert abandoned.details["token"] == token.prefix == accepted.details["token"]
    assert abandoned.details["mechanism"] == "SCRAM-SHA-256-PLUS"
    assert abandoned.details["application"] == "psql"
    assert abandoned.details["reason"] == reason
    assert abandoned.details["login_sequence"] == accepted.sequence == answer["login_sequence"]


def test_a_follow_up_needs_a_token_and_a_reason(agent_client, shop, alice):
    body = {"datasource": "shop", "identity": "alice", "mechanism": "SCRAM-SHA-256"}

    named = {**body, "login_sequence": 1}
    assert agent_client.post(ABANDONED, {**named, "token_id": 1}, format="json").status_code == 400
    assert agent_client.post(ABANDONED, {**named, "reason": "x"}, format="json").status_code == 400
    assert not AuditEvent.objects.filter(action="auth.agent_login_abandoned").exists()


def _login_from(agent_client: Any, token_id: int, address: str) -> int:
    login = {
        "datasource": "shop",
        "identity": "alice",
        "token_id": token_id,
        "mechanism": "SCRAM-SHA-256",
        "source_address": address,
    }
    response = agent_client.post(LOGINS, login, format="json")
    assert response.status_code == 200, response.content
    return int(response.json()["login_sequence"])


def test_of_two_logins_of_one_token_in_flight_the_abandoned_one_is_followed_up(
    agent_client, shop, alice
):
    """Two workers of one agent take a login of the same token from two addresses at once;
    the first one's upstream refuses.  The follow-up lands on the first login, not on the
    latest login of that token (which is what a match by token and recency took)."""
    token, _secret = token_create(actor=alice, user=alice, name="psql")
    first = _login_from(agent_client, token.pk, "10.0.0.1")
    second = _login_from(agent_client, token.pk, "10.0.0.2")
    follow_up = {
        "datasource": "shop",
        "identity": "alice",
        "token_id": token.pk,
        "login_sequence": first,
        "mechanism": "SCRAM-SHA-256",
        "source_address": "10.0.0.1",
        "reason": "warden agent could not connect to the upstream database: refused",
    }

    assert agent_client.post(ABANDONED, follow_up, format="json").status_code == 204

    (abandoned,) = AuditEvent.objects.filter(action="auth.agent_login_abandoned")
    assert abandoned.details["login_sequence"] == first != second
    login = AuditEvent.objects.get(sequence=abandoned.details["login_sequence"])
    assert login.source_address == abandoned.source_address == "10.0.0.1"


def test_a_password_login_is_followed_up_too(agent_client, shop, alice):
    """A token sent as a cleartext password (agent/authenticate) is answered with its
    login's event like a reported one, and followed up as mechanism "password"."""
    token, secret = token_create(actor=alice, user=alice, name="psql")
    check = {"datasource": "shop", "identity": "alice", "token": secret}
    answer = agent_client.post(
        AUTHENTICATE, {**check, "source_address": "10.0.0.3", "application": "psql"}, format="json"
    ).json()
    login = AuditEvent.objects.get(action="auth.agent_login")
    assert (answer["token_id"], answer["login_sequence"]) == (token.pk, login.sequence)
    assert login.details["mechanism"] == "password" and login.source_address == "10.0.0.3"
    follow_up = {
        "datasource": "shop",
        "identity": "alice",
        "token_id": token.pk,
        "login_sequence": login.sequence,
        "mechanism": "password",
        "source_address": "10.0.0.3",
        "application": "psql",
        "reason": "the client went away",
    }

    assert agent_client.post(ABANDONED, follow_up, format="json").status_code == 204
    abandoned = AuditEvent.objects.get(action="auth.agent_login_abandoned")
    assert abandoned.details["login_sequence"] == login.sequence
    assert abandoned.details["mechanism"] == "password"


def test_the_agent_s_own_logins_follow_up_the_login_they_reported(
    live_server, admin, enforcement_agent, alice, shop
):
    """End to end over HTTP with agent/logins.py and agent/controlplane.py, unmodified: two
    workers (each its own Logins and answer cache) report a SCRAM login of alice's one token
    from two addresses, a third checks it as a cleartext password; the first and the third
    are abandoned.  Each follow-up lands on its own login's event."""
    _agent, agent_secret = token_create(
        actor=admin, user=enforcement_agent, name="agent", is_agent=True, datasources=[shop]
    )
    _token, alice_secret = token_create(actor=alice, user=alice, name="psql")

    async def scram_from(worker: Logins, address: str) -> ReportedLogin | None:
        verifiers = await worker.verifiers("alice")
        _auth, login = await worker.record(
            verifiers,
            verifiers.tokens[0],  # as if the client's proof matched it
            mechanism="SCRAM-SHA-256",
            source_address=address,
            application="psql",
        )
        return login

    async def run() -> list[ReportedLogin | None]:
        client = ControlPlaneClient(live_server.url, agent_secret)
        workers = [Logins(client, "shop", stale_seconds=60) for _ in range(3)]
        try:
            reported = [
                await scram_from(workers[0], "10.0.0.1"),
                await scram_from(workers[1], "10.0.0.2"),
                (await workers[2].check_password("alice", alice_secret, source_address="10.0.0.3"))[
                    1
                ],
            ]
            for worker, login in ((workers[0], reported[0]), (workers[2], reported[2])):
                assert login is not None
                await worker.abandoned(login, "the client went away")
        finally:
            await client.close()
        return reported

    reported = asyncio.run(run())

    logins = {
        event.source_address: event.sequence
        for event in AuditEvent.objects.filter(action="auth.agent_login")
    }
    assert [login.login_sequence if login else None for login in reported] == [
        logins["10.0.0.1"],
        logins["10.0.0.2"],
        logins["10.0.0.3"],
    ]
    followed = {
        event.details["login_sequence"]: (event.source_address, event.details["mechanism"])
        for event in AuditEvent.objects.filter(action="auth.agent_login_abandoned")
    }
    assert followed == {
        logins["10.0.0.1"]: ("10.0.0.1", "SCRAM-SHA-256"),
        logins["10.0.0.3"]: ("10.0.0.3", "password"),
    }
