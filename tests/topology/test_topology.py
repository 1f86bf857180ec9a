"""The Procfile's topology behaves as one system: work spreads over both workers, a
request filed through one web process shows live on the other, an approval on one
releases a statement held by an agent talking to the other, both agents enforce the same
bundle within one poll, and stopping a web process or an agent loses no audit event.

Slow (a whole topology of seven processes and a scan), never skipped. The tests share the
topology but not an order: each asks for what it needs (``scanned``: the catalog and the
bundle that follows the scan; ``running``: every process up) and reads bundle versions only
once both agents have settled on the one the control plane serves.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from typing import Any

import psycopg
import pytest
from websockets.sync.client import connect as websocket_connect

from tests.processes import http_get, wait_until
from tests.topology.conftest import AGENTS, DENY_ORDERS_RULE, POLL_INTERVAL, Scan, Topology

# One xdist worker runs them (--dist loadgroup): they share one topology of seven processes.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("topology")]


def _api(topology: Topology, web: str, method: str, path: str, user: str, body: Any = None):
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{topology.web(web)}/api/v1/{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {topology.tokens[user]}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def test_a_scan_fans_out_over_both_workers(running: Topology, scanned: Scan) -> None:
    # `scanned` ran the scan (a small sample per column: the point is where the tables go).
    assert set(scanned.tables_per_worker) == {"worker_1", "worker_2"}
    assert all(count > 0 for count in scanned.tables_per_worker.values()), scanned


def test_both_agents_enforce_the_same_new_bundle_within_one_poll(
    running: Topology, scanned: Scan
) -> None:
    before = running.bundle_settled()
    for agent in AGENTS:
        with psycopg.connect(running.dsn(agent), autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] > 0  # allowed
    status, body = _api(running, "web_b", "POST", "policies/", "admin", DENY_ORDERS_RULE)
    assert status == 201, body
    changed_at = time.monotonic()
    # The rule has committed: the bundle served from now on carries it.
    with_rule = running.served_bundle_version()
    assert with_rule != before
    wait_until(lambda: running.agents_on(with_rule), what="both agents on the rule", timeout=30)
    elapsed = time.monotonic() - changed_at
    # One poll interval, plus the time to build, sign and verify the bundle on a loaded host.
    assert elapsed < POLL_INTERVAL + 4.0, elapsed
    for agent in AGENTS:
        with psycopg.connect(running.dsn(agent), autocommit=True) as conn:
            with pytest.raises(
                psycopg.errors.InsufficientPrivilege, match=r"public\.orders is blocked by policy"
            ):
                conn.execute("SELECT count(*) FROM orders")
            assert conn.execute("SELECT count(*) FROM customers").fetchone()[0] > 0


def _session_cookie(topology: Topology, username: str) -> str:
    return topology.shell(
        "from django.test import Client; from governance.models import User; "
        f"c = Client(); c.force_login(User.objects.get(username={username!r})); "
        "print(c.cookies['sessionid'].value)"
    )


def test_a_reviewer_on_web_a_sees_live_a_request_filed_through_web_b(
    running: Topology, scanned: Scan
) -> None:
    cookie = _session_cookie(running, "reviewer")
    web_a = running.web("web_a")
    with websocket_connect(
        web_a.replace("http", "ws") + "/ws/approvals/",
        additional_headers={"Cookie": f"sessionid={cookie}", "Origin": web_a},
        open_timeout=20,
    ) as socket:
        status, created = _api(
            running,
            "web_b",
            "POST",
            "access-requests/",
            "analyst",
            {
                "datasource": "shop",
                "scope": {"tables": ["public.customers"]},
                "level": "read",
                "reason": "topology: live across web processes",
                "duration_minutes": 30,
            },
        )
        assert status == 201, created
        deadline = time.monotonic() + 20
        seen: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            message = json.loads(socket.recv(timeout=max(0.1, deadline - time.monotonic())))
            seen.append(message)
            if message.get("id") == created["id"] and message.get("audience") == "review":
                break
        else:
            raise AssertionError(f"web A did not push request {created['id']}: {seen}")
    assert message["event"] == "created" and message["datasource"] == "shop"


def test_a_statement_held_by_agent_1_is_released_by_an_approval_on_web_b(
    running: Topology, scanned: Scan
) -> None:
    outcome: dict[str, Any] = {}

    def held_statement() -> None:
        try:
            with psycopg.connect(running.dsn("agent_1"), autocommit=True) as conn:
                outcome["rows"] = conn.execute("SELECT count(*) FROM payments").fetchone()
        except Exception as exc:  # reported by the assertion below
            outcome["error"] = exc

    waiter = threading.Thread(target=held_statement)
    waiter.start()

    def pending_payments_request() -> int | None:
        status, body = _api(
            running, "web_b", "GET", "access-requests/?view=review&state=pending", "reviewer"
        )
        assert status == 200, body
        for item in body["results"] if isinstance(body, dict) else body:
            if "payments" in json.dumps(item) and item["requester"] == "analyst":
                return int(item["id"])
        return None

    wait_until(lambda: pending_payments_request() is not None, what="the filed request", timeout=30)
    assert waiter.is_alive(), outcome  # the statement waits, its connection open
    request_id = pending_payments_request()
    status, body = _api(
        running, "web_b", "POST", f"access-requests/{request_id}/approve/", "reviewer", {}
    )
    assert status == 200, body
    waiter.join(timeout=60)
    assert not waiter.is_alive()
    assert "error" not in outcome, outcome
    assert outcome["rows"][0] > 0


def _query_events(topology: Topology, statement_like: str) -> int:
    with psycopg.connect(topology.database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM audit_auditevent WHERE action = 'query.executed'"
            " AND target_repr LIKE %s",
            [statement_like],
        ).fetchone()
    return int(row[0])


def test_stopping_a_web_process_or_an_agent_loses_no_audit_event(
    running: Topology, scanned: Scan
) -> None:
    statement_a = "SELECT id FROM customers WHERE id = -101"
    statement_b = "SELECT country FROM customers WHERE id = -202"
    # Web A killed outright: agent 1 (its control plane) keeps serving and spools.
    with psycopg.connect(running.dsn("agent_1"), autocommit=True) as conn:
        running.stop("web_a", signal.SIGKILL)
        for _ in range(20):
            assert conn.execute(statement_a).fetchall() == []
        assert http_get(f"{running.web('web_b')}/readyz")[0] == 200
        running.start("web_a")
        running.wait_ready("web_a")
        assert conn.execute(statement_a).fetchall() == []
    wait_until(
        lambda: _query_events(running, "SELECT id FROM customers WHERE id = %") >= 21,
        what="agent 1's spooled events",
        timeout=60,
    )
    # Agent 2 stopped: its clients reconnect to agent 1.
    with psycopg.connect(running.dsn("agent_2"), autocommit=True) as conn:
        for _ in range(10):
            conn.execute(statement_b)
        running.stop("agent_2")
        with pytest.raises(psycopg.OperationalError):
            conn.execute(statement_b)
    with psycopg.connect(running.dsn("agent_1"), autocommit=True) as conn:
        for _ in range(10):
            conn.execute(statement_b)
    wait_until(
        lambda: _query_events(running, "SELECT country FROM customers WHERE id = %") >= 20,
        what="both agents' events",
        timeout=60,
    )
    assert _query_events(running, "SELECT id FROM customers WHERE id = %") == 21
    assert _query_events(running, "SELECT country FROM customers WHERE id = %") == 20
    running.start("agent_2")
    running.wait_ready("agent_2")
    verify = running.warden("audit", "verify")
    assert verify.returncode == 0, verify.stdout[-2000:] + verify.stderr[-2000:]
