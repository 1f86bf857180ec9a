"""Server catalogs that show other sessions' statements or credentials.

Another session (a direct connection) runs a statement with a customer's e-mail in its
text; through the agent root, whom a datasource rule allows everything, reads it back from
the activity views, so each probe really reaches the secret. alice, governed by masking
rules only, must be refused with 42501 naming the catalog. Password hashes likewise, for a
role made with a password for the test.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.agent.corpus import (
    ACTIVITY_PROBES,
    CREDENTIAL_PROBES,
    REFUSAL_ONLY,
    STORED_CREDENTIAL_PROBES,
)
from tests.agent.wire import EMAIL, assert_legitimate_work_runs, probe, run


@pytest.fixture
def agent(agent_on_both_paths: Any) -> Any:
    """Every test here runs on the native data path and on the pure-Python one."""
    return agent_on_both_paths


SCRAM = re.compile(r"SCRAM-SHA-256\$\d+:")
STORED = re.compile(r"stored-secret-\d+")


@pytest.fixture
def other_session(pg_database: str) -> Iterator[None]:
    """A session that ran a statement quoting a customer's e-mail, then stays idle."""
    with psycopg.connect(
        host="127.0.0.1", user="postgres", dbname=pg_database, autocommit=True
    ) as conn:
        conn.execute("SELECT id FROM customers WHERE email = 'ada.8@example.com'")
        yield


@pytest.fixture
def role_with_password(pg_database: str) -> Iterator[str]:
    name = f"warden_probe_{secrets.token_hex(4)}"
    with psycopg.connect(
        host="127.0.0.1", user="postgres", dbname=pg_database, autocommit=True
    ) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD 'probe-secret'")
        try:
            yield name
        finally:
            conn.execute(f"DROP ROLE {name}")


def test_other_sessions_statements_are_refused(agent: Any, other_session: None) -> None:
    with agent.connect("root") as root, agent.connect("alice") as alice:
        for sql, catalog in ACTIVITY_PROBES:
            probe(root, alice, sql, secret=EMAIL, reason=catalog)


def test_password_hashes_are_refused(agent: Any, role_with_password: str) -> None:
    with agent.connect("root") as root, agent.connect("alice") as alice:
        for sql, catalog in CREDENTIAL_PROBES:
            probe(root, alice, sql, secret=SCRAM, reason=catalog)


@pytest.fixture
def stored_credentials(admin: psycopg.Connection[Any]) -> Iterator[None]:
    """A user mapping and a (never connected) subscription holding a password."""
    admin.execute("CREATE FOREIGN DATA WRAPPER rt_fdw")
    admin.execute("CREATE SERVER rt_server FOREIGN DATA WRAPPER rt_fdw")
    admin.execute(
        "CREATE USER MAPPING FOR postgres SERVER rt_server "
        "OPTIONS (user 'remote', password 'stored-secret-1')"
    )
    admin.execute(
        "CREATE SUBSCRIPTION rt_sub CONNECTION 'host=192.0.2.1 password=stored-secret-2' "
        "PUBLICATION rt_pub WITH (connect = false)"
    )
    try:
        yield
    finally:
        admin.execute("ALTER SUBSCRIPTION rt_sub SET (slot_name = NONE)")
        admin.execute("DROP SUBSCRIPTION rt_sub")
        admin.execute("DROP FOREIGN DATA WRAPPER rt_fdw CASCADE")


def test_stored_credentials_are_refused(agent: Any, stored_credentials: None) -> None:
    with agent.connect("root") as root, agent.connect("alice") as alice:
        for sql, catalog in STORED_CREDENTIAL_PROBES:
            probe(root, alice, sql, secret=STORED, reason=catalog)


def test_statement_statistics_and_stored_credentials_are_refused(agent: Any) -> None:
    with agent.connect("alice") as alice:
        for sql, catalog in REFUSAL_ONLY:
            outcome = run(alice, sql)
            assert outcome.sqlstate == "42501" and catalog in str(outcome.error), (sql, outcome)
            assert "needs a Warden rule allowing it" in str(outcome.error)
        assert_legitimate_work_runs(alice)


def test_a_rule_allowing_the_catalog_lets_an_identity_read_it(
    agent_factory: Any, control_plane: Any, other_session: None
) -> None:
    from tests.agent.conftest import bundle_document

    bundle = bundle_document()
    bundle["rules"].append(
        {
            "id": 99,
            "name": "dba reads activity",
            "priority": 100,
            "subjects": {"everyone": False, "users": ["bob"], "groups": []},
            "resource": {"kind": "table", "schema": "pg_catalog", "table": "pg_stat_activity"},
            "action": "allow",
            "mask_method": None,
            "mask_param": None,
        }
    )
    control_plane.set_bundle(bundle)
    agent = agent_factory()
    with agent.connect("bob") as bob:
        queries = [row[0] for row in bob.execute("SELECT query FROM pg_stat_activity")]
    assert any("ada.8@example.com" in (query or "") for query in queries)
    with agent.connect("alice") as alice:
        assert run(alice, "SELECT query FROM pg_stat_activity").sqlstate == "42501"
        assert_legitimate_work_runs(alice)


def test_own_session_catalogs_keep_working(agent: Any) -> None:
    with agent.connect("alice") as alice:
        for sql in (
            "SELECT pg_backend_pid()",
            "SELECT name FROM pg_prepared_statements",
            "SELECT rolname FROM pg_roles ORDER BY 1",
            "SELECT usename FROM pg_user ORDER BY 1",
            "SELECT datname FROM pg_database ORDER BY 1",
        ):
            outcome = run(alice, sql)
            assert outcome.error is None, (sql, outcome)
