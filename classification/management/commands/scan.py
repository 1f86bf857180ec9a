"""`manage.py scan <datasource>`: start a scan and follow its progress in the terminal."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from classification.models import ScanRun
from classification.services import scan_start
from governance.models import DataSource


class Command(BaseCommand):
    help = "Scan a datasource: introspect, reconcile the catalog, classify sampled columns."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("datasource", help="datasource name")
        parser.add_argument("--sample-size", type=int, default=None)
        parser.add_argument("--no-wait", action="store_true", help="queue the scan and exit")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait at most")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            datasource = DataSource.objects.get(name=options["datasource"])
        except DataSource.DoesNotExist as exc:
            names = ", ".join(DataSource.objects.values_list("name", flat=True)) or "none"
            raise CommandError(
                f"No datasource named {options['datasource']!r} (known: {names})."
            ) from exc
        try:
            scan = scan_start(actor=None, datasource=datasource, sample_size=options["sample_size"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Scan #{scan.pk} of {datasource.name} queued.")
        if options["no_wait"]:
            return
        scan = self._follow(scan.pk, options["timeout"])
        self._summarise(scan)

    def _follow(self, scan_run_id: int, timeout: float) -> ScanRun:
        deadline = time.monotonic() + timeout
        with tqdm(total=0, unit="table", desc="scanning", file=self.stderr._out) as bar:
            while True:
                scan = ScanRun.objects.get(pk=scan_run_id)
                if scan.tables_total and bar.total != scan.tables_total:
                    bar.total = scan.tables_total
                    bar.refresh()
                bar.update(scan.tables_done - bar.n)
                bar.set_postfix(columns=scan.columns_classified, tags=scan.tags_suggested)
                if scan.is_finished:
                    return scan
                if time.monotonic() > deadline:
                    raise CommandError(
                        f"Scan #{scan_run_id} still {scan.state} after {timeout:.0f} s."
                    )
                time.sleep(0.3)

    def _summarise(self, scan: ScanRun) -> None:
        summary = (
            f"Scan #{scan.pk} {scan.state}: {scan.tables_done}/{scan.tables_total} tables, "
            f"{scan.columns_classified} columns classified, {scan.tags_suggested} tags "
            f"suggested in {scan.duration_seconds or 0:.1f} s."
        )
        for result in scan.table_results.filter(state="failed").select_related("table"):
            self.stderr.write(f"  {result.table.qualified_name}: {result.error}")
        if scan.state == ScanRun.State.FAILED:
            raise CommandError(f"{summary} {scan.error}")
        self.stdout.write(self.style.SUCCESS(summary))
