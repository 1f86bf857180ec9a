"""Governance models; one module per area, re-exported here."""

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

__all__ = [
    "AccessToken",
    "Column",
    "ColumnChange",
    "ColumnTag",
    "DataSource",
    "Engine",
    "Role",
    "Sensitivity",
    "Table",
    "Tag",
    "User",
]
