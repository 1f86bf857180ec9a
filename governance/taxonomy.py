"""The tag taxonomy is data (governance/taxonomy.json), loaded by a migration and a command."""

import json
from pathlib import Path
from typing import Any

TAXONOMY_PATH = Path(__file__).with_name("taxonomy.json")


def taxonomy_entries() -> list[dict[str, Any]]:
    return json.loads(TAXONOMY_PATH.read_text())


def taxonomy_load(tag_model: Any) -> int:
    """Create or update every tag of the taxonomy file; returns how many entries there are.

    Takes the model class so the data migration can pass its historical model.
    """
    entries = taxonomy_entries()
    for entry in entries:
        tag_model.objects.update_or_create(
            name=entry["name"],
            defaults={
                "category": entry["category"],
                "sensitivity": entry["sensitivity"],
                "description": entry.get("description", ""),
            },
        )
    return len(entries)
