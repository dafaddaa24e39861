"""Reads of the HTTP API (api/conversations.py): conversations filtered, messages with their
citations, translations and feedback, a conversation's full export, visitors looked up."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet

from chat import errors
from chat.models import Conversation, Message, Visitor
from chat.selectors import agent_display_name, reply_citations
from inbox.models import AgentProfile

DETAIL_MESSAGES = 500  # a conversation's detail holds its newest messages; the rest: /messages
QUERY_MAX_CHARS = 200


@dataclass(frozen=True)
class ConversationFilter:
    status: str = ""
    mode: str = ""
    language: str = ""
    created_after: datetime | None = None
    created_before: datetime | None = None
    visitor: str = ""  # a visitor's uuid or external id
    assignee: str = ""  # an agent's user id or username; "none": nobody's
    team_id: int | None = None
    handoff_reason: str = ""
    query: str = ""  # words in a message's text


def _conversations() -> QuerySet[Conversation]:
    return Conversation.objects.select_related("visitor", "assignee__agent_profile", "team")


def conversations_filtered(*, filters: ConversationFilter) -> QuerySet[Conversation]:
    """The conversations FILTERS select (unordered: the caller paginates)."""
    rows = _conversations()
    if filters.status:
        rows = rows.filter(status=filters.status)
    if filters.mode:
        rows = rows.filter(mode=filters.mode)
    if filters.language:
        rows = rows.filter(language__iexact=filters.language)
    if filters.created_after is not None:
        rows = rows.filter(created_at__gte=filters.created_after)
    if filters.created_before is not None:
        rows = rows.filter(created_at__lt=filters.created_before)
    if filters.visitor:
        match = Q(visitor__external_id=filters.visitor)
        with contextlib.suppress(ValueError):  # an external id that is not a uuid
            match |= Q(visitor__uuid=uuid.UUID(filters.visitor))
        rows = rows.filter(match)
    if filters.assignee:
        if filters.assignee.lower() == "none":
            rows = rows.filter(assignee__isnull=True)
        elif filters.assignee.isdigit() and int(filters.assignee) < 2**31:
            rows = rows.filter(assignee_id=int(filters.assignee))
        else:
            rows = rows.filter(assignee__username=filters.assignee)
    if filters.team_id is not None:
        rows = rows.filter(team_id=filters.team_id)
    if filters.handoff_reason:
        rows = rows.filter(handoff_reason=filters.handoff_reason)
    query = filters.query.strip()[:QUERY_MAX_CHARS]
    if query:
        rows = rows.filter(
            pk__in=Message.objects.filter(text__icontains=query).values("conversation_id")
        )
    return rows


def conversation_by_id(*, conversation_id: uuid.UUID) -> Conversation:
    conversation = _conversations().filter(pk=conversation_id).first()
    if conversation is None:
        raise errors.ConversationNotFound()
    return conversation


def _person(user: Any) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.pk, "username": user.get_username(), "name": agent_display_name(user)}


def visitor_payload(visitor: Visitor) -> dict[str, Any]:
    return {"uuid": visitor.uuid, "external_id": visitor.external_id}


def conversation_payload(conversation: Conversation) -> dict[str, Any]:
    """A conversation as the API shows it (select_related visitor, assignee, team)."""
    team = conversation.team
    return {
        "id": conversation.pk,
        "visitor": visitor_payload(conversation.visitor),
        "language": conversation.language,
        "status": conversation.status,
        "mode": conversation.mode,
        "handoff_reason": conversation.handoff_reason,
        "handoff_detail": conversation.handoff_detail,
        "handoff_at": conversation.handoff_at,
        "assignee": _person(conversation.assignee),
        "team": {"id": team.pk, "name": team.name} if team is not None else None,
        "is_ticket": conversation.is_ticket,
        "visitor_email": conversation.visitor_email,
        "translation_enabled": conversation.translation_enabled,
        "csat_requested": conversation.csat_requested,
        "created_at": conversation.created_at,
        "updated_at": conversation.updated_at,
        "resolved_at": conversation.resolved_at,
        "reopened_at": conversation.reopened_at,
    }


def _messages(conversation_id: uuid.UUID) -> QuerySet[Message]:
    return _messages_all().filter(conversation_id=conversation_id)


def messages_of(*, conversation_id: uuid.UUID) -> QuerySet[Message]:
    """The conversation's messages (unordered: the caller paginates), notes included."""
    if not Conversation.objects.filter(pk=conversation_id).exists():
        raise errors.ConversationNotFound()
    return _messages(conversation_id)


