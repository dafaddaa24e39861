"""The knowledge base over HTTP: articles with their translations, categories, sources and their
sync runs, search as the assistant retrieves, the glossary and the decoding presets."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from ninja import Field, Query, Router, Schema, Status
from pydantic import ConfigDict, StrictInt

from api import errors
from api.auth import Access
from api.conditional import check_if_match, conditional_json
from api.pagination import paginate
from api.schemas import In
from autoglm_site.languages import language_supported
from chat import reply_settings
from chat.models import DecodingPreset, GlossaryTerm
from knowledge import selectors
from knowledge.models import Article, Category, Source, SyncRun
from knowledge.search import SearchHit, chunk_search
from knowledge.services import editing
from knowledge.services.fields import TRANSLATED_FIELDS, field_name, languages

router = Router(tags=["knowledge"])

READ = Access("knowledge:read")
WRITE = Access("knowledge:write")
MAX_ID = selectors.MAX_ID
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
T = TypeVar("T")

READ_ERRORS: dict[int, Any] = {401: errors.ErrorBody, 403: errors.ErrorBody, 422: errors.ErrorBody}
ONE_ERRORS: dict[int, Any] = {**READ_ERRORS, 404: errors.ErrorBody}
# 400: a body that is not JSON at all; 422: JSON that is not a valid body.
WRITE_ERRORS: dict[int, Any] = {**ONE_ERRORS, 400: errors.ErrorBody, 409: errors.ErrorBody}


# --- Input -----------------------------------------------------------------------------------


class QueryIn(In):
    model_config = ConfigDict(extra="ignore")  # other query parameters (cursor) are not ours


class TranslationIn(In):
    title: str | None = Field(None, max_length=300)
    body: str | None = None
    url: str | None = Field(None, max_length=2000)


class ArticleCreate(In):
    external_id: str | None = Field(None, max_length=300)
    status: Literal["draft", "published"] = "published"
    category_id: Id | None = None
    source_id: Id | None = None
    tags: str = Field("", max_length=500)
    translations: dict[str, TranslationIn | None] = Field(min_length=1)


class ArticlePatch(In):
    external_id: str | None = Field(None, max_length=300)
    status: Literal["draft", "published"] | None = None
    category_id: Id | None = None
    source_id: Id | None = None
    tags: str | None = Field(None, max_length=500)
    translations: dict[str, TranslationIn | None] = {}


class ArticleFilters(QueryIn):
    category: str | None = Field(None, max_length=200, description="A category's id or slug.")
    language: str | None = Field(
        None, max_length=16, description="Only articles with their own text in this language."
    )
    published: bool | None = None
    q: str | None = Field(None, max_length=200, description="Part of a title, body or id.")
    cursor: str | None = Field(None, max_length=500)
    limit: int | None = Field(None, ge=1, le=200)


class Page(QueryIn):
    cursor: str | None = Field(None, max_length=500)
    limit: int | None = Field(None, ge=1, le=200)


class CategoryIn(In):
    slug: str = Field(max_length=200)
    names: dict[str, str | None] = Field(min_length=1, description="Language -> name.")


class CategoryPatch(In):
    slug: str | None = Field(None, max_length=200)
    names: dict[str, str | None] = {}


SourceKind = Literal["manual", "url", "sitemap"]


class SourceIn(In):
    name: str = Field(max_length=200)
    kind: SourceKind = "manual"
    url: str = Field("", max_length=2000)
    language: str = Field("", max_length=10)
    allowed_domains: str = Field("", max_length=10000)
    publish_new_pages: bool = False
    sync_interval_minutes: int | None = Field(None, ge=1, le=MAX_ID)
    enabled: bool = True


class SourcePatch(In):
    name: str | None = Field(None, max_length=200)
    kind: SourceKind | None = None
    url: str | None = Field(None, max_length=2000)
    language: str | None = Field(None, max_length=10)
    allowed_domains: str | None = Field(None, max_length=10000)
    publish_new_pages: bool | None = None
    sync_interval_minutes: int | None = Field(None, ge=1, le=MAX_ID)
    enabled: bool | None = None


class SearchIn(QueryIn):
    q: str = Field(min_length=1, max_length=1000, description="The visitor's question.")
    language: str | None = Field(
        None, max_length=16, description="The question's language; omitted: detected."
    )
    limit: int = Field(5, ge=1, le=50)


class GlossaryTermIn(In):
    language: str = Field("", max_length=16, description="Empty: every language.")
    term: str = Field(min_length=1, max_length=200)
    translation: str = Field("", max_length=200)
    do_not_translate: bool = False


class GlossaryTermPatch(In):
    language: str | None = Field(None, max_length=16)
    term: str | None = Field(None, min_length=1, max_length=200)
    translation: str | None = Field(None, max_length=200)
    do_not_translate: bool | None = None


PresetTask = Literal["support_answer", "small_talk", "summary"]


class DecodingPresetIn(In):
    assistant: str = Field("", max_length=100, description="Empty: every assistant.")
    task: PresetTask
    temperature: float = Field(0.3, ge=0.0, le=2.0)
    top_p: float = Field(0.9, ge=0.05, le=1.0)
    max_tokens: int = Field(512, ge=16, le=4096)
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    stop: str = Field("", max_length=2000, description="One per line; at most four.")
    seed: StrictInt | None = Field(None, ge=0, le=MAX_ID)


class DecodingPresetPatch(In):
    assistant: str | None = Field(None, max_length=100)
    task: PresetTask | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.05, le=1.0)
    max_tokens: int | None = Field(None, ge=16, le=4096)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    stop: str | None = Field(None, max_length=2000)
    seed: StrictInt | None = Field(None, ge=0, le=MAX_ID)


# --- Output ----------------------------------------------------------------------------------


class TranslationOut(Schema):
    title: str
    body: str
    url: str


class ArticleOut(Schema):
    id: int
    external_id: str | None
    status: str
    category_id: int | None
    source_id: int | None
    tags: str
    translations: dict[str, TranslationOut] = Field(
        description="Language -> its version; languages without their own text are absent."
    )
    created_at: datetime
    updated_at: datetime


class ArticleList(Schema):
    items: list[ArticleOut]
    next_cursor: str | None


class CategoryOut(Schema):
    id: int
    slug: str
    names: dict[str, str]


class CategoryList(Schema):
    items: list[CategoryOut]
    next_cursor: str | None


class SourceOut(Schema):
    id: int
    name: str
    kind: str
    url: str
    file: str
    language: str
    allowed_domains: str
    publish_new_pages: bool
    sync_interval_minutes: int | None
    enabled: bool
    last_synced_at: datetime | None
    created_at: datetime


class SourceList(Schema):
    items: list[SourceOut]
    next_cursor: str | None


class SyncQueued(Schema):
    source_id: int
    status: str = Field(description='"queued": a worker records the run when it starts it.')
    sync_runs: str = Field(description="Where the run appears.")


class SyncError(Schema):
    item: str
    error: str


class SyncRunOut(Schema):
    id: int
    source_id: int | None
    trigger: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    total: int
    done: int
    added: int
    updated: int
    unchanged: int
    deleted: int
    failed: int
    chunks_embedded: int
    chunks_deleted: int
    errors: list[SyncError]


class SyncRunList(Schema):
    items: list[SyncRunOut]
    next_cursor: str | None


class SearchResult(Schema):
    id: str = Field(description="The article's external id, else its id.")
    lang: str = Field(description="The language of the matched chunk.")
    score: float = Field(description="The fused score (comparable within one query).")
    similarity: float
    relevant: bool = Field(
        description="Whether the assistant would use it (the relevance threshold)."
    )
    title: str
    url: str
    snippet: str


class SearchOut(Schema):
    query: str
    language: str | None
    results: list[SearchResult]


class GlossaryTermOut(Schema):
    id: int
    language: str
    term: str
    translation: str
    do_not_translate: bool
    created_at: datetime
    updated_at: datetime


class GlossaryList(Schema):
    items: list[GlossaryTermOut]
    next_cursor: str | None


class DecodingPresetOut(Schema):
    id: int
    assistant: str
    task: str
    temperature: float
    top_p: float
    max_tokens: int
    presence_penalty: float
    frequency_penalty: float
    stop: str
    seed: int | None
    updated_at: datetime


class DecodingPresetList(Schema):
    items: list[DecodingPresetOut]
    next_cursor: str | None


# --- Helpers ---------------------------------------------------------------------------------


def _translated_names() -> dict[str, str]:
    """Model field name (title_zh_hans) -> its name in the API (translations.zh-hans.title)."""
    names = {
        field_name(name, code): f"translations.{code}.{name}"
        for code in languages()
        for name in TRANSLATED_FIELDS
    }
    names.update({field_name("name", code): f"names.{code}" for code in languages()})
    return names


def _refused(exc: DjangoValidationError) -> errors.ApiError:
    """A model's validation error as the API's: 409 for a uniqueness conflict, else 422."""
    renamed = _translated_names()
    details: list[dict[str, Any]] = []
    codes: set[str | None] = set()
    by_field = exc.error_dict if hasattr(exc, "error_dict") else {"": exc.error_list}
    for name, problems in by_field.items():
        for problem in problems:
            codes.add(problem.code)
            text = problem.message % problem.params if problem.params else problem.message
            field = "" if name == "__all__" else renamed.get(name, name)
            details.append({"field": field, "problem": str(text)})
    if codes & {"unique", "unique_together"}:
        return errors.Conflict(details)
    return errors.InvalidRequest(details)


def _write(call: Callable[[], T]) -> T:
    """Run a service call, turning its validation and uniqueness errors into the API's."""
    try:
        return call()
    except DjangoValidationError as exc:
        raise _refused(exc) from exc
    except IntegrityError as exc:  # a concurrent insert won the unique constraint
        raise errors.Conflict() from exc


