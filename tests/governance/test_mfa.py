"""MFA: enrolment and sign-in with TOTP (pyotp codes), and who is kept out until they have it."""

from __future__ import annotations

import time
from typing import Any

import pyotp
import pytest
from allauth.mfa.models import Authenticator
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from governance.crypto import decrypt_secret
from governance.mfa import mfa_required_by
from governance.models import AccessToken
from governance.tokens import token_create, token_rotate
from tests.mfa import PASSWORD, fresh_code, password_sign_in, totp_enrol, totp_offered, totp_sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def mfa_for_admins_and_reviewers(settings):
    settings.WARDEN_MFA_REQUIRED = ["admins", "reviewers"]


def test_an_unknown_role_in_the_setting_is_a_configuration_error(settings, reviewer):
    settings.WARDEN_MFA_REQUIRED = ["reviewers", "approvers"]
    with pytest.raises(ImproperlyConfigured, match="unknown role 'approvers'"):
        mfa_required_by(reviewer)


def test_the_setting_names_roles_in_plural_or_singular(settings, admin, reviewer, auditor):
    settings.WARDEN_MFA_REQUIRED = ["admins", "reviewer"]
    assert mfa_required_by(admin) == ["admin"]
    assert mfa_required_by(reviewer) == ["reviewer"]
    assert mfa_required_by(auditor) == []


def test_without_the_setting_nobody_is_sent_to_set_up_a_factor(client, reviewer):
    password_sign_in(client, reviewer)
    assert client.get("/").status_code == 200


@pytest.mark.usefixtures("mfa_for_admins_and_reviewers")
def test_a_reviewer_without_a_factor_is_sent_to_set_one_up_after_sign_in(client, reviewer):
    password_sign_in(client, reviewer)
    for page in ("/", "/approvals/", "/tokens/", "/datasources/"):
        response = client.get(page)
        assert response.status_code == 302 and response["Location"] == "/accounts/2fa/", page
    setup = client.get("/accounts/2fa/", follow=True)
    assert setup.status_code == 200
    assert "required for the role reviewer" in setup.content.decode()
    refused = client.post("/tokens/", {"name": "ci", "scopes": ["query"]})
    assert refused.status_code == 403
    assert "no second factor" in refused.content.decode()
    assert not AccessToken.objects.filter(user=reviewer).exists()


@pytest.mark.usefixtures("mfa_for_admins_and_reviewers")
def test_a_requester_keeps_using_the_ui_without_a_factor(client, requester):
    password_sign_in(client, requester)
    assert client.get("/").status_code == 200
    assert client.get("/approvals/").status_code == 200


