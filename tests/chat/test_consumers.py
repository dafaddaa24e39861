"""The WebSocket protocol, end to end through the consumer, the services and the reply runner."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from unittest import mock

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from chat.llm.base import LLMError
from chat.llm.fake import FakeBackend, reply_for
from chat.models import Conversation, Feedback, Message, Visitor
from tests.chat.wsclient import connect, hello, receive, receive_until, send, text_of

pytestmark = pytest.mark.django_db(transaction=True)


async def _start(**hello_fields: object):  # type: ignore[no-untyped-def]
    communicator = await connect()
    welcome = await hello(communicator, locale="en", **hello_fields)
    return communicator, welcome


async def _ask(communicator, client_id: str, text: str):  # type: ignore[no-untyped-def]
    await send(communicator, {"type": "message", "client_id": client_id, "text": text})
    frames = await receive_until(communicator, "done")
    ack = next(f for f in frames if f["type"] == "ack")
    return ack, frames


async def test_reply_streams_in_deltas_then_done() -> None:
    communicator, welcome = await _start()
    assert welcome["conversation_id"] is None and welcome["token"]
    ack, frames = await _ask(communicator, "c1", "How do I reset my password?")
    reply_id = ack["reply_id"]
    expected = "You asked: «How do I reset my password?». This is question 1 of our conversation."
    assert text_of(frames, reply_id) == expected
    done = frames[-1]
    assert done["status"] == "complete" and done["message_id"] == reply_id
    assert done["usage"]["completion_tokens"] == len(expected.split())
    assert done["timings"]["ttft_ms"] > 0
    stored = await Message.objects.aget(pk=reply_id)
    assert stored.text == expected and stored.status == Message.Status.COMPLETE
    await communicator.disconnect()


async def test_message_is_stored_before_ack() -> None:
    communicator, _welcome = await _start()
    await send(communicator, {"type": "message", "client_id": "first", "text": "Hello there"})
    ack = await receive(communicator)
    assert ack["type"] == "ack"
    # The ack is sent only after the commit: the row is visible from another connection now.
    stored = await Message.objects.aget(pk=ack["message_id"])
    assert stored.text == "Hello there" and stored.client_id == "first"
    await receive_until(communicator, "done")
    await communicator.disconnect()


async def test_a_stuck_presence_update_holds_up_neither_the_ack_nor_the_reply() -> None:
    # Presence (agents see the visitor is here) is best effort: the first message's ack and
    # its reply must not wait on the cache round trips it takes.
    stuck = asyncio.Event()

    async def presence_change(**_kwargs: object) -> None:
        await stuck.wait()

    communicator, _welcome = await _start()
    with mock.patch("chat.consumers.inbox_live.presence_change", presence_change):
        ack, frames = await _ask(communicator, "p1", "Hello there")
        assert ack["reply_id"] and frames[-1]["status"] == "complete"
        stuck.set()
    await communicator.disconnect()


async def test_a_failure_after_the_ack_closes_the_socket_and_the_hello_resumes_the_reply() -> None:
    communicator, welcome = await _start()
    with mock.patch("chat.consumers.ChatConsumer.join", side_effect=ConnectionError("redis")):
        await send(communicator, {"type": "message", "client_id": "j1", "text": "Hello there"})
        ack = await receive(communicator)
        # Stored and acknowledged: no error frame for it, the socket is closed to resync.
        assert ack["type"] == "ack"
        closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4000}
    await communicator.disconnect()
    again = await connect()
    resumed = await hello(
        again, locale="en", token=welcome["token"], conversation_id=ack["conversation_id"]
    )
    assert ack["message_id"] in [m["id"] for m in resumed["messages"]]
    frames = await receive_until(again, "done")
    assert frames[-1]["message_id"] == ack["reply_id"] and frames[-1]["status"] == "complete"
    await again.disconnect()


async def test_no_ack_when_storing_fails() -> None:
    communicator, _welcome = await _start()
    with mock.patch("chat.services.Message.objects.create", side_effect=RuntimeError("disk full")):
        await send(communicator, {"type": "message", "client_id": "x1", "text": "Hello"})
        frame = await receive(communicator)
    assert frame["type"] == "error" and frame["code"] == "internal_error"
    assert frame["client_id"] == "x1"
    assert await Message.objects.acount() == 0
    await communicator.disconnect()


async def test_retry_with_same_client_id_is_acked_once_and_stored_once() -> None:
    communicator, _welcome = await _start()
    first, _frames = await _ask(communicator, "same", "Where are my invoices?")
    await send(
        communicator, {"type": "message", "client_id": "same", "text": "Where are my invoices?"}
    )
    second = await receive(communicator)
    assert second["type"] == "ack" and second["duplicate"] is True
    assert second["message_id"] == first["message_id"]
    assert second["conversation_id"] == first["conversation_id"]
    assert await Message.objects.filter(role="user").acount() == 1
    assert await Conversation.objects.acount() == 1
    await communicator.disconnect()


async def test_retry_of_first_message_on_new_socket_finds_same_conversation() -> None:
    communicator, welcome = await _start()
    first, _ = await _ask(communicator, "open-1", "Hi")
    await communicator.disconnect()
    # The ack was lost: the client knows neither the conversation nor the message id.
    again = await connect()
    await hello(again, token=welcome["token"])
    await send(again, {"type": "message", "client_id": "open-1", "text": "Hi"})
    ack = await receive(again)
    assert ack["type"] == "ack" and ack["message_id"] == first["message_id"]
    assert ack["conversation_id"] == first["conversation_id"]
    assert await Message.objects.filter(role="user").acount() == 1
    await again.disconnect()


async def test_earlier_turns_reach_the_backend() -> None:
    communicator, _ = await _start()
    _, first = await _ask(communicator, "t1", "My name is Lina.")
    _, second = await _ask(communicator, "t2", "What is my name?")
    request = FakeBackend.requests[-1]
    roles = [turn.role for turn in request.messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert request.messages[1].content.split("\n")[0] == "My name is Lina."
    assert request.messages[2].content == reply_for(FakeBackend.requests[0])
    assert request.messages[3].content.split("\n")[0] == "What is my name?"
    reply_id = second[0]["reply_id"] if second[0]["type"] == "ack" else None
    assert reply_id and "Earlier you asked: «My name is Lina.»" in text_of(second, reply_id)
    await communicator.disconnect()


async def test_deltas_are_coalesced_in_order(settings) -> None:  # type: ignore[no-untyped-def]
    settings.LLM_FAKE_TOKEN_MS = 1
    settings.CHAT_COALESCE_MS = 60
    long_question = " ".join(f"w{i}" for i in range(120))
    communicator, _ = await _start()
    ack, frames = await _ask(communicator, "c", long_question)
    deltas = [f for f in frames if f["type"] == "delta"]
    expected = reply_for(FakeBackend.requests[-1])
    tokens = len(expected.split())
    assert text_of(frames, ack["reply_id"]) == expected  # contiguous offsets, nothing lost
    assert len(deltas) < tokens / 3, (len(deltas), tokens)
    duration_s = frames[-1]["timings"]["duration_ms"] / 1000
    assert len(deltas) <= duration_s / 0.06 + 2
    await communicator.disconnect()


async def test_resume_after_disconnect_mid_reply(settings) -> None:  # type: ignore[no-untyped-def]
    settings.LLM_FAKE_TOKEN_MS = 40
    communicator, welcome = await _start()
    await send(
        communicator, {"type": "message", "client_id": "r1", "text": "Tell me about storage"}
    )
    ack = await receive(communicator)
    seen = ""
    while len(seen) < 20:
        frame = await receive(communicator)
        if frame["type"] == "delta":
            seen += frame["text"]
    await communicator.disconnect()  # the reply keeps going without the socket
    await asyncio.sleep(0.15)

    again = await connect()
    resumed = await hello(
        again,
        token=welcome["token"],
        conversation_id=ack["conversation_id"],
        last_seen_id=ack["message_id"],
    )
    [snapshot] = [m for m in resumed["messages"] if m["id"] == ack["reply_id"]]
    assert snapshot["status"] == "streaming"
    assert snapshot["text"].startswith(seen)
    rest = await receive_until(again, "done")
    full = snapshot["text"] + "".join(
        f["text"] for f in rest if f["type"] == "delta" and f["message_id"] == ack["reply_id"]
    )
    offsets_ok = text_of(
        [
            {"type": "delta", "message_id": 0, "offset": 0, "text": snapshot["text"]},
            *[{**f, "message_id": 0} for f in rest if f["type"] == "delta"],
        ],
        0,
    )
    expected = "You asked: «Tell me about storage». This is question 1 of our conversation."
    assert full == expected == offsets_ok
    await again.disconnect()


async def test_hello_after_reply_finished_returns_it_complete() -> None:
    communicator, welcome = await _start()
    ack, _ = await _ask(communicator, "h1", "Hello")
    await communicator.disconnect()
    again = await connect()
    resumed = await hello(again, token=welcome["token"], conversation_id=ack["conversation_id"])
    statuses = [(m["role"], m["status"]) for m in resumed["messages"]]
    assert statuses == [("user", "complete"), ("assistant", "complete")]
    since = await hello(
        again,
        token=welcome["token"],
        conversation_id=ack["conversation_id"],
        last_seen_id=ack["reply_id"],
    )
    assert since["messages"] == []
    await again.disconnect()


async def test_interrupted_reply_is_regenerated_on_hello(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CHAT_REPLY_LEASE_SECONDS = 5

    @database_sync_to_async
    def orphan() -> tuple[str, str, int, int]:
        from chat.services import visitor_token

        visitor = Visitor.objects.create()
        conversation = Conversation.objects.create(
            visitor=visitor, language="en", opening_client_id="o1"
        )
        question = Message.objects.create(
            conversation=conversation,
            role="user",
            text="Is it down?",
            status="complete",
            client_id="o1",
        )
        dead = Message.objects.create(
            conversation=conversation,
            role="assistant",
            text="Let me ch",
            status="streaming",
            reply_to=question,
            heartbeat_at=timezone.now() - timedelta(seconds=60),
        )
        return visitor_token(visitor=visitor), str(conversation.pk), question.pk, dead.pk

    token, conversation_id, question_id, dead_id = await orphan()
    communicator = await connect()
    welcome = await hello(communicator, token=token, conversation_id=conversation_id)
    by_id = {m["id"]: m for m in welcome["messages"]}
    assert by_id[dead_id]["status"] == "interrupted" and by_id[dead_id]["text"] == "Let me ch"
    [fresh] = [m for m in welcome["messages"] if m["id"] > dead_id]
    assert fresh["reply_to"] == question_id
    # Generation starts before the welcome is read, so the new reply may be at any stage in it.
    text = fresh["text"]
    if fresh["status"] != "complete":
        frames = await receive_until(communicator, "done")
        deltas = [f for f in frames if f["type"] == "delta" and f["message_id"] == fresh["id"]]
        for frame in deltas:
            assert frame["offset"] == len(text)
            text += frame["text"]
    assert text.startswith("You asked: «Is it down?»")
    # The interrupted attempt is not part of the prompt.
    assert [t.content.split("\n")[0] for t in FakeBackend.requests[-1].messages[1:]] == [
        "Is it down?"
    ]
    await communicator.disconnect()


async def test_cancel_stops_generation_and_keeps_partial_text(settings) -> None:  # type: ignore[no-untyped-def]
    settings.LLM_FAKE_TOKEN_MS = 50
    communicator, _ = await _start()
    await send(communicator, {"type": "message", "client_id": "k1", "text": "a long question " * 5})
    ack = await receive(communicator)
    frames = []
    while sum(len(f.get("text", "")) for f in frames if f["type"] == "delta") < 10:
        frames.append(await receive(communicator))
    await send(communicator, {"type": "cancel"})
    frames += await receive_until(communicator, "done")
    assert frames[-1]["status"] == "cancelled"
    shown = text_of(frames, ack["reply_id"])
    stored = await Message.objects.aget(pk=ack["reply_id"])
    assert stored.status == Message.Status.CANCELLED
    assert stored.text == shown and 10 <= len(shown) < len(reply_for(FakeBackend.requests[-1]))
    await asyncio.sleep(0.2)
    assert (await Message.objects.aget(pk=ack["reply_id"])).text == shown  # really stopped
    await communicator.disconnect()


async def test_backend_failure_ends_in_failed_reply_and_error_frame() -> None:
    FakeBackend.script.append(LLMError("engine exploded", code="upstream_500"))
    communicator, _ = await _start()
    ack, frames = await _ask(communicator, "f1", "Hello?")
    assert frames[-1]["status"] == "failed"
    error = await receive(communicator)
    assert error["type"] == "error" and error["code"] == "reply_failed"
    assert error["message_id"] == ack["reply_id"]
    stored = await Message.objects.aget(pk=ack["reply_id"])
    assert stored.status == Message.Status.FAILED and stored.error_code == "upstream_500"
    await communicator.disconnect()


async def test_feedback_is_saved() -> None:
    communicator, _ = await _start()
    ack, _ = await _ask(communicator, "fb", "Thanks")
    await send(
        communicator,
        {
            "type": "feedback",
            "message_id": ack["reply_id"],
            "rating": "down",
            "comment": "Too short",
        },
    )
    assert await receive(communicator) == {"type": "feedback_saved", "message_id": ack["reply_id"]}
    feedback = await Feedback.objects.aget(message_id=ack["reply_id"])
    assert (feedback.rating, feedback.comment) == ("down", "Too short")
    await send(communicator, {"type": "feedback", "message_id": ack["message_id"], "rating": "up"})
    assert (await receive(communicator))["code"] == "message_not_found"
    await communicator.disconnect()


async def test_second_socket_sees_messages_from_the_first() -> None:
    first, welcome = await _start()
    ack, _ = await _ask(first, "tab-a", "From tab A")
    second = await connect()
    await hello(
        second,
        token=welcome["token"],
        conversation_id=ack["conversation_id"],
        last_seen_id=ack["reply_id"],
    )
    await send(first, {"type": "message", "client_id": "tab-a-2", "text": "Again from A"})
    frames = await receive_until(second, "done")
    shown = [f["message"] for f in frames if f["type"] == "message"]
    assert [m["role"] for m in shown] == ["user", "assistant"]
    assert shown[0]["text"] == "Again from A"
    assert text_of(frames, shown[1]["id"]).startswith("You asked: «Again from A»")
    await first.disconnect()
    await second.disconnect()


# --- Bad input: each gets an error frame with a stable code, and the socket stays usable ----
BAD_FRAMES = [
    ("{not json", "invalid_json"),
    ("[1, 2]", "invalid_frame"),
    (json.dumps({"type": "dance"}), "unknown_type"),
    (json.dumps({"no": "type"}), "unknown_type"),
    (json.dumps({"type": "message", "client_id": "bad id!", "text": "hi"}), "invalid_frame"),
    (json.dumps({"type": "message", "client_id": "e1", "text": "   "}), "message_empty"),
    (json.dumps({"type": "message", "client_id": "e2", "text": "x" * 4001}), "message_too_long"),
    ('{"type": "message", "client_id": "e3", "text": "bad \\ud800 surrogate"}', "invalid_text"),
    (json.dumps({"type": "message", "client_id": "e4", "text": "nul\u0000byte"}), "invalid_text"),
    (json.dumps({"type": "message", "client_id": "e5", "text": "x" * 20000}), "frame_too_large"),
    (json.dumps({"type": "feedback", "message_id": 1, "rating": "meh"}), "invalid_frame"),
    ("[" * 50000, "frame_too_large"),
]


@pytest.mark.parametrize(("raw", "code"), BAD_FRAMES)
async def test_bad_frame_gets_error_and_socket_stays_usable(raw: str, code: str) -> None:
    communicator, _ = await _start()
    await communicator.send_to(text_data=raw)
    frame = await receive(communicator)
    assert frame["type"] == "error" and frame["code"] == code, frame
    assert frame["message"]
    await send(communicator, {"type": "ping"})
    assert await receive(communicator) == {"type": "pong"}
    assert await Message.objects.acount() == 0
    await communicator.disconnect()


async def test_binary_frame_is_refused() -> None:
    communicator, _ = await _start()
    await communicator.send_to(bytes_data=b"\x00\x01")
    assert (await receive(communicator))["code"] == "invalid_frame"
    await communicator.disconnect()


async def test_message_before_hello_is_refused() -> None:
    communicator = await connect()
    await send(communicator, {"type": "message", "client_id": "early", "text": "hi"})
    frame = await receive(communicator)
    assert frame["code"] == "hello_required" and frame["client_id"] == "early"
    await communicator.disconnect()


async def test_forged_token_and_foreign_conversation_are_refused() -> None:
    communicator = await connect()
    await send(communicator, {"type": "hello", "token": "forged:token:value"})
    assert (await receive(communicator))["code"] == "invalid_token"
    owner, _ = await _start()
    ack, _ = await _ask(owner, "mine", "private question")
    await send(communicator, {"type": "hello", "conversation_id": ack["conversation_id"]})
    assert (await receive(communicator))["code"] == "conversation_not_found"
    await send(communicator, {"type": "hello", "conversation_id": "not-a-uuid"})
    assert (await receive(communicator))["code"] == "conversation_not_found"
    await communicator.disconnect()
    await owner.disconnect()


async def test_messages_faster_than_rate_limit_are_refused(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CHAT_RATE_LIMIT_MESSAGES = 3
    communicator, _ = await _start()
    codes = []
    for index in range(5):
        await send(communicator, {"type": "message", "client_id": f"q{index}", "text": "quick"})
        while True:
            frame = await receive(communicator)
            if frame["type"] in {"ack", "error"}:
                codes.append(frame.get("code", "ack"))
                break
    assert codes == ["ack", "ack", "ack", "rate_limited", "rate_limited"]
    assert await Message.objects.filter(role="user").acount() == 3
    await send(communicator, {"type": "ping"})
    while (await receive(communicator))["type"] != "pong":
        pass
    await asyncio.sleep(0.5)  # let the queued replies finish before the database is flushed
    await communicator.disconnect()


async def test_error_frame_uses_conversation_language() -> None:
    communicator = await connect(accept_language="de-DE,de;q=0.9")
    await send(communicator, {"type": "message", "client_id": "x", "text": "hi"})
    frame = await receive(communicator)
    assert frame["code"] == "hello_required"
    welcome = await hello(communicator)
    assert welcome["language"] == "de"
    await communicator.disconnect()


async def test_reply_carries_citations_of_the_knowledge_it_was_given(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from chat import prompts, services

    snippets = [
        prompts.KnowledgeSnippet(
            title="Resetting your password",
            url="https://h.example/reset",
            text="Open Settings, then Security.",
        ),
        prompts.KnowledgeSnippet(
            title="Resetting your password",
            url="https://h.example/reset",
            text="The link is valid for 30 minutes.",
        ),
        prompts.KnowledgeSnippet(
            title="Two-factor sign-in",
            url="https://h.example/2fa",
            text="Use an authenticator app.",
        ),
    ]
    monkeypatch.setattr(services, "_knowledge_search", lambda **_: snippets)
    communicator, welcome = await _start()
    ack, frames = await _ask(communicator, "cite", "How do I reset my password?")
    expected = [
        {"title": "Resetting your password", "url": "https://h.example/reset"},
        {"title": "Two-factor sign-in", "url": "https://h.example/2fa"},
    ]
    assert frames[-1]["citations"] == expected
    await send(communicator, {"type": "feedback", "message_id": ack["reply_id"], "rating": "up"})
    await receive(communicator)
    again = await connect()
    resumed = await hello(again, token=welcome["token"], conversation_id=ack["conversation_id"])
    [reply] = [m for m in resumed["messages"] if m["id"] == ack["reply_id"]]
    assert reply["citations"] == expected and reply["feedback"] == "up"
    await communicator.disconnect()
    await again.disconnect()


IDENTITY_SECRET = "host-site-secret-for-tests-0123456789abcdef"  # noqa: S105 - test value


def _identity_jwt(sub: str = "user-42", lifetime: int = 300, **claims: object) -> str:
    import time

    import jwt

    now = int(time.time())
    payload = {"sub": sub, "iat": now, "exp": now + lifetime, "aud": "autoglm-widget", **claims}
    return jwt.encode(payload, IDENTITY_SECRET, algorithm="HS256")


@pytest.fixture
def identity_secret(settings):  # type: ignore[no-untyped-def]
    settings.CHAT_IDENTITY_SECRET = IDENTITY_SECRET
    settings.CHAT_IDENTITY_AUDIENCE = "autoglm-widget"
    settings.CHAT_IDENTITY_LEGACY_HMAC = False
    return settings


async def test_signed_identity_finds_the_users_conversations_on_another_device(
    identity_secret,  # type: ignore[no-untyped-def]
) -> None:
    identity = {"token": _identity_jwt(name="Lina")}
    laptop, _ = await _start(identity=identity)
    ack, _frames = await _ask(laptop, "from-laptop", "Hello from my laptop")
    phone = await connect()  # no token: another device
    welcome = await hello(phone, identity=identity, conversation_id=ack["conversation_id"])
    assert [m["text"] for m in welcome["messages"]][0] == "Hello from my laptop"
    visitor = await Visitor.objects.aget(external_id="user-42")
    assert (await Conversation.objects.aget(pk=ack["conversation_id"])).visitor_id == visitor.pk

    forger = await connect()
    forged = {"token": _identity_jwt()[:-4] + "AAAA"}
    await send(
        forger, {"type": "hello", "identity": forged, "conversation_id": ack["conversation_id"]}
    )
    assert (await receive(forger))["code"] == "invalid_identity"
    assert (await receive(forger))["code"] == "conversation_not_found"
    for communicator in (laptop, phone, forger):
        await communicator.disconnect()


async def test_signed_in_visitor_cannot_be_resumed_without_an_identity(identity_secret) -> None:  # type: ignore[no-untyped-def]
    laptop, welcome = await _start(identity={"token": _identity_jwt()})
    ack, _frames = await _ask(laptop, "mine", "My order number is 1234")
    await laptop.disconnect()
    # The next person at this computer: the same stored token and conversation, no identity.
    shared = await connect(accept_language="fr")
    resume = {"token": welcome["token"], "conversation_id": ack["conversation_id"]}
    await send(shared, {"type": "hello", "locale": "fr", **resume})
    frame = await receive(shared)
    assert frame["type"] == "error" and frame["code"] == "identity_required"
    assert frame["message"] == str(errors_identity_required_fr())
    # Nor with an expired identity: refused, then required.
    expired = {"token": _identity_jwt(lifetime=-120)}
    await send(shared, {"type": "hello", "locale": "fr", "identity": expired, **resume})
    assert (await receive(shared))["code"] == "invalid_identity"
    assert (await receive(shared))["code"] == "identity_required"
    # Starting fresh (no token) works, as a new anonymous visitor.
    fresh = await hello(shared, locale="fr")
    assert fresh["conversation_id"] is None and fresh["token"] != welcome["token"]
    await shared.disconnect()


def errors_identity_required_fr() -> str:
    from django.utils import translation

    from chat import errors

    with translation.override("fr"):
        return errors.IdentityRequired().render()


@pytest.mark.parametrize(
    "identity",
    [
        {"id": "user-42", "signature": "é" * 64},  # non-ASCII: compare_digest used to raise
        {"id": "user-42", "signature": "a" * 5000},
        {"token": "x" * 12_000},
        {"token": "ü.ü.ü"},
        {"id": "", "signature": ""},
    ],
)
async def test_bad_identity_gets_invalid_identity_and_the_hello_goes_on(
    identity_secret,
    identity: dict[str, str],  # type: ignore[no-untyped-def]
) -> None:
    identity_secret.CHAT_IDENTITY_LEGACY_HMAC = True
    communicator = await connect()
    await send(communicator, {"type": "hello", "identity": identity})
    assert (await receive(communicator))["code"] == "invalid_identity"
    assert (await receive(communicator))["type"] == "welcome"
    await communicator.disconnect()


async def test_prompt_asks_for_the_visitors_language_and_stays_a_prefix(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from chat import services
    from chat.models import GlossaryTerm

    await GlossaryTerm.objects.acreate(language="en", term="Northwind Drive", do_not_translate=True)
    monkeypatch.setattr(services, "_knowledge_search", lambda **_: [])
    communicator, _ = await _start()
    await _ask(communicator, "l1", "¿Cómo puedo restablecer mi contraseña de la cuenta?")
    first = FakeBackend.requests[-1].messages
    assert "Northwind Drive" in first[0].content  # the conversation language's glossary
    assert "[Reply in Spanish.]" in first[-1].content
    assert "No knowledge-base excerpt matched" in first[-1].content
    await _ask(communicator, "l2", "And how long is the reset link valid for, please?")
    second = FakeBackend.requests[-1].messages
    assert "[Reply in English.]" in second[-1].content
    # Turn 2's prompt begins with turn 1's prompt and its reply, byte for byte.
    assert list(second[: len(first)]) == list(first)
    assert second[len(first)].role == "assistant"
    await communicator.disconnect()


async def test_done_dropped_by_a_full_channel_layer_is_sent_from_the_database(
    settings, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from channels.layers import get_channel_layer

    settings.CHAT_REPLY_LEASE_SECONDS = 2
    layer = get_channel_layer()
    real_group_send = layer.group_send

    async def lossy_group_send(group: str, message: dict) -> None:  # type: ignore[type-arg]
        if message["type"] != "chat.done":  # the layer drops it, as a full channel does
            await real_group_send(group, message)

    monkeypatch.setattr(layer, "group_send", lossy_group_send)
    communicator, _ = await _start()
    ack, frames = await _ask(communicator, "drop", "Is anybody there?")
    done = frames[-1]
    assert done["message_id"] == ack["reply_id"] and done["status"] == "complete"
    assert text_of(frames, ack["reply_id"]) == reply_for(FakeBackend.requests[-1])
    await communicator.disconnect()