def message_payload(message: Message, *, knowledge: bool = False) -> dict[str, Any]:
    """A message as the API shows it: its citations (the knowledge articles a reply used), its
    translations and feedback; with KNOWLEDGE, the snippets a visitor's message was given."""
    feedback = getattr(message, "feedback", None)
    payload: dict[str, Any] = {
        "id": message.pk,
        "conversation_id": message.conversation_id,
        "role": message.role,
        "text": message.text,
        "language": message.language,
        "status": message.status,
        "author": _person(message.author),
        "client_id": message.client_id,
        "reply_to": message.reply_to_id,
        "created_at": message.created_at,
        "citations": reply_citations(reply=message),
        "translations": [
            {"language": t.language, "status": t.status, "text": t.text}
            for t in sorted(message.translations.all(), key=lambda t: t.language)
        ],
        "feedback": {"rating": feedback.rating, "comment": feedback.comment}
        if feedback is not None
        else None,
    }
    if knowledge:
        given = getattr(message, "prompt_knowledge", None)
        payload["knowledge"] = list(given.snippets) if given is not None else None
    return payload


def conversation_detail(*, conversation_id: uuid.UUID) -> dict[str, Any]:
    """The conversation and its newest DETAIL_MESSAGES messages, oldest first."""
    conversation = conversation_by_id(conversation_id=conversation_id)
    newest = list(_messages(conversation_id).order_by("-id")[: DETAIL_MESSAGES + 1])
    complete = len(newest) <= DETAIL_MESSAGES
    newest = newest[:DETAIL_MESSAGES]
    newest.reverse()
    return {
        **conversation_payload(conversation),
        "messages": [message_payload(m) for m in newest],
        "messages_complete": complete,
    }


def conversation_export(*, conversation: Conversation) -> dict[str, Any]:
    """Everything stored about one conversation: messages (notes and events included) with
    their translations, feedback, citations and the knowledge given, and the CSAT rating."""
    from inbox.models import Csat

    csat = Csat.objects.select_related("agent").filter(conversation=conversation).first()
    messages = _messages(conversation.pk).order_by("id")
    return {
        "conversation": conversation_payload(conversation),
        "messages": [message_payload(m, knowledge=True) for m in messages],
        "csat": {
            "rating": csat.rating,
            "comment": csat.comment,
            "agent": _person(csat.agent),
            "created_at": csat.created_at,
        }
        if csat is not None
        else None,
    }


def visitors_lookup(
    *, external_id: str = "", visitor_uuid: uuid.UUID | None = None
) -> list[dict[str, Any]]:
    """The visitors with that external id (one per browser or device) or that anonymous id,
    with their number of conversations."""
    rows = Visitor.objects.annotate(conversation_count=Count("conversations"))
    if visitor_uuid is not None:
        rows = rows.filter(uuid=visitor_uuid)
    elif external_id:
        rows = rows.filter(external_id=external_id)
    else:
        return []
    return [
        {
            **visitor_payload(v),
            "created_at": v.created_at,
            "last_seen_at": v.last_seen_at,
            "conversations": v.conversation_count,
        }
        for v in rows.order_by("created_at", "pk")[:200]
    ]


def visitor_by_uuid(*, visitor_uuid: uuid.UUID) -> Visitor | None:
    return Visitor.objects.filter(uuid=visitor_uuid).first()


def acting_agent(*, user_id: int | None = None, username: str = "") -> AgentProfile:
    """The agent profile of the user with USER_ID (or USERNAME), who must be an active agent
    or member of staff (AgentRequired otherwise); created on first use like the inbox's."""
    from inbox.services import agent_profile

    users = get_user_model().objects.filter(is_active=True)
    if user_id is not None:
        user = users.filter(pk=user_id).first() if 0 < user_id < 2**31 else None
    else:
        user = users.filter(username=username).first() if username else None
    if user is None:
        raise errors.AgentRequired()
    return agent_profile(user=user)


def message_payload_by_id(*, message_id: int) -> dict[str, Any]:
    message = _messages_all().filter(pk=message_id).first()
    if message is None:
        raise errors.MessageNotFound()
    return message_payload(message)


def _messages_all() -> QuerySet[Message]:
    return Message.objects.select_related(
        "author__agent_profile", "feedback", "reply_to__prompt_knowledge", "prompt_knowledge"
    ).prefetch_related("translations")


def conversation_payload_by_id(*, conversation_id: uuid.UUID) -> dict[str, Any]:
    return conversation_payload(conversation_by_id(conversation_id=conversation_id))
