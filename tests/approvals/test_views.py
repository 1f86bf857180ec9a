"""HTML pages, and the review screen's impact: EXPLAIN against a real PostgreSQL datasource."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from django.utils import timezone

from approvals import services
from approvals.impact import statement_explain
from approvals.models import AccessRequest, Grant
from audit.models import AuditEvent
from governance.models import Engine
from tests import sources
from tests.factories import ColumnFactory, ColumnTagFactory, DataSourceFactory, TableFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def people_source(db):
    """A real PostgreSQL database with 150 people, catalogued with people.email as PII.Email."""
    with sources.postgres_database() as name:
        sources.postgres_people(name)
        with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={name}", autocommit=True) as c:
            c.execute("ANALYZE people")
        datasource = DataSourceFactory(
            name="people-db", engine=Engine.POSTGRESQL, database=name, username="postgres"
        )
        table = TableFactory(datasource=datasource, schema_name="public", name="people")
        ColumnFactory(table=table, name="id", data_type="integer")
        ColumnTagFactory(column=ColumnFactory(table=table, name="email", sensitivity=2))
        ColumnFactory(table=table, name="quantity", data_type="integer")
        yield datasource, name


def test_explain_gives_the_planners_row_estimate_without_running_the_statement(people_source):
    datasource, name = people_source
    estimate = statement_explain(datasource=datasource, sql="SELECT email FROM people")
    assert estimate["rows"] == 150 and estimate["node"] == "Seq Scan"
    deleted = statement_explain(datasource=datasource, sql="DELETE FROM people")
    assert "error" not in deleted
    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={name}") as connection:
        assert connection.execute("SELECT count(*) FROM people").fetchone()[0] == 150


def test_explain_refuses_several_statements_and_other_engines(people_source):
    datasource, _name = people_source
    assert (
        "one statement"
        in statement_explain(datasource=datasource, sql="SELECT 1; DROP TABLE people")["error"]
    )
    datasource.engine = Engine.SQLITE
    assert "PostgreSQL" in statement_explain(datasource=datasource, sql="SELECT 1")["error"]


def test_explain_failures_are_reported_not_raised(people_source):
    datasource, _name = people_source
    result = statement_explain(datasource=datasource, sql="SELECT nope FROM people")
    assert result["error"].startswith("EXPLAIN failed")


def test_the_review_screen_shows_statement_columns_tags_and_row_estimate(
    client, people_source, requester, reviewer
):
    datasource, _name = people_source
    access_request = services.request_create(
        actor=requester,
        datasource=datasource,
        scope={},
        level="read_unmasked",
        reason="Mailing list check",
        duration_minutes=30,
        statement="SELECT email, quantity FROM people WHERE quantity > 3",
    )
    client.force_login(reviewer)
    page = client.get(f"/approvals/{access_request.pk}/").content.decode()
    assert "SELECT email, quantity FROM people" in page
    assert "public.people.email" in page and "PII.Email" in page
    assert "Planner estimate" in page
    assert 'id="approve-form"' in page


def test_the_inbox_lists_what_to_review_and_my_requests(client, file_request, reviewer, requester):
    access_request = file_request()
    client.force_login(reviewer)
    page = client.get("/approvals/").content.decode()
    assert f'id="review-{access_request.pk}"' in page
    client.force_login(requester)
    page = client.get("/approvals/").content.decode()
    assert f'id="mine-{access_request.pk}"' in page and 'id="review-list"' not in page


def test_reading_the_inbox_and_a_request_page_never_expires_anything(
    client, file_request, reviewer
):
    access_request = file_request()
    AccessRequest.objects.filter(pk=access_request.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    client.force_login(reviewer)
    assert client.get("/approvals/").status_code == 200
    assert client.get(f"/approvals/{access_request.pk}/").status_code == 200
    access_request.refresh_from_db()
    assert access_request.state == "pending"
    assert not AuditEvent.objects.filter(action="access_request.expired").exists()
    assert services.requests_expire_due() == 1  # the periodic task does it


def test_an_outsider_cannot_see_a_request_page_and_anonymous_users_log_in_first(
    client, file_request, outsider
):
    access_request = file_request()
    assert client.get("/approvals/").status_code == 302
    client.force_login(outsider)
    assert client.get(f"/approvals/{access_request.pk}/").status_code == 404
    assert client.post(f"/approvals/{access_request.pk}/approve/").status_code == 404


def test_a_reviewer_approves_with_narrowing_from_the_page(client, file_request, reviewer):
    access_request = file_request(scope={"tables": ["public.customers", "public.orders"]})
    client.force_login(reviewer)
    response = client.post(
        f"/approvals/{access_request.pk}/approve/",
        {
            "tables": "public.orders",
            "columns": "",
            "tags": "",
            "comment": "orders only",
            "duration_minutes": "15",
        },
    )
    assert response.status_code == 302
    grant = Grant.objects.get(request=access_request)
    assert grant.scope["tables"] == ["public.orders"]
    assert (grant.expires_at - grant.starts_at).total_seconds() == 15 * 60


def test_a_requester_files_a_request_from_the_form(client, shop, requester):
    client.force_login(requester)
    response = client.post(
        "/approvals/new/",
        {
            "datasource": shop.pk,
            "tables": "public.orders",
            "columns": "",
            "tags": "PII.Email",
            "level": "read",
            "duration_minutes": "20",
            "reason": "Reconcile refunds",
            "statement": "",
        },
    )
    access_request = AccessRequest.objects.get()
    assert response.status_code == 302 and response.url == f"/approvals/{access_request.pk}/"
    assert access_request.scope == {
        "tables": ["public.orders"],
        "columns": [],
        "tags": ["PII.Email"],
    }


def test_a_refused_action_shows_a_message_instead_of_an_error(client, file_request, requester):
    access_request = file_request()
    client.force_login(requester)
    response = client.post(f"/approvals/{access_request.pk}/approve/", {}, follow=True)
    assert response.status_code == 200
    assert "own request" in response.content.decode()


def test_the_live_panel_fragment_renders_for_htmx(client, file_request, reviewer):
    access_request = file_request()
    client.force_login(reviewer)
    response = client.get(f"/approvals/{access_request.pk}/", HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.startswith('<div id="request-panel"') and "<html" not in body


def test_an_admin_sets_the_review_policy_from_the_page_and_others_cannot(
    client, shop, admin, reviewer
):
    from django.contrib.auth.models import Group

    dba = Group.objects.create(name="dba")
    url = f"/approvals/policies/{shop.pk}/"
    client.force_login(reviewer)
    assert client.get(url).status_code == 403
    client.force_login(admin)
    assert client.get(url).status_code == 200
    response = client.post(
        url,
        {
            "reviewer_groups": [dba.pk],
            "required_approvals": "2",
            "pending_expiry_minutes": "90",
            "max_grant_minutes": "",
            "expiry_warning_minutes": "10",
            "break_glass_enabled": "on",
            "break_glass_minutes": "30",
            "webhook_url": "http://127.0.0.1:9/hook",
            "notify_emails": "dpo@example.com, sec@example.com",
        },
    )
    assert response.status_code == 302
    policy = shop.review_policy
    assert policy.required_approvals == 2 and policy.break_glass_enabled
    assert list(policy.reviewer_groups.all()) == [dba]
    assert policy.notify_emails == ["dpo@example.com", "sec@example.com"]
