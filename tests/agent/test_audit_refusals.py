"""Batches the control plane refuses (agent.audit ``_send_refused``): halved down to the
events it refuses alone, each half carrying only its own statements; only the control
plane's own word on the content counts as a refusal (a wrong Host header or a proxy's page
is a control plane to retry); an outage part-way spools only what is left.  The real
control plane's refusal, end to end: tests/integration/test_agent_refused_audit.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from agent.audit import AuditShipper, encode_batch, expand_batch, split_batch
from agent.controlplane import AuditBatchRefused, ControlPlaneUnavailable, refuses_content
from warden_client import ApiError

PREFIX = "3f9a0c12-aaaa-4bbb-8ccc-"


def _events(count: int, width: int = 40) -> list[Any]:
    """Events with a statement each (ad hoc SQL: every text its own)."""
    return [
        (f'"statement":"SELECT {n} AS c{n} {"x" * width}","decision":"allow"', 1.7e9 + n, 1,
         0.5, False, 9)
        for n in range(count)
    ]  # fmt: skip


class RefusingPlane:
    """post_audit of a control plane that refuses every batch holding a refused statement,
    and goes away after ``up_for`` calls."""

    def __init__(self, refused: set[int], up_for: int = 10**9) -> None:
        self.refused = refused
        self.up_for = up_for
        self.calls = 0
        self.uploaded = 0
        self.stored: dict[str, Any] = {}

    async def post_audit(self, body: str) -> dict[str, int]:
        self.calls += 1
        self.uploaded += len(body)
        if self.calls > self.up_for:
            raise ControlPlaneUnavailable("down")
        events = expand_batch(json.loads(body))
        numbers = [int(event["statement"].split()[1]) for event in events]
        if self.refused & set(numbers):
            raise AuditBatchRefused("HTTP 400 invalid: events[0].decision: must be one of")
        new = [event for event in events if event["id"] not in self.stored]
        self.stored.update((event["id"], event) for event in events)
        return {"accepted": len(new), "duplicates": len(events) - len(new)}


def _shipper(plane: RefusingPlane, state: Path) -> AuditShipper:
    return AuditShipper(plane, state, journal_name=None)  # type: ignore[arg-type]


def _set_aside(state: Path) -> list[Any]:
    path = state / "audit-spool.bad"
    if not path.exists():
        return []
    return [event for line in path.read_text().splitlines() for event in _expanded(line)]


def _expanded(line: str) -> list[Any]:
    return expand_batch(json.loads(line))


def test_each_half_carries_only_its_own_statements_and_every_event_keeps_its_id() -> None:
    events = _events(9)
    body = encode_batch(PREFIX, 100, events)
    halves = split_batch(body)
    assert halves is not None and len(halves) == 2
    whole = expand_batch(json.loads(body))
    parts = [expand_batch(json.loads(half)) for half in halves]
    assert parts[0] + parts[1] == whole  # ids, times, statements: the same events
    for half, part in zip(halves, parts, strict=True):
        assert len(json.loads(half)["statements"]) == len(part)
    assert split_batch(encode_batch(PREFIX, 5, events[:1])) is None


def test_an_all_refused_batch_uploads_n_log_n_bytes_not_n_squared(tmp_path: Path) -> None:
    """400 events of 3 KB, every one refused: each half holds only its statements."""
    events = _events(400, width=3000)
    plane = RefusingPlane(refused=set(range(400)))
    shipper = _shipper(plane, tmp_path)
    batch = encode_batch(PREFIX, 0, events)
    shipper.pending.append(batch)
    asyncio.run(shipper.flush())
    assert plane.calls == 2 * 400 - 1 and plane.stored == {}
    assert plane.uploaded < 10 * len(batch)  # log2(400) levels of the batch's bytes
    assert len(_set_aside(tmp_path)) == 400 == shipper.refused
    assert (tmp_path / "audit-spool.bad").stat().st_size < 2 * len(batch)


@pytest.mark.parametrize("down_after", range(1, 8))
def test_an_outage_mid_bisection_spools_only_what_is_left(tmp_path: Path, down_after: int) -> None:
    """Event 6 of 9 refused; the control plane goes away after ``down_after`` calls, then
    comes back: every other event is stored once and event 6 is set aside once."""
    plane = RefusingPlane(refused={6}, up_for=down_after)
    shipper = _shipper(plane, tmp_path)
    shipper.pending.append(encode_batch(PREFIX, 0, _events(9)))
    asyncio.run(shipper.flush())
    plane.up_for = 10**9
    asyncio.run(shipper.flush())  # the spool's replay
    stored = sorted(int(event["statement"].split()[1]) for event in plane.stored.values())
    assert stored == [0, 1, 2, 3, 4, 5, 7, 8]
    assert [event["id"] for event in _set_aside(tmp_path)] == [f"{PREFIX}{6:012x}"]
    assert not shipper.spool_path.exists() and shipper.pending == []


@pytest.mark.parametrize(
    ("status", "body", "refused"),
    [
        (400, {"detail": "events[6].decision: must be one of allow", "code": "invalid"}, True),
        (400, {"detail": "JSON parse error - Expecting value", "code": "parse_error"}, True),
        (413, {"detail": "Request Entity Too Large", "code": "server_error"}, True),
        (400, {"detail": "Invalid HTTP_HOST header: 'cp:8000'.", "code": "invalid"}, False),
        (
            400,
            {"detail": "The plain HTTP request was sent to HTTPS port", "code": "server_error"},
            False,
        ),
        (400, {"detail": "format: must be 4 (or 3)", "code": "invalid"}, False),
        (403, {"detail": "does not serve datasource(s) shop", "code": "not_allowed"}, False),
        (401, {"detail": "Invalid token.", "code": "authentication_failed"}, False),
    ],
)
def test_only_the_control_planes_word_on_the_content_is_a_refusal(
    status: int, body: dict[str, str], refused: bool
) -> None:
    assert refuses_content(ApiError(status, body)) is refused
