"""Writes of the privacy app: export and erasure of one visitor, the retention purge, and the
audit trail of each (who, when, what, how much: never the data itself)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.cache import cache
from django.db import transaction
from django.db.models import Max
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from chat.live import RedisLiveText, get_live_text
from chat.models import Conversation, Feedback, Message, MessageTranslation, TurnKnowledge, Visitor
from inbox.models import Csat
from privacy import selectors
from privacy.models import AuditEvent

logger = logging.getLogger(__name__)

Actor = AbstractBaseUser | AnonymousUser | None

_PURGE_BATCH = 200


def _actor_fields(actor: Actor, label: str) -> dict[str, Any]:
    if actor is not None and actor.is_authenticated:
        return {"actor": actor, "actor_label": actor.get_username()}
    return {"actor": None, "actor_label": label}


def audit_record(
    *,
    action: str,
    target_kind: str,
    target_id: str = "",
    actor: Actor = None,
    actor_label: str = "command",
    via: str = "",
    counts: dict[str, int] | None = None,
) -> AuditEvent:
    return AuditEvent.objects.create(
        action=action,
        target_kind=target_kind,
        target_id=target_id,
        via=via,
        counts=counts or {},
        **_actor_fields(actor, actor_label),
    )


def conversation_view_record(
    *, conversation: Conversation, actor: Actor, via: str, actor_label: str = "command"
) -> AuditEvent:
    """A member of staff opened a conversation (the admin, the inbox's transcript, an API
    export)."""
    return audit_record(
        action=AuditEvent.Action.VIEW_CONVERSATION,
        target_kind=AuditEvent.TargetKind.CONVERSATION,
        target_id=str(conversation.pk),
        actor=actor,
        actor_label=actor_label,
        via=via,
    )


def visitor_export(
    *, visitor: Visitor, actor: Actor = None, via: str = "command", actor_label: str = "command"
) -> dict[str, Any]:
    """Everything stored about VISITOR as JSON-serialisable data (GDPR Art. 15), audited."""
    data = selectors.visitor_data(visitor=visitor)
    audit_record(
        action=AuditEvent.Action.EXPORT,
        target_kind=AuditEvent.TargetKind.VISITOR,
        target_id=str(visitor.uuid),
        actor=actor,
        actor_label=actor_label,
        via=via,
        counts=selectors.export_counts(data),
    )
    return data


# --- Deleting -----------------------------------------------------------------------------
# Keys outside the database that hold a conversation's or a visitor's data, by their ids:
# chat.live (the text of a streaming reply), inbox.live (a visitor's presence),
# inbox.services (when a transcript was last mailed), chat.services (the rate limit window).


def _live_text_forget(message_ids: list[int]) -> None:
    if not message_ids:
        return
    live = get_live_text()
    if isinstance(live, RedisLiveText):
        import redis

        client = redis.Redis.from_url(str(settings.REDIS_URL), socket_timeout=10)
        try:
            for start in range(0, len(message_ids), 500):
                client.delete(*[live._key(i) for i in message_ids[start : start + 500]])
        finally:
            client.close()
        return

    async def clear_all() -> None:  # the embedded mode's dict, in this process
        for message_id in message_ids:
            await live.clear(message_id)

    async_to_sync(clear_all)()


def _cache_forget(*, conversation_ids: Iterable[uuid.UUID], visitor_pks: Iterable[int]) -> None:
    keys = []
    for conversation_id in conversation_ids:
        keys += [f"inbox:presence:{conversation_id.hex}", f"inbox:transcript:{conversation_id}"]
    window = settings.CHAT_RATE_LIMIT_WINDOW_SECONDS
    bucket = int(timezone.now().timestamp() // window)
    for pk in visitor_pks:
        keys += [f"chat:rate:{pk}:{bucket}", f"chat:rate:{pk}:{bucket - 1}"]
    if keys:
        cache.delete_many(keys)


def _forget_after_commit(
    *, conversation_ids: list[uuid.UUID], message_ids: list[int], visitor_pks: list[int]
) -> None:
    def forget() -> None:
        try:
            _live_text_forget(message_ids)
            _cache_forget(conversation_ids=conversation_ids, visitor_pks=visitor_pks)
        except Exception:  # the keys expire by themselves (an hour, a day): log, go on
            logger.exception("erasing live keys of %d conversations failed", len(conversation_ids))

    transaction.on_commit(forget)


def _conversations_delete(conversation_ids: list[uuid.UUID]) -> dict[str, int]:
    """Delete the conversations and all that hangs on them; the counts of each kind."""
    messages = Message.objects.filter(conversation_id__in=conversation_ids)
    message_ids = list(messages.values_list("pk", flat=True))
    counts = {
        "conversations": len(conversation_ids),
        "messages": len(message_ids),
        "translations": MessageTranslation.objects.filter(message_id__in=message_ids).count(),
        "feedback": Feedback.objects.filter(message_id__in=message_ids).count(),
        "csat": Csat.objects.filter(conversation_id__in=conversation_ids).count(),
        "knowledge": TurnKnowledge.objects.filter(message_id__in=message_ids).count(),
    }
    Conversation.objects.filter(pk__in=conversation_ids).delete()
    _forget_after_commit(conversation_ids=conversation_ids, message_ids=message_ids, visitor_pks=[])
    return counts


def visitor_erase(
    *, visitor: Visitor, actor: Actor = None, via: str = "command", actor_label: str = "command"
) -> dict[str, int]:
    """Delete VISITOR and everything stored about them (GDPR Art. 17), in the database and in
    the live stores; idempotent (erasing again deletes nothing and is audited again)."""
    with transaction.atomic():
        conversation_ids = list(
            Conversation.objects.filter(visitor_id=visitor.pk).values_list("pk", flat=True)
        )
        counts = _conversations_delete(conversation_ids)
        counts["visitors"], _ = Visitor.objects.filter(pk=visitor.pk).delete()
        _forget_after_commit(conversation_ids=[], message_ids=[], visitor_pks=[visitor.pk])
        audit_record(
            action=AuditEvent.Action.ERASE,
            target_kind=AuditEvent.TargetKind.VISITOR,
            target_id=str(visitor.uuid),
            actor=actor,
            actor_label=actor_label,
            via=via,
            counts=counts,
        )
    return counts


# --- Retention ----------------------------------------------------------------------------


def _cutoff(days: int, now: datetime) -> datetime | None:
    return now - timedelta(days=days) if days > 0 else None


def retention_purge(*, now: datetime | None = None) -> dict[str, int]:
    """Delete conversations whose last activity (their own change or their newest message's)
    is older than PRIVACY_RETENTION_DAYS_CONVERSATIONS, then visitors left with none and not
    seen since, and audit events older than PRIVACY_RETENTION_DAYS_AUDIT; 0 keeps forever.
    One audit event with the counts (none when nothing was deleted)."""
    now = now or timezone.now()
    total: dict[str, int] = {}
    cutoff = _cutoff(settings.PRIVACY_RETENTION_DAYS_CONVERSATIONS, now)
    if cutoff is not None:
        stale = (
            Conversation.objects.annotate(
                last_activity=Greatest(
                    "updated_at", Coalesce(Max("messages__updated_at"), "updated_at")
                )
            )
            .filter(last_activity__lt=cutoff)
            .values_list("pk", flat=True)
        )
        while ids := list(stale[:_PURGE_BATCH]):
            with transaction.atomic():
                for kind, count in _conversations_delete(ids).items():
                    total[kind] = total.get(kind, 0) + count
        visitors = Visitor.objects.filter(last_seen_at__lt=cutoff, conversations=None)
        total["visitors"], _ = visitors.delete()
    audit_cutoff = _cutoff(settings.PRIVACY_RETENTION_DAYS_AUDIT, now)
    if audit_cutoff is not None:
        total["audit_events"], _ = AuditEvent.objects.filter(created_at__lt=audit_cutoff).delete()
    if any(total.values()):
        audit_record(
            action=AuditEvent.Action.PURGE,
            target_kind=AuditEvent.TargetKind.RETENTION,
            actor_label="retention",
            via="task",
            counts=total,
        )
    return total
