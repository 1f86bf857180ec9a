"""Auditor pages and API: who may read the trail (auditors, admins), and that nobody edits it."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth import authenticate
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditCheckpoint, AuditEvent, AuditJob
from audit.selectors import EventFilters, event_list
from audit.services import checkpoint_create, event_record, events_append_count
from tests.audit.conftest import tamper

pytestmark = pytest.mark.django_db
READERS = ("admin", "auditor")
OTHERS = ("reviewer", "requester", "outsider", "ai_agent")


@pytest.fixture
def some_event(admin):
    return event_record(actor=admin, action="policy.updated", details={"before": 1, "after": 2})


def _page_requests(event):
    return [
        ("get", reverse("audit:event_list"), {}),
        ("get", reverse("audit:event_detail", args=[event.id]), {}),
        ("get", reverse("audit:chain"), {}),
        ("post", reverse("audit:chain"), {}),
        ("post", reverse("audit:checkpoint_create"), {}),
        ("get", reverse("audit:dashboard"), {}),
        ("post", reverse("audit:export"), {"format": "csv"}),
    ]


def _api_requests(event):
    return [
        ("get", "/api/v1/audit/events/", None),
        ("get", f"/api/v1/audit/events/{event.id}/", None),
        ("post", "/api/v1/audit/verify/", {}),
        ("get", "/api/v1/audit/checkpoints/", None),
        ("post", "/api/v1/audit/exports/", {"format": "json"}),
    ]


@pytest.mark.parametrize("person", READERS)
def test_auditors_and_admins_use_every_audit_page(client, request, person, some_event):
    client.force_login(request.getfixturevalue(person))
    for method, url, data in _page_requests(some_event):
        response = getattr(client, method)(url, data, follow=True)
        assert response.status_code == 200, (url, method, response.status_code)


@pytest.mark.parametrize("person", OTHERS)
def test_other_roles_and_outsiders_are_refused_every_audit_page(
    client, request, person, some_event
):
    client.force_login(request.getfixturevalue(person))
    for method, url, data in _page_requests(some_event):
        assert getattr(client, method)(url, data).status_code == 403, url
    assert not AuditEvent.objects.filter(action__in=["audit.verified", "audit.exported"]).exists()
    assert not AuditCheckpoint.objects.exists()


def test_anonymous_visitors_are_sent_to_sign_in(client, some_event):
    for method, url, data in _page_requests(some_event):
        response = getattr(client, method)(url, data)
        assert response.status_code == 302, url
        assert response.url.startswith(reverse("account_login"))


@pytest.mark.parametrize("person", READERS)
def test_auditors_and_admins_use_every_audit_endpoint(client, request, person, some_event):
    client.force_login(request.getfixturevalue(person))
    for method, url, data in _api_requests(some_event):
        response = getattr(client, method)(url, data, content_type="application/json")
        assert response.status_code == 200, (url, response.content[:200])


@pytest.mark.parametrize("person", OTHERS)
def test_other_roles_and_outsiders_are_refused_every_audit_endpoint(
    client, request, person, some_event
):
    client.force_login(request.getfixturevalue(person))
    for method, url, data in _api_requests(some_event):
        response = getattr(client, method)(url, data, content_type="application/json")
        assert response.status_code == 403, url


def test_personal_tokens_of_outsiders_are_refused_and_anonymous_calls_unauthenticated(
    client, ai_agent_token, some_event
):
    for method, url, data in _api_requests(some_event):
        assert (
            getattr(client, method)(
                url,
                data,
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {ai_agent_token}",
            ).status_code
            == 403
        ), url
        assert (
            getattr(client, method)(url, data, content_type="application/json").status_code == 401
        ), url


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_nobody_edits_the_trail_through_the_api(client, admin, auditor, some_event, method):
    for person in (admin, auditor):
        client.force_login(person)
        url = f"/api/v1/audit/events/{some_event.id}/"
        response = getattr(client, method)(
            url, json.dumps({"actor": "mallory"}), content_type="application/json"
        )
        assert response.status_code == 405
    assert AuditEvent.objects.get(pk=some_event.pk).actor == "ada_admin"


def test_the_event_list_does_not_query_per_event(client, auditor, django_assert_max_num_queries):
    for index in range(60):
        event_record(actor=auditor, action="tag.added", details={"tag": "PII.Email", "i": index})
    client.force_login(auditor)

    with django_assert_max_num_queries(8):
        response = client.get(reverse("audit:event_list"))
    with django_assert_max_num_queries(8):
        api = client.get("/api/v1/audit/events/?limit=50")

    assert response.status_code == 200
    assert len(response.context["page"].events) == 50
    assert len(api.json()["results"]) == 50


def test_the_event_list_pages_by_sequence_both_ways(client, auditor):
    for index in range(120):
        event_record(actor=auditor, action="tag.added", details={"i": index})
    client.force_login(auditor)  # event 121, auth.login

    first = client.get(reverse("audit:event_list")).context["page"]
    second = client.get(reverse("audit:event_list"), {"before": first.older_than}).context["page"]
    last = client.get(reverse("audit:event_list"), {"before": second.older_than}).context["page"]
    back = client.get(reverse("audit:event_list"), {"after": last.newer_than}).context["page"]

    assert [e.sequence for e in first.events] == list(range(121, 71, -1))
    assert first.newer_than is None
    assert [e.sequence for e in second.events] == list(range(71, 21, -1))
    assert [e.sequence for e in last.events] == list(range(21, 0, -1))
    assert last.older_than is None
    assert [e.sequence for e in back.events] == [e.sequence for e in second.events]
    assert client.get(reverse("audit:event_list")).context["total"] == 121


def test_events_are_filtered_by_period_actor_datasource_action_decision_and_tag(
    client, auditor, admin, requester
):
    old = event_record(actor=admin, action="policy.created", details={})
    tamper(
        "UPDATE audit_auditevent SET occurred_at = %s WHERE id = %s",
        [timezone.now() - timedelta(days=40), str(old.id)],
    )
    event_record(actor=admin, action="tag.added", datasource="shop", details={"tag": "PII.Email"})
    event_record(
        actor=requester,
        action="access_request.created",
        datasource="crm",
        decision="hold",
        details={"reason": "PII.Email in the reason text"},
    )
    client.force_login(auditor)
    today = timezone.now().date().isoformat()

    def actions(**params):
        response = client.get("/api/v1/audit/events/", params)
        assert response.status_code == 200, response.content
        # force_login is itself audited (auth.login): leave it out here.
        return sorted(
            event["action"]
            for event in response.json()["results"]
            if event["action"] != "auth.login"
        )

    assert actions(**{"from": today, "to": today}) == ["access_request.created", "tag.added"]
    assert actions(actor="req_requester") == ["access_request.created"]
    assert actions(datasource="shop") == ["tag.added"]
    assert actions(action="policy.*") == ["policy.created"]
    assert actions(decision="hold") == ["access_request.created"]
    assert actions(tag="PII.Email") == ["tag.added"]
    page = client.get(reverse("audit:event_list"), {"tag": "PII.Email"})
    assert [event.action for event in page.context["page"].events] == ["tag.added"]
    assert client.get("/api/v1/audit/events/", {"from": "soon"}).status_code == 400


def test_the_event_page_shows_whether_its_hash_and_link_hold(client, auditor, some_event):
    client.force_login(auditor)
    ok = client.get(reverse("audit:event_detail", args=[some_event.id]))
    assert ok.context["hash_ok"] and ok.context["link_ok"]

    tamper("UPDATE audit_auditevent SET actor = 'mallory' WHERE id = %s", [str(some_event.id)])
    broken = client.get(reverse("audit:event_detail", args=[some_event.id]))

    assert not broken.context["hash_ok"]
    assert b"content does not match its hash" in broken.content


def test_verify_now_runs_as_a_job_records_who_checked_and_reports_a_broken_chain(
    client, auditor, admin, django_capture_on_commit_callbacks
):
    events = [event_record(actor=admin, action="tag.added", details={}) for _ in range(3)]
    tamper("UPDATE audit_auditevent SET actor = 'mallory' WHERE sequence = 2")
    client.force_login(auditor)

    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(reverse("audit:chain"))
    job = AuditJob.objects.get()
    page = client.get(started["Location"])

    assert started.status_code == 302
    assert (job.kind, job.state) == ("verify", "failed")
    assert "#2" in job.message and b"progress" in page.content
    assert b'role="alert"' in page.content and b"hx-get" not in page.content
    check = AuditEvent.objects.get(action="audit.verified")
    assert (check.actor, check.decision) == ("aud_auditor", "broken")
    assert check.details["broken_event_id"] == str(events[1].id)


def test_an_export_job_follows_to_a_download_named_by_its_period(
    client, auditor, reviewer, some_event, django_capture_on_commit_callbacks
):
    client.force_login(auditor)
    form = {"format": "csv", "date_from": "2026-11-01", "date_to": "2026-11-30"}

    with django_capture_on_commit_callbacks(execute=True):
        started = client.post(reverse("audit:export"), form)
    job = AuditJob.objects.get()
    status = client.get(started["Location"], HTTP_HX_REQUEST="true")
    download = client.get(reverse("audit:job_download", args=[job.pk]))

    assert (job.state, job.progress) == ("done", 100)
    assert b"warden-evidence-2026-11-01_2026-11-30.csv" in status.content
    assert b"hx-get" not in status.content  # finished: the page stops polling
    assert download["Content-Disposition"].endswith(
        'filename="warden-evidence-2026-11-01_2026-11-30.csv"'
    )
    assert b"".join(download.streaming_content).startswith(b"# ")
    client.force_login(reviewer)
    assert client.get(reverse("audit:job_download", args=[job.pk])).status_code == 403


def test_a_job_is_only_shown_to_whoever_started_it(client, auditor, admin):
    from audit.jobs import audit_job_start
    from audit.selectors import EventFilters

    job = audit_job_start(actor=admin, kind="verify", filters=EventFilters())
    client.force_login(auditor)

    assert client.get(reverse("audit:job", args=[job.pk])).status_code == 404
    client.force_login(admin)
    running = client.get(reverse("audit:job", args=[job.pk]))
    assert b'hx-trigger="every 1s"' in running.content  # not finished: the page polls


def test_the_chain_page_lists_signed_checkpoints(client, auditor, some_event):
    checkpoint = checkpoint_create(kind=AuditCheckpoint.Kind.SCHEDULED)
    client.force_login(auditor)

    response = client.get(reverse("audit:chain"))

    assert list(response.context["checkpoints"]) == [checkpoint]
    assert checkpoint.public_key.encode() in response.content


def test_the_dashboard_draws_its_charts_from_data_chart_canvases(client, auditor, agent_token):
    from tests.audit.conftest import agent_event

    client.post(
        "/api/v1/agent/audit",
        json.dumps({"events": [agent_event(time=timezone.now().isoformat())]}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {agent_token}",
    )
    client.force_login(auditor)

    response = client.get(reverse("audit:dashboard"))

    assert response.status_code == 200
    assert response.content.count(b"data-chart=") == 2
    spec = json.loads(response.context["queries_chart"])
    assert spec["type"] == "bar"
    assert [d["label"] for d in spec["data"]["datasets"]] == [
        "Allowed",
        "Masked",
        "Blocked",
        "Held",
    ]
    assert response.context["data"]["query_count"] == 1


def test_the_api_verify_returns_the_chain_report(client, auditor, some_event):
    client.force_login(auditor)

    body = client.post("/api/v1/audit/verify/", {}, content_type="application/json").json()

    assert body["ok"] is True
    assert body["checked"] == 2  # the event and the auditor's sign-in


def test_sign_in_sign_out_and_failed_sign_in_are_audited(client, requester):
    assert client.login(username="req_requester", password="correct horse battery staple")
    client.logout()
    assert authenticate(username="req_requester", password="wrong") is None

    events = list(AuditEvent.objects.values_list("action", "actor", "actor_kind"))
    assert events == [
        ("auth.login", "req_requester", "user"),
        ("auth.logout", "req_requester", "user"),
        ("auth.login_failed", "req_requester", "anonymous"),
    ]
    failed = AuditEvent.objects.get(action="auth.login_failed")
    assert "wrong" not in json.dumps(failed.details)


def _plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.django_db(transaction=True)  # VACUUM runs outside a transaction
def test_the_trail_filtered_by_actor_or_action_reads_its_own_index_range(
    client, auditor, django_assert_max_num_queries
):
    """A retired job's events are all old: as one query, PostgreSQL walked every newer event
    backwards by sequence to find them (it expects an actor's events spread evenly)."""
    old = [{"actor": "retired_job", "action": "scan.finished"}] * 300
    new = [{"actor": f"user_{i % 20}", "action": "query.executed"} for i in range(9_000)]
    events_append_count(entries=[{**entry, "actor_kind": "user"} for entry in old + new])
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE audit_auditevent")  # as autovacuum leaves the trail
    as_one_query = _plan(event_list(EventFilters(actor="retired_job"))[:51])
    plans = {
        name: _plan(event_list(filters).filter(sequence__lt=before).values("sequence")[:51])
        for name, filters, before in (
            ("actor", EventFilters(actor="retired_job"), 10_000),
            ("action", EventFilters(action="scan.finished"), 10_000),
            ("actor, deep page", EventFilters(actor="user_3"), 1_000),
        )
    }
    client.force_login(auditor)
    with django_assert_max_num_queries(9):
        page = client.get(reverse("audit:event_list"), {"actor": "retired_job"}).context["page"]

    assert "audit_auditevent_sequence_key" in as_one_query  # the walk this test is about
    for name, index in (("actor", "actor"), ("action", "action"), ("actor, deep page", "actor")):
        assert f"Index Only Scan Backward using audit_{index}_sequence_idx" in plans[name], plans
    assert [event.sequence for event in page.events] == list(range(300, 250, -1))
    assert page.older_than == 251 and page.newer_than is None
