"""The policy bundle: content, version, signature, grants, export and scale."""

from __future__ import annotations

import base64
import json
import time

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.core.management import CommandError, call_command
from django.utils import timezone

from governance.crypto import public_key_b64, signing_key_id
from governance.models import Column, ColumnTag, GuardrailRule, Sensitivity, Table, Tag
from governance.services import (
    column_tag_set_state,
    datasource_defaults_set,
    guardrail_rule_create,
    policy_bundle_build,
    policy_bundle_envelope,
    policy_rule_create,
    policy_rule_update,
)
from governance.services.bundles import canonical_json
from tests.factories import ColumnFactory, ColumnTagFactory, DataSourceFactory, TableFactory


def _verify(envelope: dict) -> None:
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64()))
    key.verify(base64.b64decode(envelope["signature"]), canonical_json(envelope["bundle"]))


@pytest.fixture
def shop_policies(admin, shop, customers_email, alice, analyst_group):
    """A mask rule on the email tag for analysts, a column deny and a guardrail."""
    mask = policy_rule_create(
        actor=admin,
        datasource=shop,
        name="mask emails",
        resource_kind="tag",
        tag=Tag.objects.get(name="PII.Email"),
        action="mask",
        mask_method="email",
        groups=[analyst_group],
        priority=200,
    )
    deny = policy_rule_create(
        actor=admin,
        datasource=shop,
        name="no card numbers",
        resource_kind="column",
        schema_name="public",
        table_name="payments",
        column_name="card_number",
        action="deny",
        everyone=True,
        users=[alice],
    )
    guardrail = guardrail_rule_create(
        actor=admin, datasource=shop, name="no drops", kinds=["truncate", "drop"], action="block"
    )
    return {"mask": mask, "deny": deny, "guardrail": guardrail}


def test_bundle_carries_every_field_in_the_agreed_format(shop, shop_policies, settings):
    settings.MASKING_KEY_ID = "k7"

    bundle = policy_bundle_build(datasource=shop)

    assert sorted(bundle) == sorted(
        [
            "format",
            "version",
            "generated_at",
            "datasource",
            "masking_key_id",
            "sensitivity_levels",
            "columns",
            "rules",
            "guardrails",
            "grants",
        ]
    )
    assert bundle["format"] == 1
    assert len(bundle["version"]) == 64
    assert timezone.datetime.fromisoformat(bundle["generated_at"])
    assert bundle["datasource"] == {
        "id": shop.pk,
        "name": "shop",
        "engine": "postgresql",
        "default_sensitive_action": "mask",
        "default_mask_method": "redact",
    }
    assert bundle["masking_key_id"] == "k7"
    assert bundle["sensitivity_levels"] == ["public", "internal", "confidential", "restricted"]
    assert bundle["columns"] == [
        {
            "schema": "public",
            "table": "customers",
            "column": "email",
            "tags": ["PII.Email"],
            "sensitivity": "confidential",
        }
    ]
    assert bundle["rules"] == [
        {
            "id": shop_policies["mask"].pk,
            "name": "mask emails",
            "priority": 200,
            "subjects": {"everyone": False, "users": [], "groups": ["analyst"]},
            "resource": {"kind": "tag", "tag": "PII.Email"},
            "action": "mask",
            "mask_method": "email",
            "mask_param": None,
            "allow_exact_lookups": False,
        },
        {
            "id": shop_policies["deny"].pk,
            "name": "no card numbers",
            "priority": 100,
            "subjects": {"everyone": True, "users": ["alice"], "groups": []},
            "resource": {
                "kind": "column",
                "schema": "public",
                "table": "payments",
                "column": "card_number",
            },
            "action": "deny",
            "mask_method": None,
            "mask_param": None,
            "allow_exact_lookups": False,
        },
    ]
    assert bundle["guardrails"] == [
        {
            "id": shop_policies["guardrail"].pk,
            "name": "no drops",
            "kinds": ["drop", "truncate"],
            "subjects": {"everyone": True, "users": [], "groups": []},
            "action": "block",
            "max_rows": None,
        },
    ]
    assert bundle["grants"] == []


def test_every_resource_kind_compiles_to_its_bundle_shape(admin, shop):
    common = {"actor": admin, "datasource": shop, "action": "deny", "everyone": True}
    policy_rule_create(name="a", resource_kind="datasource", **common)
    policy_rule_create(name="b", resource_kind="schema", schema_name="hr", **common)
    policy_rule_create(
        name="c", resource_kind="table", schema_name="hr", table_name="pay", **common
    )
    policy_rule_create(
        name="d", resource_kind="sensitivity", sensitivity=Sensitivity.RESTRICTED, **common
    )

    resources = [rule["resource"] for rule in policy_bundle_build(datasource=shop)["rules"]]

    assert resources == [
        {"kind": "datasource"},
        {"kind": "schema", "schema": "hr"},
        {"kind": "table", "schema": "hr", "table": "pay"},
        {"kind": "sensitivity", "level": "restricted"},
    ]


