"""Long audit actions (verify the chain, export) as tasks that a page follows to the end.

Why: verifying a million events takes seconds and an export longer; a request that blocks
that long gives no feedback and hits proxy timeouts. `audit_job_start` records the job and
enqueues it after commit; the task claims it once (a conditional UPDATE, so running twice
is harmless), reports progress on the row, and writes an export to WARDEN_AUDIT_JOB_DIR,
from where its creator downloads it.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.models import AuditJob
from audit.selectors import EventFilters, chain_length

_DATE_KEYS = ("date_from", "date_to")
logger = logging.getLogger(__name__)


def job_path(job: AuditJob) -> Path:
    return Path(settings.WARDEN_AUDIT_JOB_DIR) / str(job.pk)


def _filters(stored: dict[str, Any]) -> EventFilters:
    values: dict[str, Any] = {
        key: date.fromisoformat(value) if key in _DATE_KEYS else value
        for key, value in stored.items()
    }
    return EventFilters(**values)


def audit_job_start(
    *, actor: Any, kind: str, filters: EventFilters, export_format: str = ""
) -> AuditJob:
    from audit.tasks import audit_job_task
    from config.dispatch import enqueue_on_commit

    with transaction.atomic():
        job = AuditJob.objects.create(
            kind=kind,
            export_format=export_format,
            filters=filters.as_dict(),
            created_by=actor,
        )
        enqueue_on_commit(audit_job_task, str(job.pk))
    return job


def _report(job_id: Any, progress: int) -> None:
    AuditJob.objects.filter(pk=job_id).update(progress=min(progress, 100))


def _verify(job: AuditJob) -> str:
    from audit.services import chain_verify

    total = chain_length()
    report = chain_verify(
        actor=job.created_by, progress=lambda checked: _report(job.pk, 100 * checked // total)
    )
    if not report.ok:
        raise ChainBroken(report.summary())
    return report.summary()


class ChainBroken(Exception):
    """Verification found a broken chain: the job fails with the report's summary."""


def _export(job: AuditJob) -> str:
    from audit.exports import CONTENT_TYPES
    from audit.services import audit_export

    path = job_path(job)
    path.parent.mkdir(parents=True, exist_ok=True)
    _report(job.pk, 1)
    with path.open("wb") as stream:
        result = audit_export(
            actor=job.created_by,
            export_format=job.export_format,
            filters=_filters(job.filters),
            stream=stream,
            progress=lambda percent: _report(job.pk, percent),
        )
    AuditJob.objects.filter(pk=job.pk).update(
        filename=result.filename, content_type=CONTENT_TYPES[job.export_format]
    )
    return f"{result.event_count} events written."


def audit_job_run(*, job_id: str) -> None:
    """Run a queued job once; a second delivery of the same task finds it claimed."""
    claimed = AuditJob.objects.filter(pk=job_id, state=AuditJob.State.QUEUED).update(
        state=AuditJob.State.RUNNING
    )
    if not claimed:
        return
    job = AuditJob.objects.select_related("created_by").get(pk=job_id)
    try:
        message = _verify(job) if job.kind == AuditJob.Kind.VERIFY else _export(job)
    except Exception as error:  # the page must show the failure, whatever it was
        if not isinstance(error, ChainBroken):
            logger.exception("audit job %s failed", job_id)
        AuditJob.objects.filter(pk=job_id).update(
            state=AuditJob.State.FAILED, message=str(error)[:2000], finished_at=timezone.now()
        )
        return
    AuditJob.objects.filter(pk=job_id).update(
        state=AuditJob.State.DONE, progress=100, message=message, finished_at=timezone.now()
    )
