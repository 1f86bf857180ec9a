"""Approvals, denials and break-glass where MFA is required: refused without it (in the UI,
the API with a session, the API with a token, the service itself), accepted with it."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client

from approvals import services
from approvals.models import AccessRequest, DatasourceReviewPolicy
from approvals.routing import websocket_urlpatterns
from config.errors import NotAllowed
from governance.models import AccessToken
from governance.tokens import token_create
from tests.mfa import password_sign_in, totp_enrol, totp_sign_in

pytestmark = pytest.mark.django_db

BREAK_GLASS = {
    "datasource": "shop",
    "scope": {"tables": ["public.orders"]},
    "level": "read",
    "reason": "P1: orders stuck",
}

# The page's approval form, untouched: the requested scope, as requested.
APPROVE_FORM = {"tables": "public.customers", "columns": "", "tags": "", "comment": "ok"}


@pytest.fixture(autouse=True)
def mfa_for_admins_and_reviewers(settings):
    settings.WARDEN_MFA_REQUIRED = ["admins", "reviewers"]


@pytest.fixture
def break_glass_on(shop):
    DatasourceReviewPolicy.objects.create(datasource=shop, break_glass_enabled=True)


def _mfa_session(user) -> Client:
    """A browser session of ``user`` that enrolled TOTP and signed in with a code."""
    client = Client()
    password_sign_in(client, user)
    totp = totp_enrol(client)
    client.post("/accounts/logout/")
    totp_sign_in(client, user, totp)
    return client


def _api_token(client: Client) -> str:
    """An api:admin token created on the tokens page of ``client``'s session."""
    page = client.post("/tokens/", {"name": "cli", "scopes": ["api:admin"]})
    assert page.status_code == 200
    return page.context["new_secret"]


