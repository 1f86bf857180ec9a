"""Access tokens gain scopes, datasource binding (agent tokens) and rotation.

Existing tokens keep what they could do before (this note is the documentation):

- an ``is_agent`` token becomes an ``agent`` token bound to the datasources its agents have
  registered for (their heartbeats); one that never registered is bound to every datasource
  that exists now, as it could serve any of them before. It loses the REST API rights its
  owner's roles used to give it: that is the hole this change closes;
- any other token gets ``query``, ``requests``, ``api:read`` and ``api:admin`` (its owner's
  roles still decide what it may do, as before). Narrow them by creating new tokens.
"""

import django.db.models.deletion
from django.db import migrations, models

EVERYTHING_BUT_AGENT = ["query", "requests", "api:read", "api:admin"]


def scopes_from_is_agent(apps, schema_editor):
    AccessToken = apps.get_model("governance", "AccessToken")
    AgentInstance = apps.get_model("governance", "AgentInstance")
    DataSource = apps.get_model("governance", "DataSource")
    every_datasource = list(DataSource.objects.values_list("pk", flat=True))
    for token in AccessToken.objects.all():
        if token.is_agent:
            token.scopes = ["agent"]
            served = set(
                AgentInstance.objects.filter(token=token).values_list("datasource_id", flat=True)
            )
            token.datasources.set(served or every_datasource)
        else:
            token.scopes = EVERYTHING_BUT_AGENT
        token.save(update_fields=["scopes"])


def is_agent_from_scopes(apps, schema_editor):
    AccessToken = apps.get_model("governance", "AccessToken")
    for token in AccessToken.objects.all():
        token.is_agent = "agent" in token.scopes
        token.save(update_fields=["is_agent"])


class Migration(migrations.Migration):
    dependencies = [
        ("governance", "0007_guardrail_max_rows"),
    ]

    operations = [
        migrations.AddField(
            model_name="accesstoken",
            name="datasources",
            field=models.ManyToManyField(
                blank=True,
                help_text="The datasources an agent token serves (agent scope only)",
                related_name="agent_tokens",
                to="governance.datasource",
            ),
        ),
        migrations.AddField(
            model_name="accesstoken",
            name="rotated_from",
            field=models.OneToOneField(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="rotated_to",
                to="governance.accesstoken",
            ),
        ),
        migrations.AddField(
            model_name="accesstoken",
            name="scopes",
            field=models.JSONField(default=list, help_text="governance.scopes.Scope values"),
        ),
        migrations.RunPython(scopes_from_is_agent, is_agent_from_scopes),
        migrations.RemoveField(model_name="accesstoken", name="is_agent"),
    ]
