"""The catalog browser, tag curation and its API."""

from __future__ import annotations

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from governance.models import Column, ColumnTag, Tag
from tests.factories import ColumnFactory, ColumnTagFactory, DataSourceFactory, TableFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def email_suggestion():
    return ColumnTagFactory(column=ColumnFactory(name="contact_email"))


def test_catalog_filters_by_tag_state_and_search(admin, client, email_suggestion):
    ColumnFactory(name="price", table=email_suggestion.column.table)
    client.force_login(admin)
    page = client.get("/catalog/", {"tag": "PII.Email", "state": "suggested"}).content.decode()
    assert "contact_email" in page and "price" not in page
    page = client.get("/catalog/", {"q": "pric"}).content.decode()
    assert "price" in page and "contact_email" not in page
    page = client.get("/catalog/", {"state": "untagged"}).content.decode()
    assert "price" in page and "contact_email" not in page


def test_bulk_confirm_curates_columns_and_audits(admin, client, email_suggestion):
    client.force_login(admin)
    response = client.post(
        "/catalog/review/", {"column_tag": [email_suggestion.pk], "state": "confirmed"}
    )
    assert response.status_code == 302
    email_suggestion.refresh_from_db()
    assert email_suggestion.state == ColumnTag.State.CONFIRMED
    assert email_suggestion.reviewed_by == admin
    assert Column.objects.get(pk=email_suggestion.column_id).curated_at is not None
    event = AuditEvent.objects.get(action="tag.confirmed")
    assert event.details["tag"] == "PII.Email"
    assert event.details["after"][0]["state"] == "confirmed"


def test_rejected_tags_lower_the_column_sensitivity(admin, client, email_suggestion):
    column = email_suggestion.column
    column.sensitivity = 2
    column.save()
    client.force_login(admin)
    client.post(f"/catalog/columns/{column.pk}/tags/reject/", {"tag": "PII.Email"})
    column.refresh_from_db()
    assert column.sensitivity is None


def test_admin_adds_tag_through_the_api(admin, client):
    column = ColumnFactory(name="notes")
    client.force_login(admin)
    response = client.post(
        f"/api/v1/columns/{column.pk}/tags/",
        {"tag": "PHI.FreeText", "state": "confirmed"},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    tags = response.json()["tags"]
    assert tags[0]["tag"] == "PHI.FreeText" and tags[0]["source"] == "admin"
    assert response.json()["sensitivity"] == "restricted"
    removal = client.delete(f"/api/v1/columns/{column.pk}/tags/?tag=PHI.FreeText")
    assert removal.status_code == 204
    assert not ColumnTag.objects.filter(column=column).exists()


def test_unknown_tag_is_a_clear_400(admin, client):
    column = ColumnFactory()
    client.force_login(admin)
    response = client.post(
        f"/api/v1/columns/{column.pk}/tags/", {"tag": "PII.Nope"}, content_type="application/json"
    )
    assert response.status_code == 400
    assert "tag" in response.json()["fields"]


@pytest.mark.parametrize("person", ["reviewer", "auditor", "requester", "outsider"])
def test_only_admins_curate_tags(person, request, client, email_suggestion):
    client.force_login(request.getfixturevalue(person))
    column = email_suggestion.column
    assert (
        client.post(f"/catalog/columns/{column.pk}/tags/confirm/", {"tag": "PII.Email"}).status_code
        == 403
    )
    assert (
        client.post(
            f"/api/v1/columns/{column.pk}/tags/",
            {"tag": "PII.Email"},
            content_type="application/json",
        ).status_code
        == 403
    )
    assert (
        client.post(
            "/api/v1/column-tags/bulk-review/",
            {"ids": [email_suggestion.pk], "state": "rejected"},
            content_type="application/json",
        ).status_code
        == 403
    )
    email_suggestion.refresh_from_db()
    assert email_suggestion.state == ColumnTag.State.SUGGESTED


@pytest.mark.parametrize(
    ("person", "page", "api"),
    [("auditor", 200, 200), ("requester", 200, 403), ("outsider", 403, 403)],
)
def test_catalog_is_for_catalog_readers_and_the_page_also_for_requesters(
    person, page, api, request, client
):
    client.force_login(request.getfixturevalue(person))
    assert client.get("/catalog/").status_code == page
    assert client.get("/api/v1/columns/").status_code == api


def test_catalog_page_and_api_stay_constant_in_queries_with_many_columns(
    admin, client, django_assert_max_num_queries
):
    datasource = DataSourceFactory()
    now = timezone.now()
    tables = [TableFactory(datasource=datasource, name=f"t{index}") for index in range(20)]
    columns = Column.objects.bulk_create(
        Column(
            table=tables[index % 20],
            name=f"c{index}",
            data_type="text",
            ordinal=index,
            first_seen_at=now,
            last_seen_at=now,
        )
        for index in range(20_000)
    )
    email = Tag.objects.get(name="PII.Email")
    ColumnTag.objects.bulk_create(
        ColumnTag(column=column, tag=email, source="scan", state="suggested", confidence=0.9)
        for column in columns[::7]
    )
    client.force_login(admin)
    with django_assert_max_num_queries(12):
        response = client.get("/catalog/", {"tag": "PII.Email", "page": 3})
    assert response.status_code == 200 and "2858 columns" in response.content.decode()
    with django_assert_max_num_queries(10):
        response = client.get("/api/v1/columns/", {"q": "c1", "limit": 50})
    assert response.status_code == 200 and len(response.json()["results"]) == 50


def test_a_malformed_filter_is_a_clear_400(admin, client):
    client.force_login(admin)
    response = client.get("/api/v1/columns/", {"datasource": "abc"})
    assert response.status_code == 400
    assert response.json()["fields"] == {"datasource": ["A valid integer is required."]}
