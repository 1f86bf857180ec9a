"""Scan pages tell the truth in a real Chromium: the tables appear when the scan succeeds, a
failed scan reads as failed, and nothing keeps saying "queued" once the scan has moved on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from classification.models import ScanRun
from governance.models import DataSource, Engine
from governance.services import datasource_create
from tests import sources
from tests.browser import VIEWPORTS, in_browser, serious_violations
from tests.live import require_chromium, use_redis_channel_layer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _scan_from_the_datasource_page(page: Any, datasource: DataSource, seen: dict[str, Any]) -> None:
    page.goto(f"/datasources/{datasource.pk}/")
    page.click("#start-scan")
    page.wait_for_url("**/scans/*/")
    page.evaluate("() => { window.notReloaded = true; }")  # gone if the page reloads
    page.wait_for_selector(
        "#scan-progress[data-state=succeeded], #scan-progress[data-state=failed]"
    )
    seen["not_reloaded"] = page.evaluate("() => window.notReloaded === true")
    seen["main"] = page.inner_text("main")
    seen["bar_class"] = page.get_attribute("#scan-progress .progress", "class")
    seen["bar_value"] = page.get_attribute("#scan-progress .progress", "aria-valuenow")
    seen["review_links"] = page.locator("#review-suggestions").count()
    seen["tables"] = page.inner_text("#scan-tables-list")
    seen["crumbs"] = page.eval_on_selector_all(
        "nav.breadcrumbs > *", "crumbs => crumbs.map(crumb => crumb.textContent)"
    )
    seen["violations"] = serious_violations(page)


def _setup(settings: Any, tmp_path: Any) -> Any:
    require_chromium()
    use_redis_channel_layer(settings)
    settings.EAGER_IN_THREAD = True  # as in the embedded default: the scan runs beside the page
    from tests.factories import UserFactory

    return UserFactory(username="scan_admin", roles=["admin"])


@pytest.mark.parametrize("width", VIEWPORTS)
def test_a_successful_scan_shows_its_tables_without_a_reload(settings, tmp_path, width):
    admin = _setup(settings, tmp_path)
    path = sources.sqlite_people(tmp_path / "people.sqlite3")
    datasource = datasource_create(
        actor=admin, name="people-ok", engine=Engine.SQLITE, database=str(path)
    )

    def steps(open_page: Callable[..., Any], seen: dict[str, Any]) -> None:
        page = open_page("admin")
        _scan_from_the_datasource_page(page, datasource, seen)
        page.goto(f"/datasources/{datasource.pk}/")
        seen["datasource_tables"] = page.inner_text("#datasource-tables")
        page.wait_for_function("() => window.Chart && Chart.getChart('chart-scan-history')")
        seen["legend"] = page.evaluate(
            "() => { const chart = Chart.getChart('chart-scan-history');"
            " return {shown: chart.options.plugins.legend.display,"
            " labels: chart.data.datasets.map(d => d.label), points: chart.data.labels.length}; }"
        )
        seen["violations"] += serious_violations(page)

    seen = in_browser({"admin": admin}, steps, viewport=VIEWPORTS[width])

    scan = ScanRun.objects.get()
    assert scan.state == ScanRun.State.SUCCEEDED
    assert seen["not_reloaded"] is True
    assert "Scan succeeded" in seen["main"] and "1/1 tables" in seen["main"]
    assert "main.people" in seen["tables"] and "done" in seen["tables"]
    assert (
        seen["review_links"] == 1
        and f"Review the {scan.tags_suggested} suggestions" in (seen["main"])
    )
    assert "queued" not in seen["main"].lower()  # no message still saying the scan is queued
    assert "progress-done" in seen["bar_class"] and seen["bar_value"] == "100"
    assert seen["crumbs"] == ["Start", "Datasources", "people-ok", f"Scan #{scan.pk}"]
    assert "main.people" in seen["datasource_tables"]
    assert seen["legend"]["shown"] is True and seen["legend"]["points"] == 1
    assert "columns classified" in seen["legend"]["labels"]
    assert "tables failed" in seen["legend"]["labels"]
    assert seen["violations"] == [], "\n".join(seen["violations"])


@pytest.mark.parametrize("width", VIEWPORTS)
def test_a_failed_scan_reads_as_failed(settings, tmp_path, width):
    admin = _setup(settings, tmp_path)
    path = tmp_path / "broken.sqlite3"
    sources.sqlite_people(path)
    datasource = datasource_create(
        actor=admin, name="people-broken", engine=Engine.SQLITE, database=str(path)
    )
    path.write_bytes(b"this is not a database " * 100)  # the file breaks after it was added

    def steps(open_page: Callable[..., Any], seen: dict[str, Any]) -> None:
        _scan_from_the_datasource_page(open_page("admin"), datasource, seen)

    seen = in_browser({"admin": admin}, steps, viewport=VIEWPORTS[width])

    scan = ScanRun.objects.get()
    assert scan.state == ScanRun.State.FAILED and scan.error
    assert seen["not_reloaded"] is True
    assert "Scan failed" in seen["main"] and scan.error in seen["main"]
    assert "progress-failed" in seen["bar_class"] and seen["bar_value"] == "0"  # not a full bar
    assert seen["review_links"] == 0 and "Review the" not in seen["main"]
    assert "No table was reached." in seen["tables"]
    assert "queued" not in seen["main"].lower()
    assert seen["violations"] == [], "\n".join(seen["violations"])
