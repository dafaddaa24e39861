"""Source sync: manual, URL, sitemap and file sources fetched, upserted and indexed."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from autoglm_site.background import enqueue
from knowledge.extract import document_from_bytes, html_to_markdown, markdown_title, sitemap_entries
from knowledge.fetch import AddressRefused, FetchError, client, fetch, host_allowed
from knowledge.models import Article, Source, SyncRun, domain_entries
from knowledge.services.fields import field_name, languages
from knowledge.services.indexing import Progress, articles_index
from knowledge.text import detect_language, normalize_language
from webhooks import events as webhook_events

logger = logging.getLogger(__name__)

_LOCK_NAMESPACE = 0x6B62  # "kb": first key of the per-source advisory lock


def source_sync_later(*, source: Source, trigger: str = SyncRun.Trigger.MANUAL) -> None:
    """Sync SOURCE in the background once the current transaction commits."""
    from knowledge.tasks import sync_source

    enqueue(sync_source, source_id=source.pk, trigger=str(trigger))


class _Lock:
    """A PostgreSQL advisory lock per source: two syncs of one source never run at once."""

    def __init__(self, source_id: int, wait_seconds: float = 0) -> None:
        self.source_id = source_id
        self.wait_seconds = wait_seconds
        self.held = False

    def __enter__(self) -> bool:
        deadline = time.monotonic() + self.wait_seconds
        while True:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_try_advisory_lock(%s, %s)", [_LOCK_NAMESPACE, self.source_id]
                )
                self.held = bool(cursor.fetchone()[0])
            if self.held or time.monotonic() >= deadline:
                return self.held
            time.sleep(0.5)

    def __exit__(self, *exc: object) -> None:
        if self.held:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_unlock(%s, %s)", [_LOCK_NAMESPACE, self.source_id]
                )


class _SourceUnreadable(Exception):
    """The source's own list (a sitemap) could not be read: the run has failed as a whole."""


def _record_error(run: SyncRun, item: str, error: str) -> None:
    run.failed += 1
    run.errors = [*run.errors, {"item": item, "error": error}][-500:]


def _abandoned_runs_close(source: Source) -> None:
    """Mark failed the runs of SOURCE still marked running: the caller holds the source's lock,
    which a live sync would hold too, so they were left by a worker that died mid-run (SIGKILL,
    out of memory, a lost machine); its task is delivered again and this run redoes the work."""
    now = timezone.now()
    for run in SyncRun.objects.filter(source=source, status=SyncRun.Status.RUNNING):
        run.status = SyncRun.Status.FAILED
        run.finished_at = now
        run.errors = [
            *run.errors,
            {
                "item": source.name,
                "error": _(
                    "The worker stopped before this run finished (it was killed or lost its "
                    "connection). The next run of this source starts over."
                ),
            },
        ][-500:]
        run.save(update_fields=["status", "finished_at", "errors"])
        logger.warning("sync run %s of source %s was abandoned by its worker", run.pk, source.pk)


def _upsert_page(
    *, source: Source, external_id: str, title: str, body: str, url: str
) -> tuple[Article, str]:
    """Create or update the one-language article of a fetched page; its outcome word."""
    language = normalize_language(source.language) or detect_language(f"{title}\n{body[:2000]}")
    if language not in languages():
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
            # A page fetched from the web is quoted to anonymous visitors once published: unless
            # its source says otherwise it waits for review. An uploaded file was chosen by an
            # admin, its upload is the review.
            published = source.publish_new_pages or source.kind == Source.Kind.FILE
            article = Article(
                external_id=external_id,
                source=source,
                status=Article.Status.PUBLISHED if published else Article.Status.DRAFT,
            )
        wanted = {
            field_name(name, lang): (value if lang == language else None)
            for lang in languages()
            for name, value in (("title", title[:300]), ("body", body), ("url", url))
        }
        changed = created or any(getattr(article, key) != value for key, value in wanted.items())
        for key, value in wanted.items():
            setattr(article, key, value)
        article.source = source
        article.save()
        if created and article.status == Article.Status.PUBLISHED:
            webhook_events.article_published(article=article)
    return article, "added" if created else ("updated" if changed else "unchanged")


def _count(run: SyncRun, outcome: str) -> None:
    setattr(run, outcome, getattr(run, outcome) + 1)


def _index_into(run: SyncRun, article: Article) -> bool:
    """Index ARTICLE into RUN's counts; True when its chunks had to change."""
    indexed = articles_index(articles=[article])
    run.chunks_embedded += indexed.chunks_embedded
    run.chunks_deleted += indexed.chunks_deleted
    return bool(indexed.articles_changed)


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


def _allowed_hosts(source: Source) -> frozenset[str]:
    """The hosts SOURCE may fetch from: its URL's own, and those its admin listed."""
    own = urlsplit(source.url).hostname
    return frozenset([*([own] if own else []), *domain_entries(source.allowed_domains)])


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
        allowed_hosts=_allowed_hosts(source),
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
        source=source, external_id=url, title=title or url, body=body, url=url
    )
    if _index_into(run, article) and outcome == "unchanged":
        outcome = "updated"  # stored by a run cut off before it indexed the page
    # The validators that let the next run skip this page are stored only once its chunks are
    # up to date: a worker killed between the upsert and the indexing leaves the page to be
    # fetched and indexed again, not taken for unchanged.
    Article.objects.filter(pk=article.pk).update(
        etag=fetched.etag, last_modified=fetched.last_modified, sitemap_lastmod=lastmod
    )
    _count(run, outcome)


