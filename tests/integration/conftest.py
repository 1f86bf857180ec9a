"""The whole loop with nothing faked: the real Django control plane (uvicorn in a thread,
against the pytest-django test database), the real agent (``python -m agent`` in a
subprocess) and a real upstream PostgreSQL database that Warden has scanned.

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and, for the browser test, Redis
and Debian's Chromium; a missing service fails the test with a message saying which.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests import sources
from tests.live import AgentSubprocess, asgi_server, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
MASKING_KEY = "integration-masking-key"

UPSTREAM_SCHEMA = """
CREATE TABLE customers (
    id int PRIMARY KEY, full_name text, email varchar(200), phone text, ssn text,
    card_number text, date_of_birth date, sku text, quantity int
);
CREATE TABLE salaries (id int PRIMARY KEY, employee text, amount numeric(10, 2));
"""


@pytest.fixture(scope="session")
def upstream_database() -> Iterator[str]:
    """A fresh upstream database: customers (emails, SSNs, ...) and salaries."""
    with sources.postgres_database() as name:
        with psycopg.connect(
            f"host=127.0.0.1 user=postgres dbname={name}", autocommit=True
        ) as conn:
            conn.execute(UPSTREAM_SCHEMA)
            with conn.cursor().copy(
                f"COPY customers ({', '.join(sources.PEOPLE_COLUMNS)}) FROM STDIN"
            ) as copy:
                for row in sources.people_rows(60):
                    copy.write_row(row)
            conn.execute(
                "INSERT INTO salaries SELECT g, 'employee ' || g, 1000 + g FROM "
                "generate_series(1, 5) g"
            )
            conn.execute("ANALYZE")
        yield name


@dataclass
class Shop:
    """The upstream database as Warden knows it: datasource, scanned catalog, policies."""

    datasource: Any
    database: str
    agent_token: str


def _scan(admin: Any, datasource: Any) -> None:
    from classification.models import ScanRun
    from classification.services import scan_start

    # transactional_db + eager Celery: the scan runs when scan_start's transaction commits.
    scan = scan_start(actor=admin, datasource=datasource)
    scan.refresh_from_db()
    if scan.state != ScanRun.State.SUCCEEDED:
        raise AssertionError(f"the scan of the upstream database did not succeed: {scan.state}")


def _policies(admin: Any, datasource: Any) -> None:
    from governance.models import Tag
    from governance.services import policies

    policies.policy_rule_create(
        actor=admin,
        datasource=datasource,
        name="emails keep their domain",
        resource_kind="tag",
        tag=Tag.objects.get(name="PII.Email"),
        action="mask",
        mask_method="email",
        everyone=True,
    )
    policies.policy_rule_create(
        actor=admin,
        datasource=datasource,
        name="salaries need approval",
        resource_kind="table",
        schema_name="public",
        table_name="salaries",
        action="require_approval",
        everyone=True,
    )
    policies.guardrail_rule_create(
        actor=admin,
        datasource=datasource,
        name="no drops",
        kinds=["drop"],
        action="block",
    )


@pytest.fixture
def shop(transactional_db: Any, admin: Any, upstream_database: str) -> Shop:
    from governance.models import ColumnTag
    from governance.services import datasource_create
    from governance.tokens import token_create

    datasource = datasource_create(
        actor=admin,
        name="shop",
        engine="postgresql",
        host="127.0.0.1",
        port=5432,
        database=upstream_database,
        username="postgres",
    )
    _scan(admin, datasource)
    email_tagged = ColumnTag.objects.filter(
        column__table__datasource=datasource,
        column__table__name="customers",
        column__name="email",
        tag__name="PII.Email",
    )
    assert email_tagged.exists(), "the scan did not tag customers.email as PII.Email"
    _policies(admin, datasource)
    _token, secret = token_create(
        actor=admin, user=admin, name="agent", is_agent=True, datasources=[datasource]
    )
    return Shop(datasource, upstream_database, secret)


@pytest.fixture
def control_plane_url(shop: Shop) -> Iterator[str]:
    with asgi_server() as base_url:
        yield base_url


class AgentProcess(AgentSubprocess):
    """``python -m agent`` in a subprocess, pointed at the live control plane."""

    def __init__(self, args: list[str], port: int) -> None:
        env = {**os.environ, "WARDEN_MASKING_KEY": MASKING_KEY, "PYTHONPATH": str(REPO_ROOT)}
        super().__init__(args, env, port)

    def dsn(self, identity: str, token: str) -> str:
        return (
            f"host=127.0.0.1 port={self.port} user={identity} password={token} dbname=shop "
            "sslmode=disable connect_timeout=10"
        )

    def connect(self, identity: str, token: str) -> psycopg.Connection[Any]:
        return psycopg.connect(self.dsn(identity, token), autocommit=True)


@pytest.fixture
def start_agent(
    shop: Shop, control_plane_url: str, tmp_path: Path
) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def start(*extra: str) -> AgentProcess:
        port = free_port()
        args = [
            "--control-plane",
            control_plane_url,
            "--token",
            shop.agent_token,
            "--listen",
            f"127.0.0.1:{port}",
            "--datasource",
            "shop",
            "--upstream-host",
            "127.0.0.1",
            "--upstream-port",
            "5432",
            "--upstream-user",
            "postgres",
            "--upstream-database",
            shop.database,
            "--state-dir",
            str(tmp_path / f"agent-{len(started)}"),
            "--poll-interval",
            "1",
            "--audit-flush-interval",
            "0.2",
            *extra,
        ]
        process = AgentProcess(args, port)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            process.stop()


def person_token(user: Any, name: str = "psql") -> str:
    from governance.tokens import token_create

    _token, secret = token_create(actor=user, user=user, name=name)
    return str(secret)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
