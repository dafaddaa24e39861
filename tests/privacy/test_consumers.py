"""Personal data through the chat socket: the model sees placeholders, the visitor the originals."""

from __future__ import annotations

import pytest

from chat.llm.fake import FakeBackend
from chat.models import Message
from tests.chat.wsclient import connect, hello, receive_until, send, text_of

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL = "lina.k@example.com"
CARD = "4111 1111 1111 1111"


async def _ask(communicator, client_id: str, text: str):  # type: ignore[no-untyped-def]
    await send(communicator, {"type": "message", "client_id": client_id, "text": text})
    frames = await receive_until(communicator, "done")
    ack = next(f for f in frames if f["type"] == "ack")
    return ack, frames


def _everything_sent(request) -> str:  # type: ignore[no-untyped-def]
    return "\n".join([request.query, *(turn.content for turn in request.messages)])


async def test_the_model_never_sees_email_or_card_and_the_visitor_sees_them_back() -> None:
    communicator = await connect()
    await hello(communicator, locale="en")
    question = f"My email is {EMAIL} and my card {CARD}, was I charged twice?"
    ack, frames = await _ask(communicator, "p1", question)
    [request] = FakeBackend.requests
    sent = _everything_sent(request)
    assert EMAIL not in sent and CARD not in sent and "4111" not in sent
    assert "My email is [EMAIL_1] and my card [CARD_1], was I charged twice?" in sent
    # The fake echoes the (masked) question: the reply shown and stored has the originals.
    shown = text_of(frames, ack["reply_id"])
    assert f"«{question}»" in shown and "[EMAIL_1]" not in shown
    reply = await Message.objects.aget(pk=ack["reply_id"])
    assert reply.text == shown
    stored = await Message.objects.aget(pk=ack["message_id"])
    assert stored.text == question

    # Next turn: the history (question and the reply holding the originals) is masked the
    # same way, so the earlier prompt is an exact prefix of the new one.
    _, second = await _ask(communicator, "p2", f"Please write to {EMAIL} again.")
    first_request, second_request = FakeBackend.requests
    assert EMAIL not in _everything_sent(second_request)
    assert second_request.messages[: len(first_request.messages)] == first_request.messages
    assert second_request.query == "Please write to [EMAIL_1] again."
    await communicator.disconnect()


async def test_masking_can_be_switched_off(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PRIVACY_MASK_PII = False
    communicator = await connect()
    await hello(communicator, locale="en")
    await _ask(communicator, "p1", f"My email is {EMAIL}.")
    assert EMAIL in _everything_sent(FakeBackend.requests[0])
    await communicator.disconnect()
