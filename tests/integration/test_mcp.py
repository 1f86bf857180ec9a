"""Issue 14: AI agents through Warden's MCP server, with the MCP SDK's own client over both
transports (streamable HTTP on the control plane, stdio via ``python -m warden_mcp``), the
real control plane (uvicorn), the real agent (``python -m agent``) and a scanned upstream
PostgreSQL database. Nothing faked."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from tests.integration.conftest import person_token, wait_until
from tests.integration.mcp_clients import TRANSPORTS, ToolFailed, call, mcp_session


@pytest.fixture
def payroll(shop: Any, admin: Any, ai_agent: Any) -> Any:
    """A second datasource the AI agent is denied as a whole (it must not even see it)."""
    from governance.services import datasource_create, policy_rule_create

    datasource = datasource_create(
        actor=admin,
        name="payroll",
        engine="postgresql",
        host="127.0.0.1",
        port=5432,
        database=shop.database,
        username="postgres",
    )
    policy_rule_create(
        actor=admin,
        datasource=datasource,
        name="no AI on payroll",
        resource_kind="datasource",
        action="deny",
        users=[ai_agent],
    )
    return datasource


@pytest.fixture
def agent(start_agent: Any, shop: Any) -> Any:
    """The shop's agent, registered by its first heartbeat (holds wait up to 60 s)."""
    from governance.models import AgentInstance

    process = start_agent("--hold-wait", "60")
    wait_until(
        lambda: AgentInstance.objects.filter(datasource=shop.datasource).exists(),
        10,
        "the agent's first heartbeat",
    )
    return process


def run(scenario: Any) -> Any:
    return asyncio.run(scenario)


