"""Celery tasks: thin wrappers around audit services (schedule in audit/schedule.py)."""

from __future__ import annotations

from datetime import date, timedelta

from celery import shared_task
from django.utils import timezone

from audit import services
from audit.models import AuditCheckpoint


@shared_task(name="audit.checkpoint")
def checkpoint_task() -> int:
    """Hourly: sign the chain head (safe to run twice: two checkpoints of one head)."""
    return services.checkpoint_create(kind=AuditCheckpoint.Kind.SCHEDULED).pk


@shared_task(name="audit.monthly_report")
def monthly_report_task(month: str | None = None) -> list[str]:
    """On the 1st: the evidence pack of the previous month (or `month`, YYYY-MM-DD)."""
    target = (
        date.fromisoformat(month)
        if month
        else timezone.now().date().replace(day=1) - timedelta(days=1)
    )
    return [str(path) for path in services.audit_monthly_report(month=target)]


@shared_task(name="audit.prune")
def prune_task() -> int:
    """Daily: archive and prune past WARDEN_AUDIT_RETENTION_DAYS (a no-op when 0)."""
    result = services.audit_prune()
    return result.events_pruned if result else 0


@shared_task(name="audit.job")
def audit_job_task(job_id: str) -> None:
    """A verify or export job started from the audit pages (audit.jobs)."""
    from audit.jobs import audit_job_run

    audit_job_run(job_id=job_id)
