"""Bundle trust and persistence; audit delivery, spooling, replay and de-duplication."""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agent.audit import AuditShipper, BatchError, batch_event_count, encode_batch, expand_batch
from agent.controlplane import ControlPlaneClient
from tests.agent.conftest import email_grant


def test_bundle_key_is_pinned_on_first_use(agent: Any, tmp_path: Path, control_plane: Any) -> None:
    pinned = json.loads((tmp_path / "state" / "public_key.json").read_text())
    assert pinned == {"key_id": control_plane.key_id, "public_key": control_plane.public_key_b64}
    assert (tmp_path / "state" / "bundle.json").exists()


def test_tampered_bundle_is_rejected_and_last_good_stays(
    agent: Any, control_plane: Any, make_bundle: Any
) -> None:
    changed = make_bundle("v2")
    changed["rules"] = [r for r in changed["rules"] if r["id"] != 3]  # would unmask for analysts
    control_plane.tamper = True
    control_plane.set_bundle(changed)
    with agent.connect("alice") as conn:
        for _ in range(5):
            agent.call(agent.agent.poller.poll_once())
        assert agent.agent.store.current.version == "v1"
        assert conn.execute("SELECT email FROM customers LIMIT 1").fetchone() == (
            "****@example.com",
        )


def test_new_bundle_takes_effect_without_reconnecting(
    agent: Any, control_plane: Any, make_bundle: Any, wait: Any
) -> None:
    with agent.connect("alice") as conn:
        assert conn.execute("SELECT email FROM customers LIMIT 1").fetchone()[0].startswith("*")
        updated = make_bundle("v2")
        updated["grants"] = [email_grant(5)]
        control_plane.set_bundle(updated)
        wait(lambda: agent.agent.store.current.version == "v2")
        email = conn.execute("SELECT email FROM customers WHERE id = 1").fetchone()[0]
        assert "@example.com" in email and not email.startswith("*")
        # Prepared before the change, bound after: decided again, still correct.
        assert (
            conn.execute("SELECT phone FROM customers WHERE id = %s", (1,), prepare=True)
            .fetchone()[0]
            .startswith("*")
        )


def test_expired_grant_is_not_honoured_even_without_a_new_bundle(
    agent: Any, control_plane: Any, make_bundle: Any, wait: Any
) -> None:
    expired = make_bundle("v3")
    expired["grants"] = [
        {
            "id": 6,
            "identity": "alice",
            "level": "read_unmasked",
            "scope": {"tables": ["public.customers"], "columns": [], "tags": []},
            "expires_at": "2020-01-01T00:00:00Z",
            "statement_fingerprint": None,
            "max_runs": None,
        }
    ]
    control_plane.set_bundle(expired)
    wait(lambda: agent.agent.store.current.version == "v3")
    with agent.connect("alice") as conn:
        assert conn.execute("SELECT email FROM customers LIMIT 1").fetchone()[0].startswith("*")


def test_agent_restarts_with_the_last_good_bundle_while_control_plane_is_down(
    agent_factory: Any, control_plane: Any, tmp_path: Path
) -> None:
    first = agent_factory(state_dir=tmp_path / "s")
    first.stop()
    control_plane.down = True
    second = agent_factory(state_dir=tmp_path / "s")
    with pytest.raises(psycopg.OperationalError, match="control plane is unreachable"):
        psycopg.connect(second.dsn("alice"))  # tokens cannot be verified: fail closed
    control_plane.down = False
    with second.connect("alice") as conn:
        control_plane.down = True
        # The session keeps working on the stored bundle during the outage.
        assert conn.execute("SELECT email FROM customers LIMIT 1").fetchone()[0].startswith("*")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT ssn FROM customers")


