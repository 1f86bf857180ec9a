"""Auditor pages: the trail (search, detail), chain status, dashboard and report downloads."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from audit import jobs, selectors, services
from audit.dashboard import counted_events, dashboard_data
from audit.forms import EventFilterForm, ExportForm
from audit.hashing import event_hash
from audit.models import AuditCheckpoint, AuditEvent, AuditJob
from governance.models import Role
from governance.permissions import role_required

audit_readers = role_required(Role.ADMIN, Role.AUDITOR)
PAGE_SIZE = 50


def _sequence(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


@audit_readers
def event_list(request: HttpRequest) -> HttpResponse:
    form = EventFilterForm(request.GET or None)
    filters = form.filters() if form.is_bound and form.is_valid() else selectors.EventFilters()
    # The counts are exact (kept in each append's transaction): nothing to search for none.
    total = counted_events(filters)
    page = selectors.event_page(
        filters,
        before=_sequence(request.GET.get("before")),
        after=_sequence(request.GET.get("after")),
        size=PAGE_SIZE,
        none_match=total == 0,
    )
    query = request.GET.copy()
    for key in ("page", "before", "after"):
        query.pop(key, None)
    return render(
        request,
        "audit/event_list.html",
        {
            "form": form,
            "page": page,
            "total": total,
            "query": query.urlencode(),
            "export_form": ExportForm(initial={**request.GET.dict(), "format": "pdf"}),
        },
    )


@audit_readers
def event_detail(request: HttpRequest, event_id: Any) -> HttpResponse:
    event = get_object_or_404(AuditEvent, pk=event_id)
    previous, following = selectors.event_neighbours(event)
    content = selectors.event_hashed_content(event)
    return render(
        request,
        "audit/event_detail.html",
        {
            "event": event,
            "details_json": json.dumps(event.details, indent=2, sort_keys=True, ensure_ascii=False),
            "hash_ok": event_hash(content) == event.hash,
            "link_ok": previous is None or previous.hash == event.prev_hash,
            "previous": previous,
            "following": following,
        },
    )


@audit_readers
@require_http_methods(["GET", "POST"])
def chain_status(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        job = jobs.audit_job_start(
            actor=request.user, kind=AuditJob.Kind.VERIFY, filters=selectors.EventFilters()
        )
        return redirect("audit:job", job_id=job.pk)
    last_check = AuditEvent.objects.filter(action="audit.verified").order_by("-sequence").first()
    return render(
        request,
        "audit/chain.html",
        {
            "stats": selectors.chain_stats(),
            "last_check": last_check,
            "checkpoints": selectors.checkpoint_list(),
        },
    )


@audit_readers
@require_POST
def checkpoint_create(request: HttpRequest) -> HttpResponse:
    checkpoint = services.checkpoint_create(kind=AuditCheckpoint.Kind.MANUAL, actor=request.user)
    messages.success(request, f"Signed checkpoint at #{checkpoint.sequence}.")
    return redirect("audit:chain")


@audit_readers
def dashboard(request: HttpRequest) -> HttpResponse:
    today = timezone.now().date()
    form = EventFilterForm(
        request.GET or None, initial={"date_from": today - timedelta(days=29), "date_to": today}
    )
    if form.is_bound and form.is_valid():
        filters = form.filters()
    else:
        filters = selectors.EventFilters(date_from=today - timedelta(days=29), date_to=today)
    data = dashboard_data(filters=filters)
    return render(
        request,
        "audit/dashboard.html",
        {
            "form": form,
            "filters": filters,
            "data": data,
            "queries_chart": json.dumps(data["queries_chart"]),
            "reads_chart": json.dumps(data["reads_chart"]),
            "export_form": ExportForm(
                initial={
                    "date_from": filters.date_from,
                    "date_to": filters.date_to,
                    "format": "pdf",
                }
            ),
        },
    )


@audit_readers
@require_POST
def export(request: HttpRequest) -> HttpResponse:
    form = ExportForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Export not possible: {form.errors.as_text()}")
        return redirect("audit:dashboard")
    job = jobs.audit_job_start(
        actor=request.user,
        kind=AuditJob.Kind.EXPORT,
        export_format=form.cleaned_data["format"],
        filters=form.filters(),
    )
    return redirect("audit:job", job_id=job.pk)


def _own_job(request: HttpRequest, job_id: Any) -> AuditJob:
    return get_object_or_404(AuditJob, pk=job_id, created_by=request.user)


@audit_readers
def job_detail(request: HttpRequest, job_id: Any) -> HttpResponse:
    """The job's progress; htmx re-fetches the status part every second until it ends."""
    job = _own_job(request, job_id)
    template = "audit/_job_status.html" if getattr(request, "htmx", False) else "audit/job.html"
    return render(request, template, {"job": job})


@audit_readers
def job_download(request: HttpRequest, job_id: Any) -> FileResponse:
    job = _own_job(request, job_id)
    path = jobs.job_path(job)
    if job.state != AuditJob.State.DONE or not job.filename or not path.exists():
        raise Http404("This export has no file (yet).")
    return FileResponse(
        path.open("rb"), as_attachment=True, filename=job.filename, content_type=job.content_type
    )
