from django.db import migrations


def create_the_row(apps, schema_editor):
    # Row 2 moves with every bundle input but grants (governance.services.bundles.serve).
    apps.get_model("governance", "BundleGeneration").objects.get_or_create(pk=2)


class Migration(migrations.Migration):

    dependencies = [
        ("governance", "0015_catalog_name_trigram_indexes"),
    ]

    operations = [
        migrations.RunPython(create_the_row, migrations.RunPython.noop),
    ]
