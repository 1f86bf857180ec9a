"""Token verifiers: made at token creation, served to agents without the token, and the
agents' login reports audited and checked against the token's current state."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone
from scramp import ScramClient, ScramException, ScramMechanism

from audit.models import AuditEvent
from governance.models import AccessToken, TokenVerifier
from governance.tokens import token_create, token_revoke

VERIFIERS = "/api/v1/agent/verifiers"
LOGINS = "/api/v1/agent/logins"
AUTHENTICATE = "/api/v1/agent/authenticate"


def _verifiers(agent_client, identity: str) -> dict:
    response = agent_client.get(VERIFIERS, {"datasource": "shop", "identity": identity})
    assert response.status_code == 200, response.content
    return response.json()


def _scram_login(served: dict, token_entry: dict, secret: str) -> None:
    """A SCRAM exchange between scramp's client holding ``secret`` and scramp's server
    holding only what the control plane served; raises ScramException when they differ."""
    salt = base64.b64decode(served["scram"]["salt"])
    stored = base64.b64decode(token_entry["scram_stored_key"])
    server_key = base64.b64decode(token_entry["scram_server_key"])
    iterations = served["scram"]["iterations"]
    server = ScramMechanism().make_server(lambda _user: (salt, stored, server_key, iterations))
    client = ScramClient(["SCRAM-SHA-256"], "alice", secret)
    server.set_client_first(client.get_client_first())
    client.set_server_first(server.get_server_first())
    server.set_client_final(client.get_client_final())
    client.set_server_final(server.get_server_final())


def test_served_verifiers_prove_the_token_and_never_contain_it(agent_client, shop, alice):
    token, secret = token_create(actor=alice, user=alice, name="psql")
    response = agent_client.get(VERIFIERS, {"datasource": "shop", "identity": "alice"})

    assert secret.encode() not in response.content
    assert token.token_hash.encode() not in response.content
    served = response.json()
    assert served["identity"] == "alice" and served["groups"] == ["analyst", "requester"]
    [entry] = served["tokens"]
    assert entry["id"] == token.pk
    _scram_login(served, entry, secret)  # the verifier matches the token
    with pytest.raises(ScramException):
        _scram_login(served, entry, secret + "x")  # and only the token
    native = hashlib.sha1(hashlib.sha1(secret.encode()).digest()).hexdigest()
    assert entry["mysql_native"] == native


def test_all_tokens_of_a_person_share_one_salt_and_live_ones_are_served(
    agent_client, shop, alice, admin
):
    first, _ = token_create(actor=alice, user=alice, name="one")
    second, _ = token_create(actor=alice, user=alice, name="two")
    revoked, _ = token_create(actor=alice, user=alice, name="three")
    _expired, _ = token_create(
        actor=alice, user=alice, name="four", expires_at=timezone.now() - timedelta(minutes=1)
    )
    token_revoke(actor=alice, token=revoked)
    _other, _ = token_create(actor=admin, user=admin, name="admins")

    served = _verifiers(agent_client, "alice")

    assert sorted(entry["id"] for entry in served["tokens"]) == sorted([first.pk, second.pk])
    salts = {bytes(v.scram_salt) for v in TokenVerifier.objects.filter(token__user=alice)}
    assert len(salts) == 1
    assert base64.b64decode(served["scram"]["salt"]) in salts
    admin_salt = _verifiers(agent_client, admin.username)["scram"]["salt"]
    assert admin_salt != served["scram"]["salt"]


def test_unknown_and_inactive_identities_get_a_stable_salt_and_no_tokens(agent_client, shop, alice):
    token_create(actor=alice, user=alice, name="psql")
    alice.is_active = False
    alice.save(update_fields=["is_active"])

    for identity in ("nobody", "alice"):
        first, again = _verifiers(agent_client, identity), _verifiers(agent_client, identity)
        assert first["tokens"] == [] and first["groups"] == []
        assert first["scram"] == again["scram"]
    assert _verifiers(agent_client, "nobody")["scram"] != _verifiers(agent_client, "other")["scram"]


def test_verifiers_for_an_unknown_datasource_are_404(agent_client, shop):
    response = agent_client.get(VERIFIERS, {"datasource": "nowhere", "identity": "alice"})
    assert response.status_code == 404


def _record(agent_client, **body) -> tuple[int, dict]:
    payload = {"datasource": "shop", "identity": "alice", "mechanism": "SCRAM-SHA-256", **body}
    response = agent_client.post(LOGINS, payload, format="json")
    return response.status_code, response.json()


def test_a_reported_login_is_audited_and_marks_the_token_used(agent_client, shop, alice):
    token, _secret = token_create(actor=alice, user=alice, name="psql")

    status, body = _record(agent_client, token_id=token.pk, source_address="10.1.2.3")

    event = AuditEvent.objects.get(action="auth.agent_login")
    assert status == 200
    assert body == {
        "identity": "alice",
        "kind": "user",
        "groups": ["analyst", "requester"],
        "token_id": token.pk,
        "login_sequence": event.sequence,
    }
    assert event.details["mechanism"] == "SCRAM-SHA-256"
    assert event.details["token"] == token.prefix and event.source_address == "10.1.2.3"
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_reported_logins_of_dead_or_foreign_tokens_are_refused_and_audited(
    agent_client, shop, alice, admin
):
    revoked, _ = token_create(actor=alice, user=alice, name="old")
    token_revoke(actor=alice, token=revoked)
    admins, _ = token_create(actor=admin, user=admin, name="admins")

    assert _record(agent_client, token_id=None) == (
        401,
        {"detail": "invalid identity or token", "code": "authentication_failed"},
    )
    assert _record(agent_client, token_id=revoked.pk)[1]["detail"] == "token has been revoked"
    assert _record(agent_client, token_id=admins.pk)[1]["detail"] == "invalid identity or token"
    causes = [
        e.details["reason"] for e in AuditEvent.objects.filter(action="auth.agent_login_failed")
    ]
    assert sorted(causes) == ["revoked token", "wrong proof", "wrong token"]


def test_a_token_older_than_verifiers_gets_them_at_its_next_cleartext_login(
    agent_client, shop, alice
):
    token, secret = token_create(actor=alice, user=alice, name="old")
    TokenVerifier.objects.filter(token=token).delete()  # as before verifiers existed
    assert _verifiers(agent_client, "alice")["tokens"] == []
    assert _verifiers(agent_client, "alice")["tokens_without_verifier"] == 1

    response = agent_client.post(
        AUTHENTICATE,
        {"datasource": "shop", "identity": "alice", "token": secret},
        format="json",
    )

    assert response.status_code == 200
    served = _verifiers(agent_client, "alice")
    [entry] = served["tokens"]
    _scram_login(served, entry, secret)
    assert AccessToken.objects.get(pk=token.pk).verifier.scram_iterations == 4096
