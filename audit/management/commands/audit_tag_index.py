"""manage.py audit_tag_index [--from-sequence N]: index the tags of stored events."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit.counts import tag_index_build


class Command(BaseCommand):
    help = (
        "Index the tags of events already in the trail (the trail's tag filter reads this "
        "index). Run once after an upgrade to 0009 or later during which the previous release "
        "kept appending; events are never indexed twice."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--from-sequence",
            type=int,
            default=0,
            help="only events from this sequence on (e.g. the first one the old release wrote)",
        )

    def handle(self, *args: Any, from_sequence: int, **options: Any) -> None:
        if from_sequence < 0:
            raise CommandError("--from-sequence must be 0 or more.")
        added = tag_index_build(from_sequence=from_sequence)
        self.stdout.write(self.style.SUCCESS(f"Indexed {added} event tags."))
