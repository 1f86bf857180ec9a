"""Signing key rotation: the control plane publishes the next key endorsed by the current one;
agents accept bundles from either during the rotation and nothing from an unrelated key."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from io import StringIO

import pytest
from django.core.management import call_command

from agent.bundle import (
    BundlePoller,
    BundleRejected,
    BundleStore,
    KeyRing,
    UnknownSigningKey,
    endorsement_payload,
)
from agent.controlplane import ControlPlaneClient
from governance import crypto
from governance.services.bundles import bundle_cache_clear, policy_bundle_envelope
from governance.tokens import token_create
from tests.factories import ColumnFactory, ColumnTagFactory

pytestmark = pytest.mark.django_db

KEY_A, KEY_B, KEY_C = (crypto.new_signing_key() for _ in range(3))


def public(private: str) -> str:
    return crypto.public_key_of(crypto.private_key_load(private, "test"))


@pytest.fixture
def use_keys(settings) -> Iterator[Callable[..., None]]:
    """Configure the control plane's signing keys as a restart with new environment would."""

    def configure(current: str, upcoming: str = "", retired: tuple[str, ...] = ()) -> None:
        settings.SIGNING_KEY, settings.SIGNING_KEY_NEXT = current, upcoming
        settings.SIGNING_KEYS_RETIRED = list(retired)
        crypto.signing_keys_cache_clear()
        bundle_cache_clear()

    yield configure
    crypto.signing_keys_cache_clear()
    bundle_cache_clear()


def test_during_a_rotation_bundles_name_the_next_key_and_the_api_publishes_it_endorsed(
    use_keys, shop, agent_client
):
    use_keys(KEY_A, KEY_B)

    envelope = agent_client.get("/api/v1/agent/bundle", {"datasource": "shop"}).json()
    published = agent_client.get("/api/v1/agent/public-key").json()

    assert envelope["key_id"] == crypto.key_id_for(public(KEY_A))
    assert envelope["next_key_id"] == crypto.key_id_for(public(KEY_B))
    assert published["public_key"] == public(KEY_A)
    assert [key["public_key"] for key in published["keys"]] == [public(KEY_A), public(KEY_B)]
    assert "endorsement" in published["keys"][1]


def test_a_bundle_signed_by_the_next_key_is_accepted_by_an_agent_trusting_current_and_next(
    use_keys, shop, tmp_path
):
    use_keys(KEY_B)  # promoted: the next key now signs
    envelope = policy_bundle_envelope(datasource=shop)
    rotating = BundleStore(tmp_path / "rotating", f"{public(KEY_A)},{public(KEY_B)}")
    unrelated = BundleStore(tmp_path / "unrelated", public(KEY_C))
    for store in (rotating, unrelated):
        store.state_dir.mkdir()

    assert rotating.accept(envelope, None).datasource_name == "shop"
    with pytest.raises(UnknownSigningKey, match="does not trust"):
        unrelated.accept(envelope, None)
    # Claiming the unrelated key's id does not help: the signature is checked, not the name.
    with pytest.raises(BundleRejected, match="does not verify"):
        unrelated.accept({**envelope, "key_id": crypto.key_id_for(public(KEY_C))}, None)
    assert unrelated.current is None


def test_an_agent_only_adds_a_key_endorsed_by_one_it_trusts(use_keys):
    use_keys(KEY_A, KEY_B)
    published = crypto.published_keys()
    forged = {**published[1], "public_key": public(KEY_C)}  # A's endorsement is for B only

    trusting_a, trusting_c = KeyRing([public(KEY_A)]), KeyRing([public(KEY_C)])

    assert trusting_a.endorse(published[1])
    assert crypto.key_id_for(public(KEY_B)) in trusting_a
    assert not trusting_a.endorse(forged)
    assert not trusting_c.endorse(published[1])
    # Malformed answers are ignored, even one the trusted key signed.
    garbage = {"public_key": "bm90IGEga2V5", "key_id": crypto.key_id_for("bm90IGEga2V5")}
    garbage["endorsement"] = crypto.sign(endorsement_payload(garbage["key_id"], "bm90IGEga2V5"))
    assert not trusting_a.endorse(garbage) and not trusting_a.endorse("junk")
    assert sorted(trusting_a.keys) == sorted(
        crypto.key_id_for(public(key)) for key in (KEY_A, KEY_B)
    )


