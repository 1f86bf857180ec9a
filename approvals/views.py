"""HTML pages: the live inbox, the review screen, new requests, grants and break-glass."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from approvals import selectors, services
from approvals.forms import (
    AccessRequestForm,
    ApproveForm,
    BreakGlassForm,
    DenyForm,
    ExtendForm,
    ReviewPolicyForm,
    RevokeForm,
)
from approvals.impact import statement_explain
from approvals.models import AccessRequest, Grant
from approvals.scope import (
    StatementError,
    scope_normalise,
    scope_risk,
    scope_validate,
    statement_touches,
)
from config.errors import WardenError, error_message
from governance.mfa import mfa_check_request
from governance.models import DataSource, Role
from governance.permissions import AuthenticatedRequest, role_required

RECENT_DECIDED = 20


def _run(request: AuthenticatedRequest, action: Callable[[], Any], success: str) -> bool:
    """Call a service; show its refusal as a message instead of an error page."""
    try:
        action()
    except WardenError as exc:
        messages.error(request, error_message(exc))
        return False
    messages.success(request, success)
    return True


@login_required
def inbox(request: AuthenticatedRequest) -> HttpResponse:
    user = request.user
    reviewable = selectors.reviewable_datasource_ids(user)
    to_review = list(selectors.requests_to_review(user=user)) if reviewable else []
    decided = (
        list(
            selectors.requests_to_review(user=user, state=None).exclude(
                state=AccessRequest.State.PENDING
            )[:RECENT_DECIDED]
        )
        if reviewable
        else []
    )
    context = {
        "is_reviewer": bool(reviewable),
        "to_review": to_review,
        "decided": decided,
        "mine": list(selectors.requests_of(user=user)[:50]),
        "grants": list(selectors.live_grants().filter(grantee=user).select_related("datasource")),
        "expiring": selectors.grants_expiring_soon(user=user),
        "extend_form": ExtendForm(),
        "break_glass_sources": DataSource.objects.filter(review_policy__break_glass_enabled=True),
        "policy_sources": DataSource.objects.all() if user.has_role(Role.ADMIN) else [],
    }
    return render(request, "approvals/inbox.html", context)


@role_required(Role.REQUESTER)
def scope_options(request: AuthenticatedRequest) -> HttpResponse:
    """The request form's picker: tables, columns and tags of a datasource matching `q`."""
    datasource_id = request.GET.get("datasource", "")
    options = (
        selectors.scope_options(datasource_id=int(datasource_id), query=request.GET.get("q", ""))
        if datasource_id.isdigit()
        else None
    )
    return render(request, "approvals/_scope_options.html", {"options": options})


@role_required(Role.REQUESTER)
@require_POST
def scope_check(request: AuthenticatedRequest) -> HttpResponse:
    """Live validation of the request form: which names are unknown, what the scope reaches."""
    form = AccessRequestForm(request.POST)
    form.is_valid()
    datasource = form.cleaned_data.get("datasource")
    context: dict[str, Any] = {"datasource": datasource, "problem": "", "risk": None}
    if datasource is None:
        context["problem"] = "Choose a datasource first."
    else:
        scope = scope_normalise(form.scope())
        try:
            scope_validate(datasource=datasource, scope=scope)
        except WardenError as exc:
            context["problem"] = error_message(exc)
        else:
            context["risk"] = scope_risk(datasource=datasource, scope=scope)
    return render(request, "approvals/_scope_check.html", context)


@role_required(Role.REQUESTER)
def request_new(request: AuthenticatedRequest) -> HttpResponse:
    form = AccessRequestForm(request.POST or None, initial=request.GET or None)
    if request.method == "POST" and form.is_valid():
        values = form.cleaned_data
        created: dict[str, AccessRequest] = {}

        def create() -> None:
            created["request"] = services.request_create(
                actor=request.user,
                datasource=values["datasource"],
                scope=form.scope(),
                level=values["level"],
                reason=values["reason"],
                duration_minutes=values["duration_minutes"],
                statement=values["statement"],
            )

        if _run(request, create, "Request filed; reviewers see it now."):
            return redirect("approvals:detail", pk=created["request"].pk)
    return render(request, "approvals/request_new.html", {"form": form})


def _visible(request: AuthenticatedRequest, pk: int) -> AccessRequest:
    access_request = selectors.request_detail(pk=pk)
    if access_request is None or not selectors.can_view_request(
        user=request.user, access_request=access_request
    ):
        raise Http404("No such access request.")
    return access_request


def _impact(access_request: AccessRequest) -> dict[str, Any] | None:
    if not access_request.statement:
        return None
    try:
        touched = statement_touches(
            datasource=access_request.datasource, sql=access_request.statement
        )
    except StatementError as exc:
        touched = {"error": str(exc), "columns": [], "tags": [], "tables": []}
    explain = (
        statement_explain(datasource=access_request.datasource, sql=access_request.statement)
        if access_request.is_pending
        else None
    )
    return {"touched": touched, "explain": explain}


