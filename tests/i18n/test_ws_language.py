"""WebSocket language negotiation: hello locale > Accept-Language > default; errors in it."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings

from chat.models import Conversation
from tests.chat.wsclient import connect, hello, receive, receive_until, send
from tests.i18n.conftest import assert_arabic, catalogue_translation

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("locale", "accept_language", "expected"),
    [
        ("fr", "de", "fr"),  # the widget's setting (data-locale or the visitor's pick) wins
        ("zh-CN", "en", "zh-hans"),
        ("zh-SG", "en", "zh-hans"),
        ("zh-TW", "en", "zh-hant"),
        ("zh-HK", "en", "zh-hant"),
        ("pt", "en", "pt-br"),
        ("pt-PT", "en", "pt-br"),
        ("es-MX", "en", "es"),
        ("ar", "en", "ar"),
        ("xx", "ja", "ja"),  # unsupported locale: Accept-Language decides
        (None, "fr;q=0.2, ko;q=0.9, de;q=0.5", "ko"),  # quality values
        (None, "zh-TW,zh;q=0.8", "zh-hant"),
        (None, "xx-YY", "en"),  # nothing supported: the default
        (None, "", "en"),
    ],
)
async def test_hello_negotiates_the_language(
    locale: str | None, accept_language: str, expected: str
) -> None:
    communicator = await connect(accept_language=accept_language)
    fields = {"locale": locale} if locale is not None else {}
    welcome = await hello(communicator, **fields)
    assert welcome["language"] == expected
    await communicator.disconnect()


async def test_the_conversation_stores_its_language() -> None:
    communicator = await connect(accept_language="en")
    await hello(communicator, locale="he-IL")
    await send(communicator, {"type": "message", "client_id": "m1", "text": "שלום"})
    frames = await receive_until(communicator, "done")
    ack = next(frame for frame in frames if frame["type"] == "ack")
    conversation = await Conversation.objects.aget(pk=ack["conversation_id"])
    assert conversation.language == "he"
    await communicator.disconnect()


async def test_error_frame_is_in_arabic_for_an_arabic_conversation(
    compiled_catalogues: None, settings: Any
) -> None:
    settings.CHAT_MAX_MESSAGE_CHARS = 50
    # An Arabic conversation, started by a visitor whose widget is set to Arabic.
    first = await connect(accept_language="en-US,en;q=0.9")
    welcome = await hello(first, locale="ar")
    await send(first, {"type": "message", "client_id": "m1", "text": "مرحبا"})
    frames = await receive_until(first, "done")
    conversation_id = next(frame for frame in frames if frame["type"] == "ack")["conversation_id"]
    await first.disconnect()

    # The visitor comes back from an English browser: the conversation keeps its language.
    second = await connect(accept_language="en-US,en;q=0.9")
    resumed = await hello(second, token=welcome["token"], conversation_id=conversation_id)
    assert resumed["language"] == "ar"
    await send(second, {"type": "message", "client_id": "m2", "text": "x" * 51})
    error = await receive(second)
    assert error["type"] == "error" and error["code"] == "message_too_long"
    expected = catalogue_translation(
        "ar", "Your message is too long: at most %(limit)d characters are allowed."
    ) % {"limit": 50}
    assert error["message"] == expected
    assert_arabic(error["message"])
    await send(second, {"type": "message", "client_id": "m3", "text": "   "})
    empty = await receive(second)
    assert empty["code"] == "message_empty"
    assert empty["message"] == catalogue_translation("ar", "Please type a message before sending.")
    await second.disconnect()


async def test_error_before_hello_uses_the_handshake_accept_language(
    compiled_catalogues: None,
) -> None:
    communicator = await connect(accept_language="ru-RU,ru;q=0.9")
    await send(communicator, {"type": "message", "client_id": "x", "text": "hi"})
    frame = await receive(communicator)
    assert frame["code"] == "hello_required"
    assert frame["message"] == catalogue_translation(
        "ru", "Please reconnect to continue the conversation."
    )
    await communicator.disconnect()


def test_every_interface_language_is_offered() -> None:
    codes = [code for code, _name in settings.LANGUAGES]
    assert codes == [
        "en", "zh-hans", "zh-hant", "ja", "ko", "ar", "he", "es", "de", "fr", "pt-br", "ru",
    ]  # fmt: skip
