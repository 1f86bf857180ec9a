"""TLS from the agent to the database, with libpq's sslmode semantics, against a private
PostgreSQL cluster that refuses plaintext connections."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent.upstream import UpstreamConfig
from tests.agent.certificates import certificate, pem, pem_key, server_certificates
from tests.agent.conftest import PG_HOST, PG_PORT, private_cluster

HBA = (
    "local all all trust\n"
    "hostssl all certuser 127.0.0.1/32 cert\n"
    "hostssl all all 127.0.0.1/32 scram-sha-256\n"
    "hostnossl all all 127.0.0.1/32 reject\n"
)
SETTINGS = (
    "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
    "ssl_ca_file = 'ca.crt'\n"
)


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    files = tmp_path_factory.mktemp("upstream-tls")
    signer, pems = server_certificates()
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = certificate("certuser", client_key, signer)
    paths = {
        "ca": files / "ca.crt",
        "rogue": files / "rogue.crt",
        "client_cert": files / "client.crt",
        "client_key": files / "client.key",
    }
    paths["ca"].write_bytes(pems["ca.crt"])
    paths["rogue"].write_bytes(pems["rogue.crt"])
    paths["client_cert"].write_bytes(pem(client))
    paths["client_key"].write_bytes(pem_key(client_key))
    paths["client_key"].chmod(0o600)
    server_files = {name: pems[name] for name in ("server.crt", "server.key", "ca.crt")}
    setup = (
        "CREATE ROLE tlsuser LOGIN PASSWORD 'tls-secret'",
        "CREATE ROLE certuser LOGIN",
        "CREATE TABLE customers (id int, name text, email text)",
        "INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com')",
        "GRANT SELECT ON customers TO tlsuser, certuser",
    )
    with private_cluster(HBA, SETTINGS, server_files, setup) as cluster:
        yield {**cluster, **{name: str(path) for name, path in paths.items()}}


def _upstream(cluster: dict[str, Any], sslmode: str, **options: Any) -> UpstreamConfig:
    host = options.pop("host", "127.0.0.1")
    user = options.pop("user", "tlsuser")
    password = options.pop("password", "tls-secret")
    return UpstreamConfig(
        host, cluster["port"], user, password, "postgres", sslmode=sslmode, **options
    )


def _encrypted(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert row is not None
    return bool(row[0])


@pytest.mark.parametrize("sslmode", ["prefer", "require"])
def test_the_agent_talks_tls_to_a_server_that_requires_it(
    agent_factory: Any, tls_cluster: dict[str, Any], sslmode: str
) -> None:
    running = agent_factory(upstream=_upstream(tls_cluster, sslmode))
    with running.connect("root") as conn:
        assert _encrypted(conn)
        assert conn.execute("SELECT email FROM customers").fetchone() == ("ada@example.com",)


def test_masking_works_over_tls_including_the_catalog_side_connection(
    agent_factory: Any, tls_cluster: dict[str, Any]
) -> None:
    running = agent_factory(
        upstream=_upstream(tls_cluster, "verify-ca", sslrootcert=tls_cluster["ca"])
    )
    with running.connect("alice") as conn:  # an analyst: emails are masked
        (email,) = conn.execute("SELECT email FROM customers").fetchone()
    assert email != "ada@example.com"
    assert email.endswith("@example.com")


def test_verify_full_checks_the_server_name(
    agent_factory: Any, tls_cluster: dict[str, Any]
) -> None:
    by_name = agent_factory(
        upstream=_upstream(
            tls_cluster, "verify-full", host="localhost", sslrootcert=tls_cluster["ca"]
        )
    )
    with by_name.connect("root") as conn:
        assert _encrypted(conn)
    by_address = agent_factory(
        upstream=_upstream(tls_cluster, "verify-full", sslrootcert=tls_cluster["ca"])
    )
    with pytest.raises(psycopg.OperationalError, match="TLS with the upstream server failed"):
        psycopg.connect(by_address.dsn("root"))


@pytest.mark.parametrize("sslmode", ["verify-ca", "require"])
def test_a_certificate_from_another_ca_is_refused(
    agent_factory: Any, tls_cluster: dict[str, Any], sslmode: str
) -> None:
    # libpq: "require" with a root certificate verifies the chain as verify-ca does.
    running = agent_factory(
        upstream=_upstream(tls_cluster, sslmode, sslrootcert=tls_cluster["rogue"])
    )
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect(running.dsn("root"))
    message = str(caught.value)
    assert "could not connect to the upstream" in message
    assert "certificate verify failed" in message


def test_a_client_certificate_logs_in_with_cert_authentication(
    agent_factory: Any, tls_cluster: dict[str, Any]
) -> None:
    running = agent_factory(
        upstream=_upstream(
            tls_cluster,
            "verify-ca",
            user="certuser",
            password="",
            sslrootcert=tls_cluster["ca"],
            sslcert=tls_cluster["client_cert"],
            sslkey=tls_cluster["client_key"],
        )
    )
    with running.connect("root") as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("certuser",)


def test_sslmode_disable_reaches_the_server_in_plaintext_and_is_refused(
    agent_factory: Any, tls_cluster: dict[str, Any]
) -> None:
    running = agent_factory(upstream=_upstream(tls_cluster, "disable"))
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(running.dsn("root"))


def test_require_fails_closed_against_a_server_without_tls(
    agent_factory: Any, pg_database: str
) -> None:
    running = agent_factory(
        upstream=UpstreamConfig(PG_HOST, PG_PORT, "postgres", "", pg_database, sslmode="require")
    )
    with pytest.raises(psycopg.OperationalError, match="does not support TLS"):
        psycopg.connect(running.dsn("root"))


def test_the_agent_command_connects_with_tls_and_forwards_cancel_over_it(
    agent_process_factory: Any, tls_cluster: dict[str, Any]
) -> None:
    # A subprocess agent (libpq's blocking PQcancel holds this process's GIL); the later
    # --upstream-* flags override the factory's.
    process = agent_process_factory(
        "--upstream-port",
        str(tls_cluster["port"]),
        "--upstream-user",
        "tlsuser",
        "--upstream-password",
        "tls-secret",
        "--upstream-database",
        "postgres",
        "--upstream-sslmode",
        "verify-ca",
        "--upstream-sslrootcert",
        tls_cluster["ca"],
    )
    with psycopg.connect(process.dsn("root"), autocommit=True) as conn:
        assert _encrypted(conn)
        timer = threading.Timer(0.5, conn.cancel)
        timer.start()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(30)")
        timer.join()
        assert time.monotonic() - started < 10
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_an_unknown_sslmode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown upstream sslmode 'allow'"):
        UpstreamConfig(sslmode="allow")


def test_verify_ca_needs_its_own_rootcertificate() -> None:
    # Without a name check, the system store would accept any publicly trusted certificate.
    with pytest.raises(ValueError, match="verify-ca needs the CA"):
        UpstreamConfig(sslmode="verify-ca")


def test_the_agent_command_refuses_unreadable_tls_files(tmp_path: Path) -> None:
    from agent.__main__ import parse_args

    with pytest.raises(SystemExit):
        parse_args(
            [
                "--control-plane",
                "http://127.0.0.1:9",
                "--datasource",
                "shop",
                "--upstream-sslmode",
                "verify-full",
                "--upstream-sslrootcert",
                str(tmp_path / "missing.crt"),
            ]
        )
