"""A login follow-up (``POST /api/v1/agent/logins/abandoned``) is only taken for the login it
names (``login_sequence``: the sequence of the ``auth.agent_login`` event, as the accepted
answer carried it), when the same agent reported it accepted, recently, for that token,
identity, mechanism, datasource, client address and application, and only once: otherwise
404 naming ``login_sequence``, and nothing is written, so an agent token cannot put
"alice's login abandoned" into the trail for a login that never was, nor beside another
login of the same token.  A missing,
mistyped or out-of-range sequence, out-of-range token ids and over-long addresses are 400s
naming the field."""

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


def _report(client: Any, token_id: int, **extra: Any) -> int:
    """Report an accepted login; its login_sequence."""
    response = client.post(LOGINS, _login(token_id, **extra), format="json")
    assert response.status_code == 200, response.content
    return int(response.json()["login_sequence"])


def _follow_up(client: Any, token_id: Any, login_sequence: Any, **extra: Any) -> Any:
    body = {**_login(token_id), "login_sequence": login_sequence, "reason": "x", **extra}
    return client.post(ABANDONED, body, format="json")


def _abandoned() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="auth.agent_login_abandoned"))


def _refused_naming(response: Any, status: int, field: str) -> None:
    assert response.status_code == status, response.content
    assert field in response.json()["fields"], response.json()


@pytest.fixture
def token(alice: Any) -> Any:
    created, _secret = token_create(actor=alice, user=alice, name="psql")
    return created


def test_the_accepted_answer_names_the_login_s_audit_event(agent_client, shop, token):
    answer = agent_client.post(LOGINS, _login(token.pk), format="json").json()
    login = AuditEvent.objects.get(action="auth.agent_login")
    assert (answer["token_id"], answer["login_sequence"]) == (token.pk, login.sequence)


def test_a_login_never_reported_is_not_followed_up(agent_client, shop, token):
    head = AuditEvent.objects.order_by("-sequence").first()
    for sequence in (head.sequence if head else 1, 999_999):
        _refused_naming(_follow_up(agent_client, token.pk, sequence), 404, "login_sequence")
    assert _abandoned() == []


def test_a_revoked_or_unknown_token_without_a_login_is_not_followed_up(agent_client, shop, token):
    token.revoked_at = timezone.now()
    token.save()
    _refused_naming(_follow_up(agent_client, token.pk, 1), 404, "login_sequence")
    _refused_naming(_follow_up(agent_client, 999_999, 1), 404, "login_sequence")
    assert _abandoned() == []


def test_a_login_revoked_after_it_was_accepted_is_still_followed_up(agent_client, shop, token):
    sequence = _report(agent_client, token.pk)
    token.revoked_at = timezone.now()
    token.save()
    assert _follow_up(agent_client, token.pk, sequence).status_code == 204
    (event,) = _abandoned()
    assert event.details["login_sequence"] == sequence


def test_each_login_is_followed_up_once(agent_client, shop, token):
    first, second = (_report(agent_client, token.pk) for _ in range(2))
    assert _follow_up(agent_client, token.pk, first).status_code == 204
    _refused_naming(_follow_up(agent_client, token.pk, first), 404, "login_sequence")
    assert _follow_up(agent_client, token.pk, second).status_code == 204
    _refused_naming(_follow_up(agent_client, token.pk, second), 404, "login_sequence")
    assert [event.details["login_sequence"] for event in _abandoned()] == [first, second]


def test_only_the_agent_that_reported_the_login_follows_it_up(
    agent_client, bearer_client, admin, shop, token
):
    sequence = _report(agent_client, token.pk)
    other_agent = UserFactory(username="other_agent", is_service_account=True)
    _other, secret = token_create(
        actor=admin, user=other_agent, name="other", is_agent=True, datasources=[shop]
    )
    other = bearer_client(secret)
    _refused_naming(_follow_up(other, token.pk, sequence), 404, "login_sequence")
    assert _abandoned() == []
    assert _follow_up(agent_client, token.pk, sequence).status_code == 204


