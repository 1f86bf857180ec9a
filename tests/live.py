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
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": f"warden-test-{uuid.uuid4().hex[:10]}"},
        }
    }


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
