"""An audit event the control plane refuses (HTTP 400 naming the field: from an agent newer
than it, or a damaged spool) holds back nothing: the agent sends the batch again in halves
down to single events, sets aside only the refused one (``audit-spool.bad``, for a person)
and delivers every other spooled event and every later statement, once each."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from agent.audit import encode_batch, statement_fragment
from tests.integration.conftest import person_token, wait_until


def _fragment(identity: str, text: str, action: str) -> str:
    decision = SimpleNamespace(
        statements=[text],
        kinds=["select"],
        fingerprint="f" * 16,
        statement=text,
        kind="select",
        tables_read=[],
        tables_written=[],
        columns_read=[],
        masked_columns=[],
        rule="",
    )
    return statement_fragment(
        identity=identity,
        datasource="shop",
        client_address="127.0.0.1",
        decision=decision,
        index=0,
        action=action,
    )


def _stored(needle: str) -> list[Any]:
    from audit.models import AuditEvent

    return list(AuditEvent.objects.filter(action="query.executed", target_repr__contains=needle))


def test_an_event_the_control_plane_refuses_is_set_aside_and_the_rest_delivered(
    shop: Any, start_agent: Any, requester: Any, tmp_path: Path
) -> None:
    from django.core.management import call_command

    state = tmp_path / "refused"
    state.mkdir()
    who = requester.username
    # What an agent left in its spool: a batch of 9 with one event this control plane does
    # not take (a decision it does not know), then a second batch behind it.
    events = [
        (_fragment(who, f"SELECT {n} AS spooled_good_{n}", "allow"), 1.7e9 + n, 1, 0.5, False, 9)
        for n in range(9)
    ]
    events[6] = (_fragment(who, "SELECT 6 AS spooled_refused", "summon"), 1.7e9, 1, 0.5, False, 9)
    prefix = "3f9a0c12-aaaa-4bbb-8ccc-"
    first = encode_batch(prefix, 0, events)
    behind = encode_batch(prefix, 9, [(_fragment(who, "SELECT 9 AS spooled_behind", "allow"),
                                       1.7e9, 1, 0.5, False, 9)])  # fmt: skip
    # An older agent's append cut short by a full disk, the next batch glued onto it.
    glued = encode_batch(prefix, 10, [(_fragment(who, "SELECT 10 AS spooled_glued", "allow"),
                                       1.7e9, 1, 0.5, False, 9)])  # fmt: skip
    cut_start = behind[:60]
    lines = [first, behind, cut_start + glued]
    (state / "audit-spool.jsonl").write_text("".join(line + "\n" for line in lines))

    agent = start_agent("--state-dir", str(state))
    token = person_token(requester)
    with agent.connect(who, token) as conn:
        assert conn.execute("SELECT id AS after_refusal FROM customers WHERE id = 2").fetchall()

    wait_until(lambda: _stored("after_refusal"), 60, "the statement after the refused event")
    wait_until(lambda: _stored("spooled_behind"), 60, "the batch behind the refused event")
    wait_until(lambda: _stored("spooled_glued"), 60, "the batch glued to a cut-short line")
    for n in range(9):
        if n != 6:
            assert len(_stored(f"spooled_good_{n}")) == 1, n
    assert _stored("spooled_refused") == []
    set_aside = (state / "audit-spool.bad").read_text().splitlines()
    assert len(set_aside) == 2 and set_aside[1] == cut_start, set_aside
    refused = json.loads(set_aside[0])
    assert len(refused["events"]) == 1 and "spooled_refused" in json.dumps(refused)
    assert refused["id_prefix"] == prefix and refused["events"][0][1] == 6  # its own id
    said = agent.output()  # the control plane's reason, naming the field
    assert "refused by the control plane" in said and "].decision: must be one of" in said
    assert not (state / "audit-spool.jsonl").exists()
    call_command("audit_verify")  # SystemExit(1) when the chain is broken
