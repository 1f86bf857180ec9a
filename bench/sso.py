"""Benchmark: the single sign-on round trip through a local OpenID Connect provider.

    .venv/bin/python bench/sso.py [--runs 20]

Warden (its ASGI app in-process, tests.live) on its own database ``warden_bench_sso``, the
test provider (tests/sso/oidc_provider.py, authlib) as its own process, headless Chromium.
Each run is a fresh browser profile: Warden's login page → "Sign in with Corp SSO" → the
provider's form → submit → Warden's callback (code exchange with PKCE, ID token, userinfo,
group sync, session) → the dashboard. Printed: p50/p95 of the whole round trip (click on
the SSO button to the dashboard loaded) and of its second half (provider form submitted to
the dashboard), which is what Warden and the provider do without the person.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Python puts bench/ first on the path, where bench/mcp.py would shadow the mcp SDK that
# Warden's ASGI app imports: the checkout's root takes its place.
sys.path[0] = str(ROOT)
from bench import catalog  # noqa: E402

DATABASE = "warden_bench_sso"


def _sign_in(browser: Any, base_url: str) -> tuple[float, float]:
    context = browser.new_context(base_url=base_url)
    page = context.new_page()
    page.goto("/accounts/login/")
    started = time.perf_counter()
    page.get_by_role("button", name="Sign in with Corp SSO").click()
    page.wait_for_selector("input[name=username]")
    page.fill("input[name=username]", "bench")
    page.fill("input[name=password]", "bench-pw")
    submitted = time.perf_counter()
    page.get_by_role("button", name="Sign in to the test IdP").click()
    page.wait_for_url(f"{base_url}/")
    page.wait_for_load_state()
    finished = time.perf_counter()
    if "Sign in" in page.title():
        raise SystemExit(f"the sign-in did not reach the dashboard: {page.url}")
    context.close()
    return finished - started, finished - submitted


def _percentiles(label: str, seconds: list[float]) -> str:
    milliseconds = sorted(value * 1000 for value in seconds)
    p95 = milliseconds[max(0, round(len(milliseconds) * 0.95) - 1)]
    return f"{label}: p50 {statistics.median(milliseconds):.0f} ms, p95 {p95:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    catalog.DATABASE = DATABASE
    catalog.ENVIRONMENT.update(
        DATABASE_URL=f"postgresql://postgres@127.0.0.1:5432/{DATABASE}",
        WARDEN_DATA_DIR=f"/tmp/{DATABASE}-data",
        ALLOWED_HOSTS="127.0.0.1",
        SESSION_COOKIE_SECURE="false",  # plain HTTP on loopback
        CSRF_COOKIE_SECURE="false",
    )
    catalog.prepare()
    from django.conf import settings
    from playwright.sync_api import sync_playwright

    from tests.live import CHROMIUM, CHROMIUM_ARGS, asgi_server
    from tests.sso.provider import oidc_provider

    with (
        tempfile.TemporaryDirectory() as work_dir,
        asgi_server() as base_url,
        oidc_provider(warden_url=base_url, work_dir=Path(work_dir)) as idp,
    ):
        idp.users_set(
            {
                "bench": {
                    "password": "bench-pw",
                    "email": "bench@corp.example",
                    "groups": ["analysts"],
                }
            }
        )
        settings.SOCIALACCOUNT_PROVIDERS = idp.allauth_settings()
        settings.WARDEN_OIDC_GROUP_ROLES = {"analysts": ("requester",)}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            _sign_in(browser, base_url)  # first account creation and warm-up, not counted
            runs = [_sign_in(browser, base_url) for _ in range(args.runs)]
            browser.close()
    print(f"\n== {args.runs} SSO sign-ins in Chromium; load {os.getloadavg()[0]:.2f}")
    print(_percentiles("round trip (SSO button → dashboard)", [run[0] for run in runs]))
    print(_percentiles("provider form submitted → dashboard", [run[1] for run in runs]))


if __name__ == "__main__":
    main()
