"""Governance services (everything that changes data); one module per area, re-exported here."""

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

__all__ = [
    "column_sensitivity_refresh",
    "column_tag_remove",
    "column_tag_set_state",
    "column_tags_bulk_review",
    "datasource_create",
    "datasource_delete",
    "datasource_public_fields",
    "datasource_test_connection",
    "datasource_update",
]
