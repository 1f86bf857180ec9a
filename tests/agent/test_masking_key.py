"""The bundle names the masking key its ``hash`` masks use (``masking_key_id``; the key
never leaves the agents).  An agent that holds that key gives keyed tokens; one that holds
another key, or none, redacts those columns instead: an unkeyed or wrong-keyed hash would
give tokens anyone can confirm guesses against (or that join with no other agent's), and
/readyz says why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent import masking
from agent.__main__ import parse_args
from agent.bundle import Bundle
from agent.heartbeat import HeartbeatSender
from tests.agent.conftest import MASKING_KEY, bundle_document, probe

FIRST_EMAIL = "grace.1@example.com"  # customers.id = 1
QUERY = "SELECT email FROM customers WHERE id = 1"


def _bot_email(running: Any) -> str:
    """The e-mail the bot (group "ai": rule "bots get hashed emails") reads, twice (the
    second run takes the cached decision: the native path when it is on)."""
    with running.connect("bot") as conn:
        first = conn.execute(QUERY).fetchone()[0]
        assert conn.execute(QUERY).fetchone()[0] == first
    return str(first)


def test_an_agent_holding_the_bundles_key_gives_keyed_tokens(agent_factory: Any) -> None:
    running = agent_factory()  # holds MASKING_KEY as k1, the bundle's key
    token = _bot_email(running)
    assert token == masking.hash_token(FIRST_EMAIL, MASKING_KEY)
    with running.connect("root") as conn:  # the unrestricted path reads the real value
        assert conn.execute(QUERY).fetchone()[0] == FIRST_EMAIL


def test_a_bundle_naming_another_key_gets_its_hash_masks_redacted(
    agent_factory: Any, unused_port: int
) -> None:
    running = agent_factory(masking_key_id="k2", metrics_port=unused_port)
    token = _bot_email(running)
    assert token == masking.REDACTED
    assert token != masking.hash_token(FIRST_EMAIL, MASKING_KEY)
    with running.connect("alice") as conn:  # other masks are untouched
        assert conn.execute(QUERY).fetchone()[0] == "****@example.com"
    status, body = probe(unused_port, "/readyz")
    assert status == 200, body  # enforcing: ready, and saying what it does
    problem = body["checks"]["bundle"]["hash_masks"]
    assert "masking key 'k1'" in problem and "holds 'k2'" in problem
    assert HeartbeatSender(running.agent).payload()["masking_problem"] == problem  # admins see it


def test_an_agent_without_a_key_redacts_hash_masks(agent_factory: Any, unused_port: int) -> None:
    running = agent_factory(masking_key=b"", metrics_port=unused_port)
    token = _bot_email(running)
    assert token == masking.REDACTED
    assert token != masking.hash_token(FIRST_EMAIL, b"")  # never the guessable unkeyed one
    status, body = probe(unused_port, "/readyz")
    assert status == 200 and "no masking key" in body["checks"]["bundle"]["hash_masks"]


def test_a_new_bundle_naming_the_agents_key_brings_keyed_tokens_back(
    agent_factory: Any, control_plane: Any, unused_port: int
) -> None:
    document = bundle_document("v1")
    document["masking_key_id"] = "k0"
    control_plane.set_bundle(document)
    running = agent_factory(metrics_port=unused_port)
    assert _bot_email(running) == masking.REDACTED
    document = bundle_document("v2")  # the control plane now names k1
    control_plane.set_bundle(document)
    running.call(running.agent.poller.poll_once())
    assert running.agent.store.current.version == "v2"
    assert _bot_email(running) == masking.hash_token(FIRST_EMAIL, MASKING_KEY)
    status, body = probe(unused_port, "/readyz")
    assert status == 200 and "hash_masks" not in body["checks"]["bundle"], body
    assert HeartbeatSender(running.agent).payload()["masking_problem"] == ""


def test_without_keyed_masks_changes_only_hash_masks() -> None:
    document = bundle_document()
    document["datasource"]["default_mask_method"] = "hash"
    bundle = Bundle.from_document(document)
    assert bundle.masking_key_id == "k1"
    redacted = bundle.without_keyed_masks()
    assert redacted.default_method == "redact"
    before = [rule.get("mask_method") for rule in bundle.rules]
    after = [rule.get("mask_method") for rule in redacted.rules]
    assert "hash" in before and {"hash", "redact"} - set(after) == {"hash"}
    assert after == ["redact" if method == "hash" else method for method in before]
    assert bundle.default_method == "hash"  # the bundle itself is left as it was


@pytest.mark.parametrize("value", ["k1", "2026-rotation"])
def test_the_agent_command_reads_its_key_id(
    value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WARDEN_MASKING_KEY_ID", value)
    monkeypatch.setenv("WARDEN_MASKING_KEY", "secret")
    config = parse_args(
        ["--control-plane", "http://127.0.0.1:9", "--datasource", "shop", "--token", "t"]
    )
    assert (config.masking_key_id, config.masking_key) == (value, b"secret")
