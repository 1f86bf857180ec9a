"""Audit shipper: batches events to the control plane; spools them to disk when it is down.

Every event carries a uuid4 ``id`` the control plane de-duplicates by, so replaying the
spool after a partial failure never creates duplicates, and nothing is dropped: a batch
leaves memory only after the control plane accepted it or it is on disk (fsynced).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.controlplane import ControlPlaneClient, ControlPlaneUnavailable

log = logging.getLogger("agent.audit")

BATCH_SIZE = 2000
_RANDOM_POOL_EVENTS = 4096


class _Uuid4Source:
    """Random (version 4) UUIDs from a pooled os.urandom read: one syscall per 4096."""

    def __init__(self) -> None:
        self._pool = ""
        self._offset = 0

    def next(self) -> str:
        if self._offset >= len(self._pool):
            self._pool = os.urandom(16 * _RANDOM_POOL_EVENTS).hex()
            self._offset = 0
        h = self._pool[self._offset : self._offset + 32]
        self._offset += 32
        variant = "89ab"[int(h[16], 16) & 3]
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"


_uuid4 = _Uuid4Source()
new_event_id = _uuid4.next


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def new_event(**fields: Any) -> dict[str, Any]:
    return {"id": new_event_id(), "time": now_iso(), **fields}


def encode(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


class AuditShipper:
    def __init__(
        self,
        client: ControlPlaneClient,
        state_dir: Path,
        *,
        flush_interval: float = 1.0,
    ) -> None:
        self.client = client
        self.spool_path = state_dir / "audit-spool.jsonl"
        self.flush_interval = flush_interval
        # Events are kept JSON-encoded: the hot path pre-encodes the parts that repeat.
        self.pending: list[str] = []
        self._wakeup = asyncio.Event()
        self._lock = asyncio.Lock()
        self.accepted = 0
        self.duplicates = 0

    def record(self, event: dict[str, Any]) -> None:
        self.record_encoded(encode(event))

    def record_encoded(self, event_json: str) -> None:
        """Queue one event given as a JSON object text (must contain a unique "id")."""
        self.pending.append(event_json)
        if len(self.pending) >= BATCH_SIZE:
            self._wakeup.set()

    def spooled_count(self) -> int:
        if not self.spool_path.exists():
            return 0
        with open(self.spool_path, "rb") as handle:
            return sum(1 for line in handle if line.strip())

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.flush_interval)
            self._wakeup.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("audit flush failed")

    async def flush(self) -> None:
        async with self._lock:
            if not await self._replay_spool():
                if self.pending:  # keep ordering: new events go behind the spooled ones
                    self._spool(self.pending)
                    self.pending = []
                return
            while self.pending:
                batch, self.pending = self.pending[:BATCH_SIZE], self.pending[BATCH_SIZE:]
                if not await self._send(batch):
                    self._spool(batch + self.pending)
                    self.pending = []

    async def _send(self, batch: list[str]) -> bool:
        try:
            result = await self.client.post_audit(batch)
        except ControlPlaneUnavailable as exc:
            log.warning("audit delivery failed, spooling: %s", exc)
            return False
        self.accepted += int(result.get("accepted", 0))
        self.duplicates += int(result.get("duplicates", 0))
        return True

    def _spool(self, events: list[str]) -> None:
        with open(self.spool_path, "a", encoding="utf-8") as handle:
            for event in events:
                handle.write(event + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    async def _replay_spool(self) -> bool:
        """Send spooled events; False (and everything still on disk) if that failed."""
        replaying = self.spool_path.with_suffix(".replaying")
        if not self.spool_path.exists() and not replaying.exists():
            return True
        if not replaying.exists():
            os.replace(self.spool_path, replaying)
        elif self.spool_path.exists():
            # A crash mid-replay: fold the newer spool lines in behind the older ones.
            with open(replaying, "a", encoding="utf-8") as out, open(self.spool_path) as new:
                out.write(new.read())
            self.spool_path.unlink()
        events = [line for line in replaying.read_text(encoding="utf-8").splitlines() if line]
        for start in range(0, len(events), BATCH_SIZE):
            if not await self._send(events[start : start + BATCH_SIZE]):
                self._spool(events[start:])
                replaying.unlink()
                return False
        replaying.unlink()
        return True

    async def close(self) -> None:
        """Final flush; whatever cannot be delivered is spooled."""
        await self.flush()
        if self.pending:
            self._spool(self.pending)
            self.pending = []
