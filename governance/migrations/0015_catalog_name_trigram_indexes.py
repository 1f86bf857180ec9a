"""Trigram indexes for the catalog's substring search, on PostgreSQL only.

The catalog search is `name ILIKE '%q%'` (Django's icontains: UPPER(name) LIKE UPPER(q)) over
column and table names; without an index every search read all 100k columns (27 ms alone,
more under load) and a rare term cost the most. A GIN index over UPPER(name) with
pg_trgm's operator class answers those LIKEs with a bitmap index scan.

pg_trgm ships with PostgreSQL (contrib) and is a trusted extension: the database owner may
create it. SQLite (the embedded default) has neither, so there the search stays a scan of
its small catalog; the indexes are not in the models' state for the same reason.
"""

from django.db import migrations

INDEXES = {
    "column_name_trgm_idx": "governance_column",
    "table_name_trgm_idx": "governance_table",
}


def create_trigram_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, table in INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON {table} "
            "USING gin (UPPER(name::text) gin_trgm_ops)"
        )


def drop_trigram_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0014_policy_action_block_label"),
    ]

    operations = [
        migrations.RunPython(create_trigram_indexes, drop_trigram_indexes),
    ]
