"""Reads of the inbox: queues, conversation summaries, messages as an agent sees them."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.utils import timezone, translation

from chat import errors
from chat.language import reply_language
from chat.models import Conversation, Message, MessageTranslation
from chat.selectors import (
    agent_display_name,
    reply_citations,
    translation_in,
    translation_payload,
)
from inbox import services
from inbox.handoff import ONLINE_SECONDS
from inbox.models import AgentProfile, CannedReply, Team

QUEUES = ("waiting", "mine", "team", "open", "resolved")
LIST_LIMIT = 100
HISTORY_LIMIT = 500
RECENT_CHANGES_SECONDS = 900  # `open` with last_seen_id also resends messages changed since


def agent_by_user_id(*, user_id: int) -> AgentProfile:
    profile = AgentProfile.objects.select_related("user").filter(user_id=user_id).first()
    if profile is None or not profile.user.is_active:
        raise errors.AgentRequired()
    return services.agent_profile(user=profile.user)


def team_by_id(*, team_id: int) -> Team:
    team = Team.objects.filter(pk=team_id).first()
    if team is None:
        raise errors.InvalidFrame()
    return team


def _person(user: Any) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": user.pk, "name": agent_display_name(user)}


def summary(
    conversation: Conversation,
    *,
    last: Message | None = None,
    language: str = "",
    online: bool | None = None,
) -> dict[str, Any]:
    """A conversation for the lists; LAST (its newest visitor, assistant or agent message) with
    its translation into LANGUAGE (the reading agent's), when one is done."""
    now = timezone.now()
    with translation.override(language or None):
        reason_label = (
            str(conversation.get_handoff_reason_display()) if conversation.handoff_reason else ""
        )
    waiting = None
    if conversation.mode == Conversation.Mode.WAITING and conversation.handoff_at:
        waiting = int((now - conversation.handoff_at).total_seconds())
    return {
        "id": str(conversation.pk),
        "language": conversation.language,
        "mode": conversation.mode,
        "status": conversation.status,
        "handoff_reason": conversation.handoff_reason,
        "handoff_reason_label": reason_label,
        "handoff_detail": conversation.handoff_detail,
        "handoff_at": conversation.handoff_at.isoformat() if conversation.handoff_at else None,
        "waiting_seconds": waiting,
        "assignee": _person(conversation.assignee),
        "team": {"id": conversation.team.pk, "name": conversation.team.name}
        if conversation.team
        else None,
        "visitor": str(conversation.visitor),
        "last_message": {
            "role": last.role,
            "text": last.text[:200],
            "translation": _done_text(translation_in(last, language=language)),
            "created_at": last.created_at.isoformat(),
        }
        if last is not None
        else None,
        "updated_at": conversation.updated_at.isoformat(),
        "is_ticket": conversation.is_ticket,
        "visitor_email": conversation.visitor_email,
        "translation_enabled": conversation.translation_enabled,
        "visitor_online": live_online([conversation.pk])[conversation.pk]
        if online is None
        else online,
    }


def live_online(ids: list[uuid.UUID]) -> dict[uuid.UUID, bool]:
    from inbox.live import visitors_online

    return visitors_online(ids)


def _base() -> QuerySet[Conversation]:
    return Conversation.objects.select_related("assignee__agent_profile", "team", "visitor")


def _done_text(translation: MessageTranslation | None) -> str | None:
    if translation is None or translation.status != MessageTranslation.Status.DONE:
        return None
    return translation.text[:200]


def summary_by_id(*, conversation_id: str | None, agent: AgentProfile) -> dict[str, Any] | None:
    if not conversation_id:
        return None
    conversation = _base().filter(pk=conversation_id).first()
    if conversation is None:
        return None
    last = _last_messages([conversation.pk]).get(conversation.pk)
    return summary(conversation, last=last, language=agent.preferred_language)


def _last_messages(ids: list[uuid.UUID]) -> dict[uuid.UUID, Message]:
    if not ids:
        return {}
    rows = (
        Message.objects.filter(conversation_id__in=ids)
        .exclude(role__in=[Message.Role.NOTE, Message.Role.SYSTEM])
        .exclude(text="")
        .order_by("conversation_id", "-id")
        .distinct("conversation_id")
        .prefetch_related("translations")
    )
    return {row.conversation_id: row for row in rows}


def conversations_list(
    *,
    agent: AgentProfile,
    queue: str = "waiting",
    language: str = "",
    team_id: int | None = None,
    reason: str = "",
    query: str = "",
) -> dict[str, Any]:
    """The conversations of a queue (filtered), and each queue's count."""
    if queue not in QUEUES:
        queue = "waiting"
    queues = _queues(agent)
    rows = queues[queue]
    if language:
        rows = rows.filter(language=language)
    if team_id:
        rows = rows.filter(team_id=team_id)
    if reason:
        rows = rows.filter(handoff_reason=reason)
    if query.strip():
        rows = rows.filter(
            pk__in=Message.objects.filter(text__icontains=query.strip()[:200]).values(
                "conversation_id"
            )
        )
    order = "handoff_at" if queue == "waiting" else "-updated_at"  # waiting: oldest first
    rows = rows.order_by(order)
    conversations = list(_base().filter(pk__in=rows.values("pk")).order_by(order)[:LIST_LIMIT])
    ids = [c.pk for c in conversations]
    last, online = _last_messages(ids), live_online(ids)
    return {
        "conversations": [
            summary(c, last=last.get(c.pk), language=agent.preferred_language, online=online[c.pk])
            for c in conversations
        ],
        "counts": _counts(agent),
    }


def _counts(agent: AgentProfile) -> dict[str, int]:
    """Each queue's size, in one query (the same conditions as _queues)."""
    open_ = Q(status=Conversation.Status.OPEN)
    teams = list(agent.teams.values_list("pk", flat=True))
    counts = Conversation.objects.filter(handoff_at__isnull=False).aggregate(
        waiting=Count("pk", filter=open_ & Q(mode=Conversation.Mode.WAITING)),
        mine=Count("pk", filter=open_ & Q(assignee=agent.user)),
        # An agent in no team: a condition nothing meets (team_id__in=[] matches nothing too).
        team=Count("pk", filter=open_ & Q(team_id__in=teams or [0])),
        open=Count("pk", filter=open_),
        resolved=Count("pk", filter=Q(status=Conversation.Status.CLOSED)),
    )
    return {name: int(value or 0) for name, value in counts.items()}


def _queues(agent: AgentProfile) -> dict[str, QuerySet[Conversation]]:
    handed = Conversation.objects.filter(handoff_at__isnull=False)
    open_ = handed.filter(status=Conversation.Status.OPEN)
    teams = list(agent.teams.values_list("pk", flat=True))
    return {
        "waiting": open_.filter(mode=Conversation.Mode.WAITING),
        "mine": open_.filter(assignee=agent.user),
        "team": open_.filter(Q(team_id__in=teams)) if teams else open_.none(),
        "open": open_,
        "resolved": handed.filter(status=Conversation.Status.CLOSED),
    }


@dataclass(frozen=True)
class Opened:
    summary: dict[str, Any]
    messages: list[dict[str, Any]]
    translations: list[int]  # pending translations to run


def conversation_for_agent(
    *, conversation_id: uuid.UUID, agent: AgentProfile, last_seen_id: int | None = None
) -> Opened:
    conversation = _base().filter(pk=conversation_id).first()
    if conversation is None:
        raise errors.ConversationNotFound()
    messages = _messages(conversation_id=conversation_id, last_seen_id=last_seen_id)
    pending = services.translations_for_agent(
        conversation=conversation, agent=agent, messages=messages
    )
    if pending:
        messages = _messages(conversation_id=conversation_id, last_seen_id=last_seen_id)
    payloads = [_agent_payload(m, agent=agent, conversation=conversation) for m in messages]
    last = next(
        (
            m
            for m in reversed(messages)
            if m.role not in (Message.Role.NOTE, Message.Role.SYSTEM) and m.text
        ),
        None,
    )
    return Opened(
        summary=summary(conversation, last=last, language=agent.preferred_language),
        messages=payloads,
        translations=[t.pk for t in pending] + _stale_pending(messages),
    )


def _stale_pending(messages: list[Message]) -> list[int]:
    """Pending translations older than a minute: their process may have died; run again."""
    cutoff = timezone.now() - datetime.timedelta(seconds=60)
    return [
        t.pk
        for m in messages
        for t in m.translations.all()
        if t.status == MessageTranslation.Status.PENDING and t.created_at < cutoff
    ]


def _messages(*, conversation_id: uuid.UUID, last_seen_id: int | None) -> list[Message]:
    rows = (
        Message.objects.filter(conversation_id=conversation_id)
        .exclude(role=Message.Role.ASSISTANT, status=Message.Status.PENDING)
        .select_related("author__agent_profile", "reply_to__prompt_knowledge")
        .prefetch_related("translations")
    )
    if last_seen_id is not None:
        # What came after LAST_SEEN_ID, and what changed lately before it (a bot reply that
        # finished, a translation that arrived while the agent's socket was down).
        recently = timezone.now() - datetime.timedelta(seconds=RECENT_CHANGES_SECONDS)
        changed = Q(updated_at__gte=recently) | Q(translations__updated_at__gte=recently)
        return list(
            rows.filter(Q(pk__gt=last_seen_id) | changed).distinct().order_by("id")[:HISTORY_LIMIT]
        )
    newest = list(rows.order_by("-id")[:HISTORY_LIMIT])
    newest.reverse()
    return newest


def _agent_payload(
    message: Message, *, agent: AgentProfile, conversation: Conversation
) -> dict[str, Any]:
    if message.role == Message.Role.AGENT:
        wanted = conversation.language
    else:
        wanted = agent.preferred_language
    translation = translation_in(message, language=wanted)
    return {
        "id": message.pk,
        "conversation_id": str(message.conversation_id),
        "role": message.role,
        "text": message.text,
        "language": message.language
        or (
            reply_language(text=message.text, conversation_language=conversation.language)
            if message.role == Message.Role.USER
            else ""
        ),
        "status": message.status,
        "author": _person(message.author),
        "created_at": message.created_at.isoformat(),
        "citations": reply_citations(reply=message),
        "translation": translation_payload(translation),
        "client_id": message.client_id
        if message.role in (Message.Role.AGENT, Message.Role.NOTE)
        else None,
    }


def message_for_agent(
    *, message_id: int, agent: AgentProfile
) -> tuple[dict[str, Any], list[int]] | None:
    """A message as AGENT sees it, and the translations started for them (a visitor message in
    a language they do not read)."""
    message = (
        Message.objects.select_related(
            "conversation", "author__agent_profile", "reply_to__prompt_knowledge"
        )
        .prefetch_related("translations")
        .filter(pk=message_id)
        .first()
    )
    if message is None or (
        message.role == Message.Role.ASSISTANT and message.status == Message.Status.PENDING
    ):
        return None
    conversation = message.conversation
    pending = services.translations_for_agent(
        conversation=conversation, agent=agent, messages=[message]
    )
    if pending:
        message = (
            Message.objects.prefetch_related("translations")
            .select_related("conversation", "author__agent_profile", "reply_to__prompt_knowledge")
            .get(pk=message_id)
        )
    return _agent_payload(message, agent=agent, conversation=conversation), [t.pk for t in pending]


def failed_translation(
    *, conversation_id: uuid.UUID, message_id: int, language: str
) -> MessageTranslation | None:
    rows = MessageTranslation.objects.filter(
        message_id=message_id,
        message__conversation_id=conversation_id,
        status=MessageTranslation.Status.FAILED,
    )
    message = Message.objects.filter(pk=message_id).only("role").first()
    if message is None:
        raise errors.MessageNotFound()
    if message.role == Message.Role.USER:
        rows = rows.filter(language=language)
    return rows.first()


def agent_me(*, agent: AgentProfile) -> dict[str, Any]:
    cutoff = timezone.now() - datetime.timedelta(seconds=ONLINE_SECONDS)
    agents = AgentProfile.objects.select_related("user").filter(user__is_active=True)
    return {
        "id": agent.user_id,
        "name": agent.name,
        "preferred_language": agent.preferred_language,
        "languages": agent.languages,
        "teams": [{"id": t.pk, "name": t.name} for t in agent.teams.all()],
        "all_teams": [{"id": t.pk, "name": t.name} for t in Team.objects.all()],
        "agents": [
            {
                "id": a.user_id,
                "name": a.name,
                "online": bool(a.last_seen_at and a.last_seen_at >= cutoff),
            }
            for a in agents
        ],
        "sound_enabled": agent.sound_enabled,
        "reasons": [
            {"value": value, "label": str(label)}
            for value, label in Conversation.HandoffReason.choices
            if value
        ],
    }


def canned_replies(*, language: str) -> list[dict[str, str]]:
    rows = CannedReply.objects.filter(Q(language=language) | Q(language="")).order_by(
        "shortcut", "-language"
    )
    chosen: dict[str, CannedReply] = {}
    for row in rows:
        chosen.setdefault(row.shortcut, row)  # the language's own before the general one
    return [
        {"shortcut": r.shortcut, "title": r.title, "text": r.text, "language": r.language}
        for r in chosen.values()
    ]


def knowledge_for_agent(*, query: str, language: str) -> list[dict[str, Any]]:
    """What the assistant would retrieve for QUERY in LANGUAGE, to paste into a reply."""
    from knowledge.search import chunk_search

    if not query.strip():
        return []
    hits = chunk_search(query=query[:500], language=language, limit=8)
    return [
        {
            "title": str(hit.title),
            "url": str(hit.url),
            "snippet": str(hit.snippet),
            "language": str(getattr(hit, "language", "")),
            "score": round(float(getattr(hit, "score", 0.0)), 4),
            "relevant": bool(getattr(hit, "relevant", True)),
        }
        for hit in hits
    ]
