"""A reviewer approving a held statement live in headless Chromium (the approvals inbox
over its websocket), shared by the agent's and the MCP server's hold tests."""

from __future__ import annotations

import threading
import time
from typing import Any

from tests.live import CHROMIUM, CHROMIUM_ARGS

HELD_SQL = "SELECT id, employee, amount FROM salaries ORDER BY id"


def reviewer_approves_live(
    base_url: str, cookie: dict[str, str], page_ready: threading.Event, seen: dict[str, Any]
) -> None:
    """The reviewer's browser (Playwright's sync API owns an event loop: its own thread)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            page.context.add_cookies([cookie])
            page.on("pageerror", lambda error: seen.setdefault("page_errors", []).append(error))
            page.goto(f"{base_url}/approvals/")
            page.wait_for_selector("#approvals-root[data-live='connected']", timeout=5000)
            page.evaluate("window.__notReloaded = true")
            page_ready.set()
            row = page.wait_for_selector("[id^='review-'][data-state='pending']", timeout=10000)
            assert row is not None
            seen["row_text"] = row.inner_text()
            seen["same_page"] = page.evaluate("window.__notReloaded === true")
            row_id = row.get_attribute("id")
            page.click(f"#{row_id} .review-link")
            page.fill("#approve-form textarea[name='comment']", "One-off salary check is fine")
            seen["approve_clicked"] = time.monotonic()
            page.click("#approve-button")
            page.wait_for_selector("#request-state.state-approved", timeout=5000)
        except Exception as exc:  # surfaced by the test with everything seen so far
            seen["error"] = repr(exc)
        finally:
            page_ready.set()
            browser.close()
