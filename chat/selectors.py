"""Reads for the chat: conversations, message history and prompt history."""

from __future__ import annotations

import uuid
from typing import Any

from chat import errors
from chat.models import Conversation, Message, Visitor

HISTORY_LIMIT = 200


def conversation_for_visitor(*, visitor: Visitor, conversation_id: str | uuid.UUID) -> Conversation:
    try:
        key = uuid.UUID(str(conversation_id))
    except ValueError as exc:
        raise errors.ConversationNotFound() from exc
    conversation = Conversation.objects.filter(pk=key, visitor=visitor).first()
    if conversation is None:
        raise errors.ConversationNotFound()
    return conversation


def message_payload(message: Message) -> dict[str, Any]:
    """A message as the protocol sends it (see docs/protocol.md)."""
    return {
        "id": message.pk,
        "role": message.role,
        "text": message.text,
        "status": message.status,
        "client_id": message.client_id,
        "reply_to": message.reply_to_id,
        "created_at": message.created_at.isoformat(),
    }


def messages_since(*, conversation: Conversation, last_seen_id: int | None) -> list[Message]:
    """Messages after last_seen_id, oldest first (the newest HISTORY_LIMIT when there is none)."""
    messages = Message.objects.filter(conversation=conversation)
    if last_seen_id is not None:
        return list(messages.filter(pk__gt=last_seen_id).order_by("id")[:HISTORY_LIMIT])
    newest = list(messages.order_by("-id")[:HISTORY_LIMIT])
    newest.reverse()
    return newest


def message_text(*, message_id: int) -> tuple[str, str] | None:
    """(text, status) of a message, or None."""
    row = Message.objects.filter(pk=message_id).values_list("text", "status").first()
    return (row[0], row[1]) if row else None


def prompt_history(*, reply: Message) -> list[Message]:
    """The stored turns a reply answers: every turn up to its question, verbatim.

    Replies the visitor never saw finished (interrupted, failed, still pending) are left out;
    cancelled replies keep what was shown.
    """
    assert reply.reply_to_id is not None
    return list(
        Message.objects.filter(conversation_id=reply.conversation_id, pk__lte=reply.reply_to_id)
        .exclude(role=Message.Role.ASSISTANT, status__in=_UNSEEN)
        .exclude(text="")
        .order_by("id")
    )


_UNSEEN = (
    Message.Status.PENDING,
    Message.Status.STREAMING,
    Message.Status.INTERRUPTED,
    Message.Status.FAILED,
)
