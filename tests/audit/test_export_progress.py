"""An export reports its progress as it goes, in small steps, ending at 100 % once done."""

from __future__ import annotations

import io

import pytest

from audit import exports, jobs, verification
from audit.models import AuditJob
from audit.selectors import EventFilters
from audit.services import audit_export

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("export_format", ["jsonl", "json"])
def test_an_export_reports_many_steps_in_order(record_events, auditor, monkeypatch, export_format):
    record_events(40)
    monkeypatch.setattr(exports, "PROGRESS_EVERY", 4)  # as 10,000 events do at full size
    monkeypatch.setattr(verification, "PROGRESS_EVERY", 4)
    heard: list[int] = []

    audit_export(
        actor=auditor,
        export_format=export_format,
        filters=EventFilters(),
        stream=io.BytesIO(),
        progress=heard.append,
    )

    assert heard == sorted(heard) and heard[-1] == 97 and heard[0] == 5
    assert len(set(heard)) >= 8  # it was 5 % then 100 %: now the bar moves all along


def test_an_export_job_ends_done_at_100_after_its_steps(record_events, auditor, monkeypatch):
    record_events(12)
    monkeypatch.setattr(exports, "PROGRESS_EVERY", 3)
    seen: list[int] = []
    report = jobs._report
    monkeypatch.setattr(
        jobs, "_report", lambda job_id, percent: (seen.append(percent), report(job_id, percent))
    )
    job = AuditJob.objects.create(
        kind=AuditJob.Kind.EXPORT, export_format="jsonl", filters={}, created_by=auditor
    )

    jobs.audit_job_run(job_id=str(job.pk))

    job.refresh_from_db()
    assert (job.state, job.progress) == (AuditJob.State.DONE, 100)
    assert seen[0] == 1 and 5 in seen and len(set(seen)) >= 5
