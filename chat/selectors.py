"""Reads for the chat: conversations, message history, prompt history, the knowledge given
with earlier messages and the admins' decoding presets."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone

from autoglm_site.memo import admin_tables_memo
from chat import errors
from chat.events import DoneEvent, done_event
from chat.llm.base import Sampling
from chat.models import (
    Conversation,
    DecodingPreset,
    Feedback,
    Message,
    MessageTranslation,
    TurnKnowledge,
    Visitor,
)
from chat.prompts import KnowledgeSnippet

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


def conversation_mode(*, conversation_id: uuid.UUID) -> str | None:
    """Who answers the conversation now (Conversation.Mode), or None if it is gone."""
    return Conversation.objects.filter(pk=conversation_id).values_list("mode", flat=True).first()


def reply_citations(*, reply: Message) -> list[dict[str, str]]:
    """The knowledge articles a reply was given, as {title, url}, each once, in rank order."""
    question = reply.reply_to
    if reply.role != Message.Role.ASSISTANT or question is None:
        return []
    try:
        snippets = question.prompt_knowledge.snippets
    except TurnKnowledge.DoesNotExist:
        return []
    citations: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for snippet in snippets:
        key = (str(snippet.get("title", "")), str(snippet.get("url", "")))
        if key not in seen and key[0]:
            seen.add(key)
            citations.append({"title": key[0], "url": key[1]})
    return citations


def message_payload(
    message: Message,
    *,
    citations: list[dict[str, str]] | None = None,
    feedback: str | None = None,
    translation: MessageTranslation | None = None,
    author_name: str = "",
) -> dict[str, Any]:
    """A message as the protocol sends it (see docs/protocol.md). Makes no query."""
    return {
        "id": message.pk,
        "role": message.role,
        "text": message.text,
        "status": message.status,
        "client_id": message.client_id,
        "reply_to": message.reply_to_id,
        "created_at": message.created_at.isoformat(),
        "citations": citations or [],
        "feedback": feedback,
        "author_name": author_name,
        "language": message.language,
        "translation": translation_payload(translation),
    }


def translation_payload(translation: MessageTranslation | None) -> dict[str, str] | None:
    if translation is None:
        return None
    return {
        "language": translation.language,
        "status": translation.status,
        "text": translation.text,
    }


def visitor_payload(message: Message, *, language: str) -> dict[str, Any]:
    """message_payload for the visitor's widget: an agent's message with its translation into
    LANGUAGE (the conversation's) and the agent's name. Reads prefetched rows only when the
    caller prefetched "translations" and "author__agent_profile"."""
    translation = None
    author_name = ""
    if message.role == Message.Role.AGENT:
        translation = translation_in(message, language=language)
        author_name = agent_display_name(message.author)
    return message_payload(message, translation=translation, author_name=author_name)


def translation_in(message: Message, *, language: str) -> MessageTranslation | None:
    """MESSAGE's translation into LANGUAGE, from its prefetched "translations" (no query)."""
    return next((t for t in message.translations.all() if t.language == language), None)


def agent_display_name(user: Any) -> str:
    if user is None:
        return ""
    profile = getattr(user, "agent_profile", None)
    if profile is not None and profile.display_name:
        return str(profile.display_name)
    return str(user.get_full_name() or user.get_username())


def history_since(*, conversation: Conversation, last_seen_id: int | None) -> list[dict[str, Any]]:
    """messages_since as protocol payloads, with each reply's citations and feedback."""
    payloads = []
    for message in messages_since(conversation=conversation, last_seen_id=last_seen_id):
        try:
            feedback: str | None = message.feedback.rating
        except Feedback.DoesNotExist:
            feedback = None
        payload = visitor_payload(message, language=conversation.language)
        payload["citations"] = reply_citations(reply=message)
        payload["feedback"] = feedback
        payloads.append(payload)
    return payloads


def replies_watched(*, ids: list[int], lease_seconds: float) -> dict[int, DoneEvent | str]:
    """What a socket's watchdog needs to know of the replies IDS, in one query: for each reply
    that finished, its `chat.done` event rebuilt from the database; for the others "pending",
    "streaming" (its lease is fresh: a generator holds it) or "stale" (streaming with a
    heartbeat older than LEASE_SECONDS: its process may have died)."""
    lease_cutoff = timezone.now() - timedelta(seconds=lease_seconds)
    states: dict[int, DoneEvent | str] = {}
    replies = Message.objects.filter(pk__in=ids, role=Message.Role.ASSISTANT).select_related(
        "reply_to__prompt_knowledge"
    )
    for reply in replies:
        if reply.status == Message.Status.PENDING:
            states[reply.pk] = "pending"
        elif reply.status == Message.Status.STREAMING:
            fresh = reply.heartbeat_at is not None and reply.heartbeat_at >= lease_cutoff
            states[reply.pk] = "streaming" if fresh else "stale"
        else:
            states[reply.pk] = done_event(reply, citations=reply_citations(reply=reply))
    return states


def messages_since(*, conversation: Conversation, last_seen_id: int | None) -> list[Message]:
    """Messages after last_seen_id, oldest first (the newest HISTORY_LIMIT when there is none)."""
    # Private notes never reach the visitor.
    messages = (
        Message.objects.filter(conversation=conversation)
        .exclude(role=Message.Role.NOTE)
        .select_related("feedback", "reply_to__prompt_knowledge", "author__agent_profile")
        .prefetch_related("translations")
    )
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
        .exclude(role__in=[Message.Role.NOTE, Message.Role.SYSTEM])
        .exclude(role=Message.Role.ASSISTANT, status__in=_UNSEEN)
        .exclude(text="")
        .exclude(_blocked_by_moderation())
        .select_related("prompt_knowledge")  # what each turn was given: no query per turn
        .order_by("id")
    )


