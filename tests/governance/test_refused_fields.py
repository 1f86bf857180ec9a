"""Refuse, don't ignore: a field the caller may not set is a 403 naming it on every write
endpoint that has one, and the write does not happen; the same request without it works.
It is done once (config.serializers.StrictStrings), so every request serializer must use it."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from rest_framework import serializers

from config.serializers import StrictStrings
from governance.models import AccessToken, DataSource, GuardrailRule, PolicyRule, Tag
from governance.services import guardrail_rule_create, policy_rule_create

pytestmark = pytest.mark.django_db

DATASOURCE = {
    "name": "warehouse",
    "engine": "postgresql",
    "host": "127.0.0.1",
    "port": 5432,
    "database": "test",
    "username": "postgres",
}
RULE = {
    "datasource": "shop",
    "name": "mask emails",
    "subjects": {"everyone": True},
    "resource": {"kind": "tag", "tag": "PII.Email"},
    "action": "mask",
    "mask_method": "email",
}
API_MODULES = (
    "approvals.api",
    "audit.api",
    "classification.api",
    "governance.agent_api",
    "governance.api",
    "governance.mcp_api",
    "governance.policy_api",
)
GUARDRAIL = {"name": "no drops", "kinds": ["drop"], "action": "block"}


@pytest.fixture
def written(admin, shop) -> dict[str, Any]:
    rule = policy_rule_create(
        actor=admin,
        datasource=shop,
        name="r",
        resource_kind="tag",
        tag=Tag.objects.get(name="PII.Email"),
        action="mask",
        mask_method="email",
        everyone=True,
    )
    guardrail = guardrail_rule_create(
        actor=admin, datasource=shop, name="g", kinds=["drop"], action="block"
    )
    return {"shop": shop, "rule": rule, "guardrail": guardrail}


def _cases(objects: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], str, Any]]:
    """(method, path, a valid body, a field the caller may not set, a value for it)."""
    shop, rule, guardrail = objects["shop"], objects["rule"], objects["guardrail"]
    return [
        ("post", "/api/v1/datasources/", DATASOURCE, "has_password", True),
        ("put", f"/api/v1/datasources/{shop.pk}/", {**DATASOURCE, "name": "shop"}, "id", 999),
        ("patch", f"/api/v1/datasources/{shop.pk}/", {}, "default_sensitive_action", "allow"),
        ("patch", f"/api/v1/datasources/{shop.pk}/", {}, "last_scanned_at", "2026-01-01T00:00Z"),
        ("post", "/api/v1/policies/", RULE, "id", 999),
        ("patch", f"/api/v1/policies/{rule.pk}/", {"action": "allow"}, "id", 999),
        ("post", "/api/v1/guardrails/", GUARDRAIL, "id", 999),
        ("patch", f"/api/v1/guardrails/{guardrail.pk}/", {"action": "block"}, "id", 999),
        ("post", "/api/v1/tokens/", {"name": "ci"}, "revoked_at", "2026-01-01T00:00Z"),
        ("post", "/api/v1/tokens/", {"name": "ci"}, "prefix", "wdn_mine"),
    ]


CASE_IDS = [
    "datasource-create",
    "datasource-put",
    "datasource-patch-defaults",
    "datasource-patch-scanned",
    "policy-create",
    "policy-patch",
    "guardrail-create",
    "guardrail-patch",
    "token-revoked_at",
    "token-prefix",
]


def _state() -> tuple:
    return (
        sorted(DataSource.objects.values_list("pk", "name", "default_sensitive_action")),
        sorted(PolicyRule.objects.values_list("pk", "action")),
        sorted(GuardrailRule.objects.values_list("pk", "action")),
        AccessToken.objects.count(),
    )


@pytest.mark.parametrize("case", range(len(CASE_IDS)), ids=CASE_IDS)
def test_a_field_the_caller_may_not_set_is_refused_by_name_and_nothing_is_written(
    api_as, admin, written, case
):
    method, path, body, field, value = _cases(written)[case]
    client = api_as(admin)
    before = _state()

    refused = getattr(client, method)(path, {**body, field: value}, format="json")

    assert refused.status_code == 403, refused.content
    assert list(refused.json()["fields"]) == [field] and field in refused.json()["detail"]
    assert _state() == before
    # The probe is honest: the same request without the field is accepted.
    accepted = getattr(client, method)(path, body, format="json")
    assert accepted.status_code in (200, 201), accepted.content


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    return found.union(*(_subclasses(sub) for sub in cls.__subclasses__()))


def test_every_serializer_of_the_api_refuses_what_it_may_not_set():
    for module in API_MODULES:  # each defines (registers) its serializers
        importlib.import_module(module)
    # Never read from a JSON body: answers only, and a query string's (all text).
    exempt = {
        "config.api.ErrorSerializer",
        "config.health.VersionSerializer",
        "approvals.api.WaitQuerySerializer",
    }
    ours = ("governance", "approvals", "audit", "classification", "config")
    lax = sorted(
        f"{serializer.__module__}.{serializer.__qualname__}"
        for serializer in _subclasses(serializers.BaseSerializer)
        if serializer.__module__.split(".")[0] in ours and not issubclass(serializer, StrictStrings)
    )
    assert [name for name in lax if name not in exempt] == []
