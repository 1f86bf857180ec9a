"""Client logins through the agent: a Warden identity and its personal access token.

Two ways in: the agent forwards a token a client sent as a cleartext password over TLS
(``agent_login_check``), or it checked a challenge-response proof against the token's
verifiers itself (``governance.token_verifiers``) and reports which token matched
(``agent_login_record``).  Either way the login is audited here, and the control plane
has the last word on whether the token is still live.  A reported login whose session then
never starts (the client went away, the upstream refused, the login timed out) gets a
follow-up event (``agent_login_abandoned``), so no accepted login stands in the trail for a
session that did not exist.  The accepted answer carries the sequence of the login's audit
event (``login_sequence``) and the follow-up names it back, so it lands on exactly that
login even while the same token logs in from elsewhere through the same agent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import event_record
from config.errors import NotFound
from governance.models import AccessToken, DataSource, TokenVerifier, User
from governance.scopes import Scope
from governance.token_verifiers import live_tokens, token_verifier_create
from governance.tokens import token_authenticate

GENERIC_REFUSAL = "invalid identity or token"


@dataclass(frozen=True)
class AgentLogin:
    ok: bool
    identity: str
    kind: str = "user"
    groups: list[str] = field(default_factory=list)
    reason: str = ""
    token_id: int | None = None  # accepted: the token, and the audit event of the login,
    login_sequence: int | None = None  # which a follow-up (agent_login_abandoned) names


@dataclass(frozen=True)
class LoginContext:
    """Who asked and from where, for the audit trail."""

    agent_token: AccessToken
    datasource: DataSource
    source_address: str = ""
    application: str = ""
    mechanism: str = "password"


def _token_failure(token: AccessToken | None) -> tuple[str, str]:
    if token is None:
        return GENERIC_REFUSAL, "wrong token"
    if token.revoked_at is not None:
        return "token has been revoked", "revoked token"
    if token.expires_at is not None and token.expires_at <= timezone.now():
        return "token has expired", "expired token"
    return GENERIC_REFUSAL, "token rejected"


def _login_failure(identity: str, token_of: dict[str, object]) -> tuple[str, str]:
    """(reason for the client, cause for the audit trail) of a failed login.

    Unknown identities and wrong tokens get the same reason so the agent cannot be used to
    probe which usernames exist; revoked/expired are only told to whoever holds the secret.
    """
    user = User.objects.filter(username=identity).first()
    if user is None:
        return GENERIC_REFUSAL, "unknown identity"
    if not user.is_active:
        return GENERIC_REFUSAL, "inactive user"
    return _token_failure(AccessToken.objects.filter(user=user, **token_of).first())


def _refused(context: LoginContext, identity: str, cause: str, reason: str) -> AgentLogin:
    event_record(
        actor=context.agent_token.user,
        action="auth.agent_login_failed",
        datasource=context.datasource,
        decision="deny",
        source_address=context.source_address,
        details={
            "identity": identity,
            "reason": cause,
            "agent": context.agent_token.user.get_username(),
            "application": context.application,
            "mechanism": context.mechanism,
        },
    )
    return AgentLogin(ok=False, identity=identity, reason=reason)


def _accepted(context: LoginContext, token: AccessToken) -> AgentLogin:
    user = token.user
    kind = "service_account" if user.is_service_account else "user"
    groups = sorted(user.groups.values_list("name", flat=True))
    event = event_record(
        actor=user,
        action="auth.agent_login",
        target=token,
        datasource=context.datasource,
        decision="allow",
        source_address=context.source_address,
        details={
            "identity": user.get_username(),
            "kind": kind,
            "agent": context.agent_token.user.get_username(),
            "token": token.prefix,
            "application": context.application,
            "mechanism": context.mechanism,
        },
    )
    return AgentLogin(
        ok=True,
        identity=user.get_username(),
        kind=kind,
        groups=groups,
        token_id=token.pk,
        login_sequence=event.sequence,
    )


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
    """Check a client's Warden identity and personal access token (sent as a cleartext
    password over TLS); audit either way.  A token older than verifiers gets them now."""
    context = LoginContext(agent_token, datasource, source_address, application)
    token = token_authenticate(secret=secret, username=identity)
    if token is None:
        digest = hashlib.sha256(secret.encode()).hexdigest()  # as governance.tokens stores it
        reason, cause = _login_failure(identity, {"token_hash": digest})
        return _refused(context, identity, cause, reason)
    if Scope.QUERY not in token.scopes:
        return _refused(
            context, identity, "token without the query scope", "token lacks the query scope"
        )
    if not TokenVerifier.objects.filter(token=token).exists():
        token_verifier_create(token=token, secret=secret)
    return _accepted(context, token)


@transaction.atomic
def agent_login_record(
    *,
    agent_token: AccessToken,
    datasource: DataSource,
    identity: str,
    token_id: int | None,
    mechanism: str,
    source_address: str = "",
    application: str = "",
) -> AgentLogin:
    """An agent's report of a challenge-response login (``token_id``: the token whose
    verifier the client's proof matched, None when none did): audit it and say whether
    the token is still live for ``identity``."""
    context = LoginContext(agent_token, datasource, source_address, application, mechanism)
    if token_id is None:
        return _refused(context, identity, "wrong proof", GENERIC_REFUSAL)
    user = User.objects.filter(username=identity, is_active=True).first()
    token = (
        AccessToken.objects.select_related("user").filter(live_tokens(user), pk=token_id).first()
        if user is not None
        else None
    )
    if token is None:
        reason, cause = _login_failure(identity, {"pk": token_id})
        return _refused(context, identity, cause, reason)
    if Scope.QUERY not in token.scopes:
        return _refused(
            context, identity, "token without the query scope", "token lacks the query scope"
        )
    now = timezone.now()
    AccessToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return _accepted(context, token)


# An accepted login is followed up within the agent's login deadline (120 s) and its
# control-plane calls; an older one is no session the agent is still setting up.
FOLLOW_UP_WINDOW = timedelta(minutes=10)


def _login_to_follow_up(
    agent_token: AccessToken,
    datasource: DataSource,
    identity: str,
    token_id: int,
    login_sequence: int,
) -> AuditEvent | None:
    """The ``auth.agent_login`` numbered ``login_sequence``, when it is a recent accepted
    login of this token and identity on ``datasource`` that this agent reported and has not
    followed up yet (locked: two follow-ups of one login wait for each other)."""
    login = (
        AuditEvent.objects.select_for_update()
        .filter(
            sequence=login_sequence,
            action="auth.agent_login",
            actor=identity,
            target_type=AccessToken._meta.label_lower,
            target_id=str(token_id),
            datasource_name=datasource.name,
            occurred_at__gte=timezone.now() - FOLLOW_UP_WINDOW,
        )
        .first()
    )
    if login is None or login.details.get("agent") != agent_token.user.get_username():
        return None
    follow_ups = AuditEvent.objects.filter(
        actor=identity,  # the (actor, sequence) index: this identity's later events only
        sequence__gt=login_sequence,
        action="auth.agent_login_abandoned",
    ).only("details")  # details are canonical text, not jsonb: compared here
    followed = any(event.details.get("login_sequence") == login_sequence for event in follow_ups)
    return None if followed else login


@transaction.atomic
def agent_login_abandoned(
    *,
    agent_token: AccessToken,
    datasource: DataSource,
    identity: str,
    token_id: int,
    login_sequence: int,
    mechanism: str,
    reason: str,
    source_address: str = "",
    application: str = "",
) -> None:
    """An agent's follow-up to a login it reported and had accepted (``agent_login_record``,
    ``agent_login_check``) whose session never started: audited as
    ``auth.agent_login_abandoned`` with the same identity, token, mechanism and address,
    and why (the token's state is not checked again: nothing is granted).  Only the login
    whose event is ``login_sequence`` (the accepted answer carried it), when it is recent,
    of that token, identity, mechanism, datasource, client address and application, was
    reported by this agent and was not followed up yet: anything else is NotFound naming
    ``login_sequence`` (an agent cannot write "alice's login abandoned" into the trail for a
    login that never was, nor beside another login of the same token)."""
    login = _login_to_follow_up(agent_token, datasource, identity, token_id, login_sequence)
    token = AccessToken.objects.select_related("user").filter(pk=token_id).first()
    if (
        login is None
        or token is None
        or login.details.get("mechanism") != mechanism
        or login.source_address != (source_address or "")
        or login.details.get("application", "") != application
    ):
        raise NotFound(
            f"No recent accepted login #{login_sequence} of {identity!r} with token "
            f"{token_id} ({mechanism}) from {source_address or 'an unnamed address'} reported "
            "by this agent is waiting for a follow-up.",
            field="login_sequence",
        )
    event_record(
        actor=token.user,
        action="auth.agent_login_abandoned",
        target=token,
        datasource=datasource,
        source_address=source_address,
        details={
            "identity": identity,
            "agent": agent_token.user.get_username(),
            "token": token.prefix,
            "application": application,
            "mechanism": mechanism,
            "reason": reason,
            "login_sequence": login.sequence,
        },
    )
