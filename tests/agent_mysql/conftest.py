"""Fixtures for the MySQL agent: a real MariaDB database, the PostgreSQL suite's control
plane (tests/agent/conftest.py, shared, not copied) with the same bundle over MySQL names,
and agents speaking the MySQL protocol.

The bundle's ``public`` schema is the test database and ``archive`` its ``_archive`` twin:
in MySQL a schema is a database.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import mariadb
import pymysql
import pytest

from agent.server import AgentConfig
from agent.upstream import UpstreamConfig
from tests.agent.conftest import (
    MASKING_KEY,
    REPO_ROOT,
    AgentProcess,
    ControlPlane,
    RunningAgent,
    free_port,
    wait_for,
)
from tests.agent.conftest import bundle_document as postgres_bundle

MY_HOST, MY_PORT = "127.0.0.1", 3306

SCHEMA_SQL = [
    "CREATE TABLE customers (id int AUTO_INCREMENT PRIMARY KEY, name varchar(100) NOT NULL, "
    "email varchar(100), phone varchar(40), card varchar(40), birth_date date, ssn varchar(20), "
    "`Secret Note` text, score int)",
    "CREATE TABLE orders (id int AUTO_INCREMENT PRIMARY KEY, customer_id int, "
    "amount decimal(10,2), note text)",
    "CREATE VIEW customer_contacts AS SELECT id, name, email FROM customers",
    "CREATE VIEW public_names AS SELECT id, name FROM customers",
    "CREATE TABLE scratch (id int, v text)",
]


def root_connection(database: str | None = None) -> pymysql.connections.Connection[Any]:
    try:
        return pymysql.connect(
            host=MY_HOST, port=MY_PORT, user="root", database=database, autocommit=True
        )
    except pymysql.MySQLError as exc:
        pytest.fail(f"MariaDB is required on {MY_HOST}:{MY_PORT} (root, no password): {exc}")


def changed_directly(root: Any, sql: str) -> int:
    """Rows ``sql`` changes run directly as root, in a transaction rolled back after."""
    root.begin()
    try:
        with root.cursor() as cursor:
            return int(cursor.execute(sql))
    finally:
        root.rollback()


def _rows() -> list[tuple[Any, ...]]:
    first = ["Ada", "Grace", "Linus", "Edsger", "Barbara", "Ken", "Margaret", "Alan"]
    rows = []
    for i in range(1, 21):
        name = f"{first[i % len(first)]} Doe{i}"
        rows.append(
            (
                name,
                f"{name.split()[0].lower()}.{i}@example.com",
                f"+1 555 01{i:02d}-{1000 + i}",
                f"4111-1111-1111-{1000 + i}",
                f"19{60 + i}-0{1 + i % 9}-1{i % 10}",
                f"{100 + i}-45-{6000 + i}",
                f"note {i}",
                i * 10,
            )
        )
    return rows


@pytest.fixture(scope="session")
def mysql_database() -> Iterator[str]:
    name = f"warden_my_{secrets.token_hex(4)}"
    admin = root_connection()
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}`")
        cursor.execute(f"CREATE DATABASE `{name}_archive`")
        cursor.execute(f"CREATE TABLE `{name}_archive`.customers (id int, email varchar(100))")
        cursor.execute(f"USE `{name}`")
        for statement in SCHEMA_SQL:
            cursor.execute(statement)
        cursor.executemany(
            "INSERT INTO customers (name, email, phone, card, birth_date, ssn, `Secret Note`, "
            "score) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            _rows(),
        )
        cursor.execute(
            "INSERT INTO orders (customer_id, amount, note) SELECT id, id * 1.5, "
            "CONCAT('order ', id) FROM customers"
        )
        cursor.execute(f"INSERT INTO `{name}_archive`.customers SELECT id, email FROM customers")
    try:
        yield name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}_archive`")
        admin.close()


def mysql_bundle(database: str, version: str = "v1") -> dict[str, Any]:
    """The PostgreSQL suite's bundle with its schemas renamed to this MySQL database."""
    text = json.dumps(postgres_bundle(version))
    text = text.replace('"public"', json.dumps(database))
    text = text.replace('"archive"', json.dumps(f"{database}_archive"))
    text = text.replace('"public.customers', json.dumps(f"{database}.customers")[:-1])
    bundle: dict[str, Any] = json.loads(text)
    bundle["datasource"]["engine"] = "mysql"
    return bundle


def deny_column(bundle: dict[str, Any], column: dict[str, str], rule_id: int, name: str) -> None:
    """Adds to ``bundle`` a restricted column (schema, table, column) everyone is denied."""
    bundle["columns"].append({**column, "tags": ["PII.SSN"], "sensitivity": "restricted"})
    bundle["rules"].append(
        {
            "id": rule_id,
            "name": name,
            "priority": 900,
            "subjects": {"everyone": True, "users": [], "groups": []},
            "resource": {"kind": "column", **column},
            "action": "deny",
            "mask_method": None,
            "mask_param": None,
        }
    )


@pytest.fixture
def control_plane(mysql_database: str) -> Iterator[ControlPlane]:
    plane = ControlPlane()
    plane.bundle = mysql_bundle(mysql_database)
    yield plane
    plane.close()


class MySqlAgentRunner(RunningAgent):
    def connect(self, user: str = "alice", **kwargs: Any) -> Any:  # type: ignore[override]
        options: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "user": user,
            "password": kwargs.pop("password", f"wdn_{user}"),
            "database": kwargs.pop("database", self.database),
            "autocommit": True,
            "connect_timeout": 5,
            "read_timeout": 30,
        }
        options.update(kwargs)
        return pymysql.connect(**options)

    database = ""


