"""Signing in through the real allauth pages, with TOTP codes computed by pyotp."""

from __future__ import annotations

import time
from typing import Any

import pyotp

PASSWORD = "correct horse battery staple"  # tests.factories.UserFactory's


def fresh_code(totp: pyotp.TOTP) -> str:
    """The current code, not one about to roll over while the request is in flight."""
    if totp.interval - time.time() % totp.interval < 1.5:
        time.sleep(1.5)
    return totp.now()


def password_sign_in(client: Any, user: Any) -> Any:
    response = client.post("/accounts/login/", {"login": user.username, "password": PASSWORD})
    assert response.status_code == 302, response.content.decode()[:2000]
    return response


def totp_offered(client: Any) -> pyotp.TOTP:
    """The secret the activation page offers the signed-in user (allauth asks for the
    password again first), as the user's authenticator app would read its QR code."""
    page = client.get("/accounts/2fa/totp/activate/")
    if page.status_code == 302 and page["Location"].startswith("/accounts/reauthenticate/"):
        again = client.post(page["Location"], {"password": PASSWORD})
        assert again.status_code == 302, again.content.decode()[:2000]
        page = client.get(again["Location"])
    assert page.status_code == 200, page
    return pyotp.parse_uri(page.context["totp_url"])


def totp_enrol(client: Any) -> pyotp.TOTP:
    """Activate TOTP for the signed-in user with a code from the offered secret."""
    totp = totp_offered(client)
    done = client.post("/accounts/2fa/totp/activate/", {"code": fresh_code(totp)})
    assert done.status_code == 302, done.content.decode()[:2000]
    return totp


def totp_sign_in(client: Any, user: Any, totp: pyotp.TOTP) -> None:
    """Password, then the second step with a code from the user's app."""
    first = password_sign_in(client, user)
    assert first["Location"] == "/accounts/2fa/authenticate/"
    second = client.post("/accounts/2fa/authenticate/", {"code": fresh_code(totp)})
    assert second.status_code == 302 and second["Location"] == "/", second
