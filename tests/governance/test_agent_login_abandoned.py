"""An agent's follow-up to a login it reported accepted whose session never started: audited
beside the login as ``auth.agent_login_abandoned`` (same identity, token, mechanism and
address, and why), so the trail holds no accepted login that stands for a session that did
not exist."""

from __future__ import annotations

from audit.models import AuditEvent
from governance.tokens import token_create

LOGINS = "/api/v1/agent/logins"
ABANDONED = "/api/v1/agent/logins/abandoned"


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
    assert agent_client.post(LOGINS, login, format="json").status_code == 200

    reason = "warden agent could not connect to the upstream database: refused"
    response = agent_client.post(ABANDONED, {**login, "reason": reason}, format="json")

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


def test_a_follow_up_needs_a_token_and_a_reason(agent_client, shop, alice):
    body = {"datasource": "shop", "identity": "alice", "mechanism": "SCRAM-SHA-256"}

    assert agent_client.post(ABANDONED, {**body, "token_id": 1}, format="json").status_code == 400
    assert agent_client.post(ABANDONED, {**body, "reason": "x"}, format="json").status_code == 400
    assert not AuditEvent.objects.filter(action="auth.agent_login_abandoned").exists()
