"""REST API for policies and guardrails: permission matrix, shapes, reasons on 400."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from governance.models import GuardrailRule, PolicyRule, Tag
from governance.services import guardrail_rule_create, policy_rule_create
from governance.services.bundles.build import policy_bundle_build

READERS = ["admin", "reviewer", "auditor"]
NOT_READERS = ["requester", "outsider", "ai_agent"]
NOT_WRITERS = ["reviewer", "auditor", "requester", "outsider", "ai_agent"]

EMAIL_RULE = {
    "datasource": "shop",
    "name": "mask emails",
    "priority": 200,
    "subjects": {"everyone": False, "users": ["alice"], "groups": ["analyst"]},
    "resource": {"kind": "tag", "tag": "PII.Email"},
    "action": "mask",
    "mask_method": "email",
}


@pytest.fixture
def email_rule(admin, shop):
    return policy_rule_create(
        actor=admin,
        datasource=shop,
        name="mask emails",
        resource_kind="tag",
        tag=Tag.objects.get(name="PII.Email"),
        action="mask",
        mask_method="email",
        everyone=True,
    )


@pytest.fixture
def no_drops(admin, shop):
    return guardrail_rule_create(
        actor=admin, datasource=shop, name="no drops", kinds=["drop"], action="block"
    )


def _reads(shop, rule, guardrail):
    return [
        "/api/v1/policies/",
        f"/api/v1/policies/{rule.pk}/",
        "/api/v1/guardrails/",
        f"/api/v1/guardrails/{guardrail.pk}/",
        f"/api/v1/policies/defaults/{shop.pk}/",
    ]


def _writes(shop, rule, guardrail):
    return [
        ("post", "/api/v1/policies/", EMAIL_RULE),
        ("patch", f"/api/v1/policies/{rule.pk}/", {"action": "allow"}),
        ("delete", f"/api/v1/policies/{rule.pk}/", None),
        ("post", "/api/v1/guardrails/", {"name": "g", "kinds": ["drop"], "action": "block"}),
        ("patch", f"/api/v1/guardrails/{guardrail.pk}/", {"action": "require_approval"}),
        ("delete", f"/api/v1/guardrails/{guardrail.pk}/", None),
        ("post", "/api/v1/guardrails/recommended/", {"datasource": "shop"}),
        (
            "put",
            f"/api/v1/policies/defaults/{shop.pk}/",
            {"default_sensitive_action": "deny", "default_mask_method": "redact"},
        ),
    ]


@pytest.mark.parametrize("person", READERS)
def test_admins_reviewers_and_auditors_read_policies(
    request, api_as, shop, email_rule, no_drops, person
):
    client = api_as(request.getfixturevalue(person))

    for url in _reads(shop, email_rule, no_drops):
        assert client.get(url).status_code == 200, url


@pytest.mark.parametrize("person", NOT_READERS)
def test_requesters_outsiders_and_agents_cannot_read_policies(
    request, api_as, shop, email_rule, no_drops, person
):
    client = api_as(request.getfixturevalue(person))

    for url in _reads(shop, email_rule, no_drops):
        assert client.get(url).status_code == 403, url


def test_anonymous_clients_get_401_everywhere(api_as, shop, email_rule, no_drops):
    client = api_as(None)

    for url in _reads(shop, email_rule, no_drops):
        assert client.get(url).status_code == 401, url
    for method, url, body in _writes(shop, email_rule, no_drops):
        assert getattr(client, method)(url, body, format="json").status_code == 401, url


@pytest.mark.parametrize("person", NOT_WRITERS)
def test_only_admins_write_policies(request, api_as, shop, alice, email_rule, no_drops, person):
    client = api_as(request.getfixturevalue(person))

    for method, url, body in _writes(shop, email_rule, no_drops):
        assert getattr(client, method)(url, body, format="json").status_code == 403, url
    assert PolicyRule.objects.get().action == "mask"
    assert GuardrailRule.objects.count() == 1


def test_outsider_with_a_token_cannot_read_policies(bearer_client, outsider, admin, email_rule):
    from governance.tokens import token_create

    _token, secret = token_create(actor=outsider, user=outsider, name="mine")

    assert bearer_client(secret).get("/api/v1/policies/").status_code == 403


def test_admin_creates_a_rule_in_the_bundle_shape(api_as, admin, shop, alice, analyst_group):
    response = api_as(admin).post("/api/v1/policies/", EMAIL_RULE, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["subjects"] == {"everyone": False, "users": ["alice"], "groups": ["analyst"]}
    assert body["resource"] == {"kind": "tag", "tag": "PII.Email"}
    assert (body["action"], body["mask_method"], body["priority"]) == ("mask", "email", 200)
    assert PolicyRule.objects.get(pk=body["id"]).created_by == admin


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"datasource": "nowhere"}, "Unknown datasource 'nowhere'"),
        ({"subjects": {"users": ["ghost"]}}, "Unknown user(s): ghost"),
        ({"subjects": {"groups": ["ghosts"]}}, "Unknown group(s): ghosts"),
        ({"resource": {"kind": "tag", "tag": "PII.Nope"}}, "Unknown tag 'PII.Nope'"),
        ({"resource": {"kind": "table", "schema": "public"}}, "A table rule needs table name"),
        ({"subjects": {"everyone": False}}, "Choose the subjects"),
        ({"mask_param": 4}, "only applies to the last_n and partial"),
    ],
)
def test_invalid_rules_get_400_with_the_reason(
    api_as, admin, shop, alice, analyst_group, change, reason
):
    response = api_as(admin).post("/api/v1/policies/", {**EMAIL_RULE, **change}, format="json")

    assert response.status_code == 400
    assert reason in response.json()["detail"]


def test_malformed_bodies_get_field_errors(api_as, admin, shop):
    response = api_as(admin).post(
        "/api/v1/policies/", {"name": "x", "action": "explode"}, format="json"
    )

    assert response.status_code == 400
    assert {"datasource", "resource", "action", "subjects"} <= set(response.json()["fields"])


def test_admin_patches_a_rule_and_the_change_is_audited(api_as, admin, email_rule):
    response = api_as(admin).patch(
        f"/api/v1/policies/{email_rule.pk}/",
        {
            "resource": {"kind": "sensitivity", "level": "restricted"},
            "action": "deny",
        },
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["resource"] == {"kind": "sensitivity", "level": "restricted"}
    assert response.json()["mask_method"] is None
    event = AuditEvent.objects.get(action="policy.updated")
    assert event.details["before"]["resource"] == {"kind": "tag", "tag": "PII.Email"}


def test_a_rule_cannot_move_to_another_datasource(api_as, admin, email_rule):
    from tests.factories import DataSourceFactory

    DataSourceFactory(name="warehouse")

    response = api_as(admin).patch(
        f"/api/v1/policies/{email_rule.pk}/", {"datasource": "warehouse"}, format="json"
    )

    assert response.status_code == 400
    assert "cannot move" in response.json()["detail"]


def test_admin_deletes_a_rule(api_as, admin, email_rule):
    response = api_as(admin).delete(f"/api/v1/policies/{email_rule.pk}/")

    assert response.status_code == 204
    assert not PolicyRule.objects.exists()


def test_rules_can_be_filtered_by_datasource(api_as, admin, reviewer, email_rule):
    from tests.factories import DataSourceFactory

    DataSourceFactory(name="warehouse")
    client = api_as(reviewer)

    assert [r["name"] for r in client.get("/api/v1/policies/?datasource=shop").json()] == [
        "mask emails"
    ]
    assert client.get("/api/v1/policies/?datasource=warehouse").json() == []
    assert client.get("/api/v1/policies/?datasource=nope").json() == []


def test_a_missing_rule_is_404(api_as, admin, shop):
    assert api_as(admin).get("/api/v1/policies/999999/").status_code == 404


def test_admin_creates_a_global_guardrail_for_everyone_by_default(api_as, admin):
    response = api_as(admin).post(
        "/api/v1/guardrails/",
        {
            "name": "no programs",
            "kinds": ["copy_program"],
            "action": "block",
        },
        format="json",
    )

    assert response.status_code == 201
    assert response.json()["datasource"] is None
    assert response.json()["subjects"] == {"everyone": True, "users": [], "groups": []}


def test_a_row_limit_guardrail_carries_its_limit_to_the_bundle(api_as, admin, shop):
    response = api_as(admin).post(
        "/api/v1/guardrails/",
        {
            "datasource": "shop",
            "name": "large writes",
            "kinds": ["rows_over_limit"],
            "action": "require_approval",
            "max_rows": 5000,
        },
        format="json",
    )

    assert response.status_code == 201 and response.json()["max_rows"] == 5000
    (guardrail,) = policy_bundle_build(datasource=shop)["guardrails"]
    assert guardrail["kinds"] == ["rows_over_limit"] and guardrail["max_rows"] == 5000


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"kinds": ["rows_over_limit"]}, "rows_over_limit needs max_rows"),
        ({"kinds": ["drop"], "max_rows": 10}, "max_rows applies only to the rows_over_limit"),
    ],
)
def test_a_row_limit_needs_its_kind_and_the_kind_its_limit(api_as, admin, shop, body, reason):
    response = api_as(admin).post(
        "/api/v1/guardrails/",
        {"datasource": "shop", "name": "g", "action": "block", **body},
        format="json",
    )

    assert response.status_code == 400
    assert reason in response.json()["detail"] and "max_rows" in response.json()["fields"]


def test_a_negative_row_limit_is_refused(api_as, admin, shop):
    response = api_as(admin).post(
        "/api/v1/guardrails/",
        {"name": "g", "kinds": ["rows_over_limit"], "action": "block", "max_rows": -1},
        format="json",
    )

    assert response.status_code == 400 and "max_rows" in response.json()["fields"]


def test_unknown_guardrail_kinds_are_refused(api_as, admin, shop):
    response = api_as(admin).post(
        "/api/v1/guardrails/",
        {
            "datasource": "shop",
            "name": "g",
            "kinds": ["nuke"],
            "action": "block",
        },
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["fields"] == {"kinds.0": ['"nuke" is not a valid choice.']}


def test_admin_patches_and_deletes_a_guardrail(api_as, admin, no_drops, alice):
    client = api_as(admin)

    patched = client.patch(
        f"/api/v1/guardrails/{no_drops.pk}/",
        {
            "subjects": {"users": ["alice"]},
            "kinds": ["drop", "truncate"],
        },
        format="json",
    )
    deleted = client.delete(f"/api/v1/guardrails/{no_drops.pk}/")

    assert patched.json()["subjects"] == {"everyone": False, "users": ["alice"], "groups": []}
    assert patched.json()["kinds"] == ["drop", "truncate"]
    assert deleted.status_code == 204


def test_admin_adds_recommended_guardrails_over_the_api(api_as, admin, shop):
    response = api_as(admin).post(
        "/api/v1/guardrails/recommended/", {"datasource": "shop"}, format="json"
    )

    assert response.status_code == 201
    assert len(response.json()) >= 5


def test_admin_sets_the_defaults_and_bad_values_are_refused(api_as, admin, shop):
    client = api_as(admin)
    url = f"/api/v1/policies/defaults/{shop.pk}/"

    ok = client.put(
        url,
        {"default_sensitive_action": "require_approval", "default_mask_method": "hash"},
        format="json",
    )
    bad = client.put(
        url, {"default_sensitive_action": "explode", "default_mask_method": "hash"}, format="json"
    )

    assert ok.json() == {
        "default_sensitive_action": "require_approval",
        "default_mask_method": "hash",
    }
    assert bad.status_code == 400


# ---------------------------------------------------------------- preview


@pytest.mark.parametrize("person", READERS)
def test_readers_preview_a_decision(
    request, api_as, shop, customers_email, alice, email_rule, person
):
    response = api_as(request.getfixturevalue(person)).post(
        "/api/v1/policies/preview/",
        {
            "datasource": "shop",
            "subject": "alice",
            "sql": "SELECT email FROM customers",
        },
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["action"] == "mask"
    assert response.json()["masked_columns"][0]["method"] == "email"


@pytest.mark.parametrize("person", NOT_READERS)
def test_others_cannot_preview(request, api_as, shop, alice, person):
    response = api_as(request.getfixturevalue(person)).post(
        "/api/v1/policies/preview/",
        {
            "datasource": "shop",
            "subject": "alice",
            "sql": "SELECT 1",
        },
        format="json",
    )

    assert response.status_code == 403


def test_preview_of_bad_sql_or_unknown_subject_is_400(api_as, admin, shop, alice):
    client = api_as(admin)

    bad_sql = client.post(
        "/api/v1/policies/preview/",
        {"datasource": "shop", "subject": "alice", "sql": "SELEC"},
        format="json",
    )
    ghost = client.post(
        "/api/v1/policies/preview/",
        {"datasource": "shop", "subject": "ghost", "sql": "SELECT 1"},
        format="json",
    )

    assert bad_sql.status_code == 400 and "does not parse" in bad_sql.json()["detail"]
    assert ghost.status_code == 400 and "ghost" in ghost.json()["detail"]
