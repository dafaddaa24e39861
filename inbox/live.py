"""Tells the sockets what a human-side change did, after it committed, and runs translations.

Visitor-visible messages and state go to the conversation's group (`conversation_<id>`: the
visitor's widget and every inbox socket that opened it, on any process); private notes and
the visitor's typing go to `agents_<id>` only; queue changes go to `inbox` (every agent).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from channels.layers import get_channel_layer

from chat import events, selectors
from chat.asyncdb import in_reply_thread, in_thread
from chat.models import Conversation, Message, MessageTranslation
from chat.replies import get_runner, group_name
from inbox import services
from inbox.models import AgentProfile
from inbox.services import Change

logger = logging.getLogger(__name__)

INBOX_GROUP = "inbox"


def agents_group(conversation_id: uuid.UUID) -> str:
    return f"agents_{conversation_id.hex}"


def _layer() -> Any:
    layer = get_channel_layer()
    assert layer is not None
    return layer


async def change_broadcast(change: Change | None, *, queue_event: str = "changed") -> None:
    if change is None:
        return
    layer = _layer()
    conversation = change.conversation
    get_runner().cancel(change.stopping_replies)
    for reply_id in change.cancelled_replies:
        await layer.group_send(
            group_name(conversation.pk),
            events.ended_event(reply_id=reply_id, status=Message.Status.CANCELLED),
        )
    pending = {t.message_id: t for t in change.translations}
    for message in change.messages:
        payload = selectors.message_payload(
            message,
            translation=pending.get(message.pk),
            author_name=selectors.agent_display_name(message.author) if message.author_id else "",
        )
        group = (
            agents_group(conversation.pk)
            if message.role == Message.Role.NOTE
            else group_name(conversation.pk)
        )
        await layer.group_send(group, events.message_event(payload))
    if change.state_changed:
        await state_broadcast(conversation, queue_event=queue_event)
    elif change.messages:
        await layer.group_send(
            INBOX_GROUP,
            {"type": "inbox.queue", "conversation_id": str(conversation.pk), "event": "changed"},
        )
    for translation in change.translations:
        translation_kick(translation.pk)


async def state_broadcast(conversation: Conversation, *, queue_event: str = "changed") -> None:
    layer = _layer()
    state = await in_thread(conversation_state)(conversation_id=conversation.pk)
    await layer.group_send(group_name(conversation.pk), {"type": "chat.state", "state": state})
    if conversation.mode == Conversation.Mode.WAITING and queue_event == "changed":
        queue_event = "waiting"
    if not queue_event:  # nothing the agents' lists show changed
        return
    await layer.group_send(
        INBOX_GROUP,
        {"type": "inbox.queue", "conversation_id": str(conversation.pk), "event": queue_event},
    )


def conversation_state(*, conversation_id: uuid.UUID | None) -> dict[str, Any]:
    """The visitor's view of the human side (docs/protocol.md, `state`)."""
    from inbox import handoff
    from inbox.models import Csat

    conversation = (
        Conversation.objects.select_related("assignee__agent_profile", "team")
        .filter(pk=conversation_id)
        .first()
        if conversation_id is not None
        else None
    )
    available = handoff.handoff_enabled()
    if conversation is None:
        return {
            "mode": "bot",
            "agent": None,
            "handoff_available": available,
            "offer_email": False,
            "csat_requested": False,
            "csat": None,
            "status": "open",
            "visitor_email": "",
        }
    offer_email = False
    if conversation.mode == Conversation.Mode.WAITING and not conversation.visitor_email:
        offer_email = not handoff.availability(team=conversation.team).open
    csat = None
    if conversation.csat_requested:
        csat = (
            Csat.objects.filter(conversation=conversation).values_list("rating", flat=True).first()
        )
    agent = None
    if conversation.mode == Conversation.Mode.AGENT and conversation.assignee is not None:
        agent = selectors.agent_display_name(conversation.assignee)
    return {
        "conversation_id": str(conversation.pk),
        "mode": conversation.mode,
        "agent": agent,
        "handoff_available": available,
        "offer_email": offer_email,
        "csat_requested": conversation.csat_requested,
        "csat": csat,
        "status": conversation.status,
        "visitor_email": conversation.visitor_email,
    }


