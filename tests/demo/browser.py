"""The browser half of the `make run` test: the admin's tour and a datasource's Connect panel,
in Debian's headless Chromium against the demo's real web server."""

from __future__ import annotations

import re
import time

import psycopg

from tests.live import CHROMIUM, CHROMIUM_ARGS, require_chromium


def _tour_marks(page) -> list[str]:
    return page.locator("#tour .tour-step").evaluate_all(
        "steps => steps.map(step => step.dataset.done)"
    )


def connect_panel_and_tour_checked(base_url: str, agent_host: str, agent_port: int) -> None:
    """As the demo admin: the tour ticks what the demo did (scan, policies, the analyst's
    queries through the agent) but not a review nobody made; the Connect panel's button makes
    a token that really signs the admin in through the agent."""
    from playwright.sync_api import sync_playwright

    require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            page.goto(f"{base_url}/accounts/login/")
            page.fill("input[name=login]", "admin")
            page.fill("input[name=password]", "warden-admin")
            page.click("button[type=submit]")
            page.wait_for_url(f"{base_url}/")

            deadline = time.monotonic() + 30  # the agent ships its audit batches every second
            while _tour_marks(page) != ["true", "true", "true", "false"]:
                assert time.monotonic() < deadline, _tour_marks(page)
                time.sleep(1)
                page.reload()

            page.goto(f"{base_url}/datasources/")
            page.click("text=shop")
            psql = page.locator("#connect-psql").inner_text()
            assert f"host={agent_host} port={agent_port} dbname=shop user=admin" in psql, psql
            assert "password=<your personal access token>" in psql, psql
            page.click("#connect-create-token")
            page.wait_for_selector("#connect-new-token")
            psql = page.locator("#connect-psql").inner_text()
        finally:
            browser.close()
    token = re.search(r"password=(wdn_[\w-]+)", psql)
    assert token, psql
    with psycopg.connect(
        host=agent_host, port=agent_port, user="admin", password=token.group(1), dbname="shop"
    ) as admin:
        assert admin.execute("SELECT count(*) FROM customers").fetchone()[0] > 0
