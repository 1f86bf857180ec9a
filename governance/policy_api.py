"""REST API for policy rules, guardrails, sensitive defaults and the decision preview.

Reads: admin, reviewer, auditor. Writes: admin. Rules and guardrails use the bundle's own
shapes for ``subjects`` and ``resource``, so what you POST is what the agent receives.
Service refusals become 4xx with the reason (config.api.warden_exception_handler).
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import InvalidInput
from config.serializers import StrictStrings
from governance import policy_selectors, services
from governance.models import (
    DataSource,
    GuardrailAction,
    GuardrailKind,
    GuardrailRule,
    MaskMethod,
    PolicyAction,
    PolicyRule,
    ResourceKind,
    Role,
    Sensitivity,
)
from governance.permissions import CATALOG_READERS, HasRole
from governance.services.policies import (
    DEFAULT_SENSITIVE_ACTIONS,
    guardrail_snapshot,
    policy_rule_snapshot,
)

LEVELS = [label for _value, label in Sensitivity.choices]


class ReadersReadAdminsWrite(BasePermission):
    message = "Reading policies needs admin, reviewer or auditor; changing them needs admin."

    def roles_for(self, method: str) -> tuple[str, ...]:
        return CATALOG_READERS if method in ("GET", "HEAD", "OPTIONS") else (Role.ADMIN,)

    def has_permission(self, request: Request, view: Any) -> bool:
        return HasRole.of(*self.roles_for(request.method))().has_permission(request, view)


# ---------------------------------------------------------------- serializers


class SubjectsSerializer(StrictStrings, serializers.Serializer):
    everyone = serializers.BooleanField(default=False)
    users = serializers.ListField(
        child=serializers.CharField(),
        default=list,
        help_text="Usernames of people or service accounts",
    )
    groups = serializers.ListField(child=serializers.CharField(), default=list)


class ResourceSerializer(StrictStrings, serializers.Serializer):
    kind = serializers.ChoiceField(choices=ResourceKind.values)
    schema = serializers.CharField(required=False, allow_blank=True)
    table = serializers.CharField(required=False, allow_blank=True)
    column = serializers.CharField(required=False, allow_blank=True)
    tag = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    level = serializers.ChoiceField(
        choices=LEVELS, required=False, help_text="This level or higher"
    )


class PolicyRuleSerializer(StrictStrings, serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    datasource = serializers.CharField(help_text="Datasource name (or id); fixed after creation")
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    priority = serializers.IntegerField(required=False, default=100)
    enabled = serializers.BooleanField(required=False, default=True)
    subjects = SubjectsSerializer()
    resource = ResourceSerializer()
    action = serializers.ChoiceField(choices=PolicyAction.values)
    mask_method = serializers.ChoiceField(
        choices=MaskMethod.values, required=False, allow_null=True, allow_blank=True
    )
    mask_param = serializers.IntegerField(required=False, allow_null=True)
    allow_exact_lookups = serializers.BooleanField(required=False, default=False)

    def to_representation(self, rule: PolicyRule) -> dict[str, Any]:
        return {"id": rule.pk, **policy_rule_snapshot(rule)}


class GuardrailSerializer(StrictStrings, serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    datasource = serializers.CharField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Datasource name (or id); null = all",
    )
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    kinds = serializers.ListField(child=serializers.ChoiceField(choices=GuardrailKind.values))
    subjects = SubjectsSerializer(required=False)
    action = serializers.ChoiceField(choices=GuardrailAction.values)
    max_rows = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=0,
        help_text="rows_over_limit only: the most rows an UPDATE/DELETE/MERGE may be "
        "estimated (by the planner) to change",
    )
    enabled = serializers.BooleanField(required=False, default=True)

    def to_representation(self, guardrail: GuardrailRule) -> dict[str, Any]:
        return {"id": guardrail.pk, **guardrail_snapshot(guardrail)}


class DefaultsSerializer(StrictStrings, serializers.Serializer):
    default_sensitive_action = serializers.ChoiceField(choices=DEFAULT_SENSITIVE_ACTIONS)
    default_mask_method = serializers.ChoiceField(choices=MaskMethod.values)


class PreviewSerializer(StrictStrings, serializers.Serializer):
    datasource = serializers.CharField()
    subject = serializers.CharField(help_text="Username of a person or service account")
    sql = serializers.CharField(trim_whitespace=False)


class DatasourceReferenceSerializer(StrictStrings, serializers.Serializer):
    datasource = serializers.CharField()


# ---------------------------------------------------------------- input → service kwargs


def _datasource(reference: Any) -> DataSource:
    datasource = policy_selectors.datasource_by_reference(reference)
    if datasource is None:
        raise InvalidInput(f"Unknown datasource {reference!r}.", field="datasource")
    return datasource


def _subject_kwargs(subjects: dict[str, Any]) -> dict[str, Any]:
    return {
        "everyone": subjects.get("everyone", False),
        "users": policy_selectors.users_by_username(subjects.get("users", [])),
        "groups": policy_selectors.groups_by_name(subjects.get("groups", [])),
    }


def _resource_kwargs(resource: dict[str, Any]) -> dict[str, Any]:
    if "kind" not in resource:  # a PATCH replaces the whole resource
        raise InvalidInput("The resource needs its kind.", field="resource.kind")
    level = resource.get("level")
    return {
        "resource_kind": resource["kind"],
        "schema_name": resource.get("schema", ""),
        "table_name": resource.get("table", ""),
        "column_name": resource.get("column", ""),
        "tag": policy_selectors.tag_by_name(resource.get("tag")),
        "sensitivity": LEVELS.index(level) if level else None,
    }


def _rule_kwargs(data: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        key: data[key]
        for key in (
            "name",
            "description",
            "priority",
            "enabled",
            "action",
            "mask_param",
            "allow_exact_lookups",
        )
        if key in data
    }
    if "mask_method" in data:
        kwargs["mask_method"] = data["mask_method"] or ""
    if "subjects" in data:
        kwargs.update(_subject_kwargs(data["subjects"]))
    if "resource" in data:
        kwargs.update(_resource_kwargs(data["resource"]))
    return kwargs


def _guardrail_kwargs(data: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        key: data[key]
        for key in ("name", "description", "kinds", "action", "max_rows", "enabled")
        if key in data
    }
    if "subjects" in data:
        kwargs.update(_subject_kwargs(data["subjects"]))
    return kwargs


def _validated(
    serializer_class: type[serializers.Serializer], request: Request, partial: bool = False
) -> dict[str, Any]:
    serializer = serializer_class(data=request.data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


DATASOURCE_FILTER = OpenApiParameter(
    "datasource", str, description="Only this datasource's (name or id); unknown → empty list"
)


def _filtered(request: Request, rows: Any) -> Any:
    reference = request.query_params.get("datasource")
    if not reference:
        return rows(datasource=None)
    datasource = policy_selectors.datasource_by_reference(reference)
    return rows(datasource=datasource) if datasource else []


# ---------------------------------------------------------------- policy rules


class PolicyRuleListCreate(APIView):
    permission_classes = [ReadersReadAdminsWrite]

    @extend_schema(
        parameters=[DATASOURCE_FILTER],
        responses={200: PolicyRuleSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        rules = _filtered(request, policy_selectors.policy_rules_list)
        return Response(PolicyRuleSerializer(rules, many=True).data)

    @extend_schema(request=PolicyRuleSerializer, responses={201: PolicyRuleSerializer})
    def post(self, request: Request) -> Response:
        data = _validated(PolicyRuleSerializer, request)
        rule = services.policy_rule_create(
            actor=request.user, datasource=_datasource(data["datasource"]), **_rule_kwargs(data)
        )
        return Response(PolicyRuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class PolicyRuleDetail(APIView):
    permission_classes = [ReadersReadAdminsWrite]

    def _rule(self, pk: int) -> PolicyRule:
        return get_object_or_404(policy_selectors.policy_rules_list(), pk=pk)

    @extend_schema(responses={200: PolicyRuleSerializer})
    def get(self, request: Request, pk: int) -> Response:
        return Response(PolicyRuleSerializer(self._rule(pk)).data)

    @extend_schema(request=PolicyRuleSerializer, responses={200: PolicyRuleSerializer})
    def patch(self, request: Request, pk: int) -> Response:
        rule = self._rule(pk)
        data = _validated(PolicyRuleSerializer, request, partial=True)
        if "datasource" in data and _datasource(data.pop("datasource")) != rule.datasource:
            raise InvalidInput("A rule cannot move to another datasource; create a new one.")
        rule = services.policy_rule_update(actor=request.user, rule=rule, **_rule_kwargs(data))
        return Response(PolicyRuleSerializer(rule).data)

    @extend_schema(request=PolicyRuleSerializer, responses={200: PolicyRuleSerializer})
    def put(self, request: Request, pk: int) -> Response:
        return self.patch(request, pk)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        services.policy_rule_delete(actor=request.user, rule=self._rule(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------- guardrails


class GuardrailListCreate(APIView):
    permission_classes = [ReadersReadAdminsWrite]

    @extend_schema(
        parameters=[DATASOURCE_FILTER],
        responses={200: GuardrailSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        guardrails = _filtered(request, policy_selectors.guardrail_rules_list)
        return Response(GuardrailSerializer(guardrails, many=True).data)

    @extend_schema(request=GuardrailSerializer, responses={201: GuardrailSerializer})
    def post(self, request: Request) -> Response:
        data = _validated(GuardrailSerializer, request)
        reference = data.get("datasource")
        datasource = _datasource(reference) if reference not in (None, "") else None
        kwargs = _guardrail_kwargs(data)
        kwargs.setdefault("everyone", "subjects" not in data)
        guardrail = services.guardrail_rule_create(
            actor=request.user, datasource=datasource, **kwargs
        )
        return Response(GuardrailSerializer(guardrail).data, status=status.HTTP_201_CREATED)


class GuardrailDetail(APIView):
    permission_classes = [ReadersReadAdminsWrite]

    def _guardrail(self, pk: int) -> GuardrailRule:
        return get_object_or_404(policy_selectors.guardrail_rules_list(), pk=pk)

    @extend_schema(responses={200: GuardrailSerializer})
    def get(self, request: Request, pk: int) -> Response:
        return Response(GuardrailSerializer(self._guardrail(pk)).data)

    @extend_schema(request=GuardrailSerializer, responses={200: GuardrailSerializer})
    def patch(self, request: Request, pk: int) -> Response:
        guardrail = self._guardrail(pk)
        data = _validated(GuardrailSerializer, request, partial=True)
        data.pop("datasource", None)
        guardrail = services.guardrail_rule_update(
            actor=request.user, guardrail=guardrail, **_guardrail_kwargs(data)
        )
        return Response(GuardrailSerializer(guardrail).data)

    @extend_schema(request=GuardrailSerializer, responses={200: GuardrailSerializer})
    def put(self, request: Request, pk: int) -> Response:
        return self.patch(request, pk)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        services.guardrail_rule_delete(actor=request.user, guardrail=self._guardrail(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class GuardrailRecommended(APIView):
    permission_classes = [ReadersReadAdminsWrite]

    @extend_schema(
        request=DatasourceReferenceSerializer, responses={201: GuardrailSerializer(many=True)}
    )
    def post(self, request: Request) -> Response:
        data = _validated(DatasourceReferenceSerializer, request)
        created = services.guardrails_recommended_create(
            actor=request.user, datasource=_datasource(data["datasource"])
        )
        return Response(
            GuardrailSerializer(created, many=True).data, status=status.HTTP_201_CREATED
        )


# ---------------------------------------------------------------- defaults and preview


class DatasourceDefaults(APIView):
    """What happens to a sensitive column that no rule matches, per datasource."""

    permission_classes = [ReadersReadAdminsWrite]

    @extend_schema(responses={200: DefaultsSerializer})
    def get(self, request: Request, pk: int) -> Response:
        datasource = get_object_or_404(DataSource, pk=pk)
        return Response(DefaultsSerializer(datasource).data)

    @extend_schema(request=DefaultsSerializer, responses={200: DefaultsSerializer})
    def put(self, request: Request, pk: int) -> Response:
        datasource = get_object_or_404(DataSource, pk=pk)
        data = _validated(DefaultsSerializer, request)
        datasource = services.datasource_defaults_set(
            actor=request.user, datasource=datasource, **data
        )
        return Response(DefaultsSerializer(datasource).data)


class PolicyPreview(APIView):
    """What the agent would decide for a subject and a statement, with today's bundle."""

    permission_classes = [HasRole.of(*CATALOG_READERS)]

    @extend_schema(request=PreviewSerializer, responses={200: dict})
    def post(self, request: Request) -> Response:
        data = _validated(PreviewSerializer, request)
        subject = policy_selectors.users_by_username([data["subject"]])[0]
        preview = services.policy_preview(
            datasource=_datasource(data["datasource"]), subject=subject, sql=data["sql"]
        )
        return Response(preview)
