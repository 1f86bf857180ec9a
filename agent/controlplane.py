"""HTTP client for the control plane's agent API (the agent's only way to talk to it)."""

from __future__ import annotations

import asyncio
import contextlib
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


class AccessRequestRefused(Exception):
    """The control plane answered but would not file the access request (4xx)."""


@dataclass(frozen=True)
class HeldRequest:
    """The control plane's view of an access request the agent filed for a held statement."""

    id: int
    state: str
    review_url: str
    grant: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> HeldRequest:
        return cls(
            int(body["id"]),
            str(body["state"]),
            str(body.get("review_url") or ""),
            body.get("grant"),
        )


@dataclass(frozen=True)
class BundleResponse:
    not_modified: bool
    envelope: dict[str, Any] | None = None
    etag: str | None = None


class ControlPlaneClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        headers = {"Authorization": f"Bearer {token}"}
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout)
        # Audit batches are large; encoding and sending them in a worker thread with the
        # synchronous client keeps the proxy's event loop free (async httpx costs ~40 ms of
        # loop time per megabyte body).
        self._sync_http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        # Held statements long-poll their access requests on a pool of their own, so many
        # waiting clients cannot starve token checks and bundle polls of connections.
        self._hold_http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
        )

    async def close(self) -> None:
        await self._http.aclose()
        await self._hold_http.aclose()
        self._sync_http.close()

    async def _request(
        self, method: str, path: str, *, client: httpx.AsyncClient | None = None, **kwargs: Any
    ) -> httpx.Response:
        http = client or self._http
        try:
            try:
                response = await http.request(method, path, **kwargs)
            except httpx.TransportError:  # e.g. a stale keep-alive connection: retry once
                response = await http.request(method, path, **kwargs)
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

    async def use_grant_run(self, grant_id: int, datasource: str) -> str | None:
        """Count one run of a grant limited to max_runs: None when counted, else the
        control plane's reason for refusing (used up, revoked, expired, unknown)."""
        response = await self._request(
            "POST", f"/api/v1/agent/grants/{grant_id}/runs", params={"datasource": datasource}
        )
        if response.status_code == 200:
            return None
        if response.status_code in (404, 409):
            detail = ""
            with contextlib.suppress(ValueError, AttributeError):
                detail = str(response.json().get("detail", ""))
            return detail or f"grant {grant_id}: HTTP {response.status_code}"
        raise ControlPlaneUnavailable(f"grant run: HTTP {response.status_code}")

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

    async def heartbeat(self, body: dict[str, Any]) -> dict[str, Any]:
        """Register or refresh this agent (see agent.heartbeat); returns the answer."""
        response = await self._request("POST", "/api/v1/agent/heartbeat", json=body)
        if response.status_code != 200:
            raise ControlPlaneUnavailable(f"heartbeat: HTTP {response.status_code}")
        answer: dict[str, Any] = response.json()
        return answer

    async def post_audit(self, document: str) -> dict[str, int]:
        """POST one audit batch, already JSON-encoded (see agent.audit)."""
        return await asyncio.to_thread(self._post_audit_sync, document)

    def _post_audit_sync(self, document: str) -> dict[str, int]:
        body = document.encode()
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

    async def file_access_request(
        self,
        *,
        datasource: str,
        identity: str,
        statement: str,
        fingerprint: str,
        level: str,
        reason: str,
    ) -> HeldRequest:
        """File (or reuse the identical pending) access request for a held statement.
        Safe to retry: the control plane answers 200 with the pending one it already has."""
        body = {
            "datasource": datasource,
            "identity": identity,
            "statement": statement,
            "fingerprint": fingerprint,
            "scope": {},
            "level": level,
            "reason": reason,
        }
        response = await self._request("POST", "/api/v1/agent/access-requests", json=body)
        return _held_request(response, "file access request")

    async def access_request_state(self, request_id: int, *, wait: float = 0.0) -> HeldRequest:
        """The request's state; with ``wait`` the control plane answers as soon as it leaves
        ``pending`` or after ``wait`` seconds (long-poll, at most 60)."""
        wait = max(0.0, min(wait, 60.0))
        response = await self._request(
            "GET",
            f"/api/v1/agent/access-requests/{request_id}",
            client=self._hold_http,
            params={"wait": f"{wait:g}"} if wait else None,
            timeout=self._timeout + wait,
        )
        return _held_request(response, f"access request {request_id}")


def _held_request(response: httpx.Response, what: str) -> HeldRequest:
    if response.status_code in (200, 201):
        try:
            return HeldRequest.from_json(response.json())
        except (KeyError, TypeError, ValueError) as exc:
            raise ControlPlaneUnavailable(f"{what}: malformed answer {exc!r}") from exc
    detail = ""
    with contextlib.suppress(ValueError, AttributeError):
        detail = str(response.json().get("detail", ""))
    raise AccessRequestRefused(f"{what}: HTTP {response.status_code} {detail}".strip())
