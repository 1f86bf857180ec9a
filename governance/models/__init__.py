"""Governance models; one module per area, re-exported here."""

from governance.models.agents import AgentInstance
from governance.models.catalog import (
    AccessToken,
    Column,
    ColumnChange,
    ColumnTag,
    DataSource,
    Engine,
    Role,
    Sensitivity,
    Table,
    Tag,
    User,
)
from governance.models.policies import (
    BundleGeneration,
    GuardrailAction,
    GuardrailKind,
    GuardrailRule,
    MaskMethod,
    PolicyAction,
    PolicyRule,
    ResourceKind,
)
from governance.models.verifiers import TokenVerifier

__all__ = [
    "AccessToken",
    "AgentInstance",
    "BundleGeneration",
    "Column",
    "ColumnChange",
    "ColumnTag",
    "DataSource",
    "Engine",
    "GuardrailAction",
    "GuardrailKind",
    "GuardrailRule",
    "MaskMethod",
    "PolicyAction",
    "PolicyRule",
    "ResourceKind",
    "Role",
    "Sensitivity",
    "Table",
    "Tag",
    "TokenVerifier",
    "User",
]
