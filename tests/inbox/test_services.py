"""Handoff, agents' actions and messages, translations, CSAT and tickets: the services."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

import pytest
from django.core import mail

from chat import errors, selectors, services
from chat.models import Conversation, Feedback, Message, MessageTranslation, Visitor
from inbox import handoff
from inbox import services as inbox
from inbox.models import HandoffRule, Team
from tests.inbox.agents import agent_create

pytestmark = pytest.mark.django_db(transaction=True)


def _send(
    conversation: Conversation | None,
    text: str,
    client_id: str,
    *,
    visitor=None,
    language: str = "ar",
):  # type: ignore[no-untyped-def]
    visitor = visitor or (conversation.visitor if conversation else Visitor.objects.create())
    return services.message_send(
        visitor=visitor,
        conversation=conversation,
        language=language,
        client_id=client_id,
        text=text,
    )


def test_without_agents_the_bot_answers_even_a_request_for_a_person() -> None:
    result = _send(None, "أريد التحدث مع موظف", "c1")
    assert result.reply is not None and result.change is None
    assert result.conversation.mode == Conversation.Mode.BOT


def test_asking_for_a_person_in_words_hands_off_and_the_bot_stays_quiet() -> None:
    agent_create()
    result = _send(None, "أريد التحدث مع موظف", "c1")
    conversation = Conversation.objects.get(pk=result.conversation.pk)
    assert result.reply is None
    assert conversation.mode == Conversation.Mode.WAITING
    assert conversation.handoff_reason == Conversation.HandoffReason.VISITOR_REQUEST
    system = result.change.messages[0]
    assert system.role == Message.Role.SYSTEM
    assert "دقيقة" in system.text or "min" in system.text  # the wait, in the visitor's language
    # Later messages are stored for the agents, with no bot reply.
    later = _send(conversation, "هل أنت هنا؟", "c2")
    assert later.reply is None
    assert not Message.objects.filter(conversation=conversation, role="assistant").exists()


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("I want to talk to a human", "en"),
        ("转人工", "zh-hans"),
        ("Ich möchte mit einem Menschen sprechen", "de"),
        ("オペレーターと話したい", "ja"),
        ("quiero hablar con un agente", "es"),
    ],
)
def test_a_request_for_a_person_is_understood_in_many_languages(text: str, language: str) -> None:
    assert handoff.asks_for_person(text=text, language=language)


def test_a_long_question_that_mentions_an_agent_is_a_question() -> None:
    text = "How do I set up the agent on my server so that it syncs the files every night?"
    assert not handoff.asks_for_person(text=text, language="en")
    assert not handoff.asks_for_person(text="How do I reset my password?", language="en")


def test_a_thumbs_down_then_another_message_hands_off() -> None:
    agent_create()
    first = _send(None, "How do I reset my password?", "c1", language="en")
    Message.objects.filter(pk=first.reply.pk).update(status="complete", text="Try this.")
    Feedback.objects.create(message=first.reply, rating="down")
    second = _send(first.conversation, "That did not work", "c2", language="en")
    assert second.reply is None
    conversation = Conversation.objects.get(pk=first.conversation.pk)
    assert conversation.handoff_reason == Conversation.HandoffReason.THUMBS_DOWN


def test_an_admin_keyword_rule_hands_off_in_its_language_only() -> None:
    agent_create()
    HandoffRule.objects.create(language="fr", keywords="remboursement\nlitige")
    other = _send(None, "remboursement", "c0", language="de")
    assert other.reply is not None
    result = _send(None, "Je veux un REMBOURSEMENT", "c1", language="fr")
    conversation = Conversation.objects.get(pk=result.conversation.pk)
    assert conversation.handoff_reason == Conversation.HandoffReason.RULE
    assert conversation.handoff_detail == "remboursement"


def test_nobody_online_offers_an_email_and_the_ticket_is_answered_by_email() -> None:
    agent = agent_create(online=False)
    result = _send(None, "أريد التحدث مع موظف", "c1")
    assert "e-mail" in result.change.messages[0].text or "البريد" in result.change.messages[0].text
    conversation = Conversation.objects.get(pk=result.conversation.pk)
    with pytest.raises(errors.InvalidEmail):
        inbox.visitor_email_leave(conversation=conversation, email="not an address")
    inbox.visitor_email_leave(conversation=conversation, email="salma@example.com")
    conversation.refresh_from_db()
    assert conversation.is_ticket
    change = inbox.agent_message_send(
        conversation_id=conversation.pk, agent=agent, client_id="a1", text="Hallo, wir helfen."
    )
    # The translation is pending: the e-mail waits for it (the in-process runner retries),
    # then goes out with the original below. Here: store the translation, run the task.
    translation = change.translations[0]
    inbox.translation_store(translation_id=translation.pk, text="مرحبا، سنساعدك.", failed=False)
    from inbox.tasks import ticket_reply_email

    ticket_reply_email.apply(kwargs={"message_id": change.message.pk}, throw=True)
    sent = [m for m in mail.outbox if "salma@example.com" in m.to]
    assert sent and "مرحبا، سنساعدك." in sent[-1].body and "Hallo, wir helfen." in sent[-1].body


def test_claim_stops_the_bot_and_tells_the_visitor_who_joined() -> None:
    agent = agent_create()
    result = _send(None, "How do I reset my password?", "c1", language="en")
    change = inbox.conversation_claim(conversation_id=result.conversation.pk, agent=agent)
    conversation = change.conversation
    assert conversation.mode == Conversation.Mode.AGENT and conversation.assignee == agent.user
    assert conversation.handoff_reason == Conversation.HandoffReason.AGENT
    assert change.cancelled_replies == [result.reply.pk]
    assert "Anna" in change.messages[0].text
    assert _send(conversation, "thanks", "c2", language="en").reply is None


def test_agent_message_is_idempotent_and_its_translation_is_stored_beside_it() -> None:
    agent = agent_create()
    result = _send(None, "مرحبا", "c1")
    first = inbox.agent_message_send(
        conversation_id=result.conversation.pk, agent=agent, client_id="a1", text="Guten Tag!"
    )
    again = inbox.agent_message_send(
        conversation_id=result.conversation.pk, agent=agent, client_id="a1", text="Guten Tag!"
    )
    assert first.created and not again.created and again.message.pk == first.message.pk
    assert Message.objects.filter(role="agent").count() == 1
    row = MessageTranslation.objects.get(message=first.message)
    assert row.language == "ar" and row.status == "pending"
    inbox.translation_store(translation_id=row.pk, text="مساء الخير!", failed=False)
    stored = Message.objects.get(pk=first.message.pk)
    assert stored.text == "Guten Tag!"  # the original is never replaced
    payload = selectors.history_since(conversation=result.conversation, last_seen_id=None)[-1]
    assert payload["translation"] == {"language": "ar", "status": "done", "text": "مساء الخير!"}
    assert payload["author_name"] == "Anna"


def test_a_bilingual_agent_switches_translation_off() -> None:
    agent = agent_create()
    result = _send(None, "مرحبا", "c1")
    inbox.conversation_translation_set(conversation_id=result.conversation.pk, enabled=False)
    change = inbox.agent_message_send(
        conversation_id=result.conversation.pk, agent=agent, client_id="a1", text="مرحبا بك"
    )
    assert change.translations == []


def test_private_notes_never_reach_the_visitor() -> None:
    agent = agent_create()
    result = _send(None, "مرحبا", "c1")
    inbox.agent_message_send(
        conversation_id=result.conversation.pk,
        agent=agent,
        client_id="n1",
        text="VIP customer, be nice",
        note=True,
    )
    history = selectors.history_since(conversation=result.conversation, last_seen_id=None)
    assert all("VIP" not in m["text"] for m in history)
    assert Message.objects.filter(role="note").count() == 1


def test_resolve_asks_for_csat_and_the_rating_names_the_agent() -> None:
    agent = agent_create()
    result = _send(None, "مرحبا", "c1")
    inbox.conversation_claim(conversation_id=result.conversation.pk, agent=agent)
    inbox.conversation_resolve(conversation_id=result.conversation.pk, by=agent)
    conversation = Conversation.objects.get(pk=result.conversation.pk)
    assert conversation.status == "closed" and conversation.csat_requested
    csat = inbox.csat_save(conversation=conversation, rating=5, comment="شكرا")
    assert csat.agent == agent.user and csat.rating == 5
    with pytest.raises(errors.InvalidFrame):
        inbox.csat_save(conversation=conversation, rating=9)


def test_hand_back_lets_the_bot_answer_again() -> None:
    agent = agent_create()
    result = _send(None, "مرحبا", "c1")
    inbox.conversation_claim(conversation_id=result.conversation.pk, agent=agent)
    inbox.conversation_hand_back(conversation_id=result.conversation.pk, by=agent)
    conversation = Conversation.objects.get(pk=result.conversation.pk)
    assert conversation.mode == Conversation.Mode.BOT
    assert _send(conversation, "سؤال آخر", "c2").reply is not None


def test_a_visitor_message_to_a_resolved_conversation_reopens_it() -> None:
    agent = agent_create()
    result = _send(None, "مرحبا", "c1")
    inbox.conversation_claim(conversation_id=result.conversation.pk, agent=agent)
    inbox.conversation_resolve(conversation_id=result.conversation.pk, by=agent)
    again = _send(Conversation.objects.get(pk=result.conversation.pk), "عندي سؤال", "c2")
    conversation = Conversation.objects.get(pk=result.conversation.pk)
    assert conversation.status == "open" and conversation.reopened_at is not None
    assert again.reply is None  # the agent still owns it


def test_business_hours_in_the_team_time_zone_and_holidays() -> None:
    team = Team.objects.create(
        name="Riyadh",
        time_zone="Asia/Riyadh",
        opening_hours={"0": [["09:00", "17:00"]]},
        holidays=["2026-12-07"],
    )
    zone = ZoneInfo("Asia/Riyadh")
    monday_10 = datetime.datetime(2026, 11, 30, 10, 0, tzinfo=zone)
    monday_18 = datetime.datetime(2026, 11, 30, 18, 0, tzinfo=zone)
    holiday_10 = datetime.datetime(2026, 12, 7, 10, 0, tzinfo=zone)
    tuesday_10 = datetime.datetime(2026, 12, 1, 10, 0, tzinfo=zone)
    assert handoff.team_is_open(team=team, at=monday_10)
    assert handoff.team_is_open(team=team, at=monday_10.astimezone(datetime.UTC))
    assert not handoff.team_is_open(team=team, at=monday_18)
    assert not handoff.team_is_open(team=team, at=holiday_10)
    assert not handoff.team_is_open(team=team, at=tuesday_10)


def test_conversations_go_to_the_team_of_their_language() -> None:
    general = Team.objects.create(name="General")
    arabic = Team.objects.create(name="Arabic", languages=["ar"])
    assert handoff.team_for(language="ar") == arabic
    assert handoff.team_for(language="fr") == general


def test_expected_wait_grows_with_the_queue() -> None:
    agent_create()
    empty = handoff.availability(team=None)
    for n in range(4):
        _send(None, "أريد التحدث مع موظف", f"w{n}")
    busy = handoff.availability(team=None)
    assert empty.open and busy.open and busy.wait_minutes > empty.wait_minutes


def test_transcript_by_email_once_per_five_minutes() -> None:
    result = _send(None, "مرحبا", "c1")
    inbox.transcript_request(conversation=result.conversation, email="salma@example.com")
    with pytest.raises(errors.TranscriptLimited):
        inbox.transcript_request(conversation=result.conversation, email="salma@example.com")
    with pytest.raises(errors.InvalidEmail):
        inbox.transcript_request(conversation=result.conversation, email="x")


def test_a_bare_noun_asks_for_a_person_only_in_a_very_short_message() -> None:
    assert handoff.asks_for_person(text="agent please", language="en")
    assert handoff.asks_for_person(text="Agente", language="es")
    assert not handoff.asks_for_person(text="Which agent version do I need?", language="en")


def test_the_list_preview_is_the_visitor_text_with_its_translation_not_an_event() -> None:
    from inbox import selectors as inbox_selectors

    agent = agent_create()
    result = _send(None, "أريد التحدث مع موظف", "c1")
    [row] = inbox.translations_for_agent(
        conversation=result.conversation, agent=agent, messages=[result.message]
    )
    inbox.translation_store(
        translation_id=row.pk, text="Ich möchte einen Mitarbeiter", failed=False
    )
    listed = inbox_selectors.conversations_list(agent=agent, queue="waiting")
    [item] = listed["conversations"]
    assert item["last_message"]["role"] == "user"  # not the "a person will join" event
    assert item["last_message"]["translation"] == "Ich möchte einen Mitarbeiter"
    assert listed["counts"]["waiting"] == 1


def test_reopening_after_a_gap_resends_what_changed_before_last_seen() -> None:
    from inbox import selectors as inbox_selectors

    agent = agent_create()
    result = _send(None, "أريد التحدث مع موظف", "c1")
    later = _send(result.conversation, "مرحبا؟", "c2")
    [row] = inbox.translations_for_agent(
        conversation=result.conversation, agent=agent, messages=[result.message]
    )
    inbox.translation_store(translation_id=row.pk, text="Übersetzt", failed=False)
    opened = inbox_selectors.conversation_for_agent(
        conversation_id=result.conversation.pk, agent=agent, last_seen_id=later.message.pk
    )
    first = next(m for m in opened.messages if m["id"] == result.message.pk)
    assert first["translation"]["text"] == "Übersetzt"


def test_a_ticket_reply_waits_for_its_translation_without_a_broker() -> None:
    import threading

    agent = agent_create(online=False)
    result = _send(None, "أريد التحدث مع موظف", "c1")
    inbox.visitor_email_leave(conversation=result.conversation, email="salma@example.com")
    change = inbox.agent_message_send(
        conversation_id=result.conversation.pk, agent=agent, client_id="a1", text="Hallo!"
    )
    from inbox.tasks import ticket_reply_email

    translation_id = change.translations[0].pk
    timer = threading.Timer(
        3,
        lambda: inbox.translation_store(translation_id=translation_id, text="مرحبا!", failed=False),
    )
    timer.start()
    ticket_reply_email.apply(kwargs={"message_id": change.message.pk}, throw=True)
    timer.join()
    body = [m for m in mail.outbox if "salma@example.com" in m.to][-1].body
    assert body.startswith("مرحبا!") and "Hallo!" in body
