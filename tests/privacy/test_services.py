"""Export (GDPR Art. 15) and erasure (Art. 17) of one visitor, the audit trail, retention."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from chat.models import Conversation, Message, MessageTranslation, TurnKnowledge, Visitor
from inbox.live import visitors_online
from inbox.models import Csat
from privacy import services
from privacy.models import AuditEvent
from tests.privacy.data import visitor_with_data

pytestmark = pytest.mark.django_db

EVERYTHING = {
    "conversations": 1,
    "messages": 2,
    "translations": 1,
    "feedback": 1,
    "csat": 1,
    "knowledge": 1,
}


def test_export_holds_everything_about_the_visitor_and_is_json() -> None:
    data = visitor_with_data()
    other = visitor_with_data()
    exported = services.visitor_export(visitor=data.visitor)
    assert json.loads(json.dumps(exported)) == exported
    assert exported["visitor"]["uuid"] == str(data.visitor.uuid)
    [conversation] = exported["conversations"]
    assert conversation["id"] == str(data.conversation.pk)
    assert conversation["visitor_email"] == "lina@example.com"
    assert conversation["csat"]["rating"] == 5
    question, reply = conversation["messages"]
    assert question["text"] == "My email is lina@example.com"
    assert question["translations"][0]["text"] == "translated"
    assert question["knowledge"][0]["title"] == "Accounts"
    assert reply["feedback"] == {
        "rating": "up",
        "comment": "good",
        "created_at": reply["feedback"]["created_at"],
    }
    assert str(other.conversation.pk) not in json.dumps(exported)


def test_export_is_audited_with_counts_not_data() -> None:
    data = visitor_with_data()
    services.visitor_export(visitor=data.visitor)
    event = AuditEvent.objects.get()
    assert event.action == AuditEvent.Action.EXPORT and event.actor_label == "command"
    assert event.target_id == str(data.visitor.uuid)
    assert event.counts == EVERYTHING
    assert "lina" not in json.dumps(event.counts)


def test_erase_deletes_everything_and_only_that_visitor(
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    data = visitor_with_data()
    other = visitor_with_data()
    with django_capture_on_commit_callbacks(execute=True):
        counts = services.visitor_erase(visitor=data.visitor)
    assert counts == {**EVERYTHING, "visitors": 1}
    assert not Visitor.objects.filter(pk=data.visitor.pk).exists()
    assert not Conversation.objects.filter(visitor_id=data.visitor.pk).exists()
    assert Message.objects.filter(conversation__visitor=other.visitor).count() == 2
    assert MessageTranslation.objects.count() == 1
    assert TurnKnowledge.objects.count() == 1 and Csat.objects.count() == 1
    event = AuditEvent.objects.get(action=AuditEvent.Action.ERASE)
    assert event.counts == counts and event.target_id == str(data.visitor.uuid)


def test_erase_is_idempotent_and_audited_each_time() -> None:
    data = visitor_with_data()
    services.visitor_erase(visitor=data.visitor)
    again = services.visitor_erase(visitor=data.visitor)
    assert set(again.values()) == {0}
    assert AuditEvent.objects.filter(action=AuditEvent.Action.ERASE).count() == 2


def test_erase_clears_live_text_in_redis_and_presence(
    settings,  # type: ignore[no-untyped-def]
    redis_url: str,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    import redis

    settings.REDIS_URL = redis_url
    data = visitor_with_data()
    client = redis.Redis.from_url(redis_url)
    client.set(f"autoglm:live:{data.reply.pk}", "partial text with lina@example.com")
    client.set("autoglm:live:999999999", "someone else's")
    cache.set(f"inbox:presence:{data.conversation.pk.hex}", 1)
    assert visitors_online([data.conversation.pk]) == {data.conversation.pk: True}
    with django_capture_on_commit_callbacks(execute=True):
        services.visitor_erase(visitor=data.visitor)
    assert client.get(f"autoglm:live:{data.reply.pk}") is None
    assert client.get("autoglm:live:999999999") is not None
    assert visitors_online([data.conversation.pk]) == {data.conversation.pk: False}


def test_viewing_a_conversation_is_audited() -> None:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username="eve")
    data = visitor_with_data()
    services.conversation_view_record(conversation=data.conversation, actor=user, via="admin")
    event = AuditEvent.objects.get()
    assert (event.actor, event.actor_label, event.action) == (user, "eve", "view_conversation")
    assert event.target_id == str(data.conversation.pk)


def _age(data, days: int) -> None:  # type: ignore[no-untyped-def]
    old = timezone.now() - timedelta(days=days)
    Conversation.objects.filter(pk=data.conversation.pk).update(updated_at=old)
    Message.objects.filter(conversation=data.conversation).update(updated_at=old)
    Visitor.objects.filter(pk=data.visitor.pk).update(last_seen_at=old)


def test_retention_keeps_everything_by_default() -> None:
    data = visitor_with_data()
    _age(data, 3000)
    assert services.retention_purge() == {}
    assert Conversation.objects.count() == 1 and not AuditEvent.objects.exists()


def test_retention_deletes_conversations_past_their_last_activity(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PRIVACY_RETENTION_DAYS_CONVERSATIONS = 30
    old = visitor_with_data()
    _age(old, 31)
    recent_message = visitor_with_data()
    _age(recent_message, 31)
    # An old conversation with a new message is active: kept.
    Message.objects.filter(pk=recent_message.reply.pk).update(updated_at=timezone.now())
    fresh = visitor_with_data()
    counts = services.retention_purge()
    assert counts == {**EVERYTHING, "visitors": 1}
    assert set(Conversation.objects.values_list("pk", flat=True)) == {
        recent_message.conversation.pk,
        fresh.conversation.pk,
    }
    event = AuditEvent.objects.get(action=AuditEvent.Action.PURGE)
    assert event.counts == counts and event.actor_label == "retention"
    assert services.retention_purge() == {"visitors": 0}  # nothing left: not audited again
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PURGE).count() == 1


def test_retention_task_calls_the_service(settings) -> None:  # type: ignore[no-untyped-def]
    from privacy.tasks import retention_purge

    settings.PRIVACY_RETENTION_DAYS_CONVERSATIONS = 1
    data = visitor_with_data()
    _age(data, 2)
    assert retention_purge.apply().get()["conversations"] == 1
    assert "privacy-retention-purge" in settings.CELERY_BEAT_SCHEDULE
