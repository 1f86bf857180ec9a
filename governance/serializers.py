from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from config.serializers import StrictStrings
from governance.models import (
    AccessToken,
    Column,
    ColumnTag,
    DataSource,
    Engine,
    Role,
    Sensitivity,
    Tag,
    User,
)
from governance.models.catalog import DATASOURCE_NAME_RULE
from governance.scopes import ALL_SCOPES, scopes_grantable

# A DNS name (labels of at most 63 characters), an IPv4 or a bracket-less IPv6 address.
DNS_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_PATTERN = rf"^({DNS_LABEL}\.)*{DNS_LABEL}$|^[0-9A-Fa-f:.]+$"


class DataSourceSerializer(StrictStrings, serializers.ModelSerializer):
    """The password is write-only: it is never returned once saved."""

    password = serializers.CharField(
        write_only=True, required=False, allow_blank=True, style={"input_type": "password"}
    )
    has_password = serializers.BooleanField(read_only=True)
    engine = serializers.ChoiceField(choices=Engine.choices)
    host = serializers.RegexField(
        HOST_PATTERN,
        max_length=253,
        required=False,
        allow_blank=True,
        help_text="DNS name or IP address; empty for SQLite",
    )

    class Meta:
        model = DataSource
        fields = [
            "id",
            "name",
            "description",
            "engine",
            "host",
            "port",
            "database",
            "username",
            "password",
            "has_password",
            "default_sensitive_action",
            "default_mask_method",
            "created_at",
            "updated_at",
            "last_scanned_at",
        ]
        read_only_fields = [
            "created_at",
            "updated_at",
            "last_scanned_at",
            "default_sensitive_action",
            "default_mask_method",
        ]
        extra_kwargs = {"name": {"error_messages": {"invalid": DATASOURCE_NAME_RULE}}}


class TagSerializer(StrictStrings, serializers.ModelSerializer):
    sensitivity = serializers.CharField(source="get_sensitivity_display")

    class Meta:
        model = Tag
        fields = ["name", "category", "description", "sensitivity"]


class ColumnTagSerializer(StrictStrings, serializers.ModelSerializer):
    tag = serializers.CharField(source="tag.name")
    reviewed_by = serializers.CharField(
        source="reviewed_by.username", default=None, allow_null=True
    )

    class Meta:
        model = ColumnTag
        fields = [
            "id",
            "tag",
            "source",
            "state",
            "confidence",
            "evidence",
            "reviewed_by",
            "reviewed_at",
            "created_at",
            "updated_at",
        ]


class ColumnSerializer(StrictStrings, serializers.ModelSerializer):
    datasource = serializers.CharField(source="table.datasource.name")
    schema = serializers.CharField(source="table.schema_name")
    table = serializers.CharField(source="table.name")
    sensitivity = serializers.CharField(source="get_sensitivity_display", allow_null=True)
    tags = ColumnTagSerializer(source="column_tags", many=True)

    class Meta:
        model = Column
        fields = [
            "id",
            "datasource",
            "schema",
            "table",
            "name",
            "data_type",
            "is_nullable",
            "sensitivity",
            "curated_at",
            "first_seen_at",
            "last_seen_at",
            "dropped_at",
            "tags",
        ]


class ColumnQuerySerializer(StrictStrings, serializers.Serializer):
    q = serializers.CharField(required=False, default="", help_text="In column or table name")
    datasource = serializers.IntegerField(required=False, min_value=1, help_text="Datasource id")
    tag = serializers.CharField(required=False, default="", help_text="Carrying this tag")
    sensitivity = serializers.ChoiceField(
        choices=Sensitivity.choices, required=False, help_text="This level (0-3) or higher"
    )
    state = serializers.ChoiceField(
        choices=["untagged", *ColumnTag.State.values], required=False, default=""
    )
    dropped = serializers.BooleanField(default=False, help_text="Include dropped columns")


class TagQuerySerializer(StrictStrings, serializers.Serializer):
    tag = serializers.CharField(help_text="Name of the tag to remove")


class ConnectionResultSerializer(StrictStrings, serializers.Serializer):
    ok = serializers.BooleanField(help_text="Whether the datasource answered")
    message = serializers.CharField()


class BulkReviewResultSerializer(StrictStrings, serializers.Serializer):
    updated = serializers.IntegerField()


class ColumnTagWriteSerializer(StrictStrings, serializers.Serializer):
    tag = serializers.SlugRelatedField(slug_field="name", queryset=Tag.objects.all())
    state = serializers.ChoiceField(choices=["confirmed", "rejected"], default="confirmed")
    comment = serializers.CharField(required=False, allow_blank=True, max_length=300)


class BulkReviewSerializer(StrictStrings, serializers.Serializer):
    ids = serializers.ListField(child=serializers.IntegerField(), min_length=1, max_length=1000)
    state = serializers.ChoiceField(choices=["confirmed", "rejected"])


class AccessTokenSerializer(StrictStrings, serializers.ModelSerializer):
    """A token as its owner sees it. Creating one: ``scopes`` default to ``query`` and
    ``requests``; ``expires_at`` to WARDEN_TOKEN_DEFAULT_DAYS from now (``null``: never);
    ``is_agent`` is shorthand for the ``agent`` scope; ``user`` and ``datasources`` (an agent
    token's) are for admins. A field the caller may not set is a 403 naming it."""

    user = serializers.SlugRelatedField(
        slug_field="username",
        queryset=User.objects.all(),
        required=False,
        help_text="Owner (admins create tokens for agents' service accounts); default: you",
    )
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=list(ALL_SCOPES)), required=False, min_length=1
    )
    datasources = serializers.SlugRelatedField(
        slug_field="name",
        queryset=DataSource.objects.all(),
        many=True,
        required=False,
        help_text="The datasources an agent token serves",
    )
    is_agent = serializers.BooleanField(required=False, help_text="Shorthand for scopes=[agent]")
    expires_at = serializers.DateTimeField(required=False, allow_null=True)

    class Meta:
        model = AccessToken
        fields = [
            "id",
            "name",
            "user",
            "prefix",
            "scopes",
            "datasources",
            "is_agent",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
            "rotated_from",
            "issued_with_mfa",
        ]
        read_only_fields = [
            "prefix",
            "created_at",
            "last_used_at",
            "revoked_at",
            "rotated_from",
            "issued_with_mfa",
        ]

    def fields_refused(self, data: Mapping[str, Any]) -> list[str]:
        """What this caller's roles do not let them set (the service checks again)."""
        actor = self.context["request"].user
        if actor.has_role(Role.ADMIN):
            return []
        refused = []
        if data.get("user") not in (None, actor.get_username()):
            refused.append("user")
        if data.get("is_agent"):
            refused.append("is_agent")
        if data.get("datasources"):
            refused.append("datasources")
        wanted = data.get("scopes")
        if isinstance(wanted, list) and set(map(str, wanted)) - set(scopes_grantable(actor)):
            refused.append("scopes")
        return refused
