"""The agent-facing API: agent tokens only, bundle with ETag/304, public key, client logins."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.utils import timezone

from audit.models import AuditEvent
from governance.crypto import signing_key_id
from governance.models import Tag
from governance.services import policy_rule_create
from governance.services.bundles import canonical_json
from governance.tokens import token_create, token_revoke

BUNDLE = "/api/v1/agent/bundle?datasource=shop"
PUBLIC_KEY = "/api/v1/agent/public-key"
AUTHENTICATE = "/api/v1/agent/authenticate"


@pytest.fixture
def alice_token(alice) -> str:
    _token, secret = token_create(actor=alice, user=alice, name="psql")
    return secret


def _endpoints(alice_token):
    return [
        ("get", BUNDLE, None),
        ("get", PUBLIC_KEY, None),
        ("post", AUTHENTICATE, {"datasource": "shop", "identity": "alice", "token": alice_token}),
        ("get", "/api/v1/agent/verifiers?datasource=shop&identity=alice", None),
        (
            "post",
            "/api/v1/agent/logins",
            {
                "datasource": "shop",
                "identity": "alice",
                "token_id": 1,
                "mechanism": "SCRAM-SHA-256",
            },
        ),
        (
            "post",
            "/api/v1/agent/logins/abandoned",
            {
                "datasource": "shop",
                "identity": "alice",
                "token_id": 1,
                "login_sequence": 1,
                "mechanism": "SCRAM-SHA-256",
                "reason": "the client went away",
            },
        ),
    ]


# ---------------------------------------------------------------- who may call


def test_requests_without_a_token_get_401(api_as, shop, alice_token):
    for method, url, body in _endpoints(alice_token):
        response = getattr(api_as(None), method)(url, body, format="json")
        assert response.status_code == 401, url
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_an_invalid_token_gets_401(bearer_client, shop, alice_token):
    for method, url, body in _endpoints(alice_token):
        response = getattr(bearer_client("wdn_not-a-real-token"), method)(url, body, format="json")
        assert response.status_code == 401, url


@pytest.mark.parametrize("person", ["admin", "reviewer", "auditor", "outsider", "ai_agent"])
def test_personal_tokens_that_are_not_agent_tokens_get_403_with_a_reason(
    request, bearer_client, shop, alice_token, person
):
    user = request.getfixturevalue(person)
    _token, secret = token_create(actor=user, user=user, name="personal")

    for method, url, body in _endpoints(alice_token):
        response = getattr(bearer_client(secret), method)(url, body, format="json")
        assert response.status_code == 403, url
        assert "agent token" in response.json()["detail"]


def test_an_ai_agents_own_token_is_not_an_agent_token(bearer_client, shop, ai_agent_token):
    assert bearer_client(ai_agent_token).get(BUNDLE).status_code == 403


def test_a_browser_session_is_never_an_agent(client, admin, shop):
    client.force_login(admin)

    assert client.get(BUNDLE).status_code == 401


def test_a_revoked_agent_token_gets_401(bearer_client, admin, enforcement_agent, shop):
    token, secret = token_create(
        actor=admin, user=enforcement_agent, name="old", is_agent=True, datasources=[shop]
    )
    token_revoke(actor=admin, token=token)

    assert bearer_client(secret).get(BUNDLE).status_code == 401


# ---------------------------------------------------------------- bundle


def test_agent_fetches_the_signed_bundle_with_an_etag(agent_client, shop, customers_email):
    response = agent_client.get(BUNDLE)

    envelope = response.json()
    assert response.status_code == 200
    assert response["ETag"] == f'"{envelope["bundle"]["version"]}"'
    assert envelope["key_id"] == signing_key_id()
    assert envelope["bundle"]["datasource"]["name"] == "shop"
    assert envelope["bundle"]["columns"][0]["column"] == "email"


def test_the_served_bundle_verifies_with_the_served_public_key(agent_client, shop, customers_email):
    envelope = agent_client.get(BUNDLE).json()
    key = agent_client.get(PUBLIC_KEY).json()

    public_key = Ed25519PublicKey.from_public_bytes(base64.b64decode(key["public_key"]))
    public_key.verify(base64.b64decode(envelope["signature"]), canonical_json(envelope["bundle"]))
    assert len(base64.b64decode(key["public_key"])) == 32
    assert key["key_id"] == envelope["key_id"]


def test_unchanged_bundle_answers_304_to_if_none_match(agent_client, shop, customers_email):
    etag = agent_client.get(BUNDLE)["ETag"]

    response = agent_client.get(BUNDLE, HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 304
    assert response["ETag"] == etag
    assert response.content == b""


def test_weak_and_listed_etags_also_match(agent_client, shop):
    etag = agent_client.get(BUNDLE)["ETag"]

    assert agent_client.get(BUNDLE, HTTP_IF_NONE_MATCH=f'"other", W/{etag}').status_code == 304


@pytest.mark.django_db(transaction=True)  # really committed: bundle caches move on commit
def test_a_changed_bundle_is_sent_again_with_a_new_etag(admin, agent_client, shop, customers_email):
    etag = agent_client.get(BUNDLE)["ETag"]
    policy_rule_create(
        actor=admin,
        datasource=shop,
        name="deny emails",
        resource_kind="tag",
        tag=Tag.objects.get(name="PII.Email"),
        action="deny",
        everyone=True,
    )

    response = agent_client.get(BUNDLE, HTTP_IF_NONE_MATCH=etag)

    assert response.status_code == 200
    assert response["ETag"] != etag
    assert response.json()["bundle"]["rules"][0]["name"] == "deny emails"


def test_an_unknown_datasource_is_404_with_a_reason(agent_client, shop):
    response = agent_client.get("/api/v1/agent/bundle?datasource=nowhere")

    assert response.status_code == 404
    assert response.json()["detail"] == "Unknown datasource 'nowhere'."


def test_a_missing_datasource_parameter_is_400(agent_client, shop):
    assert agent_client.get("/api/v1/agent/bundle").status_code == 400


# ---------------------------------------------------------------- client logins


def test_a_person_logs_in_through_the_agent(agent_client, shop, alice, alice_token):
    response = agent_client.post(
        AUTHENTICATE,
        {
            "datasource": "shop",
            "identity": "alice",
            "token": alice_token,
            "source_address": "10.0.0.7",
        },
        format="json",
    )

    event = AuditEvent.objects.get(action="auth.agent_login")
    assert response.status_code == 200
    assert response.json() == {
        "identity": "alice",
        "kind": "user",
        "groups": ["analyst", "requester"],
        "token_id": int(event.target_id),
        "login_sequence": event.sequence,  # a follow-up names the login by it
    }
    assert (event.actor, event.datasource_name, event.decision) == ("alice", "shop", "allow")
    assert event.source_address == "10.0.0.7"
    assert event.details["agent"] == "warden_agent"
    assert event.details["token"] == alice_token[:12]


def test_a_service_account_logs_in_as_a_service_account(
    agent_client, shop, ai_agent, ai_agent_token
):
    response = agent_client.post(
        AUTHENTICATE,
        {
            "datasource": "shop",
            "identity": "copilot_bot",
            "token": ai_agent_token,
        },
        format="json",
    )

    assert response.json()["kind"] == "service_account"


def _login_failure(agent_client, identity, token):
    response = agent_client.post(
        AUTHENTICATE,
        {
            "datasource": "shop",
            "identity": identity,
            "token": token,
            "source_address": "10.0.0.9",
        },
        format="json",
    )
    assert response.status_code == 401
    event = AuditEvent.objects.get(action="auth.agent_login_failed")
    assert (event.actor, event.decision, event.source_address) == (
        "warden_agent",
        "deny",
        "10.0.0.9",
    )
    assert event.details["identity"] == identity
    return response.json()["detail"], event.details["reason"]


def test_an_unknown_identity_is_refused_without_saying_it_is_unknown(
    agent_client, shop, alice_token
):
    assert _login_failure(agent_client, "mallory", alice_token) == (
        "invalid identity or token",
        "unknown identity",
    )


def test_someone_elses_token_is_refused(agent_client, shop):
    from tests.factories import UserFactory

    bob = UserFactory(username="bob")
    _token, bob_secret = token_create(actor=bob, user=bob, name="bob")
    UserFactory(username="carol")

    assert _login_failure(agent_client, "carol", bob_secret) == (
        "invalid identity or token",
        "wrong token",
    )


def test_a_wrong_token_is_refused(agent_client, shop, alice):
    assert _login_failure(agent_client, "alice", "wdn_guess") == (
        "invalid identity or token",
        "wrong token",
    )


def test_a_revoked_token_is_refused_as_revoked(agent_client, shop, alice, alice_token):
    token = alice.tokens.get()
    token_revoke(actor=alice, token=token)

    assert _login_failure(agent_client, "alice", alice_token) == (
        "token has been revoked",
        "revoked token",
    )


def test_an_expired_token_is_refused_as_expired(agent_client, shop, alice):
    _token, secret = token_create(
        actor=alice, user=alice, name="old", expires_at=timezone.now() - timedelta(minutes=1)
    )

    assert _login_failure(agent_client, "alice", secret) == ("token has expired", "expired token")


def test_a_deactivated_person_cannot_log_in(agent_client, shop, alice, alice_token):
    alice.is_active = False
    alice.save(update_fields=["is_active"])

    assert _login_failure(agent_client, "alice", alice_token) == (
        "invalid identity or token",
        "inactive user",
    )


def test_login_for_an_unknown_datasource_is_404(agent_client, shop, alice_token):
    response = agent_client.post(
        AUTHENTICATE,
        {
            "datasource": "nowhere",
            "identity": "alice",
            "token": alice_token,
        },
        format="json",
    )

    assert response.status_code == 404
    assert not AuditEvent.objects.filter(action__startswith="auth.agent_login").exists()


# ---------------------------------------------------------------- the real agent client


def test_the_agents_own_client_pins_the_key_verifies_the_bundle_and_logs_people_in(
    live_server, admin, enforcement_agent, alice, customers_email, tmp_path
):
    """End to end over HTTP with agent/controlplane.py and agent/bundle.py, unmodified."""
    import asyncio

    from agent.bundle import BundlePoller, BundleStore
    from agent.controlplane import ControlPlaneClient

    _token, agent_secret = token_create(
        actor=admin,
        user=enforcement_agent,
        name="agent",
        is_agent=True,
        datasources=[customers_email.table.datasource],
    )
    _token, alice_secret = token_create(actor=alice, user=alice, name="psql")

    async def run() -> tuple:
        client = ControlPlaneClient(live_server.url, agent_secret)
        store = BundleStore(tmp_path, None)
        poller = BundlePoller(store, client, "shop", interval=60)
        try:
            await poller.poll_once()
            first_version, etag = store.current.version, store.etag
            await poller.poll_once()  # 304: keeps the same bundle
            login = await client.authenticate("shop", "alice", alice_secret)
            refused = await client.authenticate("shop", "alice", "wdn_wrong")
        finally:
            await client.close()
        return first_version, etag, store, login, refused

    first_version, etag, store, login, refused = asyncio.run(run())

    assert store.current.version == first_version
    assert store.etag == etag == f'"{first_version}"'
    assert ("public", "customers", "email") in store.current.columns
    assert login.ok and login.groups == ("analyst", "requester")
    assert not refused.ok and refused.detail == "invalid identity or token"
