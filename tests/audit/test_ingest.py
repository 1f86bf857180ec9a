"""Agent audit batches: validated, tag-resolved, idempotent by id, all or nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from agent.audit import encode_batch
from audit.ingest import IngestError, agent_events_ingest
from audit.models import AuditEvent
from audit.verification import chain_walk
from config.errors import NotAllowed
from governance.models import AccessToken, ColumnTag, Tag
from tests.audit.conftest import agent_event
from tests.factories import ColumnFactory, ColumnTagFactory, TableFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/agent/audit"


@pytest.fixture
def shop_catalog(shop_source):
    shop = shop_source
    customers = TableFactory(datasource=shop, schema_name="public", name="customers")
    email = ColumnFactory(table=customers, name="email")
    phone = ColumnFactory(table=customers, name="phone")
    ColumnFactory(table=customers, name="id")
    ColumnTagFactory(column=email, state=ColumnTag.State.CONFIRMED)
    ColumnTagFactory(
        column=phone, tag=Tag.objects.get(name="PII.Phone"), state=ColumnTag.State.REJECTED
    )
    return shop


def _post_body(client, token, body):
    return client.post(
        URL,
        json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


def _post(client, token, events):
    return _post_body(client, token, {"events": events})


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

    with pytest.raises(NotAllowed):
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


def _compact_batch(fragments: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    """A compact agent batch; each row is [fragment index, epoch, rows, duration, error,
    bytes]."""
    queued = [(fragments[index], *rest) for index, *rest in rows]
    return json.loads(encode_batch("1f0c2a3b-4c5d-4e6f-8a9b-", 7, queued))


def test_a_compact_agent_batch_is_expanded_into_one_event_each(client, agent_token, shop_catalog):
    statement = json.dumps(agent_event())[1:-1]
    denied = json.dumps(agent_event(decision="deny", rule="rule:2:deny"))[1:-1]
    moment = datetime(2026, 11, 20, 10, 0, tzinfo=UTC).timestamp()
    body = _compact_batch(
        [statement, denied, statement],
        [
            [0, moment, 1, 3.5, False, 61],
            [1, moment + 1, None, 0.0, False, 0],
            [2, moment + 2.25, 0, 9.0, True, 0],
        ],
    )

    response = _post_body(client, agent_token, body)

    assert response.status_code == 200, response.content
    assert response.json() == {"accepted": 3, "duplicates": 0}
    assert len(body["statements"]) == 2  # the repeated statement travels once
    stored = AuditEvent.objects.filter(action="query.executed").order_by("sequence")
    assert [str(event.id) for event in stored] == [
        "1f0c2a3b-4c5d-4e6f-8a9b-000000000007",
        "1f0c2a3b-4c5d-4e6f-8a9b-000000000008",
        "1f0c2a3b-4c5d-4e6f-8a9b-000000000009",
    ]
    assert [event.decision for event in stored] == ["mask", "deny", "mask"]
    assert stored[2].occurred_at.isoformat() == "2026-11-20T10:00:02.250000+00:00"
    assert stored[0].details["tags"] == ["PII.Email"]
    assert stored[1].details["rows"] is None and stored[2].details["duration_ms"] == 9.0
    assert [event.details["bytes"] for event in stored] == [61, 0, 0]

    again = _post_body(client, agent_token, body)
    assert again.json() == {"accepted": 0, "duplicates": 3}


def test_a_journal_replay_overlapping_a_delivered_batch_stores_each_event_once(
    client, agent_token, shop_catalog
):
    """A killed agent replays its journal (agent/journal.py): events the control plane took
    come again under the same ids, in batches cut elsewhere, beside events never sent."""
    fragment = json.dumps(agent_event())[1:-1]
    moment = datetime(2026, 11, 20, 10, 0, tzinfo=UTC).timestamp()
    queued = [(fragment, moment + n, n, 1.0, False, 10 * n) for n in range(6)]
    prefix = "1f0c2a3b-4c5d-4e6f-8a9b-"
    delivered = json.loads(encode_batch(prefix, 0, queued[:4]))
    assert _post_body(client, agent_token, delivered).json() == {"accepted": 4, "duplicates": 0}

    replay = [
        json.loads(encode_batch(prefix, start, queued[start:end]))
        for start, end in ((2, 3), (3, 6))
    ]
    answers = [_post_body(client, agent_token, body).json() for body in replay]

    assert answers == [{"accepted": 0, "duplicates": 1}, {"accepted": 2, "duplicates": 1}]
    stored = AuditEvent.objects.filter(action="query.executed").order_by("sequence")
    assert [event.details["rows"] for event in stored] == [0, 1, 2, 3, 4, 5]
    assert [event.details["bytes"] for event in stored] == [0, 10, 20, 30, 40, 50]
    assert chain_walk().ok


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda body: body["events"][0].__setitem__(0, 5), "events[0][0]"),
        (lambda body: body["events"][0].__setitem__(1, -1), "events[0][1]"),
        (lambda body: body["events"][0].__setitem__(2, "yesterday"), "events[0][2]"),
        (lambda body: body["events"].append([0, 1]), "events[1]"),
        (lambda body: body.__setitem__("id_prefix", "short"), "id_prefix"),
        (lambda body: body.__setitem__("format", 4), "format"),
        (lambda body: body["statements"][0].__setitem__("decision", "maybe"), "decision"),
    ],
)
def test_a_malformed_compact_batch_is_refused_naming_the_field(client, agent_token, change, reason):
    body = _compact_batch(
        [json.dumps(agent_event())[1:-1]], [[0, 1_790_000_000.0, 1, 1.0, False, 9]]
    )
    change(body)

    response = _post_body(client, agent_token, body)

    assert response.status_code == 400
    assert reason in response.json()["detail"]
    assert not AuditEvent.objects.filter(action="query.executed").exists()


def test_an_oversized_compact_batch_is_refused_before_it_is_expanded(client, agent_token):
    fragment = json.dumps(agent_event())[1:-1]
    body = _compact_batch([fragment], [[0, 1_790_000_000.0, 1, 1.0, False, 9]])
    body["events"] = body["events"] * 5001

    response = _post_body(client, agent_token, body)

    assert response.status_code == 400
    assert "at most 5000" in response.json()["detail"]
