"""`manage.py warden_demo`: demo users, tokens and a scanned demo shop database."""

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from governance.demo import demo_setup


class Command(BaseCommand):
    help = "Create the demo people, tokens and the demo shop datasource, then scan it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-scan", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        demo = demo_setup(demo_database=settings.DEMO_DATABASE_PATH)
        if not options["no_scan"]:
            call_command("scan", demo["datasource"].name, stdout=self.stdout, stderr=self.stderr)
        self.stdout.write("\n" + "=" * 72)
        self.stdout.write("Warden demo — sign in at http://127.0.0.1:8000/accounts/login/")
        for person in demo["people"]:
            if person.password:
                roles = ", ".join(person.roles)
                self.stdout.write(
                    f"  {person.username:<10} password {person.password:<18} ({roles})"
                )
        tokens = demo["tokens"]
        self.stdout.write(f"  copilot    AI agent service account, API token: {tokens['copilot']}")
        self.stdout.write(f"  analyst    personal access token:               {tokens['analyst']}")
        self.stdout.write(f"  agent      enforcement agent token (admin):     {tokens['agent']}")
        self.stdout.write("  API docs:  http://127.0.0.1:8000/api/v1/docs/")
        self.stdout.write("=" * 72)
