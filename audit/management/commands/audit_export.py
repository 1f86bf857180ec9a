"""manage.py audit_export --from YYYY-MM-DD --to YYYY-MM-DD --format csv|json|pdf|jsonl
--output PATH (and optional --actor/--datasource/--action/--decision/--tag filters)."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit import services
from audit.exports import EXPORT_FORMATS
from audit.selectors import EventFilters


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError as exc:
        raise CommandError(f"{value!r} is not a YYYY-MM-DD date") from exc


class Command(BaseCommand):
    help = "Export the audit trail (JSONL, verifiable offline) or the evidence report."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--from", dest="start", help="first day (YYYY-MM-DD)")
        parser.add_argument("--to", dest="end", help="last day, inclusive (YYYY-MM-DD)")
        parser.add_argument(
            "--format", dest="export_format", choices=EXPORT_FORMATS, default="jsonl"
        )
        parser.add_argument("--output", required=True, help="file to write")
        for name in ("actor", "datasource", "action", "decision", "tag"):
            parser.add_argument(f"--{name}", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        filters = EventFilters(
            date_from=_day(options["start"]),
            date_to=_day(options["end"]),
            **{key: options[key] for key in ("actor", "datasource", "action", "decision", "tag")},
        )
        with open(options["output"], "wb") as stream:
            result = services.audit_export(
                actor=None, export_format=options["export_format"], filters=filters, stream=stream
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {result.event_count} events as {result.export_format} "
                f"to {options['output']} "
                f"(checkpoint #{result.checkpoint.sequence} {result.checkpoint.head_hash[:16]})"
            )
        )
