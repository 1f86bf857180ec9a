"""The agent's metrics port: Prometheus metrics, ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 while the process serves at all (a liveness probe restarts it
otherwise). ``/readyz`` answers 200 only when the agent can do its work: a verified bundle
is installed and the upstream database accepts a connection; 503 otherwise. Its JSON body
names each check, and why the latest bundle was refused if it was (the agent then keeps its
last good one), so a load balancer takes the agent out of rotation and an operator sees why.
The server runs in daemon threads, off the event loop that carries the clients' traffic.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterable
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import make_wsgi_app

from agent.version import VERSION

if TYPE_CHECKING:
    from agent.server import Agent

UPSTREAM_TIMEOUT_SECONDS = 2.0


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds would flood the agent's log."""


def readiness(agent: Agent) -> tuple[bool, dict[str, Any]]:
    """Whether the agent is ready, and each check's outcome."""
    bundle = agent.store.current
    checks: dict[str, Any] = {
        "bundle": {
            "ok": bundle is not None,
            "detail": f"version {bundle.version}" if bundle else "no verified bundle yet",
        },
        "upstream": _upstream_check(agent),
    }
    if agent.store.rejection:
        checks["bundle"]["rejected_latest"] = agent.store.rejection
    return all(check["ok"] for check in checks.values()), checks


def _upstream_check(agent: Agent) -> dict[str, Any]:
    upstream = agent.config.upstream
    address = (upstream.host, upstream.port)
    try:
        with socket.create_connection(address, timeout=UPSTREAM_TIMEOUT_SECONDS):
            pass
    except OSError as exc:
        return {"ok": False, "detail": f"{upstream.host}:{upstream.port} unreachable: {exc}"}
    return {"ok": True, "detail": f"{upstream.host}:{upstream.port}"}


def health_app(agent: Agent) -> WSGIApplication:
    metrics = make_wsgi_app(agent.metrics.registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            return _json(start_response, 200, {"status": "alive", "version": VERSION})
        if path == "/readyz":
            ready, checks = readiness(agent)
            body = {"status": "ready" if ready else "not ready", "checks": checks}
            return _json(start_response, 200 if ready else 503, body)
        return metrics(environ, start_response)

    return app


def _json(start_response: StartResponse, status: int, body: dict[str, Any]) -> list[bytes]:
    payload = json.dumps(body).encode()
    reason = "OK" if status == 200 else "Service Unavailable"
    start_response(
        f"{status} {reason}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
    )
    return [payload]


def health_serve(agent: Agent, port: int, addr: str = "127.0.0.1") -> WSGIServer:
    """Serve metrics and the probes on ``addr:port`` in a daemon thread."""
    server = make_server(addr, port, health_app(agent), _Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True, name="agent-health").start()
    return server
