from typing import Any

from django.core.management.base import BaseCommand

from governance.models import Tag
from governance.taxonomy import taxonomy_load


class Command(BaseCommand):
    help = "Create or update the tag taxonomy from governance/taxonomy.json."

    def handle(self, *args: Any, **options: Any) -> None:
        count = taxonomy_load(Tag)
        self.stdout.write(self.style.SUCCESS(f"{count} tags loaded."))
