"""Real processes for the packaging and topology tests: started with their output in a log
file (a pipe nobody reads would stall them), waited for over HTTP or TCP, stopped by pid."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

PG_URL = "postgresql://postgres@127.0.0.1:5432"


class Process:
    def __init__(
        self, name: str, argv: list[str], *, env: dict[str, str], cwd: Path, log_dir: Path
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


def wait_until(
    predicate: Callable[[], bool], *, what: str, timeout: float, process: Process | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and not process.alive():
            raise AssertionError(
                f"{process.name} exited while waiting for {what}:\n{process.log()}"
            )
        if predicate():
            return
        time.sleep(0.2)
    tail = f":\n{process.log()[-4000:]}" if process is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{tail}")


def http_get(url: str, *, timeout: float = 10, headers: dict[str, str] | None = None) -> Any:
    """(status, body bytes, headers) of a GET; HTTP errors are answers too."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read(), answer.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers


def http_json(url: str, **kwargs: Any) -> tuple[int, Any]:
    status, body, _ = http_get(url, **kwargs)
    return status, json.loads(body)


def answers(url: str, status: int = 200) -> bool:
    try:
        return http_get(url, timeout=3)[0] == status
    except OSError:
        return False


def tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_create(name: str) -> str:
    """A fresh PostgreSQL database (dropped first if a previous run left it); its URL."""
    try:
        with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        raise AssertionError(f"PostgreSQL must run on 127.0.0.1:5432: {exc}") from exc
    return f"{PG_URL}/{name}"


def database_drop(name: str) -> None:
    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def clean_env(**values: str) -> dict[str, str]:
    """The environment for a process of an installed package: no checkout on its path."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "DJANGO", "VIRTUAL_ENV"))
    }
    env.pop("DATABASE_URL", None)
    env.update(values)
    return env
