"""`manage.py feedback_export [--datasource NAME] [--output FILE]`: reviewed tags as JSON lines.

The file is the organisation's own labelled set: ``bench/classify.py --feedback FILE``
scores the scan's precision and recall against it, per tag and per month of review.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from classification.selectors import feedback_labelled_set
from governance.models import DataSource


class Command(BaseCommand):
    help = "Export admin-confirmed and -rejected tags as a labelled set (JSON lines)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--datasource", help="only this datasource (by name)")
        parser.add_argument("--output", help="file to write (default: standard output)")

    def handle(self, *args: Any, **options: Any) -> None:
        datasource = None
        if options["datasource"]:
            datasource = DataSource.objects.filter(name=options["datasource"]).first()
            if datasource is None:
                raise CommandError(f"datasource: no datasource named {options['datasource']!r}")
        records = feedback_labelled_set(datasource=datasource)
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8") as output:
                count = _write(records, output)
        else:
            count = _write(records, sys.stdout)
        self.stderr.write(f"{count} reviewed tags exported.")


def _write(records: Iterable[dict], stream: TextIO) -> int:
    count = 0
    for record in records:
        stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count
