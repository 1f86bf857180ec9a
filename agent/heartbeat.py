"""Heartbeats: the agent tells the control plane where it listens and how it is doing.

The first heartbeat registers the agent (the control plane's Agents page, and the MCP
server's routing of callers' statements to a live agent of the datasource); later ones
refresh it every ``interval`` seconds, which the control plane may change in its answer.
A failed heartbeat is logged and retried at the next tick: it never affects traffic.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent.controlplane import ControlPlaneUnavailable
from agent.version import VERSION

if TYPE_CHECKING:
    from agent.server import Agent

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 10.0
# An address clients can reach when the listener's own (0.0.0.0, a container's) is not it.
ADVERTISE_ENV = "WARDEN_AGENT_ADVERTISE"


class HeartbeatSender:
    def __init__(self, agent: Agent, *, interval: float = DEFAULT_INTERVAL) -> None:
        self.agent = agent
        self.interval = interval
        self.started_at = datetime.now(UTC).isoformat()
        self._last_count = self._statements()
        self._last_time = time.monotonic()

    def _statements(self) -> int:
        return sum(self.agent.metrics.statements.by_decision.values())

    def _address(self) -> str:
        config = self.agent.config
        return os.environ.get(ADVERTISE_ENV) or f"{config.listen_host}:{config.listen_port}"

    def payload(self) -> dict[str, Any]:
        now, count = time.monotonic(), self._statements()
        rate = (count - self._last_count) / max(now - self._last_time, 1e-6)
        self._last_count, self._last_time = count, now
        bundle = self.agent.store.current
        return {
            "datasource": self.agent.config.datasource,
            "address": self._address(),
            "version": VERSION,
            "bundle_version": bundle.version if bundle is not None else "",
            "bundle_rejection": self.agent.store.rejection[:300],
            "masking_problem": self.agent.masking_problem[:300],
            "trusted_key_ids": sorted(self.agent.store.keyring.keys),
            "started_at": self.started_at,
            "open_connections": len(self.agent.sessions),
            "statements_per_second": round(max(rate, 0.0), 3),
        }

    async def beat(self) -> None:
        answer = await self.agent.cp.heartbeat(self.payload())
        interval = answer.get("interval")
        if isinstance(interval, int | float) and interval > 0:
            self.interval = float(interval)

    async def run(self) -> None:
        while True:
            try:
                await self.beat()
            except ControlPlaneUnavailable as exc:
                log.warning("heartbeat failed: %s", exc)
            except Exception:
                log.exception("heartbeat failed")
            await asyncio.sleep(self.interval)
