"""The trail filtered by actor or action, newest first, reads its own index range.

The filters order by sequence, so (actor, sequence) and (action, sequence) replace the
(…, occurred_at) pairs: on those PostgreSQL either walked the whole trail backwards by
sequence testing each actor (an actor whose events are all old: every event read) or
fetched and sorted every event of the actor. Same number of indexes, so appends cost the
same. The period filters keep the occurred_at index.

Built and dropped CONCURRENTLY on PostgreSQL (audit.migration_operations): appends go on
while a long trail is indexed during the upgrade, and the new indexes exist before the old
go (filtered pages stay fast meanwhile).
"""

from django.db import migrations, models

from audit.migration_operations import AddIndexWithoutBlocking, RemoveIndexWithoutBlocking


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('audit', '0007_day_tag_counts'),
    ]

    operations = [
        AddIndexWithoutBlocking(
            model_name='auditevent',
            index=models.Index(fields=['actor', 'sequence'], name='audit_actor_sequence_idx'),
        ),
        AddIndexWithoutBlocking(
            model_name='auditevent',
            index=models.Index(fields=['action', 'sequence'], name='audit_action_sequence_idx'),
        ),
        RemoveIndexWithoutBlocking(
            model_name='auditevent',
            name='audit_actor_time_idx',
        ),
        RemoveIndexWithoutBlocking(
            model_name='auditevent',
            name='audit_action_time_idx',
        ),
    ]
