"""JSONL import of articles, its record as a sync run, and the reset of the knowledge base."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _

from knowledge.models import Article, Category, Chunk, Source, SyncRun
from knowledge.services.fields import TRANSLATED_FIELDS, field_name, languages
from knowledge.services.indexing import IndexResult, Progress, articles_index
from knowledge.text import normalize_language

logger = logging.getLogger(__name__)


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
    if language not in languages():
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
    name_field = field_name("name", language)
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
                    field_name(name, lang): getattr(article, field_name(name, lang))
                    for name in TRANSLATED_FIELDS
                    for lang in languages()
                }
                category_id = article.category_id
                for record in group:
                    setattr(article, field_name("title", record.language), record.title)
                    setattr(article, field_name("body", record.language), record.body)
                    setattr(article, field_name("url", record.language), record.url)
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
