"""The article citation roll-up (analytics.models.DailyArticleCitations): built by the rebuild
and the refresh from the stored knowledge, equal to a direct count, idempotent."""

from __future__ import annotations

import datetime
from collections import Counter

import pytest
from django.utils import timezone

from analytics import gaps, services
from analytics.models import DailyArticleCitations
from chat.models import Feedback, TurnKnowledge
from knowledge.models import Article
from tests.analytics.test_gaps import _article, _ask, _snippet

pytestmark = pytest.mark.django_db

QUESTION = "How do I change my password please?"


def _direct_counts(start: datetime.date, end: datetime.date) -> tuple[Counter[int], Counter[int]]:
    """Counted in Python, row by row, from the stored knowledge: per article, the questions
    whose knowledge held one of its snippets (by URL, else title, in any translation), once per
    distinct snippet, and those of them whose reply was rated "down"."""
    articles = list(Article.objects.values("pk", "url_en", "url_de", "title_en", "title_de"))
    cited: Counter[int] = Counter()
    down: Counter[int] = Counter()
    for row in TurnKnowledge.objects.select_related("message"):
        day = timezone.localtime(row.created_at).date()
        if not start <= day <= end:
            continue
        rated_down = Feedback.objects.filter(
            message__reply_to=row.message, rating=Feedback.Rating.DOWN
        ).exists()
        for url, title in {(s.get("url", ""), s.get("title", "")) for s in row.snippets}:
            match = next((a for a in articles if url and url in {a["url_en"], a["url_de"]}), None)
            match = match or next(
                (a for a in articles if title and title in {a["title_en"], a["title_de"]}), None
            )
            if match is not None:
                cited[match["pk"]] += 1
                down[match["pk"]] += rated_down
    return cited, down


def _rollup() -> list[tuple[datetime.date, int, int, int]]:
    return list(
        DailyArticleCitations.objects.order_by("date", "article_id").values_list(
            "date", "article_id", "cited", "cited_thumbs_down"
        )
    )


def _citations_fixture() -> tuple[Article, Article, datetime.date, datetime.date]:
    """Questions today and yesterday citing two articles by title, German title and URL."""
    passwords = _article("Passwords", title_de="Passwörter")
    invoices = _article("Invoices", url_en="https://help.example.com/invoices")
    today = timezone.localdate()
    yesterday = today - datetime.timedelta(days=1)
    _ask(QUESTION, language="en", snippets=[_snippet("Passwords")], rating="down")
    _ask(QUESTION, language="de", snippets=[_snippet("Passwörter"), _snippet("Unknown")])
    old, _reply = _ask(
        "Where is my invoice?",
        language="en",
        snippets=[_snippet("Rechnungen", "https://help.example.com/invoices")],
        rating="down",
    )
    earlier = timezone.now() - datetime.timedelta(days=1)
    TurnKnowledge.objects.filter(message=old).update(created_at=earlier)
    _ask(QUESTION, language="en", snippets=[_snippet("Passwords"), _snippet("Invoices")])
    return passwords, invoices, yesterday, today


def test_the_rollup_counts_equal_a_direct_count_of_the_stored_knowledge() -> None:
    passwords, invoices, yesterday, today = _citations_fixture()

    services.rollups_rebuild(start=yesterday, end=today)

    for start, end in ((yesterday, today), (today, today), (yesterday, yesterday)):
        cited, down = _direct_counts(start, end)
        stats = gaps.article_stats(start=start, end=end)
        assert {row["id"]: row["count"] for row in stats["most_cited"]} == dict(cited)
        assert {row["id"]: row["count"] for row in stats["negative"]} == {
            pk: n for pk, n in down.items() if n
        }
    assert _rollup() == [
        (yesterday, invoices.pk, 1, 1),
        (today, passwords.pk, 3, 1),
        (today, invoices.pk, 1, 0),
    ]


def test_a_rebuild_is_idempotent_and_replaces_only_its_days() -> None:
    _passwords, invoices, yesterday, today = _citations_fixture()
    services.rollups_rebuild(start=yesterday, end=today)
    first = _rollup()

    services.rollups_rebuild(start=yesterday, end=today)
    assert _rollup() == first
    assert services.article_citations_rebuild(start=yesterday, end=today) == len(first)
    assert _rollup() == first

    # Rebuilding today alone leaves yesterday's row as it was.
    DailyArticleCitations.objects.filter(date=today).delete()
    services.article_citations_rebuild(start=today, end=today)
    assert _rollup() == first
    assert (yesterday, invoices.pk, 1, 1) in first


def test_the_refresh_adds_new_citations_and_ratings_incrementally() -> None:
    passwords = _article("Passwords")
    today = timezone.localdate()
    _ask(QUESTION, language="en", snippets=[_snippet("Passwords")])
    services.outcomes_refresh()
    assert _rollup() == [(today, passwords.pk, 1, 0)]

    _question, reply = _ask(QUESTION, language="en", snippets=[_snippet("Passwords")])
    services.outcomes_refresh()
    assert _rollup() == [(today, passwords.pk, 2, 0)]

    # A rating given later changes the day's thumbs-down count at the next refresh.
    from chat import services as chat_services

    chat_services.feedback_save(
        conversation=reply.conversation, message_id=reply.pk, rating=Feedback.Rating.DOWN
    )
    services.outcomes_refresh()
    assert _rollup() == [(today, passwords.pk, 2, 1)]
    stats = gaps.article_stats(start=today, end=today)
    assert [(row["id"], row["count"]) for row in stats["negative"]] == [(passwords.pk, 1)]
