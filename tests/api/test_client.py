"""warden_client against a live server: the main flows, retried creations, strict query
parameters, cursor pages, and the one error body."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.api.world import contract_world
from tests.live import asgi_server
from warden_client import ApiError, AsyncWardenClient, WardenClient, operations

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world(tmp_path, admin, reviewer, auditor, requester) -> Iterator[tuple[str, dict[str, str]]]:
    tokens = contract_world(
        tmp_path, admin=admin, reviewer=reviewer, auditor=auditor, requester=requester
    )
    with asgi_server() as base_url:
        yield base_url, tokens


@pytest.fixture
def live(world) -> Iterator[dict[str, WardenClient]]:
    base_url, tokens = world
    clients = {role: WardenClient(base_url, token) for role, token in tokens.items()}
    yield clients
    for client in clients.values():
        client.close()


def test_the_async_client_sends_the_same_operations(world, live):
    base_url, tokens = world
    body = {
        "datasource": "shop",
        "scope": {"tables": ["main.people"]},
        "level": "read",
        "reason": "INC-77",
        "duration_minutes": 15,
        "statement": "",
    }

    async def run() -> tuple[dict, dict, ApiError]:
        warden = AsyncWardenClient(base_url, tokens["requester"])
        stranger = AsyncWardenClient(base_url, "wdn_not_a_token")
        try:
            filed = await warden.call(operations.access_request_create(body, idempotency_key="a1"))
            again = await warden.call(operations.access_request_create(body, idempotency_key="a1"))
            assert again == filed
            with pytest.raises(ApiError) as refused:
                await stranger.call(operations.access_request(filed["id"]))
            read = await warden.call(operations.access_request(filed["id"], wait=0.2))
        finally:
            await warden.close()
            await stranger.close()
        return filed, read, refused.value

    filed, read, refused = asyncio.run(run())
    assert read["id"] == filed["id"] and read["state"] == "pending"
    assert live["requester"].access_request(filed["id"]) == read
    assert refused.status == 401 and refused.detail


def test_the_main_flows_work_through_the_client(live, tmp_path):
    from tests.sources import sqlite_people

    admin, requester, reviewer = live["admin"], live["requester"], live["reviewer"]
    path = str(sqlite_people(tmp_path / "crm.sqlite3", count=30))
    crm = admin.datasource_create(name="crm", engine="sqlite", database=path)
    scan = admin.scan_start(crm["id"], sample_size=30)
    assert admin.scan(scan["id"])["state"] == "succeeded"
    emails = list(admin.columns(datasource=crm["id"], tag="PII.Email"))
    assert [column["name"] for column in emails] == ["email"]
    rule = admin.policy_create(
        datasource="crm",
        name="mask emails",
        subjects={"everyone": True},
        resource={"kind": "tag", "tag": "PII.Email"},
        action="mask",
        mask_method="email",
    )
    assert rule["action"] == "mask"
    filed = requester.access_request_create(
        datasource="crm",
        scope={"columns": ["main.people.email"]},
        level="read_unmasked",
        reason="INC-4211",
        duration_minutes=30,
    )
    approved = reviewer.access_request_approve(filed["id"], comment="ok")
    assert approved["state"] == "approved" and approved["grant"]["state"] == "live"


def test_a_retried_creation_creates_one_thing(live):
    admin = live["admin"]
    first = admin.datasource_create(
        name="warehouse", engine="sqlite", database="/tmp/none.sqlite3", idempotency_key="k-1"
    )
    again = admin.datasource_create(
        name="warehouse", engine="sqlite", database="/tmp/none.sqlite3", idempotency_key="k-1"
    )
    assert again == first
    assert [s["name"] for s in admin.datasources()].count("warehouse") == 1
    with pytest.raises(ApiError) as refused:
        admin.datasource_create(
            name="other", engine="sqlite", database="/tmp/x.sqlite3", idempotency_key="k-1"
        )
    assert (refused.value.status, refused.value.code) == (409, "conflict")
    assert "Idempotency-Key" in refused.value.fields


def test_a_retried_access_request_files_one_request(live):
    requester = live["requester"]
    values = {
        "datasource": "shop",
        "scope": {"tables": ["main.people"]},
        "level": "read",
        "reason": "retry me",
        "duration_minutes": 10,
    }
    first = requester.access_request_create(**values, idempotency_key="req-7")
    again = requester.access_request_create(**values, idempotency_key="req-7")
    assert again["id"] == first["id"]
    assert sum(r["reason"] == "retry me" for r in requester.access_requests()) == 1


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("datasources/?offset=abc", "offset"),
        ("datasources/?limit=0", "limit"),
        ("datasources/?ordering=password", "ordering"),
        ("columns/?datasource=x", "datasource"),
        ("columns/?sensitivity=9", "sensitivity"),
        ("access-requests/?state=bogus", "state"),
        ("audit/events/?from=yesterday", "date_from"),
        ("audit/events/?before=nope", "before"),
        ("audit/events/?before=5&after=2", "after"),
        ("audit/events/?page_size=501", "page_size"),
        ("scans/?datasource=", "datasource"),
    ],
)
def test_a_malformed_query_parameter_is_a_400_naming_it(live, path, parameter):
    with pytest.raises(ApiError) as refused:
        live["admin"].request("GET", path)
    assert (refused.value.status, refused.value.code) == (400, "invalid")
    assert parameter in refused.value.fields


def test_audit_events_page_by_sequence_without_repeats_while_events_arrive(live):
    auditor, admin = live["auditor"], live["admin"]
    first_page = auditor.request("GET", "audit/events/", params={"page_size": 3}).json()
    admin.datasource_create(name="late", engine="sqlite", database="/tmp/late.sqlite3")
    second_page = auditor.request("GET", first_page["next"]).json()
    seen = [event["sequence"] for event in first_page["results"] + second_page["results"]]
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) == 6


def test_every_error_has_the_one_body(live):
    admin = live["admin"]
    for path in ("no-such-endpoint/", "datasources/abc/", "datasources/999999/"):
        with pytest.raises(ApiError) as missing:
            admin.request("GET", path)
        assert (missing.value.status, missing.value.code) == (404, "not_found")
    with pytest.raises(ApiError) as forbidden:
        live["requester"].request("GET", "audit/events/")
    assert (forbidden.value.status, forbidden.value.code) == (403, "not_allowed")
