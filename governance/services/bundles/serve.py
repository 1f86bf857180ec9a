"""Signing the bundle, and answering agents' polls from a cache of the signed envelope.

The envelope ``{"bundle", "signature", "key_id"[, "next_key_id"]}`` carries an Ed25519
signature over the canonical JSON of the whole bundle (``canonical_json``).

Polls are answered from a per-process cache of the last signed envelope
(``policy_bundle_served``): it is reused while the ``BundleGeneration`` counter, which every
committed write to a bundle input moves (``bundle_inputs_changed``, called by the services'
bulk writes and by the signals in ``governance.signals``), has not moved, no grant in it has
expired and it is younger than ``WARDEN_BUNDLE_CACHE_SECONDS`` (the bound on how late a write
that bypassed both, say raw SQL, reaches the agents).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from governance.crypto import next_signing_key_id, sign, signing_key_id
from governance.models import BundleGeneration, DataSource
from governance.services.bundles.build import canonical_json, policy_bundle_build


def policy_bundle_sign(*, bundle: dict[str, Any]) -> dict[str, Any]:
    """The signed envelope the agent verifies with the control plane's public key.

    During a signing key rotation ``next_key_id`` names the next key: a hint (outside the
    signature) that makes agents fetch it with the current key's endorsement."""
    envelope = {
        "bundle": bundle,
        "signature": sign(canonical_json(bundle)),
        "key_id": signing_key_id(),
    }
    upcoming = next_signing_key_id()
    if upcoming is not None:
        envelope["next_key_id"] = upcoming
    return envelope


def policy_bundle_envelope(*, datasource: DataSource) -> dict[str, Any]:
    return policy_bundle_sign(bundle=policy_bundle_build(datasource=datasource))


def bundle_inputs_changed() -> None:
    """Move the bundle generation once the current transaction commits (once per transaction).

    After the commit, not inside it: the counter row is never locked by a long transaction,
    and a poll that sees the new value also sees the write.
    """
    connection = transaction.get_connection()
    if any(callback is _generation_bump for _ids, callback, _robust in connection.run_on_commit):
        return
    # robust: the write has committed; a failed bump only delays agents (the cache bound).
    transaction.on_commit(_generation_bump, robust=True)


def _generation_bump() -> None:
    if not BundleGeneration.objects.filter(pk=1).update(value=F("value") + 1):
        # The row is made by a migration; a flushed test database lacks it.
        BundleGeneration.objects.bulk_create([BundleGeneration(pk=1)], ignore_conflicts=True)
        BundleGeneration.objects.filter(pk=1).update(value=F("value") + 1)


def bundle_generation() -> int:
    return BundleGeneration.objects.filter(pk=1).values_list("value", flat=True).first() or 0


@dataclass(frozen=True)
class _ServedBundle:
    generation: int
    fresh_until: datetime
    envelope: dict[str, Any]


_served: dict[int, _ServedBundle] = {}


def _fresh_until(bundle: dict[str, Any], now: datetime) -> datetime:
    """When a cached bundle goes stale on its own: the cache bound, or a grant's expiry."""
    until = now + timedelta(seconds=settings.WARDEN_BUNDLE_CACHE_SECONDS)
    for grant in bundle["grants"]:
        try:
            expires = datetime.fromisoformat(grant["expires_at"])
        except (KeyError, TypeError, ValueError):
            return now  # an unreadable expiry: never reuse this bundle
        until = min(until, expires)
    return until


def bundle_cache_clear() -> None:
    """Forget every cached envelope (tests; a process whose signing key changed)."""
    _served.clear()


def policy_bundle_served(*, datasource: DataSource) -> dict[str, Any]:
    """The signed envelope for an agent's poll: compiled again only when an input changed."""
    generation = bundle_generation()  # read before compiling: a later write moves it past us
    cached = _served.get(datasource.pk)
    now = timezone.now()
    if cached is not None and cached.generation == generation and now < cached.fresh_until:
        return cached.envelope
    envelope = policy_bundle_envelope(datasource=datasource)
    _served[datasource.pk] = _ServedBundle(
        generation, _fresh_until(envelope["bundle"], now), envelope
    )
    return envelope
