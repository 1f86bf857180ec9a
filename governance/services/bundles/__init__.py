"""The policy bundle: built (``build``), signed and served from a cache (``serve``), and
previewed with the agent's own decision engine (``preview``)."""

from governance.services.bundles.build import BUNDLE_FORMAT, canonical_json, policy_bundle_build
from governance.services.bundles.preview import bundle_preview_decision, policy_preview
from governance.services.bundles.serve import (
    bundle_cache_clear,
    bundle_generation,
    bundle_inputs_changed,
    policy_bundle_envelope,
    policy_bundle_served,
    policy_bundle_sign,
)

__all__ = [
    "BUNDLE_FORMAT",
    "bundle_cache_clear",
    "bundle_generation",
    "bundle_inputs_changed",
    "bundle_preview_decision",
    "canonical_json",
    "policy_bundle_build",
    "policy_bundle_envelope",
    "policy_bundle_served",
    "policy_bundle_sign",
    "policy_preview",
]
