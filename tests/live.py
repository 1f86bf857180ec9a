"""A real ASGI server (uvicorn, in a thread) serving Warden, and a browser logged in to it.

pytest-django's live_server is WSGI and cannot speak websockets; this serves
config.asgi.application (HTTP + Channels) in-process, so it uses the test database and
whatever CHANNEL_LAYERS the caller configured. Shared by the browser test and the bench.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from config.channel_layer import redis_channel_layer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def asgi_server() -> Iterator[str]:
    """Serve Warden over HTTP and websockets on a free port; yields the base URL."""
    import uvicorn

    from config.asgi import application

    port = free_port()
    config = uvicorn.Config(
        application,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        ws="websockets-sansio",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError(f"uvicorn did not start on 127.0.0.1:{port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def session_cookie(user: Any, base_url: str) -> dict[str, str]:
    """A logged-in session for `user`, as a Playwright cookie."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    return {
        "name": settings.SESSION_COOKIE_NAME,
        "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
        "url": base_url,
    }


def require_chromium() -> None:
    import os

    if not os.path.exists(CHROMIUM):
        raise AssertionError(f"Debian's Chromium must be installed at {CHROMIUM} for this test")


REDIS_URL = "redis://127.0.0.1:6379"


def use_redis_channel_layer(settings: Any) -> None:
    """Point Channels at the machine's real Redis, under a prefix of this test's own."""
    import uuid

    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        raise AssertionError(f"Redis must be running at {REDIS_URL} for this test: {exc}") from exc
    prefix = f"warden-test-{uuid.uuid4().hex[:10]}"
    settings.CHANNEL_LAYERS = {"default": redis_channel_layer(REDIS_URL, prefix=prefix)}


def process_stop(process: Any) -> str:
    """Terminate a subprocess started with text pipes (kill after 10 s); returns its output."""
    import subprocess

    process.terminate()
    try:
        output, _ = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output or ""


RUNNING_AGENTS: set[AgentSubprocess] = set()  # their output goes in a failed test's report


class AgentSubprocess:
    """``python -m agent`` as a real subprocess, up once it listens on ``port``.

    Its output (and its workers', which inherit it) goes to a file, not a pipe nobody
    reads: a full pipe would block the agent in the middle of a log line."""

    def __init__(
        self, args: list[str], env: dict[str, str], port: int, start_seconds: float = 60.0
    ) -> None:
        import subprocess
        import sys
        import tempfile
        from pathlib import Path

        self.port = port
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent", *args],
            cwd=Path(__file__).resolve().parents[1],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        RUNNING_AGENTS.add(self)
        deadline = time.monotonic() + start_seconds  # a loaded machine starts Python slowly
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the agent exited: {self.output()}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        raise AssertionError(f"the agent did not listen on {port}: {self.stop()}")

    def output(self) -> str:
        """Everything the agent printed so far."""
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> str:
        """Stop it (a supervisor stops its workers) and return what it printed."""
        RUNNING_AGENTS.discard(self)
        if not self.log.closed:
            process_stop(self.process)
            output = self.output()
            self.log.close()
            self._output = output
        return self._output
