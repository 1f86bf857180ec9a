"""Break-glass: emergency access granted at once, flagged, and announced."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from approvals import notifications, selectors
from approvals.models import AccessRequest, Grant
from approvals.scope import scope_normalise, scope_risk, scope_validate
from approvals.services.common import check_level, check_reason, record
from config.errors import InvalidInput, NotAllowed
from governance.mfa import mfa_check
from governance.models import DataSource, User


def break_glass_use(
    *,
    actor: User,
    datasource: DataSource,
    scope: Any,
    level: str,
    reason: str,
    duration_minutes: int | None = None,
) -> Grant:
    """Emergency access, granted at once, flagged, and announced to reviewers and auditors."""
    policy = selectors.review_policy_for(datasource)
    if not policy.break_glass_enabled:
        raise NotAllowed(f"Break-glass is not enabled on {datasource.name}.")
    if actor.is_service_account or not (actor.has_role("requester") or actor.has_role("admin")):
        raise NotAllowed("Break-glass is for people with the requester role.")
    mfa_check(actor)
    check_level(level)
    reason = check_reason(reason)
    minutes = duration_minutes or policy.break_glass_minutes
    ceiling = min(policy.break_glass_minutes, selectors.max_grant_minutes_for(datasource))
    if not 1 <= minutes <= ceiling:
        raise InvalidInput(
            f"Break-glass on {datasource.name} lasts at most {policy.break_glass_minutes} minutes."
        )
    scope = scope_normalise(scope)
    scope_validate(datasource=datasource, scope=scope)
    now = timezone.now()
    with transaction.atomic():
        access_request = AccessRequest.objects.create(
            requester=actor,
            created_by=actor,
            origin=AccessRequest.Origin.BREAK_GLASS,
            datasource=datasource,
            scope=scope,
            level=level,
            reason=reason,
            duration_minutes=minutes,
            risk=scope_risk(datasource=datasource, scope=scope),
            state=AccessRequest.State.APPROVED,
            is_break_glass=True,
            created_at=now,
            expires_at=now,
            decided_at=now,
        )
        grant = Grant.objects.create(
            request=access_request,
            grantee=actor,
            datasource=datasource,
            scope=scope,
            level=level,
            is_break_glass=True,
            starts_at=now,
            expires_at=now + timedelta(minutes=minutes),
        )
        record(
            access_request,
            "access_request.created",
            actor=actor,
            origin=AccessRequest.Origin.BREAK_GLASS,
        )
        record(
            access_request,
            "break_glass.used",
            actor=actor,
            target=grant,
            decision="granted",
            grant_id=grant.pk,
            expires_at=grant.expires_at.isoformat(),
        )
        record(
            access_request,
            "grant.created",
            actor=actor,
            target=grant,
            decision="granted",
            grant_id=grant.pk,
            granted_scope=scope,
            granted_minutes=minutes,
            expires_at=grant.expires_at.isoformat(),
            break_glass=True,
        )
        notifications.request_notify(access_request.pk, "created")
    return grant