def test_a_pinned_agent_follows_a_rotation_over_http_and_remembers_it(
    live_server, use_keys, admin, enforcement_agent, customers_email, tmp_path
):
    """End to end with agent/controlplane.py and agent/bundle.py: TOFU pin to A, learn B
    while it is next, accept B's bundles after the promotion, also after a restart."""
    _token, secret = token_create(
        actor=admin,
        user=enforcement_agent,
        name="agent",
        is_agent=True,
        datasources=[shop_of(customers_email)],
    )

    async def poll(store: BundleStore) -> None:
        client = ControlPlaneClient(live_server.url, secret)
        try:
            await BundlePoller(store, client, "shop", interval=60).poll_once()
        finally:
            await client.close()

    use_keys(KEY_A)
    store = BundleStore(tmp_path, None)
    asyncio.run(poll(store))
    first_version = store.current.version
    use_keys(KEY_A, KEY_B)  # the same bundle: the rotation alone makes the agent fetch it
    asyncio.run(poll(store))
    use_keys(KEY_B, retired=(public(KEY_A),))
    ColumnTagFactory(column=ColumnFactory(table=customers_email.table, name="phone"))
    asyncio.run(poll(store))

    assert store.rejection == ""
    assert store.current.version != first_version
    latest = policy_bundle_envelope(datasource=shop_of(customers_email))["bundle"]["version"]
    assert store.current.version == latest
    installed = json.loads((tmp_path / "bundle.json").read_text())["envelope"]
    assert installed["key_id"] == crypto.key_id_for(public(KEY_B))
    stored_keys = json.loads((tmp_path / "public_key.json").read_text())
    assert stored_keys["public_key"] == public(KEY_A)
    assert list(stored_keys["endorsed"]) == [crypto.key_id_for(public(KEY_B))]
    restarted = BundleStore(tmp_path, None)
    restarted.load_from_disk()
    assert restarted.current is not None and restarted.current.version == store.current.version


def shop_of(column):
    return column.table.datasource


def _status() -> str:
    out = StringIO()
    call_command("keys", "status", stdout=out)
    return out.getvalue()


def _beat(agent_client, address: str, trusted: list[str] | None) -> None:
    body = {
        "datasource": "shop",
        "address": address,
        "version": "1.0",
        "started_at": "2026-12-04T10:00:00+00:00",
    }
    if trusted is not None:
        body["trusted_key_ids"] = trusted
    assert agent_client.post("/api/v1/agent/heartbeat", body, format="json").status_code == 200


def test_keys_status_names_the_online_agents_that_do_not_trust_the_next_key_yet(
    use_keys, shop, agent_client
):
    use_keys(KEY_A, KEY_B)
    current, upcoming = crypto.key_id_for(public(KEY_A)), crypto.key_id_for(public(KEY_B))
    _beat(agent_client, "10.0.0.1:6432", [current, upcoming])
    _beat(agent_client, "10.0.0.2:6432", [current])
    _beat(agent_client, "10.0.0.3:6432", None)  # an agent older than rotation says nothing

    waiting = _status()
    _beat(agent_client, "10.0.0.2:6432", [current, upcoming])
    _beat(agent_client, "10.0.0.3:6432", [current, upcoming])
    ready = _status()

    assert f"signing key (current): {current}" in waiting and f"(next):    {upcoming}" in waiting
    assert "2 online agent(s) do not trust it yet" in waiting
    assert "shop 10.0.0.2:6432" in waiting and "shop 10.0.0.3:6432" in waiting
    assert "10.0.0.1:6432" not in waiting
    assert "every online agent trusts it: ready to promote" in ready
    assert KEY_A not in waiting and KEY_B not in waiting  # never a private key
