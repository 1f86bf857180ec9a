"""manage.py audit_prune [--days N]: archive then prune events past the retention window."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit import services
from config.errors import StateConflict


class Command(BaseCommand):
    help = "Archive (signed JSONL) and remove events older than WARDEN_AUDIT_RETENTION_DAYS."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--days", type=int, help="override WARDEN_AUDIT_RETENTION_DAYS")

    def handle(self, *args: Any, days: int | None, **options: Any) -> None:
        try:
            result = services.audit_prune(retention_days=days)
        except StateConflict as exc:
            raise CommandError(str(exc)) from exc
        if result is None:
            self.stdout.write("Nothing to prune (retention is 0 = keep forever, or nothing old).")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Pruned {result.events_pruned} events through #{result.through_sequence}; "
                f"archive {result.archive}; prune checkpoint {result.checkpoint.pk}"
            )
        )
