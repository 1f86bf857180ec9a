"""Policy, guardrail and defaults services: validation, permissions and audit events."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from config.errors import NotAllowed
from governance.models import GuardrailRule, PolicyRule, Sensitivity, Tag
from governance.services import (
    datasource_defaults_set,
    guardrail_rule_create,
    guardrail_rule_delete,
    guardrail_rule_update,
    guardrails_recommended_create,
    policy_bundle_build,
    policy_rule_create,
    policy_rule_delete,
    policy_rule_update,
)
from governance.services.policies import RECOMMENDED_GUARDRAILS


def _rule(admin, shop, **overrides):
    values = {
        "actor": admin,
        "datasource": shop,
        "name": "mask emails",
        "resource_kind": "tag",
        "tag": Tag.objects.get(name="PII.Email"),
        "action": "mask",
        "mask_method": "email",
        "everyone": True,
    }
    values.update(overrides)
    return policy_rule_create(**values)


# ---------------------------------------------------------------- policy rules


def test_admin_creates_a_rule_and_the_audit_trail_records_it(admin, shop, alice, analyst_group):
    rule = _rule(admin, shop, everyone=False, users=[alice], groups=[analyst_group])

    event = AuditEvent.objects.get(action="policy.created")
    assert rule.created_by == admin
    assert event.actor == "ada_admin"
    assert event.datasource_name == "shop"
    assert event.target_id == str(rule.pk)
    assert event.details["after"]["subjects"] == {
        "everyone": False,
        "users": ["alice"],
        "groups": ["analyst"],
    }
    assert event.details["after"]["resource"] == {"kind": "tag", "tag": "PII.Email"}


def test_service_accounts_can_be_rule_subjects(admin, shop, ai_agent):
    rule = _rule(admin, shop, everyone=False, users=[ai_agent], action="deny")

    assert list(rule.users.all()) == [ai_agent]


@pytest.mark.parametrize("person", ["reviewer", "auditor", "requester", "outsider"])
def test_only_admins_create_rules(request, shop, person):
    actor = request.getfixturevalue(person)

    with pytest.raises(NotAllowed):
        _rule(actor, shop)
    assert not PolicyRule.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"name": "  "}, "A name is required"),
        ({"action": "shred"}, "action must be one of"),
        ({"everyone": False}, "Choose the subjects"),
        ({"resource_kind": "galaxy"}, "resource kind must be one of"),
        ({"resource_kind": "schema"}, "A schema rule needs schema name"),
        ({"resource_kind": "table", "schema_name": "public"}, "A table rule needs table name"),
        (
            {"resource_kind": "column", "schema_name": "public", "table_name": "t"},
            "A column rule needs column name",
        ),
        ({"resource_kind": "tag", "tag": None}, "A tag rule needs a tag"),
        ({"resource_kind": "sensitivity"}, "A sensitivity rule needs a level"),
        ({"resource_kind": "sensitivity", "sensitivity": 9}, "A sensitivity rule needs a level"),
        ({"mask_method": "scramble"}, "mask method must be one of"),
        ({"mask_method": "email", "mask_param": 4}, "only applies to the last_n and partial"),
        ({"mask_method": "last_n", "mask_param": 999}, "from 0 to 64"),
        ({"priority": -1}, "priority must be a whole number"),
    ],
)
def test_invalid_rules_are_refused_with_a_reason(admin, shop, overrides, reason):
    with pytest.raises(ValueError, match=reason):
        _rule(admin, shop, **overrides)
    assert not AuditEvent.objects.filter(action="policy.created").exists()


def test_rule_names_are_unique_per_datasource(admin, shop):
    _rule(admin, shop)

    with pytest.raises(ValueError, match="already has a rule named 'mask emails'"):
        _rule(admin, shop)


def test_fields_the_resource_kind_does_not_use_are_cleared(admin, shop):
    rule = _rule(
        admin,
        shop,
        resource_kind="schema",
        schema_name=" hr ",
        table_name="pay",
        column_name="x",
        sensitivity=3,
    )

    assert (rule.schema_name, rule.table_name, rule.column_name) == ("hr", "", "")
    assert rule.tag is None and rule.sensitivity is None


def test_masking_fields_are_dropped_for_actions_other_than_mask(admin, shop):
    rule = _rule(admin, shop, action="deny", mask_method="last_n", mask_param=4)

    assert (rule.mask_method, rule.mask_param) == ("", None)


def test_last_n_rules_keep_their_parameter(admin, shop):
    rule = _rule(admin, shop, mask_method="last_n", mask_param=4)

    assert (rule.mask_method, rule.mask_param) == ("last_n", 4)


def test_updating_a_rule_records_before_and_after(admin, shop):
    rule = _rule(admin, shop)

    policy_rule_update(actor=admin, rule=rule, action="deny", priority=500)

    event = AuditEvent.objects.get(action="policy.updated")
    assert (rule.action, rule.priority) == ("deny", 500)
    assert event.details["before"]["action"] == "mask"
    assert event.details["before"]["mask_method"] == "email"
    assert event.details["after"]["action"] == "deny"
    assert event.details["after"]["mask_method"] is None
    assert event.details["after"]["priority"] == 500


def test_an_update_that_changes_nothing_is_not_audited(admin, shop):
    rule = _rule(admin, shop)

    policy_rule_update(actor=admin, rule=rule, name="mask emails")

    assert not AuditEvent.objects.filter(action="policy.updated").exists()


def test_an_invalid_update_leaves_the_rule_as_it_was(admin, shop):
    rule = _rule(admin, shop)

    with pytest.raises(ValueError, match="Choose the subjects"):
        policy_rule_update(actor=admin, rule=rule, everyone=False)

    rule.refresh_from_db()
    assert rule.everyone is True


def test_updates_refuse_unknown_fields(admin, shop):
    with pytest.raises(ValueError, match="Unknown rule field"):
        policy_rule_update(actor=admin, rule=_rule(admin, shop), datasource=None)


def test_deleting_a_rule_records_what_it_was(admin, shop):
    rule = _rule(admin, shop)

    policy_rule_delete(actor=admin, rule=rule)

    event = AuditEvent.objects.get(action="policy.deleted")
    assert event.details["before"]["name"] == "mask emails"
    assert not PolicyRule.objects.exists()


def test_non_admins_cannot_update_or_delete_rules(admin, shop, reviewer):
    rule = _rule(admin, shop)

    with pytest.raises(NotAllowed):
        policy_rule_update(actor=reviewer, rule=rule, action="allow")
    with pytest.raises(NotAllowed):
        policy_rule_delete(actor=reviewer, rule=rule)
    assert PolicyRule.objects.get().action == "mask"


def test_resource_label_reads_like_a_sentence(admin, shop):
    column = _rule(
        admin,
        shop,
        name="c",
        resource_kind="column",
        schema_name="public",
        table_name="customers",
        column_name="email",
    )
    level = _rule(
        admin, shop, name="s", resource_kind="sensitivity", sensitivity=Sensitivity.CONFIDENTIAL
    )

    assert column.resource_label == "column public.customers.email"
    assert level.resource_label == "sensitivity ≥ confidential"


# ---------------------------------------------------------------- guardrails


def test_admin_creates_a_guardrail_for_everyone_by_default(admin, shop):
    guardrail = guardrail_rule_create(
        actor=admin,
        datasource=shop,
        name="no drops",
        kinds=["truncate", "drop", "drop"],
        action="block",
    )

    event = AuditEvent.objects.get(action="guardrail.created")
    assert guardrail.kinds == ["drop", "truncate"]
    assert guardrail.everyone is True
    assert event.details["after"]["kinds"] == ["drop", "truncate"]
    assert event.datasource_name == "shop"


def test_a_guardrail_without_datasource_applies_to_all(admin):
    guardrail = guardrail_rule_create(
        actor=admin, datasource=None, name="global", kinds=["role"], action="require_approval"
    )

    assert guardrail.datasource is None
    assert AuditEvent.objects.get(action="guardrail.created").details["after"]["datasource"] is None


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"kinds": []}, "Pick at least one statement kind"),
        ({"kinds": "drop"}, "Pick at least one statement kind"),
        ({"kinds": ["drop", "nuke"]}, "Unknown statement kind"),
        ({"action": "deny"}, "action must be one of block, require_approval"),
        ({"everyone": False}, "Choose the subjects"),
        ({"name": ""}, "A name is required"),
    ],
)
def test_invalid_guardrails_are_refused_with_a_reason(admin, shop, overrides, reason):
    values = {
        "actor": admin,
        "datasource": shop,
        "name": "g",
        "kinds": ["drop"],
        "action": "block",
        **overrides,
    }

    with pytest.raises(ValueError, match=reason):
        guardrail_rule_create(**values)


def test_updating_and_deleting_a_guardrail_are_audited(admin, shop, alice):
    guardrail = guardrail_rule_create(
        actor=admin, datasource=shop, name="g", kinds=["drop"], action="block"
    )

    guardrail_rule_update(
        actor=admin, guardrail=guardrail, everyone=False, users=[alice], action="require_approval"
    )
    guardrail_rule_delete(actor=admin, guardrail=guardrail)

    updated = AuditEvent.objects.get(action="guardrail.updated")
    assert updated.details["before"]["subjects"]["everyone"] is True
    assert updated.details["after"]["subjects"] == {
        "everyone": False,
        "users": ["alice"],
        "groups": [],
    }
    assert AuditEvent.objects.get(action="guardrail.deleted").details["before"]["name"] == "g"
    assert not GuardrailRule.objects.exists()


def test_only_admins_manage_guardrails(shop, reviewer):
    with pytest.raises(NotAllowed):
        guardrail_rule_create(
            actor=reviewer, datasource=shop, name="g", kinds=["drop"], action="block"
        )


def test_recommended_guardrails_are_added_once(admin, shop):
    first = guardrails_recommended_create(actor=admin, datasource=shop)
    second = guardrails_recommended_create(actor=admin, datasource=shop)

    assert len(first) == len(RECOMMENDED_GUARDRAILS)
    assert second == []
    kinds = {kind for guardrail in first for kind in guardrail.kinds}
    assert {"drop", "truncate", "grant_revoke", "copy_program", "delete_without_where"} <= kinds
    assert AuditEvent.objects.filter(action="guardrail.created").count() == len(first)


# ---------------------------------------------------------------- datasource defaults


def test_admin_changes_the_sensitive_defaults_with_an_audit_event(admin, shop):
    datasource_defaults_set(
        actor=admin, datasource=shop, default_sensitive_action="deny", default_mask_method="hash"
    )

    shop.refresh_from_db()
    event = AuditEvent.objects.get(action="datasource.defaults_changed")
    assert (shop.default_sensitive_action, shop.default_mask_method) == ("deny", "hash")
    assert event.details == {
        "before": {"default_sensitive_action": "mask", "default_mask_method": "redact"},
        "after": {"default_sensitive_action": "deny", "default_mask_method": "hash"},
    }


@pytest.mark.parametrize(
    ("action", "method", "reason"),
    [
        ("block", "redact", "default action for sensitive columns must be one of"),
        ("mask", "rot13", "default mask method must be one of"),
    ],
)
def test_invalid_defaults_are_refused(admin, shop, action, method, reason):
    with pytest.raises(ValueError, match=reason):
        datasource_defaults_set(
            actor=admin,
            datasource=shop,
            default_sensitive_action=action,
            default_mask_method=method,
        )


def test_only_admins_change_defaults(shop, auditor):
    with pytest.raises(NotAllowed):
        datasource_defaults_set(
            actor=auditor,
            datasource=shop,
            default_sensitive_action="allow",
            default_mask_method="redact",
        )


def test_exact_lookups_are_kept_for_mask_rules_and_dropped_for_other_actions(admin, shop):
    masked = _rule(admin, shop, name="lookups", mask_method="email", allow_exact_lookups=True)
    denied = _rule(admin, shop, name="denied", action="deny", allow_exact_lookups=True)

    assert masked.allow_exact_lookups is True
    assert denied.allow_exact_lookups is False
    assert policy_bundle_build(datasource=shop)["rules"][0]["allow_exact_lookups"] is True
