"""Moderation through the chat socket: a blocked message is stored but not answered, a blocked
reply is replaced as it streams, masks, the hit log, the model's own content filter."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chat import errors
from chat.llm import _backend_for
from chat.llm.fake import FakeBackend, reply_for
from chat.models import Message
from moderation.models import ModerationHit, ModerationRule
from moderation.services import safe_reply
from tests.chat.llm.conftest import delta, scripted_server, sse
from tests.chat.wsclient import connect, hello, receive, receive_until, send

pytestmark = pytest.mark.django_db(transaction=True)


def _shown(frames: list[dict[str, Any]], message_id: int) -> str:
    """The reply as the widget shows it: each delta replaces the text from its offset on."""
    text = ""
    for frame in frames:
        if frame["type"] == "delta" and frame["message_id"] == message_id:
            assert frame["offset"] <= len(text), (frame, text)
            text = text[: frame["offset"]] + frame["text"]
    return text


async def _rule(**fields: Any) -> ModerationRule:
    fields.setdefault("kind", ModerationRule.Kind.WORDS)
    return await ModerationRule.objects.acreate(**fields)


async def test_blocked_message_is_stored_not_answered_and_told_in_the_visitors_language() -> None:
    communicator = await connect(accept_language="de-DE,de;q=0.9")
    await hello(communicator, locale="de")
    await send(communicator, {"type": "message", "client_id": "m0", "text": "Hallo"})
    await receive_until(communicator, "done")  # the rules of "de" are now in the memo (none)
    await _rule(language="de", pattern="Idiot\nDummkopf", applies_to="input", action="block")

    await send(communicator, {"type": "message", "client_id": "m1", "text": "Du IDIOT, hilf mir!"})
    ack = await receive(communicator)
    assert ack["type"] == "ack" and ack["reply_id"] is None
    error = await receive(communicator)
    expected = errors.error_frame(errors.MessageBlocked(), language="de")["message"]
    assert error == {
        "type": "error",
        "code": "message_blocked",
        "message": expected,
        "message_id": ack["message_id"],
    }
    stored = await Message.objects.aget(pk=ack["message_id"])
    assert stored.text == "Du IDIOT, hilf mir!"  # nothing a visitor said is lost
    assert not await Message.objects.filter(reply_to=stored).aexists()
    hit = await ModerationHit.objects.select_related("rule").aget()
    assert (hit.direction, hit.action, hit.language, hit.message_id) == (
        "input",
        "block",
        "de",
        stored.pk,
    )
    assert "IDIOT" in hit.excerpt and not hit.reviewed
    asked = len(FakeBackend.requests)
    # A retry (the ack was lost) is acknowledged as a duplicate and told again.
    await send(communicator, {"type": "message", "client_id": "m1", "text": "Du IDIOT, hilf mir!"})
    again = await receive(communicator)
    assert again["duplicate"] is True and again["message_id"] == ack["message_id"]
    assert (await receive(communicator))["code"] == "message_blocked"
    assert await ModerationHit.objects.acount() == 1

    # The next message is answered; the blocked one never reaches the model.
    await send(communicator, {"type": "message", "client_id": "m2", "text": "Wo ist mein Paket?"})
    await receive_until(communicator, "done")
    assert len(FakeBackend.requests) == asked + 1
    prompt = json.dumps([t.content for t in FakeBackend.requests[-1].messages], ensure_ascii=False)
    assert "IDIOT" not in prompt and "Wo ist mein Paket?" in prompt
    await communicator.disconnect()


async def test_masked_input_reaches_the_model_masked_and_is_stored_whole() -> None:
    await _rule(pattern="darn", applies_to="input", action="mask")
    communicator = await connect()
    await hello(communicator, locale="en")
    await send(communicator, {"type": "message", "client_id": "m1", "text": "My darn router"})
    frames = await receive_until(communicator, "done")
    ack = frames[0]
    assert ack["type"] == "ack" and ack["reply_id"]
    request = FakeBackend.requests[-1]
    assert request.query == "My *** router"
    assert request.messages[-1].content.startswith("My *** router")
    assert (await Message.objects.aget(pk=ack["message_id"])).text == "My darn router"
    hit = await ModerationHit.objects.aget()
    assert (hit.direction, hit.action, hit.message_id) == ("input", "mask", ack["message_id"])
    await communicator.disconnect()


async def test_blocked_reply_is_replaced_as_it_streams_and_stored_replaced() -> None:
    await _rule(pattern="secret plan", applies_to="output", action="block")
    original = "Sure. Before I answer, let me tell you that our secret plan is to win."
    FakeBackend.script.append(original)
    communicator = await connect()
    first = await hello(communicator, locale="en")
    await send(communicator, {"type": "message", "client_id": "m1", "text": "Any plans?"})
    frames = await receive_until(communicator, "done")
    reply_id = frames[0]["reply_id"]
    streamed = "".join(f["text"] for f in frames if f["type"] == "delta")
    assert "secret" not in streamed  # held back, never shown
    assert _shown(frames, reply_id) == safe_reply(language="en")
    assert frames[-1]["status"] == "complete" and frames[-1]["finish_reason"] == "content_filter"
    stored = await Message.objects.aget(pk=reply_id)
    assert stored.text == safe_reply(language="en")
    hit = await ModerationHit.objects.aget()
    assert (hit.direction, hit.action, hit.message_id, hit.source) == (
        "output",
        "block",
        reply_id,
        "rule",
    )
    assert "secret plan" in hit.excerpt  # the original is kept only here
    # A socket that comes back later gets the replacement too.
    again = await connect()
    welcome = await hello(
        again, locale="en", token=first["token"], conversation_id=frames[0]["conversation_id"]
    )
    [shown_again] = [m for m in welcome["messages"] if m["id"] == reply_id]
    assert shown_again["text"] == safe_reply(language="en")
    await again.disconnect()
    await communicator.disconnect()


async def test_masked_reply_streams_with_stars() -> None:
    await _rule(language="en", pattern="darn", applies_to="both", action="mask")
    FakeBackend.script.append("That is a darn good question, and darnation is a word.")
    communicator = await connect()
    await hello(communicator, locale="en")
    await send(communicator, {"type": "message", "client_id": "m1", "text": "Hello"})
    frames = await receive_until(communicator, "done")
    reply_id = frames[0]["reply_id"]
    expected = "That is a *** good question, and darnation is a word."
    assert _shown(frames, reply_id) == expected
    assert (await Message.objects.aget(pk=reply_id)).text == expected
    hit = await ModerationHit.objects.aget()
    assert (hit.direction, hit.action) == ("output", "mask") and "darn good" in hit.excerpt
    await communicator.disconnect()


async def test_rules_of_other_languages_and_inactive_rules_change_nothing() -> None:
    await _rule(language="de", pattern="question", action="block")
    await _rule(pattern="question", action="block", active=False)
    communicator = await connect()
    await hello(communicator, locale="en")
    await send(communicator, {"type": "message", "client_id": "m1", "text": "A question"})
    frames = await receive_until(communicator, "done")
    reply_id = frames[0]["reply_id"]
    expected = reply_for(FakeBackend.requests[-1])
    assert "question" in expected
    assert _shown(frames, reply_id) == expected
    assert frames[-1]["finish_reason"] == "stop"
    assert await ModerationHit.objects.acount() == 0
    await communicator.disconnect()


@pytest.mark.parametrize(
    "lines",
    [
        [
            delta("I"),
            'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter"}]}',
            "data: [DONE]",
        ],
        [
            'data: {"choices": [{"index": 0, "delta": {"refusal": "I will not."}, '
            '"finish_reason": null}]}',
            'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}',
            "data: [DONE]",
        ],
    ],
    ids=["content_filter", "refusal"],
)
async def test_models_own_content_filter_shows_the_safe_message(settings, lines: list[str]) -> None:  # type: ignore[no-untyped-def]
    async with scripted_server(sse(lines)) as server:
        settings.LLM_BACKEND = "chat.llm.openai_compat.OpenAICompatBackend"
        settings.LLM_OPENAI_BASE_URLS = [server.base_url]
        settings.LLM_OPENAI_MODEL = "m"
        _backend_for.cache_clear()
        try:
            communicator = await connect()
            await hello(communicator, locale="en")
            await send(communicator, {"type": "message", "client_id": "m1", "text": "Hi"})
            frames = await receive_until(communicator, "done")
            await communicator.disconnect()
        finally:
            _backend_for.cache_clear()
    reply_id = frames[0]["reply_id"]
    assert _shown(frames, reply_id) == safe_reply(language="en")
    assert frames[-1]["finish_reason"] == "content_filter"
    assert (await Message.objects.aget(pk=reply_id)).text == safe_reply(language="en")
    hit = await ModerationHit.objects.aget()
    assert (hit.source, hit.direction, hit.action, hit.rule_id) == (
        "model",
        "output",
        "block",
        None,
    )