def test_only_active_tags_on_live_columns_reach_the_bundle(shop):
    table = TableFactory(datasource=shop, schema_name="crm", name="people")
    phone, rejected, dropped = (
        ColumnFactory(table=table, name=name) for name in ("phone", "nickname", "fax")
    )
    ColumnTagFactory(
        column=phone, tag=Tag.objects.get(name="PII.Phone"), state=ColumnTag.State.CONFIRMED
    )
    ColumnTagFactory(column=phone, tag=Tag.objects.get(name="PII.PersonName"))
    ColumnTagFactory(
        column=rejected, tag=Tag.objects.get(name="PII.PersonName"), state=ColumnTag.State.REJECTED
    )
    ColumnTagFactory(column=dropped, tag=Tag.objects.get(name="PII.Phone"))
    Column.objects.filter(pk=dropped.pk).update(dropped_at=timezone.now())
    gone_table = TableFactory(datasource=shop, name="old", dropped_at=timezone.now())
    ColumnTagFactory(column=ColumnFactory(table=gone_table, name="email"))
    ColumnTagFactory(column=ColumnFactory(name="email"))  # another datasource

    columns = policy_bundle_build(datasource=shop)["columns"]

    assert columns == [
        {
            "schema": "crm",
            "table": "people",
            "column": "phone",
            "tags": ["PII.PersonName", "PII.Phone"],
            "sensitivity": "confidential",
        }
    ]


def test_a_column_carries_its_highest_tag_sensitivity(shop):
    column = ColumnFactory(table=TableFactory(datasource=shop), name="notes")
    restricted = Tag.objects.filter(sensitivity=Sensitivity.RESTRICTED).first()
    ColumnTagFactory(column=column, tag=Tag.objects.get(name="PII.Email"))
    ColumnTagFactory(column=column, tag=restricted)

    [entry] = policy_bundle_build(datasource=shop)["columns"]

    assert entry["sensitivity"] == "restricted"


def test_disabled_rules_and_guardrails_stay_out_of_the_bundle(admin, shop, shop_policies):
    policy_rule_update(actor=admin, rule=shop_policies["mask"], enabled=False)
    GuardrailRule.objects.filter(pk=shop_policies["guardrail"].pk).update(enabled=False)

    bundle = policy_bundle_build(datasource=shop)

    assert [rule["name"] for rule in bundle["rules"]] == ["no card numbers"]
    assert bundle["guardrails"] == []


def test_global_guardrails_reach_every_datasource_but_others_do_not(admin, shop):
    other = DataSourceFactory(name="warehouse")
    guardrail_rule_create(
        actor=admin, datasource=None, name="global", kinds=["drop"], action="block"
    )
    guardrail_rule_create(
        actor=admin, datasource=other, name="theirs", kinds=["alter"], action="require_approval"
    )

    names = [g["name"] for g in policy_bundle_build(datasource=shop)["guardrails"]]

    assert names == ["global"]


# ---------------------------------------------------------------- version


def test_version_stays_the_same_when_nothing_changed(shop, shop_policies):
    first = policy_bundle_build(datasource=shop)
    time.sleep(0.01)
    second = policy_bundle_build(datasource=shop)

    assert first["generated_at"] != second["generated_at"]
    assert first["version"] == second["version"]


def test_version_changes_when_a_tag_is_rejected(admin, shop, shop_policies, customers_email):
    before = policy_bundle_build(datasource=shop)["version"]

    column_tag_set_state(
        actor=admin, column=customers_email, tag=Tag.objects.get(name="PII.Email"), state="rejected"
    )

    assert policy_bundle_build(datasource=shop)["version"] != before


def test_version_changes_when_a_tag_is_added(shop, shop_policies, customers_email):
    before = policy_bundle_build(datasource=shop)["version"]

    ColumnTagFactory(column=customers_email, tag=Tag.objects.get(name="PII.PersonName"))

    assert policy_bundle_build(datasource=shop)["version"] != before


def test_version_changes_when_a_rule_changes_and_back_when_it_is_restored(
    admin, shop, shop_policies
):
    original = policy_bundle_build(datasource=shop)["version"]

    policy_rule_update(actor=admin, rule=shop_policies["mask"], mask_method="hash")
    changed = policy_bundle_build(datasource=shop)["version"]
    policy_rule_update(actor=admin, rule=shop_policies["mask"], mask_method="email")

    assert changed != original
    assert policy_bundle_build(datasource=shop)["version"] == original


