from django.db import migrations


def create_the_row(apps, schema_editor):
    # Row 2 moves with every bundle input but grants (governance.services.bundles.serve).
    apps.get_model("governance", "BundleGeneration").objects.get_or_create(pk=2)


class Migration(migrations.Migration):

    dependencies = [
        ("governance", "0014_policy_action_block_label"),
    ]

    operations = [
        migrations.RunPython(create_the_row, migrations.RunPython.noop),
    ]
