from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0010_agentinstance_bundle_rejection"),
    ]

    operations = [
        migrations.AddField(
            model_name="agentinstance",
            name="trusted_key_ids",
            field=models.JSONField(blank=True, default=list),
        ),
    ]
