"""Single sign-on end to end: Chromium signs in to a live Warden through a real OIDC provider.

The provider (tests/sso/oidc_provider.py, authlib) runs as its own process with users the
test writes to a file; Warden's ASGI server (tests.live) serves the test database. Each
sign-in goes the whole way: Warden's login page → the provider's form → code + PKCE →
token and userinfo fetched by Warden → groups synced from the claims → a session.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth.models import Group

from audit.models import AuditEvent
from governance.models import User
from tests.factories import UserFactory
from tests.live import CHROMIUM, CHROMIUM_ARGS, asgi_server, require_chromium
from tests.sso.provider import PROVIDER_NAME, IdentityProvider, oidc_provider

pytestmark = pytest.mark.browser
GROUP_ROLES = {
    "db-admins": ("admin",),
    "sec-review": ("reviewer", "payments-reviewers"),
    "analysts": ("requester",),
}


def sso_sign_in(browser: Any, base_url: str, username: str, password: str) -> Any:
    """A fresh browser profile signs in through the provider; returns the page it ends on."""
    context = browser.new_context(base_url=base_url)
    page = context.new_page()
    page.goto("/accounts/login/")
    page.get_by_role("button", name=f"Sign in with {PROVIDER_NAME}").click()
    page.wait_for_selector("text=Test identity provider")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.get_by_role("button", name="Sign in to the test IdP").click()
    page.wait_for_url(f"{base_url}/**")
    page.wait_for_load_state()
    return page


def _with_sso(
    settings: Any, tmp_path: Path, steps: Callable[[Any, str, IdentityProvider], None]
) -> dict[str, Any]:
    """Run steps(browser, base_url, provider) against a live Warden and the test provider."""
    seen: dict[str, Any] = {}
    with asgi_server() as base_url, oidc_provider(warden_url=base_url, work_dir=tmp_path) as idp:
        settings.SOCIALACCOUNT_PROVIDERS = idp.allauth_settings()
        settings.WARDEN_OIDC_GROUP_ROLES = GROUP_ROLES
        settings.WARDEN_OIDC_REQUIRE_GROUP = True

        def run() -> None:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    steps(browser, base_url, idp)
                except Exception as exc:  # reported below with the provider's log
                    seen["error"] = repr(exc)
                finally:
                    browser.close()

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(timeout=180)
        seen["provider_log"] = idp.process.log()[-3000:]
    assert "error" not in seen, json.dumps(seen, indent=1, default=str)
    return seen


def _off_loop(work: Callable[[], Any]) -> Any:
    """Run Django ORM work from the Playwright thread (whose event loop Django refuses)."""
    from django.db import connection

    result: list[Any] = []

    def run() -> None:
        try:
            result.append(work())
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    return result[0]


def _groups(username: str) -> set[str]:
    return _off_loop(
        lambda: set(User.objects.get(username=username).groups.values_list("name", flat=True))
    )


def test_sso_roles_follow_the_directory_groups_at_every_sign_in(
    transactional_db, settings, tmp_path
):
    require_chromium()
    seen: dict[str, Any] = {}
    alice = {"password": "alice-pw", "email": "alice@corp.example", "name": "Alice Admin"}

    def steps(browser: Any, base_url: str, idp: IdentityProvider) -> None:
        idp.users_set({"alice": {**alice, "groups": ["db-admins", "sec-review", "other"]}})
        page = sso_sign_in(browser, base_url, "alice", "alice-pw")
        seen["first_landing"] = page.url
        seen["first_groups"] = _groups("alice")
        seen["admin_page_first"] = page.goto("/datasources/new/").status
        # An admin grants a group the mapping never names: SSO leaves it alone.
        _off_loop(
            lambda: User.objects.get(username="alice").groups.add(Group.objects.get(name="auditor"))
        )
        idp.users_set({"alice": {**alice, "groups": ["sec-review"]}})
        page = sso_sign_in(browser, base_url, "alice", "alice-pw")
        seen["second_landing"] = page.url
        seen["second_groups"] = _groups("alice")
        seen["admin_page_second"] = page.goto("/datasources/new/").status
        seen["login_page"] = browser.new_page().goto(f"{base_url}/accounts/login/").text()

    _with_sso(settings, tmp_path, steps)

    assert seen["first_landing"].endswith("/")
    assert seen["first_groups"] == {"admin", "reviewer", "payments-reviewers"}
    assert seen["admin_page_first"] == 200
    assert seen["second_landing"].endswith("/")
    # Removed from db-admins in the directory: no longer an admin; the auditor role stays.
    assert seen["second_groups"] == {"reviewer", "payments-reviewers", "auditor"}
    assert seen["admin_page_second"] == 403
    assert f"Sign in with {PROVIDER_NAME}" in seen["login_page"]
    user = User.objects.get(username="alice")
    assert user.email == "alice@corp.example"
    assert not user.has_usable_password()
    changes = AuditEvent.objects.filter(action="auth.sso_groups").order_by("sequence")
    assert [event.details["removed"] for event in changes] == [[], ["admin"]]
    assert AuditEvent.objects.filter(action="auth.login", actor="alice").count() == 2


def test_a_disabled_or_unmapped_directory_user_cannot_sign_in(transactional_db, settings, tmp_path):
    require_chromium()
    seen: dict[str, Any] = {}
    carol = {"password": "carol-pw", "email": "carol@corp.example", "groups": ["analysts"]}
    dave = {"password": "dave-pw", "email": "dave@corp.example", "groups": ["marketing"]}
    # A directory user whose name and e-mail are a local admin's: never that admin.
    eve = {"password": "eve-pw", "email": "eve@corp.example", "groups": ["analysts"]}
    local_eve = UserFactory(username="eve", email="eve@corp.example", roles=["admin"])

    def steps(browser: Any, base_url: str, idp: IdentityProvider) -> None:
        idp.users_set({"carol": carol, "dave": dave, "eve": eve})
        page = sso_sign_in(browser, base_url, "carol", "carol-pw")
        seen["enabled_groups"] = _groups("carol")
        seen["enabled_home"] = page.goto("/").url
        idp.users_set({"carol": {**carol, "disabled": True}, "dave": dave, "eve": eve})
        page = sso_sign_in(browser, base_url, "carol", "carol-pw")
        seen["disabled_text"] = page.inner_text("main")
        seen["disabled_home"] = page.goto("/").url
        page = sso_sign_in(browser, base_url, "dave", "dave-pw")
        seen["unmapped_text"] = page.inner_text("main")
        seen["unmapped_home"] = page.goto("/").url
        page = sso_sign_in(browser, base_url, "eve", "eve-pw")
        seen["namesake_home"] = page.goto("/").url

    _with_sso(settings, tmp_path, steps)

    # The unrestricted path works: carol, enabled, signs in and lands on the dashboard.
    assert seen["enabled_groups"] == {"requester"}
    assert "/accounts/login/" not in seen["enabled_home"]
    assert "Single sign-on failed" in seen["disabled_text"]
    assert f"{PROVIDER_NAME} did not sign you in" in seen["disabled_text"]
    assert "/accounts/login/" in seen["disabled_home"]
    assert "Warden does not let this account in" in seen["unmapped_text"]
    assert "/accounts/login/" in seen["unmapped_home"]
    assert not User.objects.filter(username="dave").exists()
    refusals = AuditEvent.objects.filter(action="auth.sso_refused").order_by("sequence")
    assert [event.details["reason"] for event in refusals][-1] == "no mapped group"
    assert refusals[0].details["reason"] == "provider answered access_denied"
    assert AuditEvent.objects.filter(action="auth.login", actor="carol").count() == 1
    # Same e-mail as the local admin: not linked, not signed in as her, nothing granted.
    assert "/accounts/login/" in seen["namesake_home"]
    assert not SocialAccount.objects.filter(user=local_eve).exists()
    assert not SocialAccount.objects.filter(uid="sub-eve").exists()
    assert not AuditEvent.objects.filter(action="auth.login", actor="eve").exists()
