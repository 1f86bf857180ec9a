"""Single sign-on without a browser: the configuration read from the environment, the group
mapping service, and the login page. The full flow is tests/sso/test_sso_browser.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from audit.models import AuditEvent
from config.oidc import (
    OidcConfigError,
    oidc_group_roles_parse,
    oidc_providers_parse,
)
from governance.services.sso import (
    sso_claim_groups,
    sso_claims,
    sso_group_names,
    sso_groups_sync,
    sso_managed_groups,
)

ROOT = Path(__file__).resolve().parents[2]
OKTA = {
    "id": "okta",
    "name": "Okta",
    "server_url": "https://corp.okta.com/oauth2/default",
    "client_id": "0oa1",
    "secret": "s3cret",
    "scopes": ["openid", "profile", "email", "groups"],
}
MAPPING = {
    "db-admins": ("admin",),
    "sec-review": ("reviewer", "payments-reviewers"),
    "analysts": ("requester",),
}


def test_a_provider_becomes_an_allauth_app_with_its_groups_claim():
    [provider] = oidc_providers_parse(json.dumps([{**OKTA, "groups_claim": "roles"}]))
    app = provider.allauth_app()
    assert app["provider_id"] == "okta" and app["name"] == "Okta"
    assert app["settings"] == {
        "server_url": "https://corp.okta.com/oauth2/default",
        "scope": ["openid", "profile", "email", "groups"],
        "groups_claim": "roles",
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "WARDEN_OIDC_PROVIDERS is not valid JSON"),
        (json.dumps({"id": "okta"}), "WARDEN_OIDC_PROVIDERS must be a JSON list"),
        (json.dumps([{**OKTA, "secret": ""}]), "WARDEN_OIDC_PROVIDERS[0]: 'secret' must be"),
        (json.dumps([{**OKTA, "id": "Okta Prod"}]), "WARDEN_OIDC_PROVIDERS[0]: 'id' must be"),
        (json.dumps([{**OKTA, "tenant": "x"}]), "unknown key(s) tenant"),
        (json.dumps([{**OKTA, "scopes": ["email"]}]), "'scopes' must be a list that includes"),
        (json.dumps([{**OKTA, "server_url": "corp.okta.com"}]), "'server_url' must be an http"),
        (json.dumps([OKTA, OKTA]), "provider id(s) used twice: okta"),
    ],
)
def test_an_invalid_provider_list_names_the_variable_and_the_mistake(raw, message):
    with pytest.raises(OidcConfigError) as caught:
        oidc_providers_parse(raw)
    assert message in str(caught.value)


def test_the_group_mapping_accepts_one_name_or_a_list_and_refuses_anything_else():
    assert oidc_group_roles_parse('{"a": "admin", "b": ["reviewer", "x"]}') == {
        "a": ("admin",),
        "b": ("reviewer", "x"),
    }
    with pytest.raises(OidcConfigError, match=r"WARDEN_OIDC_GROUP_ROLES\['b'\] must be"):
        oidc_group_roles_parse('{"b": []}')
    with pytest.raises(OidcConfigError, match="WARDEN_OIDC_GROUP_ROLES must be a JSON object"):
        oidc_group_roles_parse('["admin"]')


def _start(**environment: str) -> subprocess.CompletedProcess[str]:
    """Load Django's settings in a fresh process with this environment (as a server starts)."""
    env = {**os.environ, **environment, "DJANGO_SETTINGS_MODULE": "config.test_settings"}
    code = "import django; django.setup(); print('started')"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_invalid_sso_configuration_stops_startup_with_a_message_naming_the_variable():
    started = _start(
        WARDEN_OIDC_PROVIDERS=json.dumps([OKTA]), WARDEN_OIDC_GROUP_ROLES='{"db-admins": "admin"}'
    )
    assert started.returncode == 0 and "started" in started.stdout, started.stderr
    broken = _start(WARDEN_OIDC_PROVIDERS=json.dumps([{**OKTA, "client_id": 7}]))
    assert broken.returncode != 0
    assert "WARDEN_OIDC_PROVIDERS[0]: 'client_id' must be a non-empty string" in broken.stderr
    unmapped = _start(WARDEN_OIDC_PROVIDERS=json.dumps([OKTA]))
    assert unmapped.returncode != 0
    assert "WARDEN_OIDC_GROUP_ROLES is empty while WARDEN_OIDC_REQUIRE_GROUP is on" in (
        unmapped.stderr
    )