# --- Translations ---------------------------------------------------------------------------
_running: set[asyncio.Task[None]] = set()


def translation_kick(translation_id: int) -> None:
    """Translate in the background of this process; delivery never waits for it."""
    task = asyncio.create_task(_translate(translation_id), name=f"translate:{translation_id}")
    _running.add(task)
    task.add_done_callback(_running.discard)


def _translation_prepare(translation_id: int) -> tuple[MessageTranslation, Any, Any] | None:
    from chat.language import reply_language
    from inbox.translate import translation_request

    row = (
        MessageTranslation.objects.select_related("message__conversation")
        .filter(pk=translation_id, status=MessageTranslation.Status.PENDING)
        .first()
    )
    if row is None:
        return None
    message = row.message
    source = message.language or reply_language(
        text=message.text, conversation_language=message.conversation.language
    )
    names = AgentProfile.objects.exclude(display_name="").values_list("display_name", flat=True)
    request, protected = translation_request(
        text=message.text, source=source, target=row.language, names=list(names[:200])
    )
    return row, request, protected


async def _translate(translation_id: int) -> None:
    from inbox.translate import TranslationError, text_translate

    try:
        prepared = await in_reply_thread(_translation_prepare)(translation_id)
        if prepared is None:
            return
        row, request, protected = prepared
        try:
            text, backend = await text_translate(request=request, protected=protected)
            stored = await in_reply_thread(services.translation_store)(
                translation_id=translation_id, text=text, failed=False, backend=backend
            )
        except TranslationError as exc:
            logger.info("translation %s failed: %s", translation_id, exc)
            stored = await in_reply_thread(services.translation_store)(
                translation_id=translation_id, text="", failed=True, error=str(exc)
            )
        if stored is not None:
            await translation_broadcast(stored)
    except Exception:
        logger.exception("translation %s failed", translation_id)


async def translation_broadcast(row: MessageTranslation) -> None:
    message = row.message
    event = {
        "type": "chat.translation",
        "conversation_id": str(message.conversation_id),
        "message_id": message.pk,
        "role": message.role,
        "language": row.language,
        "status": row.status,
        "text": row.text,
    }
    conversation_id = message.conversation_id
    group = (
        group_name(conversation_id)
        if message.role == Message.Role.AGENT
        else agents_group(conversation_id)
    )
    await _layer().group_send(group, event)


def _presence_key(conversation_id: uuid.UUID) -> str:
    return f"inbox:presence:{conversation_id.hex}"


def visitors_online(ids: list[uuid.UUID]) -> dict[uuid.UUID, bool]:
    """Whether a visitor's socket is on each conversation now (any process: the cache is
    Redis there), in one round trip. Sockets of several tabs are counted; a process killed
    with sockets open leaves the count high until it expires (a day) or the visitor returns."""
    from django.core.cache import cache

    if not ids:
        return {}
    found = cache.get_many([_presence_key(i) for i in ids])
    return {i: bool(found.get(_presence_key(i))) for i in ids}


async def presence_change(*, conversation_id: uuid.UUID, joined: bool) -> None:
    from django.core.cache import cache

    key = _presence_key(conversation_id)
    if joined:
        await cache.aadd(key, 0, timeout=86_400)
        count = await cache.aincr(key)
    else:
        try:
            count = await cache.adecr(key)
        except ValueError:  # expired meanwhile
            count = 0
        if count <= 0:
            await cache.adelete(key)
    await _layer().group_send(
        agents_group(conversation_id),
        {"type": "chat.presence", "conversation_id": str(conversation_id), "online": count > 0},
    )


async def typing_broadcast(*, conversation_id: uuid.UUID, who: str, name: str = "") -> None:
    event = {
        "type": "chat.typing",
        "conversation_id": str(conversation_id),
        "who": who,
        "name": name,
    }
    group = agents_group(conversation_id) if who == "visitor" else group_name(conversation_id)
    await _layer().group_send(group, event)


async def visitor_message_broadcast(conversation: Conversation, message: Message) -> None:
    """A visitor wrote in a conversation a person answers: the agents' lists change (the
    inbox sockets that opened it got the message itself on the conversation's group)."""
    await _layer().group_send(
        INBOX_GROUP,
        {"type": "inbox.queue", "conversation_id": str(conversation.pk), "event": "changed"},
    )