def test_version_changes_when_the_datasource_defaults_change(admin, shop):
    before = policy_bundle_build(datasource=shop)["version"]

    datasource_defaults_set(
        actor=admin, datasource=shop, default_sensitive_action="deny", default_mask_method="redact"
    )

    assert policy_bundle_build(datasource=shop)["version"] != before


def test_version_ignores_changes_to_other_datasources(admin, shop, shop_policies):
    before = policy_bundle_build(datasource=shop)["version"]
    other = DataSourceFactory(name="warehouse")

    policy_rule_create(
        actor=admin,
        datasource=other,
        name="x",
        resource_kind="datasource",
        action="deny",
        everyone=True,
    )
    ColumnTagFactory(column=ColumnFactory(table=TableFactory(datasource=other), name="email"))

    assert policy_bundle_build(datasource=shop)["version"] == before


# ---------------------------------------------------------------- grants


def test_bundle_carries_the_live_grants_from_approvals(shop, customers_grant, requester):
    before = policy_bundle_build(datasource=shop)["version"]
    grant = customers_grant()

    bundle = policy_bundle_build(datasource=shop)

    assert bundle["grants"] == [
        {
            "id": grant.pk,
            "identity": requester.username,
            "level": "read_unmasked",
            "scope": {"tables": ["public.customers"], "columns": [], "tags": []},
            "expires_at": grant.expires_at.isoformat(),
            "statement_fingerprint": None,
            "max_runs": None,
        }
    ]
    assert bundle["version"] != before


# ---------------------------------------------------------------- signature


def test_signature_verifies_with_the_public_key(shop, shop_policies):
    envelope = policy_bundle_envelope(datasource=shop)

    _verify(envelope)
    assert envelope["key_id"] == signing_key_id()


def test_signature_fails_when_the_bundle_is_tampered_with(shop, shop_policies):
    envelope = policy_bundle_envelope(datasource=shop)
    envelope["bundle"]["rules"][0]["action"] = "allow"

    with pytest.raises(InvalidSignature):
        _verify(envelope)


def test_the_agent_accepts_the_signed_envelope(shop, shop_policies):
    from agent.bundle import KeyRing, verify_envelope

    bundle = verify_envelope(policy_bundle_envelope(datasource=shop), KeyRing([public_key_b64()]))

    assert bundle.version == policy_bundle_build(datasource=shop)["version"]
    assert ("public", "customers", "email") in bundle.columns


# ---------------------------------------------------------------- export command


def test_export_bundle_writes_a_pretty_signed_envelope(shop, shop_policies, tmp_path):
    target = tmp_path / "shop.json"

    call_command("export_bundle", "shop", "--output", str(target))

    text = target.read_text()
    envelope = json.loads(text)
    assert text.startswith("{\n  ")
    assert envelope["bundle"]["datasource"]["name"] == "shop"
    _verify(envelope)


def test_export_bundle_prints_to_stdout_without_output(shop, capsys):
    call_command("export_bundle", "shop")

    assert json.loads(capsys.readouterr().out)["bundle"]["format"] == 1


def test_export_bundle_refuses_an_unknown_datasource(shop):
    with pytest.raises(CommandError, match="Unknown datasource 'nope'"):
        call_command("export_bundle", "nope")


# ---------------------------------------------------------------- scale


def test_bundle_with_100k_tagged_columns_takes_a_bounded_number_of_queries(
    shop, django_assert_max_num_queries
):
    now = timezone.now()
    tables = Table.objects.bulk_create(
        Table(
            datasource=shop,
            schema_name="big",
            name=f"t{index:04d}",
            first_seen_at=now,
            last_seen_at=now,
        )
        for index in range(1000)
    )
    columns = Column.objects.bulk_create(
        (
            Column(
                table=table,
                name=f"c{index:03d}",
                data_type="text",
                first_seen_at=now,
                last_seen_at=now,
            )
            for table in tables
            for index in range(100)
        ),
        batch_size=10_000,
    )
    email = Tag.objects.get(name="PII.Email")
    ColumnTag.objects.bulk_create(
        (
            ColumnTag(column=column, tag=email, source="scan", state="suggested")
            for column in columns
        ),
        batch_size=10_000,
    )

    started = time.perf_counter()
    with django_assert_max_num_queries(8):
        bundle = policy_bundle_build(datasource=shop)
    elapsed = time.perf_counter() - started

    assert len(bundle["columns"]) == 100_000
    assert elapsed < 10, f"bundle build took {elapsed:.1f}s"
