"""One vocabulary: a rule blocks a statement, a reviewer rejects a request.

What people read says "Reject"/"Rejected" (buttons, states, emails, the PDF evidence);
what programs read keeps its values ("denied", "deny", access_request.denied, /deny/).
"""

from __future__ import annotations

import io
import re
from datetime import date

import pytest
from django.core import mail
from pypdf import PdfReader

from approvals import services
from audit.selectors import EventFilters
from audit.services import audit_export

pytestmark = pytest.mark.django_db
STATE = re.compile(r'data-request-state="\d+">([^<]*)<')


def test_a_rejected_request_reads_rejected_to_people_and_denied_to_programs(
    client, api, file_request, reviewer, requester, shop, django_capture_on_commit_callbacks
):
    access_request = file_request()
    client.force_login(reviewer)
    review_page = client.get(f"/approvals/{access_request.pk}/").content.decode()
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        services.request_deny(actor=reviewer, access_request=access_request, comment="too wide")
    client.force_login(requester)
    seen = {
        page: STATE.findall(client.get(page).content.decode())
        for page in ("/approvals/", f"/approvals/{access_request.pk}/")
    }
    body = api(requester).get(f"/api/v1/access-requests/{access_request.pk}/").json()
    detail = client.get(f"/approvals/{access_request.pk}/").content.decode()

    assert ">Reject</button>" in review_page and ">Deny<" not in review_page
    assert seen == {"/approvals/": ["Rejected"], f"/approvals/{access_request.pk}/": ["Rejected"]}
    assert "rex_reviewer</strong> rejected" in detail
    assert (body["state"], body["state_label"]) == ("denied", "Rejected")
    assert [(r["decision"], r["decision_label"]) for r in body["reviews"]] == [("deny", "Reject")]
    [email] = [message for message in mail.outbox if requester.email in message.to]
    assert email.subject.endswith(f"#{access_request.pk} rejected")
    assert f"#{access_request.pk} rejected:" in email.body and "denied" not in email.body


def test_the_pdf_evidence_words_a_rejected_request_and_the_csv_keeps_its_value(
    file_request, reviewer, auditor
):
    access_request = file_request()
    services.request_deny(actor=reviewer, access_request=access_request, comment="too wide")
    today = date.today()

    def export(export_format: str) -> bytes:
        stream = io.BytesIO()
        filters = EventFilters(date_from=today, date_to=today)
        audit_export(actor=auditor, export_format=export_format, filters=filters, stream=stream)
        return stream.getvalue()

    pages = PdfReader(io.BytesIO(export("pdf"))).pages
    pdf_text = " ".join(" ".join(page.extract_text() for page in pages).split())
    csv_rows = [line for line in export("csv").decode().splitlines() if "too wide" in line]

    assert "rejected" in pdf_text and "denied" not in pdf_text
    assert len(csv_rows) == 1 and ",denied," in csv_rows[0]
