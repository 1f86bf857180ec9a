"""Opening ``run_query`` calls without a control-plane round trip on the critical path.

Every tool call is opened on the control plane (``POST /api/v1/mcp/calls``): it is audited
with channel ``mcp``, the token and the caller's right to the datasource are checked, and
for a statement the live agent is named. That request costs more than the statement itself
(Django's per-request thread and database connection, the audit chain's lock), so a caller's
confirmed route is trusted for ``ROUTE_SECONDS``: while it is fresh the statement starts at
once and the same opening request, audit included, is sent beside it. Every call is still
opened and audited; each confirmation refreshes the route, and a refusal (a revoked or
expired token, a datasource no longer allowed) forgets every route of that token, so the
next call waits for the control plane and is refused.

The bound, documented in the README: a token revoked (or a datasource denied) stops working
for ``run_query`` at most ``ROUTE_SECONDS`` after the last confirmation the control plane
gave before the change. ``WARDEN_MCP_ROUTE_SECONDS=0`` opens every call before running it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from typing import Any

from warden_mcp.controlplane import WardenAPI

logger = logging.getLogger(__name__)

ROUTE_SECONDS = float(os.environ.get("WARDEN_MCP_ROUTE_SECONDS", "1.0"))
_MAX_ROUTES = 10_000


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Routes:
    """Confirmed ``run_query`` openings per (token, datasource), each trusted briefly."""

    def __init__(self, seconds: float = ROUTE_SECONDS) -> None:
        self.seconds = seconds
        self._confirmed: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._background: set[asyncio.Task[None]] = set()

    def _fresh(self, token: str, datasource: str) -> dict[str, Any] | None:
        entry = self._confirmed.get((_key(token), datasource))
        if entry is None or time.monotonic() - entry[0] >= self.seconds:
            return None
        return entry[1]

    def _remember(
        self, token: str, datasource: str, asked_at: float, opened: dict[str, Any]
    ) -> None:
        if self.seconds <= 0:
            return
        if len(self._confirmed) > _MAX_ROUTES:
            self._confirmed.clear()
        key = (_key(token), datasource)
        current = self._confirmed.get(key)
        if current is None or current[0] < asked_at:
            self._confirmed[key] = (asked_at, opened)

    def forget(self, token: str) -> None:
        """Drop every route of ``token`` (the control plane refused it or the call)."""
        key = _key(token)
        for entry in [k for k in self._confirmed if k[0] == key]:
            del self._confirmed[entry]

    async def _confirm(
        self, api: WardenAPI, datasource: str, arguments: dict[str, Any]
    ) -> dict[str, Any]:
        asked_at = time.monotonic()  # the confirmation holds from when it was asked for
        try:
            opened = await api.call_opened("run_query", arguments, route=True)
        except Exception:
            self.forget(api.token)
            raise
        self._remember(api.token, datasource, asked_at, opened)
        return opened

    async def open(
        self, api: WardenAPI, datasource: str, arguments: dict[str, Any]
    ) -> dict[str, Any]:
        """The opened call (identity, datasource, agent): confirmed now, or, while the
        caller's last confirmation is fresh, that one with this call's opening sent beside."""
        opened = self._fresh(api.token, datasource)
        if opened is None:
            return await self._confirm(api, datasource, arguments)
        task = asyncio.ensure_future(self._confirm_quietly(api, datasource, arguments))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return opened

    async def _confirm_quietly(
        self, api: WardenAPI, datasource: str, arguments: dict[str, Any]
    ) -> None:
        try:
            await self._confirm(api, datasource, arguments)
        except Exception as exc:  # forgotten: the next call is opened first and refused
            logger.warning("warden_mcp: a run_query call's opening was refused: %s", exc)

    async def drain(self) -> None:
        """Wait for the openings still in flight (so none is lost at shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
