"""Streamable HTTP transport, mounted on the control plane's ASGI app at ``/mcp/``.

Each request carries ``Authorization: Bearer <token>``; the token is checked by the
control plane itself (``/api/v1/mcp/whoami``, the same check every tool's API calls make
again), and the SDK binds each MCP session to the identity that opened it. The tools'
calls to the control plane go to the Django app in-process (httpx's ASGI transport), so
the mounted server needs no URL of its own and adds no network hop.

The session manager needs a running task group; the control plane may be served without
ASGI lifespan events (uvicorn ``--lifespan off``, the tests), so it starts on the first
request and lives as long as the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

import httpx
from mcp.server.auth.middleware.auth_context import auth_context_var, get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from warden_mcp.controlplane import CallerRefused, WardenAPI
from warden_mcp.server import build_server

# A verified token is trusted for this long by the transport; every tool call still goes
# to the control plane with it, which refuses a token revoked in between.
VERIFIED_SECONDS = 5.0


def _header(scope: Scope, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), "")


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": "invalid_token" if status == 401 else "error", "detail": message})
    headers = [(b"content-type", b"application/json")]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="warden", error="invalid_token"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body.encode()})


class McpHttpApp:
    def __init__(self, control_plane: ASGIApp) -> None:
        self.control_plane = control_plane
        self.server, self.tools = build_server(self._caller)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started: asyncio.Future[None] | None = None
        self._verified: dict[str, tuple[float, str]] = {}

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        """A session manager (and in-process client) for this event loop: a process serves
        from one loop, but a test suite starts a server, hence a loop, per test."""
        self._loop = loop
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.control_plane, client=("127.0.0.1", 0)),
            timeout=httpx.Timeout(30.0),
        )
        # Bearer tokens, not cookies: a rebinding page cannot present one, so the Host and
        # Origin checks the SDK applies to unauthenticated local servers are not needed.
        self.server.streamable_http_app(
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False)
        )
        self.manager = self.server.session_manager
        self._started = loop.create_future()
        loop.create_task(self._run_manager(self.manager, self._started))

    def _caller(self) -> WardenAPI:
        token = get_access_token()
        if token is None or not token.claims:
            raise ToolError("no caller token on this request")
        return WardenAPI(self.client, token.token, base_url=token.claims["base_url"])

    async def _ensure_started(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._start(loop)
        assert self._started is not None
        await asyncio.shield(self._started)

    @staticmethod
    async def _run_manager(manager: Any, started: asyncio.Future[None]) -> None:
        async with manager.run():
            started.set_result(None)
            await asyncio.Event().wait()  # until the loop ends

    async def _identity(self, secret: str, base_url: str) -> str:
        key = hashlib.sha256(secret.encode()).hexdigest()
        cached = self._verified.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        identity = await WardenAPI(self.client, secret, base_url=base_url).whoami()
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[key] = (time.monotonic() + VERIFIED_SECONDS, identity)
        return identity

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        keyword, _, secret = _header(scope, b"authorization").partition(" ")
        if keyword.lower() != "bearer" or not secret.strip():
            await _refuse(send, 401, "Send Authorization: Bearer <your Warden access token>.")
            return
        await self._ensure_started()
        host = _header(scope, b"host") or "localhost"
        base_url = f"{scope.get('scheme', 'http')}://{host}"
        try:
            identity = await self._identity(secret.strip(), base_url)
        except CallerRefused as exc:
            await _refuse(send, 401, str(exc))
            return
        except ToolError as exc:
            await _refuse(send, 503, str(exc))
            return
        user = AuthenticatedUser(
            AccessToken(
                token=secret.strip(),
                client_id=identity,
                subject=identity,
                scopes=[],
                claims={"base_url": base_url},
            )
        )
        scope = {**scope, "user": user, "auth": None}
        reset = auth_context_var.set(user)
        try:
            await self.manager.handle_request(scope, receive, send)
        finally:
            auth_context_var.reset(reset)


def mount(control_plane: ASGIApp, *, prefix: str = "/mcp") -> Any:
    """An ASGI app sending ``prefix`` and everything below it to MCP, the rest to Django."""
    mcp_app = McpHttpApp(control_plane)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == prefix or path.startswith(prefix + "/")):
            await mcp_app(scope, receive, send)
        else:
            await control_plane(scope, receive, send)

    app.mcp = mcp_app  # type: ignore[attr-defined]
    return app
