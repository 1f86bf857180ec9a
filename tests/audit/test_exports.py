"""Exports: the signed JSONL chain (checked offline), and the evidence report as CSV, JSON, PDF."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from django.core.management import call_command
from pypdf import PdfReader

from audit.hashing import GENESIS_HASH, event_hash, manifest_payload
from audit.ingest import agent_events_ingest
from audit.models import AuditCheckpoint, AuditEvent
from audit.report_sections import TABLE_SECTIONS
from audit.selectors import EventFilters
from audit.services import audit_export, event_record
from audit.verify import _signature_valid
from governance import crypto
from governance.models import AccessToken, ColumnTag, Tag
from tests.audit.conftest import agent_event, tamper
from tests.factories import ColumnFactory, ColumnTagFactory, TableFactory

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
TODAY = date.today()


@pytest.fixture
def evidence(admin, reviewer, requester, agent_owner, agent_token, shop_source):
    """A month of activity: agent queries, an access request, break-glass, changes."""
    shop = shop_source
    customers = TableFactory(datasource=shop, schema_name="public", name="customers")
    email = ColumnFactory(table=customers, name="email")
    ColumnTagFactory(column=email, state=ColumnTag.State.CONFIRMED)
    phone = ColumnFactory(table=customers, name="phone")
    ColumnTagFactory(column=phone, tag=Tag.objects.get(name="PII.Phone"))
    ColumnFactory(table=customers, name="id")
    token = AccessToken.objects.get(user=agent_owner)
    today = f"{TODAY.isoformat()}T09:00:00Z"
    agent_events_ingest(
        token=token,
        events=[
            agent_event(time=today, decision="mask"),
            agent_event(time=today, decision="allow", masked_columns=[]),
            agent_event(
                time=today,
                decision="deny",
                identity="copilot_bot",
                masked_columns=[],
                statement="DELETE FROM public.customers",
                rule="guardrail:2:no-delete",
            ),
        ],
    )
    details = {
        "request_id": "17",
        "requester": "req_requester",
        "scope": {"tags": ["PII.Email"]},
        "level": "read",
        "reason": "Quarterly churn analysis",
        "duration_minutes": 120,
    }
    event_record(actor=requester, action="access_request.created", datasource=shop, details=details)
    event_record(
        actor=reviewer,
        action="access_request.approved",
        datasource=shop,
        details={**details, "reviewer": "rex_reviewer", "comment": "ok for Q3"},
    )
    event_record(actor=None, action="grant.created", datasource=shop, details=details)
    event_record(
        actor=admin,
        action="break_glass.used",
        datasource=shop,
        details={"reason": "Production incident 42"},
    )
    event_record(
        actor=admin,
        action="policy.updated",
        details={"before": {"action": "allow"}, "after": {"action": "mask"}},
    )
    event_record(
        actor=admin,
        action="tag.confirmed",
        target=email,
        datasource=shop,
        details={"tag": "PII.Email", "before": ["suggested"], "after": ["confirmed"]},
    )
    return shop


def _export(actor, export_format, **filters):
    stream = io.BytesIO()
    result = audit_export(
        actor=actor, export_format=export_format, filters=EventFilters(**filters), stream=stream
    )
    return result, stream.getvalue()


def test_the_jsonl_export_carries_a_signed_manifest_and_every_hashed_field(evidence, auditor):
    result, body = _export(auditor, "jsonl", date_from=TODAY, date_to=TODAY)

    lines = [json.loads(line) for line in body.decode().splitlines()]
    manifest, events = lines[0], lines[1:]
    stored = list(
        AuditEvent.objects.order_by("sequence").filter(sequence__lte=result.checkpoint.sequence)
    )
    assert manifest["type"] == "warden.audit.export"
    assert manifest["period"] == {"from": TODAY.isoformat(), "to": TODAY.isoformat()}
    assert manifest["filters"] == {}
    assert manifest["contiguous"] is True
    assert manifest["event_count"] == len(stored) == len(events)
    assert manifest["first_sequence"] == 1 and manifest["first_prev_hash"] == GENESIS_HASH
    assert manifest["last_sequence"] == stored[-1].sequence
    assert manifest["last_hash"] == stored[-1].hash
    assert manifest["public_key"] == crypto.public_key_b64()
    assert _signature_valid(
        manifest["public_key"], manifest["signature"], manifest_payload(manifest)
    )
    assert manifest["checkpoint"]["sequence"] == result.checkpoint.sequence
    for line, event in zip(events, stored, strict=True):
        assert line["id"] == str(event.id)
        assert line["sequence"] == event.sequence
        assert line["actor"] == event.actor
        assert line["action"] == event.action
        assert line["details"] == event.details
        assert line["prev_hash"] == event.prev_hash
        assert line["hash"] == event.hash == event_hash(line)
    exported = AuditEvent.objects.get(action="audit.exported")
    assert exported.actor == "aud_auditor"
    assert exported.details["format"] == "jsonl"
    assert exported.details["event_count"] == len(events)
    assert exported.details["checkpoint_id"] == result.checkpoint.pk
    assert result.checkpoint.kind == AuditCheckpoint.Kind.EXPORT


def test_a_filtered_jsonl_export_is_marked_not_contiguous(evidence, auditor):
    _result, body = _export(auditor, "jsonl", decision="deny")

    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert lines[0]["contiguous"] is False
    assert lines[0]["filters"] == {"decision": "deny"}
    assert [line["decision"] for line in lines[1:]] == ["deny"]


def _verify(path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "audit.verify", str(path), *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        check=False,
    )


def test_the_offline_verifier_accepts_a_real_export(evidence, tmp_path):
    path = tmp_path / "export.jsonl"
    call_command("audit_export", "--format", "jsonl", "--output", str(path))

    outcome = _verify(path, "--public-key", crypto.public_key_b64())

    assert outcome.returncode == 0, outcome.stdout + outcome.stderr
    assert outcome.stdout.startswith("OK: ")


def test_the_offline_verifier_does_not_import_django(tmp_path):
    code = "import sys, audit.verify; print('django' in sys.modules)"
    outcome = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert outcome.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        ("edit", "line 4: event #3"),
        ("delete", "line 4: event #4 follows #2"),
        ("swap", "line 3: event #3"),
        ("manifest", "line 1: manifest signature"),
        ("truncate", "manifest says"),
    ],
)
def test_the_offline_verifier_names_the_line_of_a_tampered_export(
    evidence, tmp_path, tamper, expected
):
    path = tmp_path / "export.jsonl"
    call_command("audit_export", "--format", "jsonl", "--output", str(path))
    lines = path.read_text().splitlines()
    if tamper == "edit":
        event = json.loads(lines[3])
        event["actor"] = "mallory"
        lines[3] = json.dumps(event)
    elif tamper == "delete":
        del lines[3]
    elif tamper == "swap":
        lines[2], lines[3] = lines[3], lines[2]
    elif tamper == "manifest":
        manifest = json.loads(lines[0])
        manifest["event_count"] += 1
        lines[0] = json.dumps(manifest)
    else:
        lines = lines[:-1]
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join(lines) + "\n")

    outcome = _verify(tampered)

    assert outcome.returncode == 1
    assert outcome.stdout.startswith("FAILED: ")
    assert expected in outcome.stdout


def test_the_offline_verifier_refuses_an_export_signed_by_another_key(evidence, tmp_path):
    path = tmp_path / "export.jsonl"
    call_command("audit_export", "--format", "jsonl", "--output", str(path))

    outcome = _verify(path, "--public-key", "A" * 43 + "=")

    assert outcome.returncode == 1
    assert "pinned" in outcome.stdout


def test_the_json_report_holds_every_section_and_a_valid_signature(evidence, auditor):
    _result, body = _export(auditor, "json", date_from=TODAY, date_to=TODAY)

    report = json.loads(body)
    assert _signature_valid(report["public_key"], report["signature"], manifest_payload(report))
    assert report["verification"]["ok"] is True
    assert report["checkpoint"]["key_id"] == crypto.signing_key_id()
    summary = {item["identity"]: item for item in report["access_summary"]}
    assert summary["req_requester"]["queries"] == 2
    assert summary["req_requester"]["by_decision"] == {"allow": 1, "mask": 1}
    assert summary["req_requester"]["tagged_columns"] == [
        {
            "datasource": "shop",
            "column": "public.customers.email",
            "tags": ["PII.Email"],
            "masked": 1,
            "unmasked": 1,
        }
    ]
    assert summary["copilot_bot"]["by_decision"] == {"deny": 1}
    request = report["access_requests"][0]
    assert request["request_id"] == "17"
    assert request["requester"] == "req_requester"
    assert request["reviewer"] == "rex_reviewer"
    assert request["status"] == "approved"
    assert request["reason"] == "Quarterly churn analysis"
    assert request["duration_minutes"] == 120
    assert request["comment"] == "ok for Q3"
    assert report["break_glass"]["items"][0]["reason"] == "Production incident 42"
    blocked = report["blocked_statements"]["items"]
    assert [(b["identity"], b["statement"], b["rule"]) for b in blocked] == [
        ("copilot_bot", "DELETE FROM public.customers", "guardrail:2:no-delete")
    ]
    changes = {item["action"]: item for item in report["changes"]["items"]}
    assert changes["policy.updated"]["before"] == {"action": "allow"}
    assert changes["policy.updated"]["after"] == {"action": "mask"}
    assert changes["tag.confirmed"]["after"] == ["confirmed"]
    assert report["coverage"] == [
        {
            "datasource": "shop",
            "columns": 3,
            "tagged_columns": 2,
            "coverage_percent": 66.7,
            "confirmed_tags": 1,
            "suggested_tags": 1,
        }
    ]
    assert report["charts"]["queries_per_day"] == {
        TODAY.isoformat(): {"mask": 1, "allow": 1, "deny": 1}
    }
    assert report["charts"]["sensitive_reads_per_identity"] == {"req_requester": 2}


def test_the_csv_report_has_one_block_per_section(evidence, auditor):
    _result, body = _export(auditor, "csv", date_from=TODAY, date_to=TODAY)

    rows = list(csv.reader(io.StringIO(body.decode())))
    titles = [row[0] for row in rows if row and row[0].startswith("# ")]
    assert titles == [
        "# Report",
        "# Access to tagged columns",
        "# Queries per identity",
        "# Rows returned per identity and tables",
        "# Access requests",
        "# Break-glass uses",
        "# Blocked statements",
        "# Policy and tag changes",
        "# Classification coverage",
        "# Chain verification",
        "# Signed checkpoint",
    ]
    assert ["req_requester", "shop", "public.customers.email", "PII.Email", "1", "1"] in rows
    request_row = next(row for row in rows if row[:1] == ["17"])
    assert request_row[1:7] == [
        "req_requester",
        "tags: PII.Email",  # words, not raw JSON
        "read",
        "Quarterly churn analysis",
        "120",
        "approved",
    ]
    assert "rex_reviewer" in request_row[7:]
    assert ["shop", "3", "2", "66.7", "1", "1"] in rows


def test_the_pdf_report_shows_the_sections_charts_and_verification(evidence, auditor):
    _result, body = _export(auditor, "pdf", date_from=TODAY, date_to=TODAY)

    pages = PdfReader(io.BytesIO(body)).pages
    text = " ".join(" ".join(page.extract_text() for page in pages).split())  # unwrap cells
    for expected in (
        "Warden evidence report",
        "Chain status: VERIFIED",
        "Queries per day by decision",
        "Sensitive reads per identity",
        "Access to tagged columns",
        "Queries per identity",
        "req_requester",
        "public.customers.email",
        "Quarterly churn analysis",
        "rex_reviewer",
        "Production incident 42",
        "DELETE FROM public.customers",
        "policy.updated",
        "Classification coverage",
        "66.7",
        "Signed checkpoint",
    ):
        assert expected in text, expected
    for section in TABLE_SECTIONS:  # the same sections as the CSV's blocks
        assert section.title in text, section.title


def test_the_export_command_writes_each_format(evidence, tmp_path):
    for export_format in ("csv", "json", "pdf", "jsonl"):
        path = tmp_path / f"report.{export_format}"
        call_command(
            "audit_export",
            "--from",
            TODAY.isoformat(),
            "--to",
            TODAY.isoformat(),
            "--format",
            export_format,
            "--output",
            str(path),
        )
        assert path.stat().st_size > 100
    assert AuditEvent.objects.filter(action="audit.exported").count() == 4


def test_a_report_on_a_broken_chain_says_so(evidence, auditor):
    tamper("UPDATE audit_auditevent SET actor = 'mallory' WHERE sequence = 2")

    _result, body = _export(auditor, "pdf")

    pages = PdfReader(io.BytesIO(body)).pages
    text = " ".join(" ".join(page.extract_text() for page in pages).split())
    assert "Chain status: BROKEN (edited)" in text
    assert "First broken link: event #2" in text


def test_the_report_says_who_took_how_many_rows_of_what(evidence, auditor, agent_owner):
    token = AccessToken.objects.get(user=agent_owner)
    today = f"{TODAY.isoformat()}T10:00:00Z"
    export = {"identity": "pipeline_bot", "time": today, "kind": "copy_to"}
    agent_events_ingest(
        token=token,
        events=[
            agent_event(**export, rows=250_000, bytes=9_000_000),
            agent_event(**export, rows=50_000, bytes=1_500_000, masked_columns=[]),
            # cancelled after 1,000 rows went out: what went out is counted
            agent_event(**export, rows=1_000, bytes=36_000, error=True),
            agent_event(**export, rows=None, bytes=None),  # an older agent: no bytes
            agent_event(
                identity="pipeline_bot",
                time=today,
                tables_read=["public.orders"],
                masked_columns=[],
                decision="allow",
                rows=7,
                bytes=210,
            ),
            agent_event(identity="pipeline_bot", time=today, decision="deny", rows=None, bytes=0),
        ],
    )

    _result, body = _export(auditor, "json", date_from=TODAY, date_to=TODAY)
    returned = [
        item for item in json.loads(body)["rows_returned"] if item["identity"] == "pipeline_bot"
    ]
    assert returned == [
        {
            "identity": "pipeline_bot",
            "datasource": "shop",
            "tables": "public.customers",
            "statements": 4,
            "masked_statements": 3,
            "rows": 301_000,
            "bytes": 10_536_000,
        },
        {
            "identity": "pipeline_bot",
            "datasource": "shop",
            "tables": "public.orders",
            "statements": 1,
            "masked_statements": 0,
            "rows": 7,
            "bytes": 210,
        },
    ]
    _result, csv_body = _export(auditor, "csv", date_from=TODAY, date_to=TODAY)
    rows = list(csv.reader(io.StringIO(csv_body.decode())))
    assert ["pipeline_bot", "shop", "public.customers", "4", "3", "301000", "10536000"] in rows
    _result, pdf_body = _export(auditor, "pdf", date_from=TODAY, date_to=TODAY)
    pages = PdfReader(io.BytesIO(pdf_body)).pages
    text = " ".join(" ".join(page.extract_text() for page in pages).split())
    assert "Rows returned per identity and tables" in text and "Bytes returned" in text
    assert "301000 10536000" in text
