"""Writes for moderation: checking a visitor's message, logging hits, reviewing them."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils import translation
from django.utils.translation import gettext

from chat.models import Conversation, Message
from moderation import matching
from moderation.models import Action, Direction, ModerationHit
from moderation.selectors import rules_for

# One message or reply logs at most this many hits (a long list of one word says no more).
_HITS_PER_MESSAGE = 5


@dataclass(frozen=True)
class HitNote:
    """A hit to log once the message or reply it is about is stored."""

    rule_id: int | None
    action: str
    excerpt: str
    source: str = ModerationHit.Source.RULE


def notes_for(text: str, matches: Iterable[matching.Match]) -> list[HitNote]:
    return [
        HitNote(rule_id=m.rule.rule_id, action=m.rule.action, excerpt=matching.excerpt(text, m))
        for m in list(matches)[:_HITS_PER_MESSAGE]
    ]


def input_moderate(*, conversation: Conversation, message: Message) -> bool:
    """Check a visitor's stored MESSAGE against the input rules of the conversation's
    language and log what matched; True when it is blocked (it then gets no reply). Masked
    words stay in the stored message and are masked in the prompt (input_masked)."""
    rules = rules_for(language=conversation.language, direction=Direction.INPUT)
    if not rules:
        return False
    matches = matching.find(rules, message.text)
    if not matches:
        return False
    hits_record(
        conversation_id=conversation.pk,
        message_id=message.pk,
        direction=Direction.INPUT,
        language=conversation.language,
        notes=notes_for(message.text, matches),
    )
    return any(m.rule.action == Action.BLOCK for m in matches)


def input_masked(*, text: str, language: str) -> str:
    """TEXT (a visitor's words) with what the input rules of LANGUAGE match as ***: what the
    model is given."""
    rules = rules_for(language=language, direction=Direction.INPUT)
    if not rules:
        return text
    matches = matching.find(rules, text)
    return matching.masked(text, matches) if matches else text


def hits_record(
    *,
    conversation_id: uuid.UUID,
    message_id: int | None,
    direction: str,
    language: str,
    notes: Iterable[HitNote],
) -> list[ModerationHit]:
    """Log NOTES for review."""
    rows = [
        ModerationHit(
            rule_id=note.rule_id,
            source=note.source,
            direction=direction,
            conversation_id=conversation_id,
            message_id=message_id,
            language=language[:16],
            excerpt=note.excerpt[:200],
            action=note.action,
        )
        for note in list(notes)[:_HITS_PER_MESSAGE]
    ]
    return ModerationHit.objects.bulk_create(rows)


def hits_mark_reviewed(*, hits: QuerySet[ModerationHit]) -> int:
    """Mark HITS as reviewed; how many were not yet."""
    return hits.filter(reviewed=False).update(reviewed=True)


def safe_reply(*, language: str) -> str:
    """What the visitor is shown instead of a reply that moderation blocked, in LANGUAGE."""
    with translation.override(language or None):
        return gettext(
            "Sorry, I can't help with that. Please ask me something else, or contact our "
            "support team."
        )


def reply_hits_record(*, reply: Message, language: str, notes: Iterable[HitNote]) -> None:
    """Log what moderation did to REPLY while it streamed."""
    hits_record(
        conversation_id=reply.conversation_id,
        message_id=reply.pk,
        direction=Direction.OUTPUT,
        language=language,
        notes=notes,
    )
