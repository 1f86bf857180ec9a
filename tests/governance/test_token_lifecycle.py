"""Least-privilege tokens: agent tokens bound to their datasources, personal defaults,
expiry, rotation, and API fields a caller may not set refused with a 403 naming them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from governance.models import AccessToken, DataSource
from tests.audit.conftest import agent_event
from tests.factories import DataSourceFactory

pytestmark = pytest.mark.django_db
TOKENS = "/api/v1/tokens/"


@pytest.fixture
def warehouse(db) -> DataSource:
    return DataSourceFactory(name="warehouse")


def _beat(name: str) -> dict:
    return {"datasource": name, "address": "10.1.2.3:6432", "started_at": "2026-12-04T10:00:00Z"}


def _refused_as_unserved(response, name: str) -> None:
    assert response.status_code == 403, response.content
    body = response.json()
    assert (
        body["fields"] == {"datasource": [body["detail"]]} or "events.datasource" in body["fields"]
    )
    assert name in body["detail"]


def test_an_agent_token_for_shop_cannot_act_for_another_datasource(
    agent_client, shop, warehouse, alice
):
    """The control: the same token fetches shop's bundle and registers for shop."""
    assert agent_client.get("/api/v1/agent/bundle?datasource=shop").status_code == 200
    assert (
        agent_client.post("/api/v1/agent/heartbeat", _beat("shop"), format="json").status_code
        == 200
    )

    bundle = agent_client.get("/api/v1/agent/bundle?datasource=warehouse")
    beat = agent_client.post("/api/v1/agent/heartbeat", _beat("warehouse"), format="json")
    login = agent_client.post(
        "/api/v1/agent/authenticate",
        {"datasource": "warehouse", "identity": "alice", "token": "wdn_x"},
        format="json",
    )
    audit = agent_client.post(
        "/api/v1/agent/audit", {"events": [agent_event(datasource="warehouse")]}, format="json"
    )
    for response in (bundle, beat, login):
        _refused_as_unserved(response, "warehouse")
    assert audit.status_code == 403 and "warehouse" in audit.json()["detail"]
    assert not warehouse.agents.exists()
    assert not AuditEvent.objects.filter(datasource_name="warehouse").exists()


def test_an_admins_agent_token_cannot_use_the_admins_api_rights(admin, shop, bearer_client, api_as):
    """The issue's attack: the agent token on a database host creating datasources."""
    from governance.tokens import token_create

    _token, secret = token_create(
        actor=admin, user=admin, name="edge", is_agent=True, datasources=[shop]
    )
    body = {"name": "evil", "engine": "sqlite", "database": "/etc/passwd"}

    refused = bearer_client(secret).post("/api/v1/datasources/", body, format="json")
    as_admin = api_as(admin).get("/api/v1/datasources/")

    assert refused.status_code == 403 and "agent" in refused.json()["detail"]
    assert as_admin.status_code == 200  # the admin's own session keeps its rights
    assert not DataSource.objects.filter(name="evil").exists()