def test_a_follow_up_names_the_login_s_identity_token_mechanism_datasource_and_client(
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
    alices_login = _report(agent, token.pk)
    bobs_login = _report(agent, bobs.pk, identity="bob")
    for wrong in (
        _follow_up(agent, token.pk, alices_login, identity="bob"),
        _follow_up(agent, bobs.pk, alices_login),  # alice with bob's token
        _follow_up(agent, bobs.pk, bobs_login),  # bob's login, as alice's
        _follow_up(agent, token.pk, alices_login, datasource="warehouse"),
        _follow_up(agent, token.pk, alices_login, mechanism="mysql_native_password"),
        _follow_up(agent, token.pk, alices_login, source_address="10.9.9.9"),  # another client
        _follow_up(agent, token.pk, alices_login, source_address=""),
        _follow_up(agent, token.pk, alices_login, application="nightly-export"),
    ):
        _refused_naming(wrong, 404, "login_sequence")
    assert _abandoned() == []
    assert _follow_up(agent, token.pk, alices_login).status_code == 204


def test_an_event_that_is_not_an_accepted_login_is_not_followed_up(agent_client, shop, token):
    refused = agent_client.post(LOGINS, _login(None), format="json")
    assert refused.status_code == 401
    failed = AuditEvent.objects.get(action="auth.agent_login_failed")
    _refused_naming(_follow_up(agent_client, token.pk, failed.sequence), 404, "login_sequence")
    sequence = _report(agent_client, token.pk)
    assert _follow_up(agent_client, token.pk, sequence).status_code == 204
    (follow_up,) = _abandoned()  # a follow-up is no login either
    _refused_naming(_follow_up(agent_client, token.pk, follow_up.sequence), 404, "login_sequence")
    assert len(_abandoned()) == 1


def test_a_login_older_than_the_window_is_not_followed_up(agent_client, shop, token, monkeypatch):
    sequence = _report(agent_client, token.pk)
    later = timezone.now() + agent_logins.FOLLOW_UP_WINDOW + timedelta(seconds=5)
    monkeypatch.setattr(agent_logins.timezone, "now", lambda: later)
    _refused_naming(_follow_up(agent_client, token.pk, sequence), 404, "login_sequence")
    assert _abandoned() == []


@pytest.mark.parametrize("token_id", [0, -1, 2**63, 2**70, "abc", None])
def test_a_token_id_out_of_range_is_a_400_naming_it(agent_client, shop, token_id):
    _refused_naming(_follow_up(agent_client, token_id, 1), 400, "token_id")


@pytest.mark.parametrize("login_sequence", [0, -1, 2**63, 2**70, "abc", "7", 7.5, True, None])
def test_a_login_sequence_mistyped_or_out_of_range_is_a_400_naming_it(
    agent_client, shop, token, login_sequence
):
    sequence = _report(agent_client, token.pk)
    response = _follow_up(agent_client, token.pk, login_sequence)
    _refused_naming(response, 400, "login_sequence")
    assert _abandoned() == []
    assert _follow_up(agent_client, token.pk, sequence).status_code == 204


def test_a_follow_up_without_a_login_sequence_is_a_400_naming_it(agent_client, shop, token):
    """The shape agents sent before the field: "some recent login of this token" is not
    matched any more (it took the wrong login when the token logged in twice at once)."""
    _report(agent_client, token.pk)
    body = {**_login(token.pk), "reason": "the client went away"}
    _refused_naming(agent_client.post(ABANDONED, body, format="json"), 400, "login_sequence")
    assert _abandoned() == []


@pytest.mark.parametrize("token_id", [-1, 2**63, 2**70])
def test_a_reported_login_s_token_id_out_of_range_is_a_400_naming_it(agent_client, shop, token_id):
    response = agent_client.post(LOGINS, _login(token_id), format="json")
    _refused_naming(response, 400, "token_id")


@pytest.mark.parametrize("path", [LOGINS, ABANDONED, AUTHENTICATE])
def test_a_source_address_over_100_characters_is_a_400_naming_it(agent_client, shop, token, path):
    body = {**_login(token.pk), "login_sequence": 1, "reason": "x", "source_address": "x" * 101}
    if path == AUTHENTICATE:
        body = {"datasource": "shop", "identity": "alice", "token": "wdn_x", **body}
        body.pop("token_id"), body.pop("mechanism"), body.pop("reason")
    elif path == LOGINS:
        body.pop("reason")
    _refused_naming(agent_client.post(path, body, format="json"), 400, "source_address")
    assert not AuditEvent.objects.filter(action__startswith="auth.agent_login").exists()
