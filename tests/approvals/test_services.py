"""The rules of access requests, reviews and grants, against PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from pglast import parser

from approvals import selectors, services
from approvals.models import AccessRequest, Grant
from audit.models import AuditEvent
from governance.services.bundles import policy_bundle_build
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

EVIDENCE_KEYS = {
    "request_id",
    "requester",
    "datasource",
    "scope",
    "level",
    "reason",
    "duration_minutes",
    "reviewer",
    "comment",
}


def _events(access_request: AccessRequest) -> list[AuditEvent]:
    events = AuditEvent.objects.order_by("sequence")
    return [event for event in events if event.details.get("request_id") == access_request.pk]


def _actions(access_request: AccessRequest) -> list[str]:
    return [event.action for event in _events(access_request)]


def test_a_request_records_scope_risk_and_an_audit_event_with_the_evidence_keys(file_request):
    access_request = file_request(scope={"tables": ["public.customers"], "tags": ["PII.Email"]})
    assert access_request.state == "pending"
    assert access_request.risk["columns"] == 3
    assert access_request.risk["tags"] == {"PII.Email": 1, "PII.PersonName": 1}
    event = AuditEvent.objects.get(action="access_request.created")
    assert set(event.details) >= EVIDENCE_KEYS
    assert event.details["requester"] == "req_requester"


def test_scope_names_must_exist_in_the_catalog(file_request):
    with pytest.raises(ValidationError, match=r"public\.nope"):
        file_request(scope={"tables": ["public.nope"]})
    with pytest.raises(ValidationError, match=r"No\.Such\.Tag"):
        file_request(scope={"tags": ["No.Such.Tag"]})
    with pytest.raises(ValidationError, match="at least one"):
        file_request(scope={})


def test_a_reason_is_required_and_the_duration_is_bounded(file_request, settings):
    with pytest.raises(ValidationError, match="reason"):
        file_request(reason="  ")
    settings.WARDEN_MAX_GRANT_MINUTES = 120
    with pytest.raises(ValidationError, match="at most 120"):
        file_request(duration_minutes=121)


def test_the_per_datasource_maximum_is_capped_by_the_setting(file_request, shop, admin, settings):
    settings.WARDEN_MAX_GRANT_MINUTES = 480
    services.review_policy_set(actor=admin, datasource=shop, max_grant_minutes=30)
    with pytest.raises(ValidationError, match="at most 30"):
        file_request(duration_minutes=31)


def test_an_outsider_cannot_file_a_request(shop, outsider):
    with pytest.raises(PermissionDenied):
        services.request_create(
            actor=outsider,
            datasource=shop,
            scope={"tables": ["public.orders"]},
            level="read",
            reason="curious",
            duration_minutes=10,
        )


def test_a_single_approval_grants_with_time_starting_at_approval(file_request, reviewer):
    access_request = file_request()
    AccessRequest.objects.filter(pk=access_request.pk).update(
        created_at=timezone.now() - timedelta(minutes=30)
    )
    before = timezone.now()
    services.request_approve(actor=reviewer, access_request=access_request, comment="ok")
    grant = Grant.objects.get(request=access_request)
    assert grant.starts_at >= before
    assert grant.expires_at == grant.starts_at + timedelta(minutes=60)
    access_request.refresh_from_db()
    assert access_request.state == "approved"
    assert _actions(access_request) == [
        "access_request.created",
        "review.recorded",
        "access_request.approved",
        "grant.created",
    ]
    for event in _events(access_request):
        assert set(event.details) >= EVIDENCE_KEYS, event.action
    approved = AuditEvent.objects.get(action="access_request.approved")
    assert approved.details["reviewer"] == "rex_reviewer" and approved.details["comment"] == "ok"


def test_nobody_reviews_their_own_request(shop, file_request):
    both = UserFactory(username="both_roles", roles=["requester", "reviewer"])
    access_request = file_request(actor=both)
    with pytest.raises(PermissionDenied, match="own request"):
        services.request_approve(actor=both, access_request=access_request)


def test_a_service_account_never_reviews(file_request):
    bot = UserFactory(username="review_bot", is_service_account=True, roles=["reviewer"])
    with pytest.raises(PermissionDenied, match="Service accounts"):
        services.request_approve(actor=bot, access_request=file_request())


def test_only_members_of_the_assigned_reviewer_groups_review(file_request, shop, admin, reviewer):
    dba = Group.objects.create(name="dba")
    services.review_policy_set(actor=admin, datasource=shop, reviewer_groups=[dba])
    access_request = file_request()
    with pytest.raises(PermissionDenied, match="do not review"):
        services.request_approve(actor=reviewer, access_request=access_request)
    dba_member = UserFactory(username="dina_dba")
    dba_member.groups.add(dba)
    services.request_approve(actor=dba_member, access_request=access_request)
    assert Grant.objects.filter(request=access_request).exists()
    assert selectors.reviewable_datasource_ids(reviewer) == set()


def test_one_review_rule_for_pages_and_services(file_request, reviewer, requester, outsider):
    access_request = file_request()
    assert selectors.can_review(user=reviewer, access_request=access_request)
    bot = UserFactory(username="review_bot", is_service_account=True, roles=["reviewer"])
    for person in (requester, outsider, bot):
        refusal = selectors.review_refusal(user=person, access_request=access_request)
        assert refusal and not selectors.can_review(user=person, access_request=access_request)
        with pytest.raises(PermissionDenied, match=refusal):
            services.request_deny(actor=person, access_request=access_request)
    services.request_deny(actor=reviewer, access_request=access_request)


def test_quorum_needs_n_distinct_approvals(file_request, shop, admin, reviewer, second_reviewer):
    services.review_policy_set(actor=admin, datasource=shop, required_approvals=2)
    access_request = file_request()
    services.request_approve(actor=reviewer, access_request=access_request)
    access_request.refresh_from_db()
    assert access_request.state == "pending" and not Grant.objects.exists()
    with pytest.raises(services.RequestStateError, match="already reviewed"):
        services.request_approve(actor=reviewer, access_request=access_request)
    services.request_approve(actor=second_reviewer, access_request=access_request)
    access_request.refresh_from_db()
    assert access_request.state == "approved" and Grant.objects.count() == 1


def test_any_denial_ends_the_request(file_request, shop, admin, reviewer, second_reviewer):
    services.review_policy_set(actor=admin, datasource=shop, required_approvals=2)
    access_request = file_request()
    services.request_approve(actor=reviewer, access_request=access_request)
    services.request_deny(actor=second_reviewer, access_request=access_request, comment="too wide")
    access_request.refresh_from_db()
    assert access_request.state == "denied" and not Grant.objects.exists()
    denied = AuditEvent.objects.get(action="access_request.denied")
    assert denied.details["comment"] == "too wide"


def test_reviewers_narrow_scope_and_duration_and_the_narrowest_wins(
    file_request, shop, admin, reviewer, second_reviewer
):
    services.review_policy_set(actor=admin, datasource=shop, required_approvals=2)
    access_request = file_request(scope={"tables": ["public.customers", "public.orders"]})
    services.request_approve(
        actor=reviewer,
        access_request=access_request,
        narrowed_scope={"tables": ["public.customers"]},
        narrowed_duration_minutes=30,
    )
    services.request_approve(
        actor=second_reviewer,
        access_request=access_request,
        narrowed_scope={"columns": ["public.customers.email"]},
        narrowed_duration_minutes=45,
    )
    grant = Grant.objects.get(request=access_request)
    assert grant.scope == {"tables": [], "columns": ["public.customers.email"], "tags": []}
    assert grant.expires_at - grant.starts_at == timedelta(minutes=30)


def test_narrowing_cannot_widen_the_scope_or_lengthen_the_time(file_request, reviewer):
    access_request = file_request(scope={"tables": ["public.customers"]})
    with pytest.raises(ValidationError):
        services.request_approve(
            actor=reviewer,
            access_request=access_request,
            narrowed_scope={"tables": ["public.orders"]},
        )
    with pytest.raises(ValidationError):
        services.request_approve(
            actor=reviewer, access_request=access_request, narrowed_duration_minutes=61
        )


def test_a_statement_bound_approval_carries_the_fingerprint_and_run_limit(
    file_request, reviewer, shop
):
    sql = "SELECT email FROM public.customers WHERE id = 42"
    access_request = file_request(statement=sql, scope={})
    assert access_request.statement_fingerprint == parser.fingerprint(sql)
    assert access_request.scope["tables"] == ["public.customers"]
    services.request_approve(
        actor=reviewer, access_request=access_request, statement_only=True, max_runs=3
    )
    [entry] = selectors.grants_for_bundle(datasource=shop)
    assert entry == {
        "id": entry["id"],
        "identity": "req_requester",
        "level": "read_unmasked",
        "scope": {"tables": ["public.customers"], "columns": [], "tags": []},
        "expires_at": Grant.objects.get().expires_at.isoformat(),
        "statement_fingerprint": parser.fingerprint(sql),
        "max_runs": 3,
    }


def test_statement_bound_approval_needs_a_statement(file_request, reviewer):
    with pytest.raises(ValidationError, match="statement"):
        services.request_approve(actor=reviewer, access_request=file_request(), statement_only=True)


def test_a_request_with_several_statements_is_refused(file_request):
    with pytest.raises(ValidationError):
        file_request(statement="SELECT 1; SELECT 2", scope={})


def test_the_bundle_changes_when_a_grant_is_made_and_when_it_is_revoked(
    file_request, reviewer, admin, shop
):
    empty = policy_bundle_build(datasource=shop)["version"]
    services.request_approve(actor=reviewer, access_request=file_request())
    granted = policy_bundle_build(datasource=shop)
    assert granted["version"] != empty and len(granted["grants"]) == 1
    services.grant_revoke(actor=admin, grant=Grant.objects.get(), reason="incident closed")
    assert policy_bundle_build(datasource=shop)["version"] == empty
    assert AuditEvent.objects.filter(action="grant.revoked").count() == 1


def test_only_admins_revoke_grants(file_request, reviewer, requester):
    services.request_approve(actor=reviewer, access_request=file_request())
    with pytest.raises(PermissionDenied):
        services.grant_revoke(actor=reviewer, grant=Grant.objects.get())
    with pytest.raises(PermissionDenied):
        services.grant_revoke(actor=requester, grant=Grant.objects.get())


def test_pending_requests_expire_after_the_configured_time(file_request, shop, admin):
    services.review_policy_set(actor=admin, datasource=shop, pending_expiry_minutes=5)
    access_request = file_request()
    assert access_request.expires_at - access_request.created_at == timedelta(minutes=5)
    assert services.requests_expire_due(now=timezone.now() + timedelta(minutes=4)) == 0
    assert services.requests_expire_due(now=timezone.now() + timedelta(minutes=6)) == 1
    assert services.requests_expire_due(now=timezone.now() + timedelta(minutes=6)) == 0
    access_request.refresh_from_db()
    assert access_request.state == "expired"
    assert AuditEvent.objects.filter(action="access_request.expired").count() == 1


def test_reviewing_an_expired_request_is_refused_by_the_check_on_read(file_request, reviewer):
    access_request = file_request()
    AccessRequest.objects.filter(pk=access_request.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    access_request.refresh_from_db()
    with pytest.raises(services.RequestStateError, match="expired"):
        services.request_approve(actor=reviewer, access_request=access_request)
    access_request.refresh_from_db()
    assert access_request.state == "expired"


def test_grants_stop_being_live_when_they_expire_and_the_expiry_is_audited_once(
    file_request, reviewer, shop
):
    services.request_approve(actor=reviewer, access_request=file_request())
    grant = Grant.objects.get()
    later = grant.expires_at + timedelta(seconds=1)
    assert selectors.live_grants(now=later).count() == 0
    assert services.grants_expire_due(now=later) == 1
    assert services.grants_expire_due(now=later) == 0
    assert AuditEvent.objects.filter(action="grant.expired").count() == 1


def test_the_grantee_is_warned_once_inside_the_warning_window(file_request, reviewer, shop, admin):
    services.review_policy_set(actor=admin, datasource=shop, expiry_warning_minutes=10)
    services.request_approve(actor=reviewer, access_request=file_request())
    grant = Grant.objects.get()
    assert services.grants_warn_expiring(now=grant.expires_at - timedelta(minutes=11)) == []
    assert services.grants_warn_expiring(now=grant.expires_at - timedelta(minutes=9)) == [grant.pk]
    assert services.grants_warn_expiring(now=grant.expires_at - timedelta(minutes=8)) == []


def test_an_extension_is_a_new_request_whose_approval_extends_the_grant(
    file_request, reviewer, requester
):
    services.request_approve(actor=reviewer, access_request=file_request(duration_minutes=30))
    grant = Grant.objects.get()
    extension = services.grant_extend_request(
        actor=requester, grant=grant, reason="Still digging", duration_minutes=90
    )
    assert extension.extends_grant == grant and extension.state == "pending"
    with pytest.raises(services.RequestStateError, match="already pending"):
        services.grant_extend_request(
            actor=requester, grant=grant, reason="again", duration_minutes=10
        )
    services.request_approve(actor=reviewer, access_request=extension, comment="fine")
    grant.refresh_from_db()
    assert grant.expires_at - timezone.now() > timedelta(minutes=85)
    assert Grant.objects.count() == 1
    assert AuditEvent.objects.filter(action="grant.extended").count() == 1


def test_only_the_grantee_asks_for_an_extension(file_request, reviewer, outsider):
    services.request_approve(actor=reviewer, access_request=file_request())
    with pytest.raises(PermissionDenied):
        services.grant_extend_request(
            actor=outsider, grant=Grant.objects.get(), reason="x", duration_minutes=5
        )


def test_break_glass_grants_at_once_flagged_and_audited(shop, admin, requester):
    with pytest.raises(PermissionDenied, match="not enabled"):
        services.break_glass_use(
            actor=requester,
            datasource=shop,
            scope={"tables": ["public.orders"]},
            level="read",
            reason="outage",
        )
    services.review_policy_set(
        actor=admin, datasource=shop, break_glass_enabled=True, break_glass_minutes=30
    )
    with pytest.raises(ValidationError, match="reason"):
        services.break_glass_use(
            actor=requester,
            datasource=shop,
            scope={"tables": ["public.orders"]},
            level="read",
            reason="",
        )
    grant = services.break_glass_use(
        actor=requester,
        datasource=shop,
        scope={"tables": ["public.orders"]},
        level="write",
        reason="Orders stuck, P1 incident 991",
    )
    assert grant.is_break_glass and grant.is_live()
    assert grant.expires_at - grant.starts_at == timedelta(minutes=30)
    assert grant.request.state == "approved" and grant.request.is_break_glass
    event = AuditEvent.objects.get(action="break_glass.used")
    assert set(event.details) >= EVIDENCE_KEYS
    assert event.details["reason"] == "Orders stuck, P1 incident 991"


def test_a_service_account_cannot_break_the_glass(shop, admin, ai_agent):
    services.review_policy_set(actor=admin, datasource=shop, break_glass_enabled=True)
    with pytest.raises(PermissionDenied):
        services.break_glass_use(
            actor=ai_agent,
            datasource=shop,
            scope={"tables": ["public.orders"]},
            level="read",
            reason="bot",
        )


def test_the_agent_reuses_the_pending_request_for_the_same_identity_and_statement(
    shop, requester, ai_agent
):
    sql = "SELECT email FROM customers WHERE id = 1"
    first, created = services.agent_request_submit(
        actor=ai_agent,
        datasource=shop,
        identity="req_requester",
        statement=sql,
        fingerprint="",
        scope={},
        level="read_unmasked",
        reason="held by the agent",
    )
    again, created_again = services.agent_request_submit(
        actor=ai_agent,
        datasource=shop,
        identity="req_requester",
        statement="SELECT email FROM customers WHERE id = 2",
        fingerprint="",
        scope={},
        level="read_unmasked",
        reason="held again",
    )
    assert created and not created_again and again.pk == first.pk
    assert first.requester == requester and first.created_by == ai_agent
    assert first.origin == "agent"


def test_the_requester_cancels_a_pending_request_and_nobody_else_does(
    file_request, requester, reviewer
):
    access_request = file_request()
    with pytest.raises(PermissionDenied):
        services.request_cancel(actor=reviewer, access_request=access_request)
    services.request_cancel(actor=requester, access_request=access_request)
    access_request.refresh_from_db()
    assert access_request.state == "cancelled"
    with pytest.raises(services.RequestStateError):
        services.request_approve(actor=reviewer, access_request=access_request)


def test_a_person_whose_statement_the_agent_held_can_extend_their_grant(shop, ai_agent, reviewer):
    person = UserFactory(username="no_roles_person")
    held, _created = services.agent_request_submit(
        actor=ai_agent,
        datasource=shop,
        identity="no_roles_person",
        statement="SELECT email FROM customers",
        fingerprint="",
        scope={},
        level="read",
        reason="held",
    )
    services.request_approve(actor=reviewer, access_request=held)
    extension = services.grant_extend_request(
        actor=person, grant=Grant.objects.get(), reason="need more", duration_minutes=30
    )
    assert extension.requester == person and extension.extends_grant_id == held.grant.pk
