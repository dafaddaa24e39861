"""Writes to the knowledge base: import, indexing (chunks + embeddings), source sync, reset."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _
from modeltranslation.utils import build_localized_fieldname

from autoglm_site.background import enqueue
from knowledge import embeddings
from knowledge.chunking import PlannedChunk, chunk_article
from knowledge.extract import document_from_bytes, html_to_markdown, markdown_title, sitemap_entries
from knowledge.fetch import FetchError, client, fetch
from knowledge.models import Article, Category, Chunk, Source, SyncRun
from knowledge.text import detect_language, normalize_language, tokenize

logger = logging.getLogger(__name__)

TRANSLATED_FIELDS = ("title", "body", "url")
_LOCK_NAMESPACE = 0x6B62  # "kb": first key of the per-source advisory lock

Progress = Callable[[int, int], None]


def _languages() -> tuple[str, ...]:
    return tuple(settings.MODELTRANSLATION_LANGUAGES)


def _field(name: str, language: str) -> str:
    return build_localized_fieldname(name, language)


# --- Indexing ------------------------------------------------------------------------------


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
            getattr(article, _field("title", lang))
            for lang in _languages()
            if getattr(article, _field("title", lang))
        ),
        "",
    )
    versions = []
    for language in _languages():
        title = (getattr(article, _field("title", language)) or "").strip()
        body = (getattr(article, _field("body", language)) or "").strip()
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
            Article.objects.filter(pk=pk).update(indexed_hash=new_hash)
        result.articles_changed += 1
        result.chunks_embedded += len(fresh)
        result.chunks_deleted += len(stale)
        result.chunks_kept += len(current) - len(stale)
        if progress:
            progress(done, len(plans))
    return result


def article_index(*, article_id: int, force: bool = False) -> IndexResult:
    article = Article.objects.filter(pk=article_id).first()
    if article is None:
        return IndexResult()
    return articles_index(articles=[article], force=force)


def article_index_later(*, article: Article) -> None:
    """Index ARTICLE in the background once the current transaction commits."""
    from knowledge.tasks import index_article

    enqueue(index_article, article_id=article.pk)


def source_sync_later(*, source: Source, trigger: str = SyncRun.Trigger.MANUAL) -> None:
    """Sync SOURCE in the background once the current transaction commits."""
    from knowledge.tasks import sync_source

    enqueue(sync_source, source_id=source.pk, trigger=str(trigger))


# --- JSONL import ----------------------------------------------------------------------------


@dataclass
class ImportResult:
    lines: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    index: IndexResult = field(default_factory=IndexResult)


@dataclass
class _ImportRecord:
    line: int
    language: str
    title: str
    body: str
    url: str
    category: str


def _parse_line(number: int, line: str) -> tuple[str, _ImportRecord]:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(_("not valid JSON: %(error)s") % {"error": exc.msg}) from exc
    if not isinstance(data, dict):
        raise ValueError(_("a JSON object is expected"))
    for key in ("id", "lang", "title", "body"):
        if not isinstance(data.get(key), (str, int)) or str(data.get(key)).strip() == "":
            raise ValueError(_("the field %(key)s is missing or empty") % {"key": key})
    for key in ("url", "category"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise ValueError(_("the field %(key)s must be a string") % {"key": key})
    language = normalize_language(str(data["lang"]))
    if language not in _languages():
        raise ValueError(_("unsupported language %(lang)s") % {"lang": data["lang"]})
    title = str(data["title"]).strip()
    if len(title) > 300:
        raise ValueError(_("the title is longer than 300 characters"))
    url = (data.get("url") or "").strip()
    if url and not url.startswith(("http://", "https://")):
        raise ValueError(_("the url must start with http:// or https://"))
    return str(data["id"]).strip(), _ImportRecord(
        line=number,
        language=language,
        title=title,
        body=str(data["body"]),
        url=url,
        category=(data.get("category") or "").strip(),
    )


def _category(slug_or_name: str, language: str) -> Category:
    slug = slugify(slug_or_name) or hashlib.sha1(slug_or_name.encode()).hexdigest()[:12]  # noqa: S324
    category, created = Category.objects.get_or_create(slug=slug, defaults={"name": slug_or_name})
    name_field = _field("name", language)
    if not getattr(category, name_field):
        setattr(category, name_field, slug_or_name)
        category.save()
    return category


def articles_import(
    *, lines: Iterable[str], index: bool = True, progress: Progress | None = None
) -> ImportResult:
    """Import JSONL articles: lines sharing an id are one article in several languages.

    A malformed line is reported with its number and skipped; each article is written in one
    transaction (all its languages or nothing). Then the changed articles are indexed here,
    in this process, so they are searchable when the import returns.
    """
    result = ImportResult()
    records: dict[str, list[_ImportRecord]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        result.lines += 1
        try:
            external_id, record = _parse_line(number, line)
        except ValueError as exc:
            result.failed += 1
            result.errors.append({"item": _("line %(n)s") % {"n": number}, "error": str(exc)})
            continue
        records.setdefault(external_id, []).append(record)
    touched: list[int] = []
    for external_id, group in records.items():
        try:
            with transaction.atomic():
                article, created = Article.objects.select_for_update().get_or_create(
                    external_id=external_id,
                    defaults={"status": Article.Status.PUBLISHED},
                )
                before = {
                    _field(name, lang): getattr(article, _field(name, lang))
                    for name in TRANSLATED_FIELDS
                    for lang in _languages()
                }
                category_id = article.category_id
                for record in group:
                    setattr(article, _field("title", record.language), record.title)
                    setattr(article, _field("body", record.language), record.body)
                    setattr(article, _field("url", record.language), record.url)
                    if record.category:
                        category_id = _category(record.category, record.language).pk
                after = {key: getattr(article, key) for key in before}
                if created or after != before or category_id != article.category_id:
                    article.category_id = category_id
                    article.save()
                    if created:
                        result.added += 1
                    else:
                        result.updated += 1
                else:
                    result.unchanged += 1
                touched.append(article.pk)
        except Exception as exc:  # one bad article never aborts the import
            logger.exception("import of article %s failed", external_id)
            result.failed += 1
            result.errors.append({"item": external_id, "error": str(exc)})
    if index and touched:
        articles = list(Article.objects.filter(pk__in=touched))
        result.index = articles_index(articles=articles, progress=progress)
    return result


# --- Source sync -----------------------------------------------------------------------------


class _Lock:
    """A PostgreSQL advisory lock per source: two syncs of one source never run at once."""

    def __init__(self, source_id: int) -> None:
        self.source_id = source_id
        self.held = False

    def __enter__(self) -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_LOCK_NAMESPACE, self.source_id])
            self.held = bool(cursor.fetchone()[0])
        return self.held

    def __exit__(self, *exc: object) -> None:
        if self.held:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_unlock(%s, %s)", [_LOCK_NAMESPACE, self.source_id]
                )


def _record_error(run: SyncRun, item: str, error: str) -> None:
    run.failed += 1
    run.errors = [*run.errors, {"item": item, "error": error}][-500:]


def _upsert_page(
    *, source: Source, external_id: str, title: str, body: str, url: str, extra: dict[str, str]
) -> tuple[Article, str]:
    """Create or update the one-language article of a fetched page; its outcome word."""
    language = normalize_language(source.language) or detect_language(f"{title}\n{body[:2000]}")
    if language not in _languages():
        language = settings.LANGUAGE_CODE
    with transaction.atomic():
        article = Article.objects.select_for_update().filter(external_id=external_id).first()
        if article is not None and article.source_id not in (None, source.pk):
            raise FetchError(
                _("This page already belongs to another source (%(id)s).")
                % {"id": article.source_id}
            )
        created = article is None
        if article is None:
            article = Article(
                external_id=external_id, source=source, status=Article.Status.PUBLISHED
            )
        wanted = {
            _field(name, lang): (value if lang == language else None)
            for lang in _languages()
            for name, value in (("title", title[:300]), ("body", body), ("url", url))
        }
        changed = created or any(getattr(article, key) != value for key, value in wanted.items())
        for key, value in {**wanted, **extra}.items():
            setattr(article, key, value)
        article.source = source
        article.save()
    return article, "added" if created else ("updated" if changed else "unchanged")


def _count(run: SyncRun, outcome: str) -> None:
    setattr(run, outcome, getattr(run, outcome) + 1)


def _index_into(run: SyncRun, article: Article) -> None:
    indexed = articles_index(articles=[article])
    run.chunks_embedded += indexed.chunks_embedded
    run.chunks_deleted += indexed.chunks_deleted


def _delete_missing(run: SyncRun, source: Source, seen: set[str]) -> None:
    gone = Article.objects.filter(source=source).exclude(external_id__in=seen)
    for article in gone:
        run.chunks_deleted += article.chunks.count()
        article.delete()  # chunks cascade: nothing stale stays searchable
        run.deleted += 1


def _sync_manual(run: SyncRun, source: Source, progress: Progress | None) -> None:
    articles = list(Article.objects.filter(source=source))
    run.total = len(articles)
    for article in articles:
        try:
            indexed = articles_index(articles=[article])
            _count(run, "updated" if indexed.articles_changed else "unchanged")
            run.chunks_embedded += indexed.chunks_embedded
            run.chunks_deleted += indexed.chunks_deleted
        except Exception as exc:
            logger.exception("indexing article %s failed", article.pk)
            _record_error(run, article.public_id, str(exc))
        _advance(run, progress)


def _advance(run: SyncRun, progress: Progress | None) -> None:
    run.done += 1
    run.save()
    if progress:
        progress(run.done, run.total)


def _sync_page(run: SyncRun, source: Source, http: Any, url: str, lastmod: str = "") -> None:
    existing = Article.objects.filter(external_id=url, source=source).first()
    if existing and lastmod and existing.sitemap_lastmod == lastmod and existing.indexed_hash:
        _count(run, "unchanged")
        return
    fetched = fetch(
        http,
        url,
        etag=existing.etag if existing else "",
        last_modified=existing.last_modified if existing else "",
    )
    if fetched.not_modified and existing:
        if lastmod and existing.sitemap_lastmod != lastmod:
            Article.objects.filter(pk=existing.pk).update(sitemap_lastmod=lastmod)
        _count(run, "unchanged")
        return
    if fetched.content_type in {"text/plain", "text/markdown", "text/x-markdown"}:
        title, body = markdown_title(fetched.text, fallback=url)
    else:
        title, body = html_to_markdown(fetched.text)
    if not (title or body).strip():
        raise FetchError(_("The page has no text."))
    article, outcome = _upsert_page(
        source=source,
        external_id=url,
        title=title or url,
        body=body,
        url=url,
        extra={
            "etag": fetched.etag,
            "last_modified": fetched.last_modified,
            "sitemap_lastmod": lastmod,
        },
    )
    _index_into(run, article)
    _count(run, outcome)


def _sitemap_pages(http: Any, url: str, run: SyncRun) -> tuple[list[tuple[str, str]], bool]:
    """Pages of a sitemap (following sitemap indexes one level); True when it was cut short."""
    limit = settings.KNOWLEDGE_SITEMAP_MAX_URLS
    fetched = fetch(http, url)
    pages, nested = sitemap_entries(fetched.text)
    for child in nested:
        if len(pages) >= limit:
            break
        try:
            child_pages, _grandchildren = sitemap_entries(fetch(http, child).text)
            pages.extend(child_pages)
        except FetchError as exc:
            _record_error(run, child, str(exc))
            return pages, True  # incomplete list: deleting "missing" pages would be wrong
    truncated = len(pages) > limit
    if truncated:
        _record_error(
            run,
            url,
            _("The sitemap lists %(count)s URLs; only the first %(limit)s are synced.")
            % {"count": len(pages), "limit": limit},
        )
    unique: dict[str, str] = {}
    for loc, lastmod in pages[:limit]:
        unique.setdefault(loc, lastmod)
    return list(unique.items()), truncated


def _sync_remote(run: SyncRun, source: Source, progress: Progress | None) -> None:
    with client() as http:
        if source.kind == Source.Kind.SITEMAP:
            try:
                pages, truncated = _sitemap_pages(http, source.url, run)
            except FetchError as exc:
                _record_error(run, source.url, str(exc))
                return
        else:
            pages, truncated = [(source.url, "")], False
        run.total = len(pages)
        run.save()
        seen: set[str] = set()
        for url, lastmod in pages:
            seen.add(url)
            try:
                _sync_page(run, source, http, url, lastmod)
            except Exception as exc:  # one failed page never aborts the run
                if not isinstance(exc, FetchError):
                    logger.exception("sync of %s failed", url)
                _record_error(run, url, str(exc))
            _advance(run, progress)
        if not truncated:
            _delete_missing(run, source, seen)


def _sync_file(run: SyncRun, source: Source) -> None:
    run.total = 1
    if not source.file:
        _record_error(run, source.name, _("No file was uploaded."))
        return
    external_id = f"file:{source.pk}:{source.file.name}"
    try:
        with source.file.open("rb") as handle:
            data = handle.read(settings.KNOWLEDGE_FETCH_MAX_BYTES + 1)
        if len(data) > settings.KNOWLEDGE_FETCH_MAX_BYTES:
            raise FetchError(
                _("The file is larger than %(limit)s bytes.")
                % {"limit": settings.KNOWLEDGE_FETCH_MAX_BYTES}
            )
        title, body = document_from_bytes(name=source.file.name, data=data)
        if not (title or body).strip():
            raise FetchError(_("The file has no text."))
        article, outcome = _upsert_page(
            source=source, external_id=external_id, title=title, body=body, url="", extra={}
        )
        _index_into(run, article)
        _count(run, outcome)
    except Exception as exc:
        if not isinstance(exc, FetchError):
            logger.exception("sync of file source %s failed", source.pk)
        _record_error(run, source.file.name, str(exc))
        return
    _delete_missing(run, source, {external_id})


def source_sync(
    *, source_id: int, trigger: str = SyncRun.Trigger.MANUAL, progress: Progress | None = None
) -> SyncRun | None:
    """Sync one source and record the run; None when another sync of it is running.

    Safe to run twice at once (an advisory lock per source) and idempotent: unchanged pages
    (sitemap lastmod, ETag/Last-Modified, content hashes) cost no embedding.
    """
    source = Source.objects.filter(pk=source_id).first()
    if source is None:
        return None
    with _Lock(source.pk) as held:
        if not held:
            logger.info("sync of source %s skipped: another sync holds its lock", source.pk)
            return None
        run = SyncRun.objects.create(source=source, trigger=trigger)
        try:
            if source.kind == Source.Kind.MANUAL:
                _sync_manual(run, source, progress)
            elif source.kind == Source.Kind.FILE:
                _sync_file(run, source)
            else:
                _sync_remote(run, source, progress)
        except Exception as exc:  # the run is recorded whatever happens
            logger.exception("sync of source %s failed", source.pk)
            _record_error(run, source.name, str(exc))
            run.status = SyncRun.Status.FAILED
        else:
            run.status = SyncRun.Status.PARTIAL if run.failed else SyncRun.Status.SUCCEEDED
        run.finished_at = timezone.now()
        run.save()
        Source.objects.filter(pk=source.pk).update(last_synced_at=run.finished_at)
        return run


def sources_sync_due(*, now: Any = None) -> list[int]:
    """Enqueue the sync of every enabled source whose interval has elapsed; their ids."""
    now = now or timezone.now()
    due = []
    for source in Source.objects.filter(enabled=True, sync_interval_minutes__isnull=False):
        interval = timedelta(minutes=source.sync_interval_minutes or 0)
        if source.last_synced_at is None or source.last_synced_at + interval <= now:
            source_sync_later(source=source, trigger=SyncRun.Trigger.SCHEDULE)
            due.append(source.pk)
    return due


def import_run_record(*, result: ImportResult) -> SyncRun:
    """Record a JSONL import as a sync run, so admins see its counts and errors."""
    return SyncRun.objects.create(
        trigger=SyncRun.Trigger.IMPORT,
        status=SyncRun.Status.PARTIAL if result.failed else SyncRun.Status.SUCCEEDED,
        finished_at=timezone.now(),
        total=result.lines,
        done=result.lines,
        added=result.added,
        updated=result.updated,
        unchanged=result.unchanged,
        failed=result.failed,
        chunks_embedded=result.index.chunks_embedded,
        chunks_deleted=result.index.chunks_deleted,
        errors=result.errors[-500:],
    )


def knowledge_reset() -> dict[str, int]:
    """Empty the knowledge base (articles, chunks, categories, sources, sync runs); counts."""
    with transaction.atomic():
        counts = {
            "chunks": Chunk.objects.count(),
            "articles": Article.objects.count(),
            "categories": Category.objects.count(),
            "sources": Source.objects.count(),
            "sync_runs": SyncRun.objects.count(),
        }
        Chunk.objects.all().delete()
        SyncRun.objects.all().delete()
        Article.objects.all().delete()
        Category.objects.all().delete()
        Source.objects.all().delete()
    return counts
