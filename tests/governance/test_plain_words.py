"""One vocabulary and plain words: validation in sentences, Block for deny, rules by name."""

from __future__ import annotations

import pytest
from django.template import Context, Template

from governance.models import PolicyAction

pytestmark = pytest.mark.django_db
NAME_RULE = "Use only letters, digits, hyphens and underscores, without spaces"


def test_a_datasource_name_with_a_space_is_refused_in_words(admin, client):
    client.force_login(admin)
    fields = {"name": "my shop", "engine": "sqlite", "database": "/tmp/words.sqlite3"}
    api = client.post("/api/v1/datasources/", fields, content_type="application/json")
    page = client.post("/datasources/new/", fields).content.decode()

    assert api.status_code == 400 and NAME_RULE in api.json()["fields"]["name"][0]
    assert NAME_RULE in page
    assert "slug" not in page.lower() and "slug" not in api.content.decode().lower()


def test_deny_reads_block_in_the_rule_form_and_the_trail(admin, client, shop):
    client.force_login(admin)
    form = client.get(f"/policies/rules/new/{shop.pk}/").content.decode()
    assert PolicyAction.DENY.label == "Block"
    assert '<option value="deny">Block</option>' in form and ">Deny<" not in form
    rendered = Template("{{ 'deny'|decision_label }} {{ 'allow'|decision_label }}").render(
        Context()
    )
    assert rendered == "Blocked Allowed"


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        (["admin"], '<a href="/policies/rules/7/edit/">mask-pii (#7)</a>'),
        (["auditor"], "mask-pii (#7)"),  # auditors cannot open the rule form: no link
    ],
)
def test_a_rule_label_reads_as_its_name(roles, expected):
    template = Template("{{ label|rule_ref:roles }}")
    assert template.render(Context({"label": "rule:7:mask-pii", "roles": roles})) == expected
    assert template.render(Context({"label": "default", "roles": roles})) == "default"
