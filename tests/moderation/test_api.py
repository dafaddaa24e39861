"""Moderation on the OpenAI-compatible endpoint (the same rules as the chat socket), driven by
the official openai client against a live server on loopback."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from chat.llm.fake import FakeBackend
from chat.models import Message
from moderation.models import ModerationHit, ModerationRule
from moderation.services import safe_reply
from tests.api.keys import api_key

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "autoglm-assistant"
HEADER = "X-AutoGLM-Conversation"


@pytest.fixture
def client(live_server: Any) -> openai.OpenAI:
    _key, token = api_key("assistant")
    return openai.OpenAI(
        base_url=f"{live_server.url}/api/v1/openai", api_key=token, max_retries=0, timeout=30
    )


def test_a_blocked_reply_is_replaced_and_logged(client: openai.OpenAI) -> None:
    ModerationRule.objects.create(pattern="secret plan", applies_to="output", action="block")
    FakeBackend.script.append("Well, our secret plan is to win.")
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Plans?"}],
        extra_headers={HEADER: "new"},
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == safe_reply(language="en")
    assert completion.choices[0].finish_reason == "content_filter"
    reply = Message.objects.get(conversation_id=raw.headers[HEADER], role="assistant")
    assert reply.text == safe_reply(language="en")
    hit = ModerationHit.objects.get()
    assert (hit.direction, hit.action, hit.message_id) == ("output", "block", reply.pk)
    assert "secret plan" in hit.excerpt


def test_a_blocked_message_is_stored_and_refused(client: openai.OpenAI) -> None:
    ModerationRule.objects.create(pattern="idiot", applies_to="input", action="block")
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "You idiot"}],
            extra_headers={HEADER: "new"},
        )
    stored = Message.objects.get(role="user")
    assert stored.text == "You idiot" and not Message.objects.filter(role="assistant").exists()
    assert ModerationHit.objects.get().message_id == stored.pk
    assert FakeBackend.requests == []


def test_stateless_calls_mask_the_visitors_words_for_the_model(client: openai.OpenAI) -> None:
    ModerationRule.objects.create(pattern="darn", applies_to="input", action="mask")
    client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "my darn router"}]
    )
    assert FakeBackend.requests[-1].query == "my *** router"
