"""Client logins through the agent: a Warden identity and its personal access token."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from audit.services import event_record
from governance.models import AccessToken, DataSource, User
from governance.scopes import Scope
from governance.tokens import token_authenticate


@dataclass(frozen=True)
class AgentLogin:
    ok: bool
    identity: str
    kind: str = "user"
    groups: list[str] = field(default_factory=list)
    reason: str = ""


def _login_failure(secret: str, identity: str) -> tuple[str, str]:
    """(reason for the client, cause for the audit trail) of a failed login.

    Unknown identities and wrong tokens get the same reason so the agent cannot be used to
    probe which usernames exist; revoked/expired are only told to whoever holds the secret.
    """
    generic = "invalid identity or token"
    user = User.objects.filter(username=identity).first()
    if user is None:
        return generic, "unknown identity"
    if not user.is_active:
        return generic, "inactive user"
    digest = hashlib.sha256(secret.encode()).hexdigest()  # as governance.tokens stores it
    token = AccessToken.objects.filter(token_hash=digest, user=user).first()
    if token is None:
        return generic, "wrong token"
    if token.revoked_at is not None:
        return "token has been revoked", "revoked token"
    if token.expires_at is not None and token.expires_at <= timezone.now():
        return "token has expired", "expired token"
    return generic, "token rejected"


@transaction.atomic
def agent_login_check(
    *,
    agent_token: AccessToken,
    datasource: DataSource,
    identity: str,
    secret: str,
    source_address: str = "",
    application: str = "",
) -> AgentLogin:
    """Check a client's Warden identity and personal access token; audit either way."""
    agent_name = agent_token.user.get_username()
    token = token_authenticate(secret=secret, username=identity)
    if token is None or Scope.QUERY not in token.scopes:
        reason, cause = (
            _login_failure(secret, identity)
            if token is None
            else ("token lacks the query scope", "token without the query scope")
        )
        event_record(
            actor=agent_token.user,
            action="auth.agent_login_failed",
            datasource=datasource,
            decision="deny",
            source_address=source_address,
            details={
                "identity": identity,
                "reason": cause,
                "agent": agent_name,
                "application": application,
            },
        )
        return AgentLogin(ok=False, identity=identity, reason=reason)
    user = token.user
    kind = "service_account" if user.is_service_account else "user"
    groups = sorted(user.groups.values_list("name", flat=True))
    event_record(
        actor=user,
        action="auth.agent_login",
        target=token,
        datasource=datasource,
        decision="allow",
        source_address=source_address,
        details={
            "identity": user.get_username(),
            "kind": kind,
            "agent": agent_name,
            "token": token.prefix,
            "application": application,
        },
    )
    return AgentLogin(ok=True, identity=user.get_username(), kind=kind, groups=groups)
