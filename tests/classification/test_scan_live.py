"""Scan progress reaches the browser live: websockets over channels-redis, and a real
Chromium that starts a scan and watches it finish."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from classification.models import ScanRun
from classification.progress import scan_progress_broadcast
from classification.routing import websocket_urlpatterns
from governance.models import Engine
from governance.services import datasource_create
from tests import sources
from tests.live import (
    CHROMIUM,
    CHROMIUM_ARGS,
    asgi_server,
    require_chromium,
    use_redis_channel_layer,
)


def _communicator(user: Any, scan_id: int) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), f"/ws/scans/{scan_id}/")
    communicator.scope["user"] = user
    return communicator


@pytest.mark.django_db(transaction=True)
async def test_progress_is_pushed_to_watchers_over_redis(settings, tmp_path):
    use_redis_channel_layer(settings)
    from tests.factories import UserFactory

    admin = await sync_to_async(UserFactory)(username="ws_admin", roles=["admin"])
    path = sources.sqlite_people(tmp_path / "ws.sqlite3")
    datasource = await sync_to_async(datasource_create)(
        actor=admin, name="ws-people", engine=Engine.SQLITE, database=str(path)
    )
    scan = await ScanRun.objects.acreate(datasource=datasource, sample_size=10, tables_total=4)
    watcher = _communicator(admin, scan.pk)
    connected, _ = await watcher.connect()
    assert connected
    first = await watcher.receive_from(timeout=5)
    assert 'id="scan-progress"' in first and "0/4" in first
    await ScanRun.objects.filter(pk=scan.pk).aupdate(tables_done=3, state="running")
    await sync_to_async(scan_progress_broadcast)(scan_run_id=scan.pk)
    update = await watcher.receive_from(timeout=5)
    assert "3/4" in update and 'aria-valuenow="75"' in update
    await watcher.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("roles", [["requester"], []])
async def test_people_outside_the_catalog_cannot_watch_scans(settings, roles):
    use_redis_channel_layer(settings)
    from tests.factories import DataSourceFactory, UserFactory

    user = await sync_to_async(UserFactory)(username=f"nosy{len(roles)}", roles=roles)
    datasource = await sync_to_async(DataSourceFactory)()
    scan = await ScanRun.objects.acreate(datasource=datasource, sample_size=10)
    communicator = _communicator(user, scan.pk)
    connected, code = await communicator.connect()
    assert not connected and code == 4403
    # As a browser does: the refused socket closes, so the consumer ends (not cancelled at
    # the loop's teardown while its channel-layer read is in flight).
    await communicator.disconnect()


def _browser_scan(base_url: str, seen: dict[str, Any]) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{base_url}/accounts/login/")
            page.fill("input[name=login]", "scan_admin")
            page.fill("input[name=password]", "correct horse battery staple")
            page.click("button[type=submit]")
            page.wait_for_url(f"{base_url}/")
            page.goto(f"{base_url}/datasources/")
            page.click("text=browser-people")
            page.click("#start-scan")
            page.wait_for_selector("#scan-progress")
            seen["scan_url"] = page.url
            page.wait_for_selector("#scan-progress[data-state='succeeded']", timeout=30_000)
            seen["summary"] = page.inner_text("#scan-progress")
            page.goto(f"{base_url}/catalog/?state=suggested")
            seen["catalog"] = page.inner_text("#catalog-table")
        except Exception as exc:  # surfaced in the test thread below
            seen["error"] = repr(exc)
        finally:
            browser.close()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_admin_starts_a_scan_in_the_browser_and_sees_it_finish(settings, tmp_path):
    require_chromium()
    use_redis_channel_layer(settings)
    settings.EAGER_IN_THREAD = True  # as in the embedded default: the scan runs beside the page
    from tests.factories import UserFactory

    admin = UserFactory(username="scan_admin", roles=["admin"])
    path = sources.sqlite_people(tmp_path / "browser.sqlite3")
    datasource_create(actor=admin, name="browser-people", engine=Engine.SQLITE, database=str(path))
    seen: dict[str, Any] = {}
    with asgi_server() as base_url:
        browser = threading.Thread(target=_browser_scan, args=(base_url, seen))
        browser.start()
        browser.join(timeout=90)
    assert "error" not in seen, seen.get("error")
    assert "/scans/" in seen["scan_url"]
    assert "succeeded" in seen["summary"] and "1/1 tables" in seen["summary"]
    assert "PII.Email" in seen["catalog"] and "PCI.CardNumber" in seen["catalog"]
    assert ScanRun.objects.get().requested_by == admin