def _found(row: T | None) -> T:
    if row is None:
        raise errors.NotFound()
    return row


def _language(code: str | None, field: str) -> str | None:
    if not code:
        return None
    supported = language_supported(code)
    if supported is None:
        raise errors.InvalidRequest([{"field": field, "problem": "not a supported language"}])
    return supported


def _article(article: Article) -> dict[str, Any]:
    return {
        "id": article.pk,
        "external_id": article.external_id,
        "status": article.status,
        "category_id": article.category_id,
        "source_id": article.source_id,
        "tags": article.tags,
        "translations": selectors.article_translations(article),
        "created_at": article.created_at,
        "updated_at": article.updated_at,
    }


def _category(category: Category) -> dict[str, Any]:
    return {"id": category.pk, "slug": category.slug, "names": selectors.category_names(category)}


def _source(source: Source) -> dict[str, Any]:
    return {
        "id": source.pk,
        "name": source.name,
        "kind": source.kind,
        "url": source.url,
        "file": source.file.name if source.file else "",
        "language": source.language,
        "allowed_domains": source.allowed_domains,
        "publish_new_pages": source.publish_new_pages,
        "sync_interval_minutes": source.sync_interval_minutes,
        "enabled": source.enabled,
        "last_synced_at": source.last_synced_at,
        "created_at": source.created_at,
    }


