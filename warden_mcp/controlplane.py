"""The control plane's API as the MCP tools use it, always with the caller's own token."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx
from mcp.server.mcpserver.exceptions import ToolError


class CallerRefused(ToolError):
    """The control plane refused the caller (bad token, unknown datasource, bad input)."""


def _reason(response: httpx.Response) -> str:
    body: Any = None
    with contextlib.suppress(ValueError):
        body = response.json()
    if isinstance(body, dict):
        if "detail" in body:
            return str(body["detail"])
        return "; ".join(
            f"{field}: {' '.join(map(str, problems)) if isinstance(problems, list) else problems}"
            for field, problems in body.items()
        )
    return f"HTTP {response.status_code}"


class WardenAPI:
    """One caller's view of the control plane (``client`` may be shared between callers)."""

    def __init__(self, client: httpx.AsyncClient, token: str, *, base_url: str = "") -> None:
        self.client = client
        self.token = token
        self.base_url = base_url.rstrip("/")

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            response = await self.client.request(
                method, self.base_url + path, headers=headers, **kwargs
            )
        except httpx.HTTPError as exc:
            raise ToolError(f"the Warden control plane is unreachable: {exc!r}") from exc
        if response.status_code in (401, 403):
            raise CallerRefused(f"Warden refused the token: {_reason(response)}")
        if response.status_code >= 400:
            raise CallerRefused(_reason(response))
        return response.json()

    async def whoami(self) -> str:
        """The caller's Warden identity (a revoked or expired token is refused)."""
        answer = await self._call("GET", "/api/v1/mcp/whoami")
        return str(answer["identity"])

    async def call_opened(
        self, tool: str, arguments: dict[str, Any], *, route: bool = False
    ) -> dict[str, Any]:
        """Audit the tool call; check the datasource; with ``route``, name its live agent."""
        body = {"tool": tool, "arguments": arguments, "route": route}
        answer: dict[str, Any] = await self._call("POST", "/api/v1/mcp/calls", json=body)
        return answer

    async def datasources(self) -> list[dict[str, Any]]:
        answer = await self._call("GET", "/api/v1/mcp/datasources")
        return list(answer["datasources"])

    async def catalog(self, params: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = await self._call("GET", "/api/v1/mcp/catalog", params=params)
        return answer

    async def table(self, datasource: str, table: str) -> dict[str, Any]:
        params = {"datasource": datasource, "table": table}
        answer: dict[str, Any] = await self._call("GET", "/api/v1/mcp/table", params=params)
        return answer

    async def explain(self, datasource: str, sql: str) -> dict[str, Any]:
        body = {"datasource": datasource, "sql": sql}
        answer: dict[str, Any] = await self._call("POST", "/api/v1/mcp/explain", json=body)
        return answer

    async def access_request_create(self, body: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = await self._call("POST", "/api/v1/access-requests/", json=body)
        return answer

    async def access_request(self, request_id: int, *, wait: float = 0.0) -> dict[str, Any]:
        """The request as its requester sees it; with ``wait`` (≤ 60 s) the answer comes as
        soon as a reviewer decides (pushed to the long-poll, see approvals.push)."""
        params = {"wait": f"{wait:g}"} if wait > 0 else None
        answer: dict[str, Any] = await self._call(
            "GET",
            f"/api/v1/access-requests/{request_id}/",
            params=params,
            timeout=httpx.Timeout(10.0 + wait),
        )
        return answer
