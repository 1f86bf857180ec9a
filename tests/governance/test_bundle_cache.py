"""Agents' polls are served from the last compiled bundle until one of its inputs changes.

These tests commit for real (transactional database): the bundle generation moves when a
write commits, exactly as in production. A cached answer is recognisable by its
``generated_at``, which only a fresh compilation changes.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from governance.connectors import ColumnInfo, TableInfo
from governance.models import ColumnTag, Tag
from governance.services import (
    catalog_reconcile,
    column_tag_set_state,
    policy_rule_create,
    policy_rule_update,
)
from governance.services.bundles import (
    bundle_generation,
    policy_bundle_build,
    policy_bundle_served,
)
from governance.tokens import token_create

pytestmark = pytest.mark.django_db(transaction=True)

BUNDLE = "/api/v1/agent/bundle?datasource=shop"


def _compiled_at(shop) -> str:
    return policy_bundle_served(datasource=shop)["bundle"]["generated_at"]


@pytest.fixture
def email_rule(admin, shop, customers_email, analyst_group):
    return policy_rule_create(
        actor=admin,
        datasource=shop,
        name="mask emails",
        resource_kind="tag",
        tag=Tag.objects.get(name="PII.Email"),
        action="mask",
        mask_method="email",
        groups=[analyst_group],
    )


def test_a_poll_with_nothing_changed_reuses_the_compiled_bundle(
    agent_client, shop, email_rule, django_assert_max_num_queries
):
    first = agent_client.get(BUNDLE)

    # The agent token, the datasource and the generation; no catalog query.
    with django_assert_max_num_queries(3):
        again = agent_client.get(BUNDLE, HTTP_IF_NONE_MATCH=first["ETag"])
    with django_assert_max_num_queries(3):
        full = agent_client.get(BUNDLE)

    assert first.status_code == 200 and again.status_code == 304
    assert full.json() == first.json()


def test_an_admin_rejecting_a_tag_reaches_the_next_poll(admin, shop, email_rule, customers_email):
    assert policy_bundle_served(datasource=shop)["bundle"]["columns"]

    column_tag_set_state(
        actor=admin, column=customers_email, tag=Tag.objects.get(name="PII.Email"), state="rejected"
    )

    assert policy_bundle_served(datasource=shop)["bundle"]["columns"] == []


def test_a_rule_edit_and_a_subject_added_each_reach_the_next_poll(admin, shop, email_rule, alice):
    before = policy_bundle_served(datasource=shop)["bundle"]
    policy_rule_update(actor=admin, rule=email_rule, mask_method="hash")
    edited = policy_bundle_served(datasource=shop)["bundle"]
    email_rule.users.add(alice)  # a bare m2m write, as the Django admin makes it
    widened = policy_bundle_served(datasource=shop)["bundle"]

    assert before["rules"][0]["mask_method"] == "email"
    assert edited["rules"][0]["mask_method"] == "hash"
    assert widened["rules"][0]["subjects"]["users"] == ["alice"]


def test_a_scan_that_finds_a_new_column_moves_the_generation(shop, customers_email):
    before = bundle_generation()
    compiled = _compiled_at(shop)
    found = [
        TableInfo(
            schema_name="public",
            name="customers",
            kind="table",
            row_estimate=10,
            columns=(
                ColumnInfo(name="email", data_type="text", is_nullable=True, ordinal=1),
                ColumnInfo(name="phone", data_type="text", is_nullable=True, ordinal=2),
            ),
        )
    ]

    with transaction.atomic():
        catalog_reconcile(datasource=shop, found_tables=found, scan_run=None, now=timezone.now())

    assert bundle_generation() > before
    assert _compiled_at(shop) != compiled


def test_a_rolled_back_write_leaves_the_cache_alone(admin, shop, email_rule):
    compiled, generation = _compiled_at(shop), bundle_generation()

    with pytest.raises(RuntimeError), transaction.atomic():
        policy_rule_update(actor=admin, rule=email_rule, mask_method="hash")
        raise RuntimeError("the admin's request failed")

    assert bundle_generation() == generation
    assert _compiled_at(shop) == compiled


def test_many_writes_in_one_transaction_move_the_generation_once(shop, customers_email):
    before = bundle_generation()

    with transaction.atomic():
        for tag in Tag.objects.all()[:5]:
            ColumnTag.objects.create(column=customers_email, tag=tag, source="manual")

    assert bundle_generation() == before + 1


def test_signing_in_does_not_recompile_bundles(shop, email_rule, alice, client):
    compiled = _compiled_at(shop)
    alice.set_password("correct horse battery")
    alice.save(update_fields=["password"])
    generation = bundle_generation()

    assert client.login(username="alice", password="correct horse battery")
    token_create(actor=alice, user=alice, name="psql")

    assert bundle_generation() == generation
    assert _compiled_at(shop) == compiled


def test_an_approved_grant_reaches_the_next_poll_and_leaves_it_when_it_expires(
    shop, customers_grant
):
    assert policy_bundle_served(datasource=shop)["bundle"]["grants"] == []
    grant = customers_grant()
    granted = policy_bundle_served(datasource=shop)["bundle"]["grants"]
    grant.expires_at = timezone.now() + timedelta(seconds=1)
    grant.save(update_fields=["expires_at"])
    expiring = policy_bundle_served(datasource=shop)["bundle"]["grants"]

    time.sleep(1.2)  # no write at all: the grant's own expiry ends the cached bundle

    assert [entry["id"] for entry in granted] == [grant.pk]
    assert [entry["id"] for entry in expiring] == [grant.pk]
    assert policy_bundle_served(datasource=shop)["bundle"]["grants"] == []


def test_a_write_behind_the_services_back_is_picked_up_within_the_cache_bound(
    shop, email_rule, settings
):
    settings.WARDEN_BUNDLE_CACHE_SECONDS = 1
    assert policy_bundle_served(datasource=shop)["bundle"]["columns"]

    ColumnTag.objects.update(state=ColumnTag.State.REJECTED)  # no signal, no generation
    stale = policy_bundle_served(datasource=shop)["bundle"]["columns"]
    time.sleep(1.1)

    assert stale  # the documented bound: up to WARDEN_BUNDLE_CACHE_SECONDS late
    assert policy_bundle_served(datasource=shop)["bundle"]["columns"] == []


def test_a_zero_cache_bound_compiles_every_poll(shop, email_rule, settings):
    settings.WARDEN_BUNDLE_CACHE_SECONDS = 0

    first = _compiled_at(shop)
    time.sleep(0.01)

    assert _compiled_at(shop) != first


def test_an_approval_compiles_only_the_grants_and_serves_what_a_full_build_would(
    shop, email_rule, customers_grant, django_assert_max_num_queries
):
    before = policy_bundle_served(datasource=shop)["bundle"]
    grant = customers_grant()

    # The counters and the grants: no column, rule or guardrail query.
    with django_assert_max_num_queries(2):
        after = policy_bundle_served(datasource=shop)["bundle"]

    full = policy_bundle_build(datasource=shop)
    assert [entry["id"] for entry in after["grants"]] == [grant.pk]
    assert after["version"] == full["version"] != before["version"]
    assert {**after, "generated_at": ""} == {**full, "generated_at": ""}


def test_a_rule_edit_committed_with_a_grant_recompiles_the_catalog_part(
    admin, shop, email_rule, customers_grant
):
    assert policy_bundle_served(datasource=shop)["bundle"]["rules"][0]["mask_method"] == "email"

    with transaction.atomic():
        grant = customers_grant()
        policy_rule_update(actor=admin, rule=email_rule, mask_method="hash")

    bundle = policy_bundle_served(datasource=shop)["bundle"]
    assert bundle["rules"][0]["mask_method"] == "hash"
    assert [entry["id"] for entry in bundle["grants"]] == [grant.pk]
