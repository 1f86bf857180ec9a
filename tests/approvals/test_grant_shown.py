"""After a reviewer narrows a request, every place that shows it tells what was granted."""

from __future__ import annotations

import csv
import io
import json

import pypdf
import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import strip_tags

from approvals import services
from audit.selectors import EventFilters
from audit.services import audit_export

pytestmark = pytest.mark.django_db
ASKED = {"tables": ["public.customers"]}
GIVEN = {"columns": ["public.customers.email"]}


@pytest.fixture
def narrowed(shop, requester, reviewer):
    """Asked: the customers table for 480 min. Granted: its email column for 60 min."""
    access_request = services.request_create(
        actor=requester,
        datasource=shop,
        scope=ASKED,
        level="read_unmasked",
        reason="Churn analysis for the quarterly review",
        duration_minutes=480,
    )
    services.request_approve(
        actor=reviewer,
        access_request=access_request,
        narrowed_scope=GIVEN,
        narrowed_duration_minutes=60,
        comment="email only, one hour",
    )
    access_request.refresh_from_db()
    return access_request


def _text(html: bytes) -> str:
    return " ".join(strip_tags(html.decode()).split())


def test_the_request_page_shows_the_grant_beside_the_request(client, requester, narrowed):
    client.force_login(requester)

    page = _text(client.get(reverse("approvals:detail", args=[narrowed.pk])).content)

    assert "for 480 minutes" in page  # what was asked, still there
    assert "for 60 min" in page and "(asked 480 min)" in page
    assert "on columns: public.customers.email" in page
    assert "Narrowed from the request's tables: public.customers" in page
    assert "Read unmasked" in page and "read_unmasked" not in page


def test_my_requests_and_the_reviewers_inbox_show_the_grant(client, requester, reviewer, narrowed):
    client.force_login(requester)
    mine = _text(client.get(reverse("approvals:inbox")).content)
    client.force_login(reviewer)
    inbox = _text(client.get(reverse("approvals:inbox")).content)

    for page in (mine, inbox):
        assert "Granted:" in page and "for 60 min" in page and "(asked 480 min)" in page
        assert "columns: public.customers.email" in page


def test_the_api_gives_the_granted_terms(client, requester, narrowed):
    client.force_login(requester)

    body = client.get(f"/api/v1/access-requests/{narrowed.pk}/").json()

    assert body["duration_minutes"] == 480 and body["scope"]["tables"] == ASKED["tables"]
    assert body["grant"]["granted_minutes"] == 60
    assert body["grant"]["scope"]["columns"] == GIVEN["columns"]
    assert body["grant"]["scope"]["tables"] == []


def _export(auditor, export_format: str) -> bytes:
    stream = io.BytesIO()
    today = timezone.now().date()
    audit_export(
        actor=auditor,
        export_format=export_format,
        filters=EventFilters(date_from=today, date_to=today),
        stream=stream,
    )
    return stream.getvalue()


def test_the_evidence_report_gives_the_grant_in_json_csv_and_pdf(auditor, narrowed):
    report = json.loads(_export(auditor, "json"))
    item = next(i for i in report["access_requests"] if i["request_id"] == str(narrowed.pk))
    csv_text = _export(auditor, "csv").decode()
    pdf = pypdf.PdfReader(io.BytesIO(_export(auditor, "pdf")))
    pdf_text = " ".join(" ".join(page.extract_text().split()) for page in pdf.pages)

    assert (item["duration_minutes"], item["granted_minutes"]) == (480, 60)
    assert item["granted_scope"]["columns"] == GIVEN["columns"]
    assert item["scope"]["tables"] == ASKED["tables"]
    assert item["granted_expires_at"] == narrowed.grant.expires_at.isoformat()
    block = csv_text.split("# Access requests")[1].split("# Break-glass")[0]
    rows = list(csv.DictReader(io.StringIO(block.strip())))
    assert (rows[0]["duration_minutes"], rows[0]["granted_minutes"]) == ("480", "60")
    assert rows[0]["granted_scope"] == "columns: public.customers.email"
    assert rows[0]["scope"] == "tables: public.customers"  # words, not raw JSON
    requests = pdf_text.split("Access requests")[1].split("Break-glass")[0]
    assert "Granted scope" in requests and "Granted min" in requests
    assert "columns:public.customers.email60" in requests.replace(" ", "")
    assert f"page {len(pdf.pages)}" in pdf_text