def _sitemap_pages(http: Any, source: Source, run: SyncRun) -> tuple[list[tuple[str, str]], bool]:
    """Pages of SOURCE's sitemap (following a sitemap index one level) on its allowed hosts;
    True when the list was cut short. FetchError when the sitemap itself cannot be used."""
    limit = settings.KNOWLEDGE_SITEMAP_MAX_URLS
    allowed = _allowed_hosts(source)
    pages, nested = sitemap_entries(fetch(http, source.url, allowed_hosts=allowed).text)
    if len(nested) > settings.KNOWLEDGE_SITEMAP_MAX_NESTED:
        raise FetchError(
            _(
                "The sitemap index lists %(count)s sitemaps; at most %(limit)s are followed "
                "(KNOWLEDGE_SITEMAP_MAX_NESTED)."
            )
            % {"count": len(nested), "limit": settings.KNOWLEDGE_SITEMAP_MAX_NESTED}
        )
    incomplete = False
    for child in nested:
        if len(pages) >= limit:
            break
        try:
            child_pages, grandchildren = sitemap_entries(
                fetch(http, child, allowed_hosts=allowed).text
            )
        except FetchError as exc:
            _record_error(run, child, str(exc))
            return pages, True  # incomplete list: deleting "missing" pages would be wrong
        if grandchildren:
            _record_error(run, child, _("A sitemap index inside a sitemap index is not followed."))
            incomplete = True
        pages.extend(child_pages)
    truncated = len(pages) > limit
    if truncated:
        _record_error(
            run,
            source.url,
            _("The sitemap lists %(count)s URLs; only the first %(limit)s are synced.")
            % {"count": len(pages), "limit": limit},
        )
    unique: dict[str, str] = {}
    for loc, lastmod in pages[:limit]:
        host = urlsplit(loc).hostname or ""
        if not host_allowed(host, allowed):
            # Not fetched, and not kept either: an article stored from it earlier is deleted.
            _record_error(
                run,
                loc,
                _(
                    "%(host)s is not one of this source's allowed domains (add it there to "
                    "sync it): %(url)s"
                )
                % {"host": host, "url": loc},
            )
            continue
        unique.setdefault(loc, lastmod)
    return list(unique.items()), truncated or incomplete


def _sync_remote(run: SyncRun, source: Source, progress: Progress | None) -> None:
    with client() as http:
        if source.kind == Source.Kind.SITEMAP:
            try:
                pages, truncated = _sitemap_pages(http, source, run)
            except FetchError as exc:
                _record_error(run, source.url, str(exc))
                if isinstance(exc, AddressRefused):
                    # Whatever was synced from a refused address earlier must not stay quotable.
                    _delete_missing(run, source, set())
                raise _SourceUnreadable from exc
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
                if isinstance(exc, AddressRefused):
                    seen.discard(url)  # a copy stored before it was refused goes
                elif not isinstance(exc, FetchError):
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
            source=source, external_id=external_id, title=title, body=body, url=""
        )
        if _index_into(run, article) and outcome == "unchanged":
            outcome = "updated"  # stored by a run cut off before it indexed the file
        _count(run, outcome)
    except Exception as exc:
        if not isinstance(exc, FetchError):
            logger.exception("sync of file source %s failed", source.pk)
        _record_error(run, source.file.name, str(exc))
        return
    _delete_missing(run, source, {external_id})


def source_sync(
    *,
    source_id: int,
    trigger: str = SyncRun.Trigger.MANUAL,
    progress: Progress | None = None,
    lock_wait_seconds: float = 0,
) -> SyncRun | None:
    """Sync one source and record the run; None when another sync of it is running (after
    waiting up to LOCK_WAIT_SECONDS for it to end).

    Safe to run twice at once (an advisory lock per source) and idempotent: unchanged pages
    (sitemap lastmod, ETag/Last-Modified, content hashes) cost no embedding, and a run cut off
    anywhere (its worker killed) is completed by the next one, which also marks it failed.
    A run fails as a whole (status failed) when the source cannot be read at all or on an
    unexpected error; per-page errors make it partial.
    """
    source = Source.objects.filter(pk=source_id).first()
    if source is None:
        return None
    with _Lock(source.pk, lock_wait_seconds) as held:
        if not held:
            logger.info("sync of source %s skipped: another sync holds its lock", source.pk)
            return None
        _abandoned_runs_close(source)
        run = SyncRun.objects.create(source=source, trigger=trigger)
        try:
            if source.kind == Source.Kind.MANUAL:
                _sync_manual(run, source, progress)
            elif source.kind == Source.Kind.FILE:
                _sync_file(run, source)
            else:
                _sync_remote(run, source, progress)
        except _SourceUnreadable:  # recorded already; nothing was synced, nothing deleted
            run.status = SyncRun.Status.FAILED
        except Exception as exc:  # the run is recorded whatever happens
            logger.exception("sync of source %s failed", source.pk)
            _record_error(run, source.name, str(exc))
            run.status = SyncRun.Status.FAILED
        else:
            run.status = SyncRun.Status.PARTIAL if run.failed else SyncRun.Status.SUCCEEDED
        run.finished_at = timezone.now()
        run.save()
        Source.objects.filter(pk=source.pk).update(last_synced_at=run.finished_at)
        webhook_events.sync_run_finished(run=run)
        return run


def articles_publish(*, article_ids: list[int]) -> int:
    """Publish the draft articles among ARTICLE_IDS (pages a sync left for review); how many."""
    from knowledge.search import index_changed

    with transaction.atomic():
        drafts = Article.objects.select_for_update().filter(
            pk__in=article_ids, status=Article.Status.DRAFT
        )
        published = list(drafts.values_list("pk", flat=True))
        count = Article.objects.filter(pk__in=published).update(status=Article.Status.PUBLISHED)
        if count:
            transaction.on_commit(index_changed)  # search's counts of published chunks
            webhook_events.articles_published(article_ids=published)
    return count


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
