"""Clients of ``python -m agent --workers N`` in tests: which worker serves a connection,
a connection on each worker, the workers' process ids."""

from __future__ import annotations

import time
from typing import Any

import psutil
import psycopg

from agent.workers import MAX_WORKERS

WORKER_ARGS = ("--workers", "2", "--log-level", "WARNING")


def worker_of(conn: psycopg.Connection[Any]) -> int:
    """The worker serving a connection, from the process id of its BackendKeyData."""
    return conn.info.backend_pid & (MAX_WORKERS - 1)


def connections_on_each_worker(process: Any, count: int = 2) -> dict[int, psycopg.Connection[Any]]:
    """Connect until each of ``count`` workers serves one (the kernel picks the listener;
    a worker just started again joins when it listens)."""
    found: dict[int, psycopg.Connection[Any]] = {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            conn = psycopg.connect(process.dsn("root"), autocommit=True)
        except psycopg.OperationalError as exc:
            raise AssertionError(f"{exc}\nthe agent printed:\n{process.output()}") from exc
        if worker_of(conn) in found:
            conn.close()
            time.sleep(0.05)
        else:
            found[worker_of(conn)] = conn
        if len(found) == count:
            return found
    raise AssertionError(
        f"connections reached only workers {sorted(found)}\nthe agent printed:\n{process.output()}"
    )


def worker_pids(process: Any) -> list[int]:
    children = psutil.Process(process.process.pid).children()
    return [child.pid for child in children if "--worker-index" in child.cmdline()]
