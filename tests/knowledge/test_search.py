"""Hybrid search: contract, published only, cross-language, keyword side per language."""

from __future__ import annotations

import dataclasses
import json

import pytest
from django.test import override_settings

from knowledge.models import Article
from knowledge.search import SearchHit, chunk_search, relevance_marks
from knowledge.services import articles_import
from knowledge.text import chinese

pytestmark = pytest.mark.django_db

ARTICLES = [
    {
        "id": "pw",
        "lang": "en",
        "title": "Resetting your password",
        "body": "Click Forgot password on the sign-in page; the reset link expires after an hour.",
        "url": "https://help.example/en/pw",
    },
    {
        "id": "refunds",
        "lang": "en",
        "title": "Refund policy",
        "body": "Cancel within 30 days of your first payment for a full refund of your money.",
    },
    {
        "id": "storage",
        "lang": "en",
        "title": "Storage limits",
        "body": "The Free plan includes 5 GB of storage; Team includes 1 TB per user.",
    },
    {
        "id": "export",
        "lang": "de",
        "title": "Alle Daten exportieren",
        "body": "Administratoren können ein ZIP-Archiv aller Dateien anfordern.",
    },
    {
        "id": "storage",
        "lang": "zh-hans",
        "title": "存储限制",
        "body": "免费套餐包含 5 GB 存储空间。",
    },
]


@pytest.fixture
def knowledge() -> None:
    articles_import(lines=[json.dumps(a, ensure_ascii=False) for a in ARTICLES])


