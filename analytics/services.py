"""Outcomes per conversation, computed from stored evidence, and the daily roll-ups built from
them: the only writers of the analytics tables (docs/analytics.md states the rules)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, F, FloatField, Max, Min, OuterRef, Q, Sum, Window
from django.db.models.functions import Coalesce, RowNumber, TruncDate
from django.utils import timezone
from modeltranslation.utils import build_localized_fieldname

from analytics.models import (
    ConversationOutcome,
    DailyAgentStats,
    DailyArticleCitations,
    DailyLanguageStats,
    Outcome,
    RollupState,
    UnresolvedReason,
)
from chat.language import message_is_short, reply_language
from chat.models import Conversation, Feedback, Message, TurnKnowledge
from knowledge.models import Article

BATCH = 2000
# Replies per conversation whose language is checked (the newest ones): detection costs 0.1 to
# 0.5 ms a text and is most of a refresh's time, so it is capped rather than run on every
# reply of a long conversation.
LANGUAGE_CHECKS_PER_CONVERSATION = 1
_DETECT_CHARS = 300  # enough text to tell a language; detection time grows with the length
# Rows committed a little after the refresh read the clock are picked up by the next one.
WATERMARK_OVERLAP = timedelta(seconds=120)
_STATE = "outcomes"


@dataclass(frozen=True)
class Evidence:
    """What was observed in one conversation, as far as its outcome goes."""

    handed: bool
    closed: bool
    handoff_reason: str
    csat: int | None
    last_answer_rating: str | None  # the rating of the assistant's newest complete reply
    latest_rating: str | None  # the most recently given rating in the conversation
    last_answer_no_knowledge: bool
    answered: bool  # the visitor's last message has an answer after it
    last_visitor_at: datetime | None


def outcome_classify(*, evidence: Evidence, now: datetime) -> tuple[str, str, datetime | None]:
    """(outcome, reason, open_until): never more flattering than the evidence."""
    e = evidence
    if e.handed:
        kind = Outcome.AGENT_RESOLVED if e.closed else Outcome.HANDED_OFF
        return kind, e.handoff_reason, None
    liked_last = e.last_answer_rating == "up" and e.answered  # not with a question left after it
    if (e.csat is not None and e.csat >= 4) or (e.csat is None and liked_last):
        return Outcome.CONFIRMED, "", None
    if e.csat is not None and e.csat <= 2:
        return Outcome.UNRESOLVED, UnresolvedReason.LOW_CSAT, None
    if e.latest_rating == "down":
        return Outcome.UNRESOLVED, UnresolvedReason.THUMBS_DOWN, None
    if e.answered and e.last_answer_no_knowledge:
        return Outcome.UNRESOLVED, UnresolvedReason.NO_KNOWLEDGE, None
    window = timedelta(hours=float(settings.ANALYTICS_ASSUMED_WINDOW_HOURS))
    if e.last_visitor_at is not None and now < e.last_visitor_at + window:
        return Outcome.OPEN, "", e.last_visitor_at + window
    if not e.answered:
        return Outcome.UNRESOLVED, UnresolvedReason.ABANDONED, None
    return Outcome.ASSUMED, "", None


def _reopened(row: dict[str, Any]) -> bool:
    """Reopened within ANALYTICS_REOPEN_DAYS of its resolution. A conversation resolved again
    after reopening no longer shows when it was first resolved: counted as reopened."""
    reopened_at, resolved_at = row["reopened_at"], row["resolved_at"]
    if reopened_at is None:
        return False
    if resolved_at is None or resolved_at > reopened_at:
        return True
    return reopened_at - resolved_at <= timedelta(days=float(settings.ANALYTICS_REOPEN_DAYS))


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None or later < earlier:
        return None
    return (later - earlier).total_seconds()


def _conversation_rows(ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    visible = [Message.Role.USER, Message.Role.ASSISTANT, Message.Role.AGENT]
    return list(
        Conversation.objects.filter(pk__in=ids)
        .annotate(
            n_messages=Count(
                "messages",
                filter=Q(messages__role=Message.Role.USER)
                | Q(
                    messages__role__in=visible[1:],
                    messages__status=Message.Status.COMPLETE,
                ),
            ),
            n_visitor=Count("messages", filter=Q(messages__role=Message.Role.USER)),
            n_agent=Count("messages", filter=Q(messages__role=Message.Role.AGENT)),
            n_up=Count("messages__feedback", filter=Q(messages__feedback__rating="up")),
            n_down=Count("messages__feedback", filter=Q(messages__feedback__rating="down")),
            ttft_sum=Sum("messages__ttft_ms", filter=Q(messages__role=Message.Role.ASSISTANT)),
            ttft_n=Count("messages__ttft_ms", filter=Q(messages__role=Message.Role.ASSISTANT)),
            last_visitor_id=Max("messages__id", filter=Q(messages__role=Message.Role.USER)),
            last_visitor_at=Max("messages__created_at", filter=Q(messages__role=Message.Role.USER)),
            last_answer_id=Max(
                "messages__id",
                filter=Q(messages__role__in=visible[1:], messages__status=Message.Status.COMPLETE),
            ),
            first_agent_at=Min("messages__created_at", filter=Q(messages__role=Message.Role.AGENT)),
            csat_rating=Max("csat__rating"),
        )
        .values(
            "id",
            "visitor_id",
            "language",
            "created_at",
            "status",
            "handoff_reason",
            "handoff_at",
            "assignee_id",
            "team_id",
            "resolved_at",
            "reopened_at",
            "n_messages",
            "n_visitor",
            "n_agent",
            "n_up",
            "n_down",
            "ttft_sum",
            "ttft_n",
            "last_visitor_id",
            "last_visitor_at",
            "last_answer_id",
            "first_agent_at",
            "csat_rating",
        )
    )


def _newest_replies(ids: list[uuid.UUID]) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """The newest complete replies of each conversation, newest first."""
    empty_knowledge = TurnKnowledge.objects.filter(message_id=OuterRef("reply_to_id"), snippets=[])
    ranked = (
        Message.objects.filter(
            conversation_id__in=ids, role=Message.Role.ASSISTANT, status=Message.Status.COMPLETE
        )
        .annotate(
            rank=Window(RowNumber(), partition_by=F("conversation_id"), order_by=F("id").desc()),
            no_knowledge=Exists(empty_knowledge),
        )
        .filter(rank__lte=LANGUAGE_CHECKS_PER_CONVERSATION)
    )
    by_conversation: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for row in ranked.values(
        "conversation_id", "rank", "text", "reply_to__text", "feedback__rating", "no_knowledge"
    ):
        by_conversation.setdefault(row["conversation_id"], []).append(row)
    for rows in by_conversation.values():
        rows.sort(key=lambda row: row["rank"])
    return by_conversation


def _latest_ratings(ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    rows = (
        Feedback.objects.filter(message__conversation_id__in=ids)
        .order_by("message__conversation_id", "-updated_at")
        .distinct("message__conversation_id")
        .values_list("message__conversation_id", "rating")
    )
    return dict(rows)


def _language_check(*, replies: list[dict[str, Any]], language: str) -> tuple[int, int]:
    """(correct, checked): a reply is in the right language when the detector reads it as the
    language the product chose to answer its question in (chat.language.reply_language)."""
    correct = checked = 0
    for reply in replies:
        text = (reply["text"] or "")[:_DETECT_CHARS]
        if message_is_short(text):
            continue  # too short to tell
        question = (reply["reply_to__text"] or "")[:_DETECT_CHARS]
        expected = reply_language(text=question, conversation_language=language)
        detected = reply_language(text=text, conversation_language=expected)
        checked += 1
        correct += detected == expected
    return correct, checked


def _outcomes_compute(ids: list[uuid.UUID], *, now: datetime) -> list[ConversationOutcome]:
    rows = _conversation_rows(ids)
    replies = _newest_replies(ids)
    ratings = _latest_ratings(ids)
    current = timezone.get_current_timezone()
    built = []
    for row in rows:
        newest = replies.get(row["id"], [])
        last_reply = newest[0] if newest else None
        handed = bool(row["handoff_at"] or row["n_agent"] or row["assignee_id"])
        closed = row["status"] == Conversation.Status.CLOSED
        last_visitor_id, last_answer_id = row["last_visitor_id"], row["last_answer_id"]
        evidence = Evidence(
            handed=handed,
            closed=closed,
            handoff_reason=row["handoff_reason"],
            csat=row["csat_rating"],
            last_answer_rating=last_reply["feedback__rating"] if last_reply else None,
            latest_rating=ratings.get(row["id"]),
            last_answer_no_knowledge=bool(
                last_reply
                and last_reply["no_knowledge"]
                and not message_is_short(last_reply["reply_to__text"] or "")
            ),
            answered=last_answer_id is not None
            and (last_visitor_id is None or last_answer_id > last_visitor_id),
            last_visitor_at=row["last_visitor_at"],
        )
        outcome, reason, open_until = outcome_classify(evidence=evidence, now=now)
        correct, checked = _language_check(replies=newest, language=row["language"])
        ttft_n = row["ttft_n"]
        ttft_sum = float(row["ttft_sum"] or 0.0)
        resolution_from = row["handoff_at"] if handed and row["handoff_at"] else row["created_at"]
        built.append(
            ConversationOutcome(
                conversation_id=row["id"],
                visitor_id=row["visitor_id"],
                language=row["language"],
                started_on=row["created_at"].astimezone(current).date(),
                outcome=outcome,
                reason=reason,
                reopened=_reopened(row),
                messages=row["n_messages"],
                visitor_messages=row["n_visitor"],
                thumbs_up=row["n_up"],
                thumbs_down=row["n_down"],
                csat=row["csat_rating"],
                ttft_ms=ttft_sum / ttft_n if ttft_n else None,
                ttft_ms_sum=ttft_sum,
                ttft_count=ttft_n,
                replies_language_correct=correct,
                replies_language_checked=checked,
                handoff=handed,
                agent_id=row["assignee_id"],
                team_id=row["team_id"],
                first_response_s=_seconds(row["first_agent_at"], row["handoff_at"]),
                resolution_s=_seconds(row["resolved_at"], resolution_from) if closed else None,
                open_until=open_until,
            )
        )
    return built


_UPDATE_FIELDS = [
    f.name
    for f in ConversationOutcome._meta.concrete_fields
    if f.name not in {"id", "conversation"}
]


def _outcomes_store(ids: Iterable[uuid.UUID], *, now: datetime) -> set[date]:
    """Recompute and upsert the outcomes of IDS; the days they belong to."""
    days: set[date] = set()
    pending = list(ids)
    for start in range(0, len(pending), BATCH):
        built = _outcomes_compute(pending[start : start + BATCH], now=now)
        for item in built:
            item.updated_at = now
        ConversationOutcome.objects.bulk_create(
            built,
            update_conflicts=True,
            unique_fields=["conversation"],
            update_fields=_UPDATE_FIELDS,
        )
        days.update(item.started_on for item in built)
    return days


def _active_since(since: datetime | None, *, now: datetime) -> set[uuid.UUID]:
    """Conversations with any change since SINCE (all of them without one), and those whose
    open window has run out since their outcome was computed."""
    if since is None:
        return set(Conversation.objects.values_list("pk", flat=True))
    ids: set[uuid.UUID] = set(
        Conversation.objects.filter(updated_at__gte=since).values_list("pk", flat=True)
    )
    # A reply finishing or a rating does not touch the conversation's updated_at.
    ids.update(
        Message.objects.filter(updated_at__gte=since)
        .values_list("conversation_id", flat=True)
        .distinct()
    )
    ids.update(
        Feedback.objects.filter(updated_at__gte=since)
        .values_list("message__conversation_id", flat=True)
        .distinct()
    )
    from inbox.models import Csat

    ids.update(Csat.objects.filter(updated_at__gte=since).values_list("conversation_id", flat=True))
    ids.update(
        ConversationOutcome.objects.filter(open_until__lte=now).values_list(
            "conversation_id", flat=True
        )
    )
    return ids


@dataclass(frozen=True)
class RefreshResult:
    conversations: int
    days: list[date]
    watermark: datetime | None
    skipped: bool = False  # another refresh held the state


def outcomes_refresh(*, since: datetime | None = None) -> RefreshResult:
    """Recompute the outcomes of the conversations with activity since SINCE (default: the
    stored watermark; everything the first time), then rebuild the roll-ups of their days.
    One refresh at a time: a second one finds the state locked and returns skipped."""
    now = timezone.now()
    with transaction.atomic():
        RollupState.objects.get_or_create(name=_STATE)
        state = RollupState.objects.select_for_update(skip_locked=True).filter(name=_STATE).first()
        if state is None:
            return RefreshResult(conversations=0, days=[], watermark=None, skipped=True)
        start = since if since is not None else state.watermark
        ids = _active_since(start, now=now)
        days = _outcomes_store(ids, now=now)
        _rollups_for_days(sorted(days))
        _citations_for_days(_citation_days_since(start))
        state.watermark = now - WATERMARK_OVERLAP
        state.save(update_fields=["watermark", "updated_at"])
    return RefreshResult(conversations=len(ids), days=sorted(days), watermark=state.watermark)


def rollups_rebuild(*, start: date, end: date) -> int:
    """Recompute the outcomes of the conversations started from START to END (inclusive) and
    replace those days' roll-ups; running it twice gives the same rows. The number of
    conversations recomputed."""
    now = timezone.now()
    current = timezone.get_current_timezone()
    lower = datetime.combine(start, datetime.min.time(), tzinfo=current)
    upper = datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=current)
    ids = list(
        Conversation.objects.filter(created_at__gte=lower, created_at__lt=upper).values_list(
            "pk", flat=True
        )
    )
    with transaction.atomic():
        _outcomes_store(ids, now=now)
        days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
        _rollups_for_days(days)
        _citations_for_days(days)
    return len(ids)


def article_citations_rebuild(*, start: date, end: date) -> int:
    """Replace the article citation roll-up of START to END (inclusive) only, leaving the
    outcomes alone (rollups_rebuild does both); the number of rows written."""
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    with transaction.atomic():
        return _citations_for_days(days)


def _sum(field: str) -> Coalesce:
    return Coalesce(Sum(field), 0)


def _outcome_count(outcome: str, reason: str | None = None) -> Count:
    condition = Q(outcome=outcome) if reason is None else Q(outcome=outcome, reason=reason)
    return Count("id", filter=condition)


def _rollups_for_days(days: list[date]) -> None:
    """Replace the roll-ups of DAYS with aggregates of their conversations' outcomes."""
    if not days:
        return
    with transaction.atomic():
        DailyLanguageStats.objects.filter(date__in=days).delete()
        DailyAgentStats.objects.filter(date__in=days).delete()
        outcomes = ConversationOutcome.objects.filter(started_on__in=days)
        per_language = outcomes.values("started_on", "language").annotate(
            n_conversations=Count("id"),
            n_messages=_sum("messages"),
            n_visitors=Count("visitor_id", distinct=True),
            n_confirmed=_outcome_count(Outcome.CONFIRMED),
            n_assumed=_outcome_count(Outcome.ASSUMED),
            n_handed_off=_outcome_count(Outcome.HANDED_OFF),
            n_agent_resolved=_outcome_count(Outcome.AGENT_RESOLVED),
            n_unresolved=_outcome_count(Outcome.UNRESOLVED),
            n_open=_outcome_count(Outcome.OPEN),
            n_no_knowledge=_outcome_count(Outcome.UNRESOLVED, UnresolvedReason.NO_KNOWLEDGE),
            n_thumbs_down_reason=_outcome_count(Outcome.UNRESOLVED, UnresolvedReason.THUMBS_DOWN),
            n_low_csat=_outcome_count(Outcome.UNRESOLVED, UnresolvedReason.LOW_CSAT),
            n_abandoned=_outcome_count(Outcome.UNRESOLVED, UnresolvedReason.ABANDONED),
            n_reopened=Count("id", filter=Q(reopened=True)),
            n_handoffs=Count("id", filter=Q(handoff=True)),
            n_up=_sum("thumbs_up"),
            n_down=_sum("thumbs_down"),
            n_csat_sum=_sum("csat"),
            n_csat_count=Count("csat"),
            n_ttft_sum=Coalesce(Sum("ttft_ms_sum"), 0.0, output_field=FloatField()),
            n_ttft_count=_sum("ttft_count"),
            n_correct=_sum("replies_language_correct"),
            n_checked=_sum("replies_language_checked"),
        )
        DailyLanguageStats.objects.bulk_create(
            [
                DailyLanguageStats(
                    date=row["started_on"],
                    language=row["language"],
                    conversations=row["n_conversations"],
                    messages=row["n_messages"],
                    visitors=row["n_visitors"],
                    confirmed=row["n_confirmed"],
                    assumed=row["n_assumed"],
                    handed_off=row["n_handed_off"],
                    agent_resolved=row["n_agent_resolved"],
                    unresolved=row["n_unresolved"],
                    open=row["n_open"],
                    unresolved_no_knowledge=row["n_no_knowledge"],
                    unresolved_thumbs_down=row["n_thumbs_down_reason"],
                    unresolved_low_csat=row["n_low_csat"],
                    unresolved_abandoned=row["n_abandoned"],
                    reopened=row["n_reopened"],
                    handoffs=row["n_handoffs"],
                    thumbs_up=row["n_up"],
                    thumbs_down=row["n_down"],
                    csat_sum=row["n_csat_sum"],
                    csat_count=row["n_csat_count"],
                    ttft_ms_sum=row["n_ttft_sum"],
                    ttft_count=row["n_ttft_count"],
                    language_correct=row["n_correct"],
                    language_checked=row["n_checked"],
                )
                for row in per_language
            ],
            batch_size=1000,
        )
        per_agent = (
            outcomes.filter(agent__isnull=False)
            .values("started_on", "language", "agent_id", "team_id")
            .annotate(
                n_handled=Count("id"),
                n_first_sum=Coalesce(Sum("first_response_s"), 0.0, output_field=FloatField()),
                n_first_count=Count("first_response_s"),
                n_resolution_sum=Coalesce(Sum("resolution_s"), 0.0, output_field=FloatField()),
                n_resolution_count=Count("resolution_s"),
                n_csat_sum=_sum("csat"),
                n_csat_count=Count("csat"),
            )
        )
        DailyAgentStats.objects.bulk_create(
            [
                DailyAgentStats(
                    date=row["started_on"],
                    language=row["language"],
                    agent_id=row["agent_id"],
                    team_id=row["team_id"],
                    handled=row["n_handled"],
                    first_response_s_sum=row["n_first_sum"],
                    first_response_count=row["n_first_count"],
                    resolution_s_sum=row["n_resolution_sum"],
                    resolution_count=row["n_resolution_count"],
                    csat_sum=row["n_csat_sum"],
                    csat_count=row["n_csat_count"],
                )
                for row in per_agent
            ],
            batch_size=1000,
        )


