"""The MCP SDK's own client, over either transport, for the tests and bench/mcp.py."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

REPO_ROOT = Path(__file__).resolve().parents[2]
TRANSPORTS = ("http", "stdio")


@asynccontextmanager
async def mcp_session(
    transport: str, base_url: str, token: str, *, env: dict[str, str] | None = None
) -> AsyncIterator[ClientSession]:
    """An initialised MCP session with Warden as the token's owner (``env``: more
    environment for the stdio server)."""
    if transport == "http":
        headers = {"Authorization": f"Bearer {token}"}
        timeout = httpx2.Timeout(30.0, read=600.0)
        async with (
            httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
            streamable_http_client(f"{base_url}/mcp/", http_client=http) as streams,
            ClientSession(streams[0], streams[1]) as session,
        ):
            await session.initialize()
            yield session
        return
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "warden_mcp", "--control-plane", base_url, "--token", token],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})},
    )
    with open(os.devnull, "w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as streams,
            ClientSession(streams[0], streams[1]) as session,
        ):
            await session.initialize()
            yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    """A tool's structured result; AssertionError with the tool's text when it failed."""
    result = await session.call_tool(tool, arguments)
    if result.is_error:
        raise ToolFailed(result.content[0].text if result.content else "")
    structured = result.structured_content
    assert structured is not None, result
    assert json.loads(result.content[0].text) == structured
    return structured


class ToolFailed(AssertionError):
    """The tool answered with an MCP tool error (its text is the message)."""
