"""The web process's probes (/healthz, /readyz) and the release version (API and UI)."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from agent.version import VERSION
from governance import crypto


def test_healthz_answers_alive_with_the_version(client: Client) -> None:
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "alive", "version": VERSION}


@pytest.mark.django_db
@override_settings(REDIS_URL="redis://127.0.0.1:6379/0")
def test_readyz_checks_the_database_redis_and_the_signing_key(client: Client) -> None:
    answer = client.get("/readyz")
    assert answer.status_code == 200, answer.content
    checks = answer.json()["checks"]
    assert {name: check["ok"] for name, check in checks.items()} == {
        "database": True,
        "redis": True,
        "signing_key": True,
    }
    assert checks["database"]["detail"] == "postgresql"


@pytest.mark.django_db
@override_settings(REDIS_URL="redis://127.0.0.1:1/0")
def test_readyz_is_503_and_names_redis_when_redis_is_unreachable(client: Client) -> None:
    answer = client.get("/readyz")
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "not ready"
    assert body["checks"]["redis"]["ok"] is False
    assert "ConnectionError" in body["checks"]["redis"]["detail"]
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.django_db
def test_readyz_is_503_when_the_signing_key_is_unusable(client: Client, settings) -> None:
    crypto.signing_key.cache_clear()
    settings.SIGNING_KEY = "bm90IGEga2V5"  # base64 of "not a key": not 32 bytes
    try:
        answer = client.get("/readyz")
    finally:
        crypto.signing_key.cache_clear()
    assert answer.status_code == 503
    assert answer.json()["checks"]["signing_key"]["ok"] is False


@pytest.mark.django_db
def test_readyz_checks_the_next_signing_key_during_a_rotation(client: Client, settings) -> None:
    crypto.signing_keys_cache_clear()
    settings.SIGNING_KEY_NEXT = crypto.new_signing_key()
    try:
        usable = client.get("/readyz").json()["checks"]["signing_key"]
        settings.SIGNING_KEY_NEXT = "bm90IGEga2V5"
        crypto.signing_keys_cache_clear()
        unusable = client.get("/readyz")
    finally:
        crypto.signing_keys_cache_clear()
    assert usable == {"ok": True, "detail": "loads and signs (and the next key)"}
    assert unusable.status_code == 503
    assert "WARDEN_SIGNING_KEY_NEXT" in unusable.json()["checks"]["signing_key"]["detail"]


def test_readyz_refuses_other_methods(client: Client) -> None:
    assert client.post("/readyz").status_code == 405


def test_the_api_tells_the_release_version_and_bundle_format(client: Client) -> None:
    answer = client.get("/api/v1/version")
    assert answer.status_code == 200
    assert answer.json() == {"version": VERSION, "bundle_format": 1}


def test_the_footer_shows_the_release_version(client: Client, admin) -> None:
    client.force_login(admin)
    page = client.get("/").content.decode()
    assert f'<footer class="site-footer">Warden {VERSION}</footer>' in page
