"""Token scopes over every API endpoint: the matrix is generated from the URLconf, so an
endpoint added later is covered (and classified by the default rule) without editing this file.

The expectation here is written independently of governance.scopes: agent endpoints take only
``agent``, the MCP API only ``query``, one's own requests and grants ``requests``, and every
other endpoint ``api:read`` to read and ``api:admin`` to write.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from governance.models import AccessToken
from governance.tokens import token_create

pytestmark = pytest.mark.django_db

SCOPES = ("agent", "query", "requests", "api:read", "api:admin")
READ = {"api:read", "api:admin"}
OWN_READ = {"requests", "api:read", "api:admin"}
OWN_WRITE = {"requests", "api:admin"}
SPECIAL = {
    ("access-requests/", "GET"): OWN_READ,
    ("access-requests/", "POST"): {"requests"},
    ("access-requests/<int:pk>/", "GET"): OWN_READ,
    ("access-requests/<int:pk>/cancel/", "POST"): OWN_WRITE,
    ("grants/", "GET"): OWN_READ,
    ("grants/<int:pk>/extend/", "POST"): OWN_WRITE,
}
SCOPE_REFUSAL = "this token has"


def _walk(patterns: list[Any], prefix: str = "") -> list[tuple[str, Any]]:
    found = []
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found.extend(_walk(pattern.url_patterns, route))
        elif isinstance(pattern, URLPattern):
            found.append((route, pattern.callback))
    return found


def api_endpoints() -> list[tuple[str, str]]:
    """(route under /api/v1/, method) of every API view in the URLconf."""
    endpoints = []
    for route, callback in _walk(get_resolver().url_patterns):
        if not route.startswith("api/v1/"):
            continue
        view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
        assert view_class is not None, f"{route} is not a DRF view: the matrix cannot cover it"
        for method in ("get", "post", "put", "patch", "delete"):
            if hasattr(view_class, method):
                endpoints.append((route.removeprefix("api/v1/"), method.upper()))
    return sorted(set(endpoints))


ENDPOINTS = api_endpoints()


def expected_scopes(route: str, method: str) -> set[str]:
    if route.startswith("agent/"):
        return {"agent"}
    if route.startswith("mcp/"):
        return {"query"}
    if route in ("schema/", "docs/", "version"):
        return set(SCOPES)
    if (route, method) in SPECIAL:
        return SPECIAL[(route, method)]
    return READ if method == "GET" else {"api:admin"}


def _url(route: str) -> str:
    path = route.replace("<int:pk>", "987654").replace("<int:datasource_id>", "987654")
    path = path.replace("<uuid:pk>", "00000000-0000-0000-0000-000000000000")
    assert "<" not in path, f"unfilled path parameter in {route}"
    return "/api/v1/" + path


def _call(client: Any, method: str, url: str) -> Any:
    return getattr(client, method.lower())(url, {}, format="json")


@pytest.fixture
def token_of(admin, shop) -> Any:
    """token_of(scope, user=admin) → a bearer secret with just that scope."""

    def make(scope: str, user: Any = None) -> str:
        owner = user or admin
        datasources = [shop] if scope == "agent" else []
        return token_create(
            actor=admin, user=owner, name=scope, scopes=[scope], datasources=datasources
        )[1]

    return make


def test_the_matrix_covers_the_api_and_every_scope():
    assert len(ENDPOINTS) >= 50
    assert {route for route, _ in ENDPOINTS} >= {"agent/bundle", "mcp/whoami", "tokens/"}
    print(f"permission matrix: {len(ENDPOINTS)} endpoints x {len(SCOPES)} scopes")


@pytest.mark.parametrize("route,method", ENDPOINTS)
def test_each_endpoint_accepts_exactly_the_scopes_it_should(route, method, token_of, bearer_client):
    expected = expected_scopes(route, method)
    for scope in SCOPES:
        response = _call(bearer_client(token_of(scope)), method, _url(route))
        body = (
            response.json()
            if response.get("Content-Type", "").startswith("application/json")
            else {}
        )
        refused = response.status_code == 403 and SCOPE_REFUSAL in body.get("detail", "")
        if scope in expected:
            assert not refused, f"{method} {route} refused a {scope} token: {body}"
            assert response.status_code != 401, f"{method} {route}: {scope} → 401"
        else:
            assert refused, f"{method} {route} took a {scope} token: {response.status_code} {body}"
            assert body["code"] == "not_allowed"


@pytest.mark.parametrize("route,method", ENDPOINTS)
def test_an_outsiders_personal_token_gets_no_more_than_its_scopes_and_roles(
    route, method, outsider, bearer_client
):
    """The outsider (no roles) holds the least-privilege default token (query, requests)."""
    _token, secret = token_create(actor=outsider, user=outsider, name="mine")
    response = _call(bearer_client(secret), method, _url(route))
    expected = expected_scopes(route, method)
    body = (
        response.json() if response.get("Content-Type", "").startswith("application/json") else {}
    )
    scope_refused = response.status_code == 403 and SCOPE_REFUSAL in body.get("detail", "")
    assert scope_refused == (not expected & {"query", "requests"}), (route, method, body)


def test_an_outsider_cannot_grant_itself_api_scopes(outsider):
    from config.errors import NotAllowed

    for scope in ("api:read", "api:admin", "agent"):
        with pytest.raises(NotAllowed) as refused:
            token_create(actor=outsider, user=outsider, name="more", scopes=[scope])
        assert refused.value.fields == ["scopes"]
    assert not AccessToken.objects.filter(user=outsider).exists()
