"""Reviews: who reviews a datasource's requests, approvals up to the quorum, and denials."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from approvals import notifications, selectors
from approvals.models import REVIEW_POLICY_FIELDS, AccessRequest, DatasourceReviewPolicy, Review
from approvals.scope import scope_is_empty, scope_is_within, scope_normalise
from approvals.services.common import RequestStateError, audit_entry, close, locked, record_all
from approvals.services.expiry import request_expire_if_due
from approvals.services.grants import grant_extend_approved, grant_from_approvals
from audit.services import event_record
from config.errors import InvalidInput, NotAllowed
from governance.mfa import mfa_check
from governance.models import DataSource, User


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
    unknown = set(fields) - set(REVIEW_POLICY_FIELDS)
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
                **fields,
            },
        )
    return policy


def _check_reviewer(actor: User, access_request: AccessRequest) -> None:
    mfa_check(actor)
    # Acting on the request: an overdue one expires (and stays expired) before any review.
    if request_expire_if_due(access_request=access_request):
        raise RequestStateError("The request expired before this review.")
    refusal = selectors.review_refusal(user=actor, access_request=access_request)
    if refusal:
        raise NotAllowed(refusal)


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
        access_request = locked(access_request)
        review, reviews, audit = _review_add(
            actor,
            access_request,
            Review.Decision.APPROVE,
            comment,
            narrowed_scope=narrowed,
            narrowed_duration_minutes=narrowed_duration_minutes,
            statement_only=statement_only,
            max_runs=max_runs,
        )
        approvals = [each for each in reviews if each.decision == Review.Decision.APPROVE]
        policy = selectors.review_policy_for(access_request.datasource)
        if len(approvals) < policy.required_approvals:
            record_all(audit)
            notifications.request_notify(access_request.pk, "reviewed")
            return access_request
        close(access_request, AccessRequest.State.APPROVED)
        audit.append(
            audit_entry(
                access_request,
                "access_request.approved",
                actor=actor,
                decision="approved",
                reviewer=actor,
                comment=review.comment,
                approvers=[a.reviewer.get_username() for a in approvals],
            )
        )
        if access_request.extends_grant_id is not None:
            grant_extend_approved(
                actor, access_request, approvals, audit, grant_id=access_request.extends_grant_id
            )
        else:
            grant_from_approvals(actor, access_request, approvals, audit)
        # The review, the decision and the grant: one append to the audit chain, so its lock
        # is taken once and last, and held only until the commit right after.
        record_all(audit)
        notifications.decision_notify(access_request, "approved", policy)
    return access_request


def request_deny(*, actor: User, access_request: AccessRequest, comment: str = "") -> AccessRequest:
    """Any denial ends the request."""
    _check_reviewer(actor, access_request)
    with transaction.atomic():
        access_request = locked(access_request)
        review, _reviews, audit = _review_add(actor, access_request, Review.Decision.DENY, comment)
        close(access_request, AccessRequest.State.DENIED)
        audit.append(
            audit_entry(
                access_request,
                "access_request.denied",
                actor=actor,
                decision="denied",
                reviewer=actor,
                comment=review.comment,
            )
        )
        record_all(audit)
        notifications.decision_notify(
            access_request, "denied", selectors.review_policy_for(access_request.datasource)
        )
    return access_request


def _review_add(
    actor: User, access_request: AccessRequest, decision: str, comment: str, **fields: Any
) -> tuple[Review, list[Review], list[dict[str, Any]]]:
    """The review; every review of the request with it, oldest first, with their reviewers
    (one read: the caller holds the request's row lock, so no review lands in between); and
    its audit event for the caller to write with the ones that follow."""
    if access_request.is_pending and access_request.expires_at <= timezone.now():
        raise RequestStateError("The request expired before this review.")
    if not access_request.is_pending:
        raise RequestStateError(f"The request is already {access_request.state}.")
    earlier = list(access_request.reviews.select_related("reviewer"))
    if any(each.reviewer_id == actor.pk for each in earlier):
        raise RequestStateError("You already reviewed this request.")
    review = Review.objects.create(
        request=access_request,
        reviewer=actor,
        decision=decision,
        comment=(comment or "").strip(),
        **fields,
    )
    entry = audit_entry(
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
    return review, [*earlier, review], [entry]
