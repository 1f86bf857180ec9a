"""Real clients through the agent: psql, psycopg (simple, extended, pipeline, binary, COPY,
cancel), SQLAlchemy; plus error recovery and protocol edge cases."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import threading
import time
from typing import Any

import psycopg
import pytest
import sqlalchemy

from agent.postgres import codec


@pytest.fixture
def agent(agent_on_both_paths: Any) -> Any:
    """Every test here runs on the native data path and on the pure-Python one."""
    return agent_on_both_paths


def test_psql_runs_queries_and_sees_masks(agent: Any) -> None:
    env = {**os.environ, "PGPASSWORD": "wdn_alice"}
    result = subprocess.run(
        [
            "/usr/bin/psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(agent.port),
            "-U",
            "alice",
            "-d",
            "shop",
            "-At",
            "-c",
            "SELECT email FROM customers ORDER BY id LIMIT 1",
            "-c",
            "SELECT 1+1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["****@example.com", "2"]


def test_psql_reports_the_guardrail_that_blocked_a_statement(agent: Any) -> None:
    env = {**os.environ, "PGPASSWORD": "wdn_alice"}
    result = subprocess.run(
        [
            "/usr/bin/psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(agent.port),
            "-U",
            "alice",
            "-d",
            "shop",
            "-c",
            "DROP TABLE scratch",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode != 0
    assert "no destructive statements" in result.stderr


def test_simple_and_extended_queries_return_the_same_rows(agent: Any) -> None:
    with agent.connect("root") as conn:
        simple = conn.execute("SELECT id, name FROM customers WHERE id < 4 ORDER BY id").fetchall()
        extended = conn.execute(
            "SELECT id, name FROM customers WHERE id < %s ORDER BY id", (4,)
        ).fetchall()
    assert simple == extended and len(simple) == 3


def test_pipeline_mode_with_masks_and_a_denied_statement(agent: Any) -> None:
    with agent.connect("alice") as conn:
        with conn.pipeline():
            first = conn.execute("SELECT email FROM customers WHERE id = %s", (1,))
            second = conn.execute("SELECT name FROM customers WHERE id = %s", (2,))
            third = conn.execute("SELECT upper(email) FROM customers WHERE id = %s", (3,))
        assert first.fetchone() == ("****@example.com",)
        assert second.fetchone()[0]
        assert third.fetchone() == ("****",)
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.pipeline():
            conn.execute("SELECT 1")
            conn.execute("SELECT ssn FROM customers WHERE id = %s", (1,))
        # The connection is still usable after the error.
        assert conn.execute("SELECT 42").fetchone() == (42,)


def test_error_in_extended_mode_recovers_at_sync(agent: Any) -> None:
    with agent.connect("root") as conn:
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1 / %s", (0,))
        # A relation the agent cannot resolve is its own refusal for an identity with any
        # restricted column (root has the SSN denied): the session recovers the same way.
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="no_such_table"):
            conn.execute("SELECT * FROM no_such_table WHERE id = %s", (1,))
        assert conn.execute("SELECT %s::int + 1", (1,)).fetchone() == (2,)


def test_transactions_and_denials_inside_them(agent: Any) -> None:
    with agent.connect("root") as conn:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO scratch VALUES (1, 'a')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM scratch")
        conn.execute("ROLLBACK")
        assert conn.execute("SELECT count(*) FROM scratch WHERE v = 'a'").fetchone() == (0,)


def test_copy_in_and_out_through_the_agent(agent: Any) -> None:
    with agent.connect("root") as conn:
        with conn.cursor().copy("COPY scratch (id, v) FROM STDIN") as copy:
            for i in range(100):
                copy.write_row((1000 + i, f"row {i}"))
        with conn.cursor().copy(
            "COPY (SELECT id, v FROM scratch WHERE id >= 1000 ORDER BY id) TO STDOUT"
        ) as copy:
            data = b"".join(bytes(chunk) for chunk in copy)
        assert data.count(b"\n") == 100
        conn.execute("DELETE FROM scratch WHERE id >= 1000")


def test_binary_results_pass_through_unchanged_when_nothing_is_masked(agent: Any) -> None:
    with agent.connect("root") as conn:
        rows = (
            conn.cursor(binary=True)
            .execute("SELECT id, amount, note FROM orders WHERE id < %s ORDER BY id", (3,))
            .fetchall()
        )
    assert [r[0] for r in rows] == [1, 2]


def test_cancel_request_reaches_the_upstream_backend(agent_process_factory: Any) -> None:
    # A subprocess agent: libpq's blocking PQcancel holds this process's GIL.
    process = agent_process_factory()
    with psycopg.connect(process.dsn("root"), autocommit=True) as conn:
        timer = threading.Timer(0.5, conn.cancel)
        timer.start()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT pg_sleep(10)")
        assert time.monotonic() - started < 5
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_ssl_request_is_declined_and_plaintext_continues(agent: Any) -> None:
    with psycopg.connect(
        agent.dsn("root").replace("sslmode=disable", "sslmode=prefer"), autocommit=True
    ) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(agent.dsn("root").replace("sslmode=disable", "sslmode=require"))


def test_gssenc_request_is_declined(agent: Any) -> None:
    with socket.create_connection(("127.0.0.1", agent.port), timeout=5) as sock:
        sock.sendall(struct.pack("!ii", 8, codec.GSSENC_REQUEST))
        assert sock.recv(1) == b"N"


def test_sqlalchemy_session_works_through_the_agent(agent: Any) -> None:
    url = f"postgresql+psycopg://root:wdn_root@127.0.0.1:{agent.port}/shop"
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    with engine.connect() as conn:
        count = conn.execute(
            sqlalchemy.text("SELECT count(*) FROM customers WHERE id > :x"), {"x": 10}
        ).scalar_one()
        emails = conn.execute(sqlalchemy.text("SELECT email FROM customers LIMIT 2")).all()
    engine.dispose()
    assert count >= 40
    assert len(emails) == 2


def test_unparseable_sql_is_refused_without_reaching_upstream(agent: Any) -> None:
    with agent.connect("root") as conn:
        with pytest.raises(psycopg.errors.SyntaxError) as info:
            conn.execute("SELEC wat FROM")
        assert "Warden" in str(info.value)
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_notices_are_relayed(agent: Any) -> None:
    notices: list[str] = []
    with agent.connect("root") as conn:
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS tmp_n (id int)")
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS tmp_n (id int)")
    assert any("already exists" in n for n in notices)


def test_many_rows_stream_through(agent: Any) -> None:
    with agent.connect("alice") as conn:
        rows = conn.execute("SELECT g, md5(g::text) FROM generate_series(1, 20000) g").fetchall()
        masked = conn.execute(
            "SELECT c.email FROM customers c, generate_series(1, 200) g"
        ).fetchall()
    assert len(rows) == 20000
    assert len(masked) >= 10000 and {r[0] for r in masked} <= {"****@example.com", None}


def test_terminate_closes_the_upstream_connection(agent: Any, pg_database: str) -> None:
    conn = agent.connect("root")
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    # autocommit: pg_stat_activity is read once per transaction (a backend still there at
    # the first read stayed there for every later read of one transaction: the old flake).
    with psycopg.connect(
        host="127.0.0.1", user="postgres", dbname=pg_database, autocommit=True
    ) as admin:
        # The backend is this pid started at this time: a pid the kernel hands out again
        # (pid_max is 32768 here) is another backend.
        started = admin.execute(
            "SELECT backend_start FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()[0]
        conn.close()
        deadline = time.monotonic() + 10  # a loaded machine ends backends slowly
        while alive := admin.execute(
            "SELECT state, query, backend_type FROM pg_stat_activity"
            " WHERE pid = %s AND backend_start = %s",
            (pid, started),
        ).fetchone():
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert alive is None, f"the session's backend is still there: {alive}"
