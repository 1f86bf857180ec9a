"""The MySQL agent journals audit events like the PostgreSQL one (agent/journal.py, through
the shared shipper): SIGKILLed after its clients got their results, it delivers every
statement's event exactly once when started again; without the journal they are lost."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pymysql
import pytest

from tests.agent.conftest import MASKING_KEY, REPO_ROOT, free_port, wait_for
from tests.live import AgentSubprocess

STATEMENTS = 25


def _start(control_plane: Any, database: str, state: Path, *extra: str) -> AgentSubprocess:
    port = free_port()
    args = ["--protocol", "mysql", "--control-plane", control_plane.url, "--token", "agent-token"]
    args += ["--listen", f"127.0.0.1:{port}", "--datasource", "shop", "--upstream-port", "3306"]
    args += ["--upstream-user", "root", "--upstream-database", database]
    args += ["--upstream-sslmode", "disable", "--state-dir", str(state)]
    args += ["--poll-interval", "0.5", "--audit-flush-interval", "0.2", *extra]
    env = {**os.environ, "WARDEN_MASKING_KEY": MASKING_KEY.decode(), "PYTHONPATH": str(REPO_ROOT)}
    return AgentSubprocess(args, env, port)


def _run_statements(agent: AgentSubprocess, database: str, marker: str) -> None:
    connection = pymysql.connect(
        host="127.0.0.1",
        port=agent.port,
        user="alice",
        password="wdn_alice",
        database=database,
        autocommit=True,
        connect_timeout=10,
    )
    with connection, connection.cursor() as cursor:
        for n in range(STATEMENTS):
            order = n % 20 + 1  # the fixture's 20 orders
            cursor.execute(f"SELECT id AS {marker} FROM orders WHERE id = {order}")
            assert cursor.fetchall() == ((order,),)


def _audited(control_plane: Any, marker: str) -> int:
    with control_plane.lock:
        events = list(control_plane.events.values())
    return sum(marker in event.get("statement", "") for event in events)


def _kill(agent: AgentSubprocess) -> None:
    agent.process.send_signal(signal.SIGKILL)
    agent.process.wait(timeout=10)
    agent.stop()


@pytest.mark.parametrize("journal", ["on", "off"])
def test_a_killed_mysql_agent_loses_no_statement_only_with_its_journal(
    control_plane: Any, mysql_database: str, tmp_path: Path, journal: str
) -> None:
    state = tmp_path / "mysql-agent"
    switch = ("--audit-journal", journal)
    agent = _start(control_plane, mysql_database, state, *switch, "--audit-flush-interval", "3600")
    _run_statements(agent, mysql_database, "killed_marker")
    _kill(agent)
    assert _audited(control_plane, "killed_marker") == 0  # all of them were in memory only

    restarted = _start(control_plane, mysql_database, state, *switch)
    try:
        _run_statements(restarted, mysql_database, "restarted_marker")  # it ships
        wait_for(lambda: _audited(control_plane, "restarted_marker") == STATEMENTS, timeout=30)
        if journal == "on":
            wait_for(lambda: _audited(control_plane, "killed_marker") >= STATEMENTS, timeout=30)
            assert _audited(control_plane, "killed_marker") == STATEMENTS
            assert control_plane.duplicate_events == 0
        else:  # the control: the same kill without the journal loses every one
            assert _audited(control_plane, "killed_marker") == 0
    finally:
        restarted.stop()
