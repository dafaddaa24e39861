"""The Agents group: conversations and the knowledge base, read-only; nothing of the settings."""

from __future__ import annotations

from django.db import migrations

_VIEW = [
    ("chat", "conversation"),
    ("chat", "message"),
    ("chat", "messagetranslation"),
    ("chat", "feedback"),
    ("knowledge", "article"),
    ("knowledge", "category"),
    ("inbox", "cannedreply"),
    ("inbox", "csat"),
    ("inbox", "team"),
]


def create_group(apps, schema_editor):  # type: ignore[no-untyped-def]
    from django.contrib.auth.management import create_permissions

    for config in apps.get_app_configs():
        config.models_module = True
        create_permissions(config, verbosity=0)
        config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    group, _created = group_model.objects.get_or_create(name="Agents")
    permissions = [
        permission_model.objects.filter(
            content_type__app_label=app, codename=f"view_{model}"
        ).first()
        for app, model in _VIEW
    ]
    group.permissions.add(*[p for p in permissions if p is not None])


def remove_group(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("auth", "Group").objects.filter(name="Agents").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("inbox", "0001_initial"),
        ("chat", "0006_conversation_team_message_translation"),
        ("knowledge", "0003_use_embeddings_and_title_vectors"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, remove_group)]
