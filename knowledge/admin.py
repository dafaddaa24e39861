"""Admin: translations side by side, sync now, sync runs with counts and errors, search preview."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from modeltranslation.admin import TranslationAdmin
from modeltranslation.utils import build_localized_fieldname

from knowledge.models import Article, Category, Chunk, Source, SyncRun
from knowledge.search import chunk_search
from knowledge.services import article_index_later, articles_publish, source_sync_later
from webhooks import events as webhook_events


def _language_fieldsets() -> list[tuple[str, dict[str, Any]]]:
    fieldsets: list[tuple[str, dict[str, Any]]] = []
    for code, name in settings.LANGUAGES:
        fields = [build_localized_fieldname(field, code) for field in ("title", "url", "body")]
        fieldsets.append((str(name), {"fields": fields, "classes": ["kb-language"]}))
    return fieldsets


@admin.register(Category)
class CategoryAdmin(TranslationAdmin[Category]):
    list_display = ["slug", "name"]
    search_fields = ["slug", "name"]


@admin.register(Article)
class ArticleAdmin(TranslationAdmin[Article]):
    list_display = ["__str__", "external_id", "status", "category", "source", "updated_at"]
    list_filter = ["status", "category", "source"]
    search_fields = ["external_id", "title", "body"]
    actions = ["reindex_now", "publish"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    readonly_fields = ["indexed_hash", "etag", "last_modified", "sitemap_lastmod"]

    class Media:
        css = {"all": ["knowledge/admin.css"]}

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        # One fieldset per language, laid out side by side by knowledge/admin.css.
        return [
            (None, {"fields": ["external_id", "status", "category", "tags", "source"]}),
            *_language_fieldsets(),
            (_("Index"), {"fields": self.readonly_fields, "classes": ["collapse"]}),
        ]

    def save_model(self, request: HttpRequest, obj: Article, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        article_index_later(article=obj)
        if obj.status == Article.Status.PUBLISHED and (not change or "status" in form.changed_data):
            webhook_events.article_published(article=obj)  # after commit, like every event

    @admin.action(description=gettext_lazy("Re-index now"))
    def reindex_now(self, request: HttpRequest, queryset: QuerySet[Article]) -> None:
        for article in queryset:
            article_index_later(article=article)
        self.message_user(
            request, _("%(count)s articles queued for indexing.") % {"count": queryset.count()}
        )

    @admin.action(description=gettext_lazy("Publish (after review)"))
    def publish(self, request: HttpRequest, queryset: QuerySet[Article]) -> None:
        count = articles_publish(article_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(
            request, _("%(count)s draft articles published.") % {"count": count}, messages.SUCCESS
        )


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin[Source]):
    list_display = [
        "name",
        "kind",
        "url",
        "language",
        "publish_new_pages",
        "sync_interval_minutes",
        "last_synced_at",
    ]
    list_filter = ["kind", "enabled"]
    actions = ["sync_now"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def save_model(self, request: HttpRequest, obj: Source, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        source_sync_later(source=obj, trigger=SyncRun.Trigger.SAVE)

    @admin.action(description=gettext_lazy("Sync now"))
    def sync_now(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        for source in queryset:
            source_sync_later(source=source, trigger=SyncRun.Trigger.MANUAL)
        self.message_user(
            request,
            _("%(count)s sources queued for sync; see Sync runs.") % {"count": queryset.count()},
            messages.SUCCESS,
        )


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin[SyncRun]):
    list_display = [
        "started_at",
        "source",
        "trigger",
        "status",
        "progress",
        "added",
        "updated",
        "unchanged",
        "deleted",
        "failed",
        "chunks_embedded",
    ]
    list_filter = ["status", "trigger", "source"]
    readonly_fields = [field.name for field in SyncRun._meta.fields] + ["error_list"]
    exclude = ["errors"]

    @admin.display(description=gettext_lazy("progress"))
    def progress(self, run: SyncRun) -> str:
        return f"{run.done}/{run.total}"

    @admin.display(description=gettext_lazy("errors"))
    def error_list(self, run: SyncRun) -> str:
        if not run.errors:
            return "-"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "", "<li><code>{}</code>: {}</li>", ((e["item"], e["error"]) for e in run.errors)
            ),
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class SearchPreviewForm(forms.Form):
    query = forms.CharField(label=gettext_lazy("Question"), max_length=1000)
    language = forms.ChoiceField(
        label=gettext_lazy("Language"),
        required=False,
        choices=[("", gettext_lazy("Detect"))] + list(settings.LANGUAGES),
    )
    limit = forms.IntegerField(label=gettext_lazy("Results"), min_value=1, max_value=50, initial=5)


@admin.register(Chunk)
class ChunkAdmin(admin.ModelAdmin[Chunk]):
    """Chunks are read-only; this admin also hosts the search preview."""

    list_display = ["article", "language", "position", "heading"]
    list_filter = ["language"]
    exclude = ["embedding", "search"]
    readonly_fields = [
        "article",
        "language",
        "position",
        "heading",
        "text",
        "tokens",
        "content_hash",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        preview = path(
            "search-preview/",
            self.admin_site.admin_view(self.search_preview),
            name="knowledge_search_preview",
        )
        return [preview, *super().get_urls()]

    def search_preview(self, request: HttpRequest) -> HttpResponse:
        """What the assistant would retrieve for a question in a chosen language, with scores."""
        form = SearchPreviewForm(request.GET or None)
        hits = []
        if form.is_valid():
            hits = chunk_search(
                query=form.cleaned_data["query"],
                language=form.cleaned_data["language"] or None,
                limit=form.cleaned_data["limit"],
            )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Knowledge search preview"),
            "form": form,
            "hits": hits,
            "searched": form.is_bound and form.is_valid(),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/knowledge/search_preview.html", context)
