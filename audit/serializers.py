"""DRF serializers of the audit API (read shapes; writes go through services)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from audit.exports import EXPORT_FORMATS
from audit.hashing import HASHED_FIELDS
from audit.ingest import MAX_BATCH, MAX_STATEMENT_CHARS, TEXT_LIMITS
from audit.models import AuditCheckpoint, AuditEvent
from audit.selectors import DECISION_CHOICES
from config.serializers import StrictStrings


class AuditEventSerializer(StrictStrings, serializers.ModelSerializer):
    details = serializers.JSONField()

    class Meta:
        model = AuditEvent
        fields = [*HASHED_FIELDS, "hash"]  # what the chain hashes, and the hash
        read_only_fields = fields


class TrailPageParamsSerializer(StrictStrings, serializers.Serializer):
    """Where a page of the trail starts: the `next` and `previous` links carry these."""

    before = serializers.IntegerField(
        min_value=1, required=False, help_text="events older than this sequence (the next link)"
    )
    after = serializers.IntegerField(
        min_value=0, required=False, help_text="events newer than this sequence (the previous link)"
    )
    page_size = serializers.IntegerField(min_value=1, max_value=500, default=50)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if "before" in data and "after" in data:
            raise serializers.ValidationError({"after": ["Give before or after, not both."]})
        return data


class SearchedWindowSerializer(StrictStrings, serializers.Serializer):
    first_sequence = serializers.IntegerField()
    last_sequence = serializers.IntegerField()


class AuditEventPageSerializer(StrictStrings, serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="older events")
    previous = serializers.URLField(allow_null=True, help_text="newer events")
    searched = SearchedWindowSerializer(
        allow_null=True,
        help_text=(
            "Set when the filters have no index of their own: this page searched only these "
            "sequences and there are events beyond them; follow next (or previous) to search on. "
            "Such a page may hold fewer events than page_size, even none."
        ),
    )
    results = AuditEventSerializer(many=True)


class AuditCheckpointSerializer(StrictStrings, serializers.ModelSerializer):
    class Meta:
        model = AuditCheckpoint
        fields = [
            "id",
            "sequence",
            "head_hash",
            "created_at",
            "kind",
            "key_id",
            "public_key",
            "signature",
            "created_by",
        ]
        read_only_fields = fields


class ChainReportSerializer(StrictStrings, serializers.Serializer):
    ok = serializers.BooleanField()
    checked = serializers.IntegerField()
    first_sequence = serializers.IntegerField(allow_null=True)
    last_sequence = serializers.IntegerField(allow_null=True)
    start_hash = serializers.CharField()
    head_hash = serializers.CharField()
    started_from = serializers.CharField()
    problem = serializers.CharField()
    kind = serializers.CharField()
    broken_event_id = serializers.CharField()
    broken_sequence = serializers.IntegerField(allow_null=True)
    checkpoints_checked = serializers.IntegerField()
    elapsed_seconds = serializers.FloatField()
    notes = serializers.ListField(child=serializers.CharField())


class VerifyRequestSerializer(StrictStrings, serializers.Serializer):
    from_sequence = serializers.IntegerField(min_value=1, required=False, default=1)
    to_sequence = serializers.IntegerField(min_value=1, required=False, allow_null=True)


def _optional_text(limit: int, **kwargs: Any) -> serializers.CharField:
    return serializers.CharField(
        required=False, allow_blank=True, allow_null=True, max_length=limit, **kwargs
    )


def _labels() -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(max_length=800, allow_blank=True),
        required=False,
        allow_null=True,
        max_length=10_000,
    )


class AgentEventSerializer(StrictStrings, serializers.Serializer):
    """Documents the agent event shape; validation is audit.ingest.agent_event_parse."""

    id = serializers.UUIDField()
    time = serializers.DateTimeField(help_text="ISO-8601 with a timezone")
    identity = serializers.CharField(max_length=TEXT_LIMITS["identity"])
    datasource = serializers.CharField(max_length=TEXT_LIMITS["datasource"])
    client_address = _optional_text(TEXT_LIMITS["client_address"])
    fingerprint = _optional_text(TEXT_LIMITS["fingerprint"])
    statement = _optional_text(MAX_STATEMENT_CHARS, help_text="literals removed")
    kind = _optional_text(TEXT_LIMITS["kind"])
    tables_read = _labels()
    tables_written = _labels()
    columns_read = _labels()
    masked_columns = _labels()
    decision = serializers.ChoiceField(choices=DECISION_CHOICES)
    rule = _optional_text(TEXT_LIMITS["rule"])
    rows = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    duration_ms = serializers.FloatField(required=False, allow_null=True, min_value=0)


class AgentBatchSerializer(StrictStrings, serializers.Serializer):
    events = AgentEventSerializer(many=True, max_length=MAX_BATCH)


class IngestResultSerializer(StrictStrings, serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()


class ExportRequestSerializer(StrictStrings, serializers.Serializer):
    format = serializers.ChoiceField(choices=EXPORT_FORMATS)
    date_from = serializers.DateField(required=False, allow_null=True)
    date_to = serializers.DateField(required=False, allow_null=True)
    actor = serializers.CharField(required=False, allow_blank=True)
    datasource = serializers.CharField(required=False, allow_blank=True)
    action = serializers.CharField(required=False, allow_blank=True)
    decision = serializers.ChoiceField(choices=DECISION_CHOICES, required=False, allow_blank=True)
    tag = serializers.CharField(required=False, allow_blank=True)