@pytest.mark.usefixtures("mfa_for_admins_and_reviewers")
def test_totp_enrolment_then_sign_in_needs_the_code(client, reviewer):
    password_sign_in(client, reviewer)
    totp = totp_enrol(client)
    assert Authenticator.objects.filter(user=reviewer, type="totp").exists()
    client.post("/accounts/logout/")

    password_sign_in(client, reviewer)
    assert client.get("/").status_code == 302  # the password alone signs nobody in
    # A code no window allauth accepts (the previous, current or next) could match.
    accepted = {totp.at(time.time() + step * totp.interval) for step in (-1, 0, 1)}
    wrong_code = next(
        code for code in ("000000", "111111", "222222", "333333") if code not in accepted
    )
    wrong = client.post("/accounts/2fa/authenticate/", {"code": wrong_code})
    assert wrong.status_code == 200 and "Incorrect code" in wrong.content.decode()
    assert client.get("/")["Location"].startswith("/accounts/login/")

    right = client.post("/accounts/2fa/authenticate/", {"code": fresh_code(totp)})
    assert right.status_code == 302 and right["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.get("/approvals/").status_code == 200


@pytest.mark.usefixtures("mfa_for_admins_and_reviewers")
def test_a_wrong_code_does_not_enrol(client, reviewer):
    password_sign_in(client, reviewer)
    secret = totp_offered(client).secret
    other_app = pyotp.TOTP(pyotp.random_base32())
    assert other_app.secret != secret
    response = client.post("/accounts/2fa/totp/activate/", {"code": other_app.now()})
    assert response.status_code == 200 and "Incorrect code" in response.content.decode()
    assert not Authenticator.objects.filter(user=reviewer).exists()
    assert client.get("/")["Location"] == "/accounts/2fa/"


@pytest.mark.usefixtures("mfa_for_admins_and_reviewers")
def test_a_session_that_skipped_mfa_must_prove_it_before_the_ui(client, reviewer):
    password_sign_in(client, reviewer)
    totp = totp_enrol(client)
    # A sign-in that is not allauth's (django-admin's own form): a session with no MFA.
    other = Client()
    other.force_login(reviewer)
    response = other.get("/approvals/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/2fa/reauthenticate/?next=%2Fapprovals%2F"
    # The factor pages stay closed too: a password must not be enough to remove the factor.
    assert other.get("/accounts/2fa/totp/deactivate/").status_code == 302
    refused = other.post("/tokens/", {"name": "ci", "scopes": ["query"]})
    assert refused.status_code == 403 and "did not pass" in refused.content.decode()

    proved = other.post(
        "/accounts/2fa/reauthenticate/?next=/approvals/", {"code": fresh_code(totp)}
    )
    assert proved.status_code == 302 and proved["Location"] == "/approvals/"
    assert other.get("/approvals/").status_code == 200


@pytest.mark.usefixtures("mfa_for_admins_and_reviewers")
def test_a_session_api_call_without_a_factor_is_refused_with_the_reason(client, reviewer):
    password_sign_in(client, reviewer)
    response = client.get("/api/v1/access-requests/")
    assert response.status_code == 403
    assert "no second factor" in response.json()["detail"]


def test_a_token_remembers_whether_its_owner_passed_mfa_when_creating_it(client, reviewer, admin):
    password_sign_in(client, reviewer)
    client.post("/tokens/", {"name": "before", "scopes": ["query"]})
    totp = totp_enrol(client)
    client.post("/accounts/logout/")
    totp_sign_in(client, reviewer, totp)
    client.post("/tokens/", {"name": "after", "scopes": ["query"]})
    tokens = {token.name: token for token in AccessToken.objects.filter(user=reviewer)}
    assert not tokens["before"].issued_with_mfa
    assert tokens["after"].issued_with_mfa
    # Rotated by its owner it keeps the mark; by an admin (who then holds the secret) not.
    by_owner, _secret = token_rotate(actor=reviewer, token=tokens["after"])
    assert by_owner.issued_with_mfa
    by_admin, _secret = token_rotate(actor=admin, token=by_owner)
    assert not by_admin.issued_with_mfa
    for_someone_else, _secret = token_create(
        actor=admin, user=reviewer, name="from admin", actor_passed_mfa=True
    )
    assert not for_someone_else.issued_with_mfa


def test_the_totp_secret_is_encrypted_at_rest(client, reviewer):
    password_sign_in(client, reviewer)
    totp = totp_enrol(client)
    stored = Authenticator.objects.get(user=reviewer, type="totp").data["secret"]
    assert totp.secret not in stored
    assert decrypt_secret(stored) == totp.secret


def _deactivate_totp(client: Client) -> Any:
    page = client.get("/accounts/2fa/totp/deactivate/")
    if page.status_code == 302 and page["Location"].startswith("/accounts/reauthenticate/"):
        client.post(page["Location"], {"password": PASSWORD})  # allauth asks again first
    return client.post("/accounts/2fa/totp/deactivate/")


@pytest.mark.usefixtures("mfa_for_admins_and_reviewers")
def test_someone_who_must_use_mfa_cannot_remove_their_only_factor(client, reviewer, requester):
    password_sign_in(client, reviewer)
    totp = totp_enrol(client)
    client.post("/accounts/logout/")
    totp_sign_in(client, reviewer, totp)
    refused = _deactivate_totp(client)
    assert refused.status_code == 200
    assert "Your role requires multi-factor authentication" in refused.content.decode()
    assert Authenticator.objects.filter(user=reviewer, type="totp").exists()

    optional = Client()  # a requester's factor is theirs to remove
    password_sign_in(optional, requester)
    requester_totp = totp_enrol(optional)
    optional.post("/accounts/logout/")
    totp_sign_in(optional, requester, requester_totp)
    assert _deactivate_totp(optional).status_code == 302
    assert not Authenticator.objects.filter(user=requester, type="totp").exists()


@pytest.mark.usefixtures("mfa_for_admins_and_reviewers")
def test_an_htmx_request_without_a_factor_loads_the_set_up_page_whole(client, reviewer):
    password_sign_in(client, reviewer)
    response = client.get("/approvals/", HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and response["HX-Redirect"] == "/accounts/2fa/"