def _blocked_by_moderation() -> Exists:
    """Visitors' messages moderation blocked: they got no reply, and the model never sees them."""
    from moderation.models import ModerationHit

    return Exists(
        ModerationHit.objects.filter(message=OuterRef("pk"), direction="input", action="block")
    )


_UNSEEN = (
    Message.Status.PENDING,
    Message.Status.STREAMING,
    Message.Status.INTERRUPTED,
    Message.Status.FAILED,
)


def knowledge_given(*, messages: Sequence[Message]) -> dict[int, list[KnowledgeSnippet]]:
    """The stored knowledge of earlier visitor messages, by message id (read with them where
    they were fetched with it, as prompt_history does; else in one query)."""
    rows = [
        m.prompt_knowledge
        for m in messages
        if Message.prompt_knowledge.related.is_cached(m) and stored_knowledge(m) is not None
    ]
    unread = [m.pk for m in messages if not Message.prompt_knowledge.related.is_cached(m)]
    if unread:
        rows += TurnKnowledge.objects.filter(message__in=unread)
    return {
        row.message_id: [KnowledgeSnippet.from_dict(item) for item in row.snippets] for row in rows
    }


def stored_knowledge(message: Message) -> TurnKnowledge | None:
    """The knowledge stored with a visitor's message, if any (no query where it was fetched
    with the message)."""
    try:
        return message.prompt_knowledge
    except TurnKnowledge.DoesNotExist:
        return None


@admin_tables_memo(DecodingPreset)
def preset_sampling(*, task: str, assistant: str | None = None) -> Sampling:
    """The admin's decoding preset for a task (this assistant's, else everyone's), else defaults."""
    name = settings.CHAT_ASSISTANT_NAME if assistant is None else assistant
    rows = DecodingPreset.objects.filter(task=task, assistant__in=[name, ""])
    presets = {preset.assistant: preset for preset in rows}
    preset = presets.get(name) or presets.get("")
    if preset is None:
        return Sampling()
    return Sampling(
        temperature=preset.temperature,
        top_p=preset.top_p,
        max_tokens=preset.max_tokens,
        stop=preset.stop_sequences(),
        presence_penalty=preset.presence_penalty,
        frequency_penalty=preset.frequency_penalty,
        seed=preset.seed,
    )
