"""Probes for the web process and the release version.

``/healthz`` answers 200 while the process serves requests (liveness). ``/readyz`` answers
200 only when this process can do its work: Warden's database answers, Redis answers (when
REDIS_URL is set: tasks and websockets go through it) and the bundle signing key loads and
signs; 503 otherwise, naming the failed check, so a load balancer takes the process out of
rotation. ``/api/v1/version`` tells clients and agents which release they talk to.
"""

from __future__ import annotations

from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agent.version import VERSION
from governance.crypto import next_signing_key, signing_key
from governance.scopes import ALL_SCOPES
from governance.services.bundles import BUNDLE_FORMAT

REDIS_TIMEOUT_SECONDS = 2.0


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return connection.vendor


def _redis() -> str:
    if not settings.REDIS_URL:
        return "not configured (embedded: in-process tasks, in-memory channel layer)"
    client = redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
    finally:
        client.close()
    return "ping answered"


def _signing_key() -> str:
    keys = [signing_key(), next_signing_key()]
    for key in filter(None, keys):
        key.public_key().verify(key.sign(b"readyz"), b"readyz")
    return "loads and signs" + (" (and the next key)" if keys[1] else "")


CHECKS: dict[str, Callable[[], str]] = {
    "database": _database,
    "redis": _redis,
    "signing_key": _signing_key,
}


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "alive", "version": VERSION})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, dict[str, object]] = {}
    for name, check in CHECKS.items():
        try:
            checks[name] = {"ok": True, "detail": check()}
        except Exception as exc:  # any failure means not ready; the body says which
            checks[name] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
    ready = all(check["ok"] for check in checks.values())
    body = {"status": "ready" if ready else "not ready", "version": VERSION, "checks": checks}
    return JsonResponse(body, status=200 if ready else 503)


class VersionSerializer(serializers.Serializer):
    version = serializers.CharField(help_text="The release (control plane and agent)")
    bundle_format = serializers.IntegerField(help_text="The policy bundle format (major)")


class VersionView(APIView):
    """The release this control plane runs and the bundle format it signs; public, like the
    API's description: any token (or none) may read it."""

    permission_classes = [AllowAny]
    token_scopes = ALL_SCOPES

    @extend_schema(responses={200: VersionSerializer})
    def get(self, request: Request) -> Response:
        body = {"version": VERSION, "bundle_format": BUNDLE_FORMAT}
        return Response(VersionSerializer(body).data)


def version_context(request: HttpRequest) -> dict[str, str]:
    """The release version for every template (the footer)."""
    return {"warden_version": VERSION}