def test_bundle_signed_by_another_key_is_refused(
    agent_factory: Any, control_plane: Any, tmp_path: Path, make_bundle: Any
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    running = agent_factory(state_dir=tmp_path / "k")
    control_plane.private_key = Ed25519PrivateKey.generate()  # key rotated / impostor
    control_plane.set_bundle(make_bundle("evil"))
    running.call(running.agent.poller.poll_once())
    assert running.agent.store.current.version == "v1"


def test_one_audit_event_per_statement_with_the_contract_fields(
    agent: Any, control_plane: Any
) -> None:
    with agent.connect("alice") as conn:
        conn.execute("SELECT name, email FROM customers WHERE id < 4")
        with pytest.raises(psycopg.Error):
            conn.execute("SELECT ssn FROM customers")
        conn.execute("SELECT id FROM orders WHERE id = %s", (1,))
    agent.flush_audit()
    events = sorted(control_plane.events.values(), key=lambda e: e["time"])
    by_decision = {e["decision"]: e for e in events}
    masked = by_decision["mask"]
    assert masked["identity"] == "alice" and masked["datasource"] == "shop"
    assert masked["rows"] == 3 and masked["kind"] == "select"
    assert "public.customers.email" in masked["masked_columns"]
    assert masked["statement"] == "SELECT name, email FROM customers WHERE id < $1"
    assert masked["fingerprint"] and masked["client_address"].startswith("127.0.0.1:")
    assert set(masked) >= {
        "id",
        "time",
        "tables_read",
        "tables_written",
        "columns_read",
        "rule",
        "duration_ms",
    }
    denied = by_decision["deny"]
    assert denied["rule"].startswith("rule:2") and denied["rows"] is None
    assert by_decision["allow"]["tables_read"] == ["orders"]


def test_audit_survives_control_plane_outage_and_agent_restart_without_duplicates(
    agent_factory: Any, control_plane: Any, tmp_path: Path, wait: Any
) -> None:
    state = tmp_path / "audit-state"
    running = agent_factory(state_dir=state)
    with running.connect("alice") as conn:
        conn.execute("SELECT 1")
        running.flush_audit()
        delivered_before = len(control_plane.events)
        control_plane.down = True
        for i in range(20):
            conn.execute(f"SELECT {i} AS during_outage")
    running.flush_audit()
    running.stop()  # final flush cannot deliver: events are spooled
    spool = state / "audit-spool.jsonl"
    replaying = spool.with_suffix(".replaying")
    spooled_ids = [
        event["id"]
        for line in spool.read_text().splitlines()
        for event in expand_batch(json.loads(line))
    ]
    assert len(spooled_ids) >= 20 and len(set(spooled_ids)) == len(spooled_ids)
    # Simulate a crash after delivery but before the spool was cleared: same ids again.
    replay_copy = spool.read_text()
    control_plane.down = False
    restarted = agent_factory(state_dir=state)
    # Replay moves the spool aside (.replaying) before it sends: wait for both files to go.
    wait(lambda: not spool.exists() and not replaying.exists())
    restarted.stop()
    spool.write_text(replay_copy)
    again = agent_factory(state_dir=state)
    wait(lambda: not spool.exists() and not replaying.exists())
    again.stop()
    assert all(event_id in control_plane.events for event_id in spooled_ids)
    assert len(control_plane.events) == delivered_before + len(spooled_ids)
    assert again.agent.audit.duplicates == len(spooled_ids)


def test_metrics_endpoint_reports_connections_decisions_and_bundle(
    agent_factory: Any, unused_port: int
) -> None:
    port = unused_port
    running = agent_factory(metrics_port=port)
    with running.connect("alice") as conn:
        conn.execute("SELECT email FROM customers LIMIT 1")
        with pytest.raises(psycopg.Error):
            conn.execute("DROP TABLE scratch")
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    assert "warden_agent_connections_open 1.0" in text
    assert 'warden_agent_statements_total{decision="mask"} 1.0' in text
    assert 'warden_agent_statements_total{decision="deny"} 1.0' in text
    assert 'warden_agent_bundle_info{version="v1"} 1.0' in text
    assert "warden_agent_statement_seconds_bucket" in text


def test_compact_batches_send_each_statement_once_and_expand_to_every_event() -> None:
    fragment = '"identity":"alice","statement":"SELECT $1","decision":"allow"'
    other = '"identity":"bob","statement":"SELECT 2","decision":"deny"'
    queued = [
        (fragment, 1_790_000_000.5, 1, 0.25, False, 40),
        (other, 1_790_000_001.0, None, 0.0, True, 0),
    ]
    queued.append((fragment, 1_790_000_002.0, 3, 1.0, False, 120))

    document = json.loads(encode_batch("1f0c2a3b-4c5d-4e6f-8a9b-", 41, queued))
    events = expand_batch(document)

    assert len(document["statements"]) == 2
    assert [e["id"] for e in events] == [
        "1f0c2a3b-4c5d-4e6f-8a9b-000000000029",
        "1f0c2a3b-4c5d-4e6f-8a9b-00000000002a",
        "1f0c2a3b-4c5d-4e6f-8a9b-00000000002b",
    ]
    assert [(e["identity"], e["rows"], e.get("error", False)) for e in events] == [
        ("alice", 1, False),
        ("bob", None, True),
        ("alice", 3, False),
    ]
    assert events[0]["time"] == "2026-09-21T14:13:20.500000+00:00"
    assert [e["bytes"] for e in events] == [40, 0, 120]


def test_a_format_2_batch_spooled_by_an_older_agent_still_expands_without_bytes() -> None:
    document = {
        "format": 2,
        "id_prefix": "1f0c2a3b-4c5d-4e6f-8a9b-",
        "statements": [{"identity": "alice", "statement": "SELECT 1", "decision": "allow"}],
        "events": [[0, 41, 1_790_000_000.5, 1, 0.25, 0]],
    }

    (event,) = expand_batch(document)

    assert (event["rows"], event["bytes"]) == (1, None)
    document["events"][0].append(7)  # a format 2 row has six fields, no more
    with pytest.raises(BatchError, match=r"events\[0\]: must be \[statement, seq, time, rows, "):
        expand_batch(document)
    assert batch_event_count(json.dumps(document)) == 1


def test_audit_ids_stay_unique_across_batches_and_agent_runs(tmp_path: Path) -> None:
    shippers = [AuditShipper(ControlPlaneClient("http://127.0.0.1:9", "t"), tmp_path) for _ in "ab"]
    ids: list[str] = []
    for shipper in shippers:
        for batch in range(3):
            for row in range(4):
                shipper.record_statement(f'"statement":"{batch}.{row}"', 1, 0.1, False)
            shipper._encode_queued()
        ids += [e["id"] for doc in shipper.pending for e in expand_batch(json.loads(doc))]
    assert len(ids) == len(set(ids)) == 24
    assert all(uuid.UUID(event_id).version == 4 for event_id in ids)


def test_spool_lines_of_an_older_agent_one_event_each_are_replayed(
    agent_factory: Any, control_plane: Any, tmp_path: Path, wait: Any
) -> None:
    state = tmp_path / "legacy"
    state.mkdir()
    legacy = [
        {
            "id": str(uuid.uuid4()),
            "time": "2026-11-20T10:00:00+00:00",
            "identity": "alice",
            "datasource": "shop",
            "decision": "allow",
            "statement": f"SELECT {i}",
        }
        for i in range(3)
    ]
    (state / "audit-spool.jsonl").write_text("".join(json.dumps(e) + "\n" for e in legacy))

    running = agent_factory(state_dir=state)
    wait(lambda: not (state / "audit-spool.jsonl").exists())
    running.stop()

    assert all(event["id"] in control_plane.events for event in legacy)