def _sync_run(run: SyncRun) -> dict[str, Any]:
    names = [field.name for field in SyncRun._meta.fields if field.name not in ("source",)]
    payload = {name: getattr(run, name) for name in names}
    payload["source_id"] = run.source_id
    payload["errors"] = [
        {"item": str(error.get("item", "")), "error": str(error.get("error", ""))}
        for error in (run.errors if isinstance(run.errors, list) else [])
        if isinstance(error, dict)
    ]
    return payload


def _hit(hit: SearchHit) -> dict[str, Any]:
    # The record of `kb_search --json` (knowledge/management/commands/kb_search.py), plus the
    # relevance decision the chat applies.
    return {
        "id": hit.article_id,
        "lang": hit.language,
        "score": hit.score,
        "similarity": hit.similarity,
        "relevant": hit.relevant,
        "title": hit.title,
        "url": hit.url,
        "snippet": hit.snippet,
    }


def _given(body: Schema, names: tuple[str, ...]) -> dict[str, Any]:
    data = body.model_dump(exclude_unset=True)
    return {name: data[name] for name in names if name in data}


def _translations(body: ArticleCreate | ArticlePatch) -> dict[str, dict[str, str | None] | None]:
    return {
        code: (version.model_dump(exclude_unset=True) if version is not None else None)
        for code, version in body.translations.items()
    }


