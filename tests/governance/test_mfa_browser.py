"""WebAuthn in real Chromium: a virtual authenticator (CDP) registers a key on the live
server, and the next sign-in passes MFA with it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from allauth.mfa.models import Authenticator

from tests.browser import VIEWPORTS, in_browser
from tests.live import require_chromium
from tests.mfa import PASSWORD

pytestmark = pytest.mark.browser

# A platform authenticator that says yes at once: what a laptop's fingerprint reader does.
VIRTUAL_AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "automaticPresenceSimulation": True,
}


def _password_sign_in(page: Any, username: str) -> None:
    page.goto("/accounts/login/")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_a_reviewer_registers_a_security_key_and_signs_in_with_it(
    transactional_db, settings, reviewer
):
    require_chromium()
    settings.WARDEN_MFA_REQUIRED = ["reviewers"]
    settings.MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = True  # the live server speaks plain http

    def steps(open_page: Callable[..., Any], seen: dict[str, Any]) -> None:
        page = open_page(None)
        cdp = page.context.new_cdp_session(page)
        cdp.send("WebAuthn.enable")
        authenticator_id = cdp.send(
            "WebAuthn.addVirtualAuthenticator", {"options": VIRTUAL_AUTHENTICATOR}
        )["authenticatorId"]

        _password_sign_in(page, reviewer.username)
        page.wait_for_url("**/accounts/2fa/")
        seen["setup_page"] = page.inner_text("main")
        page.goto("/accounts/2fa/webauthn/add/")
        page.fill("input[name=password]", PASSWORD)  # allauth asks again before a change
        page.click("main button[type=submit]")
        page.wait_for_url("**/accounts/2fa/webauthn/add/")
        page.fill("input[name=name]", "laptop")
        page.click("#mfa_webauthn_add")
        page.wait_for_url(lambda url: "/webauthn/add/" not in url)
        seen["credentials"] = cdp.send(
            "WebAuthn.getCredentials", {"authenticatorId": authenticator_id}
        )

        page.click("header button:has-text('Sign out')")
        page.wait_for_url("**/accounts/login/")
        _password_sign_in(page, reviewer.username)
        page.wait_for_url("**/accounts/2fa/authenticate/")
        page.click("#mfa_webauthn_authenticate")
        page.wait_for_url(f"{seen['base_url']}/")
        page.goto("/approvals/")
        seen["approvals_url"] = page.url
        seen["after_sign_in"] = cdp.send(
            "WebAuthn.getCredentials", {"authenticatorId": authenticator_id}
        )

    seen = in_browser({}, steps, viewport=VIEWPORTS["desktop"], host="localhost")

    assert "required for the role reviewer" in seen["setup_page"]
    key = Authenticator.objects.get(user=reviewer, type=Authenticator.Type.WEBAUTHN)
    assert key.data["name"] == "laptop"
    [registered] = seen["credentials"]["credentials"]
    assert registered["rpId"] == "localhost"
    [used] = seen["after_sign_in"]["credentials"]
    assert used["signCount"] > registered["signCount"]  # the sign-in really used the key
    assert seen["approvals_url"].endswith("/approvals/")  # not sent back to prove MFA
