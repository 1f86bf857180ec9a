"""HTTP client for the control plane's agent API (the agent's only way to talk to it)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx


class ControlPlaneUnavailable(Exception):
    """The control plane could not be reached or answered with a server error."""


@dataclass(frozen=True)
class AuthResult:
    ok: bool
    identity: str = ""
    kind: str = "user"
    groups: tuple[str, ...] = ()
    detail: str = ""


@dataclass(frozen=True)
class BundleResponse:
    not_modified: bool
    envelope: dict[str, Any] | None = None
    etag: str | None = None


class ControlPlaneClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"}
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout)
        # Audit batches are large; encoding and sending them in a worker thread with the
        # synchronous client keeps the proxy's event loop free (async httpx costs ~40 ms of
        # loop time per megabyte body).
        self._sync_http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    async def close(self) -> None:
        await self._http.aclose()
        self._sync_http.close()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.TransportError:  # e.g. a stale keep-alive connection: retry once
                response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ControlPlaneUnavailable(f"{method} {path}: {exc!r}") from exc
        if response.status_code >= 500:
            raise ControlPlaneUnavailable(f"{method} {path}: HTTP {response.status_code}")
        return response

    async def fetch_bundle(self, datasource: str, etag: str | None) -> BundleResponse:
        headers = {"If-None-Match": etag} if etag else {}
        response = await self._request(
            "GET", "/api/v1/agent/bundle", params={"datasource": datasource}, headers=headers
        )
        if response.status_code == 304:
            return BundleResponse(not_modified=True, etag=etag)
        if response.status_code != 200:
            raise ControlPlaneUnavailable(f"bundle: HTTP {response.status_code}")
        return BundleResponse(False, response.json(), response.headers.get("ETag"))

    async def fetch_public_key(self) -> dict[str, str]:
        response = await self._request("GET", "/api/v1/agent/public-key")
        if response.status_code != 200:
            raise ControlPlaneUnavailable(f"public key: HTTP {response.status_code}")
        body: dict[str, str] = response.json()
        return body

    async def authenticate(self, datasource: str, identity: str, token: str) -> AuthResult:
        response = await self._request(
            "POST",
            "/api/v1/agent/authenticate",
            json={"datasource": datasource, "identity": identity, "token": token},
        )
        if response.status_code == 200:
            body = response.json()
            return AuthResult(
                True,
                body.get("identity", identity),
                body.get("kind", "user"),
                tuple(body.get("groups", ())),
            )
        if response.status_code in (401, 403):
            detail = response.json().get("detail", "invalid token") if response.content else ""
            return AuthResult(False, detail=str(detail))
        raise ControlPlaneUnavailable(f"authenticate: HTTP {response.status_code}")

    async def post_audit(self, events: list[str]) -> dict[str, int]:
        """POST already JSON-encoded events as {"events": [...]}."""
        return await asyncio.to_thread(self._post_audit_sync, events)

    def _post_audit_sync(self, events: list[str]) -> dict[str, int]:
        body = ('{"events":[' + ",".join(events) + "]}").encode()
        headers = {"Content-Type": "application/json"}
        try:
            try:
                response = self._sync_http.post(
                    "/api/v1/agent/audit", content=body, headers=headers
                )
            except httpx.TransportError:  # e.g. a stale keep-alive connection: retry once
                response = self._sync_http.post(
                    "/api/v1/agent/audit", content=body, headers=headers
                )
        except httpx.HTTPError as exc:
            raise ControlPlaneUnavailable(f"POST audit: {exc!r}") from exc
        if response.status_code != 200:
            raise ControlPlaneUnavailable(f"audit: HTTP {response.status_code}")
        result: dict[str, int] = response.json()
        return result
