"""Playwright steps against a live Warden: signed-in pages per role, and axe-core checks.

A real ASGI server (tests.live) serves the test database; Playwright runs in a thread of its
own (its sync API owns an event loop). axe-core comes from npm (package.json) and is injected
into a page; serious or critical violations are returned with the rule and the nodes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.live import CHROMIUM, CHROMIUM_ARGS, asgi_server, session_cookie

AXE = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


def in_browser(
    users: dict[str, Any],
    steps: Callable[..., None],
    *,
    viewport: dict[str, int],
    host: str = "127.0.0.1",
) -> dict[str, Any]:
    """Run steps(open_page, seen) against a live server; open_page(role) → a signed-in page
    (None: signed out). ``host`` names the server (WebAuthn needs a name, not an address);
    ``seen["base_url"]`` is where it listens."""
    seen: dict[str, Any] = {}
    with asgi_server() as served_at:
        base_url = seen["base_url"] = served_at.replace("127.0.0.1", host)
        cookies = {role: session_cookie(user, base_url) for role, user in users.items()}

        def run() -> None:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:

                    def open_page(role: str | None) -> Any:
                        context = browser.new_context(viewport=viewport, base_url=base_url)
                        if role:
                            context.add_cookies([cookies[role]])
                        page = context.new_page()
                        page.on(
                            "pageerror",
                            lambda error: seen.setdefault("page_errors", []).append(str(error)),
                        )
                        return page

                    steps(open_page, seen)
                except Exception as exc:  # reported below with everything seen so far
                    seen["error"] = repr(exc)
                finally:
                    browser.close()

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(timeout=120)
    assert "error" not in seen, json.dumps(seen, indent=1, default=str)
    assert not seen.get("page_errors"), seen["page_errors"]
    return seen


def serious_violations(page: Any) -> list[str]:
    if not AXE.exists():
        raise AssertionError(f"axe-core must be installed from npm (package.json): {AXE}")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{page.url}: {violation['id']} ({violation['impact']}): "
        + "; ".join(node["target"][0] for node in violation["nodes"][:3])
        for violation in result["violations"]
        if violation["impact"] in ("serious", "critical")
    ]
