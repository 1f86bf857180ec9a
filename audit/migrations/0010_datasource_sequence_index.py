"""The trail filtered by datasource, newest first, reads its own (datasource, sequence) range
(as actor and action do since 0008) instead of walking every newer event. Built
CONCURRENTLY on PostgreSQL: appends go on meanwhile."""

from django.db import migrations, models

from audit.migration_operations import AddIndexWithoutBlocking


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("audit", "0009_event_tag_index"),
    ]

    operations = [
        AddIndexWithoutBlocking(
            model_name="auditevent",
            index=models.Index(
                fields=["datasource_name", "sequence"], name="audit_datasource_sequence_idx"
            ),
        ),
    ]
