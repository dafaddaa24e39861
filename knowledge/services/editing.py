"""Edits of the knowledge base outside the admin (the HTTP API): articles with their
translations, categories and sources, each saved and then indexed or synced as the admin does."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from knowledge.models import Article, Category, Source, SyncRun
from knowledge.services.fields import TRANSLATED_FIELDS, field_name, languages
from knowledge.services.indexing import article_index_later
from knowledge.services.sync import articles_publish, source_sync_later
from webhooks import events as webhook_events

# One language version of an article: {"title": ..., "body": ..., "url": ...}; None (instead of
# the mapping) removes that language's version.
Translations = Mapping[str, Mapping[str, str | None] | None]
Precondition = Callable[[Article], None]

# The editable plain fields of each model (the API's bodies name the same).
ARTICLE_FIELDS = ("external_id", "status", "category_id", "source_id", "tags")
CATEGORY_FIELDS = ("slug",)
SOURCE_FIELDS = (
    "name",
    "kind",
    "url",
    "language",
    "allowed_domains",
    "publish_new_pages",
    "sync_interval_minutes",
    "enabled",
)


def _index_changed_on_commit() -> None:
    from knowledge.search import index_changed

    transaction.on_commit(index_changed)


def _apply_translations(article: Article, translations: Translations) -> None:
    known = languages()
    unknown = sorted(code for code in translations if code not in known)
    if unknown:
        raise ValidationError(
            {"translations": _("Unknown languages: %(codes)s") % {"codes": ", ".join(unknown)}}
        )
    for language, version in translations.items():
        for name in TRANSLATED_FIELDS:
            if version is None:
                setattr(article, field_name(name, language), None)
            elif name in version:
                value = version[name]
                setattr(article, field_name(name, language), value.strip() if value else None)


def _article_check(article: Article) -> None:
    """Model validation (lengths, choices, URLs, the external id's uniqueness) and one rule
    of the API's: an article has a title in at least one language."""
    if not any(getattr(article, field_name("title", code)) for code in languages()):
        raise ValidationError({"translations": _("Give the article a title in one language.")})
    if (
        article.category_id is not None
        and not Category.objects.filter(pk=article.category_id).exists()
    ):
        raise ValidationError({"category_id": _("There is no category with this id.")})
    if article.source_id is not None and not Source.objects.filter(pk=article.source_id).exists():
        raise ValidationError({"source_id": _("There is no source with this id.")})
    # The untranslated columns mirror the default language's and may be empty here.
    article.full_clean(exclude=[*TRANSLATED_FIELDS, "category", "source"])


def article_create(*, fields: Mapping[str, Any], translations: Translations) -> Article:
    """A new article with its translations, indexed after commit (as saving it in the admin)."""
    article = Article()
    for name in ARTICLE_FIELDS:
        if name in fields:
            setattr(article, name, fields[name])
    if not article.external_id:
        article.external_id = None  # unique: empty ids must not collide
    _apply_translations(article, translations)
    with transaction.atomic():
        _article_check(article)
        article.save()
        article_index_later(article=article)
        if article.status == Article.Status.PUBLISHED:
            webhook_events.article_published(article=article)
    return article


def article_update(
    *,
    article_id: int,
    fields: Mapping[str, Any],
    translations: Translations,
    precondition: Precondition | None = None,
) -> Article | None:
    """Change an article (only the given fields and languages), indexed again after commit;
    None if there is none. PRECONDITION sees the article as stored, locked, before the change
    (the API's If-Match)."""
    with transaction.atomic():
        article = Article.objects.select_for_update().filter(pk=article_id).first()
        if article is None:
            return None
        if precondition is not None:
            precondition(article)
        was_published = article.status == Article.Status.PUBLISHED
        for name in ARTICLE_FIELDS:
            if name in fields:
                setattr(article, name, fields[name])
        if not article.external_id:
            article.external_id = None
        _apply_translations(article, translations)
        _article_check(article)
        article.save()
        article_index_later(article=article)
        _index_changed_on_commit()  # a status change alters search's published counts
        if not was_published and article.status == Article.Status.PUBLISHED:
            webhook_events.article_published(article=article)
    return article


def article_delete(*, article_id: int) -> bool:
    """Delete an article and (cascading) its chunks; False if there is none."""
    with transaction.atomic():
        deleted, _rows = Article.objects.filter(pk=article_id).delete()
        if deleted:
            _index_changed_on_commit()
    return bool(deleted)


def article_publish(*, article_id: int) -> Article | None:
    """Publish one article (the admin's "Publish" action); None if there is none."""
    articles_publish(article_ids=[article_id])
    return Article.objects.filter(pk=article_id).first()


def article_unpublish(*, article_id: int) -> Article | None:
    """Take one article back to draft: search no longer finds it; None if there is none."""
    with transaction.atomic():
        count = Article.objects.filter(pk=article_id, status=Article.Status.PUBLISHED).update(
            status=Article.Status.DRAFT
        )
        if count:
            _index_changed_on_commit()
    return Article.objects.filter(pk=article_id).first()


def category_save(
    *, category_id: int | None, fields: Mapping[str, Any], names: Mapping[str, str | None]
) -> Category | None:
    """Create (CATEGORY_ID None) or change a category; NAMES: its name per language. None if
    the category to change does not exist."""
    known = languages()
    unknown = sorted(code for code in names if code not in known)
    if unknown:
        raise ValidationError(
            {"names": _("Unknown languages: %(codes)s") % {"codes": ", ".join(unknown)}}
        )
    with transaction.atomic():
        if category_id is None:
            category = Category()
        else:
            found = Category.objects.select_for_update().filter(pk=category_id).first()
            if found is None:
                return None
            category = found
        for name in CATEGORY_FIELDS:
            if name in fields:
                setattr(category, name, fields[name])
        for language, value in names.items():
            setattr(category, field_name("name", language), (value or "").strip() or None)
        if not any(getattr(category, field_name("name", code)) for code in known):
            raise ValidationError({"names": _("Give the category a name in one language.")})
        category.full_clean(exclude=["name"])
        category.save()
    return category


def category_delete(*, category_id: int) -> bool:
    """Delete a category; its articles stay, without a category."""
    deleted, _rows = Category.objects.filter(pk=category_id).delete()
    return bool(deleted)


def _source_check(source: Source) -> None:
    if source.kind in (Source.Kind.URL, Source.Kind.SITEMAP) and not source.url:
        raise ValidationError({"url": _("A web page or sitemap source needs a URL.")})
    if source.kind == Source.Kind.FILE and not source.file:
        raise ValidationError(
            {"kind": _("Sources of uploaded files are created in the admin, where files upload.")}
        )
    if source.language and source.language not in languages():
        raise ValidationError({"language": _("Not one of the site's languages.")})
    source.full_clean(exclude=["file"])


def source_save(*, source_id: int | None, fields: Mapping[str, Any]) -> Source | None:
    """Create (SOURCE_ID None) or change a source, then sync it after commit, as saving it in
    the admin does. None if the source to change does not exist."""
    with transaction.atomic():
        if source_id is None:
            source = Source()
        else:
            found = Source.objects.select_for_update().filter(pk=source_id).first()
            if found is None:
                return None
            source = found
        for name in SOURCE_FIELDS:
            if name in fields:
                setattr(source, name, fields[name])
        _source_check(source)
        source.save()
        source_sync_later(source=source, trigger=SyncRun.Trigger.SAVE)
    return source


def source_delete(*, source_id: int) -> bool:
    """Delete a source with its articles, their chunks and its sync runs."""
    with transaction.atomic():
        deleted, _rows = Source.objects.filter(pk=source_id).delete()
        if deleted:
            _index_changed_on_commit()
    return bool(deleted)


def source_sync_request(*, source_id: int) -> Source | None:
    """Enqueue a sync of one source after commit (the admin's "Sync now"); None if there is
    none. The run is recorded (a SyncRun) when a worker starts it."""
    source = Source.objects.filter(pk=source_id).first()
    if source is not None:
        source_sync_later(source=source, trigger=SyncRun.Trigger.MANUAL)
    return source
