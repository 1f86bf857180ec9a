"""Precedence and the "what would happen" preview, decided by the agent's own engine."""

from __future__ import annotations

import pytest

from governance.models import Sensitivity, Tag
from governance.services import (
    datasource_defaults_set,
    guardrail_rule_create,
    policy_preview,
    policy_rule_create,
)
from tests.factories import UserFactory

SELECT_EMAIL = "SELECT id, email FROM customers WHERE id = 1"


@pytest.fixture
def bob(db):
    return UserFactory(username="bob", roles=["requester"])


def _rule(admin, shop, name, action, **extra):
    values = {
        "resource_kind": "column",
        "schema_name": "public",
        "table_name": "customers",
        "column_name": "email",
        "everyone": True,
        **extra,
    }
    return policy_rule_create(actor=admin, datasource=shop, name=name, action=action, **values)


def _preview(shop, subject, sql=SELECT_EMAIL):
    return policy_preview(datasource=shop, subject=subject, sql=sql)


def test_a_sensitive_column_no_rule_matches_gets_the_datasource_default(
    shop, customers_email, alice
):
    preview = _preview(shop, alice)

    assert preview["action"] == "mask"
    assert preview["rule"] == "default"
    assert preview["masked_columns"] == [
        {"column": "public.customers.email", "method": "redact", "param": None, "rule": "default"}
    ]
    assert preview["identity"] == "alice"
    assert preview["groups"] == ["analyst", "requester"]


def test_a_deny_default_denies_sensitive_columns_no_rule_matches(
    admin, shop, customers_email, alice
):
    datasource_defaults_set(
        actor=admin, datasource=shop, default_sensitive_action="deny", default_mask_method="redact"
    )

    preview = _preview(shop, alice)

    assert preview["action"] == "deny"
    assert "public.customers.email" in preview["message"]


def test_deny_beats_require_approval_mask_and_allow(admin, shop, customers_email, alice):
    _rule(admin, shop, "allow", "allow", priority=900)
    _rule(admin, shop, "mask", "mask", mask_method="email", priority=800)
    _rule(admin, shop, "approval", "require_approval", priority=700)
    deny = _rule(admin, shop, "deny", "deny", priority=1)

    preview = _preview(shop, alice)

    assert preview["action"] == "deny"
    assert preview["rule"] == f"rule:{deny.pk}:deny"


def test_require_approval_beats_mask_and_allow(admin, shop, customers_email, alice):
    _rule(admin, shop, "allow", "allow")
    _rule(admin, shop, "mask", "mask", mask_method="email")
    _rule(admin, shop, "approval", "require_approval")

    assert _preview(shop, alice)["action"] == "hold"


def test_mask_beats_allow(admin, shop, customers_email, alice):
    _rule(admin, shop, "allow", "allow", priority=1000)
    _rule(admin, shop, "mask", "mask", mask_method="last_n", mask_param=4)

    preview = _preview(shop, alice)

    assert preview["action"] == "mask"
    assert preview["masked_columns"][0]["method"] == "last_n"
    assert preview["masked_columns"][0]["param"] == 4


def test_an_allow_rule_lifts_the_default_for_its_subjects_only(
    admin, shop, customers_email, alice, bob, analyst_group
):
    _rule(admin, shop, "analysts read emails", "allow", everyone=False, groups=[analyst_group])

    assert _preview(shop, alice)["action"] == "allow"
    assert _preview(shop, alice)["masked_columns"] == []
    assert _preview(shop, bob)["action"] == "mask"


def test_priority_picks_the_mask_method_among_mask_rules(admin, shop, customers_email, alice):
    _rule(admin, shop, "low", "mask", mask_method="hash", priority=10)
    _rule(admin, shop, "high", "mask", mask_method="email", priority=500)

    assert _preview(shop, alice)["masked_columns"][0]["method"] == "email"


