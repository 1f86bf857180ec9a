"""Agent audit batches: validated, tag-resolved, idempotent by id, all or nothing."""

from __future__ import annotations

import json

import pytest

from audit.ingest import IngestError, agent_events_ingest
from audit.models import AuditEvent
from audit.verification import chain_walk
from governance.models import AccessToken, ColumnTag, Tag
from tests.audit.conftest import agent_event
from tests.factories import ColumnFactory, ColumnTagFactory, DataSourceFactory, TableFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/agent/audit"


@pytest.fixture
def shop_catalog(db):
    shop = DataSourceFactory(name="shop")
    customers = TableFactory(datasource=shop, schema_name="public", name="customers")
    email = ColumnFactory(table=customers, name="email")
    phone = ColumnFactory(table=customers, name="phone")
    ColumnFactory(table=customers, name="id")
    ColumnTagFactory(column=email, state=ColumnTag.State.CONFIRMED)
    ColumnTagFactory(
        column=phone, tag=Tag.objects.get(name="PII.Phone"), state=ColumnTag.State.REJECTED
    )
    return shop


def _post(client, token, events):
    return client.post(
        URL,
        json.dumps({"events": events}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def test_an_agent_batch_is_stored_as_query_events_with_tags_touched(
    client, agent_token, shop_catalog, requester
):
    event = agent_event(
        columns_read=["public.customers.email", "public.customers.phone", "public.customers.id"]
    )

    response = _post(client, agent_token, [event, agent_event(decision="deny")])

    assert response.status_code == 200
    assert response.json() == {"accepted": 2, "duplicates": 0}
    stored = AuditEvent.objects.get(id=event["id"])
    assert stored.action == "query.executed"
    assert (stored.actor, stored.actor_kind) == ("req_requester", "user")
    assert stored.datasource_name == "shop"
    assert stored.decision == "mask"
    assert stored.source_address == "10.0.0.7"
    assert stored.occurred_at.isoformat() == "2026-11-20T10:00:00+00:00"
    assert stored.target_repr == event["statement"]
    assert stored.details["tags"] == ["PII.Email"]  # the rejected phone tag does not count
    assert stored.details["column_tags"] == {"public.customers.email": ["PII.Email"]}
    assert stored.details["via_agent"] == "edge_agent"
    assert stored.details["masked_columns"] == ["public.customers.email"]
    assert stored.details["duration_ms"] == 3.5
    assert chain_walk().ok


def test_a_retried_batch_is_accepted_once(client, agent_token, shop_catalog):
    batch = [agent_event(), agent_event()]
    assert _post(client, agent_token, batch).json() == {"accepted": 2, "duplicates": 0}

    again = _post(client, agent_token, [*batch, agent_event()])

    assert again.json() == {"accepted": 1, "duplicates": 2}
    assert AuditEvent.objects.filter(action="query.executed").count() == 3


def test_a_duplicate_id_within_a_batch_counts_once(client, agent_token):
    event = agent_event()

    assert _post(client, agent_token, [event, event]).json() == {"accepted": 1, "duplicates": 1}


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"id": "not-a-uuid"}, "events[1].id"),
        ({"time": "yesterday"}, "events[1].time"),
        ({"time": "2026-11-20T10:00:00"}, "timezone"),
        ({"identity": ""}, "events[1].identity: required"),
        ({"datasource": None}, "events[1].datasource"),
        ({"decision": "maybe"}, "allow, mask, deny, hold"),
        ({"rows": -1}, "events[1].rows"),
        ({"columns_read": "public.customers.email"}, "events[1].columns_read"),
        ({"statement": "SELECT '\x00'"}, "NUL"),
    ],
)
def test_a_malformed_event_rejects_the_whole_batch(client, agent_token, overrides, reason):
    response = _post(client, agent_token, [agent_event(), agent_event(**overrides)])

    assert response.status_code == 400
    assert reason in response.json()["detail"]
    assert not AuditEvent.objects.filter(action="query.executed").exists()


def test_a_body_without_an_event_list_is_rejected(client, agent_token):
    response = client.post(
        URL,
        json.dumps({"event": []}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {agent_token}",
    )

    assert response.status_code == 400
    assert "events" in response.json()["detail"]


def test_only_agent_tokens_push_audit_events(client, ai_agent_token, auditor):
    assert _post(client, ai_agent_token, [agent_event()]).status_code == 403
    assert client.post(URL, {"events": []}, content_type="application/json").status_code == 401
    client.force_login(auditor)
    assert client.post(URL, {"events": []}, content_type="application/json").status_code == 401
    assert not AuditEvent.objects.filter(action="query.executed").exists()


def test_the_ingest_service_refuses_a_personal_token(ai_agent, ai_agent_token):
    token = AccessToken.objects.get(user=ai_agent)

    with pytest.raises(PermissionError):
        agent_events_ingest(token=token, events=[agent_event()])


def test_an_unknown_identity_is_kept_and_marked_unknown(agent_owner, agent_token):
    token = AccessToken.objects.get(user=agent_owner)

    result = agent_events_ingest(token=token, events=[agent_event(identity="ghost")])

    assert result.accepted == 1
    assert AuditEvent.objects.get(actor="ghost").actor_kind == "unknown"


def test_a_whole_row_read_resolves_the_tags_of_every_column(agent_owner, agent_token, shop_catalog):
    token = AccessToken.objects.get(user=agent_owner)
    event = agent_event(columns_read=["public.customers.*"], masked_columns=[])

    agent_events_ingest(token=token, events=[event])

    assert AuditEvent.objects.get(id=event["id"]).details["tags"] == ["PII.Email"]


def test_an_oversized_batch_is_refused(agent_owner, agent_token):
    token = AccessToken.objects.get(user=agent_owner)

    with pytest.raises(IngestError, match="at most"):
        agent_events_ingest(token=token, events=[agent_event() for _ in range(5001)])