def test_claims_merge_the_id_token_and_userinfo_and_groups_come_from_any_claim_shape():
    claims = sso_claims(
        {"id_token": {"sub": "1", "groups": ["from-token"]}, "userinfo": {"email": "a@b.c"}}
    )
    assert claims == {"sub": "1", "groups": ["from-token"], "email": "a@b.c"}
    assert sso_claim_groups(claims, claim="groups") == {"from-token"}
    assert sso_claim_groups({"hd": "corp.example"}, claim="hd") == {"corp.example"}
    keycloak = {"realm_access": {"roles": ["db-admins", 3]}}
    assert sso_claim_groups(keycloak, claim="realm_access.roles") == {"db-admins"}
    assert sso_claim_groups({}, claim="groups") == set()


def test_mapped_names_are_the_union_over_the_persons_groups():
    assert sso_group_names({"sec-review", "analysts", "unknown"}, mapping=MAPPING) == {
        "reviewer",
        "payments-reviewers",
        "requester",
    }
    assert sso_managed_groups(MAPPING) == {"admin", "reviewer", "payments-reviewers", "requester"}


def test_sync_grants_mapped_groups_creates_reviewer_groups_and_audits(outsider):
    change = sso_groups_sync(
        user=outsider, provider="okta", claim_groups=["db-admins", "sec-review"], mapping=MAPPING
    )
    assert change.added == ["admin", "payments-reviewers", "reviewer"] and change.removed == []
    assert Group.objects.filter(name="payments-reviewers").exists()
    assert outsider.role_names == {"admin", "payments-reviewers", "reviewer"}
    event = AuditEvent.objects.get(action="auth.sso_groups")
    assert event.actor == outsider.username
    assert event.details["added"] == ["admin", "payments-reviewers", "reviewer"]


def test_removal_from_a_directory_group_revokes_only_the_managed_role(admin):
    admin.groups.add(Group.objects.get(name="auditor"))  # not in the mapping: an admin's call
    change = sso_groups_sync(
        user=admin, provider="okta", claim_groups=["analysts"], mapping=MAPPING
    )
    assert change.added == ["requester"] and change.removed == ["admin"]
    assert admin.role_names == {"auditor", "requester"}
    assert not admin.has_role("admin")


def test_a_sign_in_that_changes_nothing_writes_no_audit_event(requester):
    sso_groups_sync(user=requester, provider="okta", claim_groups=["analysts"], mapping=MAPPING)
    assert not AuditEvent.objects.filter(action="auth.sso_groups").exists()


def test_the_login_page_offers_each_configured_provider(client, db, settings):
    assert "Sign in with" not in client.get("/accounts/login/").content.decode()
    [provider] = oidc_providers_parse(json.dumps([OKTA]))
    settings.SOCIALACCOUNT_PROVIDERS = {"openid_connect": {"APPS": [provider.allauth_app()]}}
    page = client.get("/accounts/login/").content.decode()
    assert "Sign in with Okta" in page
    assert 'action="/accounts/oidc/okta/login/?process=login"' in page


def test_an_sso_account_cannot_sign_in_with_a_password_but_a_local_one_can(client, db):
    from allauth.socialaccount.models import SocialAccount

    from tests.factories import UserFactory

    local = UserFactory(username="local_lou")
    local.set_password("correct-horse-battery")
    local.save()
    answer = client.post(
        "/accounts/login/", {"login": "local_lou", "password": "correct-horse-battery"}
    )
    assert answer.status_code == 302 and client.get("/").status_code == 200
    client.logout()
    SocialAccount.objects.create(user=local, provider="okta", uid="sub-lou")
    refused = client.post(
        "/accounts/login/", {"login": "local_lou", "password": "correct-horse-battery"}
    )
    assert refused.status_code == 403
    assert "This account signs in with single sign-on" in refused.content.decode()
    assert client.get("/").status_code == 302  # not signed in
    event = AuditEvent.objects.get(action="auth.sso_refused")
    assert event.details["reason"] == "password sign-in of a single sign-on account"
