"""Signing the bundle, and answering agents' polls from a cache of the signed envelope.

The envelope ``{"bundle", "signature", "key_id"[, "next_key_id"]}`` carries an Ed25519
signature over the canonical JSON of the whole bundle (``canonical_json``).

Polls are answered from a per-process cache of the last signed envelope
(``policy_bundle_served``): it is reused while the ``BundleGeneration`` counter, which every
committed write to a bundle input moves (``bundle_inputs_changed``, called by the services'
bulk writes and by the signals in ``governance.signals``), has not moved, no grant in it has
expired and its catalog part is younger than ``WARDEN_BUNDLE_CACHE_SECONDS`` (the bound on
how late a write that bypassed both, say raw SQL, reaches the agents). A second counter moves
with every input but grants: after an approval only the grants are compiled again, the
catalog part (columns, rules, guardrails; the costly part on a large catalog) is reused.
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
from governance.services.bundles.build import (
    bundle_catalog_part,
    bundle_with_grants,
    canonical_json,
    policy_bundle_build,
)


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


# Counter rows: every bundle input moves GENERATION; every input but grants moves CATALOG too,
# so a poll after an approval compiles only the grants and reuses the rest.
GENERATION, CATALOG = 1, 2


class _GenerationBump:
    """One transaction's after-commit bump; ``catalog`` once any input but a grant changed."""

    def __init__(self) -> None:
        self.catalog = False

    def __call__(self) -> None:
        rows = (GENERATION, CATALOG) if self.catalog else (GENERATION,)
        # One statement: a poll never sees GENERATION moved without CATALOG when both move.
        if BundleGeneration.objects.filter(pk__in=rows).update(value=F("value") + 1) < len(rows):
            # A row is missing: a flushed test database (migrations make both rows).
            BundleGeneration.objects.bulk_create(
                [BundleGeneration(pk=pk) for pk in rows], ignore_conflicts=True
            )
            BundleGeneration.objects.filter(pk__in=rows).update(value=F("value") + 1)


def bundle_inputs_changed(*, grants_only: bool = False) -> None:
    """Move the bundle generation once the current transaction commits (once per transaction);
    ``grants_only``: only grants changed, the catalog part of every bundle still holds.

    After the commit, not inside it: the counter row is never locked by a long transaction,
    and a poll that sees the new value also sees the write.
    """
    connection = transaction.get_connection()
    bump = next(
        (cb for _ids, cb, _robust in connection.run_on_commit if isinstance(cb, _GenerationBump)),
        None,
    )
    if bump is None:
        bump = _GenerationBump()
        # robust: the write has committed; a failed bump only delays agents (the cache bound).
        transaction.on_commit(bump, robust=True)
    bump.catalog = bump.catalog or not grants_only


def _generations() -> tuple[int, int]:
    values = dict(
        BundleGeneration.objects.filter(pk__in=(GENERATION, CATALOG)).values_list("pk", "value")
    )
    return values.get(GENERATION, 0), values.get(CATALOG, 0)


def bundle_generation() -> int:
    return BundleGeneration.objects.filter(pk=1).values_list("value", flat=True).first() or 0


@dataclass(frozen=True)
class _ServedBundle:
    generation: int
    fresh_until: datetime
    envelope: dict[str, Any]
    catalog_generation: int
    catalog_fresh_until: datetime  # the cache bound, counted from the catalog's compilation


_served: dict[int, _ServedBundle] = {}


def _fresh_until(bundle: dict[str, Any], until: datetime, now: datetime) -> datetime:
    """When a cached bundle goes stale on its own: ``until``, or a grant's expiry."""
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
    """The signed envelope for an agent's poll: compiled again only when an input changed,
    and only its grants when nothing else did (an approval)."""
    # Read before compiling: a later write moves them past us.
    generation, catalog_generation = _generations()
    cached = _served.get(datasource.pk)
    now = timezone.now()
    if cached is not None and cached.generation == generation and now < cached.fresh_until:
        return cached.envelope
    if (
        cached is not None
        and cached.catalog_generation == catalog_generation
        and now < cached.catalog_fresh_until
    ):
        catalog_part = {
            key: value
            for key, value in cached.envelope["bundle"].items()
            if key not in {"grants", "version", "generated_at"}
        }
        catalog_fresh_until = cached.catalog_fresh_until
    else:
        catalog_part = bundle_catalog_part(datasource=datasource)
        catalog_fresh_until = now + timedelta(seconds=settings.WARDEN_BUNDLE_CACHE_SECONDS)
    envelope = policy_bundle_sign(
        bundle=bundle_with_grants(datasource=datasource, catalog_part=catalog_part)
    )
    _served[datasource.pk] = _ServedBundle(
        generation,
        _fresh_until(envelope["bundle"], catalog_fresh_until, now),
        envelope,
        catalog_generation,
        catalog_fresh_until,
    )
    return envelope
