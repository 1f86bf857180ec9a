"""Index changes on the trail that do not stop appends while they build.

A plain CREATE INDEX holds a lock that blocks every INSERT into audit_auditevent until the
index is built (minutes on a long trail, during an upgrade); CREATE INDEX CONCURRENTLY
does not. It exists only on PostgreSQL and cannot run in a transaction, so migrations using
these operations set `atomic = False`; elsewhere (the embedded SQLite) they are the plain
operations.

A concurrent build that is interrupted (a killed `migrate`, a lost connection) leaves the
migration unapplied and, on PostgreSQL, an INVALID index of the same name that a second run
would trip over ("already exists"). So a second run drops an invalid leftover and builds it
again, and keeps an index an earlier run of the same migration finished.
"""

from __future__ import annotations

from typing import Any

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations


class _ConcurrentlyOnPostgreSQL:
    """The CONCURRENTLY operation on PostgreSQL, `plain` (its ordinary twin) elsewhere."""

    plain: Any

    def database_forwards(self, app_label: str, schema_editor: Any, *args: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, *args)  # type: ignore[misc]
        else:
            self.plain.database_forwards(self, app_label, schema_editor, *args)

    def database_backwards(self, app_label: str, schema_editor: Any, *args: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, *args)  # type: ignore[misc]
        else:
            self.plain.database_backwards(self, app_label, schema_editor, *args)


class AddIndexWithoutBlocking(_ConcurrentlyOnPostgreSQL, AddIndexConcurrently):
    plain = migrations.AddIndex

    def database_forwards(self, app_label: str, schema_editor: Any, *args: Any) -> None:
        connection = schema_editor.connection
        if connection.vendor == "postgresql" and not schema_editor.collect_sql:
            valid = index_validity(connection, self.index.name)
            if valid:
                return  # an interrupted run of this migration built it
            if valid is False:
                schema_editor.execute(
                    f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(self.index.name)}"
                )
        super().database_forwards(app_label, schema_editor, *args)


class RemoveIndexWithoutBlocking(_ConcurrentlyOnPostgreSQL, RemoveIndexConcurrently):
    plain = migrations.RemoveIndex


def index_validity(connection: Any, name: str) -> bool | None:
    """Whether PostgreSQL's index `name` (in the search path) is valid; None if there is none."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s AND pg_table_is_visible(c.oid)",
            [name],
        )
        row = cursor.fetchone()
    return None if row is None else bool(row[0])