def test_tag_rules_match_every_column_carrying_the_tag(admin, shop, customers_email, alice):
    policy_rule_create(
        actor=admin,
        datasource=shop,
        name="emails",
        resource_kind="tag",
        tag=Tag.objects.get(name="PII.Email"),
        action="deny",
        everyone=True,
    )

    assert _preview(shop, alice)["action"] == "deny"


@pytest.mark.parametrize(
    ("level", "expected"), [(Sensitivity.CONFIDENTIAL, "deny"), (Sensitivity.RESTRICTED, "mask")]
)
def test_sensitivity_rules_match_that_level_or_higher(
    admin, shop, customers_email, alice, level, expected
):
    policy_rule_create(
        actor=admin,
        datasource=shop,
        name="levels",
        resource_kind="sensitivity",
        sensitivity=level,
        action="deny",
        everyone=True,
    )

    assert _preview(shop, alice)["action"] == expected


def test_rules_for_a_service_account_apply_to_it(admin, shop, customers_email, ai_agent, alice):
    _rule(admin, shop, "no bots", "deny", everyone=False, users=[ai_agent])

    preview = _preview(shop, ai_agent)

    assert preview["action"] == "deny"
    assert preview["identity_kind"] == "service_account"
    assert _preview(shop, alice)["action"] == "mask"


def test_guardrails_block_their_statement_kinds(admin, shop, customers_email, alice):
    guardrail_rule_create(
        actor=admin, datasource=shop, name="no drops", kinds=["drop"], action="block"
    )

    preview = _preview(shop, alice, "DROP TABLE customers")

    assert preview["action"] == "deny"
    assert preview["guardrail_kinds"] == ["drop"]
    assert 'guardrail "no drops"' in preview["message"]


def test_guardrails_requiring_approval_hold_the_statement(admin, shop, alice):
    guardrail_rule_create(
        actor=admin,
        datasource=None,
        name="careful deletes",
        kinds=["delete_without_where"],
        action="require_approval",
    )

    assert _preview(shop, alice, "DELETE FROM orders")["action"] == "hold"


def test_unrelated_tables_are_allowed(shop, customers_email, alice):
    preview = _preview(shop, alice, "SELECT sku, price FROM products")

    assert preview["action"] == "allow"
    assert preview["tables_read"] == ["products"]


def test_a_statement_that_does_not_parse_is_refused_with_a_reason(shop, alice):
    with pytest.raises(ValueError, match="does not parse"):
        _preview(shop, alice, "SELEC nonsense FROM")


def test_an_empty_statement_is_refused(shop, alice):
    with pytest.raises(ValueError, match="Enter a SQL statement"):
        _preview(shop, alice, "   ")


def test_results_computed_from_a_masked_column_are_reported_as_redacted(
    shop, customers_email, alice
):
    preview = _preview(shop, alice, "SELECT id, email, lower(email) FROM customers")

    assert preview["action"] == "mask"
    assert preview["derived_outputs_redacted"] == [3]


def test_preview_refuses_filtering_on_a_masked_column_naming_column_and_clause(
    admin, shop, customers_email, alice
):
    _rule(admin, shop, "mask", "mask", mask_method="email")

    preview = _preview(shop, alice, "SELECT id FROM customers WHERE email LIKE 'a%'")

    assert preview["action"] == "deny"
    assert "public.customers.email cannot be used in WHERE" in preview["message"]


def test_preview_shows_an_exact_lookup_the_rule_allows(admin, shop, customers_email, alice):
    _rule(admin, shop, "mask", "mask", mask_method="email", allow_exact_lookups=True)

    preview = _preview(shop, alice, "SELECT id, email FROM customers WHERE email = 'a@b.c'")

    assert preview["action"] == "mask"
    assert preview["lookups"] == ["public.customers.email"]
    assert preview["rule"].startswith("lookup:public.customers.email")
    ranged = _preview(shop, alice, "SELECT id FROM customers WHERE email > 'a@b.c'")
    assert ranged["action"] == "deny"
