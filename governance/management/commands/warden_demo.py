"""`manage.py warden_demo`: demo users, tokens and a scanned demo shop database."""

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from governance.demo import DemoSite, demo_setup


class Command(BaseCommand):
    help = (
        "Create the demo people, tokens and the demo shop datasource, then scan it (once; "
        "again with --rescan). With --shop-url the shop is a PostgreSQL database governed by "
        "the demo policy set."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--migrate", action="store_true", help="apply migrations first (saves a start-up)"
        )
        parser.add_argument("--no-scan", action="store_true")
        parser.add_argument("--rescan", action="store_true", help="scan even if scanned before")
        parser.add_argument(
            "--shop-url",
            default=settings.DEMO_SHOP_URL,
            help="PostgreSQL URL of the shop database (default WARDEN_DEMO_SHOP_URL; "
            "empty: a SQLite file in the data directory)",
        )
        parser.add_argument(
            "--tokens-json",
            type=Path,
            help="also write the demo tokens to this file (mode 0600), for scripts",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["migrate"]:
            call_command("migrate", interactive=False, verbosity=0)
        demo = demo_setup(demo_database=settings.DEMO_DATABASE_PATH, shop_url=options["shop_url"])
        wants_scan = demo["needs_scan"] or options["rescan"]
        if wants_scan and not options["no_scan"]:
            call_command("scan", demo["datasource"].name, stdout=self.stdout, stderr=self.stderr)
        if options["tokens_json"]:
            path: Path = options["tokens_json"]
            path.touch(mode=0o600)
            path.write_text(json.dumps(demo["tokens"]))
        self._print_people(demo)

    def _print_people(self, demo: DemoSite) -> None:
        base_url = settings.WARDEN_BASE_URL or "http://127.0.0.1:8000"
        self.stdout.write("\n" + "=" * 72)
        self.stdout.write(f"Warden demo — sign in at {base_url}/accounts/login/")
        for person in demo["people"]:
            if person.password:
                roles = ", ".join(person.roles)
                self.stdout.write(
                    f"  {person.username:<10} password {person.password:<18} ({roles})"
                )
        tokens = demo["tokens"]
        self.stdout.write(f"  copilot    AI agent service account, API token: {tokens['copilot']}")
        self.stdout.write(f"  analyst    personal access token:               {tokens['analyst']}")
        self.stdout.write(f"  reviewer   personal access token:               {tokens['reviewer']}")
        self.stdout.write(f"  agent      enforcement agent token (admin):     {tokens['agent']}")
        self.stdout.write(f"  API docs:  {base_url}/api/v1/docs/")
        self.stdout.write("=" * 72)
