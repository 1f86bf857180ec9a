from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0011_access_token_issued_with_mfa"),
    ]

    operations = [
        migrations.AddField(
            model_name="agentinstance",
            name="trusted_key_ids",
            field=models.JSONField(blank=True, default=list),
        ),
    ]
