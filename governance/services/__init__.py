"""Governance services (everything that changes data); one module per area, re-exported here."""

from governance.services.agent_logins import AgentLogin, agent_login_check
from governance.services.bundles import (
    bundle_inputs_changed,
    bundle_preview_decision,
    policy_bundle_build,
    policy_bundle_envelope,
    policy_bundle_served,
    policy_bundle_sign,
    policy_preview,
)
from governance.services.catalog import (
    column_sensitivity_refresh,
    column_tag_remove,
    column_tag_set_state,
    column_tags_bulk_review,
    datasource_create,
    datasource_delete,
    datasource_public_fields,
    datasource_test_connection,
    datasource_update,
)
from governance.services.catalog_sync import catalog_reconcile, column_tags_suggest
from governance.services.policies import (
    datasource_defaults_set,
    guardrail_rule_create,
    guardrail_rule_delete,
    guardrail_rule_update,
    guardrails_recommended_create,
    policy_rule_create,
    policy_rule_delete,
    policy_rule_update,
)

__all__ = [
    "AgentLogin",
    "agent_login_check",
    "bundle_inputs_changed",
    "bundle_preview_decision",
    "catalog_reconcile",
    "column_sensitivity_refresh",
    "column_tag_remove",
    "column_tag_set_state",
    "column_tags_bulk_review",
    "column_tags_suggest",
    "datasource_create",
    "datasource_defaults_set",
    "datasource_delete",
    "datasource_public_fields",
    "datasource_test_connection",
    "datasource_update",
    "guardrail_rule_create",
    "guardrail_rule_delete",
    "guardrail_rule_update",
    "guardrails_recommended_create",
    "policy_bundle_build",
    "policy_bundle_envelope",
    "policy_bundle_served",
    "policy_bundle_sign",
    "policy_preview",
    "policy_rule_create",
    "policy_rule_delete",
    "policy_rule_update",
]
