"""HTML views of scan runs, with live progress."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from classification.models import ScanRun
from classification.selectors import scan_live
from classification.services import scan_start
from governance.models import DataSource, Role
from governance.permissions import CATALOG_READERS, AuthenticatedRequest, role_required


@role_required(*CATALOG_READERS)
def scan_list(request: AuthenticatedRequest) -> HttpResponse:
    scans = ScanRun.objects.select_related("datasource", "requested_by")
    page = Paginator(scans, 30).get_page(request.GET.get("page"))
    has_unfinished = any(not scan.is_finished for scan in page)
    return render(
        request, "classification/scan_list.html", {"page": page, "has_unfinished": has_unfinished}
    )


@role_required(*CATALOG_READERS)
def scan_detail(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    get_object_or_404(ScanRun, pk=pk)
    return render(request, "classification/scan_detail.html", scan_live(pk))


@role_required(*CATALOG_READERS)
def scan_progress(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    """The live fragment (progress, outcome, tables), for htmx polling without websockets."""
    get_object_or_404(ScanRun, pk=pk)
    return render(request, "classification/_scan_progress.html", scan_live(pk))


@role_required(Role.ADMIN)
@require_POST
def scan_start_view(request: AuthenticatedRequest, datasource_pk: int) -> HttpResponse:
    datasource = get_object_or_404(DataSource, pk=datasource_pk)
    scan = scan_start(actor=request.user, datasource=datasource)
    # No "queued" flash message: the page shows the scan's state live, and a message would
    # still say "queued" after the scan has finished.
    return redirect("classification:scan_detail", pk=scan.pk)
