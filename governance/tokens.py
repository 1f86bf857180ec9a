"""Access tokens: created, rotated and revoked through services, checked here.

A token has scopes (governance.scopes) and, when it is an agent's, the datasources it serves;
it expires after WARDEN_TOKEN_DEFAULT_DAYS unless its creator picks another date.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Literal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import event_record
from config.errors import InvalidInput, NotAllowed, StateConflict
from governance.models import AccessToken, DataSource, User
from governance.scopes import PERSONAL_DEFAULT, Scope, scopes_check
from governance.token_verifiers import token_verifier_create, tokens_without_verifier

TOKEN_PREFIX = "wdn_"
# Writing last_used_at on every request would be a write per API call; once a minute is enough.
_LAST_USED_RESOLUTION = timedelta(minutes=1)
DEFAULT_EXPIRY: Literal["default"] = "default"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_default_expiry() -> datetime | None:
    days = settings.WARDEN_TOKEN_DEFAULT_DAYS
    return timezone.now() + timedelta(days=days) if days > 0 else None


def _bound_datasources(scopes: list[str], datasources: Iterable[DataSource]) -> list[DataSource]:
    bound = list(datasources)
    if Scope.AGENT in scopes and not bound:
        raise InvalidInput("An agent token serves at least one datasource.", field="datasources")
    if bound and Scope.AGENT not in scopes:
        raise InvalidInput("Only agent tokens are bound to datasources.", field="datasources")
    return bound


def _insert(
    *,
    user: User,
    name: str,
    scopes: list[str],
    datasources: list[DataSource],
    expires_at: datetime | None,
    rotated_from: AccessToken | None = None,
    issued_with_mfa: bool = False,
) -> tuple[AccessToken, str]:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = AccessToken.objects.create(
        user=user,
        name=name,
        prefix=secret[:12],
        token_hash=_digest(secret),
        expires_at=expires_at,
        scopes=scopes,
        rotated_from=rotated_from,
        issued_with_mfa=issued_with_mfa,
    )
    token.datasources.set(datasources)
    token_verifier_create(token=token, secret=secret)  # so clients never send it
    return token, secret


def token_create(
    *,
    actor: User,
    user: User,
    name: str,
    scopes: Iterable[str] | None = None,
    datasources: Iterable[DataSource] = (),
    expires_at: datetime | Literal["default"] | None = DEFAULT_EXPIRY,
    is_agent: bool = False,
    actor_passed_mfa: bool = False,
) -> tuple[AccessToken, str]:
    """Create a token for `user`; returns the row and the secret, which is never stored.

    Without ``scopes`` a token gets the least-privilege personal default (``query`` and
    ``requests``); ``is_agent`` is shorthand for ``scopes=["agent"]``. ``actor_passed_mfa``:
    the caller's credential passed MFA (governance.mfa); the token carries that only when
    its owner created it, so it may approve where MFA is required.
    """
    if actor != user and not actor.has_role("admin"):
        raise NotAllowed("Only admins create tokens for someone else.")
    if not name.strip():
        raise InvalidInput("A token needs a name.", field="name")
    wanted = [Scope.AGENT] if is_agent else list(scopes if scopes is not None else PERSONAL_DEFAULT)
    granted = scopes_check(actor=actor, owner=user, scopes=wanted)
    bound = _bound_datasources(granted, datasources)
    expiry = token_default_expiry() if expires_at == DEFAULT_EXPIRY else expires_at
    with transaction.atomic():
        token, secret = _insert(
            user=user,
            name=name.strip()[:100],
            scopes=granted,
            datasources=bound,
            expires_at=expiry,
            issued_with_mfa=actor_passed_mfa and actor == user,
        )
        event_record(
            actor=actor,
            action="token.created",
            target=token,
            details={
                "owner": user.get_username(),
                "name": token.name,
                "scopes": granted,
                "datasources": sorted(datasource.name for datasource in bound),
                "expires_at": expiry.isoformat() if expiry else None,
                "issued_with_mfa": token.issued_with_mfa,
            },
        )
    return token, secret


def _may_manage(actor: User, token: AccessToken) -> bool:
    return actor == token.user or actor.has_role("admin")


def token_rotate(*, actor: User, token: AccessToken) -> tuple[AccessToken, str]:
    """A new secret with the same name, scopes, datasources and lifetime; the old one is
    revoked in the same transaction."""
    if not _may_manage(actor, token):
        raise NotAllowed("Only the owner or an admin rotates a token.")
    with transaction.atomic():
        locked = AccessToken.objects.select_for_update().get(pk=token.pk)
        if locked.revoked_at is not None:
            raise StateConflict("A revoked token cannot be rotated.")
        lifetime = locked.expires_at - locked.created_at if locked.expires_at else None
        successor, secret = _insert(
            user=locked.user,
            name=locked.name,
            scopes=list(locked.scopes),
            datasources=list(locked.datasources.all()),
            expires_at=timezone.now() + lifetime if lifetime else None,
            rotated_from=locked,
            issued_with_mfa=locked.issued_with_mfa and actor == locked.user,
        )
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at"])
        event_record(
            actor=actor,
            action="token.rotated",
            target=successor,
            details={
                "owner": locked.user.get_username(),
                "name": locked.name,
                "old_prefix": locked.prefix,
                "new_prefix": successor.prefix,
            },
        )
    return successor, secret


def token_revoke(*, actor: User, token: AccessToken) -> AccessToken:
    if not _may_manage(actor, token):
        raise NotAllowed("Only the owner or an admin revokes a token.")
    with transaction.atomic():
        _revoke(actor, token, {})
    return token


def _revoke(actor: User | None, token: AccessToken, details: dict[str, str]) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        event_record(
            actor=actor,
            action="token.revoked",
            target=token,
            details={"owner": token.user.get_username(), "name": token.name, **details},
        )


def tokens_without_verifier_revoke(*, actor: User | None) -> list[AccessToken]:
    """Revoke every live ``query`` token that has no SCRAM verifier (an operator's choice
    when agents accept SCRAM only: such a token could log in only as a cleartext password).
    Each revocation is audited with the reason; owners make a new token, which has one."""
    with transaction.atomic():
        revoked = tokens_without_verifier()
        for token in revoked:
            _revoke(actor, token, {"reason": "no SCRAM verifier"})
    return revoked


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


def token_serves(token: AccessToken, datasource: DataSource) -> bool:
    """Whether an agent token is bound to ``datasource``."""
    return token.is_agent and token.datasources.filter(pk=datasource.pk).exists()
