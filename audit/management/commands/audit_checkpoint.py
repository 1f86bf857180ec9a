"""manage.py audit_checkpoint: sign the current chain head now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit import services
from audit.models import AuditCheckpoint


class Command(BaseCommand):
    help = "Sign and store a checkpoint of the current audit chain head."

    def handle(self, *args: Any, **options: Any) -> None:
        checkpoint = services.checkpoint_create(kind=AuditCheckpoint.Kind.MANUAL)
        self.stdout.write(
            self.style.SUCCESS(
                f"Checkpoint #{checkpoint.sequence} {checkpoint.head_hash} signed by key "
                f"{checkpoint.key_id}"
            )
        )
