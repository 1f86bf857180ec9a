"""Celery beat entries for the audit app; merge into settings.CELERY_BEAT_SCHEDULE:

from audit.schedule import AUDIT_BEAT_SCHEDULE
CELERY_BEAT_SCHEDULE = {**AUDIT_BEAT_SCHEDULE}
"""

from celery.schedules import crontab

AUDIT_BEAT_SCHEDULE = {
    "audit-checkpoint-hourly": {"task": "audit.checkpoint", "schedule": crontab(minute=0)},
    "audit-monthly-report": {
        "task": "audit.monthly_report",
        "schedule": crontab(minute=30, hour=0, day_of_month=1),
    },
    "audit-prune-daily": {"task": "audit.prune", "schedule": crontab(minute=15, hour=3)},
}
