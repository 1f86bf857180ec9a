"""API shapes for access requests, reviews, grants and review policies."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from approvals.models import (
    REVIEW_POLICY_FIELDS,
    AccessLevel,
    AccessRequest,
    DatasourceReviewPolicy,
    Grant,
    Review,
)
from approvals.selectors import review_policy_for
from config.serializers import StrictStrings

NAMES = {"type": "array", "items": {"type": "string", "minLength": 1}}
SCOPE_SCHEMA = {
    "type": "object",
    "description": "What to access: schema.table names, schema.table.column names, tag names",
    "properties": {"tables": NAMES, "columns": NAMES, "tags": NAMES},
    "additionalProperties": False,
}


@extend_schema_field(SCOPE_SCHEMA)
class ScopeField(serializers.JSONField):
    """{"tables": [...], "columns": [...], "tags": [...]} (validated by the services)."""


class ReviewSerializer(StrictStrings, serializers.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer.get_username")
    decision_label = serializers.CharField(
        source="get_decision_display",
        read_only=True,
        help_text="decision in words: Approve, Reject",
    )

    class Meta:
        model = Review
        fields = [
            "reviewer",
            "decision",
            "decision_label",
            "comment",
            "narrowed_scope",
            "narrowed_duration_minutes",
            "statement_only",
            "max_runs",
            "created_at",
        ]


class GrantSerializer(StrictStrings, serializers.ModelSerializer):
    grantee = serializers.CharField(source="grantee.get_username")
    datasource = serializers.CharField(source="datasource.name")
    state = serializers.CharField()
    request_id = serializers.IntegerField()
    granted_minutes = serializers.IntegerField(
        read_only=True, help_text="Minutes from starts_at to expires_at: the duration given"
    )

    class Meta:
        model = Grant
        fields = [
            "id",
            "request_id",
            "grantee",
            "datasource",
            "scope",
            "level",
            "statement_fingerprint",
            "max_runs",
            "runs_used",
            "is_break_glass",
            "starts_at",
            "expires_at",
            "granted_minutes",
            "revoked_at",
            "state",
        ]


class AccessRequestSerializer(StrictStrings, serializers.ModelSerializer):
    requester = serializers.CharField(source="requester.get_username")
    created_by = serializers.CharField(source="created_by.get_username")
    datasource = serializers.CharField(source="datasource.name")
    approvals = serializers.SerializerMethodField()
    required_approvals = serializers.SerializerMethodField()
    reviews = serializers.SerializerMethodField()
    grant = serializers.SerializerMethodField()
    review_url = serializers.SerializerMethodField()
    state_label = serializers.CharField(
        source="get_state_display", read_only=True, help_text="state in words (denied: Rejected)"
    )

    class Meta:
        model = AccessRequest
        fields = [
            "id",
            "state",
            "state_label",
            "requester",
            "created_by",
            "origin",
            "datasource",
            "datasource_id",
            "scope",
            "level",
            "reason",
            "duration_minutes",
            "statement",
            "statement_fingerprint",
            "risk",
            "is_break_glass",
            "extends_grant",
            "created_at",
            "expires_at",
            "decided_at",
            "approvals",
            "required_approvals",
            "reviews",
            "grant",
            "review_url",
        ]

    def get_approvals(self, obj: AccessRequest) -> int:
        counted = getattr(obj, "approvals_count", None)
        if counted is not None:
            return counted
        return obj.reviews.filter(decision=Review.Decision.APPROVE).count()

    def get_required_approvals(self, obj: AccessRequest) -> int:
        loaded = getattr(obj, "quorum", None)  # selectors.request_detail loads it
        if loaded is not None:
            return loaded
        cache = self.context.setdefault("_quorum_by_datasource", {})
        if obj.datasource_id not in cache:
            cache[obj.datasource_id] = review_policy_for(obj.datasource).required_approvals
        return cache[obj.datasource_id]

    def get_reviews(self, obj: AccessRequest) -> list[dict[str, Any]]:
        if not self.context.get("detail"):
            return []
        return ReviewSerializer(obj.reviews.all(), many=True).data

    def get_grant(self, obj: AccessRequest) -> dict[str, Any] | None:
        try:
            grant = obj.grant
        except Grant.DoesNotExist:
            grant = None
        if grant is None and obj.extends_grant_id and obj.state == AccessRequest.State.APPROVED:
            grant = obj.extends_grant
        return GrantSerializer(grant).data if grant else None

    def get_review_url(self, obj: AccessRequest) -> str:
        path = reverse("approvals:detail", args=[obj.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class AccessRequestQuerySerializer(StrictStrings, serializers.Serializer):
    view = serializers.ChoiceField(
        choices=["mine", "review"], default="mine", help_text="Yours, or the ones you review"
    )
    state = serializers.ChoiceField(
        choices=AccessRequest.State.choices,
        required=False,
        help_text="Only this state (view=review defaults to pending)",
    )


class GrantQuerySerializer(StrictStrings, serializers.Serializer):
    all = serializers.BooleanField(
        default=False, help_text="Everyone's grants (admins and auditors only)"
    )


class AccessRequestCreateSerializer(StrictStrings, serializers.Serializer):
    datasource = serializers.CharField(help_text="Datasource name or id")
    scope = ScopeField()
    level = serializers.ChoiceField(choices=AccessLevel.choices)
    reason = serializers.CharField()
    duration_minutes = serializers.IntegerField(min_value=1)
    statement = serializers.CharField(required=False, allow_blank=True, default="")


class ApproveSerializer(StrictStrings, serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="")
    scope = ScopeField(required=False, default=None, help_text="Narrowed scope")
    duration_minutes = serializers.IntegerField(required=False, min_value=1, default=None)
    statement_only = serializers.BooleanField(required=False, default=False)
    max_runs = serializers.IntegerField(required=False, min_value=1, default=None)


class DenySerializer(StrictStrings, serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="")


class RevokeSerializer(StrictStrings, serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class ExtendSerializer(StrictStrings, serializers.Serializer):
    reason = serializers.CharField()
    duration_minutes = serializers.IntegerField(min_value=1)


class BreakGlassSerializer(StrictStrings, serializers.Serializer):
    datasource = serializers.CharField()
    scope = ScopeField()
    level = serializers.ChoiceField(choices=AccessLevel.choices)
    reason = serializers.CharField()
    duration_minutes = serializers.IntegerField(required=False, min_value=1, default=None)


class ReviewPolicySerializer(StrictStrings, serializers.ModelSerializer):
    reviewer_groups = serializers.SlugRelatedField(
        many=True,
        slug_field="name",
        required=False,
        queryset=Group.objects.all(),
    )
    notify_emails = serializers.ListField(child=serializers.EmailField(), required=False)

    class Meta:
        model = DatasourceReviewPolicy
        fields = ["reviewer_groups", *REVIEW_POLICY_FIELDS]
        # The table's CHECK constraints, said before the database has to.
        extra_kwargs = {
            "required_approvals": {"min_value": 1},
            "pending_expiry_minutes": {"min_value": 1},
        }


class GrantRunSerializer(StrictStrings, serializers.Serializer):
    id = serializers.IntegerField()
    runs_used = serializers.IntegerField()
    max_runs = serializers.IntegerField()
    runs_left = serializers.IntegerField()


class AgentAccessRequestSerializer(StrictStrings, serializers.Serializer):
    datasource = serializers.CharField()
    identity = serializers.CharField()
    statement = serializers.CharField()
    fingerprint = serializers.CharField(required=False, allow_blank=True, default="")
    scope = ScopeField(required=False, default=dict)
    level = serializers.ChoiceField(choices=AccessLevel.choices)
    reason = serializers.CharField()
    duration_minutes = serializers.IntegerField(required=False, min_value=1, default=None)


class AgentAccessRequestStateSerializer(StrictStrings, serializers.ModelSerializer):
    review_url = serializers.SerializerMethodField()
    grant = serializers.SerializerMethodField()

    class Meta:
        model = AccessRequest
        fields = ["id", "state", "review_url", "grant"]

    def get_review_url(self, obj: AccessRequest) -> str:
        return AccessRequestSerializer(context=self.context).get_review_url(obj)

    def get_grant(self, obj: AccessRequest) -> dict[str, Any] | None:
        grant = AccessRequestSerializer(context=self.context).get_grant(obj)
        if grant is None:
            return None
        return {
            key: grant[key]
            for key in (
                "id",
                "expires_at",
                "statement_fingerprint",
                "max_runs",
                "scope",
                "level",
                "state",
            )
        }
