"""``python -m warden_mcp --control-plane URL --token T``: the MCP server over stdio.

An MCP client (Claude Desktop, Cursor, an agent framework) launches this command; the token
(or ``WARDEN_TOKEN``) is the caller's own Warden access token, checked at start.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import httpx

from warden_mcp.controlplane import WardenAPI
from warden_mcp.server import build_server


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m warden_mcp", description=__doc__)
    parser.add_argument("--control-plane", required=True, help="e.g. https://warden.example.com")
    parser.add_argument("--token", default=os.environ.get("WARDEN_TOKEN", ""))
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("pass --token or set WARDEN_TOKEN (a Warden personal access token)")
    return args


async def serve(control_plane: str, token: str) -> None:
    async with httpx.AsyncClient(base_url=control_plane, timeout=30.0) as client:
        api = WardenAPI(client, token)
        identity = await api.whoami()  # fail at start, not at the first tool call
        print(f"warden_mcp: serving {identity} over stdio", file=sys.stderr)
        server, tools = build_server(lambda: api)
        try:
            await server.run_stdio_async()
        finally:
            await tools.routes.drain()
            await tools.connections.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        asyncio.run(serve(args.control_plane, args.token))
    except Exception as exc:  # a clear line for the MCP client's log, not a traceback
        print(f"warden_mcp: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