def raw_rows(shop: Any, sql: str) -> list[tuple[Any, ...]]:
    """The unrestricted path: straight to the upstream database (what the probe must not get)."""
    with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={shop.database}") as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_ai_agent_lists_searches_describes_and_queries_masked_data(
    transport, shop, payroll, agent, control_plane_url, ai_agent
):
    from audit.models import AuditEvent

    token = person_token(ai_agent, "copilot")
    sql = "SELECT id, full_name, email FROM customers WHERE id <= 3 ORDER BY id"

    async def scenario() -> dict[str, Any]:
        async with mcp_session(transport, control_plane_url, token) as session:
            tools = {tool.name for tool in (await session.list_tools()).tools}
            return {
                "tools": tools,
                "datasources": await call(session, "list_datasources"),
                "search": await call(session, "search_catalog", datasource="shop", tag="PII.Email"),
                "table": await call(
                    session, "describe_table", datasource="shop", table="customers"
                ),
                "explain": await call(session, "explain_statement", datasource="shop", sql=sql),
                "query": await call(session, "run_query", datasource="shop", sql=sql),
            }

    seen = run(scenario())
    assert {"list_datasources", "run_query", "request_access", "get_access_request"} <= seen[
        "tools"
    ]
    [listed] = seen["datasources"]["datasources"]  # payroll is invisible to the AI agent
    assert listed["name"] == "shop" and listed["engine"] == "postgresql"
    assert listed["agent"]["online"] is True
    assert listed["agent"]["address"] == f"127.0.0.1:{agent.port}"
    assert [
        (c["table"], c["column"], c["effect"], c["mask_method"]) for c in seen["search"]["columns"]
    ] == [("public.customers", "email", "mask", "email")]
    effects = {c["name"]: (c["effect"], c.get("mask_method")) for c in seen["table"]["columns"]}
    assert effects["email"] == ("mask", "email") and effects["id"] == ("allow", None)
    assert effects["full_name"] == ("mask", "redact")  # tagged PII by the scan: default mask
    assert seen["explain"]["action"] == "mask"
    assert sorted(m["column"] for m in seen["explain"]["masked_columns"]) == [
        "public.customers.email",
        "public.customers.full_name",
    ]

    query = seen["query"]
    raw = raw_rows(shop, sql)
    assert [c["name"] for c in query["columns"]] == ["id", "full_name", "email"]
    assert [c["type"] for c in query["columns"]] == ["int4", "text", "varchar"]
    assert query["truncated"] is False and query["row_count"] == 3
    # Masked exactly as describe_table said: the unrestricted path has the values, MCP not.
    for (row_id, name, email), returned in zip(raw, query["rows"], strict=True):
        assert returned == [row_id, "****", "****@" + email.split("@")[1]]
        assert email not in str(query) and name not in str(query)

    # One audit event per tool call (channel mcp), the statement's own from the agent, once.
    calls = AuditEvent.objects.filter(action="mcp.tool_called", actor=ai_agent.username)
    assert sorted(e.details["tool"] for e in calls) == sorted(
        [
            "list_datasources",
            "search_catalog",
            "describe_table",
            "explain_statement",
            "run_query",
        ]
    )
    query_call = calls.get(details__contains='"tool":"run_query"')
    assert query_call.details["channel"] == "mcp"
    assert query_call.details["arguments"]["sql"] == (
        "SELECT id, full_name, email FROM customers WHERE id <= $1 ORDER BY id"
    )
    executed = lambda: list(  # noqa: E731
        AuditEvent.objects.filter(action="query.executed", actor=ai_agent.username).values_list(
            "decision", flat=True
        )
    )
    assert wait_until(executed, 10, "the agent's audit event") == ["mask"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_refusals_and_bad_input_come_back_as_tool_errors_a_model_can_act_on(
    transport, shop, payroll, agent, control_plane_url, ai_agent
):
    token = person_token(ai_agent, "copilot")

    async def failure(session: Any, tool: str, **arguments: Any) -> str:
        with pytest.raises(ToolFailed) as failed:
            await call(session, tool, **arguments)
        return str(failed.value).removeprefix(f"Error executing tool {tool}: ")

    async def scenario() -> dict[str, str]:
        async with mcp_session(transport, control_plane_url, token) as session:
            return {
                "drop": await failure(
                    session, "run_query", datasource="shop", sql="DROP TABLE salaries"
                ),
                "syntax": await failure(session, "run_query", datasource="shop", sql="SELEC 1"),
                "unknown": await failure(session, "run_query", datasource="nope", sql="SELECT 1"),
                "payroll_query": await failure(
                    session, "run_query", datasource="payroll", sql="SELECT 1"
                ),
                "payroll_table": await failure(
                    session, "describe_table", datasource="payroll", table="customers"
                ),
                "payroll_search": await failure(session, "search_catalog", datasource="payroll"),
                "malformed": await failure(session, "run_query", datasource="shop", max_rows=0),
                "bad_level": await failure(
                    session,
                    "request_access",
                    datasource="shop",
                    level="root",
                    reason="x",
                    duration_minutes=5,
                ),
            }

    errors = run(scenario())
    assert "42501" in errors["drop"] and "no drops" in errors["drop"], errors["drop"]
    assert "SQLSTATE 42601" in errors["syntax"] and "SELEC" in errors["syntax"]
    assert errors["unknown"] == "Unknown datasource 'nope'."
    # A denied datasource answers exactly like one that does not exist, in every tool.
    for key in ("payroll_query", "payroll_table", "payroll_search"):
        assert errors[key] == "Unknown datasource 'payroll'.", errors[key]
    assert "max_rows" in errors["malformed"] and "sql" in errors["malformed"]
    assert "level" in errors["bad_level"]
    for text in errors.values():
        assert "Traceback" not in text
    assert raw_rows(shop, "SELECT count(*) FROM salaries") == [(5,)]  # the DROP never ran


def test_results_are_capped_and_long_statements_cancelled_upstream(
    shop, agent, control_plane_url, ai_agent
):
    token = person_token(ai_agent, "copilot")

    async def scenario() -> dict[str, Any]:
        async with mcp_session("http", control_plane_url, token) as session:
            capped = await call(
                session,
                "run_query",
                datasource="shop",
                sql="SELECT g FROM generate_series(1, 100000) g",
                max_rows=10,
            )
            by_bytes = await call(
                session,
                "run_query",
                datasource="shop",
                sql="SELECT repeat('x', 1000) FROM generate_series(1, 100) g",
                max_bytes=4096,
            )
            with pytest.raises(ToolFailed) as slow:
                await call(
                    session,
                    "run_query",
                    datasource="shop",
                    sql="SELECT pg_sleep(30)",
                    timeout_seconds=1,
                )
            after = await call(session, "run_query", datasource="shop", sql="SELECT 1 AS one")
            return {"capped": capped, "by_bytes": by_bytes, "slow": str(slow.value), "after": after}

    seen = run(scenario())
    assert seen["capped"]["rows"] == [[i] for i in range(1, 11)]
    assert seen["capped"]["truncated"] is True
    assert seen["by_bytes"]["truncated"] is True and 1 <= seen["by_bytes"]["row_count"] <= 4
    assert "cancelled after 1 s" in seen["slow"] and "57014" in seen["slow"]
    assert seen["after"]["rows"] == [[1]]
    sleeping = (
        "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' "
        f"AND datname = '{shop.database}' AND state = 'active'"
    )
    assert wait_until(lambda: raw_rows(shop, sleeping) == [(0,)], 5, "the upstream to stop")


def _expired_and_revoked_tokens(ai_agent: Any) -> tuple[str, str]:
    from django.utils import timezone

    from governance.models import AccessToken
    from governance.tokens import token_create, token_revoke

    revoked = person_token(ai_agent, "revoked")
    token_revoke(actor=ai_agent, token=AccessToken.objects.get(user=ai_agent, name="revoked"))
    _row, expired = token_create(
        actor=ai_agent, user=ai_agent, name="old", expires_at=timezone.now() - timedelta(minutes=1)
    )
    return revoked, expired


def test_the_http_transport_refuses_revoked_and_expired_tokens(
    shop, agent, control_plane_url, ai_agent
):
    import httpx

    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "probe", "version": "1"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream"}

    def post(secret: str | None) -> httpx.Response:
        auth = {"Authorization": f"Bearer {secret}"} if secret else {}
        return httpx.post(
            f"{control_plane_url}/mcp/", json=initialize, headers={**headers, **auth}, timeout=10
        )

    assert post(person_token(ai_agent, "copilot")).status_code == 200  # the legitimate path
    revoked, expired = _expired_and_revoked_tokens(ai_agent)
    for secret in (revoked, expired, "wdn_not-a-token", None):
        response = post(secret)
        assert response.status_code == 401, (secret, response.text)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Invalid, expired or revoked access token." in post(revoked).json()["detail"]


def test_stdio_refuses_to_start_with_a_revoked_or_expired_token(shop, control_plane_url, ai_agent):
    import subprocess
    import sys

    from tests.integration.mcp_clients import REPO_ROOT

    for secret in _expired_and_revoked_tokens(ai_agent):
        finished = subprocess.run(
            [sys.executable, "-m", "warden_mcp", "--control-plane", control_plane_url],
            env={"WARDEN_TOKEN": secret, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)},
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert finished.returncode == 1
        assert finished.stderr.strip() == (
            "warden_mcp: Warden refused the token: Invalid, expired or revoked access token."
        )


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_token_revoked_during_a_session_stops_working_within_the_route_bound(
    transport, shop, agent, control_plane_url, ai_agent
):
    """run_query trusts a confirmed route for ROUTE_SECONDS (README): past that bound after
    the revocation, the next call is refused (the control plane is asked again)."""
    from audit.models import AuditEvent
    from governance.models import AccessToken
    from governance.tokens import token_revoke
    from warden_mcp.routes import ROUTE_SECONDS

    token = person_token(ai_agent, "copilot")

    def opened() -> int:
        return AuditEvent.objects.filter(
            action="mcp.tool_called",
            actor=ai_agent.username,
            details__contains='"tool":"run_query"',
        ).count()

    async def scenario() -> tuple[list[dict[str, Any]], str]:
        async with mcp_session(transport, control_plane_url, token) as session:
            # Back-to-back calls: the later ones run on the confirmed route.
            before = [
                await call(session, "run_query", datasource="shop", sql="SELECT 1 AS one")
                for _ in range(3)
            ]
            # Each call was opened and audited, those on the confirmed route too (sent
            # beside). Wait for those openings first: one still in flight when the token is
            # revoked is refused, which is the bound working, not a lost audit.
            await asyncio.to_thread(
                lambda: wait_until(lambda: opened() == 3, 10, "three audited run_query calls")
            )
            await asyncio.to_thread(
                lambda: token_revoke(
                    actor=ai_agent, token=AccessToken.objects.get(user=ai_agent, name="copilot")
                )
            )
            await asyncio.sleep(ROUTE_SECONDS + 0.1)
            with pytest.raises(ToolFailed) as refused:
                await call(session, "run_query", datasource="shop", sql="SELECT 1 AS one")
            return before, str(refused.value)

    before, refused = run(scenario())
    assert [result["rows"] for result in before] == [[[1]]] * 3
    assert opened() == 3  # the refused call was not opened
    assert refused.endswith(
        "Warden refused the token: Invalid, expired or revoked access token."
    ), refused
