"""What every approvals service shares: the audit record, the row lock and input checks."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from approvals import selectors
from approvals.models import AccessLevel, AccessRequest
from audit.services import event_entry, events_append
from config.errors import InvalidInput, StateConflict
from governance.models import DataSource, User


class RequestStateError(StateConflict):
    """The request or grant is not in a state that allows this step."""


def audit_details(
    access_request: AccessRequest,
    *,
    reviewer: User | None = None,
    comment: str = "",
    **extra: Any,
) -> dict[str, Any]:
    """The keys the audit evidence report is built from, present on every approvals event."""
    return {
        "request_id": access_request.pk,
        "requester": access_request.requester.get_username(),
        "datasource": access_request.datasource.name,
        "scope": access_request.scope,
        "level": access_request.level,
        "reason": access_request.reason,
        "duration_minutes": access_request.duration_minutes,
        "reviewer": reviewer.get_username() if reviewer else "",
        "comment": comment,
        **extra,
    }


def audit_entry(
    access_request: AccessRequest,
    action: str,
    *,
    actor: Any,
    target: Any = None,
    decision: str = "",
    reviewer: User | None = None,
    comment: str = "",
    **extra: Any,
) -> dict[str, Any]:
    """One approvals audit event about `access_request`, for ``record_all``."""
    return event_entry(
        actor=actor,
        action=action,
        target=target or access_request,
        datasource=access_request.datasource,
        decision=decision,
        details=audit_details(access_request, reviewer=reviewer, comment=comment, **extra),
    )


def record(access_request: AccessRequest, action: str, **fields: Any) -> None:
    """Write one approvals audit event (``audit_entry``'s fields) in the caller's transaction."""
    record_all([audit_entry(access_request, action, **fields)])


def record_all(entries: list[dict[str, Any]]) -> None:
    """Write a step's events in order, in the caller's transaction, with one chain append."""
    events_append(entries=entries)


def close(access_request: AccessRequest, state: str) -> None:
    """End a pending request in `state` (the caller records why)."""
    access_request.state = state
    access_request.decided_at = timezone.now()
    access_request.save(update_fields=["state", "decided_at"])


def locked(access_request: AccessRequest) -> AccessRequest:
    """The request's row, locked until the end of the caller's transaction."""
    return (
        AccessRequest.objects.select_for_update(of=("self",))
        .select_related("requester", "datasource")
        .get(pk=access_request.pk)
    )


def check_level(level: str) -> None:
    if level not in AccessLevel.values:
        raise InvalidInput(f"Unknown access level {level!r}; use one of {AccessLevel.values}.")


def check_duration(datasource: DataSource, duration_minutes: int) -> None:
    ceiling = selectors.max_grant_minutes_for(datasource)
    if not isinstance(duration_minutes, int) or duration_minutes < 1:
        raise InvalidInput("The duration is a positive number of minutes.")
    if duration_minutes > ceiling:
        raise InvalidInput(f"{datasource.name} grants at most {ceiling} minutes.")


def check_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("A reason is required.")
    return reason
