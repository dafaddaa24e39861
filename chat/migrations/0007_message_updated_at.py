# An index on Message.updated_at, built without locking writes (a large table in production).

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("chat", "0006_conversation_team_message_translation"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="message",
            index=models.Index(fields=["updated_at"], name="message_updated_at"),
        ),
    ]
