from rest_framework import serializers

from classification.models import ScanRun, ScanTableResult
from config.serializers import StrictStrings


class ScanTableResultSerializer(StrictStrings, serializers.ModelSerializer):
    table = serializers.CharField(source="table.qualified_name")

    class Meta:
        model = ScanTableResult
        fields = [
            "table",
            "state",
            "rows_sampled",
            "columns_classified",
            "tags_suggested",
            "duration_ms",
            "error",
        ]


class ScanRunSerializer(StrictStrings, serializers.ModelSerializer):
    datasource = serializers.CharField(source="datasource.name")
    requested_by = serializers.CharField(
        source="requested_by.username", default=None, allow_null=True
    )
    progress_percent = serializers.IntegerField(read_only=True)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = ScanRun
        fields = [
            "id",
            "datasource",
            "state",
            "requested_by",
            "sample_size",
            "created_at",
            "started_at",
            "finished_at",
            "duration_seconds",
            "tables_total",
            "tables_done",
            "tables_failed",
            "columns_classified",
            "tags_suggested",
            "progress_percent",
            "catalog_changes",
            "error",
        ]


class ScanRunDetailSerializer(ScanRunSerializer):
    tables = ScanTableResultSerializer(source="table_results", many=True)

    class Meta(ScanRunSerializer.Meta):
        fields = [*ScanRunSerializer.Meta.fields, "tables"]


class ScanQuerySerializer(StrictStrings, serializers.Serializer):
    datasource = serializers.CharField(required=False, help_text="Datasource name")


class ScanStartSerializer(StrictStrings, serializers.Serializer):
    sample_size = serializers.IntegerField(required=False, min_value=1, max_value=100_000)
