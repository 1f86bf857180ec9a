"""The finishing touches in a real Chromium, desktop and phone: breadcrumbs on every page,
relative dates with the exact time on hover, copy buttons that copy, Block for deny, and
axe-core at zero serious or critical violations on each of these pages."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import event_record
from classification.models import ScanRun
from governance.models import Column
from tests.browser import VIEWPORTS, in_browser, serious_violations
from tests.live import require_chromium

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
EXACT_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")


def _pages(shop: Any, admin: Any, email: Column) -> list[str]:
    now = timezone.now()
    scan = ScanRun.objects.create(
        datasource=shop,
        sample_size=10,
        state=ScanRun.State.SUCCEEDED,
        started_at=now,
        finished_at=now,
        tables_total=2,
        tables_done=2,
        columns_classified=5,
        tags_suggested=2,
    )
    event_record(actor=admin, action="datasource.updated", datasource=shop, details={})
    event = AuditEvent.objects.order_by("-sequence").first()
    return [
        "/",
        "/catalog/",
        "/datasources/",
        f"/datasources/{shop.pk}/",
        "/scans/",
        f"/scans/{scan.pk}/",
        f"/catalog/columns/{email.pk}/",
        "/policies/",
        f"/policies/rules/new/{shop.pk}/",
        "/policies/guardrails/new/",
        "/tokens/",
        "/agents/",
        "/approvals/",
        "/audit/",
        f"/audit/events/{event.pk}/" if event else "/audit/",
        "/audit/dashboard/",
        "/audit/chain/",
        "/no-such-page/",
    ]


@pytest.mark.parametrize("width", VIEWPORTS)
def test_touched_pages_have_crumbs_dates_copy_buttons_and_no_serious_violations(
    shop, customers_email, admin, width
):
    require_chromium()
    urls = _pages(shop, admin, customers_email)

    def steps(open_page: Callable[..., Any], seen: dict[str, Any]) -> None:
        page = open_page("admin")
        page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        seen.update(violations=[], crumbs={}, times=[])
        for url in urls:
            page.goto(url)
            page.wait_for_load_state("networkidle")
            seen["violations"] += serious_violations(page)
            seen["crumbs"][url] = page.eval_on_selector_all(
                "nav.breadcrumbs > *",
                "crumbs => crumbs.map(c => [c.textContent, c.getAttribute('aria-current')])",
            )
            seen["times"] += page.eval_on_selector_all(
                "main time[title]", "times => times.map(t => [t.textContent, t.title])"
            )
        page.goto(f"/datasources/{shop.pk}/")
        page.get_by_role("button", name="Copy the connection string").click()
        button = page.get_by_role("button", name="Copy the connection string")
        # the button says "Copied" once the clipboard took the text (a timeout fails the test)
        page.wait_for_function("b => b.textContent === 'Copied'", arg=button.element_handle())
        seen["clipboard"] = page.evaluate("() => navigator.clipboard.readText()")
        seen["connection"] = page.inner_text("#connect-url")
        page.goto(f"/policies/rules/new/{shop.pk}/")
        seen["actions"] = page.eval_on_selector_all(
            "select[name=action] option", "options => options.map(o => o.textContent)"
        )

    seen = in_browser({"admin": admin}, steps, viewport=VIEWPORTS[width])

    assert seen["violations"] == [], "\n".join(seen["violations"])
    for url, crumbs in seen["crumbs"].items():
        assert crumbs[0] == ["Start", None], url
        if url != "/":  # every page below the start names itself last, as the current page
            assert len(crumbs) >= 2 and crumbs[-1][1] == "page", (url, crumbs)
    assert seen["crumbs"][f"/scans/{ScanRun.objects.get().pk}/"][1][0] == "Datasources"
    assert len(seen["times"]) >= 8
    for words, exact in seen["times"]:
        assert (words == "just now" or "ago" in words or words.startswith("in ")) and (
            EXACT_TIME.match(exact)
        ), (words, exact)
    assert seen["clipboard"] == seen["connection"].strip() and "postgresql://" in seen["clipboard"]
    assert "Block" in seen["actions"] and "Deny" not in seen["actions"]