def _panel_context(request: AuthenticatedRequest, access_request: AccessRequest) -> dict[str, Any]:
    user = request.user
    can_review = (
        access_request.is_pending
        and selectors.can_review(user=user, access_request=access_request)
        and not access_request.reviews.filter(reviewer=user).exists()
    )
    grant: Grant | None
    try:
        grant = access_request.grant
    except Grant.DoesNotExist:
        grant = access_request.extends_grant
    return {
        "access_request": access_request,
        "reviews": list(access_request.reviews.all()),
        "quorum": selectors.review_policy_for(access_request.datasource).required_approvals,
        "can_review": can_review,
        "approve_form": ApproveForm(initial=ApproveForm.initial_from(access_request.scope)),
        "deny_form": DenyForm(prefix="deny"),
        "can_cancel": access_request.is_pending
        and user.pk in (access_request.requester_id, access_request.created_by_id),
        "grant": grant,
        "can_revoke": bool(grant and grant.revoked_at is None and user.has_role(Role.ADMIN)),
        "can_extend": bool(grant and grant.is_live() and user.pk == grant.grantee_id),
        "extend_form": ExtendForm(),
        "revoke_form": RevokeForm(),
    }


@login_required
def detail(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    access_request = _visible(request, pk)
    context = _panel_context(request, access_request)
    if getattr(request, "htmx", False):
        return render(request, "approvals/_detail_panel.html", context)
    context["impact"] = _impact(access_request)
    return render(request, "approvals/detail.html", context)


@login_required
@require_POST
def approve(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    access_request = _visible(request, pk)
    mfa_check_request(request)
    form = ApproveForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Check the approval form.")
        return redirect("approvals:detail", pk=pk)
    values = form.cleaned_data
    scope = form.scope()
    # An untouched scope box is no narrowing; anything else is checked by the service.
    narrowed = None if scope_normalise(scope) == scope_normalise(access_request.scope) else scope
    _run(
        request,
        lambda: services.request_approve(
            actor=request.user,
            access_request=access_request,
            comment=values["comment"],
            narrowed_scope=narrowed,
            narrowed_duration_minutes=values["duration_minutes"],
            statement_only=values["statement_only"],
            max_runs=values["max_runs"],
        ),
        "Approval recorded.",
    )
    return redirect("approvals:detail", pk=pk)


@login_required
@require_POST
def deny(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    access_request = _visible(request, pk)
    mfa_check_request(request)
    form = DenyForm(request.POST, prefix="deny")
    comment = form.cleaned_data["comment"] if form.is_valid() else ""
    _run(
        request,
        lambda: services.request_deny(
            actor=request.user, access_request=access_request, comment=comment
        ),
        "Request rejected.",
    )
    return redirect("approvals:detail", pk=pk)


@login_required
@require_POST
def cancel(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    access_request = _visible(request, pk)
    _run(
        request,
        lambda: services.request_cancel(actor=request.user, access_request=access_request),
        "Request cancelled.",
    )
    return redirect("approvals:detail", pk=pk)


@login_required
@require_POST
def grant_revoke(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    grant = get_object_or_404(Grant, pk=pk)
    form = RevokeForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    _run(
        request,
        lambda: services.grant_revoke(actor=request.user, grant=grant, reason=reason),
        "Grant revoked.",
    )
    return redirect("approvals:detail", pk=grant.request_id)


@login_required
@require_POST
def grant_extend(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    grant = get_object_or_404(Grant.objects.select_related("request", "datasource"), pk=pk)
    form = ExtendForm(request.POST)
    if not form.is_valid():
        messages.error(request, "An extension needs a duration and a reason.")
        return redirect("approvals:inbox")
    created: dict[str, AccessRequest] = {}

    def extend() -> None:
        created["request"] = services.grant_extend_request(
            actor=request.user, grant=grant, **form.cleaned_data
        )

    if _run(request, extend, "Extension requested."):
        return redirect("approvals:detail", pk=created["request"].pk)
    return redirect("approvals:inbox")


@login_required
def break_glass(request: AuthenticatedRequest) -> HttpResponse:
    form = BreakGlassForm(request.POST or None)
    form.fields["datasource"].queryset = DataSource.objects.filter(  # type: ignore[attr-defined]
        review_policy__break_glass_enabled=True
    )
    if request.method == "POST":
        mfa_check_request(request)
    if request.method == "POST" and form.is_valid():
        values = form.cleaned_data
        granted: dict[str, Grant] = {}

        def use() -> None:
            granted["grant"] = services.break_glass_use(
                actor=request.user,
                datasource=values["datasource"],
                scope=form.scope(),
                level=values["level"],
                reason=values["reason"],
                duration_minutes=values["duration_minutes"],
            )

        if _run(request, use, "Break-glass access granted; reviewers and auditors were told."):
            return redirect("approvals:detail", pk=granted["grant"].request_id)
    return render(request, "approvals/break_glass.html", {"form": form})


@role_required(Role.ADMIN)
def review_policy(request: AuthenticatedRequest, datasource_id: int) -> HttpResponse:
    datasource = get_object_or_404(DataSource, pk=datasource_id)
    policy = selectors.review_policy_for(datasource)
    initial = {
        name: getattr(policy, name)
        for name in ReviewPolicyForm.base_fields
        if name not in ("reviewer_groups", "notify_emails")
    }
    initial["notify_emails"] = ", ".join(policy.notify_emails or [])
    initial["reviewer_groups"] = list(policy.reviewer_groups.all()) if policy.pk else []
    form = ReviewPolicyForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        values = dict(form.cleaned_data)
        groups = list(values.pop("reviewer_groups"))
        if _run(
            request,
            lambda: services.review_policy_set(
                actor=request.user, datasource=datasource, reviewer_groups=groups, **values
            ),
            f"Review policy of {datasource.name} saved.",
        ):
            return redirect("approvals:review_policy", datasource_id=datasource.pk)
    return render(request, "approvals/review_policy.html", {"form": form, "datasource": datasource})
