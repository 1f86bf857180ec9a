"""The agent's probes on its metrics port, its version, and a bundle of an unknown format
major version (kept out, the last good bundle stays, the reason is reported)."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from typing import Any

import pytest

from agent.heartbeat import HeartbeatSender
from agent.upstream import UpstreamConfig
from agent.version import VERSION
from tests.agent.conftest import probe, wait_for


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_agent_with_a_bundle_and_a_reachable_upstream_is_ready(
    agent_factory: Any, unused_port: int
) -> None:
    agent_factory(metrics_port=unused_port)
    assert probe(unused_port, "/healthz") == (200, {"status": "alive", "version": VERSION})
    status, body = probe(unused_port, "/readyz")
    assert status == 200, body
    assert body["checks"]["bundle"] == {"ok": True, "detail": "version v1"}
    assert body["checks"]["upstream"]["ok"] is True
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{unused_port}/metrics").read().decode()
    assert 'warden_agent_bundle_info{version="v1"}' in metrics


def test_agent_whose_upstream_is_down_is_alive_but_not_ready(
    agent_factory: Any, unused_port: int, pg_database: str
) -> None:
    down = _closed_port()
    agent_factory(
        metrics_port=unused_port,
        upstream=UpstreamConfig("127.0.0.1", down, "postgres", "", pg_database),
    )
    assert probe(unused_port, "/healthz")[0] == 200
    status, body = probe(unused_port, "/readyz")
    assert status == 503
    assert body["checks"]["bundle"]["ok"] is True
    assert body["checks"]["upstream"]["ok"] is False
    assert f"127.0.0.1:{down} unreachable" in body["checks"]["upstream"]["detail"]


def test_agent_without_a_bundle_is_not_ready(
    agent_factory: Any, control_plane: Any, unused_port: int
) -> None:
    control_plane.down = True
    agent_factory(metrics_port=unused_port)
    status, body = probe(unused_port, "/readyz")
    assert status == 503
    assert body["checks"]["bundle"] == {"ok": False, "detail": "no verified bundle yet"}


def test_bundle_of_an_unknown_format_major_keeps_the_last_good_one_and_says_why(
    agent_factory: Any, control_plane: Any, make_bundle: Any, unused_port: int
) -> None:
    running = agent_factory(metrics_port=unused_port)
    with running.connect("alice") as conn:
        masked = conn.execute("SELECT email FROM customers WHERE id = 1").fetchone()[0]
        assert masked.startswith("*")
        future = make_bundle("v2")
        future["format"] = 2
        future["rules"] = []  # would unmask everything if an old agent misread it
        control_plane.set_bundle(future)
        running.call(running.agent.poller.poll_once())
        assert running.agent.store.current.version == "v1"
        assert conn.execute("SELECT email FROM customers WHERE id = 1").fetchone()[0] == masked
    reason = running.agent.store.rejection
    assert "unsupported bundle format 2" in reason and "reads format 1" in reason
    status, body = probe(unused_port, "/readyz")
    assert status == 200  # still enforcing its last good bundle
    assert body["checks"]["bundle"]["rejected_latest"] == reason
    payload = HeartbeatSender(running.agent).payload()
    assert payload["version"] == VERSION
    assert payload["bundle_version"] == "v1"
    assert payload["bundle_rejection"] == reason


@pytest.mark.parametrize("minor_format", [1, "1", "1.4"])
def test_bundle_of_the_same_major_with_a_minor_version_is_installed(
    agent_factory: Any, control_plane: Any, make_bundle: Any, minor_format: object
) -> None:
    running = agent_factory()
    newer = make_bundle("v2")
    newer["format"] = minor_format
    control_plane.set_bundle(newer)
    running.call(running.agent.poller.poll_once())
    assert running.agent.store.current.version == "v2"
    assert running.agent.store.rejection == ""


def test_agent_log_keeps_its_own_lines_without_one_per_control_plane_request(
    agent_process_factory: Any, control_plane: Any
) -> None:
    process = agent_process_factory("--log-level", "INFO")  # polls every 0.5 s
    polls = control_plane.bundle_polls
    wait_for(lambda: control_plane.bundle_polls >= polls + 4, timeout=30)
    log = process.stop()
    assert f"warden-agent {VERSION} listening on" in log
    assert "installed bundle version v1" in log
    assert "HTTP Request:" not in log, log
