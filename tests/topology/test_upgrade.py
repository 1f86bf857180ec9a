"""Upgrading the control plane from the previous release while an agent keeps serving.

The previous release is this repository at PREVIOUS_RELEASE (``git archive``): it creates
and migrates the database, serves, and an agent installs its bundle. Then the old web
process stops, this checkout's ``warden migrate`` upgrades the schema and the new web
process starts on the same port. Throughout, the agent serves clients from its last good
bundle; afterwards it installs the new release's bundle within a poll.

Slow (two control-plane versions start), never skipped.
"""

from __future__ import annotations

import io
import json
import secrets
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import psycopg
import pytest

from agent.version import VERSION
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
from tests.topology.conftest import API_TOKEN_CODE, DENY_ORDERS_RULE, REPO

pytestmark = pytest.mark.slow

PREVIOUS_RELEASE = "fb87a29"


def _previous_release(into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", PREVIOUS_RELEASE],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "node_modules").symlink_to(REPO / "node_modules")
    return into


def _previous_migrations(old: Path) -> dict[str, str]:
    """Each app's latest migration in the previous release."""
    leaves: dict[str, str] = {}
    for path in sorted(old.glob("*/migrations/0*.py")):
        leaves[path.parent.parent.name] = path.stem
    return leaves


def _applied(database_url: str) -> dict[str, str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT app, max(name) FROM django_migrations GROUP BY app").fetchall()
    return dict(rows)


def test_control_plane_upgrade_while_an_agent_serves_from_its_last_good_bundle(
    tmp_path: Path,
) -> None:
    old = _previous_release(tmp_path / "previous")
    suffix = secrets.token_hex(3)
    warden_db, shop_db = f"warden_i20_upg_{suffix}", f"shop_i20_upg_{suffix}"
    database_url, shop_url = database_create(warden_db), database_create(shop_db)
    port, listen, metrics = free_port(), free_port(), free_port()
    env = clean_env(
        PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin",
        DATABASE_URL=database_url,
        SECRET_KEY=secrets.token_urlsafe(40),
        WARDEN_SIGNING_KEY="",
        WARDEN_DATA_DIR=str(tmp_path / "data"),
        WARDEN_DEMO_SHOP_URL=shop_url,
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        WARDEN_BUNDLE_CACHE_SECONDS="0",
        PYTHONUNBUFFERED="1",
    )
    python = sys.executable
    processes: list[Process] = []
    try:
        tokens_path = tmp_path / "tokens.json"
        tokens_option = ["--tokens-json", str(tokens_path)]
        setup = subprocess.run(
            [python, "manage.py", "warden_demo", "--migrate", "--no-scan", *tokens_option],
            env=env,
            cwd=old,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert setup.returncode == 0, setup.stdout[-2000:] + setup.stderr[-2000:]
        previous = _previous_migrations(old)
        applied = _applied(database_url)
        assert {app: applied.get(app) for app in previous} == previous
        tokens = json.loads(tokens_path.read_text())
        serve = [python, "-m", "uvicorn", "config.asgi:application", "--port", str(port)]
        serve += ["--lifespan", "off"]
        previous_web = Process("previous-web", serve, env=env, cwd=old, log_dir=tmp_path)
        processes.append(previous_web)
        url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: answers(f"{url}/accounts/login/"),
            what="the previous release",
            timeout=120,
            process=previous_web,
        )
        agent_argv = [python, "-m", "agent", "--control-plane", url, "--datasource", "shop"]
        agent_argv += ["--listen", f"127.0.0.1:{listen}", "--metrics-port", str(metrics)]
        agent_argv += ["--upstream-database", shop_db, "--state-dir", str(tmp_path / "agent")]
        # The previous release keeps no SCRAM verifiers for its tokens, so this release's
        # agent checks them as passwords (loopback here; over TLS in production).
        agent_argv += ["--poll-interval", "1", "--client-auth", "password"]
        agent_argv += ["--allow-insecure-listen"]
        agent_env = {**env, "WARDEN_AGENT_TOKEN": tokens["agent"], "WARDEN_MASKING_KEY": "k"}
        agent = Process("agent", agent_argv, env=agent_env, cwd=REPO, log_dir=tmp_path)
        processes.append(agent)
        wait_until(
            lambda: answers(f"http://127.0.0.1:{metrics}/readyz"),
            what="the agent",
            timeout=60,
            process=agent,
        )
        first_bundle = _bundle_version(metrics)
        dsn = (
            f"host=127.0.0.1 port={listen} user=analyst password={tokens['analyst']} "
            f"dbname={shop_db} sslmode=disable"
        )
        with psycopg.connect(dsn, autocommit=True) as conn:
            before = conn.execute("SELECT count(*) FROM orders").fetchone()[0]

            previous_web.stop()
            assert not answers(f"{url}/accounts/login/")
            assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == before
            migrate = subprocess.run(
                [python, "-m", "warden", "migrate", "--noinput"],
                env=env,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
            for migration in (
                "governance.0007_guardrail_max_rows",
                "governance.0008_access_token_scopes",
                "governance.0009_token_verifier",
                "governance.0010_agentinstance_bundle_rejection",
                "audit.0005_day_counts",
            ):
                assert f"Applying {migration}" in migrate.stdout, migrate.stdout[-2000:]
            # Mid-upgrade, the control plane down: the agent still serves, same bundle.
            assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == before
            assert _bundle_version(metrics) == first_bundle

            new_web = Process(
                "new-web",
                [python, "-m", "warden", "serve", "--port", str(port)],
                env=env,
                cwd=REPO,
                log_dir=tmp_path,
            )
            processes.append(new_web)
            wait_until(lambda: answers(f"{url}/readyz"), what="the new release", timeout=120)
            assert http_json(f"{url}/api/v1/version")[1]["version"] == VERSION
            _policy_rule_add(url, _admin_token(env))
            changed = time.monotonic()
            # The new release's first bundle already differs from the previous one's, so wait
            # for the bundle that carries the rule: a new session is refused.
            wait_until(
                lambda: _orders_denied(dsn),
                what="the bundle with the new rule",
                timeout=30,
                process=agent,
            )
            assert time.monotonic() - changed < 10
            assert _bundle_version(metrics) not in (None, first_bundle)
            # The session opened before the upgrade is governed by it too.
            with pytest.raises(
                psycopg.errors.InsufficientPrivilege, match=r"public\.orders is blocked by policy"
            ):
                conn.execute("SELECT count(*) FROM orders")
            assert conn.execute("SELECT count(*) FROM customers").fetchone()[0] > 0
    finally:
        for process in reversed(processes):
            process.stop()
        database_drop(warden_db)
        database_drop(shop_db)


def _orders_denied(dsn: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as fresh:
        try:
            fresh.execute("SELECT count(*) FROM orders")
        except psycopg.errors.InsufficientPrivilege as refused:
            assert "public.orders is blocked by policy" in str(refused)
            return True
    return False


def _bundle_version(metrics_port: int) -> str | None:
    try:
        status, body = http_json(f"http://127.0.0.1:{metrics_port}/readyz")
    except OSError:
        return None
    return body["checks"]["bundle"]["detail"].removeprefix("version ") if status == 200 else None


def _admin_token(env: dict[str, str]) -> str:
    created = subprocess.run(
        [sys.executable, "-m", "warden", "shell", "-c", API_TOKEN_CODE.format(user="admin")],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    return created.stdout.strip().splitlines()[-1]  # after the shell's banner


def _policy_rule_add(url: str, token: str) -> None:
    import urllib.request

    request = urllib.request.Request(
        f"{url}/api/v1/policies/",
        method="POST",
        data=json.dumps(DENY_ORDERS_RULE).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 201
