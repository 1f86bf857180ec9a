"""Filing and cancelling access requests, by people and by the agent for a held statement."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals import notifications, selectors
from approvals.models import AccessRequest, Grant
from approvals.scope import (
    StatementError,
    scope_from_statement,
    scope_is_empty,
    scope_normalise,
    scope_risk,
    scope_validate,
    statement_fingerprint,
    statement_parse,
)
from approvals.services.common import (
    RequestStateError,
    check_duration,
    check_level,
    check_reason,
    close,
    locked,
    record,
)
from approvals.services.expiry import request_expire_if_due
from config.errors import InvalidInput, NotAllowed
from governance.models import DataSource, User

DEFAULT_AGENT_DURATION_MINUTES = 60


def request_create(
    *,
    actor: User,
    datasource: DataSource,
    scope: Any,
    level: str,
    reason: str,
    duration_minutes: int,
    requester: User | None = None,
    statement: str = "",
    fingerprint: str = "",
    origin: str = AccessRequest.Origin.WEB,
    extends_grant: Grant | None = None,
) -> AccessRequest:
    """File a pending request; `requester` differs from `actor` only for the agent."""
    requester = requester or actor
    # The grantee of a grant may always ask to extend it (the agent may have filed it for them).
    if requester == actor and extends_grant is None and not actor.has_role("requester"):
        raise NotAllowed("Only requesters file access requests.")
    if requester != actor and origin != AccessRequest.Origin.AGENT:
        raise NotAllowed("Only the enforcement agent files requests for someone else.")
    check_level(level)
    reason = check_reason(reason)
    check_duration(datasource, duration_minutes)
    statement = (statement or "").strip()
    if statement:
        computed = _fingerprint_or_error(statement)
        fingerprint = fingerprint or computed
    scope = scope_normalise(scope)
    if scope_is_empty(scope) and statement:
        scope = scope_from_statement(datasource=datasource, sql=statement)
    scope_validate(datasource=datasource, scope=scope)
    policy = selectors.review_policy_for(datasource)
    now = timezone.now()
    with transaction.atomic():
        access_request = AccessRequest.objects.create(
            requester=requester,
            created_by=actor,
            origin=origin,
            datasource=datasource,
            scope=scope,
            level=level,
            reason=reason,
            duration_minutes=duration_minutes,
            statement=statement,
            statement_fingerprint=fingerprint,
            risk=scope_risk(datasource=datasource, scope=scope),
            extends_grant=extends_grant,
            created_at=now,
            expires_at=now + timedelta(minutes=policy.pending_expiry_minutes),
        )
        record(
            access_request,
            "access_request.created",
            actor=actor,
            origin=origin,
            fingerprint=fingerprint,
            extends_grant=extends_grant.pk if extends_grant else None,
        )
        notifications.request_notify(access_request.pk, "created")
    return access_request


def _fingerprint_or_error(statement: str) -> str:
    try:
        statement_parse(statement)
        return statement_fingerprint(statement)
    except StatementError as exc:
        raise InvalidInput(str(exc)) from exc


def agent_request_submit(
    *,
    actor: User,
    datasource: DataSource,
    identity: str,
    statement: str,
    fingerprint: str,
    scope: Any,
    level: str,
    reason: str,
    duration_minutes: int | None = None,
) -> tuple[AccessRequest, bool]:
    """The agent holds a statement: reuse the identity's pending request for that shape, or
    file one. Returns (request, created)."""
    requester = User.objects.filter(username=identity, is_active=True).first()
    if requester is None:
        raise InvalidInput(f"Unknown identity {identity!r}.")
    fingerprint = (fingerprint or "").strip() or _fingerprint_or_error(statement)
    existing = _pending_for_shape(requester, datasource, fingerprint)
    if existing is not None:
        return existing, False
    duration = duration_minutes or min(
        DEFAULT_AGENT_DURATION_MINUTES, selectors.max_grant_minutes_for(datasource)
    )
    try:
        created = request_create(
            actor=actor,
            requester=requester,
            datasource=datasource,
            scope=scope,
            level=level,
            reason=reason,
            duration_minutes=duration,
            statement=statement,
            fingerprint=fingerprint,
            origin=AccessRequest.Origin.AGENT,
        )
    except IntegrityError:  # a concurrent hold of the same statement won the race
        existing = _pending_for_shape(requester, datasource, fingerprint)
        if existing is None:
            raise
        return existing, False
    return created, True


def _pending_for_shape(
    requester: User, datasource: DataSource, fingerprint: str
) -> AccessRequest | None:
    """The identity's live pending request for this statement shape (an overdue one expires)."""
    pending = AccessRequest.objects.filter(
        requester=requester,
        datasource=datasource,
        statement_fingerprint=fingerprint,
        state=AccessRequest.State.PENDING,
    ).first()
    if pending is not None and request_expire_if_due(access_request=pending):
        return None
    return pending


def request_cancel(*, actor: User, access_request: AccessRequest) -> AccessRequest:
    if actor.pk not in (access_request.requester_id, access_request.created_by_id):
        raise NotAllowed("Only the requester cancels a request.")
    with transaction.atomic():
        access_request = locked(access_request)
        if not access_request.is_pending:
            raise RequestStateError(f"The request is already {access_request.state}.")
        close(access_request, AccessRequest.State.CANCELLED)
        record(access_request, "access_request.cancelled", actor=actor)
        notifications.request_notify(access_request.pk, "cancelled")
    return access_request
