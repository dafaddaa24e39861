"""Reads of the privacy app: the visitors a data subject is, and a visitor's data as JSON."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db.models import Prefetch

from chat.models import Conversation, Message, Visitor


def visitors_find(*, visitor_uuid: uuid.UUID | None = None, external_id: str = "") -> list[Visitor]:
    """The visitor with that anonymous id, or every visitor an identified user signed in as
    (one per browser or device: external ids are not unique)."""
    if visitor_uuid is not None:
        return list(Visitor.objects.filter(uuid=visitor_uuid))
    if external_id:
        return list(Visitor.objects.filter(external_id=external_id).order_by("created_at"))
    return []


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _message_data(message: Message) -> dict[str, Any]:
    feedback = getattr(message, "feedback", None)
    knowledge = getattr(message, "prompt_knowledge", None)
    return {
        "id": message.pk,
        "role": message.role,
        "text": message.text,
        "language": message.language,
        "status": message.status,
        "reply_to": message.reply_to_id,
        "created_at": _when(message.created_at),
        "translations": [
            {
                "language": t.language,
                "text": t.text,
                "status": t.status,
                "created_at": _when(t.created_at),
            }
            for t in message.translations.all()
        ],
        "feedback": (
            {
                "rating": feedback.rating,
                "comment": feedback.comment,
                "created_at": _when(feedback.created_at),
            }
            if feedback is not None
            else None
        ),
        "knowledge": list(knowledge.snippets) if knowledge is not None else None,
    }


def _conversation_data(conversation: Conversation) -> dict[str, Any]:
    csat = getattr(conversation, "csat", None)
    return {
        "id": str(conversation.pk),
        "language": conversation.language,
        "status": conversation.status,
        "mode": conversation.mode,
        "handoff_reason": conversation.handoff_reason,
        "handoff_detail": conversation.handoff_detail,
        "visitor_email": conversation.visitor_email,
        "is_ticket": conversation.is_ticket,
        "created_at": _when(conversation.created_at),
        "updated_at": _when(conversation.updated_at),
        "resolved_at": _when(conversation.resolved_at),
        "csat": (
            {"rating": csat.rating, "comment": csat.comment, "created_at": _when(csat.created_at)}
            if csat is not None
            else None
        ),
        "messages": [_message_data(m) for m in conversation.messages.all()],
    }


def visitor_data(*, visitor: Visitor) -> dict[str, Any]:
    """Everything stored about VISITOR, JSON-serialisable (GDPR Art. 15)."""
    conversations = (
        Conversation.objects.filter(visitor=visitor)
        .select_related("csat")
        .prefetch_related(
            Prefetch(
                "messages",
                queryset=Message.objects.select_related("feedback", "prompt_knowledge")
                .prefetch_related("translations")
                .order_by("id"),
            )
        )
        .order_by("created_at")
    )
    return {
        "visitor": {
            "uuid": str(visitor.uuid),
            "external_id": visitor.external_id,
            "created_at": _when(visitor.created_at),
            "last_seen_at": _when(visitor.last_seen_at),
        },
        "conversations": [_conversation_data(c) for c in conversations],
    }


def export_counts(data: dict[str, Any]) -> dict[str, int]:
    """How much an export holds, for the audit trail (numbers, not the data)."""
    messages = [m for c in data["conversations"] for m in c["messages"]]
    return {
        "conversations": len(data["conversations"]),
        "messages": len(messages),
        "translations": sum(len(m["translations"]) for m in messages),
        "feedback": sum(1 for m in messages if m["feedback"] is not None),
        "csat": sum(1 for c in data["conversations"] if c["csat"] is not None),
        "knowledge": sum(1 for m in messages if m["knowledge"] is not None),
    }
