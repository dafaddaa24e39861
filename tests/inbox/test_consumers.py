"""The human side end to end over both WebSockets: the visitor's widget and the agent's inbox,
through the real consumers, services, channel layer and the reply runner."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async

from chat.models import Conversation, Message, MessageTranslation
from inbox.models import Csat
from tests.chat.wsclient import connect, hello, receive, receive_until, send
from tests.inbox.agents import agent_create, inbox_connect, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


async def _agent(language: str = "de", name: str = "anna"):  # type: ignore[no-untyped-def]
    profile = await database_sync_to_async(agent_create)(name, language=language)
    cookie = await database_sync_to_async(session_cookie)(profile)
    inbox, connected, _code = await inbox_connect(cookie)
    assert connected
    return profile, inbox, cookie


async def _until(communicator: Any, predicate: Any, timeout: float = 10) -> dict[str, Any]:
    """The first frame for which PREDICATE is true (others are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            frame = await receive(communicator, timeout=timeout)
            if predicate(frame):
                return frame


async def _visitor_asks_for_person():  # type: ignore[no-untyped-def]
    visitor = await connect("ar")
    welcome = await hello(visitor, locale="ar")
    assert welcome["state"]["handoff_available"] is True
    await send(visitor, {"type": "message", "client_id": "v1", "text": "أريد التحدث مع موظف"})
    ack = await _until(visitor, lambda f: f["type"] == "ack")
    assert ack["reply_id"] is None  # a person answers, not the bot
    state = await _until(visitor, lambda f: f["type"] == "state")
    assert state["state"]["mode"] == "waiting"
    _visitor_token[ack["conversation_id"]] = welcome["token"]
    return visitor, ack["conversation_id"]


_visitor_token: dict[str, str] = {}


async def test_inbox_refuses_anonymous_sockets_and_other_origins() -> None:
    inbox, connected, code = await inbox_connect("sessionid=nothing")
    assert not connected or code == 4003
    profile = await database_sync_to_async(agent_create)()
    cookie = await database_sync_to_async(session_cookie)(profile)
    _inbox, connected, _code = await inbox_connect(cookie, origin=b"http://evil.test")
    assert not connected


async def test_handoff_live_both_ways_with_translation_typing_notes_resolve_and_csat() -> None:
    profile, inbox, _cookie = await _agent()
    visitor, conversation_id = await _visitor_asks_for_person()
    queued = await _until(inbox, lambda f: f["type"] == "queue")
    assert queued["conversation_id"] == conversation_id and queued["event"] == "waiting"

    # The agent opens it: the visitor's Arabic, with its German translation on the way.
    await send(inbox, {"type": "open", "conversation_id": conversation_id, "ref": "o1"})
    opened = await _until(inbox, lambda f: f["type"] == "conversation" and f.get("ref") == "o1")
    assert opened["conversation"]["handoff_reason"] == "visitor_request"
    from django.utils import translation

    with translation.override("de"):  # the labels are in the agent's language
        label = str(Conversation.HandoffReason.VISITOR_REQUEST.label)
    assert (
        opened["conversation"]["handoff_reason_label"] == label != "The visitor asked for a person"
    )
    first = next(m for m in opened["messages"] if m["role"] == "user")
    assert first["text"] == "أريد التحدث مع موظف"
    assert first["translation"]["status"] == "pending"
    translated = await _until(inbox, lambda f: f["type"] == "translation")
    assert translated["message_id"] == first["id"]
    assert translated["text"] == "[de] أريد التحدث مع موظف"

    # The agent writes German (claiming the conversation); the visitor gets the original at
    # once, marked pending, then the Arabic translation.
    await send(
        inbox,
        {
            "type": "send",
            "conversation_id": conversation_id,
            "client_id": "a1",
            "text": "Guten Tag! Ihre Bestellung #4521 kostet 19,99 €.",
        },
    )
    ack = await _until(inbox, lambda f: f["type"] == "ack")
    assert not ack["duplicate"]
    stored = await Message.objects.aget(pk=ack["message_id"])
    assert stored.role == "agent" and stored.language == "de"
    frames = await receive_until(visitor, "translation")
    state = next(f for f in frames if f["type"] == "state")
    assert state["state"]["mode"] == "agent" and state["state"]["agent"] == "Anna"
    joined, shown = (f["message"] for f in frames if f["type"] == "message")
    assert joined["role"] == "system" and "Anna" in joined["text"]
    assert shown["role"] == "agent" and shown["author_name"] == "Anna"
    assert shown["text"].startswith("Guten Tag!")
    assert shown["translation"]["status"] == "pending"  # delivered before it is translated
    arrived = frames[-1]
    # Names, numbers and prices are kept exactly (protected from the model).
    assert arrived["text"] == "[ar] Guten Tag! Ihre Bestellung #4521 kostet 19,99 €."
    row = await MessageTranslation.objects.aget(message_id=ack["message_id"])
    assert row.status == "done" and (await Message.objects.aget(pk=stored.pk)).text == stored.text

    # A retry with the same client id is acknowledged as a duplicate and stored once.
    await send(
        inbox,
        {
            "type": "send",
            "conversation_id": conversation_id,
            "client_id": "a1",
            "text": "Guten Tag! Ihre Bestellung #4521 kostet 19,99 €.",
        },
    )
    again = await _until(inbox, lambda f: f["type"] == "ack")
    assert again["duplicate"] and again["message_id"] == ack["message_id"]

    # Typing, both ways.
    await send(visitor, {"type": "typing"})
    assert (await _until(inbox, lambda f: f["type"] == "typing"))["who"] == "visitor"
    await send(inbox, {"type": "typing", "conversation_id": conversation_id})
    assert (await _until(visitor, lambda f: f["type"] == "typing"))["name"] == "Anna"

    # A private note reaches agents only.
    await send(
        inbox,
        {
            "type": "send",
            "conversation_id": conversation_id,
            "client_id": "n1",
            "text": "Stammkunde",
            "note": True,
        },
    )
    await _until(inbox, lambda f: f["type"] == "message" and f["message"]["role"] == "note")

    # Resolve: the visitor is asked for a rating, which names the agent.
    await send(inbox, {"type": "resolve", "conversation_id": conversation_id, "ref": "r"})
    await _until(inbox, lambda f: f["type"] == "ok" and f["ref"] == "r")
    state = await _until(visitor, lambda f: f["type"] == "state")
    assert state["state"]["csat_requested"] and state["state"]["status"] == "closed"
    await send(visitor, {"type": "csat", "rating": 4, "comment": "شكرا"})
    frames = await receive_until(visitor, "csat_saved")
    assert all("Stammkunde" not in str(frame) for frame in frames)
    csat = await Csat.objects.select_related("agent").aget(conversation_id=conversation_id)
    assert csat.rating == 4 and csat.agent_id == profile.user_id
    await visitor.disconnect()
    await inbox.disconnect()


async def test_agent_reconnect_gets_what_it_missed_and_the_visitor_reconnect_too() -> None:
    _profile, inbox, cookie = await _agent()
    visitor, conversation_id = await _visitor_asks_for_person()
    await send(inbox, {"type": "open", "conversation_id": conversation_id, "ref": "o"})
    opened = await _until(inbox, lambda f: f["type"] == "conversation" and f.get("ref") == "o")
    assert opened["conversation"]["visitor_online"] is True
    await send(inbox, {"type": "claim", "conversation_id": conversation_id, "ref": "c"})
    await _until(inbox, lambda f: f["type"] == "ok")
    await inbox.disconnect()
    await send(visitor, {"type": "message", "client_id": "v2", "text": "هل ما زلت هنا؟"})
    missed = await _until(visitor, lambda f: f["type"] == "ack")

    inbox, connected, _code = await inbox_connect(cookie)
    assert connected
    await send(inbox, {"type": "open", "conversation_id": conversation_id, "last_seen_id": 0})
    opened = await _until(inbox, lambda f: f["type"] == "conversation")
    assert missed["message_id"] in [m["id"] for m in opened["messages"]]

    await send(
        inbox,
        {
            "type": "send",
            "conversation_id": conversation_id,
            "client_id": "a9",
            "text": "Ja, ich bin da.",
        },
    )
    sent = await _until(inbox, lambda f: f["type"] == "ack")
    await visitor.disconnect()  # the visitor was away when the agent answered
    gone = await _until(inbox, lambda f: f["type"] == "presence")
    assert gone["online"] is False
    visitor = await connect("ar")
    token_welcome = await hello(
        visitor,
        locale="ar",
        token=_visitor_token[conversation_id],
        conversation_id=conversation_id,
        last_seen_id=missed["message_id"],
    )
    assert token_welcome["state"]["mode"] == "agent"
    ids = [m["id"] for m in token_welcome["messages"]]
    assert sent["message_id"] in ids
    await visitor.disconnect()
    await inbox.disconnect()


async def test_hand_back_to_the_bot_then_it_answers_again() -> None:
    _profile, inbox, _cookie = await _agent()
    visitor, conversation_id = await _visitor_asks_for_person()
    await send(inbox, {"type": "claim", "conversation_id": conversation_id})
    await _until(inbox, lambda f: f["type"] == "ok")
    await send(inbox, {"type": "hand_back", "conversation_id": conversation_id})
    await _until(inbox, lambda f: f["type"] == "ok")
    state = await _until(visitor, lambda f: f["type"] == "state" and f["state"]["mode"] == "bot")
    assert state["state"]["agent"] is None
    await send(visitor, {"type": "message", "client_id": "v3", "text": "كيف أغير كلمة المرور؟"})
    ack = await _until(visitor, lambda f: f["type"] == "ack")
    assert ack["reply_id"] is not None
    done = await _until(visitor, lambda f: f["type"] == "done")
    assert done["status"] == "complete"
    await visitor.disconnect()
    await inbox.disconnect()


async def test_no_relevant_knowledge_hands_off_after_the_honest_reply() -> None:
    await database_sync_to_async(agent_create)()
    visitor = await connect("en")
    await hello(visitor, locale="en")
    await send(
        visitor,
        {
            "type": "message",
            "client_id": "q1",
            "text": "How do I export all my invoices as one PDF file?",
        },
    )
    done = await _until(visitor, lambda f: f["type"] == "done")
    assert done["status"] == "complete"
    state = await _until(visitor, lambda f: f["type"] == "state")
    assert state["state"]["mode"] == "waiting"
    conversation = await Conversation.objects.aget(
        pk=(await Message.objects.aget(pk=done["message_id"])).conversation_id
    )
    assert conversation.handoff_reason == "no_knowledge"
    await visitor.disconnect()


async def test_widget_handoff_control_and_its_errors() -> None:
    visitor = await connect("en")
    await hello(visitor, locale="en")
    await send(visitor, {"type": "handoff"})
    error = await receive(visitor)
    assert error["type"] == "error" and error["code"] == "conversation_not_found"
    await send(visitor, {"type": "message", "client_id": "m1", "text": "hi"})
    await _until(visitor, lambda f: f["type"] == "done")
    await send(visitor, {"type": "handoff"})
    error = await _until(visitor, lambda f: f["type"] == "error")
    assert error["code"] == "handoff_unavailable"  # no agents: the human side is off
    await database_sync_to_async(agent_create)()
    await send(visitor, {"type": "handoff"})
    state = await _until(visitor, lambda f: f["type"] == "state")
    assert state["state"]["mode"] == "waiting"
    await send(visitor, {"type": "csat", "rating": 7})
    assert (await _until(visitor, lambda f: f["type"] == "error"))["code"] == "invalid_frame"
    await send(visitor, {"type": "email", "address": "nope"})
    assert (await _until(visitor, lambda f: f["type"] == "error"))["code"] == "invalid_email"
    await visitor.disconnect()


async def test_bad_inbox_frames_get_errors_not_crashes() -> None:
    _profile, inbox, _cookie = await _agent()
    for raw in [
        "nope",
        "[]",
        '{"type": "launch"}',
        '{"type": "open"}',
        '{"type": "open", "conversation_id": "00000000-0000-0000-0000-000000000000"}',
        '{"type": "send", "conversation_id": "00000000-0000-0000-0000-000000000000",'
        ' "client_id": "x", "text": "hi"}',
    ]:
        await inbox.send_to(text_data=raw)
        frame = await receive(inbox)
        assert frame["type"] == "error", (raw, frame)
    await send(inbox, {"type": "ping"})
    assert (await receive(inbox))["type"] == "pong"
    await inbox.disconnect()


def _import_refunds_as_billing() -> None:
    import json

    from inbox.models import HandoffRule
    from knowledge.models import Category
    from knowledge.services import articles_import
    from tests.chat.test_grounding import ARTICLES

    lines = [
        json.dumps(dict(a, category="billing") if a["id"] == "refunds" else a, ensure_ascii=False)
        for a in ARTICLES
    ]
    articles_import(lines=lines)
    HandoffRule.objects.create(category=Category.objects.get(slug="billing"))


async def test_an_answer_from_a_ruled_category_hands_off() -> None:
    await database_sync_to_async(agent_create)()
    await database_sync_to_async(_import_refunds_as_billing)()
    visitor = await connect("en")
    await hello(visitor, locale="en")
    await send(
        visitor,
        {
            "type": "message",
            "client_id": "q1",
            "text": "How do I get a refund of my first payment?",
        },
    )
    done = await _until(visitor, lambda f: f["type"] == "done")
    assert [c["url"] for c in done["citations"]] == ["https://help.example/en/refunds"]
    state = await _until(visitor, lambda f: f["type"] == "state")
    assert state["state"]["mode"] == "waiting"
    conversation = await Conversation.objects.aget(mode="waiting")
    assert conversation.handoff_reason == "rule" and conversation.handoff_detail
    await visitor.disconnect()
    # A question answered from another category stays with the bot.
    other = await connect("en")
    await hello(other, locale="en")
    await send(other, {"type": "message", "client_id": "q2", "text": "How do I reset my password?"})
    done = await _until(other, lambda f: f["type"] == "done")
    assert [c["url"] for c in done["citations"]] == ["https://help.example/en/pw"]
    await asyncio.sleep(0.5)  # the handoff would come right after the reply's end
    reply = await Message.objects.select_related("conversation").aget(pk=done["message_id"])
    assert reply.conversation.mode == "bot"
    await other.disconnect()


async def test_a_failed_translation_delivers_the_original_marked_then_a_retry_translates() -> None:
    from chat.llm.base import LLMError
    from chat.llm.fake import FakeBackend

    _profile, inbox, _cookie = await _agent()
    visitor, conversation_id = await _visitor_asks_for_person()
    await send(inbox, {"type": "claim", "conversation_id": conversation_id})
    await _until(inbox, lambda f: f["type"] == "ok")
    FakeBackend.script.append(LLMError("engine down"))
    await send(
        inbox,
        {
            "type": "send",
            "conversation_id": conversation_id,
            "client_id": "a1",
            "text": "Einen Moment bitte.",
        },
    )
    ack = await _until(inbox, lambda f: f["type"] == "ack")
    failed = await _until(visitor, lambda f: f["type"] == "translation")
    assert failed["status"] == "failed" and failed["text"] == ""
    stored = await Message.objects.aget(pk=ack["message_id"])
    assert stored.text == "Einen Moment bitte."  # delivered as written
    await send(
        inbox,
        {
            "type": "retranslate",
            "conversation_id": conversation_id,
            "message_id": ack["message_id"],
        },
    )
    retried = await _until(visitor, lambda f: f["type"] == "translation")
    assert retried["status"] == "done" and retried["text"] == "[ar] Einen Moment bitte."
    await visitor.disconnect()
    await inbox.disconnect()


async def test_a_helpful_bot_reply_asks_for_a_rating_once() -> None:
    visitor = await connect("en")
    await hello(visitor, locale="en")
    await send(visitor, {"type": "message", "client_id": "m1", "text": "hi"})
    done = await _until(visitor, lambda f: f["type"] == "done")
    await send(visitor, {"type": "feedback", "message_id": done["message_id"], "rating": "up"})
    state = await _until(visitor, lambda f: f["type"] == "state")
    assert state["state"]["csat_requested"] is True and state["state"]["mode"] == "bot"
    await send(visitor, {"type": "csat", "rating": 5})
    await _until(visitor, lambda f: f["type"] == "csat_saved")
    csat = await Csat.objects.aget()
    assert csat.rating == 5 and csat.agent_id is None
    await visitor.disconnect()
