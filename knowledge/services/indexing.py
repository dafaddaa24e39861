"""Indexing: an article's chunks and embeddings, brought up to date incrementally."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from autoglm_site.background import enqueue
from knowledge import embeddings
from knowledge.chunking import PlannedChunk, chunk_article
from knowledge.models import Article, Chunk
from knowledge.services.fields import field_name, languages
from knowledge.text import tokenize

Progress = Callable[[int, int], None]


@dataclass
class IndexResult:
    articles_changed: int = 0
    articles_unchanged: int = 0
    chunks_embedded: int = 0
    chunks_deleted: int = 0
    chunks_kept: int = 0


def article_versions(article: Article) -> list[tuple[str, str, str]]:
    """(language, title, body) for each language the article has its own text in."""
    default_title = next(
        (
            getattr(article, field_name("title", lang))
            for lang in languages()
            if getattr(article, field_name("title", lang))
        ),
        "",
    )
    versions = []
    for language in languages():
        title = (getattr(article, field_name("title", language)) or "").strip()
        body = (getattr(article, field_name("body", language)) or "").strip()
        if title or body:
            versions.append((language, title or default_title, body))
    return versions


def _article_hash(article: Article) -> str:
    digest = hashlib.sha256()
    payload = [embeddings.MODEL_NAME, settings.KNOWLEDGE_CHUNK_TOKENS, article_versions(article)]
    digest.update(json.dumps(payload, ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()


def _plan(article: Article) -> list[tuple[str, PlannedChunk]]:
    planned: list[tuple[str, PlannedChunk]] = []
    for language, title, body in article_versions(article):
        seen: set[str] = set()
        for chunk in chunk_article(
            title=title,
            body=body,
            language=language,
            budget=settings.KNOWLEDGE_CHUNK_TOKENS,
            count=embeddings.token_count,
        ):
            if chunk.content_hash not in seen:  # an exact repeat adds nothing to search
                seen.add(chunk.content_hash)
                planned.append((language, chunk))
    return planned


def articles_index(
    *, articles: Sequence[Article], force: bool = False, progress: Progress | None = None
) -> IndexResult:
    """Bring the chunks of ARTICLES up to date; only new or changed chunks are embedded.

    A chunk is identified by a hash of its language and embedded text (title, heading path,
    text, model). Unchanged chunks keep their embedding, vanished ones are deleted, new ones
    are tokenised and embedded. Embedding runs outside transactions; each article's chunks
    are then replaced in one transaction, so search never sees half an article.
    """
    result = IndexResult()
    plans: dict[int, tuple[str, list[tuple[str, PlannedChunk]]]] = {}
    for article in articles:
        new_hash = _article_hash(article)
        if not force and article.indexed_hash == new_hash:
            result.articles_unchanged += 1
            continue
        plans[article.pk] = (new_hash, _plan(article))
    existing: dict[int, set[tuple[str, str]]] = {pk: set() for pk in plans}
    for article_id, language, chunk_hash in Chunk.objects.filter(
        article_id__in=list(plans)
    ).values_list("article_id", "language", "content_hash"):
        existing[article_id].add((language, chunk_hash))
    to_embed: list[tuple[int, str, PlannedChunk]] = [
        (pk, language, chunk)
        for pk, (_hash, planned) in plans.items()
        for language, chunk in planned
        if (language, chunk.content_hash) not in existing[pk]
    ]
    vectors = embeddings.embed_passages([chunk.embed_text for _pk, _lang, chunk in to_embed])
    title_vectors = _title_vectors(to_embed)
    new_by_article: dict[int, list[Chunk]] = {pk: [] for pk in plans}
    for (pk, language, chunk), vector in zip(to_embed, vectors, strict=True):
        new_by_article[pk].append(
            Chunk(
                article_id=pk,
                language=language,
                position=chunk.position,
                heading=chunk.heading,
                text=chunk.text,
                tokens=" ".join(tokenize(chunk.embed_text, language=language)),
                content_hash=chunk.content_hash,
                embedding=vector,
            )
        )
    for done, (pk, (new_hash, planned)) in enumerate(plans.items(), start=1):
        wanted = {(language, chunk.content_hash): chunk.position for language, chunk in planned}
        with transaction.atomic():
            if not Article.objects.select_for_update().filter(pk=pk).exists():
                continue  # deleted meanwhile: its chunks went with it
            current = {
                (row.language, row.content_hash): row
                for row in Chunk.objects.filter(article_id=pk).only(
                    "id", "language", "content_hash", "position"
                )
            }
            stale = [row.pk for key, row in current.items() if key not in wanted]
            if stale:
                Chunk.objects.filter(pk__in=stale).delete()
            for key, row in current.items():
                if key in wanted and row.position != wanted[key]:
                    Chunk.objects.filter(pk=row.pk).update(position=wanted[key])
            fresh = [c for c in new_by_article[pk] if (c.language, c.content_hash) not in current]
            Chunk.objects.bulk_create(fresh, ignore_conflicts=True)
            _place_titles(
                pk,
                title_vectors,
                {language: chunk.title for language, chunk in planned if chunk.position == 0},
            )
            Article.objects.filter(pk=pk).update(indexed_hash=new_hash)
        result.articles_changed += 1
        result.chunks_embedded += len(fresh)
        result.chunks_deleted += len(stale)
        result.chunks_kept += len(current) - len(stale)
        if progress:
            progress(done, len(plans))
    if plans:
        from knowledge.search import index_changed

        transaction.on_commit(index_changed)
    return result


def _title_vectors(
    chunks: Sequence[tuple[int, str, PlannedChunk]],
) -> dict[tuple[int, str], tuple[list[float], list[float]]]:
    """(article id, language) -> its title embedded alone, by the primary and the secondary
    embedder, for the first chunks among CHUNKS (the title is in every chunk's hash, so a new
    title always means a new first chunk). Titles are short: this costs little."""
    firsts = [(pk, language, chunk.title) for pk, language, chunk in chunks if chunk.position == 0]
    texts = [title for _pk, _language, title in firsts]
    primary = embeddings.embed_passages(texts)
    secondary = embeddings.embed_titles_secondary(texts)
    return {
        (pk, language): (first, second)
        for (pk, language, _title), first, second in zip(firsts, primary, secondary, strict=True)
    }


def _place_titles(
    pk: int,
    title_vectors: dict[tuple[int, str], tuple[list[float], list[float]]],
    titles: dict[str, str],
) -> None:
    """Title vectors go on the first chunk of each language version, and on no other. TITLES
    (language -> title) serve a first chunk that was not new but moved up to first place."""
    rows = Chunk.objects.filter(article_id=pk)
    rows.exclude(position=0).exclude(title_embedding=None, title_embedding_secondary=None).update(
        title_embedding=None, title_embedding_secondary=None
    )
    for (article_id, language), (primary, secondary) in title_vectors.items():
        if article_id == pk:
            rows.filter(language=language, position=0).update(
                title_embedding=primary, title_embedding_secondary=secondary
            )
    for chunk in rows.filter(position=0, title_embedding=None).only("id", "language"):
        title = titles.get(chunk.language, "")
        chunk.title_embedding = embeddings.embed_passages([title])[0]
        chunk.title_embedding_secondary = embeddings.embed_titles_secondary([title])[0]
        chunk.save(update_fields=["title_embedding", "title_embedding_secondary"])


def article_index(*, article_id: int, force: bool = False) -> IndexResult:
    article = Article.objects.filter(pk=article_id).first()
    if article is None:
        return IndexResult()
    return articles_index(articles=[article], force=force)


def article_index_later(*, article: Article) -> None:
    """Index ARTICLE in the background once the current transaction commits."""
    from knowledge.tasks import index_article

    enqueue(index_article, article_id=article.pk)
