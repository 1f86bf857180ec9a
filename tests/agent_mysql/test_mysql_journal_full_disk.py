"""A full disk under the MySQL agent's audit journal (a real, filled tmpfs as the state
directory): the statement whose event cannot be journaled gets an ERR naming the rule
(1021, ``audit_journal``) numbered as the client expects, its result withheld, and delivery
to a reachable control plane goes on.  The PostgreSQL agent and the shipper's rules:
tests/agent/test_journal_full_disk.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pymysql
import pytest

from tests.agent.disks import fill, mounted_small_disk
from tests.agent_mysql.conftest import session_of


def _audited(plane: Any, needle: str) -> int:
    with plane.lock:
        events = list(plane.events.values())
    return sum(needle in event.get("statement", "") for event in events)


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
def test_a_full_disk_fails_the_statement_with_an_err_and_delivery_goes_on(
    agent_factory: Any, control_plane: Any, tmp_path: Path, native: bool
) -> None:
    with mounted_small_disk(tmp_path) as small_disk:
        agent = agent_factory(state_dir=small_disk / "state", native=native)
        conn = agent.connect()
        with conn.cursor() as cursor:
            for n in range(3):  # decided once, then (native) repeated from the caches
                cursor.execute(f"SELECT id AS full_marker FROM orders WHERE id = {n + 1}")
                assert cursor.fetchall() == ((n + 1,),)
        agent.flush_audit()  # the journal's file released: the next record needs a new page
        path = session_of(agent).native_path
        taken_before = path.stats["client"] if native else 0
        filler = fill(small_disk)
        with conn.cursor() as cursor, pytest.raises(pymysql.err.OperationalError) as refused:
            cursor.execute("SELECT id AS full_marker FROM orders WHERE id = 4")
        code, message = refused.value.args
        assert code == 1021 and message.startswith("audit_journal:")
        assert "result is withheld" in message
        if native:  # the repeat was taken in C: the native writer's failure
            assert path.stats["client"] == taken_before + 1, path.stats
        conn.close()
        agent.flush_audit()  # the disk is still full: delivery does not wait for it
        assert agent.agent.audit.queued == [] and agent.agent.audit.pending == []
        assert _audited(control_plane, "full_marker") == 4  # the refused one ran: audited
        filler.unlink()
        with agent.connect() as conn, conn.cursor() as cursor:  # room again
            cursor.execute("SELECT id AS full_marker FROM orders WHERE id = 5")
            assert cursor.fetchall() == ((5,),)
        agent.flush_audit()
        assert _audited(control_plane, "full_marker") == 5
        agent.stop()


# 1,001 rows of 2 kB (MariaDB's recursion depth): many upstream chunks, each relayed on.
STREAMED = (
    "WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) "
    "SELECT i, REPEAT('x', 2000) AS streamed_marker FROM n"
)


def test_an_err_after_streamed_rows_is_numbered_after_them(
    agent_factory: Any, control_plane: Any, tmp_path: Path
) -> None:
    """Rows that went out before the result's end stay sent; the ERR that replaces the rest
    carries the sequence id the client expects next (else: 'Packet sequence number wrong').
    The pure-Python path streams a result (the native one buffers a whole one and withholds
    it all)."""
    with mounted_small_disk(tmp_path) as small_disk:
        agent = agent_factory(state_dir=small_disk / "state", native=False)
        conn = agent.connect()
        with conn.cursor() as cursor:
            cursor.execute(STREAMED)
            assert len(cursor.fetchall()) == 1001
        agent.flush_audit()
        filler = fill(small_disk)
        with conn.cursor() as cursor, pytest.raises(pymysql.err.OperationalError) as refused:
            cursor.execute(STREAMED)
        assert refused.value.args[0] == 1021
        filler.unlink()
        agent.stop()
