"""The production topology of the repository's Procfile, started here on PostgreSQL and
Redis: two web processes, two Celery workers, beat and two agents for the demo shop.

The Procfile is read with honcho's own parser and each line is started as its own process
(``sh -c "exec <line>"``), so a test can stop one of them and start it again: ``honcho
start`` stops everything as soon as one process exits, which is what an operator wants and
a failover test does not.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from honcho.environ import parse_procfile

from tests.processes import (
    Process,
    answers,
    clean_env,
    database_create,
    database_drop,
    free_port,
    http_json,
    wait_until,
)
from tests.redis_claim import redis_database_claim

REPO = Path(__file__).resolve().parents[2]
# A policy change the tests make through the API: the analyst may no longer read orders.
DENY_ORDERS_RULE = {
    "datasource": "shop",
    "name": "No orders for the analyst",
    "priority": 500,
    "subjects": {"everyone": False, "users": ["analyst"], "groups": []},
    "resource": {"kind": "table", "schema": "public", "table": "orders"},
    "action": "deny",
}
POLL_INTERVAL = 1.0
# `warden shell -c` code printing a new token of a demo person that may also use the API
# (a personal token's default scopes are query + requests).
API_TOKEN_CODE = (
    "from governance.models import User; from governance.tokens import token_create; "
    "admin = User.objects.get(username='admin'); user = User.objects.get(username='{user}'); "
    "print(token_create(actor=admin, user=user, name='topology', "
    "scopes=['query', 'requests', 'api:read', 'api:admin'])[1])"
)
HOLD_WAIT = 60.0
AGENTS = ("agent_1", "agent_2")


@dataclass
class Topology:
    env: dict[str, str]
    commands: dict[str, str]
    log_dir: Path
    ports: dict[str, int]
    database_url: str
    shop_database: str
    tokens: dict[str, str] = field(default_factory=dict)
    processes: dict[str, Process] = field(default_factory=dict)

    def start(self, name: str) -> Process:
        argv = ["/bin/sh", "-c", f"exec {self.commands[name]}"]
        process = Process(name, argv, env=self.env, cwd=REPO, log_dir=self.log_dir)
        self.processes[name] = process
        return process

    def stop(self, name: str, sig: int = signal.SIGTERM) -> int:
        return self.processes[name].stop(sig)

    def web(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[f'{name}_port']}"

    def agent_port(self, name: str) -> int:
        return self.ports[f"{name}_port"]

    def agent_ready(self, name: str) -> dict[str, Any] | None:
        """The agent's /readyz body when it answers 200, else None."""
        try:
            status, body = http_json(f"http://127.0.0.1:{self.ports[f'{name}_metrics']}/readyz")
        except OSError:
            return None
        return body if status == 200 else None

    def agent_bundle_version(self, name: str) -> str | None:
        ready = self.agent_ready(name)
        return ready["checks"]["bundle"]["detail"].removeprefix("version ") if ready else None

    def served_bundle_version(self, web: str = "web_b") -> str:
        """The version of the bundle the control plane serves now (the agents' own poll)."""
        status, body = http_json(
            f"{self.web(web)}/api/v1/agent/bundle?datasource=shop",
            headers={"Authorization": f"Bearer {self.tokens['agent']}"},
        )
        assert status == 200, body
        return str(body["bundle"]["version"])

    def agents_on(self, version: str) -> bool:
        return all(self.agent_bundle_version(name) == version for name in AGENTS)

    def bundle_settled(self, timeout: float = 60) -> str:
        """Wait until both agents enforce the bundle the control plane serves, and it stays
        the one served; its version. Read at this known moment, not raced against a change
        still on its way (a scan's tags, an approval's grant)."""
        deadline = time.monotonic() + timeout
        while True:
            served = self.served_bundle_version()
            wait_until(
                functools.partial(self.agents_on, served),
                what=f"both agents on bundle {served[:12]}",
                timeout=max(1.0, deadline - time.monotonic()),
            )
            if self.served_bundle_version() == served:
                return served

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.stop()

    def dsn(self, agent: str, user: str = "analyst") -> str:
        return (
            f"host=127.0.0.1 port={self.agent_port(agent)} user={user} "
            f"password={self.tokens[user]} dbname={self.shop_database} sslmode=disable "
            "connect_timeout=10"
        )

    def warden(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """``python -m warden …`` (the `warden` command) with the topology's environment."""
        return subprocess.run(
            [sys.executable, "-m", "warden", *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def shell(self, code: str) -> str:
        """The last line ``code`` prints (Django's shell may print a banner first)."""
        result = self.warden("shell", "-c", code)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout.strip().splitlines()[-1]

    def wait_ready(self, name: str, timeout: float = 120) -> None:
        process = self.processes[name]
        if name.startswith("web"):
            url = f"{self.web(name)}/readyz"
            wait_until(
                lambda: answers(url), what=f"{name} /readyz", timeout=timeout, process=process
            )
        elif name.startswith("agent"):
            wait_until(
                lambda: self.agent_ready(name) is not None,
                what=f"{name} /readyz",
                timeout=timeout,
                process=process,
            )
        elif name.startswith("worker"):
            wait_until(
                lambda: " ready." in process.log(), what=name, timeout=timeout, process=process
            )
        else:
            wait_until(
                lambda: "beat: Starting" in process.log(),
                what=name,
                timeout=timeout,
                process=process,
            )


@pytest.fixture(scope="package")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    with ExitStack() as cleanup:
        yield from _topology_started(tmp_path_factory, cleanup)


def _topology_started(
    tmp_path_factory: pytest.TempPathFactory, cleanup: ExitStack
) -> Iterator[Topology]:
    suffix = secrets.token_hex(3)
    warden_db, shop_db = f"warden_i20_topo_{suffix}", f"shop_i20_topo_{suffix}"
    database_url = database_create(warden_db)
    cleanup.callback(database_drop, warden_db)
    shop_url = database_create(shop_db)
    cleanup.callback(database_drop, shop_db)
    redis_url = cleanup.enter_context(redis_database_claim())
    log_dir = tmp_path_factory.mktemp("topology")
    names = ("web_a", "web_b", "agent_1", "agent_2")
    ports = {f"{name}_port": free_port() for name in names}
    ports |= {"agent_1_metrics": free_port(), "agent_2_metrics": free_port()}
    env = clean_env(
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SECRET_KEY=secrets.token_urlsafe(40),
        # One signing key for every web process and worker (agents pin it).
        WARDEN_SIGNING_KEY=base64.b64encode(os.urandom(32)).decode(),
        WARDEN_DATA_DIR=str(log_dir / "data"),
        WARDEN_DEMO_SHOP_URL=shop_url,
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        PYTHONUNBUFFERED="1",
        WEB_A_PORT=str(ports["web_a_port"]),
        WEB_B_PORT=str(ports["web_b_port"]),
        AGENT_1_PORT=str(ports["agent_1_port"]),
        AGENT_2_PORT=str(ports["agent_2_port"]),
        AGENT_1_METRICS_PORT=str(ports["agent_1_metrics"]),
        AGENT_2_METRICS_PORT=str(ports["agent_2_metrics"]),
        AGENT_1_CONTROL_PLANE=f"http://127.0.0.1:{ports['web_a_port']}",
        AGENT_2_CONTROL_PLANE=f"http://127.0.0.1:{ports['web_b_port']}",
        WARDEN_BASE_URL=f"http://127.0.0.1:{ports['web_a_port']}",
        WARDEN_AGENT_DATASOURCE="shop",
        WARDEN_UPSTREAM_HOST="127.0.0.1",
        WARDEN_UPSTREAM_PORT="5432",
        WARDEN_UPSTREAM_USER="postgres",
        WARDEN_UPSTREAM_DATABASE=shop_db,
        WARDEN_AGENT_POLL_INTERVAL=str(POLL_INTERVAL),
        WARDEN_AGENT_HOLD_WAIT=str(HOLD_WAIT),
        WARDEN_MASKING_KEY=secrets.token_hex(16),
    )
    commands = parse_procfile((REPO / "Procfile").read_text()).processes
    topology = Topology(env, dict(commands), log_dir, ports, database_url, shop_db)
    tokens_path = log_dir / "tokens.json"
    setup = topology.warden(
        "warden_demo", "--migrate", "--no-scan", "--tokens-json", str(tokens_path)
    )
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-3000:]
    topology.tokens = json.loads(tokens_path.read_text())
    for user in ("admin", "reviewer"):
        topology.tokens[user] = topology.shell(API_TOKEN_CODE.format(user=user))
    env["WARDEN_AGENT_TOKEN"] = topology.tokens["agent"]
    cleanup.callback(topology.stop_all)
    for name in commands:
        topology.start(name)
    for name in commands:
        topology.wait_ready(name, timeout=240)
    yield topology


@pytest.fixture
def running(topology: Topology) -> Topology:
    """The topology with every process up: a test that stopped one and failed before
    starting it again does not take the next test down with it."""
    for name in topology.commands:
        process = topology.processes.get(name)
        if process is None or not process.alive():
            topology.start(name)
            topology.wait_ready(name, timeout=240)
    return topology


@dataclass(frozen=True)
class Scan:
    """The demo shop scanned once by the topology, and how many of its table tasks each
    worker received."""

    output: str
    tables_per_worker: dict[str, int]


@pytest.fixture(scope="package")
def scanned(topology: Topology) -> Scan:
    """The shop's catalog filled by one scan, and both agents on the bundle that follows it
    (the tags decide what is masked and what needs approval). Every test that names a table
    or relies on a tag asks for this, whatever order the tests run in."""
    scan = topology.warden("scan", "shop", "--sample-size", "20", "--timeout", "1500")
    assert scan.returncode == 0, scan.stdout[-2000:] + scan.stderr[-2000:]
    assert "succeeded" in scan.stdout, scan.stdout
    tables_per_worker = {
        name: len(re.findall(r"classification\.scan_table\[[^\]]+\] received", process.log()))
        for name, process in topology.processes.items()
        if name.startswith("worker")
    }
    topology.bundle_settled()
    return Scan(scan.stdout, tables_per_worker)
