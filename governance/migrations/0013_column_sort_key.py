"""Column.sort_key (governance.models.catalog.catalog_sort_key) for keyset pages of the catalog.

Existing columns get their key here in one UPDATE; the format must match catalog_sort_key:
datasource, schema, table, the ordinal zero-padded to 10 digits and the column name, joined
by chr(1).
"""

from django.db import migrations, models

PAD = {
    "postgresql": "lpad(governance_column.ordinal::text, 10, '0')",
    "sqlite": "substr('0000000000' || governance_column.ordinal, -10)",
}
SEPARATOR = {"postgresql": "chr(1)", "sqlite": "char(1)"}


def fill_sort_keys(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    separator = SEPARATOR[vendor]
    parts = ["d.name", "t.schema_name", "t.name", PAD[vendor], "governance_column.name"]
    schema_editor.execute(
        "UPDATE governance_column SET sort_key = ("
        f"SELECT {f' || {separator} || '.join(parts)} FROM governance_table t "
        "JOIN governance_datasource d ON d.id = t.datasource_id "
        "WHERE t.id = governance_column.table_id)"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0012_agentinstance_trusted_key_ids"),
    ]

    operations = [
        migrations.AddField(
            model_name="column",
            name="sort_key",
            field=models.CharField(default="", editable=False, max_length=900),
        ),
        migrations.RunPython(fill_sort_keys, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="column",
            index=models.Index(fields=["sort_key"], name="column_sort_key_idx"),
        ),
    ]
