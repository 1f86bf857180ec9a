"""Index changes on the trail that do not stop appends while they build.

A plain CREATE INDEX holds a lock that blocks every INSERT into audit_auditevent until the
index is built (minutes on a long trail, during an upgrade); CREATE INDEX CONCURRENTLY
does not. It exists only on PostgreSQL and cannot run in a transaction, so migrations using
these operations set `atomic = False`; elsewhere (the embedded SQLite) they are the plain
operations.
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


class RemoveIndexWithoutBlocking(_ConcurrentlyOnPostgreSQL, RemoveIndexConcurrently):
    plain = migrations.RemoveIndex
