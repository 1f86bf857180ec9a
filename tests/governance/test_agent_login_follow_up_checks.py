"""A login follow-up (``POST /api/v1/agent/logins/abandoned``) is only taken for a login
that the same agent reported accepted, recently, for that token, identity and datasource,
and only once per login: otherwise 404 naming ``token_id``, and nothing is written, so an
agent token cannot put "alice's login abandoned" into the trail for a login that never was.
Out-of-range ids and over-long addresses are 400s naming the field (they were 500s)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from governance.services import agent_logins
from governance.tokens import token_create
from tests.factories import DataSourceFactory, UserFactory

LOGINS = "/api/v1/agent/logins"
ABANDONED = "/api/v1/agent/logins/abandoned"
AUTHENTICATE = "/api/v1/agent/authenticate"


def _login(token_id: int, **extra: Any) -> dict[str, Any]:
    return {
        "datasource": "shop",
        "identity": "alice",
        "token_id": token_id,
        "mechanism": "SCRAM-SHA-256",
        "source_address": "10.1.2.3",
        **extra,
    }


def _follow_up(client: Any, token_id: int, **extra: Any) -> Any:
    return client.post(ABANDONED, {**_login(token_id), "reason": "x", **extra}, format="json")


def _abandoned() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="auth.agent_login_abandoned"))


def _refused_naming(response: Any, status: int, field: str) -> None:
    assert response.status_code == status, response.content
    assert field in response.json()["fields"], response.json()


@pytest.fixture
def token(alice: Any) -> Any:
    created, _secret = token_create(actor=alice, user=alice, name="psql")
    return created


def test_a_login_never_reported_is_not_followed_up(agent_client, shop, token):
    _refused_naming(_follow_up(agent_client, token.pk), 404, "token_id")
    assert _abandoned() == []


def test_a_revoked_or_unknown_token_without_a_login_is_not_followed_up(agent_client, shop, token):
    token.revoked_at = timezone.now()
    token.save()
    _refused_naming(_follow_up(agent_client, token.pk), 404, "token_id")
    _refused_naming(_follow_up(agent_client, 999_999), 404, "token_id")
    assert _abandoned() == []


def test_a_login_revoked_after_it_was_accepted_is_still_followed_up(agent_client, shop, token):
    assert agent_client.post(LOGINS, _login(token.pk), format="json").status_code == 200
    token.revoked_at = timezone.now()
    token.save()
    assert _follow_up(agent_client, token.pk).status_code == 204
    (event,) = _abandoned()
    accepted = AuditEvent.objects.get(action="auth.agent_login")
    assert event.details["login_sequence"] == accepted.sequence


def test_each_login_is_followed_up_once(agent_client, shop, token):
    for _ in range(2):
        assert agent_client.post(LOGINS, _login(token.pk), format="json").status_code == 200
    assert _follow_up(agent_client, token.pk).status_code == 204
    assert _follow_up(agent_client, token.pk).status_code == 204
    _refused_naming(_follow_up(agent_client, token.pk), 404, "token_id")
    logins = AuditEvent.objects.filter(action="auth.agent_login").order_by("-sequence")
    expected = [login.sequence for login in logins]  # the latest one first
    assert [event.details["login_sequence"] for event in _abandoned()] == expected


def test_only_the_agent_that_reported_the_login_follows_it_up(
    agent_client, bearer_client, admin, shop, token
):
    assert agent_client.post(LOGINS, _login(token.pk), format="json").status_code == 200
    other_agent = UserFactory(username="other_agent", is_service_account=True)
    _other, secret = token_create(
        actor=admin, user=other_agent, name="other", is_agent=True, datasources=[shop]
    )
    _refused_naming(_follow_up(bearer_client(secret), token.pk), 404, "token_id")
    assert _abandoned() == []


def test_a_follow_up_names_the_login_s_identity_and_datasource(
    bearer_client, admin, enforcement_agent, shop, token
):
    warehouse = DataSourceFactory(name="warehouse")
    _both, secret = token_create(
        actor=admin,
        user=enforcement_agent,
        name="both",
        is_agent=True,
        datasources=[shop, warehouse],
    )
    agent = bearer_client(secret)
    bob = UserFactory(username="bob")
    bobs, _secret = token_create(actor=bob, user=bob, name="psql")
    assert agent.post(LOGINS, _login(token.pk), format="json").status_code == 200
    assert agent.post(LOGINS, _login(bobs.pk, identity="bob"), format="json").status_code == 200
    _refused_naming(_follow_up(agent, token.pk, identity="bob"), 404, "token_id")
    _refused_naming(_follow_up(agent, bobs.pk), 404, "token_id")  # alice with bob's token
    _refused_naming(_follow_up(agent, token.pk, datasource="warehouse"), 404, "token_id")
    assert _abandoned() == []
    assert _follow_up(agent, token.pk).status_code == 204


def test_a_login_older_than_the_window_is_not_followed_up(agent_client, shop, token, monkeypatch):
    assert agent_client.post(LOGINS, _login(token.pk), format="json").status_code == 200
    later = timezone.now() + agent_logins.FOLLOW_UP_WINDOW + timedelta(seconds=5)
    monkeypatch.setattr(agent_logins.timezone, "now", lambda: later)
    _refused_naming(_follow_up(agent_client, token.pk), 404, "token_id")
    assert _abandoned() == []


@pytest.mark.parametrize("token_id", [0, -1, 2**63, 2**70, "abc", None])
def test_a_token_id_out_of_range_is_a_400_naming_it(agent_client, shop, token_id):
    _refused_naming(_follow_up(agent_client, token_id), 400, "token_id")


@pytest.mark.parametrize("token_id", [-1, 2**63, 2**70])
def test_a_reported_login_s_token_id_out_of_range_is_a_400_naming_it(agent_client, shop, token_id):
    response = agent_client.post(LOGINS, _login(token_id), format="json")
    _refused_naming(response, 400, "token_id")


@pytest.mark.parametrize("path", [LOGINS, ABANDONED, AUTHENTICATE])
def test_a_source_address_over_100_characters_is_a_400_naming_it(agent_client, shop, token, path):
    body = {**_login(token.pk), "reason": "x", "source_address": "x" * 101}
    if path == AUTHENTICATE:
        body = {"datasource": "shop", "identity": "alice", "token": "wdn_x", **body}
        body.pop("token_id"), body.pop("mechanism"), body.pop("reason")
    elif path == LOGINS:
        body.pop("reason")
    _refused_naming(agent_client.post(path, body, format="json"), 400, "source_address")
    assert not AuditEvent.objects.filter(action__startswith="auth.agent_login").exists()
