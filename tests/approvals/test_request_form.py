"""The request form's picker and live check; the catalog a requester browses."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_the_picker_offers_names_of_the_chosen_datasource_only(client, requester, shop):
    client.force_login(requester)

    page = client.get(reverse("approvals:scope_options"), {"datasource": shop.pk, "q": "mail"})

    assert page.context["options"]["columns"] == ["public.customers.email"]
    assert page.context["options"]["tables"] == []
    assert b'data-scope-value="public.customers.email"' in page.content


def test_the_live_check_names_unknown_columns_and_summarises_known_ones(client, requester, shop):
    client.force_login(requester)
    url = reverse("approvals:scope_check")

    typo = client.post(url, {"datasource": shop.pk, "columns": "public.customers.emial"})
    known = client.post(url, {"datasource": shop.pk, "columns": "public.customers.email"})
    nothing = client.post(url, {"columns": "public.customers.email"})

    assert b"Not in the catalog of shop: public.customers.emial" in typo.content
    assert b"reaches 1 column in 1 table" in known.content and b"PII.Email" in known.content
    assert b"Choose a datasource first." in nothing.content


def test_people_who_cannot_request_get_no_form_and_no_button(client, reviewer, shop):
    client.force_login(reviewer)

    assert client.get(reverse("approvals:request_new")).status_code == 403
    catalog = client.get(reverse("catalog"))
    inbox = client.get(reverse("approvals:inbox"))

    assert catalog.status_code == 200
    assert b"Request access" not in catalog.content
    assert b"Request access" not in inbox.content


def test_requesters_browse_names_and_tags_but_not_column_evidence(client, requester, shop):
    client.force_login(requester)
    column = shop.tables.get(name="customers").columns.get(name="email")

    catalog = client.get(reverse("catalog"), {"q": "email"})

    assert b"public.customers.<strong>email</strong>" in catalog.content
    assert b"PII.Email" in catalog.content
    assert reverse("column_detail", args=[column.pk]).encode() not in catalog.content
    assert client.get(reverse("column_detail", args=[column.pk])).status_code == 403
    assert client.get("/api/v1/columns/").status_code == 403


def test_an_outsider_sees_no_catalog(client, outsider):
    client.force_login(outsider)

    assert client.get(reverse("catalog")).status_code == 403
    assert client.get(reverse("approvals:scope_options")).status_code == 403


def test_a_refusal_is_a_styled_page_naming_the_roles(client, reviewer):
    client.force_login(reviewer)

    page = client.get(reverse("approvals:request_new"))

    assert b"You cannot open this page" in page.content
    assert b"requester" in page.content and b"<nav" in page.content
