"""Personal access tokens: created and revoked through services, checked here."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from audit.services import event_record
from config.errors import InvalidInput, NotAllowed
from governance.models import AccessToken, User
from governance.token_verifiers import token_verifier_create

TOKEN_PREFIX = "wdn_"
# Writing last_used_at on every request would be a write per API call; once a minute is enough.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_create(
    *,
    actor: User,
    user: User,
    name: str,
    expires_at=None,
    is_agent: bool = False,
) -> tuple[AccessToken, str]:
    """Create a token for `user`; returns the row and the secret, which is never stored."""
    if actor != user and not actor.has_role("admin"):
        raise NotAllowed("Only admins create tokens for someone else.")
    if not name.strip():
        raise InvalidInput("A token needs a name.")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = AccessToken.objects.create(
            user=user,
            name=name.strip()[:100],
            prefix=secret[:12],
            token_hash=_digest(secret),
            expires_at=expires_at,
            is_agent=is_agent,
        )
        token_verifier_create(token=token, secret=secret)  # so clients never send it
        event_record(
            actor=actor,
            action="token.created",
            target=token,
            details={"owner": user.get_username(), "name": token.name, "agent": is_agent},
        )
    return token, secret


def token_revoke(*, actor: User, token: AccessToken) -> AccessToken:
    if actor != token.user and not actor.has_role("admin"):
        raise NotAllowed("Only the owner or an admin revokes a token.")
    with transaction.atomic():
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            event_record(
                actor=actor,
                action="token.revoked",
                target=token,
                details={"owner": token.user.get_username(), "name": token.name},
            )
    return token


def token_authenticate(*, secret: str, username: str | None = None) -> AccessToken | None:
    """The live token with this secret (and owner, when given), or None."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    token = (
        AccessToken.objects.select_related("user")
        .filter(token_hash=_digest(secret), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    now = timezone.now()
    if token is None or (token.expires_at and token.expires_at <= now):
        return None
    if username is not None and token.user.get_username() != username:
        return None
    if token.last_used_at is None or now - token.last_used_at > _LAST_USED_RESOLUTION:
        AccessToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
