"""End to end in headless Chromium against a real ASGI server with channels-redis."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from approvals import services
from approvals.models import AccessRequest, Grant
from tests.live import (
    CHROMIUM,
    CHROMIUM_ARGS,
    asgi_server,
    require_chromium,
    session_cookie,
    use_redis_channel_layer,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def live_redis_layer(settings):
    use_redis_channel_layer(settings)


def _reviewer_session(
    base_url: str, cookie: dict[str, str], token: str, seen: dict[str, Any]
) -> None:
    """The browser side: runs in its own thread (Playwright's sync API owns an event loop)."""
    from playwright.sync_api import sync_playwright

    api = {"Authorization": f"Bearer {token}"}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            context.add_cookies([cookie])
            page = context.new_page()
            page.on(
                "pageerror", lambda error: seen.setdefault("page_errors", []).append(str(error))
            )
            page.goto(f"{base_url}/approvals/")
            page.wait_for_selector("#approvals-root[data-live='connected']", timeout=5000)
            seen["badge_before"] = page.inner_text("#approvals-badge")

            created = httpx.post(
                f"{base_url}/api/v1/access-requests/",
                headers=api,
                timeout=10,
                json={
                    "datasource": "shop",
                    "scope": {"tables": ["public.customers"]},
                    "level": "read",
                    "reason": "Churn analysis for Q4",
                    "duration_minutes": 30,
                },
            )
            assert created.status_code == 201, created.text
            request_id = created.json()["id"]
            seen["request_id"] = request_id

            # The row arrives over the websocket: no reload, no polling.
            page.wait_for_selector(f"#review-{request_id}[data-state='pending']", timeout=5000)
            seen["badge_after"] = page.inner_text("#approvals-badge")
            seen["row_text"] = page.inner_text(f"#review-{request_id}")

            def wait_for_decision() -> None:
                response = httpx.get(
                    f"{base_url}/api/v1/access-requests/{request_id}/",
                    params={"wait": 30},
                    headers=api,
                    timeout=40,
                )
                seen["long_poll"] = response.json()

            waiter = threading.Thread(target=wait_for_decision)
            waiter.start()
            page.click(f"#review-{request_id} .review-link")
            page.fill("#approve-form textarea[name='comment']", "Fine for the churn report")
            page.click("#approve-button")
            page.wait_for_selector("#request-state.state-approved", timeout=5000)
            seen["grant_text"] = page.inner_text("#grant-info")
            waiter.join(timeout=20)
        finally:
            browser.close()


def test_a_reviewer_sees_an_agents_request_live_and_approves_it(
    transactional_db, live_redis_layer, shop, reviewer, ai_agent, ai_agent_token
):
    require_chromium()
    started = time.monotonic()
    seen: dict[str, Any] = {}
    with asgi_server() as base_url:
        cookie = session_cookie(reviewer, base_url)

        def run() -> None:
            try:
                _reviewer_session(base_url, cookie, ai_agent_token, seen)
            except Exception as exc:  # surfaced below with everything seen so far
                seen["error"] = repr(exc)

        browser = threading.Thread(target=run)
        browser.start()
        browser.join(timeout=60)
    assert "error" not in seen, seen
    assert not seen.get("page_errors"), seen.get("page_errors")
    assert "request_id" in seen, f"the browser run stopped early: {seen}"
    assert seen["badge_before"] == "0" and seen["badge_after"] == "1"
    assert "copilot_bot" in seen["row_text"] and "Churn analysis" in seen["row_text"]
    assert seen["long_poll"]["state"] == "approved"
    assert seen["long_poll"]["grant"]["state"] == "live"
    access_request = AccessRequest.objects.get(pk=seen["request_id"])
    assert access_request.state == "approved"
    grant = Grant.objects.get(request=access_request)
    assert grant.grantee == ai_agent and f"Grant #{grant.pk}" in seen["grant_text"]
    assert time.monotonic() - started < 20


def test_a_requesters_page_shows_someone_elses_decision_without_reload(
    transactional_db, live_redis_layer, file_request, reviewer, requester
):
    require_chromium()
    access_request = file_request()
    connected = threading.Event()
    seen: dict[str, Any] = {}

    def requester_page(base_url: str, cookie: dict[str, str]) -> None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context()
                context.add_cookies([cookie])
                page = context.new_page()
                page.on("pageerror", lambda error: seen.setdefault("page_errors", []).append(error))
                page.goto(f"{base_url}/approvals/{access_request.pk}/")
                page.wait_for_selector("#approvals-root[data-live='connected']", timeout=5000)
                page.evaluate("window.__notReloaded = true")
                connected.set()
                page.wait_for_selector("#request-state.state-approved", timeout=5000)
                page.wait_for_selector("#grant-info", timeout=5000)  # the panel refreshed
                seen["grant_text"] = page.inner_text("#grant-info")
                seen["same_page"] = page.evaluate("window.__notReloaded === true")
            except Exception as exc:
                seen["error"] = repr(exc)
            finally:
                connected.set()
                browser.close()

    with asgi_server() as base_url:
        thread = threading.Thread(
            target=requester_page, args=(base_url, session_cookie(requester, base_url))
        )
        thread.start()
        assert connected.wait(timeout=20)
        services.request_approve(actor=reviewer, access_request=access_request, comment="ok")
        thread.join(timeout=30)
    assert "error" not in seen and not seen.get("page_errors"), seen
    assert seen["same_page"] and "live" in seen["grant_text"]
