"""Outcome classes per conversation and the daily roll-ups, from conversations made through
the real chat and inbox services."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from analytics import selectors
from analytics import services as analytics
from analytics.models import (
    ConversationOutcome,
    DailyAgentStats,
    DailyLanguageStats,
    RollupState,
)
from chat import services
from chat.models import Conversation, Message, TurnKnowledge, Visitor
from inbox import services as inbox
from tests.inbox.agents import agent_create

pytestmark = pytest.mark.django_db

QUESTION = "How do I reset the password of my account?"
ANSWER = "Open the account settings, choose the password tab and follow the steps shown there."


@pytest.fixture(autouse=True)
def _no_window(settings: Any) -> None:
    settings.ANALYTICS_ASSUMED_WINDOW_HOURS = 0  # answered conversations are past the window


def _ask(
    conversation: Conversation | None,
    *,
    text: str = QUESTION,
    answer: str | None = ANSWER,
    language: str = "en",
    knowledge: bool = True,
    visitor: Visitor | None = None,
    n: list[int] = [0],  # noqa: B006 - a counter for unique client ids
) -> tuple[Conversation, Message | None]:
    """A visitor's message and, when ANSWER is given, the assistant's finished reply to it."""
    n[0] += 1
    result = services.message_send(
        visitor=visitor or (conversation.visitor if conversation else Visitor.objects.create()),
        conversation=conversation,
        language=language,
        client_id=f"c{n[0]}",
        text=text,
    )
    reply = None
    if result.reply is not None and answer is not None:
        if knowledge:
            TurnKnowledge.objects.create(
                message=result.message,
                snippets=[{"title": "Passwords", "url": "", "text": ANSWER, "language": "en"}],
            )
        else:
            # The real lookup: no article in the knowledge base, so nothing relevant is stored.
            assert services.turn_knowledge(question=result.message, language=language) == []
        claimed = services.reply_claim(conversation_id=result.conversation.pk)
        assert claimed is not None
        reply = services.reply_finish(
            reply_id=claimed.pk, text=answer, status=Message.Status.COMPLETE, ttft_ms=120.0
        )
    return result.conversation, reply


def _outcome(conversation: Conversation) -> ConversationOutcome:
    return ConversationOutcome.objects.get(conversation=conversation)


def _handed(*, resolve: bool) -> tuple[Conversation, Any]:
    agent = agent_create("anna", language="en")
    conversation, _reply = _ask(None)
    inbox.visitor_handoff_request(conversation=conversation)
    inbox.conversation_claim(conversation_id=conversation.pk, agent=agent)
    inbox.agent_message_send(
        conversation_id=conversation.pk, agent=agent, client_id="a1", text="Hello, I can help."
    )
    if resolve:
        inbox.conversation_resolve(conversation_id=conversation.pk, by=agent)
    return conversation, agent


def test_a_thumbs_up_on_the_last_answer_is_confirmed() -> None:
    conversation, reply = _ask(None)
    assert reply is not None
    services.feedback_save(conversation=conversation, message_id=reply.pk, rating="up")
    analytics.outcomes_refresh()
    row = _outcome(conversation)
    assert (row.outcome, row.thumbs_up, row.messages, row.visitor_messages) == (
        "confirmed",
        1,
        2,
        1,
    )
    assert row.ttft_ms == 120.0 and not row.handoff


def test_a_thumbs_up_followed_by_an_unanswered_question_is_not_confirmed() -> None:
    conversation, reply = _ask(None)
    assert reply is not None
    services.feedback_save(conversation=conversation, message_id=reply.pk, rating="up")
    _ask(conversation, text="And how do I delete the account entirely?", answer=None)
    analytics.outcomes_refresh()
    assert (_outcome(conversation).outcome, _outcome(conversation).reason) == (
        "unresolved",
        "abandoned",
    )


def test_a_rating_of_four_confirms_and_a_rating_of_two_is_unresolved() -> None:
    good, _reply = _ask(None)
    inbox.csat_save(conversation=good, rating=4)
    bad, _reply = _ask(None)
    inbox.csat_save(conversation=bad, rating=2)
    analytics.outcomes_refresh()
    assert _outcome(good).outcome == "confirmed" and _outcome(good).csat == 4
    assert (_outcome(bad).outcome, _outcome(bad).reason) == ("unresolved", "low_csat")


def test_silence_after_an_answer_is_only_assumed() -> None:
    conversation, _reply = _ask(None)
    analytics.outcomes_refresh()
    assert (_outcome(conversation).outcome, _outcome(conversation).reason) == ("assumed", "")


def test_within_the_window_a_conversation_is_open_then_assumed_when_it_runs_out(
    settings: Any,
) -> None:
    settings.ANALYTICS_ASSUMED_WINDOW_HOURS = 24
    conversation, _reply = _ask(None)
    analytics.outcomes_refresh()
    row = _outcome(conversation)
    assert row.outcome == "open" and row.open_until is not None
    # Time passes without any activity: the next refresh picks it up by its open_until.
    ConversationOutcome.objects.filter(pk=row.pk).update(
        open_until=timezone.now() - datetime.timedelta(minutes=1)
    )
    Message.objects.filter(conversation=conversation, role="user").update(
        created_at=timezone.now() - datetime.timedelta(hours=25)
    )
    RollupState.objects.filter(name="outcomes").update(watermark=timezone.now())
    result = analytics.outcomes_refresh()
    assert result.conversations == 1
    assert _outcome(conversation).outcome == "assumed"


def test_a_thumbs_down_is_unresolved_even_after_silence() -> None:
    conversation, reply = _ask(None)
    assert reply is not None
    services.feedback_save(conversation=conversation, message_id=reply.pk, rating="down")
    analytics.outcomes_refresh()
    row = _outcome(conversation)
    assert (row.outcome, row.reason, row.thumbs_down) == ("unresolved", "thumbs_down", 1)


def test_a_last_answer_without_knowledge_is_unresolved_not_assumed() -> None:
    conversation, _reply = _ask(None, knowledge=False)
    analytics.outcomes_refresh()
    assert (_outcome(conversation).outcome, _outcome(conversation).reason) == (
        "unresolved",
        "no_knowledge",
    )


def test_a_greeting_without_knowledge_is_not_a_no_knowledge_answer() -> None:
    conversation, _reply = _ask(
        None, text="hello", answer="Hello! How can I help?", knowledge=False
    )
    analytics.outcomes_refresh()
    assert _outcome(conversation).outcome == "assumed"


def test_a_question_left_without_an_answer_is_abandoned() -> None:
    conversation, _reply = _ask(None, answer=None)  # the reply never finished
    analytics.outcomes_refresh()
    assert (_outcome(conversation).outcome, _outcome(conversation).reason) == (
        "unresolved",
        "abandoned",
    )


def test_handed_off_then_resolved_by_the_agent_with_their_times() -> None:
    conversation, agent = _handed(resolve=False)
    analytics.outcomes_refresh()
    row = _outcome(conversation)
    assert (row.outcome, row.reason, row.handoff) == ("handed_off", "visitor_request", True)
    assert row.agent_id == agent.user_id and row.first_response_s is not None
    assert row.resolution_s is None
    inbox.conversation_resolve(conversation_id=conversation.pk, by=agent)
    inbox.csat_save(conversation=conversation, rating=5)
    analytics.outcomes_refresh()
    row = _outcome(conversation)
    assert row.outcome == "agent_resolved" and row.resolution_s is not None
    # A good rating of a person's work is not the assistant's confirmed resolution.
    assert row.csat == 5
    stats = DailyAgentStats.objects.get()
    assert (stats.agent_id, stats.handled, stats.csat_sum, stats.csat_count) == (
        agent.user_id,
        1,
        5,
        1,
    )
    assert stats.first_response_count == 1 and stats.resolution_count == 1


def test_a_conversation_reopened_after_resolution_is_flagged() -> None:
    conversation, agent = _handed(resolve=True)
    analytics.outcomes_refresh()
    assert not _outcome(conversation).reopened
    _ask(conversation, answer=None)  # the visitor writes again: it reopens
    analytics.outcomes_refresh()
    row = _outcome(conversation)
    assert row.reopened and row.outcome == "handed_off"


def test_a_reply_in_another_language_than_the_question_counts_as_wrong() -> None:
    right, _reply = _ask(None)
    wrong, _reply = _ask(
        None,
        text="パスワードをリセットするにはどうすればいいですか?",
        answer=ANSWER,
        language="ja",
    )
    analytics.outcomes_refresh()
    assert (_outcome(right).replies_language_correct, _outcome(right).replies_language_checked) == (
        1,
        1,
    )
    assert (_outcome(wrong).replies_language_correct, _outcome(wrong).replies_language_checked) == (
        0,
        1,
    )


def _all_rows() -> list[tuple[Any, ...]]:
    return [
        *DailyLanguageStats.objects.order_by("date", "language").values_list(),
        *DailyAgentStats.objects.order_by("date", "agent_id").values_list(),
    ]


def _strip_ids(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [row[1:] for row in rows]


def test_rollups_count_each_class_and_a_rebuild_twice_gives_the_same_rows() -> None:
    up_conversation, up = _ask(None)
    assert up is not None
    services.feedback_save(conversation=up_conversation, message_id=up.pk, rating="up")
    _ask(None)  # assumed
    _ask(None, knowledge=False)  # unresolved: no knowledge
    _ask(None, answer=None)  # unresolved: abandoned
    _ask(None, language="de", text="Wie setze ich mein Passwort zurück, bitte?")
    _handed(resolve=True)  # agent_resolved (en)
    analytics.outcomes_refresh()
    today = timezone.localdate()
    en = DailyLanguageStats.objects.get(date=today, language="en")
    assert (en.conversations, en.confirmed, en.assumed, en.unresolved, en.agent_resolved) == (
        5,
        1,
        1,
        2,
        1,
    )
    assert (en.unresolved_no_knowledge, en.unresolved_abandoned, en.handoffs) == (1, 1, 1)
    assert (en.thumbs_up, en.visitors, en.ttft_count) == (1, 5, 4)
    assert DailyLanguageStats.objects.get(date=today, language="de").assumed == 1
    first = _strip_ids(_all_rows())
    call_command("analytics_rebuild", "--from", today.isoformat(), "--to", today.isoformat())
    second = _strip_ids(_all_rows())
    analytics.rollups_rebuild(start=today, end=today)
    assert first == second == _strip_ids(_all_rows())
    assert DailyLanguageStats.objects.count() == 2


def test_the_incremental_refresh_picks_up_a_new_message_only() -> None:
    conversation, _reply = _ask(None)
    other, _reply = _ask(None)
    analytics.outcomes_refresh()
    assert DailyLanguageStats.objects.get().messages == 4
    state = RollupState.objects.get(name="outcomes")
    assert state.watermark is not None
    # Nothing new since the watermark (less the overlap): the next run stays small.
    RollupState.objects.filter(pk=state.pk).update(watermark=timezone.now())
    assert analytics.outcomes_refresh().conversations == 0
    RollupState.objects.filter(pk=state.pk).update(watermark=timezone.now())
    _ask(conversation, text="And how do I change my e-mail address then?")
    result = analytics.outcomes_refresh()
    assert result.conversations == 1  # not OTHER, untouched since
    assert _outcome(other).messages == 2
    assert _outcome(conversation).messages == 4
    assert DailyLanguageStats.objects.get().messages == 6


def test_a_rating_given_later_is_picked_up_by_the_incremental_refresh() -> None:
    conversation, reply = _ask(None)
    assert reply is not None
    analytics.outcomes_refresh()
    RollupState.objects.filter(name="outcomes").update(
        watermark=timezone.now() - datetime.timedelta(seconds=1)
    )
    services.feedback_save(conversation=conversation, message_id=reply.pk, rating="up")
    analytics.outcomes_refresh()
    assert _outcome(conversation).outcome == "confirmed"
    assert (
        selectors.overview(start=timezone.localdate(), end=timezone.localdate())["totals"][
            "confirmed"
        ]
        == 1
    )


def test_the_beat_task_runs_the_incremental_refresh(settings: Any) -> None:
    from analytics import tasks

    entry = settings.CELERY_BEAT_SCHEDULE["analytics-refresh"]
    assert entry["task"] == tasks.refresh.name and entry["schedule"] == 300.0
    conversation, _reply = _ask(None)
    assert tasks.refresh.apply().get() == {"conversations": 1, "days": 1, "skipped": False}
    assert _outcome(conversation).outcome == "assumed"


def test_the_rebuild_command_refuses_a_range_that_ends_before_it_starts() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("analytics_rebuild", "--from", "2026-11-02", "--to", "2026-11-01")
    with pytest.raises(CommandError):
        call_command("analytics_rebuild", "--from", "yesterday", "--to", "2026-11-01")
