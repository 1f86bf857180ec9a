"""The append-only, hash-chained audit trail and its signed checkpoints.

On PostgreSQL a trigger refuses UPDATE, DELETE and TRUNCATE (migration 0002). Everywhere
(and so on SQLite too) the application refuses the same: instances cannot be saved or
deleted and querysets cannot update or delete. The only writer is audit.services.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, NoReturn

from django.db import models

from audit.hashing import canonical_text, canonical_time

APPEND_ONLY_MESSAGE = "audit events are append-only; write through audit.services.event_record"


class CanonicalJSONField(models.TextField):
    """A JSON object kept as canonical text (audit.hashing), not jsonb.

    Verification can then hash the stored text as is, and ingest skips the server-side JSON
    parse: both several times faster. Python sees a dict. To find events whose details
    mention a value as a whole JSON string, filter `details__contains=canonical_text(value)`
    (see audit.selectors).
    """

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        return None if value is None else json.loads(value)

    def to_python(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    def get_prep_value(self, value: Any) -> Any:
        return value if value is None or isinstance(value, str) else canonical_text(value)


class AppendOnlyError(Exception):
    """Raised on any attempt to change or remove a stored audit event or checkpoint."""


def _refuse(*args: Any, **kwargs: Any) -> NoReturn:
    raise AppendOnlyError(APPEND_ONLY_MESSAGE)


class AppendOnlyQuerySet(models.QuerySet):
    update = _refuse
    delete = _refuse
    _raw_delete = _refuse
    bulk_update = _refuse
    update_or_create = _refuse


class AppendOnlyModel(models.Model):
    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        _refuse()

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse()


class AuditEvent(AppendOnlyModel):
    """One event; `hash` covers its canonical content and its predecessor's hash."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    sequence = models.BigIntegerField(unique=True)
    occurred_at = models.DateTimeField(db_index=True)
    recorded_at = models.DateTimeField()
    actor = models.CharField(max_length=150)
    # user, service_account, system, agent (a bare agent name), anonymous (failed sign-in)
    # or unknown (an agent reported an identity with no account)
    actor_kind = models.CharField(max_length=20)
    action = models.CharField(max_length=100)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=100, blank=True)
    target_repr = models.CharField(max_length=300, blank=True)
    datasource_name = models.CharField(max_length=100, blank=True)
    decision = models.CharField(max_length=30, blank=True)
    # Stored as its canonical JSON text, the very bytes hashed (see CanonicalJSONField).
    details = CanonicalJSONField(default=dict, blank=True)
    source_address = models.CharField(max_length=100, blank=True)
    prev_hash = models.CharField(max_length=64)
    # Not unique by constraint: the hash covers `sequence`, which is. Fewer indexes, faster ingest.
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["sequence"]
        constraints = [
            models.CheckConstraint(condition=models.Q(sequence__gte=1), name="sequence_positive")
        ]
        # Plain b-tree indexes (no varchar_pattern_ops twins): filters are exact matches.
        # (actor|action, sequence): the trail filtered by one of them, newest first, is a
        # backward range scan of its own events, however old or rare they are (on
        # (actor, occurred_at) PostgreSQL walked the whole trail backwards for an actor
        # whose events were all old, or sorted every event of a busy one).
        indexes = [
            models.Index(fields=["actor", "sequence"], name="audit_actor_sequence_idx"),
            models.Index(fields=["action", "sequence"], name="audit_action_sequence_idx"),
            # The dashboard's latest blocked statements; denials are few, so it stays small.
            models.Index(
                fields=["-sequence"], condition=models.Q(decision="deny"), name="audit_denied_idx"
            ),
            models.Index(
                fields=["datasource_name", "sequence"], name="audit_datasource_sequence_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.actor} {self.action} {self.target_repr}"


class AuditEventTag(models.Model):
    """One tag an event touched (audit.counts.tags_touched), by sequence: the trail's tag
    filter as a (tag, sequence) range scan instead of reading every event's details.

    Derived like the counts below: written in the same transaction as each append (so it
    holds exactly the trail's events), its rows removed with the events a prune removes.
    """

    pk = models.CompositePrimaryKey("tag", "sequence")
    tag = models.CharField(max_length=100)
    sequence = models.BigIntegerField()

    def __str__(self) -> str:
        return f"#{self.sequence} {self.tag}"


class AuditCheckpoint(AppendOnlyModel):
    """A signed statement "the chain had this head at this time".

    Created hourly, at each export and before pruning. A `prune` checkpoint marks where the
    stored chain now starts: verification begins from its head instead of the genesis hash.
    """

    class Kind(models.TextChoices):
        SCHEDULED = "scheduled"
        EXPORT = "export"
        MANUAL = "manual"
        PRUNE = "prune"

    sequence = models.BigIntegerField(db_index=True)
    head_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    kind = models.CharField(max_length=20, choices=Kind.choices)
    key_id = models.CharField(max_length=32)
    public_key = models.CharField(max_length=100)
    signature = models.CharField(max_length=200)
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        get_latest_by = "created_at"

    def __str__(self) -> str:
        return f"checkpoint #{self.sequence} {self.head_hash[:12]}… ({self.kind})"

    def as_signed_dict(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "head_hash": self.head_hash,
            "created_at": canonical_time(self.created_at),
            "kind": self.kind,
            "key_id": self.key_id,
            "public_key": self.public_key,
            "signature": self.signature,
        }


class _DayCount(models.Model):
    """A day's count of events of one kind, and of those that read tagged columns: the
    key and the counts the tables below share."""

    day = models.DateField()
    action = models.CharField(max_length=100)
    actor = models.CharField(max_length=150)
    datasource_name = models.CharField(max_length=100)
    decision = models.CharField(max_length=30)
    channel = models.CharField(max_length=30)
    events = models.BigIntegerField()
    # query.executed events allowed or masked that returned at least one tagged column.
    sensitive_reads = models.BigIntegerField()

    class Meta:
        abstract = True


class AuditDayCount(_DayCount):
    """How many events of one kind a day held: the dashboard's counts without reading the trail.

    Maintained by audit.counts in the same transaction as every append (so it is exactly the
    trail's counts), rebuilt for the days a prune touched. Not part of the evidence: the
    chain is; this is a derived index, which is why it may be updated.
    """

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "action", "actor", "datasource_name", "decision", "channel"],
                name="audit_day_count_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.action} {self.actor}: {self.events}"


class AuditDayTagCount(_DayCount):
    """AuditDayCount per tag an event touched (a query's details.tags, a tag change's
    details.tag): the dashboard's tag filter from counts too. Maintained and rebuilt with it."""

    tag = models.CharField(max_length=100)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "action", "actor", "datasource_name", "decision", "channel", "tag"],
                name="audit_day_tag_count_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.action} {self.actor} {self.tag}: {self.events}"


class AuditDayColumnRead(models.Model):
    """Per day, identity, decision and tagged column: how often agents returned it masked or
    unmasked."""

    day = models.DateField()
    actor = models.CharField(max_length=150)
    datasource_name = models.CharField(max_length=100)
    decision = models.CharField(max_length=30)
    column = models.CharField(max_length=400)
    tags = models.TextField()  # canonical JSON list, as last seen
    masked = models.BigIntegerField()
    unmasked = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "actor", "datasource_name", "decision", "column"],
                name="audit_day_column_read_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.actor} {self.column}: {self.masked}/{self.unmasked}"


class AuditJob(models.Model):
    """A long audit action (chain verification, an export) run as a task the page follows."""

    class Kind(models.TextChoices):
        VERIFY = "verify", "Verify the chain"
        EXPORT = "export", "Export"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    export_format = models.CharField(max_length=10, blank=True)
    filters = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)  # percent
    message = models.TextField(blank=True)
    filename = models.CharField(max_length=200, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    created_by = models.ForeignKey(
        "governance.User", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(progress__lte=100), name="job_progress_max")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.export_format} ({self.state})"

    @property
    def finished(self) -> bool:
        return self.state in (self.State.DONE, self.State.FAILED)
