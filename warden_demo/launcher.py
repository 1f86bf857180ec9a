"""`make run`: PostgreSQL, Warden, its task runner and an agent governing the demo shop.

The order is the dependency order. PostgreSQL first (embedded, or yours via
WARDEN_DEMO_PG_DSN), holding two databases: `warden` (Warden's own data, so the default
install gets the append-only audit triggers and the PostgreSQL code paths; DATABASE_URL
overrides it) and `shop` (the demo data the agent governs). Then migrations and
`python -m warden warden_demo` in the foreground (the scan's progress bar shows), then the web
server, the task runner and the agent under the supervisor. Everything kept between runs
(cluster, passwords, secret key) lives in the data directory, so a second run reuses it;
ports are the defaults when free and any free port otherwise.

This module does not import Django: Warden runs in the children it starts.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from warden_demo.postgres import (
    EmbeddedPostgres,
    PostgresError,
    PostgresServer,
    kept_secret,
    role_and_database_ensure,
    server_from_dsn,
    wait_until_accepting,
)
from warden_demo.supervisor import ChildFailed, Supervisor

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PORTS = {"web": 8000, "agent": 6432, "postgres": 55432}
READY_TIMEOUT_SECONDS = 120.0
READY_LINE = "Warden demo is ready"


@dataclass(frozen=True)
class Ports:
    web: int
    agent: int
    postgres: int


def port_choose(preferred: int) -> int:
    """`preferred` when nothing listens there (0 or taken: a free port from the kernel)."""
    with socket.socket() as probe:
        # SO_REUSEADDR as servers set it: a port in TIME_WAIT from our last run counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Demo:
    """One `make run`: prepares, starts and supervises; `run()` returns the exit code."""

    def __init__(self, data_dir: Path, ports: Ports) -> None:
        self.data_dir = data_dir
        self.secrets_dir = data_dir / "demo"
        self.ports = ports
        self.supervisor = Supervisor(data_dir / "logs")
        self.python = sys.executable
        self.tokens: dict[str, str] = {}

    # --- PostgreSQL and the two databases ------------------------------------------------

    def postgres_start(self) -> PostgresServer:
        dsn = os.environ.get("WARDEN_DEMO_PG_DSN", "")
        if dsn:
            server = server_from_dsn(dsn)
            wait_until_accepting(server, timeout=10)
            return server
        embedded = EmbeddedPostgres(
            self.data_dir / "postgres", self.secrets_dir / "postgres-password"
        )
        if not embedded.initialised():
            print(f"warden: creating the demo's PostgreSQL cluster in {embedded.pgdata}")
            embedded.initialise()
        argv, as_user = embedded.server_command(self.ports.postgres)
        popen_options: dict[str, Any] = dict(as_user)  # the unprivileged user, when root
        child = self.supervisor.start(
            "postgres",
            argv,
            env=dict(os.environ),
            stop_signal=signal.SIGINT,  # PostgreSQL's "fast" shutdown
            signal_group=False,
            **popen_options,
        )
        server = embedded.server(self.ports.postgres)
        try:
            wait_until_accepting(server, alive=child.alive)
        except PostgresError as exc:  # say why, e.g. another run still holds the cluster
            raise PostgresError(f"{exc}:\n{child.log_tail(4)}") from exc
        return server

    def databases_ensure(self, server: PostgresServer) -> tuple[str, str]:
        """URLs of Warden's own database (unless DATABASE_URL is set) and of the shop."""
        warden_password = kept_secret(self.secrets_dir / "warden-db-password")
        shop_password = kept_secret(self.secrets_dir / "shop-password")
        warden_url = os.environ.get("DATABASE_URL", "")
        if not warden_url:
            role_and_database_ensure(
                server, role="warden", password=warden_password, database="warden"
            )
            warden_url = server.url(user="warden", password=warden_password, database="warden")
        # Named after the database, so several demos can share a server of yours.
        shop_database = os.environ.get("WARDEN_DEMO_SHOP_DATABASE", "shop")
        shop_role = f"{shop_database}_app"
        role_and_database_ensure(
            server, role=shop_role, password=shop_password, database=shop_database
        )
        shop_url = server.url(user=shop_role, password=shop_password, database=shop_database)
        return warden_url, shop_url

    # --- Warden ----------------------------------------------------------------------------

    def warden_env(self, warden_url: str, shop_url: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DATABASE_URL=warden_url,
            WARDEN_DATA_DIR=str(self.data_dir),
            WARDEN_DEMO_SHOP_URL=shop_url,
            WARDEN_BASE_URL=f"http://127.0.0.1:{self.ports.web}",
            WARDEN_AGENT_ADDRESS=f"127.0.0.1:{self.ports.agent}",
            PYTHONUNBUFFERED="1",
        )
        env.setdefault("DEBUG", "false")
        # Plain HTTP on localhost: cookies must not require HTTPS here.
        env.setdefault("SESSION_COOKIE_SECURE", "false")
        env.setdefault("CSRF_COOKIE_SECURE", "false")
        if "SECRET_KEY" not in env and "SECRET_KEY_FILE" not in env:
            kept_secret(self.secrets_dir / "secret-key", 50)
            env["SECRET_KEY_FILE"] = str(self.secrets_dir / "secret-key")
        if "WARDEN_MASKING_KEY" not in env:
            env["WARDEN_MASKING_KEY"] = kept_secret(self.secrets_dir / "masking-key")
        self._env_file_write(env)
        return env

    def _env_file_write(self, env: dict[str, str]) -> None:
        """What `manage.py` needs to reach the demo's Warden from another terminal:
        `set -a; . var/demo/warden.env; set +a` (only while the demo's PostgreSQL runs)."""
        keys = ["DATABASE_URL", "SECRET_KEY_FILE", "WARDEN_DATA_DIR", "WARDEN_DEMO_SHOP_URL"]
        keys += ["WARDEN_BASE_URL", "WARDEN_AGENT_ADDRESS", "DEBUG"]
        keys += ["SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"]
        path = self.secrets_dir / "warden.env"
        path.touch(mode=0o600)
        path.write_text("".join(f"{key}={shlex.quote(env[key])}\n" for key in keys if key in env))

    def warden_prepare(self, env: dict[str, str]) -> dict[str, str]:
        """Migrate, then the demo people, shop, policies and tokens; returns the tokens."""
        tokens_path = self.secrets_dir / "tokens.json"
        demo = ["warden_demo", "--migrate", "--tokens-json", str(tokens_path)]
        self.supervisor.run_step(
            "warden warden_demo", [self.python, "-m", "warden", *demo], env=env
        )
        tokens: dict[str, str] = json.loads(tokens_path.read_text())
        return tokens

    def web_and_tasks_start(self, env: dict[str, str]) -> None:
        """Started before `warden_demo` runs so their start-up overlaps it: neither touches
        the database until a request arrives or a periodic task falls due."""
        web = ["-m", "daphne", "-b", "127.0.0.1", "-p", str(self.ports.web)]
        # Killed outright if the supervisor dies: daphne stopping on SIGTERM with a request in
        # flight can wait forever at exit (its worker thread awaits the stopped event loop),
        # and it holds nothing of its own to save.
        self.supervisor.start(
            "web",
            [self.python, *web, "config.asgi:application"],
            env=env,
            cwd=REPO,
            death_signal=signal.SIGKILL,
            restartable=True,
        )
        self.supervisor.start(
            "tasks", self._task_runner_argv(env), env=env, cwd=REPO, restartable=True
        )

    def web_wait(self) -> None:
        login_page = f"http://127.0.0.1:{self.ports.web}/accounts/login/"
        self.supervisor.wait_until(
            lambda: _http_ok(login_page), what="the web server", timeout=READY_TIMEOUT_SECONDS
        )

    def _task_runner_argv(self, env: dict[str, str]) -> list[str]:
        """With Redis, a Celery worker with beat; without, beat alone running each periodic
        task in its own process (Celery's eager mode), as the web server runs the others."""
        schedule = str(self.data_dir / "celerybeat-schedule")
        celery = [self.python, "-m", "celery", "-A", "config"]
        if env.get("REDIS_URL"):
            return [*celery, "worker", "--beat", "--concurrency", "2", "-s", schedule]
        return [*celery, "beat", "-s", schedule, "--loglevel", "INFO"]

    def _agent_start(self, env: dict[str, str], server: PostgresServer, shop_url: str) -> None:
        from psycopg.conninfo import conninfo_to_dict

        shop = conninfo_to_dict(shop_url)
        agent_env = {**env, "WARDEN_UPSTREAM_PASSWORD": str(shop.get("password") or "")}
        agent_env["WARDEN_AGENT_TOKEN"] = self.tokens["agent"]
        options = {
            "--control-plane": env["WARDEN_BASE_URL"],
            "--datasource": "shop",
            "--listen": f"127.0.0.1:{self.ports.agent}",
            "--upstream-host": server.host,
            "--upstream-port": str(server.port),
            "--upstream-user": str(shop["user"]),
            "--upstream-database": str(shop["dbname"]),
            "--state-dir": str(self.data_dir / "agent"),
        }
        argv = [self.python, "-m", "agent", *itertools.chain.from_iterable(options.items())]
        self.supervisor.start("agent", argv, env=agent_env, cwd=REPO, restartable=True)
        self.supervisor.wait_until(
            lambda: _tcp_open(self.ports.agent), what="the agent", timeout=READY_TIMEOUT_SECONDS
        )

    # --- the whole run ---------------------------------------------------------------------

    def run(self) -> int:
        started = time.monotonic()
        try:
            server = self.postgres_start()
            warden_url, shop_url = self.databases_ensure(server)
            env = self.warden_env(warden_url, shop_url)
            self.web_and_tasks_start(env)
            self.tokens = self.warden_prepare(env)
            self.web_wait()
            self._agent_start(env, server, shop_url)
            print(ready_banner(self.ports, self.tokens, time.monotonic() - started), flush=True)
            self.supervisor.watch()
        except KeyboardInterrupt:
            print("\nwarden: stopping…", flush=True)
            return 0
        except ChildFailed as failure:
            print(f"\nwarden: {failure}; stopping everything. Last lines of its log:", flush=True)
            print(failure.child.log_tail(), flush=True)
            return 1
        except (PostgresError, RuntimeError, TimeoutError) as exc:
            print(f"warden: {exc}", file=sys.stderr, flush=True)
            return 1
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut cleanup
            self.supervisor.stop_all()
            print("warden: stopped; nothing is left running.", flush=True)
        return 0


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def ready_banner(ports: Ports, tokens: dict[str, str], seconds: float) -> str:
    base = f"http://127.0.0.1:{ports.web}"
    agent = f"host=127.0.0.1 port={ports.agent} dbname=shop"

    def psql(user: str) -> str:
        return f'psql "{agent} user={user} password={tokens[user]}"'

    lines = [
        "",
        "=" * 72,
        f"{READY_LINE} ({seconds:.0f}s): {base}/  (Ctrl-C stops everything)",
        f"  Approvals inbox:  {base}/approvals/",
        f"  Agent for shop:   127.0.0.1:{ports.agent}",
        "  As the analyst (e-mails masked, DROP refused, payments held for approval):",
        f"    {psql('analyst')}",
        "      SELECT first_name, email FROM customers LIMIT 3;",
        "      DROP TABLE orders;",
        "      SELECT * FROM payments LIMIT 3;",
        "  As the reviewer (e-mails unmasked; approve the analyst's request in the inbox):",
        f"    {psql('reviewer')}",
    ]
    lines += _mcp_config_lines(base, tokens["copilot"])
    lines.append("=" * 72)
    return "\n".join(lines)


