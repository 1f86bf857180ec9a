"""Who must use a second factor, and whether this request presented one.

``WARDEN_MFA_REQUIRED`` names roles (``admins,reviewers``); a person holding one of them must
have a second factor (allauth.mfa: a TOTP app or a WebAuthn key; recovery codes alone are a
fallback, not a factor). Three places ask:

- the middleware (governance.mfa_middleware) keeps such a person on the set-up page until
  they have a factor, and sends a session that never passed one (a django-admin sign-in) to
  prove it, so the rest of the UI is out of reach until then;
- approving, denying and break-glass check ``mfa_refusal`` for the request at hand: a browser
  session must have passed MFA, an access token must have been issued by a credential that
  had (``AccessToken.issued_with_mfa``), so a token minted before the factor, by an admin
  for someone else, or by such a token, is no way around it;
- the approvals services check ``mfa_enrolment_refusal`` for any caller, so a path that
  forgets the request check still refuses a person without a factor;
- the live inbox's websocket refuses such a session as the pages do.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from allauth.account.authentication import get_authentication_records
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

from config.errors import NotAllowed
from governance.models import Role

# Recovery codes only stand in for a lost factor; they are not one on their own.
FACTOR_TYPES = (Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN)
SETUP_HINT = "set one up under You → Two-factor authentication (/accounts/2fa/)"


def mfa_required_roles() -> frozenset[str]:
    """The roles of ``WARDEN_MFA_REQUIRED`` (plural or singular names); an unknown name is a
    configuration error, never silently ignored."""
    roles = set()
    for name in settings.WARDEN_MFA_REQUIRED:
        role = name.strip().lower()
        role = role[:-1] if role.endswith("s") and role[:-1] in Role.values else role
        if role not in Role.values:
            raise ImproperlyConfigured(
                f"WARDEN_MFA_REQUIRED names an unknown role {name!r}; "
                f"use some of: {', '.join(value + 's' for value in Role.values)}."
            )
        roles.add(role)
    return frozenset(roles)


def mfa_required_by(user: Any) -> list[str]:
    """The user's roles that require a second factor (empty: MFA is optional for them)."""
    required = mfa_required_roles()
    if not required or not getattr(user, "is_authenticated", False):
        return []
    if getattr(user, "is_service_account", False):
        return []  # service accounts never sign in to the UI, review or break the glass
    return sorted(role for role in required if user.has_role(role))


def mfa_enrolled(user: Any) -> bool:
    return Authenticator.objects.filter(user_id=user.pk, type__in=FACTOR_TYPES).exists()


def session_passed_mfa(request: HttpRequest) -> bool:
    """Whether this browser session's sign-in (or a later re-authentication) used a factor."""
    records = get_authentication_records(request, request.user)
    return any(record.get("method") == "mfa" for record in records)


def credential_passed_mfa(request: Any) -> bool:
    """Whether the request's credential passed MFA: the session's sign-in, or the issuing of
    the access token it carries."""
    token = getattr(request, "auth", None)
    if token is not None:
        return bool(getattr(token, "issued_with_mfa", False))
    return session_passed_mfa(request)


def mfa_enrolment_refusal(user: Any) -> str:
    """Why ``user`` may not act yet for lack of a second factor, or "" when they may."""
    roles = mfa_required_by(user)
    if not roles or mfa_enrolled(user):
        return ""
    return (
        f"Multi-factor authentication is required for the role {', '.join(roles)} and you have "
        f"no second factor: {SETUP_HINT}."
    )


def mfa_refusal(request: Any) -> str:
    """Why this request may not approve, deny or break the glass for lack of MFA, or ""."""
    refusal = mfa_enrolment_refusal(request.user)
    if refusal or not mfa_required_by(request.user) or credential_passed_mfa(request):
        return refusal
    if getattr(request, "auth", None) is not None:
        return (
            "Multi-factor authentication is required for your role and this access token was "
            "not issued from a sign-in that passed it: create a new token after signing in "
            "with your second factor."
        )
    return (
        "Multi-factor authentication is required for your role and this session did not pass "
        "it: sign in again with your second factor."
    )


def mfa_session_refusal(user: Any, session: Any) -> str:
    """``mfa_refusal`` for a websocket (the live inbox): its scope's user and session."""
    return mfa_refusal(SimpleNamespace(user=user, session=session or {}, auth=None))


def mfa_check(user: Any) -> None:
    """Services' guard: NotAllowed when ``user`` must have a second factor and has none."""
    refusal = mfa_enrolment_refusal(user)
    if refusal:
        raise NotAllowed(refusal)


def mfa_check_request(request: Any) -> None:
    """Views' guard: NotAllowed (403) naming why this request lacks the MFA it needs."""
    refusal = mfa_refusal(request)
    if refusal:
        raise NotAllowed(refusal)
