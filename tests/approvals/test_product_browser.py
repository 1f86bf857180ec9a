"""Each role's path in headless Chromium, at desktop and phone widths, plus axe-core on every page.

A real ASGI server (tests.live) serves the test database; Playwright runs in a thread of its
own (its sync API owns an event loop). axe-core comes from npm (package.json) and is injected
into every page; a serious or critical violation fails the test with the rule and the nodes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from approvals import services
from approvals.models import AccessRequest
from governance.models import GuardrailRule
from tests.browser import VIEWPORTS, in_browser, serious_violations
from tests.live import require_chromium

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("width", VIEWPORTS)
def test_an_analyst_finds_a_column_in_the_catalog_and_requests_it(
    transactional_db, shop, requester, reviewer, width
):
    require_chromium()

    def steps(open_page: Callable[..., Any], seen: dict[str, Any]) -> None:
        page = open_page("requester")
        page.goto("/catalog/?q=email")
        row = page.locator("#catalog-table tr", has_text="public.customers.email")
        seen["row"] = row.inner_text()
        row.get_by_role("link", name="Request access to column public.customers.email").click()
        page.wait_for_selector("#scope-check .field-ok")  # the prefilled scope, checked on load
        seen["prefilled"] = page.input_value("#id_columns")
        page.fill("#id_columns", "public.customers.emial")
        page.wait_for_selector("#scope-check .field-error")
        seen["typo"] = page.inner_text("#scope-check")
        page.fill("#id_columns", "")
        page.fill("#scope-search", "full")
        page.click("[data-scope-value='public.customers.full_name']")
        page.wait_for_selector("#scope-check .field-ok")
        seen["check"] = page.inner_text("#scope-check")
        page.fill("#id_reason", "Churn analysis for the quarterly review")
        page.click("#request-form button[type=submit]")
        page.wait_for_url("**/approvals/*/")
        seen["detail"] = page.inner_text("main")
        reviewer_page = open_page("reviewer")
        reviewer_page.goto("/catalog/")
        seen["reviewer_buttons"] = reviewer_page.get_by_text("Request access").count()

    seen = in_browser(
        {"requester": requester, "reviewer": reviewer}, steps, viewport=VIEWPORTS[width]
    )

    assert "PII.Email" in seen["row"]
    assert seen["prefilled"] == "public.customers.email"
    assert "Not in the catalog of shop: public.customers.emial" in seen["typo"]
    assert "1 column" in seen["check"] and "PII.PersonName" in seen["check"]
    access_request = AccessRequest.objects.get()
    assert access_request.scope["columns"] == ["public.customers.full_name"]
    assert f"Access request #{access_request.pk}" in seen["detail"]
    assert seen["reviewer_buttons"] == 0  # reviewers cannot request: no button to find


@pytest.mark.parametrize("width", VIEWPORTS)
def test_a_reviewer_narrows_and_the_requester_and_the_evidence_show_the_grant(
    transactional_db, shop, requester, reviewer, auditor, width
):
    require_chromium()
    access_request = services.request_create(
        actor=requester,
        datasource=shop,
        scope={"tables": ["public.customers"]},
        level="read_unmasked",
        reason="Churn analysis for the quarterly review",
        duration_minutes=480,
    )

    def steps(open_page: Callable[..., Any], seen: dict[str, Any]) -> None:
        page = open_page("reviewer")
        page.goto(f"/approvals/{access_request.pk}/")
        page.fill("#approve-form [name=tables]", "")
        page.fill("#approve-form [name=columns]", "public.customers.email")
        page.fill("#approve-form [name=duration_minutes]", "60")
        page.click("#approve-button")
        page.wait_for_selector("#grant-info")
        seen["reviewer_view"] = page.inner_text("#grant-info")
        mine = open_page("requester")
        mine.goto("/approvals/")
        seen["my_requests"] = mine.inner_text(f"#mine-{access_request.pk}")
        audit = open_page("auditor")
        audit.goto("/audit/dashboard/")
        audit.select_option("select[name=format]", "json")
        audit.get_by_role("button", name="Download report").click()
        audit.wait_for_selector("#job-status[data-state=done]", timeout=30000)
        with audit.expect_download() as download:
            audit.get_by_role("link", name="Download").click()
        seen["filename"] = download.value.suggested_filename
        seen["report"] = json.loads(Path(download.value.path()).read_text())

    seen = in_browser(
        {"reviewer": reviewer, "requester": requester, "auditor": auditor},
        steps,
        viewport=VIEWPORTS[width],
    )

    for text in (seen["reviewer_view"], seen["my_requests"]):
        assert "Granted:" in text and "60 min" in text and "(asked 480 min)" in text
        assert "columns: public.customers.email" in text
    item = next(
        i for i in seen["report"]["access_requests"] if i["request_id"] == str(access_request.pk)
    )
    assert (item["duration_minutes"], item["granted_minutes"]) == (480, 60)
    assert seen["filename"].startswith("warden-evidence-") and seen["filename"].endswith(".json")


@pytest.mark.parametrize("width", VIEWPORTS)
def test_a_guardrail_applies_to_the_person_chosen_not_everyone(
    transactional_db, admin, reviewer, width
):
    require_chromium()

    def steps(open_page: Callable[..., Any], seen: dict[str, Any]) -> None:
        page = open_page("admin")
        page.goto("/policies/guardrails/new/")
        seen["before"] = page.inner_text("#subject-summary")
        page.fill("#id_name", "no-drop-for-rex")
        page.check("input[name=kinds][value=drop]")
        page.fill("#subject-search", "rex")
        page.get_by_label("rex_reviewer").check()
        seen["after"] = page.inner_text("#subject-summary")
        seen["everyone_checked"] = page.is_checked("input[name=everyone][value=True]")
        page.click("#guardrail-form button[type=submit]")
        page.wait_for_url("**/policies/**")

    seen = in_browser({"admin": admin}, steps, viewport=VIEWPORTS[width])

    assert seen["before"] == "Applies to everyone: every person and service account."
    assert seen["after"] == "Applies only to rex_reviewer."
    assert seen["everyone_checked"] is False
    guardrail = GuardrailRule.objects.get(name="no-drop-for-rex")
    assert guardrail.everyone is False and list(guardrail.users.all()) == [reviewer]


PAGES = {
    None: ["/accounts/login/"],
    "admin": [
        "/",
        "/catalog/",
        "/datasources/",
        "/scans/",
        "/policies/",
        "/policies/guardrails/new/",
        "/approvals/",
        "/audit/",
        "/audit/dashboard/",
        "/audit/chain/",
        "/agents/",
        "/accounts/2fa/",
        "/no-such-page/",
    ],
    "requester": ["/", "/catalog/", "/approvals/", "/approvals/new/", "/audit/"],
}


@pytest.mark.parametrize("width", VIEWPORTS)
def test_every_page_has_no_serious_accessibility_violations(
    transactional_db, shop, admin, requester, width
):
    require_chromium()

    def steps(open_page: Callable[..., Any], seen: dict[str, Any]) -> None:
        seen["violations"] = []
        for role, urls in PAGES.items():
            page = open_page(role)
            for url in urls:
                page.goto(url)
                page.wait_for_load_state("networkidle")
                seen["violations"] += serious_violations(page)
                width_overflow = page.evaluate(
                    "() => document.documentElement.scrollWidth - window.innerWidth"
                )
                if width_overflow > 1:
                    seen["violations"].append(f"{url}: page {width_overflow}px wider than screen")

    seen = in_browser({"admin": admin, "requester": requester}, steps, viewport=VIEWPORTS[width])

    assert seen["violations"] == [], "\n".join(seen["violations"])


def test_the_api_docs_render_with_the_network_blocked(transactional_db, admin):
    require_chromium()

    def steps(open_page: Callable[..., Any], seen: dict[str, Any]) -> None:
        page = open_page("admin")
        seen["blocked"] = []

        def only_local(route: Any) -> None:
            if urlparse(route.request.url).hostname in ("127.0.0.1", "localhost"):
                route.continue_()
            else:
                seen["blocked"].append(route.request.url)
                route.abort()

        page.route("**/*", only_local)
        page.goto("/api/v1/docs/")
        page.wait_for_selector(".swagger-ui .info .title", timeout=20000)
        seen["title"] = page.inner_text(".swagger-ui .info .title")
        seen["operations"] = page.locator(".opblock").count()
        icon = page.request.get("/favicon.ico")
        seen["icon"] = f"{icon.status} {icon.headers.get('content-type')}"

    seen = in_browser({"admin": admin}, steps, viewport=VIEWPORTS["desktop"])

    assert seen["title"].startswith("Warden API")
    assert seen["operations"] > 10
    assert seen["blocked"] == []  # nothing even tried to leave the machine
    assert seen["icon"] == "200 image/svg+xml"
