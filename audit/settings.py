"""Audit settings, read from django.conf.settings with defaults (see the lead's settings.py)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings


def retention_days() -> int:
    """WARDEN_AUDIT_RETENTION_DAYS: events recorded longer ago are archived and pruned;
    0 (the default) keeps them forever."""
    return int(getattr(settings, "WARDEN_AUDIT_RETENTION_DAYS", 0) or 0)


def archive_dir() -> Path:
    return Path(getattr(settings, "WARDEN_AUDIT_ARCHIVE_DIR", settings.DATA_DIR / "audit-archive"))


def report_dir() -> Path:
    return Path(getattr(settings, "WARDEN_AUDIT_REPORT_DIR", settings.DATA_DIR / "audit-reports"))
