"""The agent's calls to the control plane's agent API (its only way to talk to it), over
``warden_client``: this module maps the client's answers and errors to the agent's terms."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar, Unpack

import httpx

from warden_client import ApiError, AsyncWardenClient, MalformedAnswer, WardenClient, operations
from warden_client.operations import (
    AuthResult,
    BundleResponse,
    HeldRequest,
    HoldFiling,
    LoginVerifiers,
    Operation,
)

__all__ = [
    "AccessRequestRefused",
    "AuditBatchRefused",
    "AuthResult",
    "BundleResponse",
    "ControlPlaneClient",
    "ControlPlaneUnavailable",
    "HeldRequest",
    "LoginVerifiers",
]

T = TypeVar("T")


class ControlPlaneUnavailable(Exception):
    """The control plane could not be reached or answered with a server error."""


class AuditBatchRefused(Exception):
    """The control plane read an audit batch and refused its content: sent again as it is,
    it would be refused for ever (agent.audit splits it)."""


def refuses_content(exc: ApiError) -> bool:
    """Whether an answer to an audit batch is the control plane's own word on its content:
    an event it names (``events[6].decision: ...``), JSON it cannot parse, or a body too
    large.  Any other 4xx (a Host header it does not serve, a proxy's page, a batch format
    it does not know yet, the token) is a control plane to retry, never a reason to set the
    trail aside."""
    if exc.status == 413:
        return True
    return exc.status in (400, 422) and (
        exc.code == "parse_error" or exc.detail.startswith("events[")
    )


class AccessRequestRefused(Exception):
    """The control plane answered but would not file the access request (4xx)."""


class ControlPlaneClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        # Every agent write is safe to repeat, so a stale keep-alive connection is retried once.
        self._warden = AsyncWardenClient(self.base_url, token, timeout=timeout, retry_once=True)
        # Audit batches are large; encoding and sending them in a worker thread with the
        # synchronous client keeps the proxy's event loop free (async httpx costs ~40 ms of
        # loop time per megabyte body).
        self._sync_warden = WardenClient(self.base_url, token, timeout=timeout, retry_once=True)
        # Held statements long-poll their access requests on a pool of their own, so many
        # waiting clients cannot starve token checks and bundle polls of connections.
        self._hold_warden = AsyncWardenClient(
            self.base_url,
            token,
            timeout=timeout,
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
            retry_once=True,
        )

    async def close(self) -> None:
        await self._warden.close()
        await self._hold_warden.close()
        self._sync_warden.close()

    async def _call(
        self, operation: Operation[T], what: str, *, warden: AsyncWardenClient | None = None
    ) -> T:
        """The operation's result; ApiError for a 4xx (each caller maps its own)."""
        try:
            return await (warden or self._warden).call(operation)
        except httpx.HTTPError as exc:
            raise ControlPlaneUnavailable(f"{operation.method} {operation.path}: {exc!r}") from exc
        except MalformedAnswer as exc:
            raise ControlPlaneUnavailable(f"{what}: malformed answer {exc}") from exc
        except ApiError as exc:
            if exc.status >= 500:
                raise ControlPlaneUnavailable(f"{what}: HTTP {exc.status}") from exc
            raise

    async def _must(self, operation: Operation[T], what: str) -> T:
        """As ``_call``, for operations the agent cannot do without: a 4xx is unavailability."""
        try:
            return await self._call(operation, what)
        except ApiError as exc:
            raise ControlPlaneUnavailable(f"{what}: HTTP {exc.status}") from exc

    async def fetch_bundle(self, datasource: str, etag: str | None) -> BundleResponse:
        return await self._must(operations.agent_bundle(datasource, etag), "bundle")

    async def use_grant_run(self, grant_id: int, datasource: str) -> str | None:
        """Count one run of a grant limited to max_runs: None when counted, else the
        control plane's reason for refusing (used up, revoked, expired, unknown)."""
        try:
            await self._call(operations.agent_grant_run(grant_id, datasource), "grant run")
        except ApiError as exc:
            if exc.status in (404, 409):
                return exc.detail or f"grant {grant_id}: HTTP {exc.status}"
            raise ControlPlaneUnavailable(f"grant run: HTTP {exc.status}") from exc
        return None

    async def fetch_public_key(self) -> dict[str, Any]:
        return await self._must(operations.agent_public_key(), "public key")

    async def authenticate(
        self, datasource: str, identity: str, token: str, **details: str
    ) -> AuthResult:
        """Check a token sent as a cleartext password (``details``: source_address,
        application, for the audit trail)."""
        operation = operations.agent_authenticate(datasource, identity, token, **details)
        try:
            return await self._call(operation, "authenticate")
        except ApiError as exc:
            if exc.status in (401, 403):
                return AuthResult(False, detail=exc.detail or "invalid token")
            raise ControlPlaneUnavailable(f"authenticate: HTTP {exc.status}") from exc

    async def login_verifiers(self, datasource: str, identity: str) -> LoginVerifiers:
        """The identity's token verifiers (SCRAM, mysql_native_password), never a token."""
        return await self._must(
            operations.agent_login_verifiers(datasource, identity), "login verifiers"
        )

    async def login_record(
        self, datasource: str, identity: str, token_id: int | None, **details: str
    ) -> AuthResult:
        """Report a challenge-response login (``token_id`` None: the proof matched no
        token); the answer says whether the control plane still accepts it."""
        operation = operations.agent_login_record(datasource, identity, token_id, **details)
        try:
            return await self._call(operation, "login record")
        except ApiError as exc:
            if exc.status in (401, 403):
                return AuthResult(False, detail=exc.detail or "invalid token")
            raise ControlPlaneUnavailable(f"login record: HTTP {exc.status}") from exc

    async def login_abandoned(
        self, datasource: str, identity: str, token_id: int, login_sequence: int, **details: str
    ) -> None:
        """Report that a login the control plane accepted (its answer's ``login_sequence``)
        never became a session: ApiError when it refuses that (4xx), ControlPlaneUnavailable
        when it cannot answer."""
        operation = operations.agent_login_abandoned(
            datasource, identity, token_id, login_sequence=login_sequence, **details
        )
        await self._call(operation, "login abandoned")

    async def heartbeat(self, body: dict[str, Any]) -> dict[str, Any]:
        """Register or refresh this agent (see agent.heartbeat); returns the answer."""
        return await self._must(operations.agent_heartbeat(body), "heartbeat")

    async def post_audit(self, document: str) -> dict[str, int]:
        """POST one audit batch, already JSON-encoded (see agent.audit)."""
        return await asyncio.to_thread(self._post_audit_sync, document)

    def _post_audit_sync(self, document: str) -> dict[str, int]:
        try:
            return self._sync_warden.call(operations.agent_audit(document))
        except httpx.HTTPError as exc:
            raise ControlPlaneUnavailable(f"POST audit: {exc!r}") from exc
        except ApiError as exc:
            if refuses_content(exc):
                raise AuditBatchRefused(str(exc)) from exc
            raise ControlPlaneUnavailable(f"audit: {exc}") from exc
        except MalformedAnswer as exc:
            raise ControlPlaneUnavailable(f"audit: {exc}") from exc

    async def file_access_request(self, **filing: Unpack[HoldFiling]) -> HeldRequest:
        """File (or reuse the identical pending) access request for a held statement.
        Safe to retry: the control plane answers 200 with the pending one it already has."""
        operation = operations.agent_access_request_file(**filing)
        return await self._held(operation, "file access request")

    async def access_request_state(self, request_id: int, *, wait: float = 0.0) -> HeldRequest:
        """The request's state; with ``wait`` the control plane answers as soon as it leaves
        ``pending`` or after ``wait`` seconds (long-poll, at most 60)."""
        operation = operations.agent_access_request_state(request_id, wait=wait)
        return await self._held(operation, f"access request {request_id}", self._hold_warden)

    async def _held(
        self, operation: Operation[HeldRequest], what: str, warden: AsyncWardenClient | None = None
    ) -> HeldRequest:
        try:
            return await self._call(operation, what, warden=warden)
        except ApiError as exc:
            raise AccessRequestRefused(f"{what}: HTTP {exc.status} {exc.detail}".strip()) from exc
