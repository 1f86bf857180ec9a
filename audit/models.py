"""The append-only, hash-chained audit trail."""

import uuid

from django.db import models


class AuditEvent(models.Model):
    """One event; `hash` covers its canonical content and its predecessor's hash."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    sequence = models.BigIntegerField(unique=True)
    occurred_at = models.DateTimeField(db_index=True)
    recorded_at = models.DateTimeField()
    actor = models.CharField(max_length=150, db_index=True)
    actor_kind = models.CharField(max_length=20)  # user, service_account, agent, system
    action = models.CharField(max_length=100, db_index=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=100, blank=True)
    target_repr = models.CharField(max_length=300, blank=True)
    datasource_name = models.CharField(max_length=100, blank=True, db_index=True)
    decision = models.CharField(max_length=30, blank=True, db_index=True)
    details = models.JSONField(default=dict, blank=True)
    source_address = models.CharField(max_length=100, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["sequence"]
        constraints = [
            models.CheckConstraint(condition=models.Q(sequence__gte=1), name="sequence_positive")
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.actor} {self.action} {self.target_repr}"
