from django.db import migrations


def load_taxonomy_and_roles(apps, schema_editor):
    from governance.taxonomy import taxonomy_load

    taxonomy_load(apps.get_model("governance", "Tag"))
    group_model = apps.get_model("auth", "Group")
    for role in ("admin", "reviewer", "auditor", "requester"):
        group_model.objects.get_or_create(name=role)


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(load_taxonomy_and_roles, migrations.RunPython.noop)]
