"""DRF serializers of the audit API (read shapes; writes go through services)."""

from __future__ import annotations

from rest_framework import serializers

from audit.exports import EXPORT_FORMATS
from audit.models import AuditCheckpoint, AuditEvent
from audit.selectors import DECISION_CHOICES


class AuditEventSerializer(serializers.ModelSerializer):
    details = serializers.JSONField()

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "sequence",
            "occurred_at",
            "recorded_at",
            "actor",
            "actor_kind",
            "action",
            "target_type",
            "target_id",
            "target_repr",
            "datasource_name",
            "decision",
            "details",
            "source_address",
            "prev_hash",
            "hash",
        ]
        read_only_fields = fields


class AuditCheckpointSerializer(serializers.ModelSerializer):
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


class ChainReportSerializer(serializers.Serializer):
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


class VerifyRequestSerializer(serializers.Serializer):
    from_sequence = serializers.IntegerField(min_value=1, required=False, default=1)
    to_sequence = serializers.IntegerField(min_value=1, required=False, allow_null=True)


class AgentEventSerializer(serializers.Serializer):
    """Documents the agent event shape; validation is audit.ingest.agent_event_parse."""

    id = serializers.UUIDField()
    time = serializers.DateTimeField()
    identity = serializers.CharField()
    datasource = serializers.CharField()
    client_address = serializers.CharField(required=False)
    fingerprint = serializers.CharField(required=False)
    statement = serializers.CharField(required=False, help_text="literals removed")
    kind = serializers.CharField(required=False)
    tables_read = serializers.ListField(child=serializers.CharField(), required=False)
    tables_written = serializers.ListField(child=serializers.CharField(), required=False)
    columns_read = serializers.ListField(child=serializers.CharField(), required=False)
    masked_columns = serializers.ListField(child=serializers.CharField(), required=False)
    decision = serializers.ChoiceField(choices=DECISION_CHOICES)
    rule = serializers.CharField(required=False)
    rows = serializers.IntegerField(required=False, allow_null=True)
    duration_ms = serializers.FloatField(required=False, allow_null=True)


class AgentBatchSerializer(serializers.Serializer):
    events = AgentEventSerializer(many=True)


class IngestResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()


class ExportRequestSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=EXPORT_FORMATS)
    date_from = serializers.DateField(required=False, allow_null=True)
    date_to = serializers.DateField(required=False, allow_null=True)
    actor = serializers.CharField(required=False, allow_blank=True)
    datasource = serializers.CharField(required=False, allow_blank=True)
    action = serializers.CharField(required=False, allow_blank=True)
    decision = serializers.ChoiceField(choices=DECISION_CHOICES, required=False, allow_blank=True)
    tag = serializers.CharField(required=False, allow_blank=True)
