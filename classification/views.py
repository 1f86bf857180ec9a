"""HTML views of scan runs, with live progress."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from classification.models import ScanRun
from classification.services import scan_start
from governance.models import DataSource, Role
from governance.permissions import CATALOG_READERS, AuthenticatedRequest, role_required


@role_required(*CATALOG_READERS)
def scan_list(request: AuthenticatedRequest) -> HttpResponse:
    scans = ScanRun.objects.select_related("datasource", "requested_by")
    page = Paginator(scans, 30).get_page(request.GET.get("page"))
    return render(request, "classification/scan_list.html", {"page": page})


@role_required(*CATALOG_READERS)
def scan_detail(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    scan = get_object_or_404(ScanRun.objects.select_related("datasource", "requested_by"), pk=pk)
    results = scan.table_results.select_related("table").order_by("state", "table__name")
    return render(request, "classification/scan_detail.html", {"scan": scan, "results": results})


@role_required(*CATALOG_READERS)
def scan_progress(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    """The progress fragment, for htmx polling when websockets are unavailable."""
    scan = get_object_or_404(ScanRun, pk=pk)
    return render(request, "classification/_scan_progress.html", {"scan": scan})


@role_required(Role.ADMIN)
@require_POST
def scan_start_view(request: AuthenticatedRequest, datasource_pk: int) -> HttpResponse:
    datasource = get_object_or_404(DataSource, pk=datasource_pk)
    scan = scan_start(actor=request.user, datasource=datasource)
    messages.success(request, f"Scan #{scan.pk} of {datasource.name} queued.")
    return redirect("classification:scan_detail", pk=scan.pk)