def test_a_personal_token_defaults_to_query_and_requests_and_expires(api_as, requester, settings):
    settings.WARDEN_TOKEN_DEFAULT_DAYS = 30

    response = api_as(requester).post(TOKENS, {"name": "laptop"}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["scopes"] == ["query", "requests"]
    expires = AccessToken.objects.get(pk=response.json()["id"]).expires_at
    assert abs(expires - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)


@pytest.mark.parametrize(
    "body,field",
    [
        ({"name": "x", "is_agent": True}, "is_agent"),
        ({"name": "x", "scopes": ["api:admin"]}, "scopes"),
        ({"name": "x", "scopes": ["query"], "datasources": ["shop"]}, "datasources"),
        ({"name": "x", "user": "ada_admin"}, "user"),
        ({"name": "x", "prefix": "wdn_chosen"}, "prefix"),
        ({"name": "x", "revoked_at": None}, "revoked_at"),
    ],
)
def test_a_requester_setting_a_field_they_may_not_gets_403_naming_it(
    api_as, requester, admin, shop, body, field
):
    response = api_as(requester).post(TOKENS, body, format="json")

    assert response.status_code == 403, response.content
    assert response.json()["code"] == "not_allowed"
    assert field in response.json()["fields"]
    assert not AccessToken.objects.filter(user=requester).exists()


def test_an_admin_creates_an_agent_token_for_a_service_account(
    api_as, admin, shop, enforcement_agent
):
    response = api_as(admin).post(
        TOKENS,
        {"name": "edge", "user": "warden_agent", "is_agent": True, "datasources": ["shop"]},
        format="json",
    )

    assert response.status_code == 201, response.content
    assert response.json()["scopes"] == ["agent"] and response.json()["datasources"] == ["shop"]
    assert AccessToken.objects.get(pk=response.json()["id"]).user == enforcement_agent


def test_an_agent_token_must_serve_a_datasource(api_as, admin):
    response = api_as(admin).post(TOKENS, {"name": "edge", "is_agent": True}, format="json")

    assert response.status_code == 400 and "datasources" in response.json()["fields"]


def test_rotation_gives_a_new_secret_with_the_same_scopes_and_revokes_the_old(
    api_as, bearer_client, admin, shop, enforcement_agent
):
    from governance.tokens import token_create

    old, old_secret = token_create(
        actor=admin, user=enforcement_agent, name="edge", is_agent=True, datasources=[shop]
    )
    response = api_as(admin).post(f"{TOKENS}{old.pk}/rotate/", format="json")

    assert response.status_code == 201, response.content
    new_secret = response.json()["token"]
    assert response.json()["scopes"] == ["agent"] and response.json()["datasources"] == ["shop"]
    assert response.json()["rotated_from"] == old.pk
    assert bearer_client(new_secret).get("/api/v1/agent/bundle?datasource=shop").status_code == 200
    assert bearer_client(old_secret).get("/api/v1/agent/bundle?datasource=shop").status_code == 401
    again = api_as(admin).post(f"{TOKENS}{old.pk}/rotate/", format="json")
    assert again.status_code == 409


def test_someone_elses_token_cannot_be_rotated(api_as, requester, alice):
    from governance.tokens import token_create

    token, _secret = token_create(actor=alice, user=alice, name="psql")

    assert api_as(requester).post(f"{TOKENS}{token.pk}/rotate/").status_code == 404
    assert AccessToken.objects.get(pk=token.pk).revoked_at is None


def test_a_token_without_the_query_scope_cannot_connect_through_an_agent(
    agent_client, shop, reviewer
):
    from governance.tokens import token_create

    _token, read_only = token_create(actor=reviewer, user=reviewer, name="bi", scopes=["api:read"])
    _token, querying = token_create(actor=reviewer, user=reviewer, name="psql")
    login = {"datasource": "shop", "identity": "rex_reviewer"}

    refused = agent_client.post(
        "/api/v1/agent/authenticate", {**login, "token": read_only}, format="json"
    )
    allowed = agent_client.post(
        "/api/v1/agent/authenticate", {**login, "token": querying}, format="json"
    )

    assert refused.status_code == 401 and "query scope" in refused.json()["detail"]
    assert allowed.status_code == 200


def test_the_tokens_page_shows_and_sets_scopes(client, reviewer):
    client.force_login(reviewer)

    client.post("/tokens/", {"name": "bi", "scopes": ["api:read"], "expires_in_days": "7"})
    page = client.get("/tokens/").content.decode()

    token = AccessToken.objects.get(user=reviewer, name="bi")
    assert token.scopes == ["api:read"]
    assert "api:read" in page


def test_the_tokens_page_refuses_a_scope_beyond_the_role(client, requester):
    client.force_login(requester)

    response = client.post("/tokens/", {"name": "x", "scopes": ["api:admin"]})

    assert response.status_code == 200 and "api:admin" in response.content.decode()
    assert not AccessToken.objects.filter(user=requester).exists()
