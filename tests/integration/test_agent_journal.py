"""A SIGKILLed agent loses no audit event (agent/journal.py): the statements whose results
reached the client before the kill are in Warden's audit trail once each after the agent is
started again, and the hash chain verifies.  Without the journal the same kill loses them."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import person_token, wait_until

STATEMENTS = 40
# Long enough that nothing is delivered before the kill: every event is in memory (and,
# with the journal, in its file) when the agent dies.
NEVER_FLUSHES = ("--audit-flush-interval", "3600")


def _run_statements(agent: Any, person: Any, token: str, tag: str) -> list[str]:
    """STATEMENTS statements whose results the client received, each selecting ``tag`` (a
    column alias: the audit keeps it, constants it normalizes away); their audited texts."""
    texts = []
    with agent.connect(person.username, token) as conn:
        for n in range(1, STATEMENTS + 1):
            if n % 2:
                text = f"SELECT id AS {tag} FROM customers WHERE id = {n}"
                assert conn.execute(text).fetchall() == [(n,)]
            else:  # a second shape, prepared by psycopg after a few runs
                text = f"SELECT id AS {tag}, 1 AS twice FROM customers WHERE id = {n}"
                assert conn.execute(text).fetchall() == [(n, 1)]
            texts.append(text)
    return texts


def _stored(needle: str) -> list[Any]:
    """The statement events stored so far whose statement contains ``needle``."""
    from audit.models import AuditEvent

    return list(AuditEvent.objects.filter(action="query.executed", target_repr__contains=needle))


def _kill(agent: Any) -> None:
    agent.process.send_signal(signal.SIGKILL)
    agent.process.wait(timeout=10)


@pytest.mark.parametrize("native", ["on", "off"])
def test_a_killed_agent_delivers_every_statement_exactly_once_after_restart(
    shop: Any, start_agent: Any, requester: Any, tmp_path: Path, native: str
) -> None:
    from django.core.management import call_command

    state = ("--state-dir", str(tmp_path / "killed"), "--native", native)
    token = person_token(requester)
    agent = start_agent(*state, *NEVER_FLUSHES)
    tag = f"journal_{native}"
    texts = _run_statements(agent, requester, token, tag)
    _kill(agent)
    assert _stored(tag) == [], "delivered before the kill: this would not test the journal"

    start_agent(*state)  # replays the journal, delivers at once

    wait_until(lambda: len(_stored(tag)) >= STATEMENTS, 60, "the journaled events")
    stored = _stored(tag)
    assert len(stored) == len(texts) == STATEMENTS
    assert sorted(event.details["rows"] for event in stored) == [1] * STATEMENTS
    assert not list((tmp_path / "killed").glob("audit-journal*")), "the journal was not released"
    call_command("audit_verify")  # SystemExit(1) when the chain is broken


def test_without_the_journal_the_same_kill_loses_the_statements(
    shop: Any, start_agent: Any, requester: Any, tmp_path: Path
) -> None:
    state = ("--state-dir", str(tmp_path / "unjournaled"), "--audit-journal", "off")
    token = person_token(requester)
    agent = start_agent(*state, *NEVER_FLUSHES)
    _run_statements(agent, requester, token, "unjournaled")
    _kill(agent)
    restarted = start_agent(*state)
    # The restarted agent delivers its own events: one statement shows it is shipping.
    with restarted.connect(requester.username, token) as conn:
        conn.execute("SELECT id AS after_restart FROM customers WHERE id = 1")
    wait_until(lambda: _stored("after_restart"), 60, "the restarted agent's own event")
    assert _stored("unjournaled") == []


def test_an_agent_killed_while_shipping_delivers_each_statement_once(
    shop: Any, start_agent: Any, requester: Any, tmp_path: Path
) -> None:
    """Killed at a flush interval of 0.2 s: some events were delivered, some in flight,
    some only journaled; a replay of delivered ones is de-duplicated by id."""
    from django.core.management import call_command

    state = ("--state-dir", str(tmp_path / "shipping"))
    token = person_token(requester)
    agent = start_agent(*state, "--audit-flush-interval", "0.2")
    sent = STATEMENTS * 5
    with agent.connect(requester.username, token) as conn:
        for n in range(sent):
            conn.execute(f"SELECT id AS shipping FROM customers WHERE id = {n % 60 + 1}")
            if n == STATEMENTS * 3:
                wait_until(lambda: _stored("shipping"), 60, "a first delivery")
    _kill(agent)
    start_agent(*state)

    wait_until(lambda: len(_stored("shipping")) >= sent, 60, "every event")
    assert len(_stored("shipping")) == sent
    call_command("audit_verify")