# --- Article citations ----------------------------------------------------------------------
# A citation is a visitor question whose reply was given the article in its knowledge
# (chat.TurnKnowledge.snippets), counted on the day the question's knowledge was stored.


def _citation_days_since(since: datetime | None) -> list[date]:
    """The days whose citation counts may have changed since SINCE (every day with stored
    knowledge without one): new knowledge, or a rating given or changed on a reply to it."""
    knowledge = TurnKnowledge.objects.all()
    if since is not None:
        knowledge = knowledge.filter(created_at__gte=since)
    days = set(
        knowledge.annotate(day=TruncDate("created_at"))
        .values_list("day", flat=True)
        .order_by()
        .distinct()
    )
    if since is not None:
        days.update(
            Feedback.objects.filter(
                updated_at__gte=since, message__reply_to__prompt_knowledge__isnull=False
            )
            .annotate(day=TruncDate("message__reply_to__prompt_knowledge__created_at"))
            .values_list("day", flat=True)
            .order_by()
            .distinct()
        )
    return sorted(days)


def _day_ranges(days: list[date]) -> list[tuple[date, date]]:
    """Runs of consecutive days, as (first, last) pairs."""
    ranges: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if ranges and day == ranges[-1][1] + timedelta(days=1):
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def _articles_by_reference() -> tuple[dict[str, int], dict[str, int]]:
    """Article ids by every translation of their URL, and of their title (the first article
    wins a value two share)."""
    by_url: dict[str, int] = {}
    by_title: dict[str, int] = {}
    languages = settings.MODELTRANSLATION_LANGUAGES
    url_fields = [build_localized_fieldname("url", code) for code in languages]
    title_fields = [build_localized_fieldname("title", code) for code in languages]
    for values in Article.objects.order_by("pk").values_list("pk", *url_fields, *title_fields):
        pk, urls, titles = values[0], values[1 : 1 + len(languages)], values[1 + len(languages) :]
        for url in urls:
            if url:
                by_url.setdefault(url, pk)
        for title in titles:
            if title:
                by_title.setdefault(title, pk)
    return by_url, by_title


