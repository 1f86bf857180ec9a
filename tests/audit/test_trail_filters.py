"""The trail filtered by a tag, a datasource or filters no index serves: fast however long the
trail, and the page says what it searched and how many events match in all."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit import selectors
from audit.counts import counts_rebuild, tag_index_build
from audit.models import AuditEventTag
from audit.services import event_record, events_append_count

pytestmark = pytest.mark.django_db


def _retired_then_busy(old: int = 300, new: int = 9_000) -> None:
    """`old` events of a retired datasource that read a PII.SSN column, then `new` others."""
    legacy = {
        "actor": "retired_job",
        "datasource_name": "legacy",
        "action": "query.executed",
        "decision": "allow",
        "details": {"column_tags": {"people.ssn": ["PII.SSN"]}, "tags": ["PII.SSN"]},
    }
    busy = [
        {
            "actor": f"user_{index % 20}",
            "datasource_name": "shop",
            "action": "query.executed",
            "decision": "allow",
            "details": {"tags": ["PII.Email"], "channel": "sql"},
        }
        for index in range(new)
    ]
    entries = [legacy] * old + busy
    events_append_count(entries=[{**entry, "actor_kind": "user"} for entry in entries])


def _trail_plans(queries: list[dict[str, str]]) -> list[str]:
    """EXPLAIN of every statement the page ran against the trail or its tag index."""
    plans = []
    with connection.cursor() as cursor:
        for query in queries:
            sql = query["sql"]
            if sql.startswith("SELECT") and re.search(r"audit_auditevent(tag)?\b", sql):
                cursor.execute(f"EXPLAIN {sql}")
                plans.append("\n".join(row[0] for row in cursor.fetchall()))
    return plans


@pytest.mark.django_db(transaction=True)  # VACUUM runs outside a transaction
@pytest.mark.parametrize(
    ("params", "index"),
    [
        ({"tag": "PII.SSN"}, "Index Only Scan Backward using audit_auditeventtag_pkey"),
        ({"datasource": "legacy"}, "Index Only Scan Backward using audit_datasource_sequence_idx"),
    ],
)
def test_the_trail_filtered_by_a_tag_or_datasource_reads_its_own_index_range(
    client, auditor, params, index, django_assert_max_num_queries
):
    """A filter matching nothing recent read every newer event (details text for a tag)."""
    _retired_then_busy()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE audit_auditevent")
        cursor.execute("VACUUM ANALYZE audit_auditeventtag")
    client.force_login(auditor)

    with django_assert_max_num_queries(9), CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("audit:event_list"), params)
    plans = _trail_plans(queries.captured_queries)

    page = response.context["page"]
    assert [event.sequence for event in page.events] == list(range(300, 250, -1))
    assert page.older_than == 251 and page.searched is None
    assert response.context["total"] == 300 and b"300 events match." in response.content
    assert any(index in plan for plan in plans), plans
    assert not any("Seq Scan" in plan for plan in plans), plans


def test_the_tag_filter_finds_the_events_that_touched_the_tag_and_counts_them_alike(
    client, auditor, admin
):
    """What the list finds and the count says are the same events: a query that read a
    column carrying the tag, a tag change; not a reason that merely mentions the name."""
    read = {"column_tags": {"public.customers.email": ["PII.Email"]}, "tags": []}
    event_record(actor=admin, action="query.executed", decision="mask", details=read)
    event_record(actor=admin, action="tag.added", details={"tag": "PII.Email"})
    event_record(actor=admin, action="access_request.created", details={"reason": "PII.Email"})
    event_record(actor=admin, action="tag.added", details={"tag": "PII.Phone"})
    client.force_login(auditor)

    response = client.get(reverse("audit:event_list"), {"tag": "PII.Email"})

    listed = [event.action for event in response.context["page"].events]
    assert listed == ["tag.added", "query.executed"]
    assert response.context["total"] == 2


def test_the_tag_index_is_built_for_stored_events_and_follows_a_prune(admin):
    tagged = event_record(actor=admin, action="tag.added", details={"tag": "PII.Email"})
    event_record(actor=admin, action="policy.updated", details={"before": 1})
    stored = set(AuditEventTag.objects.values_list("tag", "sequence"))
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditeventtag")

    tag_index_build()
    tag_index_build()  # a second build adds nothing twice

    assert stored == {("PII.Email", tagged.sequence)}
    assert set(AuditEventTag.objects.values_list("tag", "sequence")) == stored


def test_a_recount_leaves_the_tag_index_alone(admin):
    """Migration 0007 recounts stored events with this code before 0009 creates the index."""
    event_record(actor=admin, action="tag.added", details={"tag": "PII.Email"})
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditeventtag")

    counts_rebuild()

    assert not AuditEventTag.objects.exists()


@pytest.fixture
def small_window(monkeypatch):
    monkeypatch.setattr(selectors, "SEARCH_WINDOW", 100)
    monkeypatch.setattr(selectors, "SEARCH_SECONDS", 0)  # one window per page


def test_filters_no_index_serves_search_a_window_and_offer_the_older_events(
    client, auditor, small_window, django_assert_max_num_queries
):
    """channel=mcp with the only MCP calls old: the first page searches the newest 100
    events, finds none, says so with the true total, and links to the older ones."""
    client.force_login(auditor)  # event 1: auth.login
    old = {"actor": "bot", "action": "query.executed", "details": {"channel": "mcp"}}
    new = {"actor": "ann", "action": "query.executed", "details": {"channel": "sql"}}
    events_append_count(entries=[{**old, "actor_kind": "user"}] * 3)  # 2-4
    events_append_count(entries=[{**new, "actor_kind": "user"}] * 250)  # 5-254
    url = reverse("audit:event_list")

    with django_assert_max_num_queries(9):
        first = client.get(url, {"channel": "mcp"})
    second = client.get(url, {"channel": "mcp", "before": first.context["page"].older_than})
    third = client.get(url, {"channel": "mcp", "before": second.context["page"].older_than})
    back = client.get(url, {"channel": "mcp", "after": third.context["page"].newer_than})

    assert first.context["page"].searched == (155, 254)
    assert first.context["page"].events == [] and first.context["page"].older_than == 155
    assert "3 events match; this page searched events #155\u2013#254 only" in first.content.decode()
    assert b"search older events" in first.content
    assert second.context["page"].searched == (55, 154)
    assert [event.sequence for event in third.context["page"].events] == [4, 3, 2]
    assert third.context["page"].searched is None and third.context["page"].older_than is None
    assert back.context["page"].searched == (5, 104) and back.context["page"].events == []
    assert b"search newer events" in back.content


def test_two_filters_together_are_searched_in_a_window_too(client, auditor, small_window):
    client.force_login(auditor)  # event 1
    _retired_then_busy(old=3, new=250)  # 2-4, 5-254

    response = client.get(reverse("audit:event_list"), {"tag": "PII.SSN", "decision": "allow"})

    page = response.context["page"]
    assert page.searched == (155, 254) and page.events == []
    assert response.context["total"] == 3


def test_a_filter_the_counts_say_matches_nothing_does_not_search_the_trail(client, auditor):
    _retired_then_busy(old=3, new=30)
    client.force_login(auditor)

    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("audit:event_list"), {"channel": "mcp"})

    assert response.context["total"] == 0 and response.context["page"].events == []
    assert not [q for q in queries.captured_queries if 'audit_auditevent"' in q["sql"]]
    assert b"No events match." in response.content


@pytest.mark.django_db(transaction=True)  # the migrations cannot run in a transaction
@pytest.mark.parametrize(
    ("migration", "statements"),
    [
        ("0008", ["CREATE INDEX CONCURRENTLY", "DROP INDEX CONCURRENTLY"]),
        ("0010", ["CREATE INDEX CONCURRENTLY"]),
    ],
)
def test_trail_indexes_are_built_without_blocking_appends(migration, statements):
    out = StringIO()
    call_command("sqlmigrate", "audit", migration, stdout=out)

    sql = out.getvalue()
    assert "BEGIN;" not in sql
    for statement in statements:
        assert statement in sql, sql
    assert 'CREATE INDEX "' not in sql


def test_the_dashboard_lists_blocked_statements_only_when_the_counts_have_some(client, auditor):
    """With none counted (channel=mcp here) it does not walk every denial to find none."""
    denied = {"actor": "ann", "action": "query.executed", "decision": "deny", "actor_kind": "user"}
    events_append_count(entries=[{**denied, "details": {"channel": "sql"}}] * 5)
    client.force_login(auditor)
    url = reverse("audit:dashboard")

    with CaptureQueriesContext(connection) as queries:
        none = client.get(url, {"channel": "mcp"})
    trail_reads = [q for q in queries.captured_queries if 'FROM "audit_auditevent"' in q["sql"]]
    some = client.get(url, {"channel": "sql"})  # (a new request empties the query log)

    assert none.context["data"]["blocked"] == [] and none.context["data"]["blocked_count"] == 0
    assert trail_reads == []
    assert len(some.context["data"]["blocked"]) == 5


def test_the_api_answers_a_filter_the_counts_say_matches_nothing_without_the_trail(client, auditor):
    called = {"actor": "ann", "action": "query.executed", "actor_kind": "user"}
    events_append_count(entries=[{**called, "details": {"channel": "sql"}}] * 3)
    client.force_login(auditor)

    with CaptureQueriesContext(connection) as queries:
        none = client.get("/api/v1/audit/events/", {"channel": "mcp"})
    trail_reads = [q for q in queries.captured_queries if 'FROM "audit_auditevent"' in q["sql"]]
    some = client.get("/api/v1/audit/events/", {"channel": "sql"})

    assert none.status_code == 200 and none.json()["results"] == []
    assert trail_reads == []
    assert len(some.json()["results"]) == 3


def test_the_api_searches_the_same_window_and_its_next_link_goes_on(
    client, auditor, small_window, django_assert_max_num_queries
):
    """The API pages like the trail page: a filter no index serves reads one window per
    request, says which, and `next` searches on until every match was returned once."""
    client.force_login(auditor)  # event 1: auth.login
    old = {"actor": "bot", "action": "query.executed", "details": {"channel": "mcp"}}
    new = {"actor": "ann", "action": "query.executed", "details": {"channel": "sql"}}
    events_append_count(entries=[{**old, "actor_kind": "user"}] * 3)  # 2-4
    events_append_count(entries=[{**new, "actor_kind": "user"}] * 250)  # 5-254

    with django_assert_max_num_queries(9):
        first = client.get("/api/v1/audit/events/", {"channel": "mcp", "page_size": 2}).json()
    pages = [first]
    while pages[-1]["next"]:
        pages.append(client.get(pages[-1]["next"]).json())
    back = client.get(pages[-1]["previous"]).json()

    assert first["results"] == []
    assert first["searched"] == {"first_sequence": 155, "last_sequence": 254}
    assert "channel=mcp" in first["next"] and "before=155" in first["next"]
    assert [[event["sequence"] for event in page["results"]] for page in pages] == [
        [],
        [],
        [4, 3],
        [2],
    ]
    assert [page["searched"] for page in pages[2:]] == [None, None]
    assert [event["sequence"] for event in back["results"]] == [4, 3]


def test_the_api_pages_an_indexed_filter_without_a_window(client, auditor, small_window):
    client.force_login(auditor)
    _retired_then_busy(old=3, new=250)

    page = client.get("/api/v1/audit/events/", {"tag": "PII.SSN"}).json()

    assert page["searched"] is None and page["next"] is None
    assert [event["sequence"] for event in page["results"]] == [4, 3, 2]


def test_a_short_page_searches_on_while_time_allows(client, auditor, small_window, monkeypatch):
    """Given the time, the page searches window after window: sparse old matches come without
    a click per window, and the page says which events it searched in all."""
    monkeypatch.setattr(selectors, "SEARCH_SECONDS", 60)
    client.force_login(auditor)  # event 1: auth.login
    old = {"actor": "bot", "action": "query.executed", "details": {"channel": "mcp"}}
    new = {"actor": "ann", "action": "query.executed", "details": {"channel": "sql"}}
    events_append_count(entries=[{**old, "actor_kind": "user"}] * 3)  # 2-4
    events_append_count(entries=[{**new, "actor_kind": "user"}] * 450)  # 5-454
    events_append_count(entries=[{**old, "actor_kind": "user"}] * 2)  # 455-456
    url = reverse("audit:event_list")

    first = client.get(url, {"channel": "mcp"}).context["page"]
    newer = client.get(url, {"channel": "mcp", "after": 1}).context["page"]
    api = client.get("/api/v1/audit/events/", {"channel": "mcp", "page_size": 4}).json()

    assert [event.sequence for event in first.events] == [456, 455, 4, 3, 2]
    assert first.searched is None and first.older_than is None
    assert [event.sequence for event in newer.events] == [456, 455, 4, 3, 2]
    assert newer.searched is None
    assert [event["sequence"] for event in api["results"]] == [456, 455, 4, 3]
    assert api["searched"] is None and "before=3" in api["next"]