def _nullable_to_blank(fields: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    # A PATCH's null for a text column that cannot be null means "leave as it is".
    return {k: v for k, v in fields.items() if not (v is None and k in names)}


# --- Articles --------------------------------------------------------------------------------


@router.get(
    "/articles",
    response={200: ArticleList, **READ_ERRORS},
    auth=READ,
    summary="List articles",
)
def articles_list(request: HttpRequest, filters: Query[ArticleFilters]) -> Any:
    """Newest first, with their translations; filter by category (id or slug), by having their
    own text in a language, by publication, and by a part of a title, body or external id."""
    language = _language(filters.language, "language")
    rows, next_cursor = paginate(
        selectors.article_list(
            category=filters.category,
            language=language,
            published=filters.published,
            query=filters.q,
        ),
        cursor=filters.cursor,
        limit=filters.limit,
    )
    return {"items": [_article(row) for row in rows], "next_cursor": next_cursor}


@router.post(
    "/articles",
    response={201: ArticleOut, **WRITE_ERRORS},
    auth=WRITE,
    summary="Create an article",
)
def articles_create(request: HttpRequest, body: ArticleCreate) -> Any:
    """An article with its translations (language -> title, body, url); indexed for search in
    the background right after, as when it is saved in the admin."""
    fields = _given(body, editing.ARTICLE_FIELDS)
    fields.setdefault("status", body.status)
    article = _write(
        lambda: editing.article_create(fields=fields, translations=_translations(body))
    )
    return Status(201, _article(article))


@router.get(
    "/articles/{article_id}",
    response={200: ArticleOut, 304: None, **ONE_ERRORS},
    auth=READ,
    summary="Get an article",
)
def articles_get(request: HttpRequest, article_id: int) -> HttpResponse:
    """With an ETag; If-None-Match with it answers 304 while the article is unchanged."""
    article = _found(selectors.article_get(article_id=article_id))
    return conditional_json(request, _article(article))


@router.patch(
    "/articles/{article_id}",
    response={200: ArticleOut, 412: errors.ErrorBody, **WRITE_ERRORS},
    auth=WRITE,
    summary="Change an article",
)
def articles_patch(request: HttpRequest, article_id: int, body: ArticlePatch) -> HttpResponse:
    """Only the fields and languages given change; a language given as null is removed. With
    If-Match (the ETag of a GET), a stale version is refused with 412. Indexed again after."""
    if not 0 < article_id <= MAX_ID:
        raise errors.NotFound()
    fields = _nullable_to_blank(_given(body, editing.ARTICLE_FIELDS), ("status", "tags"))
    article = _write(
        lambda: editing.article_update(
            article_id=article_id,
            fields=fields,
            translations=_translations(body),
            precondition=lambda current: check_if_match(request, _article(current)),
        )
    )
    return conditional_json(request, _article(_found(article)))


@router.delete(
    "/articles/{article_id}",
    response={204: None, **ONE_ERRORS},
    auth=WRITE,
    summary="Delete an article",
)
def articles_delete(request: HttpRequest, article_id: int) -> Any:
    """The article and its indexed chunks: search no longer finds it."""
    if not (0 < article_id <= MAX_ID and editing.article_delete(article_id=article_id)):
        raise errors.NotFound()
    return Status(204, None)


@router.post(
    "/articles/{article_id}/publish",
    response={200: ArticleOut, **ONE_ERRORS},
    auth=WRITE,
    summary="Publish an article",
)
def articles_publish(request: HttpRequest, article_id: int) -> Any:
    """Visitors' search finds it from now on (the admin's "Publish" action)."""
    if not 0 < article_id <= MAX_ID:
        raise errors.NotFound()
    return _article(_found(editing.article_publish(article_id=article_id)))


@router.post(
    "/articles/{article_id}/unpublish",
    response={200: ArticleOut, **ONE_ERRORS},
    auth=WRITE,
    summary="Unpublish an article",
)
def articles_unpublish(request: HttpRequest, article_id: int) -> Any:
    """Back to draft: search no longer finds it; its chunks are kept for a later publish."""
    if not 0 < article_id <= MAX_ID:
        raise errors.NotFound()
    return _article(_found(editing.article_unpublish(article_id=article_id)))


# --- Categories ------------------------------------------------------------------------------


@router.get(
    "/categories",
    response={200: CategoryList, **READ_ERRORS},
    auth=READ,
    summary="List categories",
)
def categories_list(request: HttpRequest, page: Query[Page]) -> Any:
    rows, next_cursor = paginate(
        selectors.category_list(),
        cursor=page.cursor,
        limit=page.limit,
        field="slug",
        descending=False,
    )
    return {"items": [_category(row) for row in rows], "next_cursor": next_cursor}


@router.post(
    "/categories",
    response={201: CategoryOut, **WRITE_ERRORS},
    auth=WRITE,
    summary="Create a category",
)
def categories_create(request: HttpRequest, body: CategoryIn) -> Any:
    """A slug (unique) and a name per language."""
    category = _write(
        lambda: editing.category_save(
            category_id=None, fields={"slug": body.slug}, names=body.names
        )
    )
    return Status(201, _category(_found(category)))


@router.get(
    "/categories/{category_id}",
    response={200: CategoryOut, 304: None, **ONE_ERRORS},
    auth=READ,
    summary="Get a category",
)
def categories_get(request: HttpRequest, category_id: int) -> HttpResponse:
    category = _found(selectors.category_get(category_id=category_id))
    return conditional_json(request, _category(category))


@router.patch(
    "/categories/{category_id}",
    response={200: CategoryOut, **WRITE_ERRORS},
    auth=WRITE,
    summary="Change a category",
)
def categories_patch(request: HttpRequest, category_id: int, body: CategoryPatch) -> Any:
    if not 0 < category_id <= MAX_ID:
        raise errors.NotFound()
    fields = _nullable_to_blank(_given(body, editing.CATEGORY_FIELDS), ("slug",))
    category = _write(
        lambda: editing.category_save(category_id=category_id, fields=fields, names=body.names)
    )
    return _category(_found(category))


@router.delete(
    "/categories/{category_id}",
    response={204: None, **ONE_ERRORS},
    auth=WRITE,
    summary="Delete a category",
)
def categories_delete(request: HttpRequest, category_id: int) -> Any:
    """Its articles stay, without a category."""
    if not (0 < category_id <= MAX_ID and editing.category_delete(category_id=category_id)):
        raise errors.NotFound()
    return Status(204, None)


# --- Sources and sync runs -------------------------------------------------------------------


@router.get(
    "/sources",
    response={200: SourceList, **READ_ERRORS},
    auth=READ,
    summary="List sources",
)
def sources_list(request: HttpRequest, page: Query[Page]) -> Any:
    rows, next_cursor = paginate(selectors.source_list(), cursor=page.cursor, limit=page.limit)
    return {"items": [_source(row) for row in rows], "next_cursor": next_cursor}


@router.post(
    "/sources",
    response={201: SourceOut, **WRITE_ERRORS},
    auth=WRITE,
    summary="Create a source",
)
def sources_create(request: HttpRequest, body: SourceIn) -> Any:
    """A manual, web page or sitemap source (files are uploaded in the admin). Like saving it in
    the admin, this syncs it in the background."""
    fields = body.model_dump()
    source = _write(lambda: editing.source_save(source_id=None, fields=fields))
    return Status(201, _source(_found(source)))


@router.get(
    "/sources/{source_id}",
    response={200: SourceOut, 304: None, **ONE_ERRORS},
    auth=READ,
    summary="Get a source",
)
def sources_get(request: HttpRequest, source_id: int) -> HttpResponse:
    return conditional_json(request, _source(_found(selectors.source_get(source_id=source_id))))


@router.patch(
    "/sources/{source_id}",
    response={200: SourceOut, **WRITE_ERRORS},
    auth=WRITE,
    summary="Change a source",
)
def sources_patch(request: HttpRequest, source_id: int, body: SourcePatch) -> Any:
    """Only the fields given change; then the source syncs in the background, as in the admin."""
    if not 0 < source_id <= MAX_ID:
        raise errors.NotFound()
    fields = _nullable_to_blank(
        _given(body, editing.SOURCE_FIELDS),
        tuple(name for name in editing.SOURCE_FIELDS if name != "sync_interval_minutes"),
    )
    source = _write(lambda: editing.source_save(source_id=source_id, fields=fields))
    return _source(_found(source))


@router.delete(
    "/sources/{source_id}",
    response={204: None, **ONE_ERRORS},
    auth=WRITE,
    summary="Delete a source",
)
def sources_delete(request: HttpRequest, source_id: int) -> Any:
    """The source with the articles it synced (and their chunks) and its sync runs."""
    if not (0 < source_id <= MAX_ID and editing.source_delete(source_id=source_id)):
        raise errors.NotFound()
    return Status(204, None)


@router.post(
    "/sources/{source_id}/sync",
    response={202: SyncQueued, **ONE_ERRORS},
    auth=WRITE,
    summary="Sync a source now",
)
def sources_sync(request: HttpRequest, source_id: int) -> Any:
    """Queues the sync (the admin's "Sync now"). The run is recorded when a worker starts it:
    follow it at /sources/{id}/sync-runs."""
    if not 0 < source_id <= MAX_ID:
        raise errors.NotFound()
    source = _found(editing.source_sync_request(source_id=source_id))
    return Status(
        202,
        {
            "source_id": source.pk,
            "status": "queued",
            "sync_runs": f"{request.path.rsplit('/', 1)[0]}/sync-runs",
        },
    )


@router.get(
    "/sources/{source_id}/sync-runs",
    response={200: SyncRunList, **ONE_ERRORS},
    auth=READ,
    summary="A source's sync runs",
)
def sources_sync_runs(request: HttpRequest, source_id: int, page: Query[Page]) -> Any:
    """Newest first, with their counts and their errors (item, error)."""
    source = _found(selectors.source_get(source_id=source_id))
    rows, next_cursor = paginate(
        selectors.sync_run_list(source_id=source.pk),
        cursor=page.cursor,
        limit=page.limit,
        field="started_at",
    )
    return {"items": [_sync_run(row) for row in rows], "next_cursor": next_cursor}


# --- Search ----------------------------------------------------------------------------------


def _search(query: SearchIn) -> dict[str, Any]:
    language = _language(query.language, "language")
    hits = chunk_search(query=query.q, language=language, limit=query.limit)
    return {"query": query.q, "language": language, "results": [_hit(hit) for hit in hits]}


@router.get(
    "/search",
    response={200: SearchOut, **READ_ERRORS},
    auth=READ,
    summary="Search as the assistant retrieves",
)
def search_get(request: HttpRequest, query: Query[SearchIn]) -> Any:
    """What the assistant would retrieve for the question Q in LANGUAGE (detected if omitted),
    best first, with scores and whether each is relevant enough to be used: the same retrieval
    as the chat and `manage.py kb_search`. Only published articles are found."""
    return _search(query)


@router.post(
    "/search",
    response={200: SearchOut, 400: errors.ErrorBody, **READ_ERRORS},
    auth=READ,
    summary="Search as the assistant retrieves (body)",
)
def search_post(request: HttpRequest, body: SearchIn) -> Any:
    """As GET /search, with the question in a JSON body {"q", "language", "limit"}."""
    return _search(body)


# --- Glossary --------------------------------------------------------------------------------


class GlossaryFilters(Page):
    language: str | None = Field(None, max_length=16, description='"" for every-language terms.')


def _term(term: GlossaryTerm) -> dict[str, Any]:
    return {
        "id": term.pk,
        "language": term.language,
        "term": term.term,
        "translation": term.translation,
        "do_not_translate": term.do_not_translate,
        "created_at": term.created_at,
        "updated_at": term.updated_at,
    }


@router.get(
    "/glossary",
    response={200: GlossaryList, **READ_ERRORS},
    auth=READ,
    summary="List glossary terms",
    tags=["glossary"],
)
def glossary_list(request: HttpRequest, filters: Query[GlossaryFilters]) -> Any:
    rows, next_cursor = paginate(
        reply_settings.glossary_term_list(language=filters.language),
        cursor=filters.cursor,
        limit=filters.limit,
    )
    return {"items": [_term(row) for row in rows], "next_cursor": next_cursor}


@router.post(
    "/glossary",
    response={201: GlossaryTermOut, **WRITE_ERRORS},
    auth=WRITE,
    summary="Create a glossary term",
    tags=["glossary"],
)
def glossary_create(request: HttpRequest, body: GlossaryTermIn) -> Any:
    """Either a preferred translation or do_not_translate; one entry per term and language."""
    term = _write(lambda: reply_settings.glossary_term_save(term_id=None, fields=body.model_dump()))
    return Status(201, _term(_found(term)))


@router.get(
    "/glossary/{term_id}",
    response={200: GlossaryTermOut, **ONE_ERRORS},
    auth=READ,
    summary="Get a glossary term",
    tags=["glossary"],
)
def glossary_get(request: HttpRequest, term_id: int) -> Any:
    return _term(_found(reply_settings.glossary_term_get(term_id=term_id)))


@router.patch(
    "/glossary/{term_id}",
    response={200: GlossaryTermOut, **WRITE_ERRORS},
    auth=WRITE,
    summary="Change a glossary term",
    tags=["glossary"],
)
def glossary_patch(request: HttpRequest, term_id: int, body: GlossaryTermPatch) -> Any:
    if not 0 < term_id <= MAX_ID:
        raise errors.NotFound()
    fields = _nullable_to_blank(
        _given(body, reply_settings.GLOSSARY_FIELDS), reply_settings.GLOSSARY_FIELDS
    )
    term = _write(lambda: reply_settings.glossary_term_save(term_id=term_id, fields=fields))
    return _term(_found(term))


@router.delete(
    "/glossary/{term_id}",
    response={204: None, **ONE_ERRORS},
    auth=WRITE,
    summary="Delete a glossary term",
    tags=["glossary"],
)
def glossary_delete(request: HttpRequest, term_id: int) -> Any:
    if not reply_settings.glossary_term_delete(term_id=term_id):
        raise errors.NotFound()
    return Status(204, None)


# --- Decoding presets ------------------------------------------------------------------------


def _preset(preset: DecodingPreset) -> dict[str, Any]:
    payload = {name: getattr(preset, name) for name in reply_settings.PRESET_FIELDS}
    return {"id": preset.pk, **payload, "updated_at": preset.updated_at}


@router.get(
    "/decoding-presets",
    response={200: DecodingPresetList, **READ_ERRORS},
    auth=READ,
    summary="List decoding presets",
    tags=["decoding presets"],
)
def presets_list(request: HttpRequest, page: Query[Page]) -> Any:
    rows, next_cursor = paginate(
        reply_settings.decoding_preset_list(),
        cursor=page.cursor,
        limit=page.limit,
        field="updated_at",
    )
    return {"items": [_preset(row) for row in rows], "next_cursor": next_cursor}


@router.post(
    "/decoding-presets",
    response={201: DecodingPresetOut, **WRITE_ERRORS},
    auth=WRITE,
    summary="Create a decoding preset",
    tags=["decoding presets"],
)
def presets_create(request: HttpRequest, body: DecodingPresetIn) -> Any:
    """Sampling for one task (and one assistant, or every one: ""); one preset per pair."""
    preset = _write(
        lambda: reply_settings.decoding_preset_save(preset_id=None, fields=body.model_dump())
    )
    return Status(201, _preset(_found(preset)))


@router.get(
    "/decoding-presets/{preset_id}",
    response={200: DecodingPresetOut, **ONE_ERRORS},
    auth=READ,
    summary="Get a decoding preset",
    tags=["decoding presets"],
)
def presets_get(request: HttpRequest, preset_id: int) -> Any:
    return _preset(_found(reply_settings.decoding_preset_get(preset_id=preset_id)))


@router.patch(
    "/decoding-presets/{preset_id}",
    response={200: DecodingPresetOut, **WRITE_ERRORS},
    auth=WRITE,
    summary="Change a decoding preset",
    tags=["decoding presets"],
)
def presets_patch(request: HttpRequest, preset_id: int, body: DecodingPresetPatch) -> Any:
    if not 0 < preset_id <= MAX_ID:
        raise errors.NotFound()
    fields = _nullable_to_blank(
        _given(body, reply_settings.PRESET_FIELDS),
        tuple(name for name in reply_settings.PRESET_FIELDS if name != "seed"),
    )
    preset = _write(lambda: reply_settings.decoding_preset_save(preset_id=preset_id, fields=fields))
    return _preset(_found(preset))


@router.delete(
    "/decoding-presets/{preset_id}",
    response={204: None, **ONE_ERRORS},
    auth=WRITE,
    summary="Delete a decoding preset",
    tags=["decoding presets"],
)
def presets_delete(request: HttpRequest, preset_id: int) -> Any:
    if not reply_settings.decoding_preset_delete(preset_id=preset_id):
        raise errors.NotFound()
    return Status(204, None)
