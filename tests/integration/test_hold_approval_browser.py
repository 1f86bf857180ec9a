"""Issue 4 end to end: an AI agent's statement is held by the real agent, the request
appears live on a reviewer's page in headless Chromium, the reviewer approves it there, and
the held statement (still waiting, ``--hold-wait``) returns its rows."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.integration.browser_review import HELD_SQL, reviewer_approves_live
from tests.integration.conftest import person_token, wait_until
from tests.live import (
    require_chromium,
    session_cookie,
    use_redis_channel_layer,
)

pytestmark = pytest.mark.browser


def test_a_held_ai_agent_query_runs_once_a_reviewer_approves_it_in_the_browser(
    settings: Any, shop: Any, start_agent: Any, control_plane_url: str, reviewer: Any, ai_agent: Any
):
    from approvals.models import AccessRequest
    from audit.models import AuditEvent

    require_chromium()
    use_redis_channel_layer(settings)
    agent = start_agent("--hold-wait", "20")
    token = person_token(ai_agent, "copilot")
    seen: dict[str, Any] = {}
    page_ready = threading.Event()
    browser = threading.Thread(
        target=reviewer_approves_live,
        args=(control_plane_url, session_cookie(reviewer, control_plane_url), page_ready, seen),
    )
    browser.start()
    assert page_ready.wait(20), "the reviewer's page did not open"
    assert "error" not in seen, seen

    notices: list[str] = []
    with agent.connect(ai_agent.username, token) as conn:
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        rows = conn.execute(HELD_SQL).fetchall()  # held until the reviewer approves
        answered = time.monotonic()
    browser.join(20)

    assert "error" not in seen and not seen.get("page_errors"), seen
    assert seen["same_page"], "the request must appear without a reload"
    assert ai_agent.username in seen["row_text"]
    assert rows == [(i, f"employee {i}", 1000 + i) for i in range(1, 6)]
    assert answered - seen["approve_clicked"] < 5
    held = AccessRequest.objects.get()
    assert held.state == "approved" and held.origin == "agent"
    assert held.requester == ai_agent and held.statement == HELD_SQL
    assert notices == [
        f"Warden: held for approval: request {held.pk} "
        f"(review at {control_plane_url}/approvals/{held.pk}/)"
    ]
    with agent.connect(ai_agent.username, token) as retry:  # a new connection needs no review
        assert len(retry.execute(HELD_SQL).fetchall()) == 5
    assert AccessRequest.objects.count() == 1

    def audited() -> list[tuple[str, str]]:
        events = AuditEvent.objects.filter(action="query.executed", actor=ai_agent.username)
        decisions = list(events.order_by("sequence").values_list("decision", "actor_kind"))
        return decisions if len(decisions) >= 3 else []

    # The hold, then the approved run on the waiting connection, then the retry.
    assert wait_until(audited, 10, "the agent's audit events") == [
        ("hold", "service_account"),
        ("allow", "service_account"),
        ("allow", "service_account"),
    ]
