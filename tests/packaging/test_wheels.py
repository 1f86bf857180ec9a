"""Both distributions, built from this checkout and installed each into its own clean
virtualenv, run as a deployment runs them: the control plane's wheel serves the UI, the API
and its static files from the installed package (no checkout on its path, a temporary
working directory), and the agent's wheel, where `import django` fails, governs a client
session against it.

Slow (minutes: two wheels built, two virtualenvs installed from uv's cache, a scan), and
never skipped: it is the only proof that the packages work outside this checkout.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agent.version import VERSION
from tests.packaging.conftest import Installed, Wheels, wheel_build
from tests.processes import (
    Process,
    answers,
    clean_env,
    database_create,
    database_drop,
    free_port,
    http_get,
    http_json,
    tcp_open,
    wait_until,
)
from tests.topology.conftest import API_TOKEN_CODE

pytestmark = pytest.mark.slow

FORBIDDEN_IN_AGENT = ("django", "spacy", "celery", "channels", "rest_framework")


def _wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_agent_wheel_holds_the_agent_its_client_and_the_native_path_only(
    wheels: Wheels, figures: list[str]
) -> None:
    names = _wheel_names(wheels.agent)
    packages = {name.split("/")[0] for name in names if "dist-info" not in name}
    assert packages == {"agent", "warden_client"}
    assert any(n.startswith("agent/_fastpath.") and n.endswith(".so") for n in names)
    metadata = next(n for n in names if n.endswith("dist-info/METADATA"))
    with zipfile.ZipFile(wheels.agent) as archive:
        requires = [
            line.split(": ", 1)[1]
            for line in archive.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist: ")
        ]
    assert requires and all("==" in requirement for requirement in requires)
    assert not [r for r in requires if r.lower().startswith(FORBIDDEN_IN_AGENT)]
    assert wheels.agent.name.startswith(f"warden_agent-{VERSION}-")
    figures.append(f"warden-agent wheel {wheels.agent.stat().st_size / 1024:.0f} KiB")


def test_agent_wheel_without_a_compiler_keeps_the_pure_python_path(
    tmp_path: Path,
) -> None:
    wheel = wheel_build("agent", tmp_path / "dist", env={"CC": "false", "LDSHARED": "false"})
    names = _wheel_names(wheel)
    assert "agent/postgres/native.py" in names
    assert not [n for n in names if n.endswith(".so")]


def test_control_plane_wheel_carries_the_site_and_requires_the_same_agent(
    wheels: Wheels, figures: list[str]
) -> None:
    names = _wheel_names(wheels.control_plane)
    assert "warden/site/templates/base.html" in names
    assert "warden/site/static/css/warden.css" in names
    assert "warden/site/static/vendor/htmx/htmx.min.js" in names
    assert "governance/templates/governance/agent_list.html" in names
    assert not [n for n in names if n.startswith(("agent/", "warden_client/", "tests/"))]
    with zipfile.ZipFile(wheels.control_plane) as archive:
        metadata = archive.read(f"warden-{VERSION}.dist-info/METADATA").decode()
    assert f"Requires-Dist: warden-agent=={VERSION}" in metadata
    figures.append(f"warden wheel {wheels.control_plane.stat().st_size / 1024:.0f} KiB")


def test_agent_venv_cannot_import_django_spacy_or_celery(
    agent_venv: Installed, figures: list[str]
) -> None:
    for module in ("django", "spacy", "celery"):
        result = agent_venv.python(f"import {module}")
        assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, module
    native = agent_venv.python("import agent._fastpath, agent.version as v; print(v.VERSION)")
    assert native.returncode == 0 and native.stdout.strip() == VERSION, native.stderr
    figures.append(f"warden-agent install into a clean venv: {agent_venv.seconds:.1f} s")


def test_warden_agent_help_lists_its_flags(agent_venv: Installed) -> None:
    result = subprocess.run(
        [str(agent_venv.bin / "warden-agent"), "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: warden-agent ")
    for flag in ("--control-plane", "--datasource", "--upstream-sslmode", "--metrics-port"):
        assert flag in result.stdout


@dataclass
class ControlPlane:
    url: str
    database_url: str
    tokens: dict[str, str]
    shop_database: str
    process: Process


@pytest.fixture(scope="module")
def installed_control_plane(
    control_plane_venv: Installed, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """The wheel's `warden`: migrate, the demo site (shop scanned), then `warden serve`,
    all from a temporary working directory."""
    suffix = secrets.token_hex(3)
    warden_db, shop_db = f"warden_i20_pkg_{suffix}", f"shop_i20_pkg_{suffix}"
    database_url, shop_url = database_create(warden_db), database_create(shop_db)
    cwd = tmp_path_factory.mktemp("control-plane-cwd")
    port = free_port()
    env = clean_env(
        DATABASE_URL=database_url,
        SECRET_KEY=secrets.token_urlsafe(40),
        WARDEN_DATA_DIR=str(cwd / "data"),
        WARDEN_DEMO_SHOP_URL=shop_url,
        WARDEN_BASE_URL=f"http://127.0.0.1:{port}",
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        STATIC_ROOT=str(cwd / "static-root"),
    )
    warden = str(control_plane_venv.bin / "warden")
    tokens_path = cwd / "tokens.json"
    for argv in (
        [warden, "warden_demo", "--migrate", "--tokens-json", str(tokens_path)],
        [warden, "collectstatic", "--noinput", "-v", "0"],
    ):
        step = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
        assert step.returncode == 0, f"{argv[1]}:\n{step.stdout[-3000:]}\n{step.stderr[-3000:]}"
    tokens = json.loads(tokens_path.read_text())
    # The demo's personal tokens may query and file requests; reading the API needs api:read.
    api_token = subprocess.run(
        [warden, "shell", "-c", API_TOKEN_CODE.format(user="reviewer")],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert api_token.returncode == 0, api_token.stdout[-3000:] + api_token.stderr[-3000:]
    tokens["reviewer_api"] = api_token.stdout.strip().splitlines()[-1]
    process = Process(
        "warden-serve", [warden, "serve", "--port", str(port)], env=env, cwd=cwd, log_dir=cwd
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: answers(f"{url}/readyz"), what="warden serve", timeout=90, process=process
        )
        yield ControlPlane(url, database_url, tokens, shop_db, process)
    finally:
        process.stop()
        database_drop(warden_db)
        database_drop(shop_db)


def test_installed_control_plane_serves_ui_api_and_static_files_from_its_package(
    control_plane_venv: Installed, installed_control_plane: ControlPlane, figures: list[str]
) -> None:
    url = installed_control_plane.url
    where = control_plane_venv.python("import config, warden; print(config.__file__)")
    assert str(control_plane_venv.root) in where.stdout, where.stdout + where.stderr
    status, page, _ = http_get(f"{url}/accounts/login/")
    assert status == 200
    assert f"Warden {VERSION}</footer>" in page.decode()
    for asset in ("css/warden.css", "vendor/htmx/htmx.min.js", "vendor/chartjs/chart.umd.js"):
        status, body, headers = http_get(f"{url}/static/{asset}")
        assert status == 200 and body, asset
        # Served by whitenoise (far-future caching headers), from the collected files.
        assert "max-age" in headers.get("Cache-Control", ""), asset
    assert http_json(f"{url}/api/v1/version") == (200, {"version": VERSION, "bundle_format": 1})
    status, body = http_json(
        f"{url}/api/v1/datasources/",
        headers={"Authorization": f"Bearer {installed_control_plane.tokens['reviewer_api']}"},
    )
    assert status == 200, body
    assert "shop" in json.dumps(body)
    status, ready = http_json(f"{url}/readyz")
    assert status == 200 and ready["checks"]["database"]["detail"] == "postgresql"
    figures.append(f"warden install into a clean venv: {control_plane_venv.seconds:.1f} s")


def test_installed_demo_keeps_its_data_in_the_users_data_directory(
    control_plane_venv: Installed, tmp_path: Path
) -> None:
    # `warden demo` without --data-dir: not inside site-packages (no checkout there).
    home = tmp_path / "home"
    env = clean_env(HOME=str(home))
    for variable in ("WARDEN_DATA_DIR", "XDG_DATA_HOME"):  # either would win
        env.pop(variable, None)
    where = control_plane_venv.python(
        "from warden_demo.launcher import default_data_dir; print(default_data_dir())", env=env
    )
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip() == str(home / ".local" / "share" / "warden")
    help_text = subprocess.run(
        [str(control_plane_venv.bin / "warden"), "demo", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert help_text.returncode == 0, help_text.stderr
    assert "~/.local/share/warden" in help_text.stdout


def test_installed_agent_governs_a_session_against_the_installed_control_plane(
    agent_venv: Installed, installed_control_plane: ControlPlane, tmp_path: Path
) -> None:
    plane = installed_control_plane
    listen, metrics = free_port(), free_port()
    env = clean_env(
        WARDEN_AGENT_TOKEN=plane.tokens["agent"],
        WARDEN_MASKING_KEY=secrets.token_hex(16),
    )
    argv = [str(agent_venv.bin / "warden-agent"), "--control-plane", plane.url]
    argv += ["--datasource", "shop", "--listen", f"127.0.0.1:{listen}"]
    argv += ["--upstream-database", plane.shop_database, "--state-dir", str(tmp_path / "state")]
    argv += ["--metrics-port", str(metrics), "--poll-interval", "1"]
    agent = Process("warden-agent", argv, env=env, cwd=tmp_path, log_dir=tmp_path)
    try:
        wait_until(lambda: tcp_open(listen), what="the agent", timeout=60, process=agent)
        wait_until(
            lambda: answers(f"http://127.0.0.1:{metrics}/readyz"),
            what="the agent's /readyz",
            timeout=30,
            process=agent,
        )
        assert f"warden-agent {VERSION} listening on 127.0.0.1:{listen}" in agent.log()
        analyst = (
            f"host=127.0.0.1 port={listen} user=analyst password={plane.tokens['analyst']} "
            f"dbname={plane.shop_database} sslmode=disable"
        )
        with psycopg.connect(analyst, autocommit=True) as conn:
            emails = [row[0] for row in conn.execute("SELECT email FROM customers LIMIT 5")]
            assert emails and all(email.startswith("****@") for email in emails), emails
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("DROP TABLE orders")
        direct = f"postgresql://postgres@127.0.0.1:5432/{plane.shop_database}"
        with psycopg.connect(direct) as control:  # the unmasked values exist
            assert "*" not in control.execute("SELECT email FROM customers LIMIT 1").fetchone()[0]
        wait_until(
            lambda: _registered_version(plane) == VERSION,
            what="the agent's heartbeat",
            timeout=30,
            process=agent,
        )
        wait_until(
            lambda: _audited_statements(plane) >= 2,
            what="the agent's audit events",
            timeout=30,
            process=agent,
        )
    finally:
        agent.stop()


def _registered_version(plane: ControlPlane) -> Any:
    with psycopg.connect(plane.database_url) as conn:
        row = conn.execute("SELECT version FROM governance_agentinstance LIMIT 1").fetchone()
    return row[0] if row else None


def _audited_statements(plane: ControlPlane) -> int:
    with psycopg.connect(plane.database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM audit_auditevent WHERE action = 'query.executed'"
        ).fetchone()
    return int(row[0])
