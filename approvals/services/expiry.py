"""Time passing: pending requests expire, grants run out, grantees are warned first.

The periodic task calls the plural functions; a service about to act on one request calls
``request_expire_if_due`` so an overdue request is never reviewed. Reads never expire.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from approvals import notifications, selectors
from approvals.models import AccessRequest, Grant
from approvals.services.common import record


def request_expire_if_due(*, access_request: AccessRequest, now: datetime | None = None) -> bool:
    """A pending request past its deadline becomes expired now; True if it is expired."""
    now = now or timezone.now()
    if access_request.state != AccessRequest.State.PENDING or access_request.expires_at > now:
        return False
    with transaction.atomic():
        claimed = AccessRequest.objects.filter(
            pk=access_request.pk, state=AccessRequest.State.PENDING, expires_at__lte=now
        ).update(state=AccessRequest.State.EXPIRED, decided_at=now)
        access_request.refresh_from_db()
        if claimed:
            record(access_request, "access_request.expired", actor=None, decision="expired")
            notifications.request_notify(access_request.pk, "expired")
    return True


def requests_expire_due(*, now: datetime | None = None) -> int:
    """Expire every pending request past its deadline (the beat task); safe to run twice."""
    now = now or timezone.now()
    due = AccessRequest.objects.filter(state=AccessRequest.State.PENDING, expires_at__lte=now)
    expired = 0
    for access_request in due.select_related("requester", "datasource"):
        expired += int(request_expire_if_due(access_request=access_request, now=now))
    return expired


def grants_expire_due(*, now: datetime | None = None) -> int:
    """Record grant.expired once for every grant whose time ran out."""
    now = now or timezone.now()
    due = Grant.objects.filter(
        revoked_at__isnull=True, expires_at__lte=now, expiry_recorded_at__isnull=True
    ).select_related("request__requester", "request__datasource")
    recorded = 0
    for grant in due:
        with transaction.atomic():
            claimed = Grant.objects.filter(pk=grant.pk, expiry_recorded_at__isnull=True).update(
                expiry_recorded_at=now
            )
            if claimed:
                record(
                    grant.request,
                    "grant.expired",
                    actor=None,
                    target=grant,
                    decision="expired",
                    grant_id=grant.pk,
                    expires_at=grant.expires_at.isoformat(),
                )
                notifications.request_notify(grant.request_id, "grant_expired")
                recorded += 1
    return recorded


def grants_warn_expiring(*, now: datetime | None = None) -> list[int]:
    """Warn each grantee once, N minutes (per datasource) before their grant ends."""
    now = now or timezone.now()
    candidates = (
        selectors.live_grants(now=now).filter(warned_at__isnull=True).select_related("datasource")
    )
    warned = []
    for grant in candidates:
        window = selectors.review_policy_for(grant.datasource).expiry_warning_minutes
        if grant.expires_at - now > timedelta(minutes=window):
            continue
        with transaction.atomic():
            if Grant.objects.filter(pk=grant.pk, warned_at__isnull=True).update(warned_at=now):
                warned.append(grant.pk)
                notifications.grant_warning_notify(grant.pk)
    return warned
