"""The control plane's API as the MCP tools use it, always with the caller's own token, over
``warden_client``: this module maps the client's errors to the tools' errors."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from mcp.server.mcpserver.exceptions import ToolError

from warden_client import ApiError, AsyncWardenClient, MalformedAnswer, operations
from warden_client.operations import Operation

T = TypeVar("T")

# The base timeout of a long-poll; the server may hold it ``wait`` seconds more.
TIMEOUT = 10.0


class CallerRefused(ToolError):
    """The control plane refused the caller (bad token, unknown datasource, bad input)."""


def _reason(error: ApiError) -> str:
    body = error.body
    if "detail" in body:
        return str(body["detail"])
    if body:
        return "; ".join(
            f"{field}: {' '.join(map(str, problems)) if isinstance(problems, list) else problems}"
            for field, problems in body.items()
        )
    return f"HTTP {error.status}"


class WardenAPI:
    """One caller's view of the control plane (``client`` may be shared between callers)."""

    def __init__(self, client: httpx.AsyncClient, token: str, *, base_url: str = "") -> None:
        self.client = client
        self.token = token
        self.base_url = base_url.rstrip("/")
        self._warden = AsyncWardenClient(self.base_url, token, timeout=TIMEOUT, http=client)

    async def _call(self, operation: Operation[T]) -> T:
        try:
            return await self._warden.call(operation)
        except httpx.HTTPError as exc:
            raise ToolError(f"the Warden control plane is unreachable: {exc!r}") from exc
        except MalformedAnswer as exc:
            raise ToolError(f"the Warden control plane answered badly: {exc}") from exc
        except ApiError as exc:
            if exc.status in (401, 403):
                raise CallerRefused(f"Warden refused the token: {_reason(exc)}") from exc
            raise CallerRefused(_reason(exc)) from exc

    async def whoami(self) -> str:
        """The caller's Warden identity (a revoked or expired token is refused)."""
        return await self._call(operations.mcp_whoami())

    async def call_opened(
        self, tool: str, arguments: dict[str, Any], *, route: bool = False
    ) -> dict[str, Any]:
        """Audit the tool call; check the datasource; with ``route``, name its live agent."""
        return await self._call(operations.mcp_call_opened(tool, arguments, route=route))

    async def datasources(self) -> list[dict[str, Any]]:
        return await self._call(operations.mcp_datasources())

    async def catalog(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._call(operations.mcp_catalog(params))

    async def table(self, datasource: str, table: str) -> dict[str, Any]:
        return await self._call(operations.mcp_table(datasource, table))

    async def explain(self, datasource: str, sql: str) -> dict[str, Any]:
        return await self._call(operations.mcp_explain(datasource, sql))

    async def access_request_create(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._call(operations.access_request_create(body))

    async def access_request(self, request_id: int, *, wait: float = 0.0) -> dict[str, Any]:
        """The request as its requester sees it; with ``wait`` (≤ 60 s) the answer comes as
        soon as a reviewer decides (pushed to the long-poll, see approvals.push)."""
        return await self._call(operations.access_request(request_id, wait=wait))
