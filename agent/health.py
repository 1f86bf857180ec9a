"""The agent's metrics port: Prometheus metrics, ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 while the process serves at all (a liveness probe restarts it
otherwise). ``/readyz`` answers 200 only when the agent can do its work: a verified bundle
is installed and the upstream database accepts a connection; 503 otherwise. Its JSON body
names each check, and why the latest bundle was refused if it was (the agent then keeps its
last good one), so a load balancer takes the agent out of rotation and an operator sees why.
The server runs in daemon threads, off the event loop that carries the clients' traffic.

Under ``--workers N`` the supervisor answers the same three paths on the metrics port
(``supervisor_app``): ``/readyz`` asks every worker's own ``/readyz`` and is 200 only when
all of them are ready (the kernel hands new connections to any worker), with the same
``checks`` (the bundle check names the version when the workers agree on one) and each
worker's answer under ``workers``.
"""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import CollectorRegistry, make_wsgi_app

from agent.version import VERSION

if TYPE_CHECKING:
    from agent.server import Agent

UPSTREAM_TIMEOUT_SECONDS = 2.0
# A worker's /readyz tries the upstream for up to UPSTREAM_TIMEOUT_SECONDS itself.
WORKER_READY_TIMEOUT_SECONDS = UPSTREAM_TIMEOUT_SECONDS + 1.0


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
    if agent.masking_problem:  # enforced (redacted), so ready; said so for the operator
        checks["bundle"]["hash_masks"] = agent.masking_problem
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
    def ready() -> tuple[bool, dict[str, Any]]:
        is_ready, checks = readiness(agent)
        return is_ready, {"checks": checks}

    return _probes_app(ready, agent.metrics.registry)


def _probes_app(
    ready: Callable[[], tuple[bool, dict[str, Any]]], registry: CollectorRegistry
) -> WSGIApplication:
    """``/healthz``, ``/readyz`` (from ``ready``) and the registry's metrics elsewhere."""
    metrics = make_wsgi_app(registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            return _json(start_response, 200, {"status": "alive", "version": VERSION})
        if path == "/readyz":
            is_ready, body = ready()
            body = {"status": "ready" if is_ready else "not ready", **body}
            return _json(start_response, 200 if is_ready else 503, body)
        return metrics(environ, start_response)

    return app


def _worker_readiness(port: int) -> dict[str, Any]:
    """One worker's /readyz body (``ready`` added), or why it did not answer."""
    url = f"http://127.0.0.1:{port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=WORKER_READY_TIMEOUT_SECONDS) as answer:
            return {"ready": True, **json.loads(answer.read())}
    except urllib.error.HTTPError as refused:  # 503: the worker says why
        return {"ready": False, **json.loads(refused.read() or b"{}")}
    except (OSError, ValueError) as exc:
        return {"ready": False, "status": f"no answer on port {port}: {exc}", "checks": {}}


def workers_readiness(worker_ports: list[int]) -> tuple[bool, dict[str, Any]]:
    """The supervisor's readiness: every worker ready, and each check over all workers."""
    with ThreadPoolExecutor(max_workers=min(8, len(worker_ports))) as pool:
        answers = list(pool.map(_worker_readiness, worker_ports))
    workers = {str(index): answer for index, answer in enumerate(answers)}
    versions = {answer["checks"].get("bundle", {}).get("detail", "no answer") for answer in answers}
    bundle_ok = all(answer["checks"].get("bundle", {}).get("ok") for answer in answers)
    upstream_ok = all(answer["checks"].get("upstream", {}).get("ok") for answer in answers)
    checks = {
        "bundle": {
            "ok": bundle_ok and len(versions) == 1,
            "detail": versions.pop()
            if len(versions) == 1
            else f"workers differ: {sorted(versions)}",
        },
        "upstream": {
            "ok": upstream_ok,
            "detail": "every worker reaches it" if upstream_ok else "not from every worker",
        },
    }
    ready = all(answer["ready"] for answer in answers) and all(c["ok"] for c in checks.values())
    return ready, {"checks": checks, "workers": workers}


def supervisor_app(worker_ports: list[int], registry: CollectorRegistry) -> WSGIApplication:
    return _probes_app(lambda: workers_readiness(worker_ports), registry)


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
    return probes_serve(health_app(agent), port, addr)


def probes_serve(app: WSGIApplication, port: int, addr: str = "127.0.0.1") -> WSGIServer:
    server = make_server(addr, port, app, _Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True, name="agent-health").start()
    return server
