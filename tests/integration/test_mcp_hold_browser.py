"""Issue 14: a statement an AI agent runs over MCP is held by the real agent; a reviewer
approves it in headless Chromium while the tool call waits (with progress notifications),
and the same tool call then returns the rows. A denial comes back with the comment."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from tests.integration.browser_review import HELD_SQL, reviewer_approves_live
from tests.integration.conftest import person_token, wait_until
from tests.integration.mcp_clients import ToolFailed, call, mcp_session
from tests.live import require_chromium, session_cookie, use_redis_channel_layer

pytestmark = pytest.mark.browser


def test_a_held_mcp_query_returns_rows_once_a_reviewer_approves_it_in_the_browser(
    settings, shop, start_agent, control_plane_url, reviewer, ai_agent
):
    from approvals.models import AccessRequest
    from governance.models import AgentInstance

    require_chromium()
    use_redis_channel_layer(settings)
    start_agent("--hold-wait", "60")
    wait_until(AgentInstance.objects.exists, 10, "the agent's first heartbeat")
    token = person_token(ai_agent, "copilot")
    seen: dict[str, Any] = {}
    page_ready = threading.Event()
    browser = threading.Thread(
        target=reviewer_approves_live,
        args=(control_plane_url, session_cookie(reviewer, control_plane_url), page_ready, seen),
    )
    browser.start()
    assert page_ready.wait(30), "the reviewer's page did not open"
    assert "error" not in seen, seen
    progress: list[str] = []

    async def scenario() -> tuple[dict[str, Any], float]:
        async with mcp_session("http", control_plane_url, token) as session:

            async def noted(done: float, total: float | None, message: str | None) -> None:
                progress.append(message or "")

            result = await session.call_tool(
                "run_query",
                {"datasource": "shop", "sql": HELD_SQL, "wait_for_approval": True},
                progress_callback=noted,
            )
            return result.structured_content or {"error": result.content}, time.monotonic()

    result, answered = asyncio.run(scenario())
    browser.join(30)
    assert "error" not in seen and not seen.get("page_errors"), seen
    assert result.get("status") == "ok", result
    assert result["rows"] == [[i, f"employee {i}", "%.2f" % (1000 + i)] for i in range(1, 6)]
    assert answered - seen["approve_clicked"] < 5
    held = AccessRequest.objects.get()
    assert held.state == "approved" and held.requester == ai_agent
    # The waiting call reported the hold to the client before the rows came back.
    assert progress, "no MCP progress notification arrived while the call waited"
    assert f"held for approval: request {held.pk} (review at " in progress[0], progress


def test_a_held_mcp_query_reports_the_request_at_once_or_the_reviewers_denial(
    settings, shop, start_agent, control_plane_url, reviewer, ai_agent
):
    from approvals import services
    from approvals.models import AccessRequest
    from governance.models import AgentInstance

    use_redis_channel_layer(settings)
    start_agent("--hold-wait", "60")
    wait_until(AgentInstance.objects.exists, 10, "the agent's first heartbeat")
    token = person_token(ai_agent, "copilot")

    def deny_when_pending() -> None:
        pending = wait_until(
            lambda: AccessRequest.objects.filter(state="pending").first(), 20, "a pending request"
        )
        services.request_deny(actor=reviewer, access_request=pending, comment="not for bots")

    async def scenario() -> tuple[dict[str, Any], str]:
        async with mcp_session("http", control_plane_url, token) as session:
            held = await call(session, "run_query", datasource="shop", sql=HELD_SQL)
            await asyncio.to_thread(
                lambda: services.request_cancel(
                    actor=ai_agent, access_request=AccessRequest.objects.get(pk=held["request_id"])
                )
            )
            denier = asyncio.ensure_future(asyncio.to_thread(deny_when_pending))
            with pytest.raises(ToolFailed) as denied:
                await call(
                    session, "run_query", datasource="shop", sql=HELD_SQL, wait_for_approval=True
                )
            await denier
            return held, str(denied.value)

    held, denied = asyncio.run(scenario())
    first = AccessRequest.objects.order_by("pk").first()
    assert held == {
        "status": "held",
        "request_id": first.pk,
        "review_url": f"{control_plane_url}/approvals/{first.pk}/",
        "message": f"held: request {first.pk} awaits a reviewer at "
        f"{control_plane_url}/approvals/{first.pk}/",
    }
    second = AccessRequest.objects.order_by("pk").last()
    assert denied.endswith(
        f"held: request {second.pk} was rejected by {reviewer.username}: not for bots; "
        "the statement was not run"
    ), denied