def test_search_hit_is_a_frozen_dataclass_with_the_agreed_fields() -> None:
    names = [f.name for f in dataclasses.fields(SearchHit)]
    assert names[:6] == ["article_id", "title", "url", "snippet", "language", "score"]
    hit = SearchHit("a", "t", "u", "s", "en", 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        hit.score = 2.0  # type: ignore[misc]


@pytest.mark.usefixtures("knowledge")
def test_best_hit_carries_the_import_id_title_url_and_language() -> None:
    hits = chunk_search(query="how do I reset my password", language="en", limit=3)
    assert hits[0].article_id == "pw"
    assert hits[0].title == "Resetting your password"
    assert hits[0].url == "https://help.example/en/pw"
    assert hits[0].language == "en"
    assert "Forgot password" in hits[0].snippet
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len({h.article_id for h in hits}) == len(hits) <= 3


@pytest.mark.usefixtures("knowledge")
@pytest.mark.parametrize(
    ("query", "language", "expected"),
    [
        ("如何重置密码", "zh-hans", "pw"),
        ("كيف أستعيد أموالي؟ أريد استرداد المبلغ", "ar", "refunds"),
        ("¿Cómo restablezco mi contraseña?", None, "pw"),
        ("How can I export all my data as an archive?", "en", "export"),
    ],
)
def test_a_question_finds_an_article_that_exists_only_in_another_language(
    query: str, language: str | None, expected: str
) -> None:
    hits = chunk_search(query=query, language=language, limit=2)
    assert expected in [hit.article_id for hit in hits]


@pytest.mark.usefixtures("knowledge")
def test_the_chunk_in_the_query_language_is_shown_when_the_article_has_one() -> None:
    hits = chunk_search(query="存储空间有多大", language="zh-hans", limit=1)
    assert hits[0].article_id == "storage"
    assert hits[0].language == "zh-hans"
    assert hits[0].title == "存储限制"


@pytest.mark.usefixtures("knowledge")
def test_drafts_are_never_returned() -> None:
    Article.objects.filter(external_id="pw").update(status=Article.Status.DRAFT)
    hits = chunk_search(query="reset my password", language="en", limit=10)
    assert "pw" not in [hit.article_id for hit in hits]


@pytest.mark.usefixtures("knowledge")
def test_keyword_side_finds_only_the_chunks_containing_the_terms() -> None:
    from knowledge.models import Chunk
    from knowledge.search import _keyword_ranking
    from knowledge.text import tokenize

    export_chunks = set(
        Chunk.objects.filter(article__external_id="export").values_list("id", flat=True)
    )

    def ids(ranking: list[tuple[int, float]]) -> set[int]:
        return {pk for pk, _coverage in ranking}

    zip_archive = _keyword_ranking(tokenize("ZIP-Archiv", language="de"), 10)
    assert ids(zip_archive) == export_chunks
    # Scores are relative to the whole question's idf: each term held once scores about 1.
    assert all(0.5 < score < 2 for _pk, score in zip_archive)
    assert ids(_keyword_ranking(tokenize("存储", language="zh-hans"), 10)) == set(
        Chunk.objects.filter(language="zh-hans").values_list("id", flat=True)
    )
    # A term no chunk holds finds nothing alone, and beside others lowers their matches' score
    # (less of the question is matched).
    both = _keyword_ranking(tokenize("ZIP-Archiv Quantencomputer", language="de"), 10)
    assert ids(both) == export_chunks
    assert all(dict(both)[pk] < score / 2 for pk, score in zip_archive)
    assert _keyword_ranking(tokenize("Quantencomputer", language="de"), 10) == []
    # Another inflection of an article's word finds it through the shared stem.
    assert ids(_keyword_ranking(tokenize("Administrator", language="de"), 10)) == export_chunks


@pytest.mark.usefixtures("knowledge")
def test_the_migration_adds_stems_to_chunks_indexed_without_them() -> None:
    import importlib

    from django.apps import apps

    from knowledge.models import Chunk
    from knowledge.text import tokenize

    migration = importlib.import_module("knowledge.migrations.0005_stemmed_tokens")
    chunk = Chunk.objects.filter(article__external_id="export").first()
    chinese_chunk = Chunk.objects.filter(language="zh-hans").first()
    assert chunk is not None and chinese_chunk is not None
    Chunk.objects.filter(pk=chunk.pk).update(tokens="administratoren konnen dateien")
    migration.add_stems(apps, None)
    assert Chunk.objects.get(pk=chunk.pk).tokens == " ".join(
        tokenize("Administratoren können Dateien", language="de")
    )
    assert "administrator" in Chunk.objects.get(pk=chunk.pk).tokens.split()
    assert Chunk.objects.get(pk=chinese_chunk.pk).tokens == chinese_chunk.tokens


def test_keyword_scores_weigh_rare_terms_over_common_ones() -> None:
    from knowledge.models import Chunk
    from knowledge.search import _keyword_ranking

    lines = [
        json.dumps({"id": f"a{i}", "lang": "en", "title": f"Topic {i}", "body": f"Acme {w}."})
        for i, w in enumerate(["billing", "storage", "sharing", "teams", "trash", "sso"] * 4)
    ]
    lines.append(json.dumps({"id": "z", "lang": "en", "title": "Zebra", "body": "Zebra billing."}))
    articles_import(lines=lines)
    zebra = Chunk.objects.get(article__external_id="z").pk
    billing = set(
        Chunk.objects.filter(tokens__contains="billing")
        .exclude(pk=zebra)
        .values_list("id", flat=True)
    )
    ranking = _keyword_ranking(["billing", "zebra"], 10)
    # "zebra" (1 chunk of 25) outweighs "billing" (5): the chunk with both is first, and the
    # chunks with billing alone score about a third of what the whole question could.
    assert ranking[0][0] == zebra and ranking[0][1] > 0.9
    assert {pk for pk, _score in ranking[1:]} == billing
    assert all(0.2 < score < 0.5 for _pk, score in ranking[1:])


@pytest.mark.usefixtures("knowledge")
def test_article_without_external_id_is_reported_by_primary_key() -> None:
    article = Article.objects.get(external_id="refunds")
    Article.objects.filter(pk=article.pk).update(external_id=None)
    hits = chunk_search(query="full refund of my money", language="en", limit=1)
    assert hits[0].article_id == str(article.pk)


@pytest.mark.django_db
def test_empty_query_or_empty_base_gives_no_hits() -> None:
    assert chunk_search(query="   ", language="en", limit=5) == []
    assert chunk_search(query="password", language="en", limit=5) == []


BRAND_ARTICLES = [
    ("sync", "Northwind Cloud desktop sync", "Install the Northwind Cloud sync client on Windows."),
    ("share", "Sharing in Northwind Cloud", "Share a Northwind Cloud folder with your team."),
    ("sso", "Northwind Cloud single sign-on", "Connect Northwind Cloud to your identity provider."),
    ("api", "The Northwind Cloud API", "Northwind Cloud has a REST API with tokens per user."),
    ("trash", "Northwind Cloud trash", "Deleted Northwind Cloud files stay in the trash 30 days."),
    ("refund", "Refunds", "Annual Northwind Cloud plans can be refunded within 30 days."),
]


def test_an_untranslated_product_name_does_not_outweigh_the_meaning_of_the_question() -> None:
    # Every article names the product; the Chinese question shares only that name with them.
    articles_import(
        lines=[
            json.dumps({"id": key, "lang": "en", "title": title, "body": body})
            for key, title, body in BRAND_ARTICLES
        ]
    )
    hits = chunk_search(query="Northwind Cloud 的年度套餐可以退款吗？", language="zh-hans", limit=3)
    assert hits[0].article_id == "refund", [h.article_id for h in hits]


@pytest.mark.usefixtures("knowledge")
def test_title_vectors_live_on_the_first_chunk_of_each_language_version_only() -> None:
    from knowledge.models import Chunk

    rows = list(
        Chunk.objects.values_list("article__external_id", "language", "position", "title_embedding")
    )
    firsts = {(ext, lang) for ext, lang, position, _vector in rows if position == 0}
    assert firsts == {(a["id"], a["lang"]) for a in ARTICLES}
    assert all((vector is not None) == (position == 0) for _e, _l, position, vector in rows)


def test_a_first_chunk_that_moves_up_gets_the_title_vector() -> None:
    from knowledge.models import Chunk

    body = "## Intro\nWelcome text.\n\n## Steps\nOpen Settings, then Security."
    article = {"id": "moving", "lang": "en", "title": "Account security", "body": body}
    articles_import(lines=[json.dumps(article)])
    article["body"] = "## Steps\nOpen Settings, then Security."  # the first section is gone
    articles_import(lines=[json.dumps(article)])
    first = Chunk.objects.get(article__external_id="moving", position=0)
    assert first.title_embedding is not None and first.title_embedding_secondary is not None
    assert Chunk.objects.filter(article__external_id="moving").count() == 1


@pytest.mark.usefixtures("knowledge")
def test_only_hits_that_answer_the_question_are_marked_relevant() -> None:
    hits = chunk_search(query="How do I reset my password?", language="en", limit=5)
    assert hits[0].article_id == "pw" and hits[0].relevant
    assert [h.article_id for h in hits if h.relevant] == ["pw"]
    # Nothing in the knowledge base says anything about outages: nothing is relevant.
    outage = chunk_search(query="O serviço está fora do ar?", language="pt-br", limit=5)
    assert outage and not any(h.relevant for h in outage)


@pytest.mark.usefixtures("knowledge")
def test_a_hebrew_question_finds_the_english_article_by_its_title() -> None:
    # The primary embedder was not trained on Hebrew; the secondary matches titles for it.
    hits = chunk_search(query="איפוס הסיסמה שלך", language="he", limit=3)
    assert hits[0].article_id == "pw" and hits[0].relevant, hits


def test_the_embedders_see_a_question_without_its_untranslated_product_names() -> None:
    from knowledge.search import _meaning

    assert _meaning("Northwind Cloud 的年度套餐可以退款吗？", set()) == "的年度套餐可以退款吗？"
    assert _meaning("Как удалить аккаунт Northwind?", set()) == "Как удалить аккаунт ?"
    assert _meaning("How do I cancel Northwind?", {"northwind"}) == "How do I cancel ?"
    assert _meaning("How do I cancel?", set()) == "How do I cancel?"
    assert _meaning("Northwind", {"northwind"}) == "Northwind"  # nothing else would be left
    # In a question in Latin letters, the words written as names (two capitals or more).
    assert _meaning("GNOME Wie ändere ich das Hintergrundbild?", set()) == (
        "Wie ändere ich das Hintergrundbild?"
    )
    assert _meaning("¿Cómo instalo F-Droid en mi iPhone?", set()) == "¿Cómo instalo en mi ?"
    assert _meaning("Wie lösche ich Dateien?", set()) == "Wie lösche ich Dateien?"


def test_a_term_in_most_chunks_is_ubiquitous() -> None:
    from knowledge.search import _term_statistics

    articles_import(
        lines=[
            json.dumps({"id": f"a{i}", "lang": "en", "title": f"Topic {i}", "body": f"Acme {w}."})
            for i, w in enumerate(["billing", "storage", "sharing", "teams", "trash", "sso"] * 4)
        ]
    )
    assert _term_statistics(["acme", "billing", "quantum"]).ubiquitous() == {"acme"}


def test_common_terms_are_counted_from_postgresqls_statistics(monkeypatch) -> None:
    from django.db import connection

    from knowledge import search

    articles_import(
        lines=[
            json.dumps({"id": f"a{i}", "lang": "en", "title": f"Topic {i}", "body": f"Acme {w}."})
            for i, w in enumerate(["billing", "storage", "sharing", "teams", "trash", "sso"] * 4)
        ]
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE knowledge_chunk")
    search.index_changed()
    assert search._common_term_shares(search._version())["acme"] == 1.0
    monkeypatch.setattr(search, "STATISTICS_FROM_CHUNKS", 1)
    counted = []
    real_filter = search.Chunk.objects.filter
    monkeypatch.setattr(
        search.Chunk.objects, "filter", lambda *a, **k: counted.append(k) or real_filter(*a, **k)
    )
    statistics = search._term_statistics(["acme"])
    assert statistics.frequencies["acme"] == statistics.bound + 1  # every chunk: ubiquitous
    assert statistics.ubiquitous() == {"acme"}
    assert not [k for k in counted if "search" in k]  # read from the statistics, not counted


@pytest.mark.usefixtures("knowledge")
def test_a_short_question_far_nearer_one_article_than_any_other_is_answered_by_it() -> None:
    hits = chunk_search(query="我可以退款嗎？", language="zh-hant", limit=3)
    assert hits[0].article_id == "refunds" and hits[0].relevant
    assert not any(h.relevant for h in hits[1:])


@pytest.mark.usefixtures("knowledge")
def test_a_traditional_chinese_question_is_embedded_in_simplified_characters() -> None:
    traditional = chunk_search(query="我可以退款嗎？", language="zh-hant", limit=1)
    simplified = chunk_search(query="我可以退款吗？", language="zh-hans", limit=1)
    assert traditional[0].article_id == simplified[0].article_id == "refunds"
    assert traditional[0].similarity == simplified[0].similarity
    # OpenCC's t2s table: characters converted, words left as they are.
    assert chinese.simplified("構建簽名伺服器") == "构建签名伺服器"


@pytest.mark.usefixtures("knowledge")
def test_an_article_missing_the_visitors_language_is_shown_in_the_fallback_language() -> None:
    # "storage" exists in English and Chinese; a French visitor reads the English version.
    hits = chunk_search(query="Quelle est la limite de stockage ?", language="fr", limit=1)
    assert hits[0].article_id == "storage" and hits[0].language == "en"


def test_declared_product_names_are_kept_out_of_the_question(monkeypatch, settings) -> None:
    from chat.models import GlossaryTerm
    from knowledge import search

    assert search._declared_names_in(["acme", "cloud", "billing"]) == set()
    GlossaryTerm.objects.create(term="Acme Cloud", do_not_translate=True)
    GlossaryTerm.objects.create(term="Billing", language="en", translation="Invoicing")
    # A name counts when the question holds all of its words; a preferred translation is no name.
    assert search._declared_names_in(["acme", "cloud", "billing"]) == {"acme", "cloud"}
    assert search._declared_names_in(["cloud", "billing"]) == set()

    seen: list[set[str]] = []
    real_meaning = search._meaning
    monkeypatch.setattr(
        search, "_meaning", lambda text, terms: seen.append(terms) or real_meaning(text, terms)
    )
    asked: list[list[str]] = []
    real_keyword = search._keyword_ranking
    monkeypatch.setattr(
        search,
        "_keyword_ranking",
        lambda terms, *a, **k: asked.append(list(terms)) or real_keyword(terms, *a, **k),
    )
    search.chunk_search(query="Acme Cloud billing", language="en", limit=3)
    assert seen[-1] == {"acme", "cloud"}  # neither the embedding nor the keyword side sees them
    assert asked[-1] == ["billing", "bill"], "nor their stems"

    settings.KNOWLEDGE_DECLARED_NAMES = ""
    assert search._declared_names_in(["acme", "cloud", "billing"]) == set()


_RULE = {
    "KNOWLEDGE_RELEVANT_SIMILARITY": 0.7,
    "KNOWLEDGE_RELEVANT_LEAD_WEIGHT": 0.5,
    "KNOWLEDGE_RELEVANT_MARGIN": 0.05,
}


@override_settings(**_RULE)
def test_an_article_ahead_of_its_neighbours_answers_below_the_threshold() -> None:
    # 0.62 + 0.5 * (0.62 - mean(0.50, 0.38, 0.36, 0.35)) = 0.73: the lead over the next four
    # carries it (the runner-up alone is too near for the far-ahead rule); the others do not.
    assert relevance_marks([0.62, 0.50, 0.38, 0.36, 0.35]) == [True, False, False, False, False]
    with override_settings(KNOWLEDGE_RELEVANT_LEAD_WEIGHT=0.0):
        assert not any(relevance_marks([0.62, 0.50, 0.38, 0.36, 0.35]))


@override_settings(**_RULE)
def test_neighbours_at_the_same_distance_answer_nothing() -> None:
    # What a question the knowledge base does not answer looks like: several near misses.
    assert relevance_marks([0.66, 0.64, 0.63, 0.63, 0.62]) == [False] * 5


@override_settings(**_RULE)
def test_the_lead_does_not_count_on_another_embedders_scale() -> None:
    assert relevance_marks([0.62, 0.41, 0.40], leading=False) == [False, False, False]
    assert relevance_marks([0.72, 0.41, 0.40], leading=False) == [True, False, False]


@override_settings(**_RULE)
def test_another_article_answers_when_it_reaches_the_threshold_near_the_best() -> None:
    # In ranked order (fused score), not by similarity: the second is within the margin.
    assert relevance_marks([0.74, 0.78, 0.70, 0.30]) == [True, True, False, False]
    # Below the threshold itself, near the best is not enough.
    assert relevance_marks([0.71, 0.68, 0.20]) == [True, False, False]


@override_settings(**_RULE)
def test_nothing_found_marks_nothing() -> None:
    assert relevance_marks([]) == []


@override_settings(KNOWLEDGE_CONFIRM_BELOW=0.75, KNOWLEDGE_CONFIRM_MARGIN=0.15)
def test_a_best_hit_neither_near_nor_far_ahead_needs_a_second_opinion() -> None:
    from knowledge.search import second_opinion_needed

    assert second_opinion_needed([0.62, 0.55, 0.40])  # under 0.75, 0.07 ahead
    assert not second_opinion_needed([0.62, 0.45, 0.40])  # 0.17 ahead: clear enough
    assert not second_opinion_needed([0.80, 0.79])  # near enough on its own
    assert second_opinion_needed([0.60, 0.66])  # ranked first by the fused score, not nearer
    assert second_opinion_needed([0.10])  # alone, but far from the question
    assert not second_opinion_needed([])
    with override_settings(KNOWLEDGE_CONFIRM_BELOW=0.0):
        assert not second_opinion_needed([0.62, 0.55])


@pytest.mark.usefixtures("knowledge")
@override_settings(KNOWLEDGE_CONFIRM_BELOW=1.0, KNOWLEDGE_CONFIRM_MARGIN=1.0)
def test_the_best_hit_answers_only_when_the_secondary_embedder_agrees(client) -> None:
    from knowledge import embeddings
    from knowledge.models import Chunk
    from tests.test_metrics import scrape

    def opinions() -> dict[str, float]:
        samples = scrape(client)
        name = "autoglm_knowledge_second_opinions_total"
        return {o: samples.get((name, (("outcome", o),)), 0.0) for o in ("agreed", "disagreed")}

    question = "How do I reset my password?"
    before = opinions()
    # Always asked here: the secondary's nearest title is the password article too.
    hits = chunk_search(query=question, language="en", limit=3)
    assert hits[0].article_id == "pw" and hits[0].relevant
    assert opinions() == {"agreed": before["agreed"] + 1, "disagreed": before["disagreed"]}
    # Another article's title made the secondary's nearest (its vector is the question's own):
    # the two embedders disagree, and nothing is relevant.
    refunds = Chunk.objects.get(article__external_id="refunds", position=0)
    refunds.title_embedding_secondary = embeddings.embed_query_secondary(question)
    refunds.save(update_fields=["title_embedding_secondary"])
    hits = chunk_search(query=question, language="en", limit=3)
    assert hits[0].article_id == "pw" and not any(h.relevant for h in hits), hits
    assert opinions()["disagreed"] == before["disagreed"] + 1
    with override_settings(KNOWLEDGE_CONFIRM_BELOW=0.0):  # never asked
        assert chunk_search(query=question, language="en", limit=3)[0].relevant
