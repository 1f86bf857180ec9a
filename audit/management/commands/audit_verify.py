"""manage.py audit_verify [--from X] [--to Y]: walk the chain, report the first broken link.

--from/--to take sequence numbers, or dates (YYYY-MM-DD, the events recorded that day on).
Exit status 1 when the chain is broken.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit import selectors, services


def _bound(value: str | None, *, end: bool) -> int | None:
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"{value!r} is neither a sequence number nor a YYYY-MM-DD date") from exc
    span = selectors.period_sequence_range(None if end else day, day if end else None)
    if span is None:
        return 0 if end else 1
    return span[1] if end else span[0]


class Command(BaseCommand):
    help = "Verify the audit hash chain (streaming); reports the first broken link."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--from", dest="start", help="first sequence number or date")
        parser.add_argument("--to", dest="end", help="last sequence number or date (inclusive)")

    def handle(self, *args: Any, start: str | None, end: str | None, **options: Any) -> None:
        report = services.chain_verify(
            actor=None,
            from_sequence=_bound(start, end=False) or 1,
            to_sequence=_bound(end, end=True),
        )
        rate = report.checked / report.elapsed_seconds if report.elapsed_seconds else 0
        if report.ok:
            self.stdout.write(self.style.SUCCESS(report.summary()) + f" ({rate:,.0f} events/s)")
            return
        self.stderr.write(self.style.ERROR(report.summary()))
        raise SystemExit(1)
