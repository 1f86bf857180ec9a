import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance.models import DataSource
from governance.services.bundles import policy_bundle_envelope


class Command(BaseCommand):
    help = "Write a datasource's signed policy bundle envelope as pretty JSON (for inspection)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("datasource", help="Datasource name")
        parser.add_argument("--output", "-o", help="File to write (default: standard output)")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["datasource"]
        datasource = DataSource.objects.filter(name=name).first()
        if datasource is None:
            known = ", ".join(DataSource.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"Unknown datasource {name!r} (known: {known}).")
        envelope = policy_bundle_envelope(datasource=datasource)
        text = json.dumps(envelope, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        if not options.get("output"):
            self.stdout.write(text, ending="")
            return
        path = Path(options["output"])
        path.write_text(text, encoding="utf-8")
        bundle = envelope["bundle"]
        self.stderr.write(
            self.style.SUCCESS(
                f"Wrote bundle {bundle['version'][:12]}… for {name} to {path} "
                f"({len(bundle['columns'])} columns, {len(bundle['rules'])} rules, "
                f"{len(bundle['guardrails'])} guardrails, {len(bundle['grants'])} grants)."
            )
        )
