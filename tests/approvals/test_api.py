"""The REST API: who may do what (with outsiders), long-poll, and the agent's contract."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from pglast import parser

from approvals import services
from approvals.models import AccessRequest, Grant
from governance.tokens import token_create
from tests.factories import DataSourceFactory, UserFactory

pytestmark = pytest.mark.django_db

LIST = "/api/v1/access-requests/"
# Checks, the reviews (one read), the new review, the decision, the grant, one audit
# append (no savepoint) and the answer (two queries: the request with its quorum, its
# reviews with their reviewers); the after-commit push and inbox rows are not counted:
# tests run inside a transaction. Was 21.
APPROVE_QUERIES = 16


def _body(**overrides):
    body = {
        "datasource": "shop",
        "scope": {"tables": ["public.customers"]},
        "level": "read",
        "reason": "Quarterly report",
        "duration_minutes": 30,
    }
    body.update(overrides)
    return body


def test_a_service_account_files_a_request_with_its_token(api, shop, ai_agent_token):
    response = api(token=ai_agent_token).post(LIST, _body(), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["state"] == "pending"
    assert response.json()["requester"] == "copilot_bot"
    assert response.json()["origin"] == "api"
    assert response.json()["review_url"].endswith(f"/approvals/{response.json()['id']}/")


@pytest.mark.parametrize(
    ("who", "status"),
    [("requester", 201), ("ai_agent", 201), ("reviewer", 403), ("outsider", 403)],
)
def test_who_may_file_a_request(api, shop, request, who, status):
    response = api(request.getfixturevalue(who)).post(LIST, _body(), format="json")
    assert response.status_code == status, response.content


def test_anonymous_callers_get_401(api, shop):
    assert api().post(LIST, _body(), format="json").status_code in (401, 403)
    assert api(token="wdn_not-a-token").get(LIST).status_code == 401


def test_an_invalid_scope_is_a_400_with_the_reason(api, shop, requester):
    response = api(requester).post(LIST, _body(scope={"tables": ["public.nope"]}), format="json")
    assert response.status_code == 400
    assert "public.nope" in response.json()["detail"]


@pytest.mark.parametrize(
    ("who", "status"),
    [("requester", 200), ("reviewer", 200), ("admin", 200), ("auditor", 200), ("outsider", 404)],
)
def test_who_sees_a_request(api, file_request, request, who, status):
    access_request = file_request()
    response = api(request.getfixturevalue(who)).get(f"{LIST}{access_request.pk}/")
    assert response.status_code == status


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("reviewer", 200),
        ("requester", 403),
        ("admin", 403),
        ("auditor", 403),
        ("ai_agent", 404),
        ("outsider", 404),
    ],
)
def test_who_may_approve(api, file_request, request, who, status):
    access_request = file_request()
    response = api(request.getfixturevalue(who)).post(
        f"{LIST}{access_request.pk}/approve/", {"comment": "ok"}, format="json"
    )
    assert response.status_code == status, response.content


def test_a_reviewer_lists_what_to_review_and_a_requester_lists_their_own(
    api, file_request, reviewer, requester, outsider, django_assert_max_num_queries
):
    for _ in range(5):
        file_request()
    with django_assert_max_num_queries(12):
        to_review = api(reviewer).get(LIST, {"view": "review"}).json()
    assert to_review["count"] == 5
    assert api(requester).get(LIST).json()["count"] == 5
    assert api(requester).get(LIST, {"view": "review"}).json()["count"] == 0
    assert api(outsider).get(LIST, {"view": "review"}).json()["count"] == 0


def test_approve_with_narrowing_over_the_api_creates_a_statement_bound_grant(
    api, shop, requester, reviewer
):
    sql = "SELECT email FROM public.customers WHERE id = 9"
    created = api(requester).post(LIST, _body(statement=sql, scope={}), format="json").json()
    response = api(reviewer).post(
        f"{LIST}{created['id']}/approve/",
        {"comment": "just this one", "duration_minutes": 10, "statement_only": True, "max_runs": 2},
        format="json",
    )
    assert response.status_code == 200, response.content
    grant = response.json()["grant"]
    assert grant["statement_fingerprint"] == parser.fingerprint(sql)
    assert grant["max_runs"] == 2 and grant["state"] == "live"


def test_deny_cancel_revoke_extend_and_conflicts(api, file_request, requester, reviewer, admin):
    denied = file_request()
    assert (
        api(reviewer)
        .post(f"{LIST}{denied.pk}/deny/", {"comment": "no"}, format="json")
        .json()["state"]
        == "denied"
    )
    assert api(reviewer).post(f"{LIST}{denied.pk}/deny/", {}, format="json").status_code == 409
    cancelled = file_request()
    assert api(reviewer).post(f"{LIST}{cancelled.pk}/cancel/").status_code == 403
    assert api(requester).post(f"{LIST}{cancelled.pk}/cancel/").json()["state"] == "cancelled"
    approved = file_request()
    api(reviewer).post(f"{LIST}{approved.pk}/approve/", {}, format="json")
    grant = Grant.objects.get(request=approved)
    extension = api(requester).post(
        f"/api/v1/grants/{grant.pk}/extend/",
        {"reason": "more", "duration_minutes": 20},
        format="json",
    )
    assert extension.status_code == 201 and extension.json()["extends_grant"] == grant.pk
    assert api(reviewer).post(f"/api/v1/grants/{grant.pk}/revoke/").status_code == 403
    revoked = api(admin).post(
        f"/api/v1/grants/{grant.pk}/revoke/", {"reason": "done"}, format="json"
    )
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"


def test_break_glass_over_the_api(api, shop, admin, requester, outsider):
    body = {
        "datasource": "shop",
        "scope": {"tables": ["public.orders"]},
        "level": "read",
        "reason": "P1",
    }
    assert api(requester).post("/api/v1/break-glass/", body, format="json").status_code == 403
    policy = api(admin).put(
        f"/api/v1/review-policies/{shop.pk}/", {"break_glass_enabled": True}, format="json"
    )
    assert policy.status_code == 200
    assert api(outsider).post("/api/v1/break-glass/", body, format="json").status_code == 403
    response = api(requester).post("/api/v1/break-glass/", body, format="json")
    assert response.status_code == 201 and response.json()["is_break_glass"]


def test_only_admins_configure_review_policies(api, shop, reviewer, outsider):
    url = f"/api/v1/review-policies/{shop.pk}/"
    assert api(reviewer).put(url, {"required_approvals": 2}, format="json").status_code == 403
    assert api(outsider).get(url).status_code == 403


def test_long_poll_returns_as_soon_as_a_reviewer_decides(
    transactional_db, api, file_request, reviewer, requester
):
    access_request = file_request()

    def approve_soon() -> None:
        time.sleep(0.6)
        try:
            services.request_approve(
                actor=reviewer, access_request=AccessRequest.objects.get(pk=access_request.pk)
            )
        finally:
            connection.close()

    threading.Thread(target=approve_soon).start()
    started = time.monotonic()
    response = api(requester).get(f"{LIST}{access_request.pk}/", {"wait": 10})
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json()["state"] == "approved"
    assert 0.5 < elapsed < 3


def test_long_poll_gives_up_after_the_wait_and_answers_pending(api, file_request, requester):
    access_request = file_request()
    started = time.monotonic()
    response = api(requester).get(f"{LIST}{access_request.pk}/", {"wait": 0.5})
    assert response.json()["state"] == "pending"
    assert 0.4 < time.monotonic() - started < 3


@pytest.mark.parametrize("wait", ["soon", "-1", "nan"])
def test_long_poll_refuses_a_wait_that_is_no_number_of_seconds(api, file_request, requester, wait):
    access_request = file_request()
    response = api(requester).get(f"{LIST}{access_request.pk}/", {"wait": wait})
    assert response.status_code == 400, response.content
    assert "wait" in response.json()["fields"]


# ------------------------------------------------------------------ agent contract


def _agent_body(**overrides):
    body = {
        "datasource": "shop",
        "identity": "req_requester",
        "statement": "SELECT email FROM customers WHERE id = 5",
        "fingerprint": parser.fingerprint("SELECT email FROM customers WHERE id = 5"),
        "scope": {"columns": ["public.customers.email"]},
        "level": "read_unmasked",
        "reason": "held by the agent",
    }
    body.update(overrides)
    return body


def test_the_agent_creates_then_reuses_a_pending_request(api, shop, requester, agent_token):
    agent = api(token=agent_token)
    first = agent.post("/api/v1/agent/access-requests", _agent_body(), format="json")
    assert first.status_code == 201, first.content
    assert set(first.json()) >= {"id", "state", "review_url"}
    assert first.json()["state"] == "pending"
    again = agent.post(
        "/api/v1/agent/access-requests",
        _agent_body(statement="SELECT email FROM customers WHERE id = 6"),
        format="json",
    )
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    state = agent.get(f"/api/v1/agent/access-requests/{first.json()['id']}")
    assert state.status_code == 200 and state.json()["state"] == "pending"
    access_request = AccessRequest.objects.get()
    assert access_request.requester == requester and access_request.origin == "agent"


def test_agent_endpoints_refuse_non_agent_tokens_and_sessions(
    api, shop, ai_agent_token, requester, outsider
):
    url = "/api/v1/agent/access-requests"
    assert api(token=ai_agent_token).post(url, _agent_body(), format="json").status_code == 403
    assert api(requester).post(url, _agent_body(), format="json").status_code in (401, 403)
    assert api(outsider).get(f"{url}/1").status_code in (401, 403)
    assert api().post(url, _agent_body(), format="json").status_code == 401


def test_the_agent_gets_a_400_for_an_unknown_identity_or_datasource(api, shop, agent_token):
    agent = api(token=agent_token)
    url = "/api/v1/agent/access-requests"
    assert agent.post(url, _agent_body(identity="nobody"), format="json").status_code == 400
    assert agent.post(url, _agent_body(datasource="nope"), format="json").status_code == 400


def test_the_agent_waits_for_the_decision(
    transactional_db, api, shop, requester, reviewer, agent_token
):
    agent = api(token=agent_token)
    created = agent.post("/api/v1/agent/access-requests", _agent_body(), format="json").json()

    def deny_soon() -> None:
        time.sleep(0.4)
        try:
            services.request_deny(
                actor=reviewer, access_request=AccessRequest.objects.get(pk=created["id"])
            )
        finally:
            connection.close()

    threading.Thread(target=deny_soon).start()
    response = agent.get(f"/api/v1/agent/access-requests/{created['id']}", {"wait": 10})
    assert response.json()["state"] == "denied"


def test_a_reviewer_who_is_also_a_service_account_is_refused(api, file_request):
    bot = UserFactory(username="bot_reviewer", is_service_account=True, roles=["reviewer"])
    response = api(bot).post(f"{LIST}{file_request().pk}/approve/", {}, format="json")
    assert response.status_code in (403, 404)


def test_the_agent_counts_runs_until_the_grant_is_used_up(
    api, shop, file_request, reviewer, agent_token
):
    from approvals import selectors
    from audit.models import AuditEvent

    access_request = file_request(
        statement="SELECT email FROM public.customers WHERE id = 7", scope={}
    )
    services.request_approve(
        actor=reviewer, access_request=access_request, statement_only=True, max_runs=2
    )
    grant = Grant.objects.get(request=access_request)
    agent = api(token=agent_token)
    url = f"/api/v1/agent/grants/{grant.pk}/runs?datasource=shop"
    assert [entry["id"] for entry in selectors.grants_for_bundle(datasource=shop)] == [grant.pk]
    first = agent.post(url)
    assert first.status_code == 200 and first.json() == {
        "id": grant.pk,
        "runs_used": 1,
        "max_runs": 2,
        "runs_left": 1,
    }
    assert agent.post(url).json()["runs_left"] == 0
    refused = agent.post(url)
    assert refused.status_code == 409
    assert "used all of its 2 runs" in refused.json()["detail"]
    grant.refresh_from_db()
    assert grant.runs_used == 2
    # A used-up grant leaves the bundle, so no agent offers it any more.
    assert selectors.grants_for_bundle(datasource=shop) == []
    runs = AuditEvent.objects.filter(action="grant.run_used").order_by("sequence")
    assert [event.details["runs_used"] for event in runs] == [1, 2]


def test_a_run_of_a_revoked_unknown_or_unlimited_grant_is_refused(
    api, shop, file_request, requester, reviewer, admin, agent_token
):
    access_request = file_request()
    services.request_approve(actor=reviewer, access_request=access_request)
    unlimited = Grant.objects.get(request=access_request)
    agent = api(token=agent_token)
    url = f"/api/v1/agent/grants/{unlimited.pk}/runs"
    response = agent.post(url)
    assert response.status_code == 409 and "not limited" in response.json()["detail"]
    services.grant_revoke(actor=admin, grant=unlimited, reason="done")
    response = agent.post(url)
    assert response.status_code == 409 and "revoked" in response.json()["detail"]
    assert agent.post("/api/v1/agent/grants/999999/runs").status_code == 404
    assert agent.post(f"{url}?datasource=nope").status_code == 400
    assert api(requester).post(url).status_code in (401, 403)


def _approve_queries(api, reviewer, access_request) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = api(reviewer).post(f"{LIST}{access_request.pk}/approve/", {}, format="json")
    assert response.status_code == 200, response.content
    return len(queries)


def test_the_approval_that_grants_costs_the_same_queries_whatever_the_quorum(
    api, file_request, admin, shop, reviewer, second_reviewer
):
    """The quorum-th approval reads every approver (the grant narrows to what all agreed):
    one query for all of them, and a fixed number for the whole answer."""
    _approve_queries(api, reviewer, file_request())  # the first one fills per-process caches
    alone = _approve_queries(api, reviewer, file_request())
    third = UserFactory(username="ruth_reviewer", roles=["reviewer"])
    services.review_policy_set(actor=admin, datasource=shop, required_approvals=3)
    access_request = file_request()
    for early in (second_reviewer, third):
        api(early).post(f"{LIST}{access_request.pk}/approve/", {}, format="json")

    assert _approve_queries(api, reviewer, access_request) == alone <= APPROVE_QUERIES
    assert AccessRequest.objects.get(pk=access_request.pk).state == "approved"


def test_the_agents_state_answer_with_a_grant_is_two_queries(
    api, file_request, reviewer, agent_token, django_assert_max_num_queries
):
    """Every wake-up of a held statement's long-poll answers this way."""
    access_request = file_request()
    agent = api(token=agent_token)
    agent.get(f"/api/v1/agent/access-requests/{access_request.pk}")  # stamps the token's use
    api(reviewer).post(f"{LIST}{access_request.pk}/approve/", {}, format="json")

    # The token; the request with its grant and whether the token serves its datasource.
    with django_assert_max_num_queries(2):
        answer = agent.get(f"/api/v1/agent/access-requests/{access_request.pk}")
    assert answer.json()["grant"]["id"] == Grant.objects.get(request=access_request).pk


def test_an_agent_token_of_another_datasource_cannot_read_a_requests_state(
    api, admin, file_request, agent_token
):
    other = DataSourceFactory(name="warehouse")
    proxy = UserFactory(username="warehouse_agent", is_service_account=True)
    _token, secret = token_create(
        actor=admin, user=proxy, name="agent", is_agent=True, datasources=[other]
    )
    url = f"/api/v1/agent/access-requests/{file_request().pk}"
    for params in ({}, {"wait": 5}):
        refused = api(token=secret).get(url, params)
        assert refused.status_code == 403, refused.content
        assert "does not serve datasource 'shop'" in refused.json()["detail"]
        assert "grant" not in refused.json()
    # The probe works: shop's own agent reads the same request.
    assert api(token=agent_token).get(url).json()["state"] == "pending"
