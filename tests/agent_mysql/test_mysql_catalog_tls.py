"""The MySQL catalog's side connections (views and routines, refreshed every 30 s) use the
upstream's TLS context, built once per configuration, with its verification options:
against a private MariaDB with TLS whose catalog user must connect over TLS.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest

from agent.mysql.server import MySqlCatalog
from agent.server import AgentConfig
from agent.upstream import UpstreamConfig
from tests.agent.certificates import server_certificates
from tests.agent.conftest import free_port
from tests.agent_mysql.conftest import MY_HOST, MY_PORT

MARIADBD = Path("/usr/sbin/mariadbd")
SETUP = (
    "CREATE USER tlsonly@'%' IDENTIFIED BY 'tls-secret' REQUIRE SSL",
    "CREATE USER plain@'%' IDENTIFIED BY 'plain-secret'",
    "CREATE DATABASE shop",
    "CREATE TABLE shop.customers (id int, email varchar(100))",
    "CREATE VIEW shop.contacts AS SELECT id, email FROM shop.customers",
    "GRANT SELECT, SHOW VIEW ON shop.* TO tlsonly@'%', plain@'%'",
)


def _admin(**where: Any) -> pymysql.connections.Connection[Any]:
    """Root on a server, without TLS (which would build a context of PyMySQL's own)."""
    return pymysql.connect(**where, user="root", autocommit=True, ssl_disabled=True)


def _started(socket_path: str, log: Path) -> pymysql.connections.Connection[Any]:
    deadline = time.monotonic() + 30
    while True:
        try:
            return _admin(unix_socket=socket_path)
        except pymysql.MySQLError:
            if time.monotonic() > deadline:
                pytest.fail(f"the private MariaDB did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def tls_mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("mariadb-tls")
    _, files = server_certificates()
    for name, content in files.items():
        (root / name).write_bytes(content)
    user = ["--user=root"] if os.geteuid() == 0 else []
    data, socket_path, log = root / "data", str(root / "sock"), root / "log"
    install = ["mariadb-install-db", "--no-defaults", f"--datadir={data}", *user]
    subprocess.run(
        [*install, "--auth-root-authentication-method=normal", "--skip-test-db"],
        check=True,
        capture_output=True,
    )
    port = free_port()
    server_options = [
        f"--datadir={data}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        f"--socket={socket_path}",
        f"--pid-file={root / 'pid'}",
        f"--ssl-cert={root / 'server.crt'}",
        f"--ssl-key={root / 'server.key'}",
        f"--ssl-ca={root / 'ca.crt'}",
    ]
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [str(MARIADBD), "--no-defaults", *server_options, *user],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        with _started(socket_path, log) as admin, admin.cursor() as cursor:
            for statement in SETUP:
                cursor.execute(statement)
        yield {"port": port, "socket": socket_path, **{n: str(root / n) for n in files}}
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def contexts_built(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every ``ssl.SSLContext`` constructed while the test runs (PyMySQL's included)."""
    built: list[Any] = []
    construct = ssl.SSLContext.__new__

    def counting(cls: type[ssl.SSLContext], *args: Any, **kwargs: Any) -> ssl.SSLContext:
        context = construct(cls, *args, **kwargs)
        built.append(context)
        return context

    monkeypatch.setattr(ssl.SSLContext, "__new__", counting)
    return built


def _catalog(
    port: int,
    sslmode: str,
    *,
    user: str = "tlsonly",
    host: str = MY_HOST,
    database: str = "shop",
    **tls: Any,
) -> MySqlCatalog:
    password = {"tlsonly": "tls-secret", "plain": "plain-secret", "root": ""}[user]
    upstream = UpstreamConfig(host, port, user, password, database, sslmode=sslmode, **tls)
    config = AgentConfig(
        control_plane="http://127.0.0.1:9", token="", datasource="shop", upstream=upstream
    )
    return MySqlCatalog(config)


async def _refreshes_see_new_views(
    catalog: MySqlCatalog, admin: pymysql.connections.Connection[Any]
) -> None:
    """Three refreshes, each proven real by a view created just before it."""
    schema = catalog.upstream.database
    names = [f"`{schema}`.tls_refresh_{refresh}" for refresh in range(3)]
    with admin, admin.cursor() as cursor:
        try:
            for refresh, name in enumerate(names):
                cursor.execute(f"CREATE VIEW {name} AS SELECT 1 AS one")
                catalog.invalidate()  # what the 30 s expiry does
                assert await catalog.is_view(schema, f"tls_refresh_{refresh}")
                assert not await catalog.is_view(schema, "customers")
        finally:
            cursor.execute(f"DROP VIEW IF EXISTS {', '.join(names)}")


@pytest.mark.parametrize(
    ("sslmode", "host", "ca"),
    [
        ("prefer", MY_HOST, None),
        ("require", MY_HOST, None),
        ("verify-ca", MY_HOST, "ca.crt"),
        ("verify-full", "localhost", "ca.crt"),
    ],
)
async def test_catalog_refreshes_reuse_one_tls_context(
    tls_mariadb: dict[str, Any],
    contexts_built: list[Any],
    sslmode: str,
    host: str,
    ca: str | None,
) -> None:
    # tlsonly is REQUIRE SSL: every refresh that logs in went over TLS.
    rootcert = tls_mariadb[ca] if ca else None
    catalog = _catalog(tls_mariadb["port"], sslmode, host=host, sslrootcert=rootcert)
    await _refreshes_see_new_views(catalog, _admin(unix_socket=tls_mariadb["socket"]))
    assert contexts_built == [catalog.upstream.ssl_context]  # built once, at the first refresh


@pytest.mark.parametrize(
    ("sslmode", "host", "ca", "reason"),
    [
        ("verify-ca", MY_HOST, "rogue.crt", "certificate verify failed"),
        ("verify-full", MY_HOST, "ca.crt", "mismatch"),  # the certificate names localhost only
    ],
)
async def test_catalog_refuses_an_upstream_its_verification_rejects(
    tls_mariadb: dict[str, Any], sslmode: str, host: str, ca: str, reason: str
) -> None:
    catalog = _catalog(tls_mariadb["port"], sslmode, host=host, sslrootcert=tls_mariadb[ca])
    with pytest.raises(pymysql.err.OperationalError, match=reason):
        await catalog.is_view("shop", "contacts")
    await catalog.close()


async def test_catalog_with_sslmode_disable_connects_without_tls(
    tls_mariadb: dict[str, Any], contexts_built: list[Any]
) -> None:
    with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
        await _catalog(tls_mariadb["port"], "disable").is_view("shop", "contacts")
    plain = _catalog(tls_mariadb["port"], "disable", user="plain")
    assert await plain.is_view("shop", "contacts")
    assert contexts_built == []


async def test_catalog_prefer_learns_once_that_the_server_has_no_tls(
    mysql_database: str, monkeypatch: pytest.MonkeyPatch, contexts_built: list[Any]
) -> None:
    with _admin(host=MY_HOST, port=MY_PORT) as admin, admin.cursor() as cursor:
        cursor.execute("SHOW VARIABLES LIKE 'have_ssl'")
        assert cursor.fetchone()[1] != "YES", "this test needs the shared MariaDB without TLS"
    tls_attempts: list[object] = []
    connect = pymysql.connect

    def counting(*args: Any, **kwargs: Any) -> pymysql.connections.Connection[Any]:
        if kwargs.get("ssl") is not None:
            tls_attempts.append(kwargs["ssl"])
        return connect(*args, **kwargs)

    monkeypatch.setattr(pymysql, "connect", counting)
    catalog = _catalog(MY_PORT, "prefer", user="root", database=mysql_database)
    await _refreshes_see_new_views(catalog, _admin(host=MY_HOST, port=MY_PORT))
    context = catalog.upstream.ssl_context
    assert tls_attempts == [context]  # one try, then plaintext for this agent
    assert contexts_built == [context]