def _citation_rows(first: date, last: date) -> list[tuple[date, str | None, str | None, int, int]]:
    """(day, snippet URL, snippet title, questions, questions whose reply was rated "down")
    over FIRST..LAST: one aggregate over the stored knowledge of those days only (a range on
    chat_turnknowledge.created_at, indexed by analytics migration 0003)."""
    current = timezone.get_current_timezone()
    low = datetime.combine(first, datetime.min.time(), tzinfo=current)
    high = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=current)
    knowledge = TurnKnowledge._meta.db_table
    message = Message._meta.db_table
    feedback = Feedback._meta.db_table
    sql = f"""
        SELECT (tk.created_at AT TIME ZONE %s)::date, s->>'url', s->>'title',
               count(DISTINCT tk.message_id),
               count(DISTINCT tk.message_id) FILTER (WHERE EXISTS (
                   SELECT 1 FROM {message} r JOIN {feedback} f ON f.message_id = r.id
                   WHERE r.reply_to_id = tk.message_id AND f.rating = %s))
        FROM {knowledge} tk CROSS JOIN LATERAL jsonb_array_elements(tk.snippets) s
        WHERE tk.created_at >= %s AND tk.created_at < %s
        GROUP BY 1, 2, 3
    """  # noqa: S608 (table names from the models, values as parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, [timezone.get_current_timezone_name(), Feedback.Rating.DOWN, low, high])
        return list(cursor.fetchall())


def _citations_for_days(days: list[date]) -> int:
    """Replace the article citation roll-up of DAYS: one grouped query per run of consecutive
    days, each snippet mapped to an article by its URL, else its title, in any translation
    (a question citing two snippets of one article counts twice, as it was given it twice).
    The number of rows written."""
    if not days:
        return 0
    by_url, by_title = _articles_by_reference()
    written = 0
    with transaction.atomic():
        for first, last in _day_ranges(days):
            DailyArticleCitations.objects.filter(date__gte=first, date__lte=last).delete()
            cited: dict[tuple[date, int], list[int]] = {}
            for day, url, title, n, n_down in _citation_rows(first, last):
                pk = by_url.get(url or "") or by_title.get(title or "")
                if pk is None:
                    continue
                counts = cited.setdefault((day, pk), [0, 0])
                counts[0] += n
                counts[1] += n_down
            DailyArticleCitations.objects.bulk_create(
                [
                    DailyArticleCitations(
                        date=day, article_id=pk, cited=counts[0], cited_thumbs_down=counts[1]
                    )
                    for (day, pk), counts in cited.items()
                ],
                batch_size=1000,
            )
            written += len(cited)
    return written