def _approve_by_token(client: Client, secret: str, pk: int):
    return client.post(
        f"/api/v1/access-requests/{pk}/approve/",
        {"comment": "ok"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )


def test_the_service_refuses_a_reviewer_without_a_factor(file_request, reviewer):
    access_request = file_request()
    with pytest.raises(NotAllowed, match="required for the role reviewer"):
        services.request_approve(actor=reviewer, access_request=access_request)
    with pytest.raises(NotAllowed, match="no second factor"):
        services.request_deny(actor=reviewer, access_request=access_request)
    access_request.refresh_from_db()
    assert access_request.state == AccessRequest.State.PENDING


def test_without_the_setting_a_reviewer_without_a_factor_approves(settings, file_request, reviewer):
    settings.WARDEN_MFA_REQUIRED = []
    access_request = services.request_approve(actor=reviewer, access_request=file_request())
    assert access_request.state == AccessRequest.State.APPROVED


def test_ui_approval_is_refused_without_mfa_and_accepted_with_it(file_request, reviewer):
    access_request = file_request()
    skipped = Client()
    skipped.force_login(reviewer)  # a session that never passed MFA (no factor either)
    refused = skipped.post(f"/approvals/{access_request.pk}/approve/", APPROVE_FORM)
    assert refused.status_code == 403
    assert "Multi-factor authentication is required" in refused.content.decode()
    access_request.refresh_from_db()
    assert access_request.state == AccessRequest.State.PENDING

    with_mfa = _mfa_session(reviewer)
    # The factor alone is not enough: the old session still did not pass it.
    still = skipped.post(f"/approvals/{access_request.pk}/approve/", APPROVE_FORM)
    assert still.status_code == 403 and "did not pass" in still.content.decode()
    done = with_mfa.post(f"/approvals/{access_request.pk}/approve/", APPROVE_FORM, follow=True)
    assert "Approval recorded." in done.content.decode()
    access_request.refresh_from_db()
    assert access_request.state == AccessRequest.State.APPROVED


def test_ui_denial_needs_mfa_too(file_request, reviewer):
    access_request = file_request()
    skipped = Client()
    skipped.force_login(reviewer)
    refused = skipped.post(f"/approvals/{access_request.pk}/deny/", {"deny-comment": "no"})
    assert refused.status_code == 403 and "no second factor" in refused.content.decode()
    _mfa_session(reviewer).post(f"/approvals/{access_request.pk}/deny/", {"deny-comment": "no"})
    access_request.refresh_from_db()
    assert access_request.state == AccessRequest.State.DENIED


def test_api_approval_with_a_session_that_skipped_mfa_is_refused(api, file_request, reviewer):
    access_request = file_request()
    response = api(reviewer).post(
        f"/api/v1/access-requests/{access_request.pk}/approve/", {}, format="json"
    )
    assert response.status_code == 403
    assert "no second factor" in response.json()["detail"]


def test_a_token_of_a_reviewer_without_a_factor_cannot_approve(file_request, reviewer, client):
    secret = token_create(actor=reviewer, user=reviewer, name="cli", scopes=["api:admin"])[1]
    access_request = file_request()
    response = _approve_by_token(client, secret, access_request.pk)
    assert response.status_code == 403
    assert "no second factor" in response.json()["detail"]
    access_request.refresh_from_db()
    assert access_request.state == AccessRequest.State.PENDING


def test_a_token_approves_only_when_issued_from_a_sign_in_that_passed_mfa(
    file_request, reviewer, client
):
    before = token_create(actor=reviewer, user=reviewer, name="old", scopes=["api:admin"])[1]
    session = _mfa_session(reviewer)
    after = _api_token(session)
    assert AccessToken.objects.get(name="cli", user=reviewer).issued_with_mfa
    access_request = file_request()

    refused = _approve_by_token(client, before, access_request.pk)
    assert refused.status_code == 403
    assert "token was not issued from a sign-in that passed it" in refused.json()["detail"]
    # A token minted by that token inherits its lack of MFA: no way around it either.
    minted = client.post(
        "/api/v1/tokens/",
        {"name": "minted", "scopes": ["api:admin"]},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {before}",
    )
    assert minted.status_code == 201 and minted.json()["issued_with_mfa"] is False
    assert _approve_by_token(client, minted.json()["token"], access_request.pk).status_code == 403

    accepted = _approve_by_token(client, after, access_request.pk)
    assert accepted.status_code == 200, accepted.json()
    assert accepted.json()["state"] == AccessRequest.State.APPROVED


@pytest.mark.usefixtures("break_glass_on")
def test_break_glass_by_an_admin_needs_mfa_in_the_ui_and_the_api(admin, client):
    skipped = Client()
    skipped.force_login(admin)
    form = {**BREAK_GLASS, "datasource": "", "tables": "public.orders"}
    refused = skipped.post("/approvals/break-glass/", form)
    assert refused.status_code == 403 and "required for the role admin" in refused.content.decode()
    old_token = token_create(actor=admin, user=admin, name="old", scopes=["api:admin"])[1]
    by_token = client.post(
        "/api/v1/break-glass/",
        BREAK_GLASS,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {old_token}",
    )
    assert by_token.status_code == 403 and "no second factor" in by_token.json()["detail"]
    assert not AccessRequest.objects.filter(is_break_glass=True).exists()

    token = _api_token(_mfa_session(admin))
    granted = client.post(
        "/api/v1/break-glass/",
        BREAK_GLASS,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert granted.status_code == 201, granted.json()
    assert granted.json()["is_break_glass"]


@pytest.mark.usefixtures("break_glass_on")
def test_break_glass_by_a_requester_needs_no_factor_unless_requesters_are_listed(
    settings, requester, api
):
    assert (
        api(requester).post("/api/v1/break-glass/", BREAK_GLASS, format="json").status_code == 201
    )
    settings.WARDEN_MFA_REQUIRED = ["requesters"]
    refused = api(requester).post("/api/v1/break-glass/", BREAK_GLASS, format="json")
    assert refused.status_code == 403
    assert "required for the role requester" in refused.json()["detail"]


async def _inbox_opens(user, session) -> bool:
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/approvals/")
    communicator.scope["user"] = user
    communicator.scope["session"] = session
    connected, _code = await communicator.connect()
    await communicator.disconnect()
    return connected


@pytest.mark.django_db(transaction=True)
def test_the_live_inbox_stays_closed_to_a_session_without_mfa(reviewer):
    assert not async_to_sync(_inbox_opens)(reviewer, SessionStore())
    client = _mfa_session(reviewer)
    passed = SessionStore(session_key=client.session.session_key)
    assert async_to_sync(_inbox_opens)(reviewer, passed)
