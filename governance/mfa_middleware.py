"""Keeps a person who must use MFA (governance.mfa) out of the UI until they have.

Without a factor, every page sends them to the set-up pages (/accounts/…: they need the
account pages to add one); with a factor but a session that never passed it (a sign-in
through django-admin's own form), every page sends them to prove it, and only that page
and signing out stay open — not the factor pages, where a password alone could remove the
factor. A request that is not a page (a POST, an API call) gets a 403 naming the reason.
Requests that carry an access token are the API's business (governance.mfa.mfa_refusal).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from governance.mfa import (
    mfa_enrolled,
    mfa_enrolment_refusal,
    mfa_refusal,
    mfa_required_by,
    mfa_required_roles,
)

ALWAYS_OPEN = ("/static/", "/healthz", "/readyz", "/favicon.ico")


def _is_page(request: HttpRequest) -> bool:
    return request.method in ("GET", "HEAD") and not request.path.startswith("/api/")


def _go(request: HttpRequest, url: str) -> HttpResponse:
    """A redirect; an htmx request is told to load the whole page (not to swap it into a panel)."""
    if request.headers.get("HX-Request"):
        return HttpResponse(headers={"HX-Redirect": url})
    return redirect(url)


def _refuse(request: HttpRequest, reason: str) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "not_allowed", "detail": reason}, status=403)
    return render(request, "403.html", {"exception": reason}, status=403)


class MfaRequiredMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        mfa_required_roles()  # a misspelt WARDEN_MFA_REQUIRED stops the start, loudly

    def __call__(self, request: HttpRequest) -> HttpResponse:
        blocked = self._blocked(request)
        return blocked if blocked is not None else self.get_response(request)

    def _blocked(self, request: HttpRequest) -> HttpResponse | None:
        path = request.path
        if path.startswith(ALWAYS_OPEN) or request.headers.get("Authorization"):
            return None
        if not mfa_required_by(request.user):
            return None
        if not mfa_enrolled(request.user):
            return self._send_to_setup(request, path)
        reason = mfa_refusal(request)
        if not reason or path in (reverse("mfa_reauthenticate"), reverse("account_logout")):
            return None
        if path == reverse("mfa_reauthenticate_webauthn"):
            return None
        if not _is_page(request):
            return _refuse(request, reason)
        query = urlencode({"next": request.get_full_path()})
        return _go(request, f"{reverse('mfa_reauthenticate')}?{query}")

    def _send_to_setup(self, request: HttpRequest, path: str) -> HttpResponse | None:
        if path.startswith("/accounts/"):
            return None
        reason = mfa_enrolment_refusal(request.user)
        if not _is_page(request):
            return _refuse(request, reason)
        messages.warning(request, reason)
        return _go(request, reverse("mfa_index"))