@pytest.fixture
def agent_factory(
    mysql_database: str, control_plane: ControlPlane, tmp_path: Path
) -> Iterator[Any]:
    started: list[MySqlAgentRunner] = []

    def start(**overrides: Any) -> MySqlAgentRunner:
        # WARDEN_AGENT_NATIVE=off (the agent's own switch, which subprocess agents read too)
        # runs the suite on the pure-Python path.
        overrides.setdefault("native", os.environ.get("WARDEN_AGENT_NATIVE", "on") != "off")
        config = AgentConfig(
            control_plane=overrides.pop("control_plane", control_plane.url),
            token="agent-token",
            datasource="shop",
            listen_port=0,
            upstream=overrides.pop(
                "upstream",
                UpstreamConfig(MY_HOST, MY_PORT, "root", "", mysql_database, sslmode="disable"),
            ),
            state_dir=overrides.pop("state_dir", tmp_path / "state"),
            poll_interval=0.2,
            audit_flush_interval=0.2,
            masking_key=MASKING_KEY,
            protocol="mysql",
            **overrides,
        )
        running = MySqlAgentRunner(config)
        running.database = mysql_database
        started.append(running)
        return running

    yield start
    for running in started:
        if running.loop.is_running():
            running.stop()


@pytest.fixture
def agent_process_factory(
    control_plane: ControlPlane, mysql_database: str, tmp_path: Path
) -> Iterator[Any]:
    """``start(*extra_args)``: the MySQL agent as a subprocess (uvloop, as in production):
    MariaDB Connector/C holds this process's GIL while it waits for rows, which would stall
    an agent running in a thread here."""
    started: list[AgentProcess] = []

    def start(*extra: str) -> AgentProcess:
        port = free_port()
        args = [
            *("--control-plane", control_plane.url, "--token", "agent-token"),
            *("--protocol", "mysql", "--listen", f"127.0.0.1:{port}", "--datasource", "shop"),
            *("--upstream-host", "127.0.0.1", "--upstream-port", "3306", "--upstream-user", "root"),
            *("--upstream-database", mysql_database, "--upstream-sslmode", "disable"),
            *("--state-dir", str(tmp_path / f"state-{len(started)}")),
            *("--audit-flush-interval", "0.2", *extra),
        ]
        env = {
            **os.environ,
            "WARDEN_MASKING_KEY": MASKING_KEY.decode(),
            "PYTHONPATH": str(REPO_ROOT),
        }
        started.append(AgentProcess(args, env, port))
        return started[-1]

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def agent_process(agent_process_factory: Any) -> AgentProcess:
    """The MySQL agent as a subprocess (see ``agent_process_factory``)."""
    return cast(AgentProcess, agent_process_factory())


def connector_connection(port: int, database: str, user: str = "alice") -> Any:
    """MariaDB Connector/Python on an agent (it speaks the binary protocol and opens
    server-side cursors); on an agent in a subprocess, see ``agent_process``."""
    return mariadb.connect(
        host="127.0.0.1",
        port=port,
        user=user,
        password=f"wdn_{user}",
        database=database,
        autocommit=True,
    )


@pytest.fixture
def agent(agent_factory: Any) -> Any:
    return agent_factory()


@pytest.fixture
def root(mysql_database: str) -> Iterator[Any]:
    """A direct, unrestricted connection: proves a probe reads the secret without the agent."""
    connection = root_connection(mysql_database)
    yield connection
    connection.close()


@pytest.fixture
def wait() -> Any:
    return wait_for


def session_of(agent: MySqlAgentRunner) -> Any:
    """The agent's one open MySqlSession (its native path: ``.native_path``)."""
    import gc

    from agent.mysql.session import MySqlSession

    # type(), not isinstance(): a dead weak proxy among gc's objects raises ReferenceError
    # when isinstance asks it for its __class__.
    sessions = [o for o in gc.get_objects() if type(o) is MySqlSession and o.agent is agent.agent]
    assert len(sessions) == 1
    return sessions[0]


# A neighbouring query of the restricted identity (plain columns of the probed table): a
# probe that holds only because the identity can do nothing at all proves nothing.
LEGITIMATE_SQL = "SELECT id, name, score FROM customers WHERE id <= 3 ORDER BY id"


def assert_legitimate_work_runs(conn: Any) -> None:
    with conn.cursor() as cursor:
        cursor.execute(LEGITIMATE_SQL)
        assert len(cursor.fetchall()) == 3, "legitimate work of the restricted identity broke"


@pytest.fixture
def running_statement(mysql_database: str) -> Iterator[str]:
    """Another session running (for a few seconds) a statement that quotes a customer's
    e-mail: what the process lists show to whoever may read them."""
    import threading

    email = "grace.1@example.com"
    sql = f"SELECT SLEEP(4), id FROM customers WHERE email = '{email}'"
    other = root_connection(mysql_database)

    def run() -> None:
        with other.cursor() as cursor:
            cursor.execute(sql)
            cursor.fetchall()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    with root_connection() as watcher, watcher.cursor() as cursor:
        wait_for(
            lambda: (
                cursor.execute(
                    "SELECT 1 FROM information_schema.PROCESSLIST "
                    "WHERE INFO LIKE 'SELECT SLEEP(4)%'"
                )
                > 0
            )
        )
    yield email
    thread.join(10)
    other.close()
