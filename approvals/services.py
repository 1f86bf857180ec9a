"""Everything that changes access requests, reviews and grants.

Each service checks who may do it, writes its rows and its audit event in one transaction,
and schedules live pushes, webhooks and emails for after the commit.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from approvals import notifications, selectors
from approvals.models import AccessLevel, AccessRequest, DatasourceReviewPolicy, Grant, Review
from approvals.scope import (
    StatementError,
    scope_from_statement,
    scope_intersection,
    scope_is_empty,
    scope_is_within,
    scope_normalise,
    scope_risk,
    scope_validate,
    statement_fingerprint,
    statement_parse,
)
from audit.services import event_record
from config.errors import InvalidInput, NotAllowed, StateConflict
from governance.models import DataSource, User

DEFAULT_AGENT_DURATION_MINUTES = 60


class RequestStateError(StateConflict):
    """The request or grant is not in a state that allows this step."""


# ------------------------------------------------------------------ helpers


def _audit_details(
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


def _record(
    access_request: AccessRequest,
    action: str,
    *,
    actor: Any,
    target: Any = None,
    decision: str = "",
    reviewer: User | None = None,
    comment: str = "",
    **extra: Any,
) -> None:
    event_record(
        actor=actor,
        action=action,
        target=target or access_request,
        datasource=access_request.datasource,
        decision=decision,
        details=_audit_details(access_request, reviewer=reviewer, comment=comment, **extra),
    )


def _close(access_request: AccessRequest, state: str) -> None:
    """End a pending request in `state` (the caller records why)."""
    access_request.state = state
    access_request.decided_at = timezone.now()
    access_request.save(update_fields=["state", "decided_at"])


def _check_level(level: str) -> None:
    if level not in AccessLevel.values:
        raise InvalidInput(f"Unknown access level {level!r}; use one of {AccessLevel.values}.")


def _check_duration(datasource: DataSource, duration_minutes: int) -> None:
    ceiling = selectors.max_grant_minutes_for(datasource)
    if not isinstance(duration_minutes, int) or duration_minutes < 1:
        raise InvalidInput("The duration is a positive number of minutes.")
    if duration_minutes > ceiling:
        raise InvalidInput(f"{datasource.name} grants at most {ceiling} minutes.")


def _check_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("A reason is required.")
    return reason


def _locked(access_request: AccessRequest) -> AccessRequest:
    return (
        AccessRequest.objects.select_for_update(of=("self",))
        .select_related("requester", "datasource")
        .get(pk=access_request.pk)
    )


# ------------------------------------------------------------------ review policy


def review_policy_set(
    *,
    actor: User,
    datasource: DataSource,
    reviewer_groups: list[Group] | None = None,
    **fields: Any,
) -> DatasourceReviewPolicy:
    """Create or change a datasource's review policy (admins)."""
    if not actor.has_role("admin"):
        raise NotAllowed("Only admins configure reviews.")
    allowed = {
        "required_approvals",
        "pending_expiry_minutes",
        "max_grant_minutes",
        "expiry_warning_minutes",
        "break_glass_enabled",
        "break_glass_minutes",
        "webhook_url",
        "webhook_slack",
        "notify_emails",
    }
    unknown = set(fields) - allowed
    if unknown:
        raise InvalidInput(f"Unknown review policy fields: {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        policy, _created = DatasourceReviewPolicy.objects.get_or_create(datasource=datasource)
        for name, value in fields.items():
            setattr(policy, name, value)
        policy.full_clean(exclude=["datasource"])
        policy.save()
        if reviewer_groups is not None:
            policy.reviewer_groups.set(reviewer_groups)
        event_record(
            actor=actor,
            action="review_policy.updated",
            target=policy,
            datasource=datasource,
            details={
                "datasource": datasource.name,
                "reviewer_groups": sorted(g.name for g in policy.reviewer_groups.all()),
                **{name: value for name, value in fields.items()},
            },
        )
    return policy


# ------------------------------------------------------------------ requests


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
    _check_level(level)
    reason = _check_reason(reason)
    _check_duration(datasource, duration_minutes)
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
        _record(
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


def _pending_for_shape(requester: User, datasource: DataSource, fingerprint: str):
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
        access_request = _locked(access_request)
        if not access_request.is_pending:
            raise RequestStateError(f"The request is already {access_request.state}.")
        _close(access_request, AccessRequest.State.CANCELLED)
        _record(access_request, "access_request.cancelled", actor=actor)
        notifications.request_notify(access_request.pk, "cancelled")
    return access_request


# ------------------------------------------------------------------ reviews


def _check_reviewer(actor: User, access_request: AccessRequest) -> None:
    # The check on read: an overdue request expires (and stays expired) before any review.
    if request_expire_if_due(access_request=access_request):
        raise RequestStateError("The request expired before this review.")
    if actor.is_service_account:
        raise NotAllowed("Service accounts never review.")
    if actor.pk in (access_request.requester_id, access_request.created_by_id):
        raise NotAllowed("Nobody reviews their own request.")
    if not selectors.can_review_datasource(user=actor, datasource_id=access_request.datasource_id):
        raise NotAllowed(f"You do not review requests for {access_request.datasource.name}.")


def request_approve(
    *,
    actor: User,
    access_request: AccessRequest,
    comment: str = "",
    narrowed_scope: Any = None,
    narrowed_duration_minutes: int | None = None,
    statement_only: bool = False,
    max_runs: int | None = None,
) -> AccessRequest:
    """Record an approval; the quorum-th distinct approval grants (or extends) access."""
    _check_reviewer(actor, access_request)
    requested = scope_normalise(access_request.scope)
    narrowed = None
    if narrowed_scope is not None:
        narrowed = scope_normalise(narrowed_scope)
        if scope_is_empty(narrowed) or not scope_is_within(narrowed, requested):
            raise InvalidInput("A narrowed scope keeps some of, and only, the requested scope.")
    if narrowed_duration_minutes is not None and not (
        1 <= narrowed_duration_minutes <= access_request.duration_minutes
    ):
        raise InvalidInput("A reviewer can only shorten the duration.")
    if statement_only and not access_request.statement_fingerprint:
        raise InvalidInput("Only a request that carries a statement can be statement-bound.")
    if max_runs is not None and (not statement_only or max_runs < 1):
        raise InvalidInput("max_runs needs a statement-bound approval and at least 1 run.")
    with transaction.atomic():
        access_request = _locked(access_request)
        review = _review_add(
            actor,
            access_request,
            Review.Decision.APPROVE,
            comment,
            narrowed_scope=narrowed,
            narrowed_duration_minutes=narrowed_duration_minutes,
            statement_only=statement_only,
            max_runs=max_runs,
        )
        approvals = list(access_request.reviews.filter(decision=Review.Decision.APPROVE))
        quorum = selectors.review_policy_for(access_request.datasource).required_approvals
        if len(approvals) < quorum:
            notifications.request_notify(access_request.pk, "reviewed")
            return access_request
        _close(access_request, AccessRequest.State.APPROVED)
        _record(
            access_request,
            "access_request.approved",
            actor=actor,
            decision="approved",
            reviewer=actor,
            comment=review.comment,
            approvers=[a.reviewer.get_username() for a in approvals],
        )
        if access_request.extends_grant_id:
            _grant_extend(actor, access_request, approvals)
        else:
            _grant_from_approvals(actor, access_request, approvals)
        notifications.request_notify(access_request.pk, "approved")
    return access_request


def request_deny(*, actor: User, access_request: AccessRequest, comment: str = "") -> AccessRequest:
    """Any denial ends the request."""
    _check_reviewer(actor, access_request)
    with transaction.atomic():
        access_request = _locked(access_request)
        review = _review_add(actor, access_request, Review.Decision.DENY, comment)
        _close(access_request, AccessRequest.State.DENIED)
        _record(
            access_request,
            "access_request.denied",
            actor=actor,
            decision="denied",
            reviewer=actor,
            comment=review.comment,
        )
        notifications.request_notify(access_request.pk, "denied")
    return access_request


def _review_add(
    actor: User, access_request: AccessRequest, decision: str, comment: str, **fields: Any
) -> Review:
    if access_request.is_pending and access_request.expires_at <= timezone.now():
        raise RequestStateError("The request expired before this review.")
    if not access_request.is_pending:
        raise RequestStateError(f"The request is already {access_request.state}.")
    if access_request.reviews.filter(reviewer=actor).exists():
        raise RequestStateError("You already reviewed this request.")
    review = Review.objects.create(
        request=access_request,
        reviewer=actor,
        decision=decision,
        comment=(comment or "").strip(),
        **fields,
    )
    _record(
        access_request,
        "review.recorded",
        actor=actor,
        target=review,
        decision=decision,
        reviewer=actor,
        comment=review.comment,
        narrowed_scope=fields.get("narrowed_scope"),
        narrowed_duration_minutes=fields.get("narrowed_duration_minutes"),
        statement_only=fields.get("statement_only", False),
        max_runs=fields.get("max_runs"),
    )
    return review


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


def _grant_from_approvals(
    actor: User, access_request: AccessRequest, approvals: list[Review]
) -> Grant:
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
    _record(
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
    return grant


def _grant_extend(actor: User, access_request: AccessRequest, approvals: list[Review]) -> Grant:
    grant = Grant.objects.select_for_update().get(pk=access_request.extends_grant_id)
    now = timezone.now()
    if not grant.is_live(now):
        raise RequestStateError("The grant is no longer live; file a new request instead.")
    terms = _granted_terms(access_request, approvals)
    previous = grant.expires_at
    grant.expires_at = max(previous, now + timedelta(minutes=terms["duration_minutes"]))
    grant.scope = terms["scope"]
    grant.warned_at = None
    grant.save(update_fields=["expires_at", "scope", "warned_at"])
    _record(
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
    return grant


# ------------------------------------------------------------------ grants


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
        access_request = _locked(grant.request)
        access_request.state = AccessRequest.State.REVOKED
        access_request.save(update_fields=["state"])
        _record(
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
            raise Grant.DoesNotExist(f"Grant {grant_id} does not exist for this datasource.")
        if not grant.is_live():
            raise RequestStateError(f"Grant {grant_id} is {grant.state}; no runs are left.")
        if grant.max_runs is None:
            raise RequestStateError(f"Grant {grant_id} is not limited to a number of runs.")
        if grant.runs_used >= grant.max_runs:
            raise RequestStateError(f"Grant {grant_id} has used all of its {grant.max_runs} runs.")
        grant.runs_used += 1
        grant.save(update_fields=["runs_used"])
        _record(
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
    _check_level(level)
    reason = _check_reason(reason)
    minutes = duration_minutes or policy.break_glass_minutes
    if (
        not 1
        <= minutes
        <= min(policy.break_glass_minutes, selectors.max_grant_minutes_for(datasource))
    ):
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
        _record(
            access_request,
            "access_request.created",
            actor=actor,
            origin=AccessRequest.Origin.BREAK_GLASS,
        )
        _record(
            access_request,
            "break_glass.used",
            actor=actor,
            target=grant,
            decision="granted",
            grant_id=grant.pk,
            expires_at=grant.expires_at.isoformat(),
        )
        _record(
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


# ------------------------------------------------------------------ time passing


def request_expire_if_due(*, access_request: AccessRequest, now: datetime | None = None) -> bool:
    """The check on read: a pending request past its deadline becomes expired now."""
    now = now or timezone.now()
    if access_request.state != AccessRequest.State.PENDING or access_request.expires_at > now:
        return False
    with transaction.atomic():
        claimed = AccessRequest.objects.filter(
            pk=access_request.pk, state=AccessRequest.State.PENDING, expires_at__lte=now
        ).update(state=AccessRequest.State.EXPIRED, decided_at=now)
        access_request.refresh_from_db()
        if claimed:
            _record(access_request, "access_request.expired", actor=None, decision="expired")
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
                _record(
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
    from approvals.tasks import grant_warning_email_task
    from config.dispatch import enqueue_on_commit

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
                grant_id = grant.pk
                transaction.on_commit(
                    lambda gid=grant_id: notifications.grant_warning_broadcast(gid)
                )
                enqueue_on_commit(grant_warning_email_task, grant_id)
    return warned
