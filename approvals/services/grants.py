"""Grants: made from the reviewers' approvals, extended, revoked, and counted run by run."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from approvals import notifications
from approvals.models import AccessRequest, Grant, Review
from approvals.scope import scope_intersection, scope_is_empty, scope_normalise
from approvals.services.common import RequestStateError, audit_entry, locked, record
from approvals.services.requests import request_create
from config.errors import InvalidInput, NotAllowed, NotFound
from governance.models import DataSource, User


def _granted_terms(access_request: AccessRequest, approvals: list[Review]) -> dict[str, Any]:
    """What every approver agreed to: the narrowest scope, the shortest time, fewest runs."""
    scope = scope_normalise(access_request.scope)
    duration = access_request.duration_minutes
    statement_only = False
    runs: list[int] = []
    for review in approvals:
        if review.narrowed_scope is not None:
            scope = scope_intersection(scope, scope_normalise(review.narrowed_scope))
        if review.narrowed_duration_minutes:
            duration = min(duration, review.narrowed_duration_minutes)
        if review.statement_only:
            statement_only = True
            if review.max_runs:
                runs.append(review.max_runs)
    return {
        "scope": scope,
        "duration_minutes": duration,
        "statement_fingerprint": access_request.statement_fingerprint if statement_only else None,
        "max_runs": min(runs) if runs else None,
    }


def grant_from_approvals(
    actor: User, access_request: AccessRequest, approvals: list[Review], audit: list[dict[str, Any]]
) -> Grant:
    """The grant a request earns once its quorum approved (in the approval's transaction,
    which writes the grant's audit event, added to ``audit``, with its own)."""
    terms = _granted_terms(access_request, approvals)
    if scope_is_empty(terms["scope"]):
        raise InvalidInput("The reviewers' narrowed scopes have nothing in common.")
    now = timezone.now()  # a grant's time starts at approval, not at the request
    grant = Grant.objects.create(
        request=access_request,
        grantee=access_request.requester,
        datasource=access_request.datasource,
        scope=terms["scope"],
        level=access_request.level,
        statement_fingerprint=terms["statement_fingerprint"],
        max_runs=terms["max_runs"],
        starts_at=now,
        expires_at=now + timedelta(minutes=terms["duration_minutes"]),
    )
    audit.append(
        audit_entry(
            access_request,
            "grant.created",
            actor=actor,
            target=grant,
            decision="granted",
            reviewer=actor,
            grant_id=grant.pk,
            granted_scope=grant.scope,
            granted_minutes=terms["duration_minutes"],
            expires_at=grant.expires_at.isoformat(),
            statement_fingerprint=grant.statement_fingerprint,
            max_runs=grant.max_runs,
        )
    )
    return grant


def grant_extend_approved(
    actor: User,
    access_request: AccessRequest,
    approvals: list[Review],
    audit: list[dict[str, Any]],
    *,
    grant_id: int,
) -> Grant:
    """Lengthen the grant an approved extension request names (in the approval's transaction;
    its audit event is added to ``audit``)."""
    grant = Grant.objects.select_for_update().get(pk=grant_id)
    now = timezone.now()
    if not grant.is_live(now):
        raise RequestStateError("The grant is no longer live; file a new request instead.")
    terms = _granted_terms(access_request, approvals)
    previous = grant.expires_at
    grant.expires_at = max(previous, now + timedelta(minutes=terms["duration_minutes"]))
    grant.scope = terms["scope"]
    grant.warned_at = None
    grant.save(update_fields=["expires_at", "scope", "warned_at"])
    audit.append(
        audit_entry(
            access_request,
            "grant.extended",
            actor=actor,
            target=grant,
            decision="extended",
            reviewer=actor,
            grant_id=grant.pk,
            previous_expires_at=previous.isoformat(),
            expires_at=grant.expires_at.isoformat(),
            granted_scope=grant.scope,
        )
    )
    return grant


def grant_revoke(*, actor: User, grant: Grant, reason: str = "") -> Grant:
    if not actor.has_role("admin"):
        raise NotAllowed("Only admins revoke grants.")
    with transaction.atomic():
        grant = Grant.objects.select_for_update().select_related("request").get(pk=grant.pk)
        if grant.revoked_at is not None:
            raise RequestStateError("The grant is already revoked.")
        now = timezone.now()
        grant.revoked_at, grant.revoked_by, grant.revoke_reason = now, actor, reason.strip()
        grant.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
        access_request = locked(grant.request)
        access_request.state = AccessRequest.State.REVOKED
        access_request.save(update_fields=["state"])
        record(
            access_request,
            "grant.revoked",
            actor=actor,
            target=grant,
            decision="revoked",
            reviewer=actor,
            comment=grant.revoke_reason,
            grant_id=grant.pk,
            was_live=grant.expires_at > now,
        )
        notifications.request_notify(access_request.pk, "revoked")
    return grant


def grant_run_use(*, actor: Any, grant_id: int, datasource: DataSource | None = None) -> Grant:
    """Count one run of a grant limited to ``max_runs``, for every agent at once: the agent
    asks before it forwards the statement, and a used-up, revoked or expired grant refuses.
    A used-up grant leaves the policy bundle, so agents stop offering it."""
    with transaction.atomic():
        grant = (
            Grant.objects.select_for_update()
            .select_related("request", "request__requester", "request__datasource")
            .filter(pk=grant_id)
            .first()
        )
        if grant is None or (datasource is not None and grant.datasource_id != datasource.pk):
            raise NotFound(f"Grant {grant_id} does not exist for this datasource.")
        if not grant.is_live():
            raise RequestStateError(f"Grant {grant_id} is {grant.state}; no runs are left.")
        if grant.max_runs is None:
            raise RequestStateError(f"Grant {grant_id} is not limited to a number of runs.")
        if grant.runs_used >= grant.max_runs:
            raise RequestStateError(f"Grant {grant_id} has used all of its {grant.max_runs} runs.")
        grant.runs_used += 1
        grant.save(update_fields=["runs_used"])
        record(
            grant.request,
            "grant.run_used",
            actor=actor,
            target=grant,
            decision="allowed",
            grant_id=grant.pk,
            runs_used=grant.runs_used,
            max_runs=grant.max_runs,
        )
    return grant


def grant_extend_request(
    *, actor: User, grant: Grant, reason: str, duration_minutes: int
) -> AccessRequest:
    """The grantee asks for more time on a live grant: a new request, a new review."""
    if actor.pk != grant.grantee_id:
        raise NotAllowed("Only the grantee asks to extend a grant.")
    if not grant.is_live():
        raise RequestStateError("Only a live grant can be extended.")
    if AccessRequest.objects.filter(
        extends_grant=grant, state=AccessRequest.State.PENDING
    ).exists():
        raise RequestStateError("An extension of this grant is already pending.")
    return request_create(
        actor=actor,
        datasource=grant.datasource,
        scope=grant.scope,
        level=grant.level,
        reason=reason,
        duration_minutes=duration_minutes,
        statement=grant.request.statement,
        fingerprint=grant.request.statement_fingerprint,
        extends_grant=grant,
    )
