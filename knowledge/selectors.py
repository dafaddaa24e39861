"""Reads of the knowledge base for the HTTP API: filtered lists and single rows."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from knowledge.models import Article, Category, Source, SyncRun
from knowledge.services.fields import TRANSLATED_FIELDS, field_name, languages

# PostgreSQL's integer: a larger id names no row (and must not reach the database).
MAX_ID = 2**31 - 1


def _valid(pk: int) -> bool:
    return 0 < pk <= MAX_ID


def article_list(
    *,
    category: str | None = None,
    language: str | None = None,
    published: bool | None = None,
    query: str | None = None,
) -> QuerySet[Article]:
    """Articles filtered by CATEGORY (an id or a slug), by having their own text in LANGUAGE,
    by status, and by QUERY (a part of the external id, or of a title or body in any language)."""
    rows = Article.objects.select_related("category")
    if category:
        if category.isdigit() and _valid(int(category)):
            rows = rows.filter(Q(category_id=int(category)) | Q(category__slug=category))
        else:
            rows = rows.filter(category__slug=category)
    if language:
        rows = rows.filter(
            Q(**{f"{field_name('title', language)}__gt": ""})
            | Q(**{f"{field_name('body', language)}__gt": ""})
        )
    if published is not None:
        status = Article.Status.PUBLISHED if published else Article.Status.DRAFT
        rows = rows.filter(status=status)
    if query:
        match = Q(external_id__icontains=query)
        for code in languages():
            for name in ("title", "body"):
                match |= Q(**{f"{field_name(name, code)}__icontains": query})
        rows = rows.filter(match)
    return rows


def article_get(*, article_id: int) -> Article | None:
    if not _valid(article_id):
        return None
    return Article.objects.select_related("category").filter(pk=article_id).first()


def article_translations(article: Article) -> dict[str, dict[str, str]]:
    """Language -> {"title", "body", "url"} for each language the article has its own text in
    (no fallback: an empty language is absent)."""
    versions: dict[str, dict[str, str]] = {}
    for code in languages():
        values = {
            name: getattr(article, field_name(name, code)) or "" for name in TRANSLATED_FIELDS
        }
        if any(values.values()):
            versions[code] = values
    return versions


def category_list() -> QuerySet[Category]:
    return Category.objects.all()


def category_get(*, category_id: int) -> Category | None:
    return Category.objects.filter(pk=category_id).first() if _valid(category_id) else None


def category_names(category: Category) -> dict[str, str]:
    """Language -> the category's own name in it (no fallback)."""
    names = {code: getattr(category, field_name("name", code)) or "" for code in languages()}
    return {code: name for code, name in names.items() if name}


def source_list(*, kind: str | None = None) -> QuerySet[Source]:
    rows = Source.objects.all()
    return rows.filter(kind=kind) if kind else rows


def source_get(*, source_id: int) -> Source | None:
    return Source.objects.filter(pk=source_id).first() if _valid(source_id) else None


def sync_run_list(*, source_id: int) -> QuerySet[SyncRun]:
    return SyncRun.objects.filter(source_id=source_id)
