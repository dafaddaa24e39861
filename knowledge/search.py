"""Hybrid search: full-text over pre-tokenised chunks + pgvector cosine, merged by rank fusion."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db.models import F
from django.utils import translation
from pgvector.django import CosineDistance

from knowledge import embeddings
from knowledge.models import Article, Chunk
from knowledge.text import detect_language, normalize_language, tokenize
from knowledge.text.stopwords import without_stopwords

SNIPPET_CHARS = 1200
_MAX_QUERY_TERMS = 64


@dataclass(frozen=True)
class SearchHit:
    """One article found for a query, with its best-matching chunk.

    article_id: the external id given at import (or the page URL for fetched sources), else
    the article's primary key, as a string. language: the language of the matched chunk.
    score: the reciprocal-rank-fusion score (higher is better; comparable within one query
    only). similarity: cosine similarity of the query and the chunk embeddings (0..1; e5
    scores bunch around 0.7-0.93, so rank by it rather than threshold).
    """

    article_id: str
    title: str
    url: str
    snippet: str
    language: str
    score: float
    similarity: float = 0.0


def _tsquery(terms: list[str]) -> str:
    unique = list(dict.fromkeys(terms))[:_MAX_QUERY_TERMS]
    quoted = ["'" + term.replace("\\", "\\\\").replace("'", "''") + "'" for term in unique]
    return " | ".join(quoted)


def _snippet(text: str) -> str:
    if len(text) <= SNIPPET_CHARS:
        return text
    cut = text[:SNIPPET_CHARS]
    space = cut.rfind(" ")
    return (cut[:space] if space > SNIPPET_CHARS // 2 else cut).rstrip() + "…"


_LEXEME = re.compile(r"'((?:[^']|'')+)'")


def _keyword_ranking(terms: list[str], candidates: int) -> list[tuple[int, float]]:
    """Chunks matching any of the terms, best first, each with its coverage: the share of the
    query's distinct terms it contains."""
    if not terms:
        return []
    query = SearchQuery(_tsquery(terms), config="simple", search_type="raw")
    rows = (
        Chunk.objects.filter(article__status=Article.Status.PUBLISHED, search=query)
        .annotate(rank=SearchRank(F("search"), query, cover_density=True))
        .order_by("-rank", "id")
        .values_list("id", "search")[:candidates]
    )
    wanted = set(list(dict.fromkeys(terms))[:_MAX_QUERY_TERMS])
    ranking = []
    for pk, vector in rows:
        lexemes = {match.replace("''", "'") for match in _LEXEME.findall(str(vector))}
        ranking.append((pk, len(wanted & lexemes) / len(wanted)))
    return ranking


def _vector_ranking(vector: list[float], candidates: int) -> list[tuple[int, float]]:
    rows = (
        Chunk.objects.filter(article__status=Article.Status.PUBLISHED)
        .annotate(distance=CosineDistance("embedding", vector))
        .order_by("distance")
        .values_list("id", "distance")[:candidates]
    )
    return [(pk, 1.0 - float(distance)) for pk, distance in rows]


def chunk_search(*, query: str, language: str | None, limit: int) -> list[SearchHit]:
    """The published articles that best answer QUERY, best first, at most LIMIT.

    LANGUAGE is the query's language (a Django code such as "zh-hans"); None detects it. It
    picks the tokenizer for the keyword side and, among an article's matching chunks, the one
    shown (a chunk in the query's language is preferred); it never filters: a question in one
    language finds articles that exist only in another through the embeddings. One hit per
    article. An empty query or an empty knowledge base gives [].
    """
    query = query.strip()
    if not query or limit <= 0:
        return []
    language = normalize_language(language) or detect_language(query)
    candidates = max(settings.KNOWLEDGE_SEARCH_CANDIDATES, limit * 4)
    k = settings.KNOWLEDGE_RRF_K
    terms = without_stopwords(tokenize(query, language=language), language=language)
    keyword = _keyword_ranking(terms, candidates)
    query_vector = embeddings.embed_query(query)
    vector = _vector_ranking(query_vector, candidates)
    minimum = settings.KNOWLEDGE_MIN_SIMILARITY
    keyword_ids = {pk for pk, _coverage in keyword}
    scores: dict[int, float] = {}
    # A keyword match counts as much as the share of the question it explains: a product name
    # left untranslated in a Chinese question matches nearly every article, and must not weigh
    # as much as a chunk that holds every word of the question (reciprocal rank fusion alone
    # gives them the same weight, which cost the hybrid a third of its cross-language recall).
    for rank, (pk, coverage) in enumerate(keyword, start=1):
        scores[pk] = scores.get(pk, 0.0) + coverage / (k + rank)
    for rank, (pk, sim) in enumerate(vector, start=1):
        if sim < minimum and pk not in keyword_ids:
            continue
        scores[pk] = scores.get(pk, 0.0) + 1.0 / (k + rank)
    if not scores:
        return []
    chunks: dict[int, Any] = {
        chunk.pk: chunk
        for chunk in Chunk.objects.filter(pk__in=list(scores))
        .select_related("article")
        .annotate(distance=CosineDistance("embedding", query_vector))
    }
    best: dict[int, tuple[float, Any]] = {}
    for pk, score in sorted(scores.items(), key=lambda item: (-item[1], item[0])):
        chunk = chunks.get(pk)
        if chunk is None:
            continue
        current = best.get(chunk.article_id)
        if current is None:
            best[chunk.article_id] = (score, chunk)
        elif current[1].language != language and chunk.language == language:
            # Keep the article's score, show the text in the visitor's language.
            best[chunk.article_id] = (current[0], chunk)
    ordered = sorted(best.values(), key=lambda item: (-item[0], item[1].pk))[:limit]
    hits = []
    for score, chunk in ordered:
        with translation.override(chunk.language):
            title = chunk.article.title or ""
            url = chunk.article.url or ""
        hits.append(
            SearchHit(
                article_id=chunk.article.public_id,
                title=title,
                url=url,
                snippet=_snippet(chunk.text),
                language=chunk.language,
                score=round(score, 6),
                similarity=round(1.0 - float(chunk.distance), 4),
            )
        )
    return hits