def _mcp_config_lines(base: str, copilot_token: str) -> list[str]:
    """An MCP client entry for the `copilot` AI agent (streamable HTTP on the control plane)."""
    entry = {
        "mcpServers": {
            "warden": {
                "type": "http",
                "url": f"{base}/mcp/",
                "headers": {"Authorization": f"Bearer {copilot_token}"},
            }
        }
    }
    return [
        "  AI agents (MCP): add this to your MCP client's configuration (copilot's token):",
        f"    {json.dumps(entry)}",
    ]


def default_data_dir(package_root: Path = REPO) -> Path:
    """Where the demo keeps its cluster, passwords and keys without ``--data-dir``:
    ``WARDEN_DATA_DIR``; else a checkout's ``var/`` (``make run``); else, for the installed
    wheel (its package directory is no place for data), the user's data directory:
    ``$XDG_DATA_HOME/warden``, by default ``~/.local/share/warden`` on Linux."""
    if os.environ.get("WARDEN_DATA_DIR"):
        return Path(os.environ["WARDEN_DATA_DIR"])
    if (package_root / "manage.py").is_file():
        return package_root / "var"
    return Path(platformdirs.user_data_dir("warden", appauthor=False))


def parse_args(argv: list[str] | None) -> tuple[Path, Ports]:
    parser = argparse.ArgumentParser(prog="python -m warden_demo", description=__doc__)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="kept between runs (default: WARDEN_DATA_DIR, a checkout's var/, else "
        "~/.local/share/warden)",
    )
    for name, port in DEFAULT_PORTS.items():
        parser.add_argument(
            f"--{name}-port",
            type=int,
            default=int(os.environ.get(f"WARDEN_DEMO_{name.upper()}_PORT", port)),
            help=f"default {port}, or a free one if taken; 0 picks a free one",
        )
    args = parser.parse_args(argv)
    data_dir = args.data_dir or default_data_dir()
    chosen = {name: port_choose(getattr(args, f"{name}_port")) for name in DEFAULT_PORTS}
    return data_dir.resolve(), Ports(**chosen)


def main(argv: list[str] | None = None) -> int:
    data_dir, ports = parse_args(argv)
    data_dir.mkdir(parents=True, exist_ok=True)
    # Ctrl-C, and SIGTERM (kill, a service manager), stop the demo; SIGINT explicitly too,
    # since a shell starting us in the background without job control ignores it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return Demo(data_dir, ports).run()
