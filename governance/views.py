"""HTML views for datasources, the catalog, the dashboard and personal access tokens."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Literal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from classification.models import ScanRun
from config.errors import WardenError, error_message, form_add_error
from governance import charts, selectors, services
from governance.forms import DataSourceForm, TagChoiceForm, TokenForm
from governance.mfa import session_passed_mfa
from governance.models import AccessToken, Column, ColumnTag, DataSource, Role, Sensitivity, Tag
from governance.permissions import (
    CATALOG_BROWSERS,
    CATALOG_READERS,
    AuthenticatedRequest,
    role_required,
)
from governance.scopes import scopes_grantable
from governance.tokens import DEFAULT_EXPIRY, token_create, token_revoke, token_rotate

CATALOG_PAGE_SIZE = 50


@login_required
def dashboard(request: AuthenticatedRequest) -> HttpResponse:
    summary = selectors.catalog_summary()
    scans = list(ScanRun.objects.select_related("datasource")[:20])
    specs = {
        "per_datasource": charts.per_datasource_chart(summary.per_datasource),
        "per_tag": charts.per_tag_chart(summary.per_tag),
        "scan_history": charts.scan_history_chart(scans, name_datasource=True),
    }
    return render(
        request,
        "governance/dashboard.html",
        {
            "per_datasource": summary.per_datasource,
            "per_tag": summary.per_tag,
            "scans": scans[:8],
            "review_counts": summary.review_counts,
            "charts": {name: json.dumps(spec) for name, spec in specs.items()},
            "can_read_catalog": any(request.user.has_role(role) for role in CATALOG_READERS),
            "tour": selectors.first_run_tour() if request.user.has_role(Role.ADMIN) else None,
        },
    )


@role_required(*CATALOG_READERS)
def datasource_list(request: AuthenticatedRequest) -> HttpResponse:
    stats = {row["id"]: row for row in selectors.catalog_summary().per_datasource}
    datasources = list(DataSource.objects.all())
    for datasource in datasources:
        datasource.stats = stats.get(datasource.pk, {})  # type: ignore[attr-defined]
    return render(request, "governance/datasource_list.html", {"datasources": datasources})


@role_required(Role.ADMIN)
def datasource_create(request: AuthenticatedRequest) -> HttpResponse:
    form = DataSourceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        values = dict(form.cleaned_data)
        password = values.pop("password") or ""
        try:
            datasource = services.datasource_create(actor=request.user, password=password, **values)
        except WardenError as exc:
            form_add_error(form, exc)
        else:
            messages.success(request, f"Datasource {datasource.name} created.")
            return redirect("datasource_detail", pk=datasource.pk)
    return render(request, "governance/datasource_form.html", {"form": form, "datasource": None})


@role_required(Role.ADMIN)
def datasource_edit(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    datasource = get_object_or_404(DataSource, pk=pk)
    initial = services.datasource_public_fields(datasource)
    form = DataSourceForm(request.POST or None, initial=initial, datasource=datasource)
    if request.method == "POST" and form.is_valid():
        values = dict(form.cleaned_data)
        password = values.pop("password") or None
        if values.pop("clear_password", False):
            password = ""
        try:
            services.datasource_update(
                actor=request.user, datasource=datasource, password=password, **values
            )
        except WardenError as exc:
            form_add_error(form, exc)
        else:
            messages.success(request, "Datasource saved.")
            return redirect("datasource_detail", pk=datasource.pk)
    return render(
        request, "governance/datasource_form.html", {"form": form, "datasource": datasource}
    )


@role_required(Role.ADMIN)
@require_POST
def datasource_delete(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    datasource = get_object_or_404(DataSource, pk=pk)
    services.datasource_delete(actor=request.user, datasource=datasource)
    messages.success(request, f"Datasource {datasource.name} deleted.")
    return redirect("datasource_list")


@role_required(*CATALOG_READERS)
def datasource_detail(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    datasource = get_object_or_404(DataSource, pk=pk)
    tables = datasource.tables.order_by("dropped_at", "schema_name", "name")
    history = list(datasource.scan_runs.all()[:30])
    return render(
        request,
        "governance/datasource_detail.html",
        {
            "datasource": datasource,
            "tables": tables,
            "scans": history[:10],
            "scans_unfinished": any(not scan.is_finished for scan in history[:10]),
            "scan_chart": json.dumps(charts.scan_history_chart(history, name_datasource=False)),
            **_connect_context(request, datasource),
        },
    )


def _connect_context(
    request: AuthenticatedRequest, datasource: DataSource, token: str = ""
) -> dict:
    from django.conf import settings

    from governance.agent_selectors import agents_for_datasource

    base_url = settings.WARDEN_BASE_URL or request.build_absolute_uri("/").rstrip("/")
    return {
        "datasource": datasource,
        "connection": selectors.agent_connection(
            datasource=datasource, username=request.user.get_username(), token=token
        ),
        "agents": agents_for_datasource(datasource, with_bundle=True),
        "new_token": token,
        "token_or_placeholder": token or selectors.TOKEN_PLACEHOLDER,
        "mcp_url": f"{base_url}/mcp/",
    }


@role_required(*CATALOG_READERS)
@require_POST
def datasource_connect_token(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    """Create a personal access token from the Connect panel and show it filled in, once."""
    datasource = get_object_or_404(DataSource, pk=pk)
    _token, secret = token_create(
        actor=request.user,
        user=request.user,
        name=f"connect to {datasource.name}"[:100],
        actor_passed_mfa=session_passed_mfa(request),
    )
    return render(
        request,
        "governance/_connect_panel.html",
        _connect_context(request, datasource, token=secret),
    )


@role_required(Role.ADMIN)
@require_POST
def datasource_test(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    datasource = get_object_or_404(DataSource, pk=pk)
    ok, message = services.datasource_test_connection(actor=request.user, datasource=datasource)
    return render(request, "governance/_connection_result.html", {"ok": ok, "message": message})


def _int_or_none(raw: str | None) -> int | None:
    try:
        return int(raw) if raw not in (None, "") else None
    except ValueError:
        return None


@role_required(*CATALOG_BROWSERS)
def catalog(request: AuthenticatedRequest) -> HttpResponse:
    params = request.GET
    columns = selectors.catalog_columns(
        query=params.get("q", "").strip(),
        datasource_id=_int_or_none(params.get("datasource")),
        tag_name=params.get("tag", ""),
        min_sensitivity=_int_or_none(params.get("sensitivity")),
        review_state=params.get("state", ""),
        include_dropped=params.get("dropped") == "1",
    )
    page = selectors.catalog_page(
        columns,
        size=CATALOG_PAGE_SIZE,
        after=_int_or_none(params.get("after")),
        before=_int_or_none(params.get("before")),
        last=params.get("last") == "1",
        number=_int_or_none(params.get("page")),
    )
    query_without_page = params.copy()
    for key in ("page", "after", "before", "last"):
        query_without_page.pop(key, None)
    return render(
        request,
        "governance/catalog.html",
        {
            "page": page,
            "datasources": DataSource.objects.only("id", "name"),
            "tags": Tag.objects.all(),
            "sensitivities": Sensitivity.choices,
            "states": selectors.REVIEW_STATES,
            "params": params,
            "querystring": query_without_page.urlencode(),
            # Requesters browse names and tags only: no links to evidence, no review filters.
            "catalog_read_only": not any(request.user.has_role(r) for r in CATALOG_READERS),
            "can_request": request.user.has_role(Role.REQUESTER),
        },
    )


@role_required(Role.ADMIN)
@require_POST
def catalog_bulk_review(request: AuthenticatedRequest) -> HttpResponse:
    state = request.POST.get("state")
    ids = [int(raw) for raw in request.POST.getlist("column_tag") if raw.isdigit()]
    if state not in (ColumnTag.State.CONFIRMED, ColumnTag.State.REJECTED) or not ids:
        messages.error(request, "Pick at least one suggestion and confirm or reject.")
    else:
        count = services.column_tags_bulk_review(
            actor=request.user, column_tag_ids=ids, state=state
        )
        messages.success(request, f"{count} tag(s) {state}.")
    return redirect(request.POST.get("next") or "catalog")


@role_required(*CATALOG_READERS)
def column_detail(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    column = get_object_or_404(
        Column.objects.select_related("table__datasource", "curated_by"), pk=pk
    )
    return render(
        request,
        "governance/column_detail.html",
        {
            "column": column,
            "column_tags": column.column_tags.select_related("tag", "reviewed_by"),
            "changes": column.changes.all()[:20],
            "tag_form": TagChoiceForm(),
        },
    )


@role_required(Role.ADMIN)
@require_POST
def column_tag_action(request: AuthenticatedRequest, pk: int, action: str) -> HttpResponse:
    if action not in ("confirm", "reject", "remove"):
        raise Http404("Unknown tag action.")
    column = get_object_or_404(Column.objects.select_related("table__datasource"), pk=pk)
    form = TagChoiceForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Unknown tag.")
        return redirect("column_detail", pk=pk)
    tag, comment = form.cleaned_data["tag"], form.cleaned_data["comment"]
    try:
        if action == "remove":
            services.column_tag_remove(actor=request.user, column=column, tag=tag, comment=comment)
        else:
            state = ColumnTag.State.REJECTED if action == "reject" else ColumnTag.State.CONFIRMED
            services.column_tag_set_state(
                actor=request.user, column=column, tag=tag, state=state, comment=comment
            )
    except WardenError as exc:
        messages.error(request, error_message(exc))
    else:
        messages.success(request, f"{tag.name}: {action} done. This column is now curated.")
    return redirect("column_detail", pk=pk)


def _token_expiry(days: int | None) -> datetime | Literal["default"] | None:
    if days is None:
        return DEFAULT_EXPIRY
    return timezone.now() + timedelta(days=days) if days else None


@login_required
def token_list(request: AuthenticatedRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    new_secret = None
    if request.method == "POST" and form.is_valid():
        try:
            _token, new_secret = token_create(
                actor=request.user,
                user=request.user,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                expires_at=_token_expiry(form.cleaned_data.get("expires_in_days")),
                actor_passed_mfa=session_passed_mfa(request),
            )
        except WardenError as exc:
            form_add_error(form, exc)
        else:
            form = TokenForm()
    return _token_page(request, form, new_secret)


def _token_page(
    request: AuthenticatedRequest, form: TokenForm, new_secret: str | None
) -> HttpResponse:
    tokens = AccessToken.objects.filter(user=request.user).prefetch_related("datasources")
    context = {
        "form": form,
        "tokens": tokens,
        "new_secret": new_secret,
        "grantable": scopes_grantable(request.user),
    }
    return render(request, "governance/token_list.html", context)


@login_required
@require_POST
def token_rotate_view(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(AccessToken, pk=pk, user=request.user)
    try:
        _successor, new_secret = token_rotate(actor=request.user, token=token)
    except WardenError as exc:
        messages.error(request, error_message(exc))
        return redirect("token_list")
    messages.success(request, f"Token {token.name} rotated; the old secret no longer works.")
    return _token_page(request, TokenForm(), new_secret)


@login_required
@require_POST
def token_revoke_view(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(AccessToken, pk=pk, user=request.user)
    token_revoke(actor=request.user, token=token)
    messages.success(request, f"Token {token.name} revoked.")
    return redirect("token_list")
